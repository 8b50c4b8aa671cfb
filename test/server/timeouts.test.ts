// READ_TIMEOUT_SEC bounds how long a request body may take to arrive; WRITE_TIMEOUT_SEC bounds the
// whole answer. Both end in the Anthropic envelope (or an error event once a stream has begun),
// and the upstream call is stopped.
import { afterEach, describe, expect, test } from 'bun:test';
import { log } from '../../src/log.ts';
import { AUTH, body, dispatchSteps, post, rawConnection, read, startHarness, testConfig, textEvents, type Harness } from './stubs.ts';

let h: Harness | undefined;
afterEach(() => {
  h?.stop();
  h = undefined;
});

/**
 * Sends `path` a request whose body stops after its first bytes, and waits (up to `waitMs`) for the
 * server's timeout_error. Returns the raw reply and how long after the send it came.
 */
async function stalledBody(h: Harness, path: string, contentType: string, json: string, waitMs: number): Promise<{ reply: string; ms: number }> {
  const { sock, reply } = await rawConnection(h);
  sock.write(
    `POST ${path} HTTP/1.1\r\nhost: x\r\nx-api-key: ${AUTH['x-api-key']}\r\ncontent-type: ${contentType}\r\n` +
      `content-length: ${json.length}\r\n\r\n${json.slice(0, 10)}`,
  );
  const t0 = Date.now();
  while (!reply().includes('timeout_error') && Date.now() - t0 < waitMs) await Bun.sleep(20);
  const ms = Date.now() - t0;
  sock.end();
  return { reply: reply(), ms };
}

describe('READ_TIMEOUT_SEC', () => {
  test('a body that stops arriving gets 408 timeout_error and the server keeps serving', async () => {
    h = startHarness(testConfig({ READ_TIMEOUT_SEC: '1' }));
    const { reply, ms } = await stalledBody(h, '/v1/messages', 'application/json', JSON.stringify(body()), 5000);
    expect(reply).toStartWith('HTTP/1.1 408');
    expect(reply).toContain('READ_TIMEOUT_SEC');
    expect(ms).toBeLessThan(4000);
    expect(h.calls).toHaveLength(0);
    expect((await post(h, '/v1/messages', body())).status).toBe(200);
  });
});

describe('READ_TIMEOUT_SEC against a client that trickles its body', () => {
  test('the 408 closes the connection, so a byte now and then cannot hold the socket and its half-read body for ever', async () => {
    h = startHarness(testConfig({ READ_TIMEOUT_SEC: '1' }));
    const { sock, reply, closed } = await rawConnection(h);
    const json = JSON.stringify(body());
    sock.write(`POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: ${AUTH['x-api-key']}\r\ncontent-type: application/json\r\ncontent-length: ${json.length}\r\n\r\n${json.slice(0, 10)}`);
    const t0 = Date.now();
    while (!closed() && Date.now() - t0 < 4000) {
      await Bun.sleep(200);
      if (!closed()) sock.write(' ');
    }
    expect(reply()).toStartWith('HTTP/1.1 408');
    expect(reply().toLowerCase()).toContain('connection: close');
    expect(closed()).toBe(true);
    sock.end();
  });
});

describe('a client that trickles its headers', () => {
  // No setting of ours bounds the header phase: the runtime's HTTP layer closes a connection whose
  // headers are not complete within about ten seconds, however long IDLE_TIMEOUT_SEC is and however
  // often a byte arrives. This guards that protection across runtime upgrades.
  test('is cut off by the runtime within 15 s even with a long IDLE_TIMEOUT_SEC, and the server keeps serving', async () => {
    h = startHarness(testConfig({ IDLE_TIMEOUT_SEC: '120' }));
    let closed = false;
    const sock = await Bun.connect({
      hostname: '127.0.0.1',
      port: Number(new URL(h.base).port),
      socket: {
        data() {},
        close() {
          closed = true;
        },
      },
    });
    sock.write('POST /v1/messages HTTP/1.1\r\nhost: x\r\n');
    const t0 = Date.now();
    while (!closed && Date.now() - t0 < 15_000) {
      await Bun.sleep(500);
      if (!closed) sock.write('x');
    }
    expect(closed).toBe(true);
    expect(h.calls).toHaveLength(0);
    expect((await post(h, '/v1/messages', body())).status).toBe(200);
  }, 20_000);
});

describe('a client that leaves while sending its body', () => {
  test('is recorded as gone (499), not logged as a server error', async () => {
    h = startHarness(testConfig({ READ_TIMEOUT_SEC: '5' }));
    const lines: string[] = [];
    const saved = [...log.options.reporters];
    log.setReporters([{ log: (o) => void lines.push(o.args.map(String).join(' ')) }]);
    try {
      const sock = await Bun.connect({ hostname: '127.0.0.1', port: Number(new URL(h.base).port), socket: { data() {} } });
      const json = JSON.stringify(body());
      sock.write(
        `POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: ${AUTH['x-api-key']}\r\ncontent-type: application/json\r\n` +
          `content-length: ${json.length}\r\n\r\n${json.slice(0, 10)}`,
      );
      await Bun.sleep(100);
      sock.terminate();
      const t0 = Date.now();
      while (!h.records.length && Date.now() - t0 < 3000) await Bun.sleep(20);
    } finally {
      log.setReporters(saved);
    }
    expect(h.records.map((r) => r.status)).toEqual([499]);
    expect(lines.filter((l) => l.includes('unexpected server error'))).toEqual([]);
    expect(h.calls).toHaveLength(0);
  });
});

