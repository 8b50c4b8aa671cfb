// HTTP to Z.AI: one streamed Messages call read incrementally (events are yielded as they arrive,
// never after the whole body), and small authenticated GETs for models and quota. Every failure
// leaves here as an UpstreamError; the API key never appears in a message.
import type { AnthropicEvent } from '../../anthropic/events.ts';
import type { MessagesRequest } from '../../anthropic/schema.ts';
import { createJsonTextUnfence, jsonSchemaOf } from '../../anthropic/structured-output.ts';
import { VERSION } from '../../version.ts';
import { UpstreamError, type SendContext } from '../provider.ts';
import { upstreamCall, type HttpClientKind, type UpstreamResponse } from '../upstream-call.ts';
import { classifyZaiError } from './errors.ts';
import { toZaiBody, zaiHeaders } from './request.ts';
import { createSseDecoder } from './sse.ts';
import { createStreamRepair, messageToEvents } from './stream.ts';

export interface ZaiClientOptions {
  baseUrl: string;
  /** Abandon the upstream after this long without a byte (before headers or between chunks). */
  idleTimeoutMs: number;
  now: () => number;
  /** Default `fetch`; serve passes UPSTREAM_HTTP_CLIENT (upstream-call.ts). */
  httpClient?: HttpClientKind;
  /** ZAI_STRIP_BETAS: no anthropic-beta header upstream. */
  stripBetas?: boolean;
  /** Told each thinking signature the answer carries (the provider remembers what it issued). */
  onSignature?: (signature: string) => void;
  /** Told the text of each thinking block the answer carries without a signature. */
  onUnsignedThinking?: (thinking: string) => void;
  /** Whether an unsigned thinking block of the history is one Z.AI streamed (kept), not another's. */
  ownUnsignedThinking?: (thinking: string) => boolean;
}

/** Bounded wait for the small JSON endpoints (models, quota). */
const GET_TIMEOUT_MS = 15_000;

function scrub(text: string, secret: string): string {
  return secret && text.includes(secret) ? text.split(secret).join('***') : text;
}

function networkError(err: unknown, secret: string): UpstreamError {
  const e = err as { code?: unknown; message?: unknown };
  const what = typeof e?.code === 'string' ? e.code : typeof e?.message === 'string' ? e.message : 'network error';
  return new UpstreamError('transient', `Z.AI connection failed: ${scrub(what, secret)}`, { status: 0, cause: err });
}

