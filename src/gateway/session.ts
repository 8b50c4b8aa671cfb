// The client conversation a request belongs to, as a stable key: Claude Code's session id (from
// metadata.user_id, either the JSON form or the legacy `user_…_session_<uuid>` form, or the
// x-claude-code-session-id header), else a hash of the conversation's first user message, which
// stays the same on every turn of that conversation.
import type { MessagesRequest } from '../anthropic/schema.ts';

const LEGACY_SESSION = /_session_([0-9a-zA-Z-]{8,})$/;

function fromUserId(userId: unknown): string | null {
  if (typeof userId !== 'string' || !userId) return null;
  if (userId.startsWith('{')) {
    try {
      const o = JSON.parse(userId) as { session_id?: unknown };
      if (typeof o.session_id === 'string' && o.session_id) return o.session_id;
    } catch {
      // not JSON after all: try the legacy form
    }
  }
  const m = LEGACY_SESSION.exec(userId);
  return m ? m[1]! : null;
}

/**
 * Longest key kept as the client sent it. Keys are held long (account bindings, tool naming, 20 000
 * each): a longer id (Claude Code's are UUIDs) is hashed, so a client cannot pin megabytes with them.
 */
const MAX_KEY_LENGTH = 128;

/** How much of an image's or document's data tells it apart (hashing megabytes per request would not). */
const SOURCE_SAMPLE = 4096;

/** `enough`: the caller reads no further than this many characters, so the texts after it are not joined. */
function firstUserText(body: MessagesRequest, enough = Infinity): string {
  const first = body.messages.find((m) => m.role === 'user');
  if (!first) return '';
  const c = first.content as unknown;
  if (typeof c === 'string') return c;
  if (!Array.isArray(c)) return '';
  let out = '';
  for (const b of c as Array<Record<string, unknown>>) {
    if (out.length >= enough) break;
    if (b && b.type === 'text' && typeof b.text === 'string') out += b.text;
    else if (b && b.type === 'tool_result') out += String(b.tool_use_id ?? '');
  }
  if (out) return out;
  // No text at all (an image alone): without this every such conversation would share one key, and
  // so one account. Only here, so the keys of conversations that have text never change.
  for (const b of c as Array<Record<string, unknown>>) {
    const src = b?.source as { data?: unknown; url?: unknown; file_id?: unknown } | undefined;
    if (!src || typeof src !== 'object') continue;
    if (typeof src.data === 'string') out += `${src.data.slice(0, SOURCE_SAMPLE)}:${src.data.length};`;
    else if (typeof src.url === 'string') out += `${src.url};`;
    else if (typeof src.file_id === 'string') out += `${src.file_id};`;
  }
  return out;
}

/**
 * The conversation's key; `headers` are lower-case. Never empty. A sub-agent (Claude Code's
 * x-claude-code-agent-id) is a conversation of its own, so parallel sub-agents spread over the pool
 * while each keeps its account (and its cache).
 */
export function sessionKeyOf(body: MessagesRequest, headers: Record<string, string>): string {
  const header = headers['x-claude-code-session-id'];
  const meta = (body as { metadata?: { user_id?: unknown } }).metadata;
  const id = fromUserId(meta?.user_id) ?? (header ? header.trim() : null);
  const agent = headers['x-claude-code-agent-id']?.trim();
  if (id) {
    const key = agent ? `${id}:${agent}` : id;
    if (key.length <= MAX_KEY_LENGTH) return key;
    return `id:${new Bun.CryptoHasher('sha256').update(key, 'latin1').digest('hex').slice(0, 32)}`;
  }
  const hasher = new Bun.CryptoHasher('sha256');
  // The text is a byte string (anthropic/byte-strings.ts): its bytes are the UTF-8 the key was always made of.
  hasher.update(firstUserText(body), 'latin1');
  return hasher.digest('hex').slice(0, 32);
}

/** How much of the first answer tells one conversation's history from another's. */
const ANSWER_SAMPLE = 4096;

/**
 * The history's key, or null while it has no answer yet: the first user message and the first
 * assistant message, which every later request of the conversation repeats. A fork (Claude Code's
 * --fork-session: a new session id over the same history) has the same one, so it can start on the
 * account that holds that history's prompt cache. The first answer carries what no other
 * conversation has (signatures, tool ids), so two conversations that merely begin alike differ.
 */
export function historyKeyOf(body: MessagesRequest): string | null {
  const answer = body.messages.find((m) => m.role === 'assistant');
  if (!answer) return null;
  let sample = '';
  const c = answer.content as unknown;
  if (typeof c === 'string') sample = c.slice(0, ANSWER_SAMPLE);
  else if (Array.isArray(c)) {
    for (const b of c as Array<Record<string, unknown>>) {
      if (sample.length >= ANSWER_SAMPLE) break;
      if (!b || typeof b !== 'object') continue;
      for (const f of ['signature', 'id', 'text', 'thinking', 'data'] as const) {
        if (typeof b[f] === 'string') sample += `${f}:${(b[f] as string).slice(0, ANSWER_SAMPLE)};`;
      }
    }
  }
  if (!sample) return null;
  const hasher = new Bun.CryptoHasher('sha256');
  hasher.update(firstUserText(body, ANSWER_SAMPLE).slice(0, ANSWER_SAMPLE), 'latin1');
  hasher.update('\u0000', 'latin1');
  hasher.update(sample.slice(0, ANSWER_SAMPLE), 'latin1');
  return `history:${hasher.digest('hex').slice(0, 32)}`;
}
