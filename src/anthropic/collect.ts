// Events -> one Message: the non-streaming path. Follows the official SDK accumulator
// (MessageStream, SDK 1.12) so a client sees the same message whichever way it asked:
// text/thinking deltas append, signature_delta replaces, input_json_delta is buffered and parsed
// at block stop, message_delta overwrites usage (cumulative totals) and sets stop_reason.
import { ApiError, type ApiErrorType } from './errors.ts';
import type { AnthropicEvent, ContentBlock, Message, Usage } from './events.ts';

const ERROR_TYPES: ReadonlySet<string> = new Set<ApiErrorType>([
  'invalid_request_error',
  'authentication_error',
  'billing_error',
  'permission_error',
  'not_found_error',
  'request_too_large',
  'rate_limit_error',
  'api_error',
  'timeout_error',
  'overloaded_error',
]);

/** A valid Anthropic error type for an error event / envelope; anything unknown becomes api_error. */
export function errorTypeOf(type: unknown): ApiErrorType {
  return typeof type === 'string' && ERROR_TYPES.has(type) ? (type as ApiErrorType) : 'api_error';
}

/** The token counts of one response, as the usage store wants them. */
export interface UsageTotals {
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheCreationTokens: number;
}

export function emptyUsage(): UsageTotals {
  return { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheCreationTokens: 0 };
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/**
 * Folds one event's usage into running totals. message_start sets them; message_delta carries
 * cumulative totals, so present fields overwrite (never add). Cheap enough for every streamed event.
 */
export function trackUsage(totals: UsageTotals, ev: AnthropicEvent): void {
  let u: Partial<Usage> | undefined;
  if (ev.type === 'message_start') u = ev.message?.usage;
  else if (ev.type === 'message_delta') u = ev.usage;
  else return;
  if (!u) return;
  const i = num(u.input_tokens);
  const o = num(u.output_tokens);
  const r = num(u.cache_read_input_tokens);
  const c = num(u.cache_creation_input_tokens);
  if (i !== undefined) totals.inputTokens = i;
  if (o !== undefined) totals.outputTokens = o;
  if (r !== undefined) totals.cacheReadTokens = r;
  if (c !== undefined) totals.cacheCreationTokens = c;
}

/** Characters of model output a content_block_delta carries (text, thinking, tool input); 0 for other events. */
export function outputChars(ev: AnthropicEvent): number {
  if (ev.type !== 'content_block_delta') return 0;
  const d = ev.delta as { text?: unknown; thinking?: unknown; partial_json?: unknown };
  const v = d.text ?? d.thinking ?? d.partial_json;
  return typeof v === 'string' ? v.length : 0;
}

/**
 * The output tokens of a stream cut before its message_delta (the only place upstreams give the
 * real count): about four characters a token, as count_tokens estimates. Never below what the
 * upstream already said.
 */
export function estimateCutOutput(totals: UsageTotals, chars: number): void {
  totals.outputTokens = Math.max(totals.outputTokens, Math.ceil(chars / 4));
}

const JSON_INPUT_BLOCKS: ReadonlySet<string> = new Set(['tool_use', 'server_tool_use', 'mcp_tool_use']);

/** What the upstream got wrong in an answer is a bad gateway (retryable), not the proxy's own 500. */
const UPSTREAM_FAULT = { status: 502 } as const;

/** Tried from the end: how far back a cut JSON text is searched for a whole prefix. */
const MAX_CUTS = 64;

/**
 * The value of JSON text cut off at its end (max_tokens), as far as it is whole: an open string is
 * closed, else the text is cut back before the last `,` or after the last `{`/`[` and whatever is
 * open is closed. undefined when nothing parses (not even `{}`).
 */
export function parsePartialJson(text: string): unknown {
  // Points where the text may be cut, with the closers then due.
  const cuts: Array<{ at: number; closers: string }> = [];
  const stack: string[] = [];
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      stack.push(c === '{' ? '}' : ']');
      cuts.push({ at: i + 1, closers: stack.slice().reverse().join('') });
    } else if (c === '}' || c === ']') stack.pop();
    else if (c === ',') cuts.push({ at: i, closers: stack.slice().reverse().join('') });
  }
  const closers = stack.slice().reverse().join('');
  const tries = [(inString && !escaped ? `${text}"` : text) + closers];
  for (let k = cuts.length - 1; k >= 0 && tries.length <= MAX_CUTS; k--) tries.push(text.slice(0, cuts[k]!.at) + cuts[k]!.closers);
  for (const t of tries) {
    try {
      return JSON.parse(t);
    } catch {
      // cut further back
    }
  }
  return undefined;
}

