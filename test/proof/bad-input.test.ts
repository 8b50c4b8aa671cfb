// Bad input against the real program: `mcp serve` as a child process with one fake Z.AI account,
// fed a corpus of malformed requests. Each must come back as the documented 4xx in the Anthropic
// envelope with a request id, none may reach the upstream, and afterwards the server still answers
// a good request and its database passes PRAGMA integrity_check.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { Database } from 'bun:sqlite';
import { join } from 'node:path';
import { type FakeZai, startFakeZai } from '../fakes/zai.ts';
import { CHILD_PROCESS_HOOK_MS, cleanupTempDirs, mcpEnv, runMcp, type ServeHandle, startServe, tempDir, zaiEnv } from '../e2e/helpers.ts';
import { badInputCases, type Case, good } from '../fixtures/bad-input/corpus.ts';

const PROXY_KEY = 'proxy-key-proof-bad-input-0123';
const ZAI_KEY = 'zai-key-proof-bad-input-456789';
const AUTH = { 'x-api-key': PROXY_KEY, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' };

let zai: FakeZai;
let server: ServeHandle;
let dataDir: string;

beforeAll(async () => {
  zai = startFakeZai({ keys: [ZAI_KEY] });
  dataDir = tempDir('mcp-proof-bad-');
  const env = mcpEnv(dataDir, { PROXY_API_KEY: PROXY_KEY, ...zaiEnv(zai) });
  const add = await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', ZAI_KEY, '--label', 'glm'], { env });
  expect(add.code).toBe(0);
  server = await startServe({ env });
}, CHILD_PROCESS_HOOK_MS);

afterAll(async () => {
  await server?.stop();
  await zai?.stop();
  cleanupTempDirs();
}, CHILD_PROCESS_HOOK_MS);

async function send(c: Case): Promise<Response> {
  const headers: Record<string, string> = { ...AUTH, ...c.headers };
  for (const [k, v] of Object.entries(headers)) if (v === '') delete headers[k];
  const method = c.method ?? 'POST';
  let body: string | Uint8Array | undefined;
  if (method !== 'GET') {
    body = typeof c.body === 'string' || c.body instanceof Uint8Array ? c.body : JSON.stringify(c.body);
  }
  return fetch(`${server.url}${c.path ?? '/v1/messages'}`, { method, headers, body });
}

interface Envelope {
  type: string;
  error: { type: string; message: string };
  request_id?: string;
}

async function expectEnvelope(res: Response, status: number, type: string): Promise<Envelope> {
  const text = await res.text();
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toContain('application/json');
  const rid = res.headers.get('request-id');
  expect(rid).toMatch(/^req_/);
  const env = JSON.parse(text) as Envelope;
  expect(env.type).toBe('error');
  expect(env.error.type).toBe(type);
  expect(typeof env.error.message).toBe('string');
  expect(env.error.message.length).toBeGreaterThan(0);
  expect(env.request_id).toBe(rid!);
  // Nothing of the server's insides leaks into the message.
  expect(env.error.message).not.toMatch(/\n\s+at |node_modules|\.ts:\d+/);
  return env;
}

const CASES = badInputCases(ZAI_KEY);

describe('malformed requests get the documented 4xx in the Anthropic envelope', () => {
  test('the corpus holds at least 40 cases', () => expect(CASES.length).toBeGreaterThanOrEqual(40));

  for (const c of CASES) {
    test(`${c.name} -> ${c.status} ${c.type}`, async () => {
      const env = await expectEnvelope(await send(c), c.status, c.type);
      if (c.says) expect(env.error.message).toMatch(c.says);
    });
  }

  test('a declared content-length over 50 MB -> 413 request_too_large, refused before the bytes come', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      let data = '';
      Bun.connect({
        hostname: '127.0.0.1',
        port: server.port,
        socket: {
          open(s) {
            s.write(
              `POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: ${PROXY_KEY}\r\ncontent-type: application/json\r\ncontent-length: ${60 * 1024 * 1024}\r\n\r\n{`,
            );
          },
          data(s, d) {
            data += d.toString();
            if (data.includes('\r\n\r\n') && data.trimEnd().endsWith('}')) {
              s.end();
              resolve(data);
            }
          },
          error: (_s, e) => reject(e),
          close: () => resolve(data),
        },
      }).catch(reject);
    });
    expect(reply).toStartWith('HTTP/1.1 413');
    expect(reply.toLowerCase()).toContain('request-id: req_');
    expect(reply).toContain('"request_too_large"');
  });

  test('a 51 MB body sent without a length (chunked) -> 413 request_too_large', async () => {
    const piece = new TextEncoder().encode('a'.repeat(1024 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent === 0) c.enqueue(new TextEncoder().encode('{"model":"glm-4.6","max_tokens":5,"pad":"'));
        if (sent++ < 51) c.enqueue(piece);
        else {
          c.enqueue(new TextEncoder().encode('"}'));
          c.close();
        }
      },
    });
    const res = await fetch(`${server.url}/v1/messages`, { method: 'POST', headers: AUTH, body: stream }).catch((e: unknown) => e);
    // The server may cut the upload short once it has answered; then fetch reports the cut, not a 413.
    if (res instanceof Response) await expectEnvelope(res, 413, 'request_too_large');
    else expect(String(res)).toMatch(/reset|closed|broken|socket/i);
  });

  test('a 51 MB body with its real content-length -> 413 request_too_large', async () => {
    const big = new Uint8Array(51 * 1024 * 1024).fill(0x61);
    big.set(new TextEncoder().encode('{"model":"glm-4.6","pad":"'), 0);
    big.set(new TextEncoder().encode('"}'), big.length - 2);
    const res = await fetch(`${server.url}/v1/messages`, { method: 'POST', headers: AUTH, body: big }).catch((e: unknown) => e);
    if (res instanceof Response) await expectEnvelope(res, 413, 'request_too_large');
    else expect(String(res)).toMatch(/reset|closed|broken|socket/i);
  });
});

describe('after the corpus', () => {
  test('no malformed request reached the upstream', () => {
    expect(zai.messages().length).toBe(0);
  });

  test('the server is still up and answers a good request', async () => {
    expect(server.proc.exitCode).toBeNull();
    const res = await fetch(`${server.url}/v1/messages`, { method: 'POST', headers: AUTH, body: JSON.stringify(good()) });
    expect(res.status).toBe(200);
    const msg = (await res.json()) as { type: string; content: Array<{ type: string; text?: string }> };
    expect(msg.type).toBe('message');
    expect(msg.content.some((b) => b.type === 'text' && (b.text ?? '').length > 0)).toBe(true);
    expect(zai.messages().length).toBe(1);
  });

  test('a streamed good request still works', async () => {
    const res = await fetch(`${server.url}/v1/messages`, { method: 'POST', headers: AUTH, body: JSON.stringify(good({ stream: true })) });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('event: message_start');
    expect(text).toContain('event: message_stop');
  });

  test('the server logged no internal error', () => {
    expect(server.output()).not.toMatch(/unexpected server error|Internal server error|\n\s+at .*\.ts:\d+/);
  });

  test('the database passes PRAGMA integrity_check and still holds the account', () => {
    const db = new Database(join(dataDir, 'proxy.db'), { readonly: true });
    try {
      const row = db.query('PRAGMA integrity_check').get() as Record<string, string>;
      expect(Object.values(row)[0]).toBe('ok');
      const n = db.query('SELECT count(*) AS n FROM accounts').get() as { n: number };
      expect(n.n).toBe(1);
    } finally {
      db.close();
    }
  });
});
