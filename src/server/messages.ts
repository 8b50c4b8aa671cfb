// POST /v1/messages and /v1/messages/count_tokens. One code path: validate, dispatch (which
// resolves only once the upstream's first event arrived, or throws an ApiError that becomes a real
// HTTP error), then either write the events as SSE or collect them into one Message.
import { Elysia } from 'elysia';
import { ApiError } from '../anthropic/errors.ts';
import { toByteString } from '../anthropic/byte-strings.ts';
import { collectMessage, emptyUsage, type UsageTotals } from '../anthropic/collect.ts';
import { MESSAGE_STOP, messageDelta, messageStart, type AnthropicEvent } from '../anthropic/events.ts';
import type { MessagesRequest } from '../anthropic/schema.ts';
import { estimateInputTokens } from '../anthropic/tokens.ts';
import type { Config } from '../config.ts';
import type { Dispatched, DispatchRequest, Gateway } from '../gateway/types.ts';
import { errorResponse, jsonResponse, serverStoppedError, toApiError } from './errors.ts';
import { keyNumberOf } from './auth.ts';
import { sseResponse } from './sse.ts';
import { createTurns, type Turns } from './turns.ts';
import { parseJsonByteStrings, parseJsonBytes, readBodyBytes, validateCountTokensRequest, validateMessagesRequest } from './validate.ts';

/** What one /v1/messages request did, reported once when it fully ended (same fields as the usage store's row). */
export interface RequestRecord {
  /** Start time, epoch ms. */
  ts: number;
  requestId: string;
  /** The model the client asked for ('' when the body never got that far). */
  clientModel: string;
  upstreamModel: string | null;
  accountId: string | null;
  provider: string | null;
  /** HTTP status sent; 499 when the client went away first. A stream that failed after the 200 keeps 200 and sets errorType. */
  status: number;
  latencyMs: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheCreationTokens: number;
  stream: boolean;
  fallbackFrom: string | null;
  failovers: number;
  /** Why earlier attempts failed over, e.g. "acct-2:rate_limited" (log line only). */
  failoverReasons?: string[];
  /** Anthropic error type, or 'client_closed'; null on success. */
  errorType: string | null;
  /** With several keys in PROXY_API_KEY, the position of the one the client sent (log line only). */
  clientKey?: number;
  /**
   * The stream's 200 went out: however it ended, the client had begun to read an answer (metrics
   * only). A stream the server cut at shutdown is recorded as a 503 yet broke after its 200.
   */
  sent200?: boolean;
}

/** Status recorded when the client disconnected before the response was complete (nginx's convention). */
export const CLIENT_CLOSED = 499;

// Headers that are about this hop or carry the proxy's own key: never handed on.
const DROP_HEADERS: ReadonlySet<string> = new Set([
  'x-api-key',
  'authorization',
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'keep-alive',
]);

/** Claude Code (the SDK's beta client) calls /v1/messages?beta=true; Z.AI is called the same way (protocol 3.7). */
const BETA_QUERY = /[?&]beta=true(?:&|#|$)/;

/** Incoming headers (lower-case names) for the gateway, minus hop and client-auth headers. */
export function forwardHeaders(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    if (!DROP_HEADERS.has(name)) out[name] = value;
  });
  return out;
}

const HEADER_CONTROL = /[\u0000-\u001f\u007f]/;

/** A model name as a header value: control characters (CR LF, NUL: refused by Bun, a 500) escaped as JSON does. */
function modelHeader(name: string): string {
  if (HEADER_CONTROL.test(name)) name = JSON.stringify(name).slice(1, -1).replaceAll('\u007f', '\\u007f');
  return toByteString(name);
}

function proxyHeaders(d: Dispatched): Record<string, string> {
  // Model names are any text (a claude-* name Z.AI serves, a MODEL_MAP alias); a header value must
  // be bytes, and one beyond Latin-1 made the finished answer a 500. Sent as UTF-8 bytes instead.
  const h: Record<string, string> = {
    'x-proxy-account': d.accountId,
    'x-proxy-upstream-model': modelHeader(d.upstreamModel),
  };
  if (d.fallbackFrom) h['x-proxy-fallback-from'] = modelHeader(d.fallbackFrom);
  return h;
}