function parseData(data: string, started: boolean): Record<string, unknown> {
  try {
    const v = JSON.parse(data) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new UpstreamError('transient', `Z.AI sent a malformed data line${started ? ' mid-stream' : ''}`);
}

/**
 * One POST /v1/messages, always streamed upstream. Yields repaired Anthropic events as they arrive;
 * throws UpstreamError for HTTP errors, in-stream error events, broken or truncated streams,
 * silence longer than the idle timeout, and client aborts.
 */
export async function* streamMessages(
  opts: ZaiClientOptions,
  req: MessagesRequest,
  ctx: SendContext,
): AsyncGenerator<AnthropicEvent> {
  const creds = ctx.account.credentials;
  if (creds.kind !== 'api_key') throw new UpstreamError('invalid_account', 'Z.AI accounts need an API key', { scope: 'account' });
  const key = creds.apiKey;

  const watchdog = new AbortController();
  const signal = AbortSignal.any([ctx.signal, watchdog.signal]);
  // The watchdog measures the upstream's silence: while an event waits on a slow client no read is
  // pending, so the timer only re-arms.
  let reading = true;
  const timer = setTimeout(() => (reading ? watchdog.abort() : timer.refresh()), opts.idleTimeoutMs);
  const whyStopped = (err: unknown): UpstreamError => {
    if (ctx.signal.aborted) return new UpstreamError('transient', 'request aborted by the client', { cause: err });
    if (watchdog.signal.aborted) {
      return new UpstreamError('transient', `Z.AI sent nothing for ${Math.round(opts.idleTimeoutMs / 1000)}s`, { cause: err });
    }
    return err instanceof UpstreamError ? err : networkError(err, key);
  };

  // Written out before the call: a request too deep to serialize is the client's problem, not a
  // connection failure (the gateway answers it with a 400).
  // The client's byte strings, passed on byte for byte (anthropic/byte-strings.ts).
  const body = JSON.stringify(toZaiBody(req, ctx.model, opts.ownUnsignedThinking));
  let res: UpstreamResponse | null = null;
  let eof = false;
  try {
    try {
      // The key keys the native pool: connections are never shared between accounts.
      // `?beta=true` kept as Claude Code sends it to Z.AI itself (protocol 3.7): its traffic is treated well.
      res = await upstreamCall(opts.httpClient ?? 'fetch', `${opts.baseUrl}/v1/messages${ctx.beta ? '?beta=true' : ''}`, {
        method: 'POST',
        headers: zaiHeaders(key, ctx, { stripBetas: opts.stripBetas }),
        body,
        latin1: true,
        signal,
        poolKey: key,
      });
    } catch (err) {
      throw whyStopped(err);
    }
    timer.refresh();

    if (!res.ok) {
      let text = '';
      try {
        text = await res.text();
      } catch (err) {
        throw whyStopped(err);
      }
      eof = true;
      throw classifyZaiError(res.status, text, res.headers, opts.now(), key);
    }

    const onSignature = opts.onSignature;
    const onUnsigned = opts.onUnsignedThinking;
    // The open thinking block's text, until a signature comes for it: Z.AI may not sign its thinking.
    let thinking: { index: number; text: string; signed: boolean } | null = null;
    const noted = (o: AnthropicEvent): AnthropicEvent => {
      if (o.type === 'content_block_delta') {
        if (o.delta.type === 'signature_delta' && typeof o.delta.signature === 'string') {
          onSignature?.(o.delta.signature);
          if (thinking?.index === o.index && o.delta.signature) thinking.signed = true;
        } else if (o.delta.type === 'thinking_delta' && thinking?.index === o.index) {
          thinking.text += String(o.delta.thinking ?? '');
        }
      } else if (o.type === 'content_block_start') {
        const b = o.content_block as { type: string; thinking?: unknown };
        thinking = onUnsigned && b.type === 'thinking' ? { index: o.index, text: typeof b.thinking === 'string' ? b.thinking : '', signed: false } : null;
      } else if (o.type === 'content_block_stop' && thinking?.index === o.index) {
        if (!thinking.signed && thinking.text) onUnsigned?.(thinking.text);
        thinking = null;
      }
      return o;
    };
    const repair = createStreamRepair(ctx.clientModel, { singleToolCall: req.tool_choice?.disable_parallel_tool_use === true });
    // Z.AI is asked for structured output in words only (request.ts): a fenced answer is unwrapped.
    const unfence = jsonSchemaOf(req) ? createJsonTextUnfence() : null;
    const fix = (evs: AnthropicEvent[]): AnthropicEvent[] => (unfence ? unfence.feed(evs) : evs);
    const contentType = res.headers.get('content-type') ?? '';

    if (contentType.includes('application/json')) {
      // Z.AI answered a streaming request with one JSON document: a Message or an error.
      let text = '';
      try {
        text = await res.text();
      } catch (err) {
        throw whyStopped(err);
      }
      eof = true;
      const doc = text ? parseData(text, false) : null;
      if (!doc) throw new UpstreamError('transient', 'Z.AI returned an empty response', { status: res.status });
      if (doc.type !== 'message') throw classifyZaiError(res.status, text, res.headers, opts.now(), key);
      for (const ev of messageToEvents(doc)) for (const o of fix(repair.accept(ev))) yield noted(o);
      for (const o of fix(repair.finish())) yield noted(o);
      return;
    }

    const decoder = new TextDecoder();
    const sse = createSseDecoder();
    for (;;) {
      let chunk: Uint8Array | null;
      reading = true;
      timer.refresh();
      try {
        chunk = await res.read();
      } catch (err) {
        throw whyStopped(err);
      }
      reading = false;
      eof = chunk === null;
      const events = chunk === null ? sse.push(decoder.decode()).concat(sse.end()) : sse.push(decoder.decode(chunk, { stream: true }));
      for (const e of events) {
        // OpenAI's end marker, which the seed proxy drops too (protocol 3.6): the end of input decides.
        if (e.data === '[DONE]') continue;
        const ev = parseData(e.data, repair.started);
        // Anthropic's `event: error`, or Z.AI's native `{"error":{code,message}}` with no type at all.
        if (ev.type === 'error' || e.event === 'error' || (ev.type === undefined && typeof ev.error === 'object' && ev.error !== null)) {
          throw classifyZaiError(200, e.data, res.headers, opts.now(), key);
        }
        const out = fix(repair.accept(ev));
        for (const o of out) yield noted(o);
        if (repair.done) return;
      }
      if (chunk === null) break;
    }
    for (const o of fix(repair.finish())) yield noted(o);
  } finally {
    clearTimeout(timer);
    // Stop reading and free the connection when we return early, fail, or the consumer walks away.
    if (res && !eof) res.cancel();
  }
}

/** GET with the key as Bearer; returns parsed JSON or throws a classified UpstreamError. */
export async function getJson(
  url: string,
  apiKey: string,
  now: () => number,
  signal?: AbortSignal,
  httpClient: HttpClientKind = 'fetch',
): Promise<unknown> {
  const timeout = AbortSignal.timeout(GET_TIMEOUT_MS);
  let res: UpstreamResponse;
  let text: string;
  try {
    res = await upstreamCall(httpClient, url, {
      method: 'GET',
      // fetch would add its own user-agent; the native client sends only what it is given.
      headers: { authorization: `Bearer ${apiKey}`, accept: 'application/json', 'accept-language': 'en-US,en', 'user-agent': `mcp/${VERSION}` },
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      poolKey: apiKey,
    });
    text = await res.text();
  } catch (err) {
    if (timeout.aborted) throw new UpstreamError('transient', 'Z.AI did not answer in time', { cause: err });
    throw networkError(err, apiKey);
  }
  if (!res.ok) throw classifyZaiError(res.status, text, res.headers, now(), apiKey);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UpstreamError('transient', 'Z.AI answered with something that is not JSON', { status: res.status });
  }
}
