// Cloud Code SSE chunks (Gemini GenerateContentResponse, possibly wrapped in {response}) -> one valid
// Anthropic event sequence (protocol §8). Nothing is yielded until the first real content part, so
// an empty upstream answer becomes a retryable error before the client has seen a byte (§8.4).
// A blocked or budget-exhausted answer is not "empty": it is final, and ends as a message.
import {
  blockDelta,
  blockStart,
  blockStop,
  MESSAGE_STOP,
  messageDelta,
  messageStart,
  newMessageId,
  newToolUseId,
  type AnthropicEvent,
  type StopReason,
  type Usage,
} from '../../anthropic/events.ts';
import { log } from '../../log.ts';
import { UpstreamError, type ModelFamily } from '../provider.ts';
import { PLACEHOLDER_PROPERTY } from './schema.ts';
import { MIN_SIGNATURE_LENGTH, type SignatureStore } from './signatures.ts';
import { clientToolId } from './tool-ids.ts';

export interface FromGoogleOptions {
  /** The model name the client asked for; echoed in message_start (Claude Code compares it). */
  clientModel: string;
  family: ModelFamily;
  sessionKey: string;
  signatures: SignatureStore;
  messageId?: string;
  /**
   * Whether thought parts become thinking blocks (default true). Off for a client that did not ask
   * for thinking from a model that reasons in the open anyway (GPT-OSS): Anthropic sends none then.
   */
  thoughts?: boolean;
  /**
   * The client set disable_parallel_tool_use: Anthropic then answers with at most one tool call, and
   * Google has no such switch, so calls after the first are dropped (default false).
   */
  singleToolCall?: boolean;
}

type Json = Record<string, unknown>;
type OpenBlock = 'thinking' | 'text' | 'tool_use' | 'image' | null;

// Finish reasons of Google's content filters. The same request gets the same verdict, so these end
// as stop_reason refusal (Anthropic's word for it) instead of an error that is retried and fails over.
const FILTER_FINISH = new Set([
  'SAFETY',
  'RECITATION',
  'BLOCKLIST',
  'PROHIBITED_CONTENT',
  'SPII',
  'IMAGE_SAFETY',
  'IMAGE_PROHIBITED_CONTENT',
  'IMAGE_RECITATION',
]);

/**
 * The translation as a push state machine: feed() each upstream chunk and get the events it
 * completes, end() once the upstream is done. Synchronous, so the provider's one async loop
 * drives it without another generator layer per event.
 */
export interface GoogleTranslator {
  /** Events for one upstream chunk (often none before the first content part). Throws an UpstreamError for an in-stream error. */
  feed(raw: unknown): AnthropicEvent[];
  /**
   * The closing events. A blocked prompt or answer, or MAX_TOKENS spent on thinking, ends as a message
   * with no content; otherwise an answer that never started throws EMPTY_RESPONSE (retryable), and
   * one that started but never got a finishReason throws TRUNCATED_STREAM.
   */
  end(): AnthropicEvent[];
  /** Whether message_start has been produced. */
  started(): boolean;
}

/** Async-iterable form of createGoogleTranslator, for callers holding a chunk stream. */
export async function* fromGoogleStream(chunks: AsyncIterable<unknown>, opts: FromGoogleOptions): AsyncGenerator<AnthropicEvent> {
  const tr = createGoogleTranslator(opts);
  for await (const raw of chunks) {
    const evs = tr.feed(raw);
    if (evs.length > 0) yield* evs;
  }
  yield* tr.end();
}

const NO_EVENTS: AnthropicEvent[] = [];

