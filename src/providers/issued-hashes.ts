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

/** What the store kept of the signatures `provider` issued before a restart; none when it cannot be read. */
export function storedSignatureHashes(deps: ProviderDeps, provider: ProviderId): number[] {
  try {
    return deps.issuedSignatures?.load(provider) ?? [];
  } catch {
    // An unreadable table costs the thinking of conversations from before, not the server its start.
    return [];
  }
}

/** The Gemini function calls the store kept from before a restart; none when it cannot be read. */
export function storedCallSignatures(deps: ProviderDeps): KeptCallSignature[] {
  try {
    return deps.callSignatures?.load() ?? [];
  } catch {
    // Unreadable: those tool loops go back with the skip sentinel, as before the store kept them.
    return [];
  }
}

/** The drawn pictures' signatures the store kept from before a restart; none when it cannot be read. */
export function storedImageSignatures(deps: ProviderDeps): KeptImageSignature[] {
  try {
    return deps.imageSignatures?.load() ?? [];
  } catch {
    // Unreadable: those pictures go back unsigned, as before the store kept them.
    return [];
  }
}