function parseToolInput(buf: string, index: number, cut: boolean): unknown {
  if (buf.trim() === '') return {};
  try {
    return JSON.parse(buf);
  } catch {
    // An answer cut by max_tokens ends inside the input: the SDK shows a streaming client the
    // whole part of it (partial JSON parsing), so the collected answer has the same.
    const partial = cut ? parsePartialJson(buf) : undefined;
    if (partial && typeof partial === 'object' && !Array.isArray(partial)) return partial;
    if (cut) return {};
    throw new ApiError('api_error', `upstream sent invalid tool input JSON for content block ${index}`, UPSTREAM_FAULT);
  }
}

/**
 * Drains the stream into one Message. An `error` event, a thrown error, or a stream with no
 * message_start becomes an ApiError. Stops reading at message_stop.
 */
export async function collectMessage(events: AsyncIterable<AnthropicEvent>): Promise<Message> {
  let msg: Message | null = null;
  let stopped = false;
  // Partial tool input JSON by block index, parsed at content_block_stop.
  const jsonBufs = new Map<number, string>();

  // Tool input that did not parse at its block's stop: whether the answer was cut (max_tokens) is
  // only known from the message_delta that follows.
  const unparsed = new Map<number, string>();

  const finishBlock = (index: number): void => {
    const buf = jsonBufs.get(index);
    if (buf === undefined || !msg) return;
    jsonBufs.delete(index);
    const block = msg.content[index];
    if (!block) return;
    try {
      (block as Record<string, unknown>).input = parseToolInput(buf, index, false);
    } catch {
      unparsed.set(index, buf);
    }
  };

  try {
    for await (const ev of events) {
      switch (ev.type) {
        case 'message_start': {
          if (msg && !stopped) {
            throw new ApiError('api_error', 'upstream sent message_start twice (unexpected event order)', UPSTREAM_FAULT);
          }
          const m = ev.message;
          msg = { ...m, content: [], usage: { ...(m.usage ?? { input_tokens: 0, output_tokens: 0 }) } };
          stopped = false;
          break;
        }
        case 'content_block_start': {
          if (!msg) break;
          const block = { ...ev.content_block } as ContentBlock;
          msg.content.push(block);
          if (JSON_INPUT_BLOCKS.has(block.type)) jsonBufs.set(msg.content.length - 1, '');
          break;
        }
        case 'content_block_delta': {
          if (!msg) break;
          const block = msg.content[ev.index] as Record<string, unknown> | undefined;
          if (!block) break;
          const d = ev.delta as Record<string, unknown>;
          // A delta that does not match its block's type is dropped, as the SDK does.
          switch (d.type) {
            case 'text_delta':
              if (block.type === 'text') block.text = String(block.text ?? '') + String(d.text ?? '');
              break;
            case 'citations_delta':
              if (block.type === 'text') {
                const list = Array.isArray(block.citations) ? block.citations : [];
                list.push(d.citation);
                block.citations = list;
              }
              break;
            case 'thinking_delta':
              if (block.type === 'thinking') block.thinking = String(block.thinking ?? '') + String(d.thinking ?? '');
              break;
            case 'signature_delta':
              if (block.type === 'thinking') block.signature = String(d.signature ?? '');
              break;
            case 'input_json_delta': {
              const buf = jsonBufs.get(ev.index);
              if (buf !== undefined) jsonBufs.set(ev.index, buf + String(d.partial_json ?? ''));
              break;
            }
          }
          break;
        }
        case 'content_block_stop':
          finishBlock(ev.index);
          break;
        case 'message_delta': {
          if (!msg) break;
          const delta = ev.delta ?? ({} as Record<string, unknown>);
          for (const [k, v] of Object.entries(delta)) if (v !== undefined) (msg as Record<string, unknown>)[k] = v;
          const u = ev.usage as Record<string, unknown> | undefined;
          if (u) for (const [k, v] of Object.entries(u)) if (v !== undefined && v !== null) msg.usage[k] = v;
          break;
        }
        case 'message_stop':
          stopped = true;
          break;
        case 'error': {
          const e = ev.error ?? { type: 'api_error', message: 'upstream error' };
          throw new ApiError(errorTypeOf(e.type), String(e.message ?? 'upstream error'));
        }
        default:
          break; // ping and unknown events
      }
      if (stopped) break;
    }
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw new ApiError('api_error', 'upstream stream failed before the message was complete', UPSTREAM_FAULT);
  }
  if (!msg) throw new ApiError('api_error', 'upstream ended without sending a message', UPSTREAM_FAULT);
  // A stream that ended without content_block_stop still yields parsed tool input.
  for (const index of [...jsonBufs.keys()]) finishBlock(index);
  const m: Message = msg;
  const cut = m.stop_reason === 'max_tokens';
  for (const [index, buf] of unparsed) (m.content[index] as Record<string, unknown>).input = parseToolInput(buf, index, cut);
  return m;
}
