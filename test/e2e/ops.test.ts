// Running it for real (issue 5): `mcp serve` as a child with JSON logs, an accounts.json from the Go
// project imported on first start, requests that succeed and fail, then: one JSON object per log
// line, no secret anywhere in the output, /metrics counting the requests, `mcp usage` seeing them
// after a clean SIGTERM, `mcp health` as the container check, and a stream in flight at SIGTERM
// that still finishes with the database closed cleanly.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDatabase, integrityCheck } from '../../src/store/db.ts';
import { type FakeGoogle, startFakeGoogle } from '../fakes/google.ts';
import { type FakeZai, startFakeZai } from '../fakes/zai.ts';
import { cleanupTempDirs, googleEnv, MCP_FROM_SOURCE, mcpEnv, runMcp, type ServeHandle, startServe, tempDir, waitFor, zaiEnv } from './helpers.ts';

const PROXY_KEY = 'proxy-key-e2e-ops-5f3a9c1b7d';
/** A second key in PROXY_API_KEY (comma-separated), as while handing out a new key. */
const SECOND_KEY = 'proxy-key-e2e-ops-second-82c4e1';
const ZAI_KEY = 'zai-key-e2e-ops-0123456789abcdef';
const EMAIL = 'alice@example.com';

let zai: FakeZai;
let google: FakeGoogle;
let refreshToken = '';

beforeAll(() => {
  zai = startFakeZai({ keys: [ZAI_KEY] });
  google = startFakeGoogle();
  refreshToken = google.refreshTokenFor(EMAIL);
});

afterAll(async () => {
  await zai?.stop();
  await google?.stop();
  cleanupTempDirs();
});

/** A Go multi-claude-proxy accounts.json (see test/fixtures/legacy/README.md) with live fake credentials. */
function legacyFile(dir: string): string {
  const path = join(dir, 'accounts.json');
  writeFileSync(
    path,
    JSON.stringify({
      accounts: [
        { email: EMAIL, source: 'oauth', provider: 'antigravity', refreshToken, projectId: 'fake-project-1' },
        { email: 'zai-0badc0de', source: 'manual', provider: 'zai', apiKey: ZAI_KEY },
      ],
      settings: {},
      activeIndex: 0,
    }),
  );
  return path;
}

