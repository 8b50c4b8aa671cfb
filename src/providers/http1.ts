// A small keep-alive HTTP/1.1 client on Bun.connect. Why: `fetch` runs on Bun's separate "HTTP
// Client" thread, and the hops between it and the main thread (eventfd wakeups, context switches)
// cost more CPU per proxied request than our own code. Sockets opened here live on the main event
// loop. One pool per origin and caller key (connections are per credential, antigravity.md §4.2).
// No Accept-Encoding handling: callers should not ask for gzip; a compressed answer is still decoded.
import type { Socket } from 'bun';
import { trackSize } from '../diagnostics.ts';

export interface Http1RequestInit {
  method: string;
  /** Lower-case names preferred; host, content-length are set here. */
  headers: Record<string, string>;
  body?: string | Uint8Array;
  /** The string body is a byte string (anthropic/byte-strings.ts): one byte per character, not UTF-8. */
  latin1?: boolean;
  signal?: AbortSignal;
  /** Connections are only shared between requests with the same key (e.g. the account). */
  poolKey?: string;
}

export interface Http1Response {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: Headers;
  /** The next piece of the (de-chunked) body, or null at its end. Throws on abort or a broken connection. */
  read(): Promise<Uint8Array | null>;
  /** The whole rest of the body as UTF-8 text. */
  text(): Promise<string>;
  /** Stops reading: a connection whose answer was not fully received is destroyed. Idempotent. */
  cancel(): void;
}

/**
 * Idle pooled sockets are closed after this: Go's http.Transport default. A user reading an answer
 * for a minute keeps the connections of the last burst (and skips their TLS handshakes); a server
 * that closed one first costs one resend, as with any stale socket.
 */
const IDLE_SEC = 90;
// Above the streams one account carries at once: when a burst of streams ends together, a smaller
// cap closes the surplus only for the next burst to open as many again (at 100 concurrent streams,
// 64 cost 36 closes and connects per wave and 7-33 % more CPU per stream; docs/benchmarks.md).
// Idle sockets still close after IDLE_SEC, the least recently used first.
const MAX_IDLE_PER_POOL = 256;

type BodyMode = 'none' | 'length' | 'chunked' | 'close';

interface Exchange {
  method: string;
  headDone: boolean;
  gotByte: boolean;
  head: Uint8Array | null;
  mode: BodyMode;
  remaining: number;
  /** Chunked state: 0 size line, 1 data, 2 CRLF after data, 3 trailer lines. */
  cstate: number;
  line: string;
  queue: Uint8Array[];
  ended: boolean;
  failure: unknown;
  keepAlive: boolean;
  /** The server's Keep-Alive timeout in seconds, or 0 when it gave none. */
  keepAliveSec: number;
  waiter: ((v: Uint8Array | null | Error) => void) | null;
  onHead: ((r: { status: number; headers: Headers } | Error) => void) | null;
  status: number;
  headers: Headers | null;
}

interface Conn {
  socket: Socket<Conn> | null;
  key: string;
  closed: boolean;
  reused: boolean;
  /** performance.now() past which the server may close this idle connection (0: only IDLE_SEC). */
  expires: number;
  ex: Exchange | null;
  pending: Uint8Array | null;
  /** Set until a TLS handshake settles: bytes written before it would be lost. */
  onHandshake: ((err: Error | null) => void) | null;
}

const pools = new Map<string, Conn[]>();
trackSize('http1.pools', () => pools.size);
trackSize('http1.idle', () => http1IdleCount());
const utf8 = new TextDecoder();

class ConnError extends Error {
  code: string;
  /** The request never got a response byte on a reused connection: safe to send again. */
  stale: boolean;
  constructor(code: string, message: string, stale = false) {
    super(message);
    this.code = code;
    this.stale = stale;
  }
}

function wake(ex: Exchange, v: Uint8Array | null | Error): void {
  const w = ex.waiter;
  if (w) {
    ex.waiter = null;
    w(v);
  }
}

/** The exchange ends in error: whoever waits (for the head or for body) hears it. */
function fail(ex: Exchange, err: Error): void {
  if (ex.ended || ex.failure) return;
  ex.failure = err;
  const h = ex.onHead;
  if (h) {
    ex.onHead = null;
    h(err);
  }
  wake(ex, err);
}

