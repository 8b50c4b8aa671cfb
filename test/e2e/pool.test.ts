// The pool end to end: three Z.AI accounts on the fake Z.AI, the real server (createApp +
// createRouting with the real Z.AI provider, on an ephemeral port), and plain HTTP clients. Then
// the same through `mcp serve` as a child process, to prove the wiring, CLI edits and restarts.
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import type { Database } from 'bun:sqlite';
import { loadConfig } from '../../src/config.ts';
import type { Routing } from '../../src/gateway/index.ts';
import { type Account, findAccount, listAccounts, updateAccount, upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';
import { listLimits } from '../../src/store/limits.ts';
import { type FakeGoogle, startFakeGoogle } from '../fakes/google.ts';
import { defaultFakeQuota, type FakeZai, startFakeZai } from '../fakes/zai.ts';
import { cleanupTempDirs, googleEnv, mcpEnv, runMcp, startServe, tempDir, waitFor, zaiEnv } from './helpers.ts';
import { serveInProcess } from './in-process.ts';

const PROXY_KEY = 'proxy-key-e2e-pool-0123456789';
const KEYS = ['zai-pool-key-a-000001', 'zai-pool-key-b-000002', 'zai-pool-key-c-000003'];
const LABELS = ['a', 'b', 'c'];
let zai: FakeZai;
let google: FakeGoogle;
const EMAILS = ['g1@example.com', 'g2@example.com'];

beforeAll(() => {
  zai = startFakeZai({ keys: KEYS });
  google = startFakeGoogle();
});
afterAll(async () => {
  await zai?.stop();
  await google?.stop();
  cleanupTempDirs();
});
afterEach(() => {
  zai.clearModes();
  google.clearModes();
  zai.setQuota(defaultFakeQuota());
  for (const k of KEYS) zai.setQuota(defaultFakeQuota(), { key: k });
});

interface Proxy {
  url: string;
  dir: string;
  db: Database;
  routing: Routing;
  accounts: Account[];
  stop(): Promise<void>;
}

async function startProxy(env: Record<string, string> = {}, dir = tempDir('mcp-pool-'), opts: { google?: boolean } = {}): Promise<Proxy> {
  const config = loadConfig({ PROXY_API_KEY: PROXY_KEY, MCP_DATA_DIR: dir, ...zaiEnv(zai), ...googleEnv(google), ...env });
  const db = openDatabase(config.dbPath);
  if (listAccounts(db).length === 0) {
    KEYS.forEach((k, i) =>
      upsertAccount(db, { provider: 'zai', label: LABELS[i], credentials: { kind: 'api_key', apiKey: k } }, Date.now() + i),
    );
    if (opts.google) {
      EMAILS.forEach((email, i) =>
        upsertAccount(
          db,
          { provider: 'antigravity', email, label: email.split('@')[0], credentials: { kind: 'oauth', refreshToken: google.refreshTokenFor(email) } },
          Date.now() + 10 + i,
        ),
      );
    }
  }
  const server = await serveInProcess(config, db, () => Date.now());
  return { ...server, dir, db, accounts: listAccounts(db) };
}

interface Reply {
  status: number;
  account: string | null;
  upstream: string | null;
  fallbackFrom: string | null;
  headers: Headers;
  body: Record<string, unknown>;
}

let seq = 0;
/** One non-streaming request; a fresh conversation unless `session` is given. */
/** tools: sent with tools, as Claude Code's main turns are (a first turn without them is taken for a side request, its title). */
async function ask(p: Proxy, model: string, opts: { session?: string; turn?: number; headers?: Record<string, string>; stream?: boolean; tools?: boolean } = {}): Promise<Reply> {
  const messages: Array<{ role: string; content: string }> = [{ role: 'user', content: `conversation ${opts.session ?? `fresh-${++seq}-${Math.random()}`}` }];
  for (let i = 0; i < (opts.turn ?? 0); i++) messages.push({ role: 'assistant', content: `answer ${i}` }, { role: 'user', content: `turn ${i + 1}` });
  const body: Record<string, unknown> = { model, max_tokens: 64, messages, stream: opts.stream ?? false };
  if (opts.session) body.metadata = { user_id: JSON.stringify({ device_id: 'dev', account_uuid: '', session_id: opts.session }) };
  if (opts.tools) body.tools = [{ name: 'Bash', description: 'run a command', input_schema: { type: 'object', properties: {} } }];
  const res = await fetch(`${p.url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': PROXY_KEY, 'anthropic-version': '2023-06-01', ...opts.headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    account: res.headers.get('x-proxy-account'),
    upstream: res.headers.get('x-proxy-upstream-model'),
    fallbackFrom: res.headers.get('x-proxy-fallback-from'),
    headers: res.headers,
    body: opts.stream ? { text } : (JSON.parse(text) as Record<string, unknown>),
  };
}

function idOf(p: Proxy, label: string): string {
  return p.accounts.find((a) => a.label === label)!.id;
}

/** Keys the fake saw on /v1/messages for a model, from request index `from` on. */
function keysFor(model: string, from: number): string[] {
  return zai
    .messages()
    .slice(from)
    .filter((r) => (r.body as { model?: string }).model === model)
    .map((r) => r.key ?? '');
}

describe('the pool in front of three Z.AI accounts', () => {
  test('a 429 with a reset on one account moves traffic to the others, and only for that model', async () => {
    const p = await startProxy();
    try {
      zai.setMode({ kind: 'http429', retryAfter: 60 }, { key: KEYS[0], times: 1 });
      const first = await ask(p, 'glm-5.1');
      expect(first.status).toBe(200);
      expect(first.account).not.toBe(idOf(p, 'a'));
      const mark = zai.messages().length;
      for (let i = 0; i < 6; i++) expect((await ask(p, 'glm-5.1')).status).toBe(200);
      expect(keysFor('glm-5.1', mark)).not.toContain(KEYS[0]);
      // Other models still use a.
      const others = await Promise.all([1, 2, 3].map(() => ask(p, 'glm-4.7')));
      expect(others.map((r) => r.account)).toContain(idOf(p, 'a'));
      const limits = listLimits(p.db);
      expect(limits).toHaveLength(1);
      expect(limits[0]).toMatchObject({ accountId: idOf(p, 'a'), model: 'glm-5.1', kind: 'rate_limited' });
    } finally {
      await p.stop();
    }
  });

  test('the limit expires on time', async () => {
    const p = await startProxy();
    try {
      zai.setMode({ kind: 'http429', retryAfter: 3 }, { key: KEYS[0], times: 1 });
      expect((await ask(p, 'glm-4.6')).account).not.toBe(idOf(p, 'a'));
      const resetAt = listLimits(p.db)[0]!.resetAt;
      const mark = zai.messages().length;
      for (let i = 0; i < 3; i++) await ask(p, 'glm-4.6');
      expect(Date.now()).toBeLessThan(resetAt);
      expect(keysFor('glm-4.6', mark)).not.toContain(KEYS[0]);
      await Bun.sleep(Math.max(0, resetAt - Date.now()) + 50);
      // a is now the least recently used account: the next new conversation goes there.
      const after = await ask(p, 'glm-4.6');
      expect(after.account).toBe(idOf(p, 'a'));
    } finally {
      await p.stop();
    }
  });

  test('a soft-limited account is avoided while a fresh one exists, and used when none does', async () => {
    const low = defaultFakeQuota();
    low.windows[0]!.currentValue = Math.round(low.windows[0]!.usage * 0.95); // 5% left
    zai.setQuota(low, { key: KEYS[0] });
    const p = await startProxy();
    try {
      const replies = await Promise.all(Array.from({ length: 6 }, () => ask(p, 'glm-4.7')));
      expect(replies.every((r) => r.status === 200)).toBe(true);
      expect(replies.map((r) => r.account)).not.toContain(idOf(p, 'a'));
      // b and c run out for this model: a, soft-limited, is the only one left and serves.
      zai.setMode({ kind: 'http429', retryAfter: 600 }, { key: KEYS[1], times: 1 });
      zai.setMode({ kind: 'http429', retryAfter: 600 }, { key: KEYS[2], times: 1 });
      const r = await ask(p, 'glm-4.5');
      expect(r.status).toBe(200);
      expect(r.account).toBe(idOf(p, 'a'));
    } finally {
      await p.stop();
    }
  });

  test('two conversations land on different accounts and each stays on its own across ten turns', async () => {
    const p = await startProxy();
    try {
      const seen: Record<string, Set<string>> = { one: new Set(), two: new Set() };
      for (let turn = 0; turn < 10; turn++) {
        const [r1, r2] = await Promise.all([
          ask(p, 'glm-4.7', { session: 'one', turn, stream: turn % 2 === 1 }),
          ask(p, 'glm-4.7', { session: 'two', turn }),
        ]);
        expect(r1.status).toBe(200);
        expect(r2.status).toBe(200);
        seen.one!.add(r1.account!);
        seen.two!.add(r2.account!);
      }
      expect(seen.one!.size).toBe(1);
      expect(seen.two!.size).toBe(1);
      expect([...seen.one!][0]).not.toBe([...seen.two!][0]);
    } finally {
      await p.stop();
    }
  });

  test('every account limited: waits when the reset is within MAX_WAIT_SEC, then serves', async () => {
    const p = await startProxy({ MAX_WAIT_SEC: '5' });
    try {
      for (const k of KEYS) zai.setMode({ kind: 'http429', retryAfter: 1 }, { key: k, times: 1 });
      const t0 = Date.now();
      const r = await ask(p, 'glm-4.5-air');
      expect(r.status).toBe(200);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
    } finally {
      await p.stop();
    }
  });

  test('every account limited past MAX_WAIT_SEC: 429 naming RESOURCE_EXHAUSTED, retry-after, x-should-retry false, and no more upstream calls', async () => {
    const p = await startProxy({ MAX_WAIT_SEC: '5' });
    try {
      for (const k of KEYS) zai.setMode({ kind: 'http429', retryAfter: 600 }, { key: k, times: 1 });
      const r = await ask(p, 'glm-4.5-air');
      expect(r.status).toBe(429);
      expect(r.headers.get('x-should-retry')).toBe('false');
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(590);
      const err = (r.body as { error: { type: string; message: string } }).error;
      expect(err.type).toBe('rate_limit_error');
      expect(err.message).toContain('RESOURCE_EXHAUSTED');
      expect(err.message).toMatch(/Next available: \d{4}-\d{2}-\d{2}T/);
      const mark = zai.messages().length;
      const again = await ask(p, 'glm-4.5-air');
      expect(again.status).toBe(429);
      expect(zai.messages().length).toBe(mark);
    } finally {
      await p.stop();
    }
  });

  test('fallback serves the mapped model and says so; a request can refuse it', async () => {
    const p = await startProxy({ MAX_WAIT_SEC: '2', ENABLE_FALLBACK: 'true' });
    try {
      for (const k of KEYS) zai.setMode({ kind: 'http429', retryAfter: 600 }, { key: k, times: 1 });
      const r = await ask(p, 'glm-5.1');
      expect(r.status).toBe(200);
      expect(r.fallbackFrom).toBe('glm-5.1');
      expect(r.upstream).toBe('glm-4.7');
      expect((zai.messages().at(-1)!.body as { model: string }).model).toBe('glm-4.7');
      expect(r.body.model).toBe('glm-5.1');
      const refused = await ask(p, 'glm-5.1', { headers: { 'x-proxy-no-fallback': '1' } });
      expect(refused.status).toBe(429);
      expect(refused.fallbackFrom).toBeNull();
    } finally {
      await p.stop();
    }
  });

  test('64 concurrent requests while accounts are edited lose no update', async () => {
    const p = await startProxy();
    const cli = openDatabase(`${p.dir}/proxy.db`);
    try {
      zai.setMode({ kind: 'http429', retryAfter: 300 }, { key: KEYS[0] });
      const requests = Array.from({ length: 64 }, (_, i) => ask(p, i % 2 ? 'glm-4.6' : 'glm-4.7', { stream: i % 3 === 0 }));
      const edits = (async () => {
        for (let i = 0; i < 5; i++) {
          upsertAccount(cli, { provider: 'zai', label: `extra-${i}`, credentials: { kind: 'api_key', apiKey: KEYS[1 + (i % 2)]! } });
          await Bun.sleep(1);
        }
        updateAccount(cli, idOf(p, 'c'), { status: 'disabled', statusReason: 'disabled by user' });
        updateAccount(cli, idOf(p, 'b'), { meta: { note: 'edited by the CLI' } });
      })();
      const replies = await Promise.all(requests);
      await edits;
      expect(replies.map((r) => r.status)).toEqual(Array(64).fill(200));
      // The server's own writes (limits, last use, plan from the quota call) and the CLI's all stand.
      await p.routing.quota.pollAll();
      p.routing.pool.stop();
      const accounts = listAccounts(cli);
      expect(accounts.filter((a) => a.label.startsWith('extra-')).map((a) => a.status)).toEqual(Array(5).fill('active'));
      expect(findAccount(cli, 'c')!.status).toBe('disabled');
      expect(findAccount(cli, 'b')!.meta).toMatchObject({ note: 'edited by the CLI', plan: 'pro' });
      // Every limit the server acted on is on record, as it believed it.
      const onRecord = listLimits(cli).map((l) => `${l.accountId}/${l.model}/${l.resetAt}`).sort();
      const believed = p.routing.pool
        .state()
        .flatMap((s) => s.limits.map((l) => `${l.accountId}/${l.model}/${l.resetAt}`))
        .sort();
      expect(onRecord).toEqual(believed);
      expect(listLimits(cli).filter((l) => l.accountId === idOf(p, 'a')).length).toBeGreaterThan(0);
      expect(findAccount(cli, 'a')!.lastUsedAt).not.toBeNull();
    } finally {
      cli.close();
      await p.stop();
    }
  });

  test('/health, /account-limits (JSON and table) and /v1/models show the pool state', async () => {
    const p = await startProxy();
    try {
      zai.setMode({ kind: 'http429', retryAfter: 120 }, { key: KEYS[0], times: 1 });
      await ask(p, 'glm-4.7');
      const open = (await (await fetch(`${p.url}/health`)).json()) as Record<string, unknown>;
      expect(open.status).toBe('ok');
      expect(open.accountDetails).toBeUndefined();
      const auth = { 'x-api-key': PROXY_KEY };
      const detailed = (await (await fetch(`${p.url}/health`, { headers: auth })).json()) as { accountDetails: Array<Record<string, unknown>> };
      const a = detailed.accountDetails.find((x) => x.label === 'a')!;
      expect(a.state).toBe('partly_limited');
      expect((a.quota as unknown[]).length).toBeGreaterThan(0);
      const limits = (await (await fetch(`${p.url}/account-limits`, { headers: auth })).json()) as { accounts: Array<{ label: string; limits: unknown[] }> };
      expect(limits.accounts.find((x) => x.label === 'a')!.limits).toHaveLength(1);
      const table = await (await fetch(`${p.url}/account-limits?format=table`, { headers: auth })).text();
      expect(table).toMatch(/^ACCOUNT\s+PROVIDER\s+STATE/);
      expect(table).toMatch(/\na\s+zai\s+partly_limited\s+.*glm-4\.7 rate_limited/);
      const models = (await (await fetch(`${p.url}/v1/models?limit=100`, { headers: auth })).json()) as { data: Array<Record<string, unknown>> };
      const glm = models.data.find((m) => m.id === 'glm-4.7')!;
      expect(glm.quota).toBeDefined();
      expect(models.data[0]!.id).toMatch(/^claude-/);
      const metrics = await (await fetch(`${p.url}/metrics`, { headers: auth })).text();
      expect(metrics).toContain('mcp_upstream_rate_limited_total');
      expect(metrics).toContain('mcp_failovers_total');
      expect(metrics).toMatch(/mcp_quota_remaining_ratio\{account="a"/);
    } finally {
      await p.stop();
    }
  });
});

describe('MAX_CONCURRENT_PER_ACCOUNT in front of three Z.AI accounts', () => {
  test('eight slow streams at once, each account capped at 2 by the CLI over the pool-wide 1: at most 2 per key upstream, all served, /health shows it', async () => {
    const p = await startProxy({ MAX_CONCURRENT_PER_ACCOUNT: '1' });
    try {
      const cli = openDatabase(`${p.dir}/proxy.db`);
      for (const id of p.accounts.map((a) => a.id)) updateAccount(cli, id, { meta: { maxConcurrent: 2 } });
      cli.close();
      p.routing.pool.sync();
      // Slow enough that the first six are still streaming when the state is read below.
      zai.setMode({ kind: 'slow_chunks', chunks: 8, delayMs: 100 });
      const from = zai.messages().length;
      // Sample what each key has open upstream while the requests run.
      let peak = 0;
      const sampler = setInterval(() => {
        const open = new Map<string, number>();
        for (const m of zai.messages().slice(from)) if (!m.ended) open.set(m.key ?? '', (open.get(m.key ?? '') ?? 0) + 1);
        for (const n of open.values()) peak = Math.max(peak, n);
      }, 5);
      const health = async () =>
        ((await (await fetch(`${p.url}/health`, { headers: { 'x-api-key': PROXY_KEY } })).json()) as { accountDetails: Array<{ inFlight: number; maxConcurrent: number | null }> }).accountDetails;
      // Counters are per process, and other tests in this one may have counted waits already.
      const metrics = async () => (await fetch(`${p.url}/metrics`, { headers: { 'x-api-key': PROXY_KEY } })).text();
      const served = (text: string) => Number(/^mcp_concurrency_waits_total\{provider="zai",outcome="served"\} (\d+)$/m.exec(text)?.[1] ?? 0);
      const servedBefore = served(await metrics());
      const replies = Array.from({ length: 8 }, () => ask(p, 'glm-4.7', { stream: true }));
      const during = await waitFor(async () => {
        const h = await health();
        return h.reduce((n, a) => n + a.inFlight, 0) === 6 ? h : null;
      }, 10_000, 'six requests in flight');
      const table = await (await fetch(`${p.url}/account-limits?format=table`, { headers: { 'x-api-key': PROXY_KEY } })).text();
      const metricsDuring = await metrics();
      const all = await Promise.all(replies);
      const metricsAfter = await metrics();
      clearInterval(sampler);
      expect(all.map((r) => r.status)).toEqual(Array(8).fill(200));
      for (const r of all) expect(String(r.body.text)).toContain('message_stop');
      expect(zai.messages().length - from).toBe(8);
      expect(peak).toBeLessThanOrEqual(2);
      expect(during.map((a) => a.maxConcurrent)).toEqual([2, 2, 2]);
      expect(during.every((a) => a.inFlight <= 2)).toBe(true);
      expect(during.reduce((n, a) => n + a.inFlight, 0)).toBe(6);
      expect(table).toMatch(/\na\s+zai\s+\S+\s+-\s+2\/2\s/);
      expect(metricsDuring).toContain('mcp_account_in_flight{account="a",provider="zai"} 2');
      expect(metricsDuring).toContain('mcp_account_max_concurrent{account="a",provider="zai"} 2');
      // Eight requests, six slots: two waited, and both were served.
      expect(served(metricsAfter) - servedBefore).toBe(2);
      expect(metricsAfter).toContain('mcp_account_in_flight{account="a",provider="zai"} 0');
    } finally {
      await p.stop();
    }
  });
});

describe('a client that leaves in the middle of a stream', () => {
  test('stops the upstream call at once and frees its slot for a request waiting for one', async () => {
    const p = await startProxy({ MAX_CONCURRENT_PER_ACCOUNT: '1', MAX_WAIT_SEC: '30' });
    try {
      // 40 chunks 100 ms apart: each stream would hold its account for about 4 s.
      zai.setMode({ kind: 'slow_chunks', chunks: 40, delayMs: 100 });
      const from = zai.messages().length;
      const open = () => zai.messages().slice(from).filter((m) => !m.ended).length;
      const leaving = new AbortController();
      const first = await fetch(`${p.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': PROXY_KEY },
        body: JSON.stringify({ model: 'glm-4.7', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'I will leave' }] }),
        signal: leaving.signal,
      });
      const reader = first.body!.getReader();
      let seen = '';
      while (!seen.includes('text_delta')) seen += new TextDecoder().decode((await reader.read()).value);
      // The other two accounts busy too: the next request has to wait for a slot.
      const others = [ask(p, 'glm-4.7', { stream: true }), ask(p, 'glm-4.7', { stream: true })];
      await waitFor(() => (open() === 3 ? true : null), 5000, 'three streams upstream');
      const waiting = ask(p, 'glm-4.7', { stream: true });
      await Bun.sleep(200);
      expect(zai.messages().length - from).toBe(3);
      const t0 = performance.now();
      leaving.abort();
      const cut = zai.messages()[from]!;
      await waitFor(() => (cut.aborted ? true : null), 2000, 'the upstream call of the client that left to be cut');
      // The waiting request took the freed slot long before the other streams ended.
      await waitFor(() => (zai.messages().length - from === 4 ? true : null), 2000, 'the waiting request to reach the upstream');
      expect(performance.now() - t0).toBeLessThan(1500);
      expect(zai.messages()[from + 3]!.key).toBe(cut.key);
      const replies = await Promise.all([...others, waiting]);
      for (const r of replies) expect(String(r.body.text)).toContain('message_stop');
      const health = (await (await fetch(`${p.url}/health`, { headers: { 'x-api-key': PROXY_KEY } })).json()) as { accountDetails: Array<{ inFlight: number }> };
      expect(health.accountDetails.map((a) => a.inFlight)).toEqual([0, 0, 0]);
    } finally {
      await p.stop();
    }
  }, 20_000);
});