async function post(server: ServeHandle, body: unknown, key = PROXY_KEY): Promise<Response> {
  return fetch(`${server.url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': key, 'anthropic-version': '2023-06-01' },
    body: JSON.stringify(body),
  });
}

const hello = (model: string, stream: boolean) => ({ model, max_tokens: 64, stream, messages: [{ role: 'user', content: 'Say hello.' }] });

/** A fake Z.AI and a server over one key of it, both of the test's own (it stops the server); stopped after `fn`. */
async function withOwnServer(
  extraEnv: Record<string, string>,
  fn: (s: { server: ServeHandle; fake: FakeZai; dataDir: string }) => Promise<void>,
  bin?: readonly string[],
): Promise<void> {
  const fake = startFakeZai({ keys: [ZAI_KEY] });
  const dataDir = tempDir();
  const env = mcpEnv(dataDir, { PROXY_API_KEY: PROXY_KEY, ...zaiEnv(fake), ...extraEnv });
  expect((await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', ZAI_KEY], { env })).code).toBe(0);
  const server = await startServe({ env, ...(bin ? { bin } : {}) });
  try {
    await fn({ server, fake, dataDir });
  } finally {
    if (server.proc.exitCode === null) await server.stop('SIGKILL');
    await fake.stop();
  }
}

/** The usage rows a stopped server left, in order of `order`; the database must be intact. */
function usageRows(dataDir: string, order: 'ts' | 'stream' = 'ts'): unknown[] {
  const db = openDatabase(join(dataDir, 'proxy.db'));
  try {
    expect(integrityCheck(db)).toBe('ok');
    return db.query(`SELECT stream, status, error_type AS errorType FROM usage ORDER BY ${order}`).all();
  } finally {
    db.close();
  }
}

/** The rest of a response body, as text, to its end. */
async function readAll(reader: { read(): Promise<{ value?: Uint8Array; done: boolean }> }): Promise<string> {
  let text = '';
  const dec = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return text;
    text += dec.decode(value, { stream: true });
  }
}

describe('a day in the life, with LOG_FORMAT=json and DEBUG on', () => {
  let server: ServeHandle;
  let dataDir = '';
  let env: Record<string, string> = {};
  let output = '';
  let stderr = '';
  let exitCode = -1;
  let metrics = '';
  let secondKeyStatuses: number[] = [];
  let secondKeyRequestId = '';
  const requestIds: string[] = [];

  beforeAll(async () => {
    dataDir = tempDir();
    env = mcpEnv(dataDir, {
      PROXY_API_KEY: `${PROXY_KEY}, ${SECOND_KEY}`,
      LOG_FORMAT: 'json',
      DEBUG: 'true',
      ACCOUNTS_CONFIG_PATH: legacyFile(dataDir),
      ...zaiEnv(zai),
      ...googleEnv(google),
    });
    server = await startServe({ env });

    const ok = await post(server, hello('glm-4.6', true));
    requestIds.push(ok.headers.get('request-id') ?? '');
    expect(await ok.text()).toContain('message_stop');
    const whole = await post(server, hello('glm-4.6', false));
    requestIds.push(whole.headers.get('request-id') ?? '');
    expect(whole.status).toBe(200);
    await whole.text();
    // Error paths: a wrong proxy key, an upstream that rejects the key, an error mid-stream, a bad body,
    // a Google-routed model (its tokens go through the log sink too).
    await (await post(server, hello('glm-4.6', false), 'wrong-key-0123456789')).text();
    zai.setMode({ kind: 'error', code: '1002' }, { times: 1 });
    await (await post(server, hello('glm-4.6', false))).text();
    zai.setMode({ kind: 'sse_error', afterEvents: 2 }, { times: 1 });
    await (await post(server, hello('glm-4.6', true))).text();
    await (await post(server, { model: 'glm-4.6', messages: 'nope' })).text();
    await (await post(server, hello('claude-sonnet-4-5', true))).text();
    await (await fetch(`${server.url}/refresh-token`, { method: 'POST', headers: { 'x-api-key': PROXY_KEY } })).text();
    await (await fetch(`${server.url}/account-limits`, { headers: { authorization: `Bearer ${PROXY_KEY}` } })).text();
    const second = [
      await post(server, hello('glm-4.6', false), SECOND_KEY),
      await fetch(`${server.url}/account-limits`, { headers: { authorization: `Bearer ${SECOND_KEY}` } }),
      await post(server, hello('glm-4.6', false), `${PROXY_KEY},${SECOND_KEY}`),
    ];
    secondKeyStatuses = second.map((r) => r.status);
    secondKeyRequestId = second[0]!.headers.get('request-id') ?? '';
    for (const r of second) await r.text();
    const m = await fetch(`${server.url}/metrics`, { headers: { 'x-api-key': PROXY_KEY } });
    metrics = await m.text();
    exitCode = await server.stop('SIGTERM');
    output = server.output();
    stderr = output.slice(output.indexOf('\n') + 1);
  }, 60_000);

  test('the legacy accounts.json was imported on first start', () => {
    expect(output).toContain('imported accounts from');
    expect(output).toContain('(2 accounts)');
  });

  test('every line the server printed, the listening banner on stdout too, is one JSON object with time, level and msg', () => {
    expect(output).toMatch(/^\{"time":"[^"]+","level":"info","msg":"mcp listening on http:\/\/127\.0\.0\.1:(\d+) \(2 accounts\); dashboard: http:\/\/127\.0\.0\.1:\1\/dashboard"\}\n/);
    const lines = output.split('\n').filter((l) => l.trim() !== '');
    expect(lines.length).toBeGreaterThan(3);
    for (const line of lines) {
      const obj = JSON.parse(line) as Record<string, unknown>;
      expect(typeof obj.time).toBe('string');
      expect(typeof obj.level).toBe('string');
      expect(typeof obj.msg).toBe('string');
    }
  });

  test('each request has one line with its id, models, account, status, latency and tokens', () => {
    const msgs = stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => (JSON.parse(l) as { msg: string }).msg);
    for (const id of requestIds) {
      const mine = msgs.filter((m) => m.startsWith(`${id} `));
      expect(mine).toHaveLength(1);
      expect(mine[0]).toMatch(new RegExp(`^${id} glm-4\\.6 -> glm-4\\.6 acct=\\S+ 200 \\d+ms( stream)? in=\\d+ out=\\d+ cache_r=\\d+ cache_w=\\d+`));
    }
  });

  test('each key of a comma-separated PROXY_API_KEY is accepted on its own, the list as one key is not', () => {
    expect(secondKeyStatuses).toEqual([200, 200, 401]);
  });

  test('with several keys, each request line says which one it came with, by position', () => {
    const msgs = stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(msgs.find((m) => m.startsWith(`${requestIds[0]} `))).toEndWith(' key=1');
    expect(msgs.find((m) => m.startsWith(`${secondKeyRequestId} `))).toEndWith(' key=2');
  });

  test('no secret appears anywhere in the output: proxy keys, Z.AI key, refresh token, access tokens', () => {
    const secrets = [PROXY_KEY, SECOND_KEY, ZAI_KEY, refreshToken, ...new Set(google.requests.map((r) => r.token).filter((t): t is string => !!t))];
    expect(secrets.length).toBeGreaterThanOrEqual(4); // at least one access token was used
    for (const s of secrets) expect(output).not.toContain(s);
  });

  test('/metrics counted the requests by provider, model and status, and their tokens', () => {
    expect(metrics).toMatch(/^mcp_requests_total\{model="glm-4\.6",provider="zai",status="200"\} [2-9]/m);
    expect(metrics).toMatch(/^mcp_tokens_total\{model="glm-4\.6",provider="zai",type="input"\} [1-9]/m);
    expect(metrics).toMatch(/^mcp_tokens_total\{model="glm-4\.6",provider="zai",type="output"\} [1-9]/m);
    expect(metrics).toContain('# TYPE mcp_request_duration_seconds histogram');
  });

  test('SIGTERM exits 0 and the usage recorded before it is in the database', async () => {
    expect(exitCode).toBe(0);
    const r = await runMcp(['usage', '--by', 'provider', '--json'], { env });
    expect(r.code).toBe(0);
    const rows = (JSON.parse(r.stdout) as { rows: Array<{ key: string; requests: number }> }).rows;
    expect(rows.find((x) => x.key === 'zai')?.requests).toBeGreaterThanOrEqual(4);
    const table = await runMcp(['usage', '--by', 'model'], { env });
    expect(table.stdout).toContain('glm-4.6');
  });
});

describe('mcp health against a real server (the Docker HEALTHCHECK)', () => {
  test('exit 0 while serving, exit 1 once stopped', async () => {
    const env = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ...zaiEnv(zai) });
    const server = await startServe({ env });
    try {
      const up = await runMcp(['health', '--url', server.url], { env });
      expect(up.code).toBe(0);
      expect(up.stdout).toContain('healthy');
      const byPort = await runMcp(['health'], { env: { ...env, PORT: String(server.port) } });
      expect(byPort.code).toBe(0);
    } finally {
      expect(await server.stop()).toBe(0);
    }
    const down = await runMcp(['health', '--url', server.url, '--timeout', '2'], { env });
    expect(down.code).toBe(1);
    expect(down.stderr).toStartWith('mcp: unhealthy:');
  }, 30_000);
});

describe('graceful shutdown', () => {
  test('a stream in flight at SIGTERM finishes, the process exits 0 and the database is intact', async () => {
    const slow = startFakeZai({ keys: [ZAI_KEY] });
    slow.setMode({ kind: 'slow_chunks', chunks: 10, delayMs: 150 });
    const dataDir = tempDir();
    const env = mcpEnv(dataDir, { PROXY_API_KEY: PROXY_KEY, SHUTDOWN_GRACE_SEC: '20', ...zaiEnv(slow) });
    const add = await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', ZAI_KEY], { env });
    expect(add.code).toBe(0);
    const server = await startServe({ env });
    try {
      const res = await post(server, hello('glm-4.6', true));
      expect(res.status).toBe(200);
      const requestId = res.headers.get('request-id');
      const reader = res.body!.getReader();
      const dec = new TextDecoder();
      let body = '';
      while (!body.includes('content_block_delta')) {
        const { value, done } = await reader.read();
        if (done) break;
        body += dec.decode(value, { stream: true });
      }
      const signalled = Date.now();
      server.proc.kill('SIGTERM');
      // New connections are refused at once while the old stream goes on.
      await Bun.sleep(150);
      const refused = await fetch(`${server.url}/health`).then(
        () => false,
        () => true,
      );
      expect(refused).toBe(true);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        body += dec.decode(value, { stream: true });
      }
      expect(body).toContain('event: message_stop');
      expect(Date.now() - signalled).toBeGreaterThan(300); // it really was still streaming
      expect(await server.stop()).toBe(0);
      expect(server.output()).toContain('SIGTERM: stopping');

      const db = openDatabase(join(dataDir, 'proxy.db'));
      try {
        expect(integrityCheck(db)).toBe('ok');
        const row = db.query('SELECT status, stream FROM usage WHERE request_id = ?').get(requestId) as { status: number; stream: number } | null;
        expect(row).toEqual({ status: 200, stream: 1 });
      } finally {
        db.close();
      }
      // The last connection closed cleanly: SQLite checkpointed and removed the write-ahead log.
      expect(existsSync(join(dataDir, 'proxy.db-wal'))).toBe(false);
    } finally {
      if (server.proc.exitCode === null) await server.stop('SIGKILL');
      await slow.stop();
    }
  }, 30_000);

  // At the end of the grace the connections were cut: the SDK saw "Connection error." mid-stream
  // and a request not yet answered a reset socket, where the README promises a clean error.
  test('a stream longer than SHUTDOWN_GRACE_SEC ends with an error event saying so when the grace is over, a request not yet answered gets the error envelope, and the process still exits 0 cleanly', async () => {
    await withOwnServer({ SHUTDOWN_GRACE_SEC: '1' }, async ({ server, fake, dataDir }) => {
      fake.setMode({ kind: 'slow_chunks', chunks: 60, delayMs: 200 });
      const res = await post(server, hello('glm-4.6', true));
      const reader = res.body!.getReader();
      await reader.read();
      // A non-streaming answer that cannot finish within the grace either.
      const whole = post(server, hello('glm-4.6', false));
      await waitFor(() => fake.messages().length === 2, 10_000, 'the second request upstream');
      const signalled = Date.now();
      server.proc.kill('SIGTERM');
      const body = await readAll(reader);
      expect(body).not.toContain('event: message_stop');
      const last = body.trimEnd().split('\n\n').at(-1)!;
      expect(last).toStartWith('event: error\n');
      const error = JSON.parse(last.split('\n')[1]!.slice('data: '.length)) as { type: string; error: { type: string; message: string } };
      expect(error.type).toBe('error');
      expect(error.error.type).toBe('overloaded_error');
      expect(error.error.message).toContain('SHUTDOWN_GRACE_SEC');
      const answer = await whole;
      expect(answer.status).toBe(529);
      expect(((await answer.json()) as { error: { type: string } }).error.type).toBe('overloaded_error');
      expect(await server.stop()).toBe(0);
      const took = Date.now() - signalled;
      expect(took).toBeGreaterThanOrEqual(900);
      expect(took).toBeLessThan(8000);
      expect(server.output()).toContain('grace period over');
      // The server ended them, not the client: usage says so, and counts them as errors, not cancels.
      expect(usageRows(dataDir, 'stream')).toEqual([
        { stream: 0, status: 503, errorType: 'server_stopped' },
        { stream: 1, status: 503, errorType: 'server_stopped' },
      ]);
    });
  }, 30_000);

  // A second Ctrl+C exited at once, and the usage rows still waiting in memory (written once a
  // second) went with it: the requests just served were missing from `mcp usage`.
  test('a second SIGINT stops it at once (exit 1), and still stores the usage of what it served and of the stream it cut', async () => {
    await withOwnServer({ SHUTDOWN_GRACE_SEC: '20' }, async ({ server, fake, dataDir }) => {
      for (let i = 0; i < 3; i++) expect((await post(server, hello('glm-4.6', false))).status).toBe(200);
      fake.setMode({ kind: 'slow_chunks', chunks: 100, delayMs: 100 });
      const res = await post(server, hello('glm-4.6', true));
      await res.body!.getReader().read();
      server.proc.kill('SIGINT');
      await waitFor(() => server.output().includes('SIGINT: stopping'), 10_000, 'the first SIGINT taken');
      const signalled = Date.now();
      server.proc.kill('SIGINT');
      expect(await server.stop()).toBe(1);
      expect(Date.now() - signalled).toBeLessThan(5000);
      expect(server.output()).toContain('second signal, stopping now');
      const ok = { stream: 0, status: 200, errorType: null };
      expect(usageRows(dataDir)).toEqual([ok, ok, ok, { stream: 1, status: 503, errorType: 'server_stopped' }]);
    });
  }, 30_000);

  // A request waiting for a limit to reset has nothing upstream to finish, yet it held the stop for
  // the whole grace (30 s by default: a restart stood still that long) and was then cut.
  test('a request waiting for a limit to reset at SIGTERM is answered at once with a retryable 529, and the stop does not wait out the grace', async () => {
    await withOwnServer({ SHUTDOWN_GRACE_SEC: '20', MAX_WAIT_SEC: '60' }, async ({ server, fake }) => {
      fake.setMode({ kind: 'http429', retryAfter: 30 }, { times: 1 });
      const waiting = post(server, hello('glm-4.6', false));
      await waitFor(() => server.output().includes('waiting'), 10_000, 'the request waiting for the reset');
      const signalled = Date.now();
      server.proc.kill('SIGTERM');
      const res = await waiting;
      expect(res.status).toBe(529);
      expect(res.headers.get('retry-after')).toBe('1');
      const j = (await res.json()) as { error: { type: string; message: string } };
      expect(j.error.type).toBe('overloaded_error');
      expect(j.error.message).toContain('mcp is stopping');
      expect(await server.stop()).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(10_000);
      expect(fake.messages()).toHaveLength(1);
    });
  }, 30_000);

  // A closed terminal or SSH session (SIGHUP) killed `mcp serve` outright: the stream in flight cut
  // off mid-answer, and the usage of the requests it had just served, still waiting to be written, lost.
  test('SIGHUP (the terminal closed) stops it like SIGTERM: the stream finishes, usage is stored, exit 0', async () => {
    await withOwnServer({ SHUTDOWN_GRACE_SEC: '20' }, async ({ server, fake, dataDir }) => {
      expect((await post(server, hello('glm-4.6', false))).status).toBe(200);
      fake.setMode({ kind: 'slow_chunks', chunks: 8, delayMs: 100 });
      const res = await post(server, hello('glm-4.6', true));
      const reader = res.body!.getReader();
      await reader.read();
      server.proc.kill('SIGHUP');
      expect(await readAll(reader)).toContain('event: message_stop');
      expect(await server.stop()).toBe(0);
      expect(server.output()).toContain('SIGHUP: stopping');
      expect(usageRows(dataDir)).toEqual([
        { stream: 0, status: 200, errorType: null },
        { stream: 1, status: 200, errorType: null },
      ]);
    });
  }, 30_000);

  test('started with SIGHUP ignored (`nohup mcp serve &`), a hang-up leaves it serving', async () => {
    // What nohup does: SIGHUP set to ignored before mcp starts.
    const bin = ['/bin/sh', '-c', 'trap "" HUP; exec "$0" "$@"', ...MCP_FROM_SOURCE];
    await withOwnServer({}, async ({ server }) => {
      server.proc.kill('SIGHUP');
      // The signal is delivered at once; a server it stopped would refuse this request.
      await Bun.sleep(200);
      expect((await post(server, hello('glm-4.6', false))).status).toBe(200);
      expect(server.proc.exitCode).toBeNull();
      expect(server.output()).not.toContain('SIGHUP');
      expect(await server.stop()).toBe(0);
    }, bin);
  }, 30_000);
});


describe('two servers on one data directory', () => {
  // A second `mcp serve` on another port shared the database without a word: safe for limits and
  // usage, but each applies the concurrency caps on its own, so together they exceed them.
  test('the second one warns, naming the first; once the first has stopped a new start is quiet', async () => {
    const dataDir = tempDir();
    const env = mcpEnv(dataDir, { PROXY_API_KEY: PROXY_KEY, ...zaiEnv(zai) });
    expect((await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', ZAI_KEY], { env })).code).toBe(0);
    const first = await startServe({ env });
    let second: ServeHandle | undefined;
    let third: ServeHandle | undefined;
    try {
      expect(first.output()).not.toContain('another mcp serve');
      second = await startServe({ env });
      const warned = second.output().split('\n').filter((l) => l.includes('another mcp serve is using'));
      expect(warned).toHaveLength(1);
      expect(warned[0]).toContain(`pid ${first.proc.pid} on 127.0.0.1:${first.port}`);
      // Both serve from the shared pool.
      expect((await post(first, hello('glm-4.6', false))).status).toBe(200);
      expect((await post(second, hello('glm-4.6', false))).status).toBe(200);
      expect(await first.stop()).toBe(0);
      expect(await second.stop()).toBe(0);
      third = await startServe({ env });
      expect(third.output()).not.toContain('another mcp serve');
    } finally {
      for (const s of [first, second, third]) if (s && s.proc.exitCode === null) await s.stop('SIGKILL');
    }
  }, 30_000);

  test('a server that was killed is not named by the next start', async () => {
    const dataDir = tempDir();
    const env = mcpEnv(dataDir, { PROXY_API_KEY: PROXY_KEY, ...zaiEnv(zai) });
    const killed = await startServe({ env });
    await killed.stop('SIGKILL');
    const next = await startServe({ env });
    try {
      expect(next.output()).not.toContain('another mcp serve');
    } finally {
      await next.stop();
    }
  }, 30_000);
});