function destroy(conn: Conn): void {
  if (conn.closed) return;
  conn.closed = true;
  unpool(conn);
  conn.socket?.terminate();
}

/** A closed idle connection leaves its pool, and an empty pool its map (keys rotate with tokens). */
function unpool(conn: Conn): void {
  const idle = pools.get(conn.key);
  if (!idle) return;
  const i = idle.indexOf(conn);
  if (i >= 0) idle.splice(i, 1);
  if (idle.length === 0) pools.delete(conn.key);
}

function release(conn: Conn, ex: Exchange): void {
  conn.ex = null;
  const s = conn.socket;
  if (conn.closed || !s) return;
  // Answered before the whole body went out (an early 4xx, say): the rest of it is still due on
  // this connection, and the server would take the next request for it.
  if (conn.pending) return destroy(conn);
  let idle = pools.get(conn.key);
  if (!idle) pools.set(conn.key, (idle = []));
  if (idle.length >= MAX_IDLE_PER_POOL) return destroy(conn);
  // A server that says when it closes idle connections (Node and Apache: 5 s) could close this one
  // just as a request goes out on it: keep it a second less than that (undici does the same).
  const ka = ex.keepAliveSec;
  if (ka === 1) return destroy(conn);
  conn.expires = ka > 0 ? performance.now() + (ka - 1) * 1000 : 0;
  s.timeout(ka > 0 ? Math.min(IDLE_SEC, ka - 1) : IDLE_SEC);
  s.unref();
  conn.reused = true;
  idle.push(conn);
}

function finishBody(conn: Conn, ex: Exchange, extra: boolean): void {
  ex.ended = true;
  wake(ex, null);
  if (ex.keepAlive && !extra) release(conn, ex);
  else {
    conn.ex = null;
    destroy(conn);
  }
}

function push(ex: Exchange, bytes: Uint8Array): void {
  if (bytes.length === 0) return;
  if (ex.waiter) wake(ex, bytes);
  else ex.queue.push(bytes);
}

/**
 * Where the head in `buf` ends: the index of its blank line's LF + 1 (the body's first byte), or -1.
 * Lines may end in a bare LF (RFC 9112 §2.2), as fetch accepts. `from`: bytes before it were searched.
 */
function headEnd(buf: Uint8Array, from: number): number {
  for (let i = buf.indexOf(10, Math.max(0, from)); i >= 0; i = buf.indexOf(10, i + 1)) {
    if (buf[i + 1] === 10) return i + 2;
    if (buf[i + 1] === 13 && buf[i + 2] === 10) return i + 3;
  }
  return -1;
}

/**
 * Bytes start..end as one character each (U+0000-U+00FF), as fetch reads a head. Not
 * TextDecoder('latin1'): that is windows-1252, which turns 0x80-0x9f (UTF-8 continuation bytes
 * in a header value) into characters Headers refuses.
 */
function latin1(buf: Uint8Array, start: number, end: number): string {
  return Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString('latin1');
}