export function createGoogleTranslator(opts: FromGoogleOptions): GoogleTranslator {
  const { signatures, family } = opts;
  const showThoughts = opts.thoughts !== false;
  const naming = signatures.tools(opts.sessionKey);
  let started = false;
  let index = -1;
  let open: OpenBlock = null;
  let pendingSignature: string | null = null;
  let sawToolCall = false;
  let finishReason: string | null = null;
  // promptFeedback.blockReason: the prompt itself was refused, and no candidate follows.
  let blocked: { reason: string; message: string | null } | null = null;
  const n: TokenCounts = { prompt: 0, candidates: 0, cached: 0, thoughts: 0, total: 0 };
  let out: AnthropicEvent[] = [];

  const start = (): void => {
    if (started) return;
    started = true;
    out.push(messageStart(opts.clientModel, usage(false), opts.messageId ?? newMessageId()));
  };
  const usage = (final: boolean): Usage => ({
    input_tokens: Math.max(0, n.prompt - n.cached),
    // Anthropic counts thinking as output; Google reports it apart (§8.3).
    // Some chunks only carry totalTokenCount; then the output is what the prompt does not explain ([CPA]).
    output_tokens: final ? n.candidates + n.thoughts || Math.max(0, n.total - n.prompt) : 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: n.cached,
  });
  const close = (): void => {
    if (open === null) return;
    if (open === 'thinking' && pendingSignature) out.push(blockDelta(index, { type: 'signature_delta', signature: pendingSignature }));
    pendingSignature = null;
    out.push(blockStop(index));
    open = null;
  };
  const openBlock = (kind: Exclude<OpenBlock, null>, block: Json): void => {
    close();
    index += 1;
    open = kind;
    out.push(blockStart(index, block as never));
  };
  const noteSignature = (sig: string): void => {
    pendingSignature = sig;
    signatures.rememberThinking(sig, family);
  };

  const feed = (raw: unknown): AnthropicEvent[] => {
    const resp = unwrapChunk(raw);
    if (!resp) return NO_EVENTS;
    throwIfStreamError(resp);
    readUsage(resp.usageMetadata, n);
    blocked = blockOf(resp.promptFeedback) ?? blocked;
    const cand = Array.isArray(resp.candidates) ? (resp.candidates[0] as Json | undefined) : undefined;
    const content = isObject(cand?.content) ? cand.content : undefined;
    const parts = Array.isArray(content?.parts) ? (content.parts as unknown[]) : [];

    for (const p of parts) {
      if (!isObject(p)) continue;
      const sig = typeof p.thoughtSignature === 'string' && p.thoughtSignature.length >= MIN_SIGNATURE_LENGTH ? p.thoughtSignature : null;
      const text = typeof p.text === 'string' ? p.text : undefined;

      if (isObject(p.functionCall)) {
        if (sawToolCall && opts.singleToolCall) continue;
        const fc = p.functionCall;
        start();
        // An id the client could not send back (to Anthropic's pattern) is made one it can.
        const id = typeof fc.id === 'string' && fc.id ? clientToolId(fc.id) : newToolUseId();
        const upstreamName = typeof fc.name === 'string' ? fc.name : '';
        let args: Json = isObject(fc.args) ? fc.args : {};
        if (naming?.placeholders.has(upstreamName) && PLACEHOLDER_PROPERTY in args) {
          // The property exists only to satisfy VALIDATED mode; the client's tool never declared it.
          const { [PLACEHOLDER_PROPERTY]: _drop, ...rest } = args;
          args = rest;
        }
        const name = naming?.original.get(upstreamName) ?? upstreamName;
        openBlock('tool_use', { type: 'tool_use', id, name, input: {} });
        out.push(blockDelta(index, { type: 'input_json_delta', partial_json: JSON.stringify(args) }));
        // Claude Code drops unknown fields, so the call's signature and name live here until the next turn.
        signatures.rememberToolCall(id, { name: upstreamName, signature: sig, family, ...(fc.id ? {} : { minted: true }) });
        sawToolCall = true;
      } else if (isObject(p.inlineData)) {
        // An image model's drafts while it thinks; only the finished image is the answer.
        if (p.thought === true) continue;
        const d = p.inlineData;
        // Gemini's image models sign each picture and want the signature back when it is history.
        if (sig && typeof d.data === 'string') signatures.rememberImage(d.data, sig);
        start();
        openBlock('image', {
          type: 'image',
          source: { type: 'base64', media_type: typeof d.mimeType === 'string' ? d.mimeType : 'image/png', data: typeof d.data === 'string' ? d.data : '' },
        });
        close();
      } else if (p.thought === true) {
        if ((!text && !sig) || !showThoughts) continue;
        start();
        // A signature ends its thinking block: thought text after one starts the next block.
        if (open !== 'thinking' || (pendingSignature && text)) openBlock('thinking', { type: 'thinking', thinking: '', signature: '' });
        if (sig) noteSignature(sig);
        if (text) out.push(blockDelta(index, { type: 'thinking_delta', thinking: text }));
      } else if (text !== undefined) {
        if (text === '') {
          if (!sig) continue; // Claude's leading and closing empty parts
          // Signature-only part: it belongs to the thinking block in progress (§8.1 fix). With no
          // thinking open it signs an empty thought (unless the client never asked for thinking, and
          // would get a block it cannot use); after visible text it has nothing to sign.
          if (open === 'thinking') noteSignature(sig);
          else if (open === null && showThoughts) {
            start();
            openBlock('thinking', { type: 'thinking', thinking: '', signature: '' });
            noteSignature(sig);
          }
          continue;
        }
        // Whitespace-only deltas are real content (§6.3): never dropped.
        start();
        if (sig && open === 'thinking') noteSignature(sig); // Gemini 3 signs its thinking on the first visible part
        if (open !== 'text') openBlock('text', { type: 'text', text: '' });
        out.push(blockDelta(index, { type: 'text_delta', text }));
      }
    }
    if (typeof cand?.finishReason === 'string') finishReason = cand.finishReason;

    if (out.length === 0) return NO_EVENTS;
    const batch = out;
    out = [];
    return batch;
  };

  const end = (): AnthropicEvent[] => {
    const filtered = isFilterFinish(finishReason);
    // Only an answer with no verdict is worth asking again; a refusal or a spent budget is final.
    if (!started && !blocked && !filtered && finishReason !== 'MAX_TOKENS') {
      // An unsupported language is a verdict on the request: asked again, Gemini says the same.
      if (finishReason === 'LANGUAGE') {
        throw new UpstreamError('bad_request', 'Gemini stopped without an answer: the request is in a language it does not support (finishReason LANGUAGE)', {
          code: 'LANGUAGE',
        });
      }
      // The rest (a malformed function call included, which a second sampling usually gets right) is retried.
      throw new UpstreamError('transient', `empty response from upstream${finishReason ? ` (finishReason ${finishReason})` : ''}`, { code: 'EMPTY_RESPONSE' });
    }
    // Every Cloud Code answer names a finishReason (GPT-OSS one chunk before its usage-only last
    // chunk): content with none was cut short upstream. Ending it as end_turn would pass a partial
    // answer off as whole; after content the server turns this into an error event.
    if (started && finishReason === null && !blocked) {
      throw new UpstreamError('transient', 'Antigravity ended the answer without a finish reason: it was cut short', { code: 'TRUNCATED_STREAM' });
    }
    // A message with no content block is valid Anthropic (and the SDK accumulates it).
    start();
    close();
    let stop: StopReason = 'end_turn';
    // A whole call stays tool_use (Google says STOP after a call, §6.3): its args arrive complete,
    // and a refusal would leave it without the tool_result the next turn must carry.
    if (sawToolCall) stop = 'tool_use';
    else if (blocked || filtered) stop = 'refusal';
    else if (finishReason === 'MAX_TOKENS') stop = 'max_tokens';
    // Any other end than STOP (MALFORMED_FUNCTION_CALL, OTHER, LANGUAGE, UNEXPECTED_TOOL_CALL, the ones Google
    // adds later…) is mapped to end_turn, as every proxy does, but logged: the turn stopped short.
    else if (finishReason !== null && finishReason !== 'STOP') log.warn(`antigravity: finishReason ${finishReason} mapped to end_turn`);
    if (blocked) {
      log.warn(`antigravity: prompt blocked upstream (blockReason ${blocked.reason}${blocked.message ? `: ${blocked.message}` : ''}); stop_reason ${stop}`);
    } else if (filtered) {
      log.warn(`antigravity: answer stopped by an upstream filter (finishReason ${finishReason}); stop_reason ${stop}`);
    }
    const delta = messageDelta(stop, usage(true));
    // Anthropic's refusal details: the verdict survives to whoever reads the message (/v1/images).
    if (stop === 'refusal') {
      delta.delta.stop_details = { type: 'refusal', category: null, explanation: blocked ? promptBlockedText(blocked) : filteredText(finishReason!) };
    }
    out.push(delta);
    out.push(MESSAGE_STOP);
    const batch = out;
    out = [];
    return batch;
  };

  return { feed, end, started: () => started };
}