describe('a mixed pool: two Google (Antigravity) accounts and three Z.AI keys', () => {
  test("Claude Code's names go to Antigravity, GLM ids to Z.AI", async () => {
    const p = await startProxy({}, undefined, { google: true });
    try {
      const opus = await ask(p, 'claude-opus-4-8');
      expect(opus.status).toBe(200);
      expect(opus.upstream).toBe('claude-opus-4-6-thinking');
      expect(['g1', 'g2'].map((l) => idOf(p, l))).toContain(opus.account!);
      expect(opus.body.model).toBe('claude-opus-4-8');
      const sonnet = await ask(p, 'claude-sonnet-4-5-20250929');
      expect(sonnet.upstream).toBe('claude-sonnet-4-6');
      const glm = await ask(p, 'glm-4.7');
      expect(['a', 'b', 'c'].map((l) => idOf(p, l))).toContain(glm.account!);
    } finally {
      await p.stop();
    }
  });

  test('a Google quota exhaustion on one account moves its quota group (Claude+GPT) to the other account, Gemini stays', async () => {
    const p = await startProxy({}, undefined, { google: true });
    try {
      // Every endpoint says so (the provider walks daily -> prod before giving up on an account).
      google.setMode({ kind: 'quota_exhausted', resetMs: 3 * 3_600_000 }, { email: EMAILS[0], model: 'claude-opus-4-6-thinking' });
      const r = await ask(p, 'claude-opus-4-8');
      expect(r.status).toBe(200);
      expect(r.account).toBe(idOf(p, 'g2'));
      const lim = listLimits(p.db);
      expect(new Set(lim.map((l) => l.accountId))).toEqual(new Set([idOf(p, 'g1')]));
      const opus = lim.find((l) => l.model === 'claude-opus-4-6-thinking');
      expect(opus).toMatchObject({ kind: 'quota_exhausted' });
      expect(opus!.resetAt - Date.now()).toBeGreaterThan(3 * 3_600_000 - 60_000);
      // The group's other models are out on g1 too, until the same reset; no Gemini model is.
      expect(lim.map((l) => l.model)).toContain('claude-sonnet-4-6');
      expect(lim.some((l) => l.model.startsWith('gemini'))).toBe(false);
      for (const l of lim) expect(l.resetAt).toBe(opus!.resetAt);
      // So Sonnet goes to g2 without trying g1, while a Gemini model may still use g1.
      const before = google.generations().length;
      expect((await ask(p, 'claude-sonnet-4-6')).account).toBe(idOf(p, 'g2'));
      expect(google.generations().length).toBe(before + 1);
      expect((await ask(p, 'gemini-3-flash')).account).toBe(idOf(p, 'g1'));
    } finally {
      await p.stop();
    }
  });

  test('a safety-blocked answer is one upstream call and a 200 refusal: no retry, no failover, no cooldown', async () => {
    const p = await startProxy({}, undefined, { google: true });
    try {
      google.setMode({ kind: 'blocked_answer', finishReason: 'SAFETY' });
      const before = google.generations().length;
      // Three in a row, each answered at once: a refusal is no failure to retry or to count.
      for (let i = 0; i < 3; i++) {
        const r = await ask(p, 'gemini-3-flash', { session: 'blocked-conversation' });
        expect(r.status).toBe(200);
        expect(r.body).toMatchObject({ type: 'message', content: [], stop_reason: 'refusal' });
      }
      // Streamed, the message with no content block is a whole event sequence too.
      const streamed = await ask(p, 'gemini-3-flash', { session: 'blocked-conversation', stream: true });
      expect(streamed.status).toBe(200);
      const types = [...String(streamed.body.text).matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
      expect(types).toEqual(['message_start', 'message_delta', 'message_stop']);
      expect(String(streamed.body.text)).toContain('"stop_reason":"refusal"');
      expect(google.generations().length).toBe(before + 4);
      expect(listLimits(p.db)).toEqual([]);
      expect(listAccounts(p.db).every((a) => a.status === 'active')).toBe(true);
    } finally {
      await p.stop();
    }
  });

  test("a Google account whose Claude weekly window is nearly spent is spared for Claude, not for Gemini, and /account-limits shows the window", async () => {
    google.setQuotaWindows({ 'claude+gpt': { weekly: { remainingFraction: 0.03 } } }, { email: EMAILS[0] });
    const p = await startProxy({}, undefined, { google: true });
    try {
      // fetchAvailableModels still says 100 % for every model of g1: only the weekly window tells.
      const claude = [];
      for (let i = 0; i < 4; i++) claude.push(await ask(p, 'claude-sonnet-4-6'));
      expect(claude.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      expect(new Set(claude.map((r) => r.account))).toEqual(new Set([idOf(p, 'g2')]));
      const gemini = [];
      for (let i = 0; i < 4; i++) gemini.push(await ask(p, 'gemini-3-flash'));
      expect(new Set(gemini.map((r) => r.account))).toEqual(new Set([idOf(p, 'g1'), idOf(p, 'g2')]));
      const limits = (await (await fetch(`${p.url}/account-limits`, { headers: { 'x-api-key': PROXY_KEY } })).json()) as {
        accounts: Array<{ id: string; quota: Array<{ model: string; window: string | null; remaining: string }> }>;
      };
      const g1 = limits.accounts.find((a) => a.id === idOf(p, 'g1'))!;
      expect(g1.quota).toContainEqual(expect.objectContaining({ model: 'claude-sonnet-4-6', window: 'weekly', remaining: '3%' }));
      expect(g1.quota).toContainEqual(expect.objectContaining({ model: 'gemini-3-flash', window: '5h', remaining: '100%' }));
    } finally {
      google.setQuotaWindows({}, { email: EMAILS[0] });
      await p.stop();
    }
  });

  test('/dashboard: the browser is asked for the key, then sees every account with its limits and quota windows', async () => {
    google.setQuotaWindows({ 'claude+gpt': { weekly: { remainingFraction: 0.03 } } }, { email: EMAILS[1] });
    const p = await startProxy({}, undefined, { google: true });
    try {
      google.setMode({ kind: 'rate_limited', resetMs: 120_000 }, { email: EMAILS[0], model: 'gemini-3-flash' });
      // Two new conversations: the least recently used account takes one of them, so g1 is tried.
      for (const session of ['dash-1', 'dash-2']) expect((await ask(p, 'gemini-3-flash', { session })).status).toBe(200);
      const anon = await fetch(`${p.url}/dashboard`);
      expect(anon.status).toBe(401);
      expect(anon.headers.get('www-authenticate')).toBe('Basic realm="mcp", charset="UTF-8"');
      const wrong = await fetch(`${p.url}/dashboard`, { headers: { authorization: `Basic ${btoa('me:not-the-key')}` } });
      expect(wrong.status).toBe(401);
      const res = await fetch(`${p.url}/dashboard`, { headers: { authorization: `Basic ${btoa(`me:${PROXY_KEY}`)}` } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.headers.get('content-security-policy')).toStartWith("default-src 'none'; style-src 'unsafe-inline';");
      const html = await res.text();
      for (const label of ['g1', 'g2', 'a', 'b', 'c']) expect(html).toContain(`<tr><td>${label}`);
      expect(html).toMatch(/gemini-3-flash rate limited, back in (1m|2m)<\/li>/);
      expect(html).toContain('claude/gpt weekly <span class="bar low" title="3% left">');
      expect(html).not.toContain(PROXY_KEY);
      expect(html).not.toContain('zai-pool-key');
    } finally {
      google.setQuotaWindows({}, { email: EMAILS[1] });
      await p.stop();
    }
  });

  test('fallback: Opus exhausted on every Google account is served by its Gemini fallback, and says so', async () => {
    const p = await startProxy({ ENABLE_FALLBACK: '1', MAX_WAIT_SEC: '5' }, undefined, { google: true });
    try {
      for (const email of EMAILS) {
        google.setMode({ kind: 'quota_exhausted', resetMs: 3 * 3_600_000 }, { email, model: 'claude-opus-4-6-thinking' });
      }
      const r = await ask(p, 'claude-opus-4-8');
      expect(r.status).toBe(200);
      expect(r.fallbackFrom).toBe('claude-opus-4-8');
      expect(r.upstream).toBe('gemini-pro-agent');
    } finally {
      await p.stop();
    }
  });
});

describe('mcp serve with three accounts', () => {
  test('a restart keeps limits; CLI disable/enable reaches the running server within 2 s', async () => {
    const dir = tempDir('mcp-pool-serve-');
    const env = mcpEnv(dir, { PROXY_API_KEY: PROXY_KEY, ...zaiEnv(zai) });
    for (let i = 0; i < 3; i++) {
      const add = await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', KEYS[i]!, '--label', LABELS[i]!], { env });
      expect(add.code).toBe(0);
    }
    const db = openDatabase(`${dir}/proxy.db`);
    const ids = Object.fromEntries(listAccounts(db).map((a) => [a.label, a.id]));
    db.close();
    const proxyOf = (url: string) => ({ url }) as Proxy;

    let server = await startServe({ env });
    try {
      zai.setMode({ kind: 'http429', retryAfter: 3600 }, { key: KEYS[0], times: 1 });
      const r = await ask(proxyOf(server.url), 'glm-5');
      expect(r.status).toBe(200);
      expect(r.account).not.toBe(ids.a);
    } finally {
      expect(await server.stop()).toBe(0);
    }

    server = await startServe({ env });
    try {
      const limits = (await (await fetch(`${server.url}/account-limits`, { headers: { 'x-api-key': PROXY_KEY } })).json()) as {
        accounts: Array<{ label: string; limits: Array<{ model: string; resetInSec: number }> }>;
      };
      const a = limits.accounts.find((x) => x.label === 'a')!;
      expect(a.limits).toHaveLength(1);
      expect(a.limits[0]!.model).toBe('glm-5');
      expect(a.limits[0]!.resetInSec).toBeGreaterThan(3500);
      const mark = zai.messages().length;
      for (let i = 0; i < 4; i++) expect((await ask(proxyOf(server.url), 'glm-5')).status).toBe(200);
      expect(keysFor('glm-5', mark)).not.toContain(KEYS[0]);

      // Disable b and c from the CLI: the running server sends everything to a within 2 s.
      for (const l of ['b', 'c']) expect((await runMcp(['accounts', 'disable', l], { env })).code).toBe(0);
      const t0 = Date.now();
      await waitFor(async () => (await ask(proxyOf(server.url), 'glm-4.7')).account === ids.a, 2500, 'traffic on a only');
      expect(Date.now() - t0).toBeLessThan(2500);
      const list = await runMcp(['accounts', 'list'], { env });
      expect(list.stdout).toMatch(/\bb\s+zai\s+disabled/);
      expect(list.stdout).toMatch(/\ba\s+zai\s+active\s.*glm-5 rate_limited \(resets in (59m|1h)\)/);
      expect((await runMcp(['accounts', 'enable', 'b'], { env })).code).toBe(0);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  }, 60_000);

  test('a 1 s throttle on a conversation\'s key: that turn and the next are served by another key, then the conversation is back home', async () => {
    const dir = tempDir('mcp-pool-home-');
    const env = mcpEnv(dir, { PROXY_API_KEY: PROXY_KEY, ...zaiEnv(zai) });
    for (let i = 0; i < 3; i++) {
      expect((await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', KEYS[i]!, '--label', LABELS[i]!], { env })).code).toBe(0);
    }
    const db = openDatabase(`${dir}/proxy.db`);
    const keyOf = Object.fromEntries(listAccounts(db).map((a) => [a.id, KEYS[LABELS.indexOf(a.label)]!]));
    db.close();
    const server = await startServe({ env });
    try {
      const proxy = { url: server.url } as Proxy;
      const first = await ask(proxy, 'glm-4.7', { session: 'home-conv', turn: 0, tools: true });
      expect(first.status).toBe(200);
      const home = first.account!;
      zai.setMode({ kind: 'http429', retryAfter: 1 }, { key: keyOf[home], times: 1 });
      const throttled = await ask(proxy, 'glm-4.7', { session: 'home-conv', turn: 1, tools: true });
      expect(throttled.status).toBe(200);
      expect(throttled.account).not.toBe(home);
      // Still inside the second: the home key is resting, so this turn too is served elsewhere.
      const during = await ask(proxy, 'glm-4.7', { session: 'home-conv', turn: 2, tools: true });
      expect(during.status).toBe(200);
      expect(during.account).not.toBe(home);
      await Bun.sleep(1_300);
      const mark = zai.messages().length;
      const after = await ask(proxy, 'glm-4.7', { session: 'home-conv', turn: 3, tools: true });
      expect(after.status).toBe(200);
      expect(after.account).toBe(home);
      expect(keysFor('glm-4.7', mark)).toEqual([keyOf[home]!]);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  }, 60_000);
});