function concat(a: Uint8Array | null, b: Uint8Array): Uint8Array {
  if (!a || a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function parseHead(ex: Exchange, text: string): void {
  // Split at LF: a CR before it goes with the trims below (and the status line's regex ignores it).
  const lines = text.split('\n');
  const statusLine = lines[0] ?? '';
  const m = /^HTTP\/1\.([01]) (\d{3})/.exec(statusLine);
  if (!m) throw new ConnError('HPE_INVALID_RESPONSE', 'upstream sent something that is not an HTTP/1.x response');
  const headers = new Headers();
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i]!;
    // A folded line (obsolete) continues the previous value: read apart, it would cut that value short.
    const first = l.charCodeAt(0);
    if (first === 32 || first === 9) throw new ConnError('HPE_INVALID_HEADER_TOKEN', 'upstream sent a malformed header line (folded)');
    const c = l.indexOf(':');
    if (c > 0) appendHeader(headers, l.slice(0, c).trim(), l.slice(c + 1).trim());
  }
  ex.status = Number(m[2]);
  ex.headers = headers;
  const connection = (headers.get('connection') ?? '').toLowerCase();
  ex.keepAlive = m[1] === '1' ? !connection.includes('close') : connection.includes('keep-alive');
  const ka = headers.get('keep-alive');
  // timeout=0 (close at once) counts as 1: too short to pool for.
  const t = ka === null ? null : KEEP_ALIVE_TIMEOUT.exec(ka);
  ex.keepAliveSec = t ? Number(t[1]) || 1 : 0;
  const te = headers.get('transfer-encoding');
  const cl = headers.get('content-length');
  if (ex.method === 'HEAD' || ex.status === 204 || ex.status === 304) ex.mode = 'none';
  else if (te !== null) {
    // Chunked only as the last coding; any other runs to the close (RFC 9112 §6.3). With a
    // content-length too the framing is ambiguous (response splitting?): not reused after.
    ex.mode = te === 'chunked' || CHUNKED_LAST.test(te) ? 'chunked' : 'close';
    if (ex.mode === 'close' || cl !== null) ex.keepAlive = false;
  } else if (cl !== null) {
    // Without a usable length the body would run to a close that a keep-alive server never sends.
    const n = contentLength(cl);
    if (n < 0) throw new ConnError('HPE_UNEXPECTED_CONTENT_LENGTH', `upstream sent an invalid content-length (${cl.slice(0, 40)})`);
    ex.mode = 'length';
    ex.remaining = n;
  } else {
    ex.mode = 'close';
    ex.keepAlive = false;
  }
}

/** Headers refuses a bad name or value with a TypeError and no code; fetch fails such a head too. */
function appendHeader(headers: Headers, name: string, value: string): void {
  try {
    headers.append(name, value);
  } catch {
    throw new ConnError('HPE_INVALID_HEADER_TOKEN', 'upstream sent a malformed header line (bad name or value)');
  }
}

/**
 * The body length a Content-Length value gives, or -1. A proxy that merged two equal fields sends
 * "2, 2" (Headers joins repeated fields the same way): one length (RFC 9110 §8.6); unequal ones are -1.
 */
function contentLength(v: string): number {
  if (DIGITS.test(v)) return Number(v);
  let n = -1;
  for (const part of v.split(',')) {
    const t = part.trim();
    if (!DIGITS.test(t) || (n >= 0 && Number(t) !== n)) return -1;
    n = Number(t);
  }
  return n;
}
const DIGITS = /^\d{1,15}$/;
const KEEP_ALIVE_TIMEOUT = /(?:^|[,\s])timeout\s*=\s*(\d{1,9})/i;
const CHUNKED_LAST = /(?:^|,)[ \t]*chunked[ \t]*$/i;

/** How many hex digits start at `at` (0 when none, or more than 12: that is the line path's error). */
function hexRun(data: Uint8Array, at: number): number {
  let n = 0;
  for (let c = data[at]; c !== undefined && ((c >= 48 && c <= 57) || ((c | 32) >= 97 && (c | 32) <= 102)); c = data[at + ++n]);
  return n <= 12 ? n : 0;
}

function hexValue(data: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let k = 0; k < n; k++) {
    const c = data[at + k]! | 32;
    v = v * 16 + (c <= 57 ? c - 48 : c - 87);
  }
  return v;
}

