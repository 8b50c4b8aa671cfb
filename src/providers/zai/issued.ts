// The thinking signatures Z.AI streamed, so that the gateway can tell GLM's thinking from another
// provider's when a conversation moves between them. Bounded: only a hash a signature, oldest first out.

/** Enough for every conversation's recent turns; ~40 bytes an entry. */
const DEFAULT_MAX = 20_000;

export interface IssuedSignatures {
  remember(signature: string): void;
  has(signature: string): boolean;
  size(): number;
}

export function createIssuedSignatures(max = DEFAULT_MAX): IssuedSignatures {
  // Set insertion order is the age order: a re-issued signature moves to the back.
  const seen = new Set<number>();
  const key = (s: string): number => Number(Bun.hash(s));
  return {
    remember(signature) {
      if (!signature) return;
      const k = key(signature);
      seen.delete(k);
      seen.add(k);
      if (seen.size > max) seen.delete(seen.values().next().value as number);
    },
    has(signature) {
      return signature !== '' && seen.has(key(signature));
    },
    size: () => seen.size,
  };
}