/** A record of a request that has not got anywhere yet. */
export function newRequestRecord(requestId: string, clientModel = '', clientKey?: number): RequestRecord {
  const rec: RequestRecord = {
    ts: Date.now(),
    requestId,
    clientModel,
    upstreamModel: null,
    accountId: null,
    provider: null,
    status: 0,
    latencyMs: 0,
    inputTokens: 0,
    outputTokens: 0,
    cacheReadTokens: 0,
    cacheCreationTokens: 0,
    stream: false,
    fallbackFrom: null,
    failovers: 0,
    errorType: null,
  };
  if (clientKey) rec.clientKey = clientKey;
  return rec;
}

/**
 * The gateway's onAttempt for a record: a request that fails in the end still names who answered it
 * last, the fallback it was on, and the failovers on the way (usage, the access log).
 */
export function attemptNoter(rec: RequestRecord): NonNullable<DispatchRequest['onAttempt']> {
  return (a) => {
    rec.accountId = a.accountId;
    rec.provider = a.provider;
    rec.upstreamModel = a.upstreamModel;
    rec.fallbackFrom = a.fallbackFrom;
    rec.failovers = a.failovers;
    if (a.failoverReasons.length) rec.failoverReasons = [...a.failoverReasons];
  };
}

/** Who served: the account, provider and model the gateway chose, and the failovers on the way. */
export function noteDispatch(rec: RequestRecord, d: Dispatched): void {
  rec.accountId = d.accountId;
  rec.provider = d.provider;
  rec.upstreamModel = d.upstreamModel;
  rec.fallbackFrom = d.fallbackFrom;
  rec.failovers = d.failovers;
  if (d.failoverReasons?.length) rec.failoverReasons = d.failoverReasons;
}