/** Feeds bytes of the body to the exchange per its framing. */
function feedBody(conn: Conn, ex: Exchange, data: Uint8Array): void {
  if (ex.mode === 'close') return push(ex, data);
  if (ex.mode === 'length') {
    const n = Math.min(ex.remaining, data.length);
    push(ex, n === data.length ? data : data.subarray(0, n));
    ex.remaining -= n;
    if (ex.remaining === 0) finishBody(conn, ex, data.length > n);
    return;
  }
  // chunked
  let i = 0;
  while (i < data.length) {
    if (ex.cstate === 1) {
      const n = Math.min(ex.remaining, data.length - i);
      push(ex, data.subarray(i, i + n));
      ex.remaining -= n;
      i += n;
      if (ex.remaining === 0) {
        ex.cstate = 2;
        ex.line = '';
      }
      continue;
    }
    // The usual framing, whole in this read: "<hex>\r\n" before data, "\r\n" after it. Read off
    // the bytes (this runs for every streamed event); anything else takes the line path below.
    if (ex.line === '') {
      if (ex.cstate === 2 && data[i] === 13 && data[i + 1] === 10) {
        ex.cstate = 0;
        i += 2;
        continue;
      }
      if (ex.cstate === 0) {
        const n = hexRun(data, i);
        if (n > 0 && data[i + n] === 13 && data[i + n + 1] === 10) {
          const size = hexValue(data, i, n);
          i += n + 2;
          if (size === 0) ex.cstate = 3;
          else {
            ex.remaining = size;
            ex.cstate = 1;
          }
          continue;
        }
      }
    }
    // A line (size, the CRLF after data, or a trailer): collect up to LF.
    const lf = data.indexOf(10, i);
    const end = lf < 0 ? data.length : lf;
    ex.line += latin1(data, i, end);
    if (ex.line.length > 8192) throw new ConnError('HPE_CHUNK_SIZE', 'upstream sent a malformed chunk size');
    if (lf < 0) return;
    i = lf + 1;
    const line = ex.line.endsWith('\r') ? ex.line.slice(0, -1) : ex.line;
    ex.line = '';
    if (ex.cstate === 2) {
      if (line !== '') throw new ConnError('HPE_INVALID_CHUNK', 'upstream sent a malformed chunk');
      ex.cstate = 0;
    } else if (ex.cstate === 0) {
      const semi = line.indexOf(';');
      const hex = (semi < 0 ? line : line.slice(0, semi)).trim();
      if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) throw new ConnError('HPE_CHUNK_SIZE', 'upstream sent a malformed chunk size');
      const size = parseInt(hex, 16);
      if (size === 0) ex.cstate = 3;
      else {
        ex.remaining = size;
        ex.cstate = 1;
      }
    } else if (line === '') {
      // The empty line after the trailers ends the body.
      return finishBody(conn, ex, i < data.length);
    }
  }
}

function onData(conn: Conn, data: Uint8Array): void {
  const ex = conn.ex;
  if (!ex || ex.failure) {
    // Bytes nobody asked for (an idle socket): the connection is not in a known state any more.
    destroy(conn);
    return;
  }
  ex.gotByte = true;
  try {
    if (ex.headDone) return feedBody(conn, ex, data);
    let buf = concat(ex.head, data);
    for (;;) {
      const end = headEnd(buf, (ex.head?.length ?? 0) - 2);
      if (end < 0) {
        if (buf.length > 256 * 1024) throw new ConnError('HPE_HEADER_OVERFLOW', 'upstream response head too large');
        ex.head = buf;
        return;
      }
      parseHead(ex, latin1(buf, 0, end));
      buf = buf.subarray(end);
      ex.head = null;
      // 1xx interim answers (100 Continue, 103 Early Hints) come before the real one.
      if (ex.status >= 100 && ex.status < 200) continue;
      break;
    }
    ex.headDone = true;
    const h = ex.onHead;
    ex.onHead = null;
    h?.({ status: ex.status, headers: ex.headers! });
    if (ex.mode === 'none' || (ex.mode === 'length' && ex.remaining === 0)) finishBody(conn, ex, buf.length > 0);
    else if (buf.length > 0) feedBody(conn, ex, buf);
  } catch (err) {
    fail(ex, err as Error);
    conn.ex = null;
    destroy(conn);
  }
}

function onClose(conn: Conn, error?: Error): void {
  conn.closed = true;
  unpool(conn);
  const hs = conn.onHandshake;
  if (hs) {
    conn.onHandshake = null;
    hs(error ?? new ConnError('ECONNRESET', 'connection closed during the TLS handshake'));
  }
  const ex = conn.ex;
  conn.ex = null;
  if (!ex || ex.ended || ex.failure) return;
  // Only a clean close ends a close-delimited body: after a reset its tail may be lost. (A TLS
  // peer that closes without close_notify comes here without an error too.)
  if (ex.headDone && ex.mode === 'close' && !error) {
    ex.ended = true;
    wake(ex, null);
    return;
  }
  const stale = conn.reused && !ex.gotByte;
  const what = error ? `${error.message}` : 'the server closed the connection';
  const code = (error as { code?: string } | undefined)?.code ?? 'ECONNRESET';
  fail(ex, new ConnError(code, `upstream connection closed before the answer ended: ${what}`, stale));
}

