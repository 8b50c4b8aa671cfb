import { afterAll, afterEach, describe, expect, test } from 'bun:test';
import type { Socket, TCPSocketListener } from 'bun';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { closeHttp1Pools, http1IdleCount, http1Request, setHttp1TlsForTests } from '../../src/providers/http1.ts';
import { upstreamCall } from '../../src/providers/upstream-call.ts';

const servers: { stop(force?: boolean): void }[] = [];

/** A self-signed certificate for localhost made for this run, so no private key lives in the repository. */
function throwawayCertificate(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-tls-'));
  try {
    const r = Bun.spawnSync(
      ['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')],
      { stdout: 'pipe', stderr: 'pipe' },
    );
    if (r.exitCode !== 0) throw new Error(`openssl could not make a test certificate: ${r.stderr.toString()}`);
    return { cert: readFileSync(join(dir, 'c.pem'), 'utf8'), key: readFileSync(join(dir, 'k.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
afterEach(() => closeHttp1Pools());
afterAll(() => {
  for (const s of servers) s.stop(true);
});

function serve(fetch: (req: Request) => Response | Promise<Response>): string {
  const s = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch });
  servers.push(s);
  return `http://127.0.0.1:${s.port}`;
}

interface Raw {
  url: string;
  /** Connections accepted so far. */
  accepted: () => number;
  sockets: Socket<{ buf: string }>[];
}

/** A raw TCP server: `answer` gets each complete request head (+ body text) and the socket. */
function raw(answer: (req: string, socket: Socket<{ buf: string }>) => void): Raw {
  let accepted = 0;
  const sockets: Socket<{ buf: string }>[] = [];
  const l: TCPSocketListener<{ buf: string }> = Bun.listen<{ buf: string }>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(s) {
        accepted++;
        s.data = { buf: '' };
        sockets.push(s);
      },
      data(s, d) {
        s.data.buf += d.toString();
        const end = s.data.buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const len = Number(/content-length: (\d+)/i.exec(s.data.buf.slice(0, end))?.[1] ?? 0);
        if (s.data.buf.length < end + 4 + len) return;
        const req = s.data.buf.slice(0, end + 4 + len);
        s.data.buf = s.data.buf.slice(end + 4 + len);
        answer(req, s);
      },
    },
  });
  servers.push({ stop: () => l.stop(true) });
  return { url: `http://127.0.0.1:${l.port}`, accepted: () => accepted, sockets };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `p`, or a rejection naming the hang: a framing bug shows up as a wait that never ends. */
