// The real server as `mcp serve` starts it: idle timeout for idle sockets only, never for work in progress.
import { describe, expect, test } from 'bun:test';
import { connect } from 'node:net';
import type { Config } from '../../src/config.ts';
import type { Gateway, Ops } from '../../src/gateway/types.ts';
import { log } from '../../src/log.ts';
import { createApp, startServer } from '../../src/server/app.ts';
import { AUTH, body, dispatchSteps, KEY, testConfig, textEvents, type Step } from './stubs.ts';

function appWith(config: Config, steps: Step[]) {
  const gateway: Gateway = { dispatch: dispatchSteps(steps), listModels: () => [], getModel: () => undefined, imageModel: () => null, drawsImages: () => null };
  const ops: Ops = {
    health: () => ({ status: 'ok' }),
    accountLimits: () => ({}),
    accountLimitsTable: () => '',
    refresh: async () => ({}),
    metrics: () => '',
  };
  return createApp({ config, gateway, ops });
}

describe('startServer', () => {
  test('a silent upstream outlives IDLE_TIMEOUT_SEC on both the streaming and the non-streaming path', async () => {
    const config = testConfig({ IDLE_TIMEOUT_SEC: '1', PING_INTERVAL_SEC: '10', BIND_ADDRESS: '127.0.0.1', PORT: '0' });
    const evs = textEvents();
    // Bun checks socket timeouts on a ~4 s tick, so the silence must outlast that to prove anything.
    const app = appWith(config, [evs[0]!, { wait: 4500 }, ...evs.slice(1)]);
    const server = startServer(config, app);
    try {
      expect(server.hostname).toBe('127.0.0.1');
      const base = `http://127.0.0.1:${server.port}`;
      const [streamed, collected] = await Promise.all([
        fetch(`${base}/v1/messages`, { method: 'POST', headers: AUTH, body: JSON.stringify(body({ stream: true })) }).then((r) => r.text()),
        fetch(`${base}/v1/messages`, { method: 'POST', headers: AUTH, body: JSON.stringify(body()) }).then((r) => r.json() as Promise<any>),
      ]);
      expect(streamed).toContain('event: message_stop');
      expect(collected.content).toEqual([{ type: 'text', text: 'Hello!' }]);
    } finally {
      app.stop(true);
    }
  });

  test('a keep-alive connection left idle after a /v1/messages answer (streamed or not) or an image answer is closed after IDLE_TIMEOUT_SEC', async () => {
    const config = testConfig({ IDLE_TIMEOUT_SEC: '1', BIND_ADDRESS: '127.0.0.1', PORT: '0' });
    const app = appWith(config, textEvents());
    const server = startServer(config, app);
    try {
      const payloads = [JSON.stringify(body({ stream: true })), JSON.stringify(body())];
      const closedAfter = await Promise.all([
        ...payloads.map((p) => idleCloseAfter(server.port!, p, 9000)),
        // The image endpoints turn the timeout off the same way (here: answered with an error, no image model).
        idleCloseAfter(server.port!, JSON.stringify({ prompt: 'a teapot' }), 9000, '/v1/images/generate'),
      ]);
      // Bun checks socket timeouts on a ~4 s tick: closed within two ticks, not held open for ever.
      for (const ms of closedAfter) expect(ms).toBeLessThan(9000);
    } finally {
      app.stop(true);
    }
  }, 15_000);

  /** A real server whose body limit is 1000 bytes, for `run`, stopped after it. */
  async function withSmallLimit(run: (base: string) => Promise<void>): Promise<void> {
    const config = testConfig({ BIND_ADDRESS: '127.0.0.1', PORT: '0' }, { bodyLimitBytes: 1000 });
    const app = appWith(config, textEvents());
    const server = startServer(config, app);
    try {
      await run(`http://127.0.0.1:${server.port}`);
    } finally {
      app.stop(true);
    }
  }

  /** 100 KB sent chunked (no content-length), between `head` and `tail`. */
  function chunked100k(head = '', tail = ''): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      start(c) {
        if (head) c.enqueue(new TextEncoder().encode(head));
        for (let i = 0; i < 10; i++) c.enqueue(new TextEncoder().encode('x'.repeat(10_000)));
        if (tail) c.enqueue(new TextEncoder().encode(tail));
        c.close();
      },
    });
  }

  test('a body far over the limit, declared or chunked, gets the 413 envelope, never a bare 413', async () => {
    await withSmallLimit(async (base) => {
      const url = `${base}/v1/messages`;
      const huge = JSON.stringify(body({ messages: [{ role: 'user', content: 'x'.repeat(100_000) }] }));
      for (const r of [
        await fetch(url, { method: 'POST', headers: AUTH, body: huge }),
        await fetch(url, { method: 'POST', headers: AUTH, body: chunked100k(), duplex: 'half' } as RequestInit),
      ]) {
        expect(r.status).toBe(413);
        expect(r.headers.get('request-id')).toMatch(/^req_/);
        expect(await r.json()).toMatchObject({ type: 'error', error: { type: 'request_too_large' } });
      }
    });
  });

  test('an image edit form sent chunked past the limit gets the 413 envelope, not read whole into memory', async () => {
    await withSmallLimit(async (base) => {
      const boundary = 'mcpboundary';
      const head = `--${boundary}\r\ncontent-disposition: form-data; name="prompt"\r\n\r\n`;
      const r = await fetch(`${base}/v1/images/edits`, {
        method: 'POST',
        headers: { ...AUTH, 'content-type': `multipart/form-data; boundary=${boundary}` },
        body: chunked100k(head, `\r\n--${boundary}--\r\n`),
        duplex: 'half',
      } as RequestInit);
      expect(r.status).toBe(413);
      expect(await r.json()).toMatchObject({ type: 'error', error: { type: 'request_too_large' } });
    });
  });

  test('a second server on a port already served is refused, not given half the connections', () => {
    const config = testConfig({ BIND_ADDRESS: '127.0.0.1', PORT: '0' });
    const first = appWith(config, textEvents());
    const server = startServer(config, first);
    const second = appWith(config, textEvents());
    try {
      expect(() => startServer({ ...config, port: server.port! }, second)).toThrow(/EADDRINUSE|in use/i);
    } finally {
      second.server?.stop(true);
      first.stop(true);
    }
  });
});