/** Google's token counts of an answer so far. */
export interface TokenCounts {
  prompt: number;
  candidates: number;
  cached: number;
  thoughts: number;
  total: number;
}

/** A chunk's usageMetadata into running totals: fields a chunk leaves out keep their last value. */
export function readUsage(u: unknown, n: TokenCounts): void {
  if (!isObject(u)) return;
  if (typeof u.promptTokenCount === 'number') n.prompt = u.promptTokenCount;
  if (typeof u.candidatesTokenCount === 'number') n.candidates = u.candidatesTokenCount;
  if (typeof u.cachedContentTokenCount === 'number') n.cached = u.cachedContentTokenCount;
  if (typeof u.thoughtsTokenCount === 'number') n.thoughts = u.thoughtsTokenCount;
  if (typeof u.totalTokenCount === 'number') n.total = u.totalTokenCount;
}

/** The filter behind a finish or block reason, in words (IMAGE_ variants are the same filters). */
function filterName(reason: string): string {
  const r = reason.replace(/^IMAGE_/, '');
  if (r === 'SAFETY') return 'safety filter';
  if (r === 'RECITATION') return 'recitation filter';
  if (r === 'PROHIBITED_CONTENT') return 'prohibited-content filter';
  if (r === 'BLOCKLIST') return 'blocklist';
  if (r === 'SPII') return 'personal-information filter';
  return 'content filter';
}

