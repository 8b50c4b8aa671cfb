// The thinking signatures Z.AI streamed, so that the gateway can tell GLM's thinking from another
// provider's when a conversation moves between them. Bounded: only a hash a signature, oldest first out.
// The hashes are also handed to the store (ProviderDeps.issuedSignatures), so a restart knows them:
// without that, a pool with Google accounts too dropped every GLM thinking block after a restart.

import { ISSUED_HASHES_KEPT, signatureHash } from '../issued-hashes.ts';


/**
 * What stands for the signature of a thinking block Z.AI streamed without one: its text, marked so
 * that it is never taken for a signature. Remembered and stored (as a hash) like a signature.
 */
export function unsignedThinkingKey(thinking: string): string {
  return `unsigned thinking\n${thinking}`;
}

export interface IssuedSignatures {
  remember(signature: string): void;
  has(signature: string): boolean;
  size(): number;
}

export interface IssuedOptions {
  /** Hashes known from before (the store), oldest first. */
  known?: Iterable<number>;
  /** Told each hash remembered (to be stored). */
  onRemember?: (hash: number) => void;
}

export function createIssuedSignatures(max = ISSUED_HASHES_KEPT, opts: IssuedOptions = {}): IssuedSignatures {
  // Set insertion order is the age order: a re-issued signature moves to the back.
  const seen = new Set<number>();
  const add = (k: number): void => {
    seen.delete(k);
    seen.add(k);
    if (seen.size > max) seen.delete(seen.values().next().value as number);
  };
  for (const k of opts.known ?? []) add(k);
  return {
    remember(signature) {
      if (!signature) return;
      const k = signatureHash(signature);
      add(k);
      opts.onRemember?.(k);
    },
    has(signature) {
      return signature !== '' && seen.has(signatureHash(signature));
    },
    size: () => seen.size,
  };
}