describe('logging', () => {
  /** The log lines a server writes while `fn` talks to it. */
  async function linesLoggedWhile(fn: (base: string) => Promise<void>): Promise<string[]> {
    const lines: string[] = [];
    const saved = [...log.options.reporters];
    log.setReporters([{ log: (o) => void lines.push(o.args.map(String).join(' ')) }]);
    const config = testConfig({ BIND_ADDRESS: '127.0.0.1', PORT: '0' });
    const app = appWith(config, textEvents());
    const server = startServer(config, app);
    try {
      await fn(`http://127.0.0.1:${server.port}`);
    } finally {
      app.stop(true);
      log.setReporters(saved);
    }
    return lines;
  }

  test('the per-request line and 401s never carry the client key', async () => {
    const lines = await linesLoggedWhile(async (base) => {
      await (await fetch(`${base}/v1/messages`, { method: 'POST', headers: AUTH, body: JSON.stringify(body()) })).text();
      await (await fetch(`${base}/v1/messages`, { method: 'POST', headers: { 'x-api-key': `${KEY}-wrong` }, body: '{}' })).text();
      await (await fetch(`${base}/v1/messages`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: '{' })).text();
    });
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.some((l) => l.includes('claude-test-1') && l.includes(' 200 '))).toBe(true);
    for (const l of lines) expect(l).not.toContain(KEY);
  });

  test('a model name with line breaks or a huge one cannot forge or flood log lines', async () => {
    const lines = await linesLoggedWhile(async (base) => {
      for (const model of ['claude-test-1\nreq_forged claude -> claude acct=x 200 1ms in=0 out=0', 'm'.repeat(100_000)]) {
        await (await fetch(`${base}/v1/messages`, { method: 'POST', headers: AUTH, body: JSON.stringify({ ...body(), model }) })).text();
      }
    });
    const mine = lines.filter((l) => l.startsWith('req_'));
    expect(mine).toHaveLength(2);
    for (const l of mine) {
      expect(l).not.toMatch(/[\r\n]/);
      expect(l.length).toBeLessThan(1000);
    }
    expect(mine[0]).toContain('claude-test-1\\nreq_forged');
  });
});

/**
 * Sends one POST (to /v1/messages unless told) on a raw keep-alive socket, reads the whole answer, then stays silent:
 * how long after the answer the server closed the socket (`limit` when it never did).
 */
async function idleCloseAfter(port: number, payload: string, limit: number, path = '/v1/messages'): Promise<number> {
  const sock = connect(port, '127.0.0.1');
  let data = '';
  let closedAt = 0;
  sock.on('data', (d) => void (data += d.toString('latin1')));
  sock.on('close', () => void (closedAt = Date.now()));
  sock.on('error', () => {});
  await new Promise((r) => sock.once('connect', r));
  sock.write(
    `POST ${path} HTTP/1.1\r\nhost: x\r\nx-api-key: ${KEY}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`,
  );
  // The streamed answer ends with the chunked terminator, the others with their JSON.
  while (!/message_stop[\s\S]*0\r\n\r\n$|\r\n\r\n\{[\s\S]*\}$/.test(data) && !closedAt) await Bun.sleep(10);
  const answered = Date.now();
  while (!closedAt && Date.now() - answered < limit) await Bun.sleep(50);
  sock.destroy();
  return closedAt ? closedAt - answered : limit;
}
