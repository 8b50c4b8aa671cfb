// The hashes of the thinking signatures a provider issued, as kept in the store across restarts
// (ProviderDeps.issuedSignatures): never the signatures themselves. Gemini function calls' and drawn
// pictures' own signatures, which Gemini wants back as they were, are read back here too.
import type { KeptCallSignature, KeptImageSignature, ProviderDeps, ProviderId } from './provider.ts';

/** Hashes a provider remembers, and the store keeps per provider: enough for every conversation's recent turns. */
export const ISSUED_HASHES_KEPT = 20_000;

const LOW_53_BITS = (1n << 53n) - 1n;

/**
 * A signature's (or a drawn picture's base64) hash: 53 bits, so that it is exact as a JS number and as
 * an SQLite integer. Bun.hash hashes the UTF-8, so a string hashes alike from a response chunk and from
 * a request's byte strings (base64 is ASCII). A false match among 20 000 keys is ~1 in 10^11 per lookup.
 */
export function signatureHash(signature: string): number {
  return Number(BigInt(Bun.hash(signature)) & LOW_53_BITS);
}

/**
 * What `load` reads from the store; none when there is no store or it cannot be read. An unreadable
 * table costs the conversations from before a restart what it held (their thinking, a tool loop's
 * reasoning, a picture's signature), never the server its start.
 */
function storedOrNone<T>(load: (() => T[]) | undefined): T[] {
  try {
    return load?.() ?? [];
  } catch {
    return [];
  }
}

/** What the store kept of the signatures `provider` issued before a restart. */
export function storedSignatureHashes(deps: ProviderDeps, provider: ProviderId): number[] {
  const store = deps.issuedSignatures;
  return storedOrNone(store && (() => store.load(provider)));
}

/** The Gemini function calls the store kept from before a restart (unreadable: the skip sentinel, as before). */
export function storedCallSignatures(deps: ProviderDeps): KeptCallSignature[] {
  const store = deps.callSignatures;
  return storedOrNone(store && (() => store.load()));
}

/** The drawn pictures' signatures the store kept from before a restart (unreadable: unsigned, as before). */
export function storedImageSignatures(deps: ProviderDeps): KeptImageSignature[] {
  const store = deps.imageSignatures;
  return storedOrNone(store && (() => store.load()));
}
