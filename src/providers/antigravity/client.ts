// HTTP to Cloud Code v1internal (protocol §4): the endpoint walk (daily, then prod), the headers,
// small JSON RPCs (loadCodeAssist, onboardUser, fetchAvailableModels) and the streamed generation
// call read incrementally as JSON chunks with an idle watchdog. Every failure leaves as an
// UpstreamError; the access token never appears in a message.
import { log } from '../../log.ts';
import { UpstreamError, type UpstreamErrorKind } from '../provider.ts';
import { upstreamCall, type HttpClientKind, type UpstreamResponse } from '../upstream-call.ts';
import { classifyGoogleError } from './errors.ts';

export interface CloudCodeOptions {
  /** Base URLs tried in order, e.g. https://daily-cloudcode-pa.googleapis.com. */
  endpoints: readonly string[];
  userAgent: string;
  now: () => number;
  /** Default `fetch`; serve passes UPSTREAM_HTTP_CLIENT (upstream-call.ts). */
  httpClient?: HttpClientKind;
}

/** Bounded wait for the small JSON RPCs. */
const RPC_TIMEOUT_MS = 30_000;
/** How much of an event split over data lines is held while it does not parse (signatures make lines long). */
const MAX_PENDING_CHARS = 4 * 1024 * 1024;

export function cloudCodeHeaders(token: string, userAgent: string, stream: boolean, gzip = true): Record<string, string> {
  const h: Record<string, string> = {
    authorization: `Bearer ${token}`,
    'content-type': 'application/json',
    'user-agent': userAgent,
    accept: stream ? 'text/event-stream' : 'application/json',
  };
  if (gzip) h['accept-encoding'] = 'gzip';
  return h;
}

const NOT_JSON = Symbol('not JSON');

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return NOT_JSON;
  }
}

