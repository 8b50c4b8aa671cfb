// The native client keeps idle connections per access token (connections are per credential,
// antigravity.md §4.2). A token that is replaced (a refresh) or refused (a 401) is never sent again:
// its idle connections must go with it, not sit open until IDLE_SEC, one pool per old token.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { loadConfig } from '../../src/config.ts';
import { trackedSizes } from '../../src/diagnostics.ts';
import { closeHttp1Pools, http1IdleCount } from '../../src/providers/http1.ts';
import { upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';
import { type FakeGoogle, startFakeGoogle } from '../fakes/google.ts';
import { cleanupTempDirs, googleEnv, tempDir } from './helpers.ts';
import { type InProcessServer, serveInProcess } from './in-process.ts';

const PROXY_KEY = ['proxy', 'key', 'FAKE', 'token', 'pools', '0123'].join('-');
const HEADERS = { 'content-type': 'application/json', 'x-api-key': PROXY_KEY, 'anthropic-version': '2023-06-01' };
let google: FakeGoogle;
let server: InProcessServer;

beforeAll(async () => {
  google = startFakeGoogle({ record: false });
  const config = loadConfig({ PROXY_API_KEY: PROXY_KEY, MCP_DATA_DIR: tempDir('mcp-token-pools-'), ...googleEnv(google), UPSTREAM_HTTP_CLIENT: 'native', QUOTA_POLL_INTERVAL_SEC: '3600' });
  const db = openDatabase(config.dbPath);
  upsertAccount(db, { provider: 'antigravity', email: 'p1@example.com', label: 'p1', credentials: { kind: 'oauth', refreshToken: google.refreshTokenFor('p1@example.com') } });
  server = await serveInProcess(config, db);
});

afterAll(async () => {
  await server?.stop();
  closeHttp1Pools();
  await google?.stop();
  cleanupTempDirs();
});

async function ask(): Promise<number> {
  const res = await fetch(`${server.url}/v1/messages`, {
    method: 'POST',
    headers: HEADERS,
    body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 32, messages: [{ role: 'user', content: 'hello' }] }),
  });
  await res.text();
  return res.status;
}

const pools = (): number => trackedSizes()['http1.pools'] ?? 0;

test('a refreshed access token leaves no idle connections behind: pools stay flat over many refreshes', async () => {
  expect(await ask()).toBe(200);
  const before = { pools: pools(), idle: http1IdleCount() };
  expect(before.pools).toBeGreaterThan(0);
  for (let i = 0; i < 20; i++) {
    const r = await fetch(`${server.url}/refresh-token`, { method: 'POST', headers: HEADERS });
    await r.text();
    expect(r.status).toBe(200);
    expect(await ask()).toBe(200);
  }
  expect(pools()).toBeLessThanOrEqual(before.pools);
  expect(http1IdleCount()).toBeLessThanOrEqual(before.idle);
});

test('a token the upstream refused (401) leaves no idle connections behind', async () => {
  expect(await ask()).toBe(200);
  const before = { pools: pools(), idle: http1IdleCount() };
  for (let i = 0; i < 10; i++) {
    google.setMode({ kind: 'unauthorized' }, { times: 1 });
    expect(await ask()).toBe(200);
  }
  expect(pools()).toBeLessThanOrEqual(before.pools);
  expect(http1IdleCount()).toBeLessThanOrEqual(before.idle);
});
