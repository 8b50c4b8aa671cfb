// What the proxy must remember between turns so a conversation survives on Cloud Code (§7.7):
// Claude Code drops every non-standard field we put on blocks, so the Gemini thought signature of a
// function call or of a drawn picture, the family that minted a thinking signature, and the tool
// names we had to sanitize are kept here, in memory, bounded (LRU by entries and by bytes, + TTL).
// Losing an entry is never fatal: the request side falls back to the documented sentinel or drops
// the thinking block. Gemini's thinking signatures are also told to the store as hashes (Claude's
// are known by their shape), so that a restart does not cost every Gemini conversation its thinking;
// Gemini calls' and drawn pictures' signatures are told to it as they are, for the same reason.
import { signatureHash } from '../issued-hashes.ts';
import type { KeptCallSignature, KeptImageSignature, ModelFamily } from '../provider.ts';

/** Signatures shorter than this are not real (§7.5, MIN_SIGNATURE_LENGTH of the seed proxies). */
export const MIN_SIGNATURE_LENGTH = 50;

export interface ToolCallRecord {
  /** The function name the upstream used (already sanitized). */
  name: string;
  /** thoughtSignature that came with the call (Gemini), or null. */
  signature: string | null;
  /** Family of the model that made the call. */
  family: ModelFamily;
  /** The upstream gave no id; the proxy minted the toolu_ id the client knows it by. */
  minted?: boolean;
}

/** Per conversation: how tool names were rewritten for Google, and which tools got a placeholder. */
export interface ToolNaming {
  /** sanitized name -> the client's name (only names that changed). */
  original: Map<string, string>;
  /** sanitized names of tools whose schema got the placeholder property. */
  placeholders: Set<string>;
}

export interface SignatureStore {
  rememberThinking(signature: string, family: ModelFamily): void;
  /** Family that minted the signature: from memory, else from its shape (Claude's R-form). */
  thinkingFamily(signature: string): ModelFamily | undefined;
  rememberToolCall(toolUseId: string, record: ToolCallRecord): void;
  toolCall(toolUseId: string): ToolCallRecord | undefined;
  /** Adds to what is known for the conversation. */
  rememberTools(sessionKey: string, naming: ToolNaming): void;
  tools(sessionKey: string): ToolNaming | undefined;
  /** The thoughtSignature an image model put on a picture it drew, keyed by the picture's data. */
  rememberImage(data: string, signature: string): void;
  imageSignature(data: string): string | undefined;
  /** Entries held, all maps together (tests, diagnostics). */
  size(): number;
  /** Approximate bytes held, all maps together (tests, diagnostics). */
  bytes(): number;
}

export interface SignatureStoreOptions {
  /** Per map. Default 20 000. */
  maxEntries?: number;
  /** All maps together, shared out as MAP_SHARES says. Default DEFAULT_MAX_BYTES. */
  maxBytes?: number;
  /** Default 2 h, the seed proxies' value. */
  ttlMs?: number;
  /** How long a thinking signature's family is known. Default THINKING_TTL_MS. */
  thinkingTtlMs?: number;
  now?: () => number;
  /** Hashes of Gemini thinking signatures known from before a restart (the store), oldest first. */
  knownGeminiThinking?: Iterable<number>;
  /** Told the hash of each Gemini thinking signature remembered (to be stored). */
  onGeminiThinking?: (hash: number) => void;
  /** Gemini function calls known from before a restart (the store), oldest first. */
  knownGeminiCalls?: Iterable<KeptCallSignature>;
  /** Told each Gemini function call with a signature or a made-up id (to be stored). */
  onGeminiCall?: (call: KeptCallSignature) => void;
  /** Drawn pictures' signatures known from before a restart (the store), oldest first. */
  knownImages?: Iterable<KeptImageSignature>;
  /** Told each drawn picture's signature, with the picture's hash, never the picture (to be stored). */
  onImage?: (image: KeptImageSignature) => void;
}

/**
 * A week, as long as the store keeps the hashes of Gemini's thinking signatures (gateway/provider-deps.ts):
 * Gemini wants its earlier turns' signatures back for as long as a conversation goes on, and with
 * the 2 h of the rest a conversation idle over lunch lost them (though a restart brought them back).
 * Only a hash an entry, bounded by the same entry and byte caps.
 */
export const THINKING_TTL_MS = 7 * 24 * 60 * 60 * 1000;

/**
 * The store's memory budget. A Gemini signature runs to 5.5 KB (captures), so 20 000 entries a map
 * held ~0.5 GB, while the whole proxy's peak RSS target is 120 MB on a small VPS (docs/benchmarks.md:
 * ~58 MB idle, ~116 MB peak under load). 16 MB still holds ~1 800 Gemini tool calls: what conversations
 * need is the signatures of their current turn, and a lost one costs only reasoning continuity (the
 * request side sends the sentinel, §7.3).
 */
