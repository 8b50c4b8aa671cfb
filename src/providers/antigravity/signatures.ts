// What the proxy must remember between turns so a conversation survives on Cloud Code (§7.7):
// Claude Code drops every non-standard field we put on blocks, so the Gemini thought signature of a
// function call or of a drawn picture, the family that minted a thinking signature, and the tool
// names we had to sanitize are kept here, in memory, bounded (LRU + TTL). Losing an entry is never fatal: the
// request side falls back to the documented sentinel or drops the thinking block.
import type { ModelFamily } from '../provider.ts';

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
}

export interface SignatureStoreOptions {
  /** Per map. Default 20 000. */
  maxEntries?: number;
  /** Default 2 h, the seed proxies' value. */
  ttlMs?: number;
  now?: () => number;
}

export function createSignatureStore(opts: SignatureStoreOptions = {}): SignatureStore {
  const max = Math.max(1, opts.maxEntries ?? 20_000);
  const ttl = opts.ttlMs ?? 2 * 60 * 60 * 1000;
  const now = opts.now ?? Date.now;
  const families = lru<ModelFamily>(max, ttl, now);
  const calls = lru<ToolCallRecord>(max, ttl, now);
  const namings = lru<ToolNaming>(max, ttl, now);
  const images = lru<string>(max, ttl, now);
  // A read drops an expired entry, but most are never read again: without a sweep, a busy hour's
  // entries (signatures run to kilobytes) would stay until maxEntries newer ones pushed them out,
  // which on a quiet proxy is never. Swept on writes, at most every ttl/8: no timer to own.
  const sweepEveryMs = Math.max(1, Math.floor(ttl / 8));
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
      sweepIfDue();
      families.set(signature, family);
    },
    thinkingFamily(signature) {
      return families.get(signature) ?? (isClaudeRForm(signature) ? 'claude' : undefined);
    },
    rememberToolCall(id, record) {
      sweepIfDue();
      calls.set(id, record);
    },
    toolCall(id) {
      return calls.get(id);
    },
    rememberTools(sessionKey, naming) {
      // Merged, not replaced: a conversation's subagents send other tool sets under the same key,
      // and sanitizing is deterministic, so entries never disagree.
      sweepIfDue();
      const known = namings.get(sessionKey);
      if (known) {
        for (const [k, v] of naming.original) known.original.set(k, v);
        for (const p of naming.placeholders) known.placeholders.add(p);
        namings.set(sessionKey, known);
      } else {
        namings.set(sessionKey, { original: new Map(naming.original), placeholders: new Set(naming.placeholders) });
      }
    },
    tools(sessionKey) {
      return namings.get(sessionKey);
    },
    rememberImage(data, signature) {
      sweepIfDue();
      images.set(imageKey(data), signature);
    },
    imageSignature(data) {
      return images.get(imageKey(data));
    },
    size: () => families.size() + calls.size() + namings.size() + images.size(),
  };
}

/** A picture's key: a fast hash of its base64 and its length (pictures run to megabytes; the key stays short). */
function imageKey(data: string): string {
  return `${Bun.hash(data).toString(36)}:${data.length}`;
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

interface Lru<V> {
  get(key: string): V | undefined;
  set(key: string, value: V): void;
  /** Drops every entry expired at `t`. */
  sweep(t: number): void;
  size(): number;
}

/** Map insertion order is the recency order: a read re-inserts, the oldest key is evicted first. */
function lru<V>(max: number, ttl: number, now: () => number): Lru<V> {
  const map = new Map<string, { value: V; expires: number }>();
  return {
    get(key) {
      const e = map.get(key);
      if (!e) return undefined;
      map.delete(key);
      if (e.expires <= now()) return undefined;
      map.set(key, e);
      return e.value;
    },
    set(key, value) {
      map.delete(key);
      map.set(key, { value, expires: now() + ttl });
      while (map.size > max) {
        const oldest = map.keys().next().value as string;
        map.delete(oldest);
      }
    },
    sweep(t) {
      for (const [key, e] of map) if (e.expires <= t) map.delete(key);
    },
    size: () => map.size,
  };
}