test('count_tokens: a body that stops arriving gets 408 timeout_error too', async () => {
  h = startHarness(testConfig({ READ_TIMEOUT_SEC: '1' }));
  const json = JSON.stringify({ model: 'claude-test-1', messages: [{ role: 'user', content: 'foo' }] });
  const { reply } = await stalledBody(h, '/v1/messages/count_tokens', 'application/json', json, 4000);
  expect(reply).toStartWith('HTTP/1.1 408');
  expect(reply).toContain('READ_TIMEOUT_SEC');
});

test('the image endpoints: a body that stops arriving gets 408 timeout_error too', async () => {
  for (const [path, ct] of [
    ['/v1/images/generations', 'application/json'],
    ['/v1/images/edits', 'multipart/form-data; boundary=b'],
  ] as const) {
    h = startHarness(testConfig({ READ_TIMEOUT_SEC: '1' }));
    const { reply } = await stalledBody(h, path, ct, `{"prompt": "${'x'.repeat(480)}"}`, 4000);
    expect(reply).toStartWith('HTTP/1.1 408');
    expect(reply).toContain('READ_TIMEOUT_SEC');
    h.stop();
  }
});

describe('WRITE_TIMEOUT_SEC', () => {
  test('a non-streaming answer that takes too long gets 504 timeout_error and the upstream is aborted', async () => {
    h = startHarness(testConfig({ WRITE_TIMEOUT_SEC: '1' }));
    const evs = textEvents();
    h.dispatch = dispatchSteps([evs[0]!, { wait: 10_000 }, ...evs.slice(1)]);
    const t0 = Date.now();
    const r = await post(h, '/v1/messages', body());
    expect(r.status).toBe(504);
    const e = await read(r);
    expect(e.type).toBe('error');
    expect(e.error.type).toBe('timeout_error');
    expect(e.error.message).toContain('WRITE_TIMEOUT_SEC');
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(h.calls[0]!.signal.aborted).toBe(true);
    expect(h.records.at(-1)).toMatchObject({ status: 504, errorType: 'timeout_error' });
  });

  test('a stream that runs too long ends with a timeout_error event and the upstream is aborted', async () => {
    h = startHarness(testConfig({ WRITE_TIMEOUT_SEC: '1', PING_INTERVAL_SEC: '10' }));
    const evs = textEvents();
    h.dispatch = dispatchSteps([evs[0]!, evs[1]!, { wait: 10_000 }, ...evs.slice(2)]);
    const r = await post(h, '/v1/messages', body({ stream: true }));
    expect(r.status).toBe(200);
    const text = await r.text();
    expect(text).toContain('event: message_start');
    expect(text).toContain('event: error');
    expect(text).toContain('"timeout_error"');
    expect(text).not.toContain('message_stop');
    expect(h.calls[0]!.signal.aborted).toBe(true);
    expect(h.records.at(-1)).toMatchObject({ status: 200, errorType: 'timeout_error' });
  });

  test("a client that allows longer (Claude Code's API_TIMEOUT_MS, sent as x-stainless-timeout) is not cut at WRITE_TIMEOUT_SEC", async () => {
    h = startHarness(testConfig({ WRITE_TIMEOUT_SEC: '1', PING_INTERVAL_SEC: '10' }));
    const evs = textEvents();
    h.dispatch = dispatchSteps([evs[0]!, evs[1]!, { wait: 1500 }, ...evs.slice(2)]);
    const r = await post(h, '/v1/messages', body({ stream: true }), { ...AUTH, 'x-stainless-timeout': '3' });
    const text = await r.text();
    expect(text).toContain('message_stop');
    expect(text).not.toContain('event: error');
  });

  test('a client timeout shorter than WRITE_TIMEOUT_SEC, or not a number, does not shorten it', async () => {
    h = startHarness(testConfig({ WRITE_TIMEOUT_SEC: '2' }));
    const evs = textEvents();
    for (const t of ['0.5', 'soon']) {
      h.dispatch = dispatchSteps([evs[0]!, { wait: 1000 }, ...evs.slice(1)]);
      const r = await post(h, '/v1/messages', body(), { ...AUTH, 'x-stainless-timeout': t });
      expect(r.status).toBe(200);
    }
  });

  test('an answer within the limit is untouched', async () => {
    h = startHarness(testConfig({ WRITE_TIMEOUT_SEC: '2' }));
    const evs = textEvents();
    h.dispatch = dispatchSteps([evs[0]!, { wait: 300 }, ...evs.slice(1)]);
    const r = await post(h, '/v1/messages', body({ stream: true }));
    const text = await r.text();
    expect(text).toContain('message_stop');
    expect(text).not.toContain('event: error');
  });
});