const handlers = {
  binaryType: 'uint8array' as const,
  data(socket: Socket<Conn>, data: Uint8Array) {
    onData(socket.data, data);
  },
  drain(socket: Socket<Conn>) {
    const conn = socket.data;
    const p = conn.pending;
    if (!p) return;
    const n = socket.write(p);
    conn.pending = n >= p.length ? null : p.subarray(Math.max(0, n));
  },
  close(socket: Socket<Conn>, error?: Error) {
    onClose(socket.data, error);
  },
  error(socket: Socket<Conn>, error: Error) {
    const conn = socket.data;
    onClose(conn, error);
    destroy(conn);
  },
  handshake(socket: Socket<Conn>, success: boolean, authorizationError: Error | null) {
    const conn = socket.data;
    const hs = conn.onHandshake;
    conn.onHandshake = null;
    if (success && !authorizationError) return hs?.(null);
    // An unverified certificate (or a name mismatch) ends the connection before any byte is sent.
    const e = authorizationError as (Error & { code?: string }) | null;
    hs?.(new ConnError(e?.code ?? 'ERR_TLS_HANDSHAKE', `TLS handshake failed: ${e?.message ?? 'unknown'}`));
    conn.closed = true;
    socket.terminate();
  },
  timeout(socket: Socket<Conn>) {
    // Only idle pooled sockets have a timeout set.
    destroy(socket.data);
  },
};

function take(key: string): Conn | null {
  const idle = pools.get(key);
  if (!idle) return null;
  for (let c = idle.pop(); c; c = idle.pop()) {
    if (c.expires && performance.now() >= c.expires) destroy(c);
    else if (!c.closed && c.socket) {
      c.socket.timeout(0);
      c.socket.ref();
      return c;
    }
  }
  return null;
}

/** Test hook: extra TLS options (a private CA) for connections opened from now on. */
let tlsExtra: { ca?: string } = {};
export function setHttp1TlsForTests(extra: { ca?: string }): void {
  tlsExtra = extra;
}

async function connect(key: string, url: URL, signal: AbortSignal | undefined): Promise<Conn> {
  const conn: Conn = { socket: null, key, closed: false, reused: false, expires: 0, ex: null, pending: null, onHandshake: null };
  const https = url.protocol === 'https:';
  const port = url.port ? Number(url.port) : https ? 443 : 80;
  // URL keeps the brackets of an IPv6 literal; the socket wants the bare address.
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const handshake = https
    ? new Promise<void>((resolve, reject) => {
        conn.onHandshake = (err) => (err ? reject(err) : resolve());
      })
    : null;
  handshake?.catch(() => {});
  let onAbort: (() => void) | null = null;
  // A connect (or handshake) to a silent host would otherwise outlive the caller's deadline.
  const aborted = signal
    ? new Promise<never>((_, reject) => {
        onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
      })
    : null;
  aborted?.catch(() => {});
  try {
    const opening = Bun.connect<Conn>({ hostname, port, tls: https ? { serverName: hostname, ...tlsExtra } : undefined, data: conn, socket: handlers });
    try {
      conn.socket = await (aborted ? Promise.race([opening, aborted]) : opening);
    } catch (err) {
      if (signal?.aborted) {
        opening.then((s) => s.terminate(), () => {});
        throw err;
      }
      const e = err as { code?: unknown; message?: unknown };
      throw new ConnError(typeof e?.code === 'string' ? e.code : 'ECONNREFUSED', `connection to ${url.host} failed: ${String(e?.message ?? err)}`);
    }
    if (handshake) {
      try {
        await (aborted ? Promise.race([handshake, aborted]) : handshake);
      } catch (err) {
        destroy(conn);
        throw err;
      }
    }
    return conn;
  } finally {
    if (onAbort) signal!.removeEventListener('abort', onAbort);
  }
}