export const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Each map's share of the budget, so that a flood in one (large tool-call signatures) never pushes
 * out the small entries of another. Tool calls carry the big signatures that matter most; the family
 * map's entries are hashes of fixed size; tool naming is remembered again on every request.
 */
const MAP_SHARES = { calls: 10 / 16, families: 2 / 16, namings: 2 / 16, images: 2 / 16 } as const;

// Approximate costs in JavaScriptCore, measured with heapStats (scripts/signatures-memory.ts): a map
// entry with its record ~200 bytes, a string's header ~32, one byte a character once compacted.
const ENTRY_BYTES = 200;
const STRING_BYTES = 32;

export function createSignatureStore(opts: SignatureStoreOptions = {}): SignatureStore {
  const max = Math.max(1, opts.maxEntries ?? 20_000);
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const ttl = opts.ttlMs ?? 2 * 60 * 60 * 1000;
  const now = opts.now ?? Date.now;
  // Keyed by a hash of the signature: the signature itself (kilobytes) is only ever looked up.
  const thinkingTtl = opts.thinkingTtlMs ?? THINKING_TTL_MS;
  const families = lru<number, ModelFamily>(max, maxBytes * MAP_SHARES.families, thinkingTtl, now);
  const calls = lru<string, ToolCallRecord>(max, maxBytes * MAP_SHARES.calls, ttl, now);
  const namings = lru<string, ToolNaming>(max, maxBytes * MAP_SHARES.namings, ttl, now);
  const images = lru<number, string>(max, maxBytes * MAP_SHARES.images, ttl, now);
  const keepImage = (hash: number, signature: string): string => {
    const kept = compact(signature);
    images.set(hash, kept, ENTRY_BYTES + STRING_BYTES + kept.length);
    return kept;
  };
  for (const i of opts.knownImages ?? []) keepImage(i.hash, i.signature);
  for (const hash of opts.knownGeminiThinking ?? []) families.set(hash, 'gemini', ENTRY_BYTES);
  const keepCall = (id: string, kept: ToolCallRecord): void => {
    calls.set(id, kept, ENTRY_BYTES + 2 * STRING_BYTES + id.length + kept.name.length + (kept.signature ? STRING_BYTES + kept.signature.length : 0));
  };
  // Their name is not kept in the store: only the signature and the made-up id are read back.
  for (const c of opts.knownGeminiCalls ?? []) {
    keepCall(c.toolUseId, { name: '', signature: c.signature ? compact(c.signature) : null, family: 'gemini', ...(c.minted ? { minted: true } : {}) });
  }
  // A read drops an expired entry, but most are never read again: without a sweep, a busy hour's
  // entries (signatures run to kilobytes) would stay until maxEntries newer ones pushed them out,
  // which on a quiet proxy is never. Swept on writes, at most every ttl/8: no timer to own.
  const sweepEveryMs = Math.max(1, Math.floor(Math.min(ttl, thinkingTtl) / 8));
  let nextSweep = now() + sweepEveryMs;
  function sweepIfDue(): void {
    const t = now();
    if (t < nextSweep) return;
    nextSweep = t + sweepEveryMs;
    families.sweep(t);
    calls.sweep(t);
    namings.sweep(t);
    images.sweep(t);
  }
  return {
    rememberThinking(signature, family) {
      if (signature.length < MIN_SIGNATURE_LENGTH) return;
      // thinkingFamily answers these from their shape: memory would only push out what it cannot.
      if (family === 'claude' && isClaudeRForm(signature)) return;
      sweepIfDue();
      const hash = signatureHash(signature);
      families.set(hash, family, ENTRY_BYTES);
      if (family === 'gemini') opts.onGeminiThinking?.(hash);
    },
    thinkingFamily(signature) {
      if (signature.length < MIN_SIGNATURE_LENGTH) return undefined;
      return families.get(signatureHash(signature)) ?? (isClaudeRForm(signature) ? 'claude' : undefined);
    },
    rememberToolCall(id, record) {
      sweepIfDue();
      // Only a Gemini call's signature is ever replayed (to-google's geminiSignature).
      const signature = record.family === 'gemini' && record.signature ? compact(record.signature) : null;
      const kept: ToolCallRecord = { name: record.name, signature, family: record.family };
      if (record.minted) kept.minted = true;
      keepCall(id, kept);
      if (record.family === 'gemini' && (signature || record.minted)) opts.onGeminiCall?.({ toolUseId: id, signature, minted: record.minted === true });
    },
    toolCall(id) {
      return calls.get(id);
    },
    rememberTools(sessionKey, naming) {
      // Merged, not replaced: a conversation's subagents send other tool sets under the same key,
      // and sanitizing is deterministic, so entries never disagree.
      sweepIfDue();
      const known = namings.get(sessionKey);
      const merged = known ?? { original: new Map<string, string>(), placeholders: new Set<string>() };
      for (const [k, v] of naming.original) merged.original.set(k, v);
      for (const p of naming.placeholders) merged.placeholders.add(p);
      namings.set(sessionKey, merged, namingBytes(sessionKey, merged));
    },
    tools(sessionKey) {
      return namings.get(sessionKey);
    },
    rememberImage(data, signature) {
      sweepIfDue();
      // Keyed by the picture's 53-bit hash, as the store keeps it: no copy of the picture is held,
      // and the key is exact as an SQLite integer (the full 64-bit hash was not).
      const hash = signatureHash(data);
      const kept = keepImage(hash, signature); // not inside onImage?.(): that skips its arguments when unset
      opts.onImage?.({ hash, signature: kept });
    },
    imageSignature(data) {
      return images.get(signatureHash(data));
    },
    size: () => families.size() + calls.size() + namings.size() + images.size(),
    bytes: () => families.bytes() + calls.bytes() + namings.bytes() + images.bytes(),
  };
}

