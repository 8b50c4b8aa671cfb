// Tool call ids between Anthropic and Google. Claude behind Cloud Code checks them against
// Anthropic's pattern ^[a-zA-Z0-9_-]+$ and refuses the whole turn otherwise; ids made elsewhere (a GLM
// id, a client's own, Gemini's) may hold other characters. Such an id is rewritten the same way for a
// call and its result, and an id Google gives the client is one the client can send back anywhere.
import { fromByteString } from '../../anthropic/byte-strings.ts';

const ID_FINE = /^[A-Za-z0-9_-]+$/;
const ID_BAD_CHARS = /[^A-Za-z0-9_-]/g;

/** 32-bit FNV-1a: a short, stable hash of a name or id (not for security). */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A short, stable hash of `text` to tell names apart; `salt` > 0 gives another, for one already taken. */
export function saltedHash(text: string, salt = 0): string {
  return fnv1a(salt === 0 ? text : `${text}#${salt}`).toString(36);
}

/**
 * The id with every other character made "_" and a hash of the whole id appended, so that ids which
 * differ only in such characters (`call.1`, `call:1`) stay apart. `salt` picks another hash. `id` is
 * a client's, so byte strings (anthropic/byte-strings.ts).
 */
export function sanitizedToolId(id: string, salt = 0): string {
  return sanitizedText(fromByteString(id), salt);
}

function sanitizedText(text: string, salt = 0): string {
  const base = text.replace(ID_BAD_CHARS, '_') || 'toolu';
  return `${base}_${saltedHash(text, salt)}`;
}

/**
 * An id from Google as the client gets it: unchanged when it fits the pattern. It is decoded text,
 * not a byte string: read as one, every Latin-1 letter became the same U+FFFD and two calls' ids
 * could come out equal.
 */
export function clientToolId(id: string): string {
  return ID_FINE.test(id) ? id : sanitizedText(id);
}

/**
 * Client id -> the id Google gets, for one request whose ids are `ids` (calls and results). Ids that
 * fit are kept; the others are sanitized to ids no other id of the request has. Deterministic for a
 * given set of ids, so a conversation's history goes up the same way each turn (prompt cache).
 */
export function googleToolIds(ids: readonly string[]): (id: string) => string {
  let renamed: Map<string, string> | null = null;
  let taken: Set<string> | null = null;
  for (const id of ids) {
    if (ID_FINE.test(id) || renamed?.has(id)) continue;
    if (!taken) {
      taken = new Set<string>();
      for (const other of ids) if (ID_FINE.test(other)) taken.add(other);
    }
    let salt = 0;
    let out = sanitizedToolId(id);
    while (taken.has(out)) out = sanitizedToolId(id, ++salt);
    taken.add(out);
    (renamed ??= new Map()).set(id, out);
  }
  if (!renamed) return (id) => id;
  const map = renamed;
  return (id) => map.get(id) ?? id;
}