function networkError(err: unknown, where: string): UpstreamError {
  const e = err as { code?: unknown; name?: unknown };
  const what = typeof e?.code === 'string' ? e.code : typeof e?.name === 'string' ? e.name : 'network error';
  return new UpstreamError('transient', `Antigravity connection to ${where} failed: ${what}`, { status: 0, cause: err });
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** 400 and 401 are answers about the request or the token: another host would say the same. */
function stopsTheWalk(status: number): boolean {
  return status === 400 || status === 401 || status === 413 || status === 422;
}

const PREFERENCE: UpstreamErrorKind[] = ['rate_limited', 'quota_exhausted', 'invalid_account', 'no_access', 'capacity', 'not_found', 'auth', 'bad_request', 'transient'];

/** The error to report after every endpoint failed: the most telling one; among limits the soonest reset. */
export function pickError(errors: UpstreamError[]): UpstreamError {
  let best = errors[errors.length - 1]!;
  for (const e of errors) {
    const a = PREFERENCE.indexOf(e.kind);
    const b = PREFERENCE.indexOf(best.kind);
    const limit = e.kind === 'rate_limited' || e.kind === 'quota_exhausted';
    const bestLimit = best.kind === 'rate_limited' || best.kind === 'quota_exhausted';
    if (limit && bestLimit) {
      if (e.resetAt !== null && (best.resetAt === null || e.resetAt < best.resetAt)) best = e;
    } else if (a < b) best = e;
  }
  return best;
}

/**
 * POSTs `/v1internal:<method>` to each endpoint in turn until one answers 2xx. Network errors,
 * 403/404/429/5xx move on; 400/401 stop at once. `signal` aborts everything.
 */
export async function openCall(
  opts: CloudCodeOptions,
  method: string,
  body: string,
  token: string,
  signal: AbortSignal,
  stream: boolean,
  /** `body` is a byte string (anthropic/byte-strings.ts). */
  latin1 = false,
): Promise<UpstreamResponse> {
  const errors: UpstreamError[] = [];
  const query = stream ? '?alt=sse' : '';
  const client = opts.httpClient ?? 'fetch';
  // No gzip on the native client: http1.ts would have to gunzip; identity bodies stream cheaper.
  const headers = cloudCodeHeaders(token, opts.userAgent, stream, client === 'fetch');
  for (const base of opts.endpoints) {
    let res: UpstreamResponse;
    try {
      // Connections are per credential (protocol §4.2): the token keys the pool.
      res = await upstreamCall(client, `${base}/v1internal:${method}${query}`, { method: 'POST', headers, body, latin1, signal, poolKey: token });
    } catch (err) {
      if (signal.aborted) throw err;
      errors.push(networkError(err, hostOf(base)));
      continue;
    }
    if (res.ok) return res;
    let text = '';
    try {
      text = await res.text();
    } catch (err) {
      if (signal.aborted) throw err;
    }
    const e = classifyGoogleError(res.status, text, res.headers, opts.now());
    if (stopsTheWalk(res.status)) throw e;
    log.debug(`antigravity ${method} on ${hostOf(base)}: HTTP ${res.status} ${e.kind}, trying the next endpoint`);
    errors.push(e);
  }
  throw errors.length ? pickError(errors) : new UpstreamError('transient', 'no Antigravity endpoint configured');
}

/** One JSON RPC with the endpoint walk and a bounded wait; returns the parsed answer. */
export async function postJson(
  opts: CloudCodeOptions,
  method: string,
  payload: unknown,
  token: string,
  signal?: AbortSignal,
): Promise<Record<string, unknown>> {
  const timeout = AbortSignal.timeout(RPC_TIMEOUT_MS);
  const all = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let text: string;
  try {
    const res = await openCall(opts, method, JSON.stringify(payload), token, all, false);
    text = await res.text();
  } catch (err) {
    if (err instanceof UpstreamError) throw err;
    if (timeout.aborted) throw new UpstreamError('transient', `Antigravity ${method} did not answer in time`, { cause: err });
    if (signal?.aborted) throw new UpstreamError('transient', 'request aborted by the client', { cause: err });
    throw networkError(err, method);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new UpstreamError('transient', `Antigravity ${method} answered with something that is not a JSON object`);
}

export interface ChunkStream {
  /** Parsed JSON of each SSE `data:` line, in order (built on readBatch; use one or the other). */
  readonly chunks: AsyncGenerator<unknown>;
  /**
   * The chunks parsed from the next read of the body (possibly none), or null at the end. A plain
   * async call per network read, not an async generator per chunk: this is the hot path.
   */
  readBatch(): Promise<unknown[] | null>;
  /** Whether at least one chunk has been handed out. */
  started(): boolean;
  /** Stops the watchdog and frees the connection (idempotent; safe if chunks was never read). */
  close(): void;
}

/**
 * Opens the generation stream and returns its chunks. The idle watchdog covers the wait for headers
 * and every gap between reads; when it fires, or the client aborts, the fetch is cancelled and the
 * iterator throws a transient UpstreamError. Malformed data lines are skipped (§6.1); a data line
 * carrying `{"error":…}` is classified and thrown.
 */
export async function openGenerateStream(
  opts: CloudCodeOptions & { idleTimeoutMs: number },
  body: string,
  token: string,
  clientSignal: AbortSignal,
  /** `body` is a byte string (anthropic/byte-strings.ts). */
  latin1 = false,
): Promise<ChunkStream> {
  // One controller both the client's abort and the idle watchdog fire (AbortSignal.any costs more per request).
  const watchdog = new AbortController();
  const signal = watchdog.signal;
  let idleFired = false;
  // The watchdog measures the upstream's silence: while the consumer holds a batch (a slow client
  // pushing back), no read is pending and the silence is ours, so the timer only re-arms.
  let reading = true;
  const onClientAbort = (): void => watchdog.abort(clientSignal.reason);
  if (clientSignal.aborted) watchdog.abort(clientSignal.reason);
  else clientSignal.addEventListener('abort', onClientAbort, { once: true });
  const timer = setTimeout(() => {
    if (!reading) return void timer.refresh();
    idleFired = true;
    watchdog.abort();
  }, opts.idleTimeoutMs);
  const stopWatch = (): void => {
    clearTimeout(timer);
    clientSignal.removeEventListener('abort', onClientAbort);
  };
  let handedOut = false;
  const whyStopped = (err: unknown): UpstreamError => {
    if (clientSignal.aborted) return new UpstreamError('transient', 'request aborted by the client', { cause: err });
    if (idleFired) {
      const s = Math.round(opts.idleTimeoutMs / 1000);
      return new UpstreamError('transient', `Antigravity sent nothing for ${s}s${handedOut ? ' mid-stream' : ''}`, { code: 'IDLE_TIMEOUT', cause: err });
    }
    return err instanceof UpstreamError ? err : networkError(err, 'the generation stream');
  };

  let res: UpstreamResponse;
  try {
    res = await openCall(opts, 'streamGenerateContent', body, token, signal, true, latin1);
  } catch (err) {
    stopWatch();
    throw whyStopped(err);
  }
  timer.refresh();

  const isJson = (res.headers.get('content-type') ?? '').includes('application/json');
  const decoder = new TextDecoder();
  let eof = false;
  let closed = false;
  let buf = '';
  let scanned = 0;

  // SSE lets one event's data span several data: lines, joined by newlines. Google sends one line per
  // event, so a line is only joined to the ones before it when it does not parse alone.
  let pending = '';
  const dropPending = (): void => {
    if (pending) log.debug('antigravity: skipped a malformed SSE data line');
    pending = '';
  };
  // A plain function, not a generator per line: this runs for every SSE line of every request.
  const parse = (line: string, out: unknown[]): void => {
    if (!line.startsWith('data:')) return;
    const data = line.slice(5).trim();
    if (!data) return;
    let v = pending ? parseJson(`${pending}\n${data}`) : NOT_JSON;
    if (v === NOT_JSON) {
      v = parseJson(data);
      if (v === NOT_JSON) {
        // The start of an event that goes on in the next data line, or a broken line.
        pending = pending ? `${pending}\n${data}` : data;
        if (pending.length > MAX_PENDING_CHARS) dropPending();
        return;
      }
      dropPending(); // the lines before were broken: this one starts a new event
    }
    pending = '';
    const err = (v as { error?: { code?: unknown } } | null)?.error;
    if (err && typeof err === 'object') {
      const status = typeof err.code === 'number' ? err.code : 500;
      throw classifyGoogleError(status, data, res.headers, opts.now());
    }
    handedOut = true;
    out.push(v);
  };

  const close = (): void => {
    if (closed) return;
    closed = true;
    stopWatch();
    // Free the connection when we stop early, fail, or the consumer walks away.
    if (!eof) res.cancel();
  };

  async function readJson(): Promise<unknown[]> {
    // A JSON answer instead of SSE: one response object or an array of them.
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw whyStopped(err);
    }
    eof = true;
    let v: unknown = null;
    try {
      v = JSON.parse(text);
    } catch {
      log.debug('antigravity: skipped a malformed JSON answer');
    }
    const out: unknown[] = [];
    for (const item of Array.isArray(v) ? v : v ? [v] : []) parse(`data: ${JSON.stringify(item)}`, out);
    return out;
  }

  /** The complete data lines of one piece of body (null: the stream is over). */
  const onPiece = (value: Uint8Array | null): unknown[] | null => {
    if (closed) return null;
    reading = false;
    try {
      if (value === null) {
        eof = true;
        buf += decoder.decode();
      } else buf += decoder.decode(value, { stream: true });
      const out: unknown[] = [];
      let start = 0;
      // Only the new text can hold a line end: long signature lines arrive over many reads. CR, LF
      // and CRLF all end a line (the empty line between CR and LF is skipped); the native search
      // finds them, each looked for again only once passed.
      let lf = buf.indexOf('\n', scanned);
      let cr = buf.indexOf('\r', scanned);
      while (lf >= 0 || cr >= 0) {
        const i = lf < 0 ? cr : cr < 0 ? lf : Math.min(lf, cr);
        if (i > start) parse(buf.slice(start, i), out);
        start = i + 1;
        if (lf >= 0 && lf < start) lf = buf.indexOf('\n', start);
        if (cr >= 0 && cr < start) cr = buf.indexOf('\r', start);
      }
      buf = start === 0 ? buf : buf.slice(start);
      scanned = buf.length;
      if (value === null) {
        // A last line without a newline.
        if (buf) parse(buf, out);
        dropPending();
        buf = '';
        close();
      }
      return out;
    } catch (err) {
      close();
      throw err;
    }
  };
  const onReadFailed = (err: unknown): never => {
    const e = whyStopped(err);
    close();
    throw e;
  };

  // Not an async function: one promise per upstream read, chained straight onto the socket's.
  function readBatch(): Promise<unknown[] | null> {
    if (eof || closed) {
      close();
      return Promise.resolve(null);
    }
    if (isJson) {
      return readJson().catch((err: unknown) => {
        close();
        throw err;
      });
    }
    reading = true;
    timer.refresh();
    return res.read().then(onPiece, onReadFailed);
  }

  let chunks: AsyncGenerator<unknown> | undefined;
  async function* iterate(): AsyncGenerator<unknown> {
    try {
      for (;;) {
        const batch = await readBatch();
        if (batch === null) return;
        for (const v of batch) yield v;
      }
    } finally {
      close();
    }
  }

  return {
    get chunks() {
      chunks ??= iterate();
      return chunks;
    },
    readBatch,
    started: () => handedOut,
    close() {
      close();
      chunks?.return(undefined).catch(() => {});
    },
  };
}