// A Map and a Set with their tables, then per name its strings and slot (measured: ~2.4 KB for a
// session with eight renamed tools).
const NAMING_BYTES = 320;
const NAME_SLOT_BYTES = 64;

function namingBytes(sessionKey: string, n: ToolNaming): number {
  let b = ENTRY_BYTES + NAMING_BYTES + STRING_BYTES + sessionKey.length;
  for (const [k, v] of n.original) b += NAME_SLOT_BYTES + 2 * STRING_BYTES + k.length + v.length;
  for (const p of n.placeholders) b += NAME_SLOT_BYTES + STRING_BYTES + p.length;
  return b;
}

const BEYOND_LATIN1 = /[^\x00-\xff]/;

/**
 * The string as JavaScriptCore's one-byte kind. A signature parsed from a chunk that held any
 * character beyond Latin-1 is kept in UTF-16, two bytes a character; signatures are base64, so a kept
 * one is copied once to half that.
 */
function compact(s: string): string {
  return BEYOND_LATIN1.test(s) ? s : Buffer.from(s, 'latin1').toString('latin1');
}

const BASE64_CHARS = /^[A-Za-z0-9+/]+$/;

/**
 * Claude signatures from Cloud Code are base64 of Anthropic's own "E…" base64 signature (§6.3), so
 * they survive a restart: decoding the first bytes gives "E" and more base64 text. Gemini
 * signatures are single base64 of binary and never decode to text.
 */
export function isClaudeRForm(signature: string): boolean {
  if (signature.length < MIN_SIGNATURE_LENGTH || signature[0] !== 'R') return false;
  try {
    const head = atob(signature.slice(0, 16));
    return head[0] === 'E' && BASE64_CHARS.test(head);
  } catch {
    return false;
  }
}

interface Lru<K, V> {
  get(key: K): V | undefined;
  /** `bytes`: what the entry costs; one larger than the whole budget is not kept. */
  set(key: K, value: V, bytes: number): void;
  /** Drops every entry expired at `t`. */
  sweep(t: number): void;
  size(): number;
  bytes(): number;
}

/**
 * Map insertion order is the recency order: a read re-inserts, the oldest key is evicted first,
 * until both the entry count and the bytes are within bounds.
 */
function lru<K, V>(max: number, maxBytes: number, ttl: number, now: () => number): Lru<K, V> {
  const map = new Map<K, { value: V; expires: number; bytes: number }>();
  let total = 0;
  const drop = (key: K, e: { bytes: number }): void => {
    map.delete(key);
    total -= e.bytes;
  };
  return {
    get(key) {
      const e = map.get(key);
      if (!e) return undefined;
      map.delete(key);
      if (e.expires <= now()) {
        total -= e.bytes;
        return undefined;
      }
      map.set(key, e);
      return e.value;
    },
    set(key, value, bytes) {
      const old = map.get(key);
      if (old) drop(key, old);
      if (bytes > maxBytes) return;
      map.set(key, { value, expires: now() + ttl, bytes });
      total += bytes;
      while (map.size > max || total > maxBytes) {
        const [oldest, e] = map.entries().next().value as [K, { bytes: number }];
        drop(oldest, e);
      }
    },
    sweep(t) {
      for (const [key, e] of map) if (e.expires <= t) drop(key, e);
    },
    size: () => map.size,
    bytes: () => total,
  };
}
