// Request bodies in: size, content type, UTF-8 and JSON checked by hand (so every failure is our
// envelope, not the framework's), then the TypeBox schema compiled once. The compiled check is the
// fast path; only a failing body is walked again to name the first problem by its path, e.g.
// `messages.2.content.0.type: unknown block type "foo"`.
import { isUtf8 } from 'node:buffer';
import { Kind, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import { fromByteString, parseJsonAsByteStrings } from '../anthropic/byte-strings.ts';
import { ApiError } from '../anthropic/errors.ts';
import {
  CountTokensRequest as CountTokensSchema,
  MessagesRequest as MessagesSchema,
  type CountTokensRequest,
  type MessagesRequest,
} from '../anthropic/schema.ts';

// Compiled on first use: TypeBox's compiler loops long enough at start-up to wake JavaScriptCore's
// optimizing JIT, which kept ~3 MB more of the runtime's code resident in a server that had not
// served anything yet (idle RSS 58-60.5 MB against a 60 MB target; ~56 MB without), and commands
// that never validate a request skip it. The first request pays it (~10 ms).
type Compiled = ReturnType<typeof TypeCompiler.Compile<typeof MessagesSchema>>;
let messagesChecker: Compiled | undefined;
let countTokensChecker: Compiled | undefined;
const checkMessages = (): Compiled => (messagesChecker ??= TypeCompiler.Compile(MessagesSchema));
const checkCountTokens = (): Compiled => (countTokensChecker ??= TypeCompiler.Compile(CountTokensSchema) as unknown as Compiled);
const utf8 = new TextDecoder('utf-8');

/** No model has an output limit anywhere near this; a bigger number is a client bug. */
const MAX_TOKENS_CEILING = 2_147_483_647;

export function tooLarge(limit: number): ApiError {
  return new ApiError('request_too_large', `request body exceeds the ${limit} byte limit`);
}

function isJsonContentType(ct: string): boolean {
  const mime = (ct.split(';', 1)[0] ?? '').trim().toLowerCase();
  return mime === 'application/json' || (mime.startsWith('application/') && mime.endsWith('+json'));
}

/** A body that stopped arriving: the client closed the connection (it hears nothing; the log says 499). */
function bodyCut(): never {
  throw new ApiError('invalid_request_error', 'the connection closed before the request body was whole');
}

async function readCapped(body: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read().catch(bodyCut);
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      reader.cancel().catch(() => {});
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/**
 * Reads a JSON request body's bytes. 413 over `limit` (content-length first, then the bytes
 * actually read); 400 for a non-JSON content type (a missing one is tolerated).
 */
export async function readBodyBytes(request: Request, limit: number): Promise<Uint8Array> {
  const ct = request.headers.get('content-type');
  if (ct && !isJsonContentType(ct)) {
    throw new ApiError('invalid_request_error', `content-type must be application/json, got "${ct.slice(0, 100)}"`);
  }
  return readLimitedBytes(request, limit);
}

/** A request body's bytes, of any content type: 413 over `limit` (content-length first, then the bytes read). */
export async function readLimitedBytes(request: Request, limit: number): Promise<Uint8Array> {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) throw tooLarge(limit);

  if (!request.body) return new Uint8Array(0);
  if (declared !== null) {
    // A declared length is enforced by the server, so the whole body can be taken in one go.
    const bytes = new Uint8Array(await request.arrayBuffer().catch(bodyCut));
    if (bytes.byteLength > limit) throw tooLarge(limit);
    return bytes;
  }
  return readCapped(request.body, limit);
}

/** Parses body bytes as JSON: 400 for non-UTF-8 bytes, an empty body or malformed JSON. */
export function parseJsonBytes(bytes: Uint8Array): unknown {
  return parseWith(bytes, (b) => JSON.parse(utf8.decode(b)), (s) => s);
}

/**
 * parseJsonBytes, with every string of the result a byte string (anthropic/byte-strings.ts): the
 * /v1/messages body, which goes upstream.
 */
export function parseJsonByteStrings(bytes: Uint8Array): unknown {
  // The parser may quote a piece of the body: a byte string, made text again for the message.
  return parseWith(bytes, parseJsonAsByteStrings, fromByteString);
}

function parseWith(bytes: Uint8Array, parse: (bytes: Uint8Array) => unknown, quoted: (s: string) => string): unknown {
  if (!isUtf8(bytes)) throw new ApiError('invalid_request_error', 'request body is not valid UTF-8');
  try {
    return parse(bytes);
  } catch (err) {
    if (utf8.decode(bytes).trim() === '') throw new ApiError('invalid_request_error', 'request body is empty; expected a JSON object');
    throw new ApiError('invalid_request_error', `request body is not valid JSON: ${quoted((err as Error).message)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Naming the first problem. Only runs on bodies the compiled check already refused.

type S = TSchema & { [k: string]: unknown };

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function join(path: string, key: string | number): string {
  return path ? `${path}.${key}` : String(key);
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}...` : v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : String(v);
}

function kindName(s: S): string {
  switch (s[Kind]) {
    case 'String':
    case 'Literal':
      return 'a string';
    case 'Array':
      return 'an array';
    case 'Object':
      return 'an object';
    case 'Integer':
      return 'an integer';
    case 'Number':
      return 'a number';
    case 'Boolean':
      return 'a boolean';
    case 'Null':
      return 'null';
    default:
      return 'a valid value';
  }
}

function fitsKind(s: S, v: unknown): boolean {
  switch (s[Kind]) {
    case 'String':
      return typeof v === 'string';
    case 'Literal':
      return typeof v === typeof s.const;
    case 'Array':
      return Array.isArray(v);
    case 'Object':
      return isObj(v);
    case 'Integer':
    case 'Number':
      return typeof v === 'number';
    case 'Boolean':
      return typeof v === 'boolean';
    case 'Null':
      return v === null;
    default:
      return true;
  }
}

/** The literal values of an object variant's `type` property, if it is discriminated by one. */
function typeLiterals(s: S): unknown[] | null {
  if (s[Kind] !== 'Object') return null;
  const t = (s.properties as Record<string, S> | undefined)?.type;
  if (!t) return null;
  if (t[Kind] === 'Literal') return [t.const];
  if (t[Kind] === 'Union' && (t.anyOf as S[]).every((x) => x[Kind] === 'Literal')) return (t.anyOf as S[]).map((x) => x.const);
  return null;
}

function listOr(items: string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}

/** Value.Check without its type guard (which would narrow `unknown` to never on the false branch). */
function passes(s: S, v: unknown): boolean {
  return Value.Check(s, v);
}

function explainUnion(s: S, v: unknown, path: string): string | null {
  if (passes(s, v)) return null;
  const variants = s.anyOf as S[];
  // Union of literals (role, tool_choice.type…).
  if (variants.every((x) => x[Kind] === 'Literal')) {
    const allowed = variants.map((x) => JSON.stringify(x.const));
    const what = path.endsWith('.role') || path === 'role' ? 'unknown role' : 'invalid value';
    return `${path}: ${what} ${show(v)} (expected ${listOr(allowed)})`;
  }
  // Object variants told apart by `type` (content blocks, thinking, image source…).
  const objs = variants.filter((x) => x[Kind] === 'Object');
  const lits = objs.map(typeLiterals);
  if (isObj(v) && objs.length > 1 && lits.every((l) => l !== null)) {
    const t = v.type;
    if (t === undefined) return `${join(path, 'type')}: field required`;
    const match = objs.find((_, i) => lits[i]!.includes(t));
    if (match) return explain(match, v, path);
    const all = lits.flat();
    const noun = all.includes('tool_use') && all.includes('text') ? 'block type' : 'type';
    if (typeof t !== 'string') return `${join(path, 'type')}: expected a string`;
    return `${join(path, 'type')}: unknown ${noun} ${show(t)}`;
  }
  // Different shapes (string or array of blocks…): descend into the one the value looks like.
  const fit = variants.filter((x) => fitsKind(x, v));
  if (fit.length === 1) return explain(fit[0]!, v, path);
  const names = [...new Set(variants.map(kindName))];
  return `${path}: expected ${listOr(names)}, got ${show(v)}`;
}

function explain(s: S, v: unknown, path: string): string | null {
  switch (s[Kind]) {
    case 'Object': {
      if (!isObj(v)) return `${path || 'request body'}: expected an object, got ${show(v)}`;
      for (const key of (s.required as string[] | undefined) ?? []) {
        if (v[key] === undefined) return `${join(path, key)}: field required`;
      }
      const props = (s.properties ?? {}) as Record<string, S>;
      for (const [key, ps] of Object.entries(props)) {
        if (v[key] === undefined) continue;
        const r = explain(ps, v[key], join(path, key));
        if (r) return r;
      }
      return null;
    }
    case 'Array': {
      if (!Array.isArray(v)) return `${path}: expected an array, got ${show(v)}`;
      const item = s.items as S;
      for (let i = 0; i < v.length; i++) {
        const r = explain(item, v[i], join(path, i));
        if (r) return r;
      }
      return null;
    }
    case 'Union':
      return explainUnion(s, v, path);
    case 'Literal':
      return v === s.const ? null : `${path}: expected ${JSON.stringify(s.const)}, got ${show(v)}`;
    case 'String':
      if (typeof v !== 'string') return `${path}: expected a string, got ${show(v)}`;
      if (typeof s.minLength === 'number' && v.length < s.minLength) return `${path}: must not be empty`;
      return null;
    case 'Integer':
    case 'Number': {
      const int = s[Kind] === 'Integer';
      if (typeof v !== 'number' || !Number.isFinite(v) || (int && !Number.isInteger(v))) {
        return `${path}: expected ${int ? 'an integer' : 'a number'}, got ${show(v)}`;
      }
      if (typeof s.minimum === 'number' && v < s.minimum) return `${path}: must be >= ${s.minimum}, got ${v}`;
      if (typeof s.maximum === 'number' && v > s.maximum) return `${path}: must be <= ${s.maximum}, got ${v}`;
      return null;
    }
    case 'Boolean':
      return typeof v === 'boolean' ? null : `${path}: expected a boolean, got ${show(v)}`;
    default:
      return passes(s, v) ? null : `${path}: invalid value`;
  }
}

function schemaError(schema: S, compiled: { Errors(v: unknown): { First(): { path: string; message: string } | undefined } }, body: unknown): ApiError {
  let msg = explain(schema, body, '');
  if (!msg) {
    const first = compiled.Errors(body).First();
    msg = first ? `${first.path.slice(1).replaceAll('/', '.') || 'request body'}: ${first.message}` : 'invalid request body';
  }
  return new ApiError('invalid_request_error', msg);
}

// ---------------------------------------------------------------------------------------------
// Rules the schema cannot say.

/** The image types the Messages API takes (§2.3); anything else would fail upstream as a 400 anyway. */
const IMAGE_TYPES: ReadonlySet<string> = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp']);
/** Base64 alphabet, padding only at the end; whitespace tolerated (some clients wrap lines). */
const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

/** Whether `s` reads as base64 (whitespace allowed, as the API allows it). */
export function isBase64(s: string): boolean {
  return BASE64.test(s);
}
/** Real tool schemas nest a dozen levels; far deeper is an attack on recursive schema rewriters. */
const MAX_SCHEMA_DEPTH = 64;

/** A problem with a base64 image source at `where`, or null. Images inside tool results count too. */
function imageError(block: Record<string, unknown>, where: string): string | null {
  const src = block.source as Record<string, unknown>;
  if (src.type !== 'base64') return null;
  const mt = src.media_type as string;
  if (!IMAGE_TYPES.has(mt)) {
    return `${where}.source.media_type: unsupported image type ${show(mt)} (expected image/jpeg, image/png, image/gif or image/webp)`;
  }
  const data = src.data as string;
  if (data.length === 0) return `${where}.source.data: must not be empty`;
  if (!BASE64.test(data)) return `${where}.source.data: invalid base64 data`;
  return null;
}

/**
 * True when `v` nests objects/arrays `max` levels deep or more. Recursion is bounded by `max`, and
 * nothing is allocated: this runs over every tool schema of every request.
 */
function deeperThan(v: unknown, max: number): boolean {
  if (v === null || typeof v !== 'object') return false;
  if (max <= 0) return true;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (deeperThan(v[i], max - 1)) return true;
    return false;
  }
  const o = v as Record<string, unknown>;
  for (const k in o) if (deeperThan(o[k], max - 1)) return true;
  return false;
}

function semanticError(body: Record<string, unknown>): string | null {
  const messages = body.messages as Array<{ role: string; content: unknown }>;
  if (messages.length === 0) return 'messages: at least one message is required';
  if (typeof body.max_tokens === 'number' && body.max_tokens > MAX_TOKENS_CEILING) {
    return `max_tokens: must be <= ${MAX_TOKENS_CEILING}, got ${body.max_tokens}`;
  }
  if (typeof body.top_k === 'number' && (body.top_k < 0 || body.top_k > MAX_TOKENS_CEILING)) {
    return `top_k: must be between 0 and ${MAX_TOKENS_CEILING}, got ${body.top_k}`;
  }
  const choice = body.tool_choice as { type?: string; name?: unknown } | undefined;
  // Without it the upstream is told "any tool", which is not what the client asked for.
  if (choice?.type === 'tool' && (typeof choice.name !== 'string' || choice.name === '')) {
    return 'tool_choice.name: field required when type is "tool"';
  }
  if (Array.isArray(body.tools)) {
    const tools = body.tools as Array<{ input_schema?: unknown }>;
    for (let i = 0; i < tools.length; i++) {
      if (deeperThan(tools[i]!.input_schema, MAX_SCHEMA_DEPTH)) {
        return `tools.${i}.input_schema: nested deeper than ${MAX_SCHEMA_DEPTH} levels`;
      }
    }
  }
  // Every tool_result must answer a tool_use of the nearest assistant turn before it. Like Anthropic,
  // a run of consecutive assistant messages is one turn (role:"system" messages in between are
  // folded out, so they do not break the run).
  let lastAssistant = -1;
  let runStart = -1;
  let prevRole = '';
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    if (m.role === 'assistant') {
      if (prevRole !== 'assistant') runStart = i;
      lastAssistant = i;
      prevRole = m.role;
      continue;
    }
    if (m.role === 'user') prevRole = m.role;
    if (!Array.isArray(m.content)) continue;
    for (let j = 0; j < m.content.length; j++) {
      const b = m.content[j] as { type: string; tool_use_id?: string; content?: unknown };
      if (b.type === 'image') {
        const problem = imageError(b as Record<string, unknown>, `messages.${i}.content.${j}`);
        if (problem) return problem;
        continue;
      }
      if (b.type !== 'tool_result') continue;
      if (Array.isArray(b.content)) {
        for (let k = 0; k < b.content.length; k++) {
          const part = b.content[k] as Record<string, unknown>;
          if (part.type !== 'image' || part.source === null || typeof part.source !== 'object') continue;
          const s = part.source as Record<string, unknown>;
          if (s.type === 'base64' && (typeof s.media_type !== 'string' || typeof s.data !== 'string')) {
            return `messages.${i}.content.${j}.content.${k}.source: a base64 image needs media_type and data strings`;
          }
          const problem = imageError(part, `messages.${i}.content.${j}.content.${k}`);
          if (problem) return problem;
        }
      }
      if (m.role !== 'user') continue;
      const where = `messages.${i}.content.${j}.tool_use_id`;
      if (lastAssistant < 0) return `${where}: tool_result ${show(b.tool_use_id)} has no preceding assistant message with a tool_use`;
      let found = false;
      for (let a = runStart; a <= lastAssistant && !found; a++) {
        const prev = messages[a]!;
        found =
          prev.role === 'assistant' &&
          Array.isArray(prev.content) &&
          (prev.content as Array<Record<string, unknown> | null>).some(
            (p) => p !== null && typeof p === 'object' && p.type === 'tool_use' && p.id === b.tool_use_id,
          );
      }
      if (!found) {
        const turn = runStart === lastAssistant ? `${lastAssistant}` : `${runStart}-${lastAssistant}`;
        return `${where}: tool_result ${show(b.tool_use_id)} has no matching tool_use in the previous assistant message (messages.${turn})`;
      }
    }
  }
  return null;
}

function validate<T>(schema: S, compiled: Compiled, body: unknown): T {
  if (!isObj(body)) throw new ApiError('invalid_request_error', `request body must be a JSON object, got ${show(body)}`);
  if (!compiled.Check(body)) throw schemaError(schema, compiled, body);
  const problem = semanticError(body);
  if (problem) throw new ApiError('invalid_request_error', problem);
  // The body itself goes on, unknown fields included.
  return body as T;
}

/**
 * mcp holds no conversations: a `thread` (create or continue, where the client sends only the new
 * turn) is refused with the error_code on which the SDK resends the whole conversation without it.
 */
function threadUnsupported(): ApiError {
  return new ApiError('invalid_request_error', 'thread: message threads are not supported here; send the whole conversation without `thread`', {
    details: { error_code: 'thread_unsupported_request' },
  });
}

/**
 * A /v1/messages body of byte strings (parseJsonByteStrings), or an invalid_request_error naming
 * the first problem by path. The model comes back as text: it names things in logs, errors and
 * the usage table, and a provider makes it a byte string again where it goes upstream.
 */
export function validateMessagesRequest(body: unknown): MessagesRequest {
  let req: MessagesRequest;
  try {
    req = validate<MessagesRequest>(MessagesSchema as S, checkMessages(), body);
    if ((req as { thread?: unknown }).thread != null) throw threadUnsupported();
  } catch (err) {
    // The messages are ASCII around the pieces of the body they quote, so the whole is a byte string.
    if (err instanceof ApiError) err.message = fromByteString(err.message);
    throw err;
  }
  req.model = fromByteString(req.model);
  return req;
}

const otherCheckers = new WeakMap<TSchema, Compiled>();

/** A body for any other route's schema, checked and explained the same way (compiled on first use). */
export function validateBody<T>(schema: TSchema, body: unknown): T {
  let compiled = otherCheckers.get(schema);
  if (!compiled) otherCheckers.set(schema, (compiled = TypeCompiler.Compile(schema) as unknown as Compiled));
  if (!isObj(body)) throw new ApiError('invalid_request_error', `request body must be a JSON object, got ${show(body)}`);
  if (!compiled.Check(body)) throw schemaError(schema as S, compiled, body);
  return body as T;
}

/** A /v1/messages/count_tokens body: the same rules, max_tokens optional. */
export function validateCountTokensRequest(body: unknown): CountTokensRequest {
  return validate<CountTokensRequest>(CountTokensSchema as S, checkCountTokens(), body);
}