function within<T>(p: Promise<T>, ms = 2000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still waiting after ${ms} ms`)), ms);
  });
  return Promise.race([p, hang]).finally(() => clearTimeout(timer));
}

describe('http1Request', () => {
  test('sends method, path, query, headers and body; reads a content-length answer', async () => {
    let seen: { method: string; path: string; auth: string | null; body: string } | null = null;
    const url = serve(async (req) => {
      const u = new URL(req.url);
      seen = { method: req.method, path: u.pathname + u.search, auth: req.headers.get('authorization'), body: await req.text() };
      return new Response('héllo', { status: 200, headers: { 'x-a': '1' } });
    });
    const res = await http1Request(`${url}/v1internal:gen?alt=sse`, {
      method: 'POST',
      headers: { authorization: 'Bearer t', 'content-type': 'application/json' },
      body: '{"a":"é"}',
    });
    expect(res.status).toBe(200);
    expect(res.ok).toBe(true);
    expect(res.headers.get('x-a')).toBe('1');
    expect(await res.text()).toBe('héllo');
    expect(seen!).toEqual({ method: 'POST', path: '/v1internal:gen?alt=sse', auth: 'Bearer t', body: '{"a":"é"}' });
  });

  test('accepts a byte body', async () => {
    const url = serve(async (req) => new Response(String((await req.arrayBuffer()).byteLength)));
    const res = await http1Request(url, { method: 'POST', headers: {}, body: new Uint8Array(100_000) });
    expect(await res.text()).toBe('100000');
  });

  test('sends a multi-megabyte text body in full even when the socket buffer fills', async () => {
    const body = 'é✓x'.repeat(1_500_000);
    const url = serve(async (req) => new Response(String((await req.text()) === body)));
    const res = await http1Request(url, { method: 'POST', headers: {}, body });
    expect(await res.text()).toBe('true');
  });

  test('big non-ASCII text bodies written together with their heads arrive whole, many at once', async () => {
    // All encoded into one shared buffer in the same tick: each must go out before the next is encoded.
    const bodies = Array.from({ length: 6 }, (_, i) => `${String(i).repeat(10)}${'é✓'.repeat(1000 + i)}`.repeat(40));
    const url = serve(async (req) => {
      const text = await req.text();
      return new Response(String(bodies.indexOf(text)));
    });
    const answers = await Promise.all(
      bodies.map(async (body) => (await http1Request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).text()),
    );
    expect(answers).toEqual(['0', '1', '2', '3', '4', '5']);
  });

  test('byte-string bodies (latin1) go out byte for byte: small, joined with the head, and beyond the join limit with a full socket buffer', async () => {
    const texts = ['petit — é 🤖', `moyen ${'é✓ — 中 🤖 '.repeat(3000)}`, `grand ${'é✓ — 中 🤖 '.repeat(200_000)}`];
    const url = serve(async (req) => new Response(String(texts.indexOf(Buffer.from(await req.arrayBuffer()).toString('utf8')))));
    const answers = await Promise.all(
      texts.map(async (text) => (await http1Request(url, { method: 'POST', headers: {}, body: Buffer.from(text).toString('latin1'), latin1: true })).text()),
    );
    expect(answers).toEqual(['0', '1', '2']);
  });

  test('byte-string bodies through upstreamCall on fetch arrive byte for byte too', async () => {
    const text = `fetch ${'é✓ — 中 🤖 '.repeat(5000)}`;
    const url = serve(async (req) => new Response(String(Buffer.from(await req.arrayBuffer()).toString('utf8') === text)));
    const res = await upstreamCall('fetch', url, { method: 'POST', headers: {}, body: Buffer.from(text).toString('latin1'), latin1: true });
    expect(await res.text()).toBe('true');
  });

  test.each(['native', 'fetch'] as const)('upstreamCall on %s hands a redirect back as the answer: the key never follows it to another origin', async (client) => {
    let landed = 0;
    const elsewhere = serve(() => {
      landed++;
      return new Response('landed');
    });
    const url = serve(() => new Response(null, { status: 307, headers: { location: `${elsewhere.replace('127.0.0.1', 'localhost')}/v1/messages` } }));
    const res = await upstreamCall(client, `${url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'FAKE-key' }, body: '{}' });
    expect(res.status).toBe(307);
    expect(res.ok).toBe(false);
    await res.text();
    expect(landed).toBe(0);
  });

  test('a header value with Latin-1 characters (a forwarded user-agent) goes out byte for byte, as fetch sends it, whatever the body', async () => {
    // Bun hands request header bytes over as Latin-1 characters: the UTF-8 bytes of "é" arrive as "Ã©".
    const ua = Buffer.from('agent-é', 'utf8').toString('latin1');
    const got: Buffer[] = [];
    const l = Bun.listen<{ buf: Buffer }>({
      hostname: '127.0.0.1',
      port: 0,
      socket: {
        open(sock) {
          sock.data = { buf: Buffer.alloc(0) };
        },
        data(sock, d) {
          sock.data.buf = Buffer.concat([sock.data.buf, d]);
          const end = sock.data.buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const len = Number(/content-length: (\d+)/i.exec(sock.data.buf.subarray(0, end).toString('latin1'))?.[1] ?? 0);
          if (sock.data.buf.length < end + 4 + len) return;
          got.push(sock.data.buf.subarray(0, end + 4 + len));
          sock.data.buf = sock.data.buf.subarray(end + 4 + len);
          sock.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
        },
      },
    });
    servers.push({ stop: () => l.stop(true) });
    const url = `http://127.0.0.1:${l.port}/`;
    const big = `{"t":"${'é✓'.repeat(20_000)}"}`;
    const bodies: { body?: string | Uint8Array; latin1?: boolean; sent: Buffer }[] = [
      { sent: Buffer.alloc(0) },
      { body: '{"t":"é"}', sent: Buffer.from('{"t":"é"}') },
      { body: big, sent: Buffer.from(big) },
      { body: Buffer.from(big).toString('latin1'), latin1: true, sent: Buffer.from(big) },
      { body: new Uint8Array([1, 2, 3]), sent: Buffer.from([1, 2, 3]) },
    ];
    for (const b of bodies) {
      got.length = 0;
      const res = await http1Request(url, { method: b.body ? 'POST' : 'GET', headers: { 'user-agent': ua }, body: b.body, latin1: b.latin1 });
      await res.text();
      const wire = got[0]!;
      expect(wire.includes(Buffer.concat([Buffer.from('user-agent: '), Buffer.from('agent-é', 'utf8'), Buffer.from('\r\n')]))).toBe(true);
      expect(wire.subarray(wire.indexOf('\r\n\r\n') + 4).equals(b.sent)).toBe(true);
    }
  });

  test.each([
    ['a CR LF (a second header smuggled in)', 'FAKE-key\r\nx-injected: 1'],
    ['a bare LF', 'FAKE-key\nx'],
    ['a NUL', 'FAKE-key\u0000'],
    ['a character above U+00FF', 'FAKE-key✓'],
  ])('a header value with %s is refused before anything is sent, without the value in the error', async (_what, value) => {
    const s = raw((_req, sock) => {
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
    });
    const err = (await http1Request(s.url, { method: 'POST', headers: { 'x-api-key': value }, body: '{}' }).catch((e: unknown) => e)) as { code?: string; message?: string };
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('ERR_INVALID_HEADER_VALUE');
    expect(err.message).toContain('x-api-key');
    expect(err.message).not.toContain('FAKE');
    await sleep(10);
    expect(s.accepted()).toBe(0);
  });

  test('a connection answered before its request body was all sent is not reused', async () => {
    // The server answers on the head and stops reading: what is left of the body still sits in
    // the connection, so a second request on it would be read as the end of the first one's body.
    let accepted = 0;
    const l = Bun.listen<{ answered: boolean }>({
      hostname: '127.0.0.1',
      port: 0,
      socket: {
        open(s) {
          accepted++;
          s.data = { answered: false };
        },
        data(s, d) {
          if (s.data.answered || !d.toString().includes('\r\n\r\n')) return;
          s.data.answered = true;
          s.write(`HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n${accepted}`);
          s.pause();
        },
      },
    });
    servers.push({ stop: () => l.stop(true) });
    const url = `http://127.0.0.1:${l.port}`;
    const first = await http1Request(url, { method: 'POST', headers: {}, body: 'x'.repeat(12_000_000) });
    expect(await first.text()).toBe('1');
    const second = await http1Request(url, { method: 'POST', headers: {}, body: 'y' });
    expect(await second.text()).toBe('2');
    expect(accepted).toBe(2);
  });

  test('reuses one connection for sequential requests once each answer was read', async () => {
    const s = raw((_req, sock) => {
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
    for (let i = 0; i < 5; i++) {
      const res = await http1Request(s.url, { method: 'GET', headers: {} });
      expect(await res.text()).toBe('ok');
    }
    expect(s.accepted()).toBe(1);
  });

  test('keeps pools apart per pool key', async () => {
    const s = raw((_req, sock) => {
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
    for (const k of ['a', 'b', 'a', 'b']) await (await http1Request(s.url, { method: 'GET', headers: {}, poolKey: k })).text();
    expect(s.accepted()).toBe(2);
  });

  test('decodes a chunked body split at awkward places (inside sizes, CRLFs, data) with extensions and trailers', async () => {
    const wire =
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n' +
      '5;ext=1\r\nhello\r\n1A\r\n abcdefghijklmnopqrstuvwxy\r\n0\r\nx-trailer: 1\r\n\r\n';
    const s = raw(async (_req, sock) => {
      // One byte at a time, with pauses so every split reaches the client separately.
      for (let i = 0; i < wire.length; i += 3) {
        sock.write(wire.slice(i, i + 3));
        sock.flush();
        await sleep(1);
      }
    });
    const res = await http1Request(s.url, { method: 'GET', headers: {} });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const parts: string[] = [];
    for (let v = await res.read(); v; v = await res.read()) parts.push(new TextDecoder().decode(v));
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.join('')).toBe('hello abcdefghijklmnopqrstuvwxy');
    // Fully read, so the connection went back to the pool and is reused.
    expect(await (await http1Request(s.url, { method: 'GET', headers: {} })).text()).toBe('hello abcdefghijklmnopqrstuvwxy');
    expect(s.accepted()).toBe(1);
  });

  test('decodes whole chunks in one read: upper- and lower-case sizes, a bare LF, an extension, padding', async () => {
    const s = raw((_req, sock) => {
      sock.write(
        'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n' +
          '1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0A\r\n0123456789\r\n3\nxyz\n' +
          '2;name=v\r\nab\r\n 1 \r\n!\r\n000\r\n\r\n',
      );
    });
    const res = await http1Request(s.url, { method: 'GET', headers: {} });
    expect(await res.text()).toBe('abcdefghijklmnopqrstuvwxyz0123456789xyzab!');
    expect(await (await http1Request(s.url, { method: 'GET', headers: {} })).text()).toBe('abcdefghijklmnopqrstuvwxyz0123456789xyzab!');
    expect(s.accepted()).toBe(1);
  });

  test.each([
    ['a size that is not hex', 'zz\r\nab\r\n0\r\n\r\n'],
    ['a size of 13 hex digits', '0000000000002\r\nab\r\n0\r\n\r\n'],
    ['data longer than its size', '2\r\nabc\r\n0\r\n\r\n'],
  ])('a chunked body with %s is an error and the connection is dropped', async (_what, body) => {
    const s = raw((_req, sock) => {
      sock.write(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${body}`);
    });
    const res = await http1Request(s.url, { method: 'GET', headers: {} });
    await expect(res.text()).rejects.toThrow(/malformed chunk/);
    await sleep(10);
    expect(http1IdleCount()).toBe(0);
  });

  test('a Content-Length repeated with the same value (a proxy that merged headers) is one length, and the connection is reused', async () => {
    for (const repeated of ['content-length: 2\r\ncontent-length: 2', 'content-length: 2, 2', 'Content-Length: 2\r\ncontent-length:  2 ']) {
      const s = raw((_req, sock) => {
        sock.write(`HTTP/1.1 200 OK\r\n${repeated}\r\n\r\nok`);
      });
      for (let i = 0; i < 2; i++) expect(await within((async () => (await http1Request(s.url, { method: 'GET', headers: {} })).text())())).toBe('ok');
      expect(s.accepted()).toBe(1);
    }
  });

  test.each([
    ['two different lengths', 'content-length: 2\r\ncontent-length: 3'],
    ['a list of different lengths', 'content-length: 2, 3'],
    ['a length that is not a number', 'content-length: abc'],
    ['a negative length', 'content-length: -2'],
    ['an empty length', 'content-length: '],
  ])('a response with %s is an error at once, not a wait for the server to close', async (_what, cl) => {
    const s = raw((_req, sock) => {
      sock.write(`HTTP/1.1 200 OK\r\n${cl}\r\n\r\nok!`);
    });
    const err = (await within(http1Request(s.url, { method: 'GET', headers: {} }).then((r) => r.text())).catch((e: unknown) => e)) as { code?: string; message?: string };
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('HPE_UNEXPECTED_CONTENT_LENGTH');
    expect(err.message).toMatch(/content-length/i);
    await sleep(10);
    expect(http1IdleCount()).toBe(0);
  });

  test('streams a Bun.serve ReadableStream body as it is produced', async () => {
    const url = serve(
      () =>
        new Response(
          new ReadableStream({
            async start(c) {
              c.enqueue(new TextEncoder().encode('data: 1\n\n'));
              await sleep(30);
              c.enqueue(new TextEncoder().encode('data: 2\n\n'));
              c.close();
            },
          }),
        ),
    );
    const res = await http1Request(url, { method: 'POST', headers: {}, body: '{}' });
    const first = await res.read();
    expect(new TextDecoder().decode(first!)).toBe('data: 1\n\n');
    expect(await res.text()).toBe('data: 2\n\n');
  });

  test('reads a close-delimited body to the end and does not pool that connection', async () => {
    const s = raw((_req, sock) => {
      sock.write('HTTP/1.1 200 OK\r\n\r\npart1 ');
      setTimeout(() => {
        sock.write('part2');
        sock.end();
      }, 10);
    });
    expect(await (await http1Request(s.url, { method: 'GET', headers: {} })).text()).toBe('part1 part2');
    expect(await (await http1Request(s.url, { method: 'GET', headers: {} })).text()).toBe('part1 part2');
    expect(s.accepted()).toBe(2);
  });

  test('a close-delimited body cut by a reset is an error, not a complete answer', async () => {
    // Only a clean close (FIN) ends such a body; a reset may have thrown away its tail.
    const s = raw((_req, sock) => {
      sock.write('HTTP/1.1 200 OK\r\n\r\n{"partial":');
      setTimeout(() => sock.terminate(), 10);
    });
    const res = await http1Request(s.url, { method: 'GET', headers: {} });
    const err = (await res.text().catch((e: unknown) => e)) as { code?: string; message?: string };
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('ECONNRESET');
    expect(err.message).toMatch(/closed before the answer ended/);
  });

  test('a pooled connection the server closed while idle is replaced transparently', async () => {
    const s = raw((_req, sock) => {
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
    expect(await (await http1Request(s.url, { method: 'GET', headers: {} })).text()).toBe('ok');
    expect(http1IdleCount()).toBe(1);
    for (const sock of s.sockets) sock.end();
    await sleep(20);
    // The closed socket left the pool by itself (pools keyed by rotating tokens must not pile up).
    expect(http1IdleCount()).toBe(0);
    expect(await (await http1Request(s.url, { method: 'GET', headers: {} })).text()).toBe('ok');
    expect(s.accepted()).toBe(2);
  });

  test('a keep-alive timeout of 1 s or less is too short to pool the connection for', async () => {
    const s = raw((_req, sock) => {
      sock.write('HTTP/1.1 200 OK\r\nkeep-alive: timeout=1\r\ncontent-length: 2\r\n\r\nok');
    });
    for (let i = 0; i < 2; i++) expect(await (await http1Request(s.url, { method: 'GET', headers: {} })).text()).toBe('ok');
    expect(s.accepted()).toBe(2);
    expect(http1IdleCount()).toBe(0);
  });

  test("a pooled connection is not reused once the server's keep-alive timeout is about to close it", async () => {
    // Sent just as the server closes, a request is lost or must be resent: stop a second short of it.
    const s = raw((_req, sock) => {
      sock.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=2, max=100\r\ncontent-length: 2\r\n\r\nok');
    });
    const get = async () => (await http1Request(s.url, { method: 'GET', headers: {} })).text();
    expect(await get()).toBe('ok');
    expect(await get()).toBe('ok');
    expect(s.accepted()).toBe(1);
    await sleep(1100);
    expect(await get()).toBe('ok');
    expect(s.accepted()).toBe(2);
  });

  test('a reused connection that dies before any answer byte is retried once on a fresh one', async () => {
    let n = 0;
    const s = raw((_req, sock) => {
      // The second request on the first connection is dropped without an answer (a race with idle close).
      if (++n === 2) return void sock.terminate();
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
    expect(await (await http1Request(s.url, { method: 'POST', headers: {}, body: 'x' })).text()).toBe('ok');
    expect(await (await http1Request(s.url, { method: 'POST', headers: {}, body: 'x' })).text()).toBe('ok');
    expect(s.accepted()).toBe(2);
  });

  test('a fresh connection closed before the answer is an error with a code, not retried', async () => {
    const s = raw((_req, sock) => void sock.terminate());
    const err = (await http1Request(s.url, { method: 'POST', headers: {}, body: 'x' }).catch((e: unknown) => e)) as { code?: string };
    expect(err).toBeInstanceOf(Error);
    expect(typeof err.code).toBe('string');
    expect(s.accepted()).toBe(1);
  });

  test('a connection cut mid-body fails the read', async () => {
    const s = raw((_req, sock) => {
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort');
      setTimeout(() => sock.terminate(), 10);
    });
    const res = await http1Request(s.url, { method: 'GET', headers: {} });
    await expect(res.text()).rejects.toThrow(/closed before the answer ended/);
  });

  test('connection refused rejects with ECONNREFUSED-like code', async () => {
    const l = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
    const port = l.port;
    l.stop(true);
    const err = (await http1Request(`http://127.0.0.1:${port}/`, { method: 'GET', headers: {} }).catch((e: unknown) => e)) as { code?: string };
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('ECONNREFUSED');
  });

  test('abort before the head rejects with the abort reason and destroys the connection', async () => {
    let closed = false;
    const l = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {}, close() { closed = true; } } });
    servers.push({ stop: () => l.stop(true) });
    const ac = new AbortController();
    const p = http1Request(`http://127.0.0.1:${l.port}/`, { method: 'GET', headers: {}, signal: ac.signal });
    await sleep(20);
    ac.abort();
    const err = (await p.catch((e: unknown) => e)) as Error;
    expect(err.name).toBe('AbortError');
    await sleep(20);
    expect(closed).toBe(true);
  });

  test('abort mid-body fails the pending read and the connection is not reused', async () => {
    const s = raw((_req, sock) => {
      sock.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n');
    });
    const ac = new AbortController();
    const res = await http1Request(s.url, { method: 'GET', headers: {}, signal: ac.signal });
    expect(new TextDecoder().decode((await res.read())!)).toBe('abc');
    const pending = res.read();
    ac.abort();
    await expect(pending).rejects.toThrow();
    s.sockets.length = 0;
    const res2 = await http1Request(s.url, { method: 'GET', headers: {} });
    expect(new TextDecoder().decode((await res2.read())!)).toBe('abc');
    res2.cancel();
    expect(s.accepted()).toBe(2);
  });

  test('an already aborted signal rejects without connecting', async () => {
    const s = raw(() => {});
    const ac = new AbortController();
    ac.abort();
    await expect(http1Request(s.url, { method: 'GET', headers: {}, signal: ac.signal })).rejects.toThrow();
    await sleep(10);
    expect(s.accepted()).toBe(0);
  });

  test('cancel before the end destroys the connection instead of pooling it', async () => {
    const s = raw((_req, sock) => {
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345');
    });
    const res = await http1Request(s.url, { method: 'GET', headers: {} });
    await res.read();
    res.cancel();
    await expect(res.read()).rejects.toThrow();
    const res2 = await http1Request(s.url, { method: 'GET', headers: {} });
    res2.cancel();
    expect(s.accepted()).toBe(2);
  });

  test('4xx and 5xx answers come back with their bodies, and the connection stays usable', async () => {
    let n = 0;
    const url = serve(() => (++n === 1 ? Response.json({ error: { code: 429 } }, { status: 429 }) : new Response('boom', { status: 503 })));
    const r1 = await http1Request(url, { method: 'POST', headers: {}, body: '{}' });
    expect(r1.status).toBe(429);
    expect(r1.ok).toBe(false);
    expect(JSON.parse(await r1.text())).toEqual({ error: { code: 429 } });
    const r2 = await http1Request(url, { method: 'POST', headers: {}, body: '{}' });
    expect(r2.status).toBe(503);
    expect(await r2.text()).toBe('boom');
  });

  test('204 has no body and skips 100 Continue', async () => {
    const s = raw((_req, sock) => {
      sock.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n');
    });
    const res = await http1Request(s.url, { method: 'POST', headers: {}, body: 'x' });
    expect(res.status).toBe(204);
    expect(await res.read()).toBeNull();
  });

  test('interim answers (100, then 103 with its own headers), each in its own read, come before the real one and leave no header on it', async () => {
    const s = raw(async (_req, sock) => {
      for (const piece of ['HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n', 'content-length: 2\r\n\r\nok']) {
        sock.write(piece);
        sock.flush();
        await sleep(2);
      }
    });
    for (let i = 0; i < 2; i++) {
      const res = await within(http1Request(s.url, { method: 'POST', headers: {}, body: 'x' }));
      expect(res.status).toBe(200);
      expect(res.headers.get('link')).toBeNull();
      expect(await res.text()).toBe('ok');
    }
    expect(s.accepted()).toBe(1);
  });

  test('decodes a gzip answer', async () => {
    const url = serve(() => new Response(Bun.gzipSync(new TextEncoder().encode('zipped text')), { headers: { 'content-encoding': 'gzip' } }));
    const res = await http1Request(url, { method: 'GET', headers: {} });
    expect(await res.text()).toBe('zipped text');
  });

  test.each([
    ['a 200 with content-length 0', 'HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 0\r\n\r\n'],
    ['a 204', 'HTTP/1.1 204 No Content\r\ncontent-encoding: gzip\r\n\r\n'],
    ['a chunked answer with no chunk', 'HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n'],
  ])('an empty body labelled gzip (%s) reads as empty, not as a broken gzip stream', async (_what, wire) => {
    const s = raw((_req, sock) => {
      sock.write(wire);
    });
    for (let i = 0; i < 2; i++) expect(await (await http1Request(s.url, { method: 'POST', headers: {}, body: 'x' })).text()).toBe('');
    expect(s.accepted()).toBe(1);
  });

  test.each([
    ['br', (b: Uint8Array<ArrayBuffer>) => zlib.brotliCompressSync(b)],
    ['zstd', (b: Uint8Array<ArrayBuffer>) => Bun.zstdCompressSync(b)],
    ['x-gzip', (b: Uint8Array<ArrayBuffer>) => Bun.gzipSync(b)],
    ['Deflate', (b: Uint8Array<ArrayBuffer>) => zlib.deflateSync(b)],
  ])('decodes a %s answer from a server that compresses without being asked', async (coding, compress) => {
    const text = `data: {"a":"${'é✓'.repeat(2000)}"}\n\n`;
    const bytes = compress(new TextEncoder().encode(text));
    const s = raw((_req, sock) => {
      sock.write(`HTTP/1.1 200 OK\r\ncontent-encoding: ${coding}\r\ncontent-length: ${bytes.length}\r\n\r\n`);
      sock.write(bytes);
    });
    expect(await within((async () => (await http1Request(s.url, { method: 'POST', headers: {}, body: 'x' })).text())())).toBe(text);
  });

  test('concurrent requests each get their own answer', async () => {
    const url = serve(async (req) => {
      await sleep(Math.random() * 10);
      return new Response(new URL(req.url).searchParams.get('i'));
    });
    const got = await Promise.all(Array.from({ length: 20 }, async (_, i) => (await http1Request(`${url}/?i=${i}`, { method: 'GET', headers: {} })).text()));
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
  });

  test('a burst of 150 concurrent requests keeps all 150 connections, so the next burst opens none', async () => {
    const s = raw((_req, sock) => {
      // Answer only once every request of the burst is in, so none can reuse another's connection.
      setTimeout(() => sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'), 50);
    });
    const burst = () => Promise.all(Array.from({ length: 150 }, async () => (await http1Request(s.url, { method: 'GET', headers: {} })).text()));
    await burst();
    expect(s.accepted()).toBe(150);
    expect(http1IdleCount()).toBe(150);
    await burst();
    expect(s.accepted()).toBe(150);
  });

  test('https: verifies the certificate (self-signed refused) and reuses a verified connection', async () => {
    const { cert, key } = throwawayCertificate();
    const s = Bun.serve({ hostname: '127.0.0.1', port: 0, tls: { cert, key }, fetch: () => new Response('secret') });
    servers.push(s);
    const err = (await http1Request(`https://localhost:${s.port}/`, { method: 'GET', headers: {} }).catch((e: unknown) => e)) as { code?: string };
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
    try {
      setHttp1TlsForTests({ ca: cert });
      for (let i = 0; i < 3; i++) expect(await (await http1Request(`https://localhost:${s.port}/`, { method: 'GET', headers: {} })).text()).toBe('secret');
      // The name must match the certificate too.
      const wrong = (await http1Request(`https://127.0.0.2:${s.port}/`, { method: 'GET', headers: {} }).catch((e: unknown) => e)) as { code?: string };
      expect(wrong).toBeInstanceOf(Error);
    } finally {
      setHttp1TlsForTests({});
    }
  });

  test('https: big text bodies, written in one piece with their heads, arrive whole over TLS', async () => {
    const { cert, key } = throwawayCertificate();
    const bodies = Array.from({ length: 4 }, (_, i) => `${i}${'é✓ json '.repeat(12_000 + i)}`);
    const s = Bun.serve({ hostname: '127.0.0.1', port: 0, tls: { cert, key }, fetch: async (req) => new Response(String(bodies.indexOf(await req.text()))) });
    servers.push(s);
    try {
      setHttp1TlsForTests({ ca: cert });
      const answers = await Promise.all(bodies.map(async (body) => (await http1Request(`https://localhost:${s.port}/`, { method: 'POST', headers: {}, body })).text()));
      expect(answers).toEqual(['0', '1', '2', '3']);
    } finally {
      setHttp1TlsForTests({});
    }
  });

  test('abort during a TLS handshake the server never answers rejects at once and closes the socket', async () => {
    let closed = false;
    const l = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {}, close() { closed = true; } } });
    servers.push({ stop: () => l.stop(true) });
    const ac = new AbortController();
    const p = http1Request(`https://localhost:${l.port}/`, { method: 'GET', headers: {}, signal: ac.signal }).catch((e: unknown) => e);
    await sleep(30);
    ac.abort();
    const err = (await p) as Error;
    expect(err.name).toBe('AbortError');
    await sleep(30);
    expect(closed).toBe(true);
  });

  test('a head with bare LF line ends is read, whole or split across reads', async () => {
    const s = raw(async (_req, sock) => {
      for (const piece of ['HTTP/1.1 200 OK\nx-a: 1\r\ncontent-le', 'ngth: 2\n', '\nok']) {
        sock.write(piece);
        sock.flush();
        await sleep(2);
      }
    });
    for (let i = 0; i < 2; i++) {
      const res = await within(http1Request(s.url, { method: 'GET', headers: {} }));
      expect(res.headers.get('x-a')).toBe('1');
      expect(await res.text()).toBe('ok');
    }
    expect(s.accepted()).toBe(1);
  });

  test('a head ending in CRLF CRLF split between the CR and the LF is found', async () => {
    const s = raw(async (_req, sock) => {
      for (const piece of ['HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r', '\nok']) {
        sock.write(piece);
        sock.flush();
        await sleep(2);
      }
    });
    expect(await within((async () => (await http1Request(s.url, { method: 'GET', headers: {} })).text())())).toBe('ok');
  });

  test('a header value in UTF-8 (an error text in Chinese) is read byte for byte as Latin-1 characters, as fetch reads it', async () => {
    // Continuation bytes 0x80-0x9f are where windows-1252 (what TextDecoder calls latin1) differs.
    const value = Buffer.from('参数错误 €', 'utf8');
    const s = raw((_req, sock) => {
      sock.write(Buffer.concat([Buffer.from('HTTP/1.1 400 Bad Request\r\nx-msg: '), value, Buffer.from('\r\ncontent-length: 2\r\n\r\nno')]));
    });
    const res = await http1Request(s.url, { method: 'GET', headers: {} });
    expect(res.headers.get('x-msg')).toBe(value.toString('latin1'));
    expect(await res.text()).toBe('no');
  });

  test.each([
    ['a folded header line', 'content-type: text/plain;\r\n charset=utf-8; a:b'],
    ['a name with a space', 'bad name: x'],
  ])('a head with %s is an error with a code, as fetch rejects it', async (_what, line) => {
    const s = raw((_req, sock) => {
      sock.write(`HTTP/1.1 200 OK\r\n${line}\r\ncontent-length: 2\r\n\r\nok`);
    });
    const err = (await http1Request(s.url, { method: 'GET', headers: {} }).catch((e: unknown) => e)) as { code?: string; message?: string };
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('HPE_INVALID_HEADER_TOKEN');
    expect(err.message).toMatch(/malformed header/);
  });

  test('a response framed by both transfer-encoding and content-length is read as chunked, and its connection is not reused', async () => {
    // Such a head might be a response-splitting attempt by something in between (RFC 9112 §6.3).
    const s = raw((_req, sock) => {
      sock.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n2\r\nok\r\n0\r\n\r\n');
    });
    for (let i = 0; i < 2; i++) expect(await (await http1Request(s.url, { method: 'GET', headers: {} })).text()).toBe('ok');
    expect(s.accepted()).toBe(2);
  });

  test('a transfer-encoding whose last coding is not chunked is read to the close', async () => {
    const s = raw((_req, sock) => {
      sock.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, identity\r\n\r\n2\r\nok');
      setTimeout(() => sock.end(), 10);
    });
    expect(await within((async () => (await http1Request(s.url, { method: 'GET', headers: {} })).text())())).toBe('2\r\nok');
  });

  test('a head that never ends is cut off past 256 KB with an error, not buffered without bound', async () => {
    const s = raw((_req, sock) => {
      sock.write(`HTTP/1.1 200 OK\r\n${'x-filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(4000)}`);
    });
    const err = (await within(http1Request(s.url, { method: 'GET', headers: {} })).catch((e: unknown) => e)) as { code?: string };
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('HPE_HEADER_OVERFLOW');
    await sleep(10);
    expect(http1IdleCount()).toBe(0);
  });

  test('a garbage answer is an error', async () => {
    const s = raw((_req, sock) => {
      sock.write('SSH-2.0-OpenSSH\r\n\r\n');
    });
    await expect(http1Request(s.url, { method: 'GET', headers: {} })).rejects.toThrow(/not an HTTP/);
  });
});