/** The head, and a big text body apart until they are written (writeJoined). */
interface Req {
  data: string | Uint8Array;
  size: number;
  body: string;
  bodySize: number;
  /** `body` is a byte string. */
  latin1: boolean;
}

function encodeRequest(url: URL, init: Http1RequestInit): Req {
  const body = init.body;
  let head = `${init.method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`;
  let wide = false;
  for (const name in init.headers) {
    const lower = name.toLowerCase();
    if (lower === 'host' || lower === 'content-length' || lower === 'transfer-encoding' || lower === 'connection') continue;
    const value = init.headers[name]!;
    if (NOT_PLAIN.test(value)) {
      // CR or LF would start a header of the caller's value's choosing; fetch refuses these too.
      // The value itself may be a credential: only the name is told.
      if (NOT_BYTE.test(value)) throw new ConnError('ERR_INVALID_HEADER_VALUE', `request header ${name} has an invalid value`);
      wide = true;
    }
    head += `${name}: ${value}\r\n`;
  }
  // Rare (a forwarded header with bytes above 0x7f, handed over as Latin-1 characters): they go out
  // one byte each, as fetch sends them; the fast paths below would write the head as UTF-8.
  if (wide) {
    const bytes = typeof body === 'string' ? Buffer.from(body, init.latin1 ? 'latin1' : 'utf8') : body;
    if (typeof body === 'string' || body || (init.method !== 'GET' && init.method !== 'HEAD')) head += `content-length: ${bytes?.length ?? 0}\r\n`;
    const data = concat(Buffer.from(`${head}\r\n`, 'latin1'), bytes ?? new Uint8Array(0));
    return { data, size: data.length, body: '', bodySize: 0, latin1: false };
  }
  if (typeof body === 'string') {
    const byteString = init.latin1 === true;
    const len = byteString ? body.length : Buffer.byteLength(body);
    head += `content-length: ${len}\r\n\r\n`;
    // Small bodies go in one write (one syscall); big ones are joined at write time (writeJoined).
    if (len <= 16384) {
      if (byteString) return { data: Buffer.from(head + body, 'latin1'), size: head.length + len, body: '', bodySize: 0, latin1: true };
      return { data: head + body, size: Buffer.byteLength(head) + len, body: '', bodySize: 0, latin1: false };
    }
    return { data: head, size: Buffer.byteLength(head), body, bodySize: len, latin1: byteString };
  }
  if (body || (init.method !== 'GET' && init.method !== 'HEAD')) head += `content-length: ${body?.length ?? 0}\r\n`;
  head += '\r\n';
  const h = Buffer.from(head);
  const data = body && body.length ? concat(h, body) : h;
  return { data, size: data.length, body: '', bodySize: 0, latin1: false };
}

/** Header values outside printable ASCII and tab; of those, the ones no header may carry (fetch's rule). */
const NOT_PLAIN = /[^\t\x20-\x7e]/;
const NOT_BYTE = /[\0\r\n]|[^\0-\xff]/;

/** Sends the request on `conn` and resolves with its status + headers. */
function exchange(conn: Conn, method: string, req: Req): { ex: Exchange; head: Promise<{ status: number; headers: Headers }> } {
  const ex: Exchange = {
    method,
    headDone: false,
    gotByte: false,
    head: null,
    mode: 'none',
    remaining: 0,
    cstate: 0,
    line: '',
    queue: [],
    ended: false,
    failure: null,
    keepAlive: true,
    keepAliveSec: 0,
    waiter: null,
    onHead: null,
    status: 0,
    headers: null,
  };
  const head = new Promise<{ status: number; headers: Headers }>((resolve, reject) => {
    ex.onHead = (r) => (r instanceof Error ? reject(r) : resolve(r));
  });
  conn.ex = ex;
  const s = conn.socket!;
  if (req.bodySize && req.size + req.bodySize <= JOIN_MAX) {
    writeJoined(conn, ex, req);
    return { ex, head };
  }
  const n = s.write(req.data);
  if (n < 0 || conn.closed) fail(ex, new ConnError('ECONNRESET', 'upstream connection closed while sending', conn.reused));
  else if (n < req.size) {
    // Rare (a full socket buffer): only then is a text request encoded here, to find the unsent rest.
    const head = typeof req.data === 'string' ? Buffer.from(req.data) : req.data;
    conn.pending = req.bodySize ? concat(head.subarray(n), bodyBytes(req)) : head.subarray(n);
  } else if (req.bodySize) {
    const m = s.write(req.latin1 ? bodyBytes(req) : req.body);
    if (m < 0 || conn.closed) fail(ex, new ConnError('ECONNRESET', 'upstream connection closed while sending', conn.reused));
    else if (m < req.bodySize) conn.pending = bodyBytes(req).subarray(m);
  }
  return { ex, head };
}