function copyUsage(rec: RequestRecord, u: UsageTotals): void {
  rec.inputTokens = u.inputTokens;
  rec.outputTokens = u.outputTokens;
  rec.cacheReadTokens = u.cacheReadTokens;
  rec.cacheCreationTokens = u.cacheCreationTokens;
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

export interface MessagesDeps {
  config: Config;
  gateway: Gateway;
  /** Called once per /v1/messages request when it has fully ended. */
  done(record: RequestRecord): void;
  /** Request starts in a burst take turns with the streams already running (turns.ts); none: start at once. */
  turns?: Turns;
  /**
   * Aborted when the server stops and its shutdown grace is over: what is still running ends with a
   * clean error (a 529, or an `error` event in a stream), not a cut connection.
   */
  stopping?: AbortSignal;
  /** Aborted when the server begins to stop (DispatchRequest.draining). */
  draining?: AbortSignal;
}

/** How a request still running when the shutdown grace is over is recorded (usage, metrics). */
export const SERVER_STOPPED = 'server_stopped';


export interface ServerLike {
  timeout(request: Request, seconds: number): void;
}

export async function handleMessages(
  deps: MessagesDeps,
  request: Request,
  requestId: string,
  server: ServerLike | null,
): Promise<Response> {
  const t0 = performance.now();
  // The socket may sit silent while the upstream thinks (non-streaming) or between pings; the
  // server-wide idle timeout is for idle keep-alive connections, not for work in progress.
  server?.timeout(request, 0);
  // Bun keeps a socket's timeout across its keep-alive requests: once the answer is written the
  // connection is idle again, and must be closed after IDLE_TIMEOUT_SEC like any other.
  const idleAgain = (): void => restoreIdleTimeout(server, request, deps.config.idleTimeoutSec);
  const rec = newRequestRecord(requestId, '', keyNumberOf(request));
  const finish = (status: number, errorType: string | null): void => {
    rec.status = status;
    rec.errorType = errorType;
    rec.latencyMs = Math.round(performance.now() - t0);
    deps.done(rec);
  };

  const abort = new AbortController();
  const onClientGone = (): void => abort.abort();
  request.signal.addEventListener('abort', onClientGone, { once: true });
  let stopped = false;
  const onStop = (): void => {
    stopped = true;
    abort.abort();
  };
  deps.stopping?.addEventListener('abort', onStop, { once: true });
  const unlisten = (): void => {
    request.signal.removeEventListener('abort', onClientGone);
    deps.stopping?.removeEventListener('abort', onStop);
  };
  // WRITE_TIMEOUT_SEC bounds the whole answer (waits for a reset, failovers, the stream itself). A
  // client that says it waits longer (Claude Code's API_TIMEOUT_MS, e.g. Z.AI's advised 50 min for
  // slow GLM answers) is not cut short by the proxy in the middle of a long answer.
  const clientSec = clientTimeoutSec(request.headers.get('x-stainless-timeout'));
  const writeTimeoutSec = Math.max(deps.config.writeTimeoutSec, clientSec);
  const writeDeadline = t0 + writeTimeoutSec * 1000;
  let timedOut = false;
  let deadline: ReturnType<typeof setTimeout> | undefined;
  try {
    const bytes = await readBodyInTime(request, deps.config);
    // The work of a start (JSON, validation, the upstream call) waits for its turn in a burst.
    const turn = deps.turns?.take();
    if (turn) {
      await turn;
      // Gone while it waited: nothing is asked upstream for it.
      if (abort.signal.aborted) throw new ApiError('api_error', 'client closed the request');
    }
    const body = validateMessagesRequest(parseJsonByteStrings(bytes));
    deadline = setTimeout(() => {
      timedOut = true;
      abort.abort();
    }, writeDeadline - performance.now());
    rec.clientModel = body.model;
    rec.stream = body.stream === true;
    const local = body.max_tokens === 0;
    const d = local
      ? cacheWarmAnswer(body)
      : await deps.gateway.dispatch({
          body,
          requestId,
          headers: forwardHeaders(request.headers),
          ...(BETA_QUERY.test(request.url) ? { beta: true } : {}),
          signal: abort.signal,
          ...(deps.draining ? { draining: deps.draining } : {}),
          ...(clientSec > 0 ? { clientWaitMs: clientSec * 1000 } : {}),
          onAttempt: attemptNoter(rec),
        });
    if (!local) noteDispatch(rec, d);
    const headers: Record<string, string> = local ? {} : proxyHeaders(d);
    headers['request-id'] = requestId;

    if (rec.stream) {
      clearTimeout(deadline);
      // From here the stream itself answers the stop, with an error event.
      deps.stopping?.removeEventListener('abort', onStop);
      const usage = emptyUsage();
      return sseResponse(d.events, {
        pingIntervalMs: deps.config.pingIntervalSec * 1000,
        deadlineMs: writeDeadline - performance.now(),
        deadlineMessage: writeTimeoutMessage(writeTimeoutSec),
        headers,
        abort,
        usage,
        ...(deps.stopping ? { stop: deps.stopping, stopError: serverStoppedError } : {}),
        onEnd: (o) => {
          unlisten();
          idleAgain();
          copyUsage(rec, usage);
          if (o.began) rec.sent200 = true;
          if (o.clientClosed) finish(CLIENT_CLOSED, 'client_closed');
          else if (o.errorType !== null && deps.stopping?.aborted) finish(503, SERVER_STOPPED);
          else finish(200, o.errorType);
        },
      });
    }

    const msg = d.message ?? (await collectMessage(d.events));
    clearTimeout(deadline);
    const u = msg.usage;
    rec.inputTokens = num(u.input_tokens);
    rec.outputTokens = num(u.output_tokens);
    rec.cacheReadTokens = num(u.cache_read_input_tokens);
    rec.cacheCreationTokens = num(u.cache_creation_input_tokens);
    unlisten();
    idleAgain();
    // Gone while the answer was made: it was whole, and nobody took it.
    if (abort.signal.aborted && !timedOut && !stopped) finish(CLIENT_CLOSED, 'client_closed');
    else finish(200, null);
    return jsonResponse(msg, headers);
  } catch (err) {
    clearTimeout(deadline);
    unlisten();
    idleAgain();
    const api = timedOut
      ? new ApiError('timeout_error', writeTimeoutMessage(writeTimeoutSec))
      : stopped && !request.signal.aborted
        ? serverStoppedError()
        : toApiError(err);
    if (stopped && !request.signal.aborted) finish(503, SERVER_STOPPED);
    else if (abort.signal.aborted && !timedOut) finish(CLIENT_CLOSED, 'client_closed');
    else finish(api.status, api.type);
    return errorResponse(api, requestId, undefined, request);
  }
}

/**
 * max_tokens 0 asks Anthropic to fill its prompt cache and generate nothing (the SDK's max_tokens
 * doc). Neither upstream has such a call, and a real one would spend quota on an answer thrown
 * away, so the answer is made here, as Anthropic's would look: no content, stopped at max_tokens,
 * the input as count_tokens estimates it.
 */
function cacheWarmAnswer(body: MessagesRequest): Dispatched {
  const events: AnthropicEvent[] = [
    messageStart(body.model, { input_tokens: estimateInputTokens(body), output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }),
    messageDelta('max_tokens', { output_tokens: 0 }),
    MESSAGE_STOP,
  ];
  return {
    events: (async function* () {
      yield* events;
    })(),
    accountId: '',
    provider: '',
    upstreamModel: body.model,
    fallbackFrom: null,
    failovers: 0,
  };
}

/** The server-wide idle timeout back on the request's socket (it may already be closed: nothing to do then). */
export function restoreIdleTimeout(server: ServerLike | null, request: Request, idleTimeoutSec: number): void {
  try {
    server?.timeout(request, Math.min(255, idleTimeoutSec));
  } catch {
    // the client is gone
  }
}

/** The Stainless SDKs' own request timeout in seconds (0 when absent or not a number); at most a day. */
export function clientTimeoutSec(header: string | null): number {
  const n = header === null ? NaN : Number(header);
  return Number.isFinite(n) && n > 0 ? Math.min(86_400, Math.ceil(n)) : 0;
}

function writeTimeoutMessage(sec: number): string {
  return `the answer took longer than WRITE_TIMEOUT_SEC (${sec}s); the upstream call was stopped`;
}

/** The request body, or a 408 timeout_error once READ_TIMEOUT_SEC has passed without all of it. */
export function readBodyInTime(request: Request, config: Config, read = readBodyBytes): Promise<Uint8Array> {
  const sec = config.readTimeoutSec;
  return withinTime(read(request, config.bodyLimitBytes), sec * 1000, () => {
    return new ApiError('timeout_error', `the request body did not arrive within READ_TIMEOUT_SEC (${sec}s)`, { status: 408, headers: { connection: 'close' } });
  });
}

/** The promise's value, or the error `onTimeout` makes once `ms` have passed. */
async function withinTime<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export async function handleCountTokens(config: Config, request: Request, requestId: string): Promise<Response> {
  try {
    const body = validateCountTokensRequest(parseJsonBytes(await readBodyInTime(request, config)));
    return jsonResponse({ input_tokens: estimateInputTokens(body) });
  } catch (err) {
    return errorResponse(toApiError(err), requestId, undefined, request);
  }
}

/** The request id the app's onRequest hook gave this request. */
export function requestIdOf(set: { headers: Record<string, unknown> }): string {
  return String(set.headers['request-id'] ?? '');
}

export function messageRoutes(deps: MessagesDeps) {
  deps = deps.turns ? deps : { ...deps, turns: createTurns() };
  return new Elysia({ name: 'messages' })
    .post(
      '/v1/messages',
      ({ request, set, server }) => handleMessages(deps, request, requestIdOf(set), server as ServerLike | null),
      { parse: 'none' },
    )
    .post('/v1/messages/count_tokens', ({ request, set }) => handleCountTokens(deps.config, request, requestIdOf(set)), {
      parse: 'none',
    });
}