function filteredText(reason: string): string {
  return `Blocked by Google's ${filterName(reason)} (${reason})`;
}

function promptBlockedText(b: { reason: string; message: string | null }): string {
  return `The prompt was blocked by Google's ${filterName(b.reason)} (${b.reason})${b.message ? `: ${b.message}` : ''}`;
}

/** Whether a finishReason is a content filter's verdict (final: asked again, the answer is the same). */
export function isFilterFinish(reason: unknown): boolean {
  return typeof reason === 'string' && FILTER_FINISH.has(reason);
}

const MAX_BLOCK_MESSAGE = 300;

/** promptFeedback's block verdict, or null when the prompt was not blocked. */
export function blockOf(feedback: unknown): { reason: string; message: string | null } | null {
  if (!isObject(feedback)) return null;
  const reason = feedback.blockReason;
  if (typeof reason !== 'string' || !reason || reason === 'BLOCK_REASON_UNSPECIFIED') return null;
  const m = typeof feedback.blockReasonMessage === 'string' ? feedback.blockReasonMessage.replace(/\s+/g, ' ').trim() : '';
  return { reason, message: m ? m.slice(0, MAX_BLOCK_MESSAGE) : null };
}

/** The GenerateContentResponse of one SSE chunk ({response: …} or bare), or null. */
export function unwrapChunk(raw: unknown): Json | null {
  if (!isObject(raw)) return null;
  if (isObject(raw.response)) return raw.response;
  return raw;
}

/** An error object inside a 200 stream (§8.4) fails the request like an HTTP error would. */
export function throwIfStreamError(resp: Json): void {
  if (!isObject(resp.error)) return;
  const e = resp.error;
  throw new UpstreamError('transient', `upstream error in stream: ${String(e.message ?? e.status ?? 'unknown')}`, {
    status: typeof e.code === 'number' ? e.code : 0,
    code: typeof e.status === 'string' ? e.status : null,
  });
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