/**
 * Head and a big text body in one write, through a scratch buffer reused by every request: a
 * second write cost one more syscall and one more loopback segment (~2.5 µs of a 90 KB request,
 * in-process A/B), and joining the two strings cost a 90 KB copy that the socket makes again.
 * Encoded right before the write, since another request reuses the buffer after it.
 */
const JOIN_MAX = 1024 * 1024;
let scratch = new Uint8Array(0);
/** The same memory as a Buffer, for byte-string bodies. (Not the scratch itself: Buffer's slice does not copy.) */
let scratchBuf = Buffer.alloc(0);
const encoder = new TextEncoder();

function writeJoined(conn: Conn, ex: Exchange, req: Req): void {
  const total = req.size + req.bodySize;
  if (scratch.length < total) {
    scratch = new Uint8Array(Math.min(JOIN_MAX, Math.max(total, scratch.length * 2, 128 * 1024)));
    scratchBuf = Buffer.from(scratch.buffer, 0, scratch.length);
  }
  const h = encoder.encodeInto(req.data as string, scratch).written;
  const b = req.latin1 ? scratchBuf.write(req.body, h, 'latin1') : encoder.encodeInto(req.body, scratch.subarray(h)).written;
  const n = conn.socket!.write(scratch.subarray(0, h + b));
  if (n < 0 || conn.closed) fail(ex, new ConnError('ECONNRESET', 'upstream connection closed while sending', conn.reused));
  // A full socket buffer keeps its own copy of the rest: the scratch belongs to the next request.
  else if (n < h + b) conn.pending = scratch.slice(n, h + b);
}

function bodyBytes(req: Req): Buffer {
  return Buffer.from(req.body, req.latin1 ? 'latin1' : 'utf8');
}

function makeResponse(conn: Conn, ex: Exchange, status: number, headers: Headers, detach: () => void): Http1Response {
  const read = (): Promise<Uint8Array | null> => {
    const q = ex.queue;
    if (q.length) {
      // Everything already here in one piece: fewer awaits for the reader.
      const v = q.length === 1 ? q[0]! : Buffer.concat(q);
      q.length = 0;
      return Promise.resolve(v);
    }
    if (ex.failure) return Promise.reject(ex.failure);
    if (ex.ended) {
      detach();
      return Promise.resolve(null);
    }
    return new Promise((resolve, reject) => {
      ex.waiter = (v) => (v instanceof Error ? reject(v) : resolve(v));
    });
  };
  let rawRead = read;
  const enc = headers.get('content-encoding');
  const format = enc === null ? undefined : CODINGS.get(enc.trim().toLowerCase());
  if (format) rawRead = decompressed(read, format);
  return {
    status,
    ok: status >= 200 && status < 300,
    headers,
    read: rawRead,
    async text() {
      const parts: Uint8Array[] = [];
      for (let v = await rawRead(); v; v = await rawRead()) parts.push(v);
      return parts.length === 1 ? utf8.decode(parts[0]) : utf8.decode(Buffer.concat(parts));
    },
    cancel() {
      detach();
      if (ex.ended || ex.failure) return;
      ex.failure = new ConnError('ABORT_ERR', 'response body cancelled');
      wake(ex, ex.failure as Error);
      if (conn.ex === ex) conn.ex = null;
      destroy(conn);
    },
  };
}

/**
 * The content codings decoded, by their HTTP names. We send no Accept-Encoding, which allows any
 * coding (RFC 9110 §12.5.3), so a server may compress anyway; fetch decodes these same ones.
 */
type Format = ConstructorParameters<typeof DecompressionStream>[0];
const CODINGS = new Map<string, Format>([['gzip', 'gzip'], ['x-gzip', 'gzip'], ['deflate', 'deflate'], ['br', 'brotli'], ['zstd', 'zstd']]);

/** A compressed body decoded as it streams. */
function decompressed(read: () => Promise<Uint8Array | null>, format: Format): () => Promise<Uint8Array | null> {
  let reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> } | null = null;
  return async () => {
    if (!reader) {
      // An empty body (a 204, a length of 0) is no compressed stream at all: the decoder would call it truncated.
      const first = await read();
      if (!first) return null;
      const ds = new DecompressionStream(format);
      const writer = ds.writable.getWriter();
      reader = ds.readable.getReader();
      void (async () => {
        try {
          for (let v: Uint8Array | null = first; v; v = await read()) await writer.write(v as Uint8Array<ArrayBuffer>);
          await writer.close();
        } catch (err) {
          await writer.abort(err).catch(() => {});
        }
      })();
    }
    const r = await reader.read();
    return r.done || !r.value ? null : r.value;
  };
}

/**
 * Sends one HTTP/1.1 request over a pooled keep-alive connection and resolves once the response
 * head arrived. A pooled connection the server had already closed (no response byte came back) is
 * retried once on a fresh one. Connection failures reject with an Error carrying a `code`.
 */
export async function http1Request(input: string | URL, init: Http1RequestInit): Promise<Http1Response> {
  const url = typeof input === 'string' ? new URL(input) : input;
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConnError('ERR_INVALID_URL', `unsupported protocol ${url.protocol}`);
  const signal = init.signal;
  if (signal?.aborted) throw signal.reason;
  const key = `${init.poolKey ?? ''}\n${url.protocol}//${url.host}`;
  const req = encodeRequest(url, init);
  for (let attempt = 0; ; attempt++) {
    let conn = attempt === 0 ? take(key) : null;
    if (!conn) {
      conn = await connect(key, url, signal);
      if (signal?.aborted) {
        destroy(conn);
        throw signal.reason;
      }
    }
    const c = conn;
    const { ex, head } = exchange(c, init.method, req);
    let onAbort: (() => void) | null = null;
    const detach = (): void => {
      if (onAbort) signal!.removeEventListener('abort', onAbort);
      onAbort = null;
    };
    if (signal) {
      onAbort = (): void => {
        onAbort = null;
        // Fully received already: the connection may be serving someone else by now.
        if (ex.ended) return;
        const reason = signal.reason instanceof Error ? signal.reason : new DOMException('The operation was aborted.', 'AbortError');
        if (c.ex === ex) c.ex = null;
        destroy(c);
        fail(ex, reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    }
    try {
      const { status, headers } = await head;
      if (ex.ended) detach();
      return makeResponse(c, ex, status, headers, detach);
    } catch (err) {
      detach();
      if (err instanceof ConnError && err.stale && attempt === 0 && !signal?.aborted) continue;
      throw err;
    }
  }
}

/** Idle pooled connections, all pools together (tests, diagnostics). */
export function http1IdleCount(): number {
  let n = 0;
  for (const idle of pools.values()) n += idle.length;
  return n;
}

/**
 * Closes the idle connections kept for `poolKey` (every origin): a credential that was replaced or
 * refused (an access token after its refresh) never asks again, and its sockets would otherwise sit
 * open until IDLE_SEC, one pool per superseded token.
 */
export function closeHttp1Pool(poolKey: string): void {
  const prefix = `${poolKey}\n`;
  for (const key of [...pools.keys()]) {
    if (!key.startsWith(prefix)) continue;
    const idle = pools.get(key)!;
    pools.delete(key);
    for (const c of idle) destroy(c);
  }
}

/** Closes every pooled idle connection (tests, shutdown). */
export function closeHttp1Pools(): void {
  const all = [...pools.values()].flat();
  pools.clear();
  for (const c of all) destroy(c);
}
