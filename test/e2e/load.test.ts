// A team sharing one mcp: a few dozen conversations at once over four Z.AI keys (the real server,
// the real Z.AI provider, the fake Z.AI on 127.0.0.1), with accounts failing under them mid-run.
// Checked from the client's side and from /health, /account-limits and /metrics.
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import type { Database } from 'bun:sqlite';
import { loadConfig } from '../../src/config.ts';
import type { Routing } from '../../src/gateway/index.ts';
import { type Account, listAccounts, updateAccount, upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';
import { type FakeGoogle, startFakeGoogle } from '../fakes/google.ts';
import { defaultFakeQuota, type FakeZai, startFakeZai } from '../fakes/zai.ts';
import { cleanupTempDirs, googleEnv, mcpEnv, runMcp, startServe, tempDir, zaiEnv } from './helpers.ts';
import { serveInProcess } from './in-process.ts';

const FAKE = 'FAKE';
const PROXY_KEY = `proxy-key-${FAKE}-load-0123456789`;
const LABELS = ['a', 'b', 'c', 'd'];
const KEYS = LABELS.map((l) => `zai-${FAKE}-load-${l}-000001`);
const EMAILS = ['g1@example.com', 'g2@example.com', 'g3@example.com'];
let zai: FakeZai;
let google: FakeGoogle;

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

/** Four Z.AI keys a-d, or (`google`) three Google accounts g1-g3. */
async function startProxy(env: Record<string, string> = {}, opts: { google?: boolean; now?: () => number } = {}): Promise<Proxy> {
  const dir = tempDir('mcp-load-');
  const config = loadConfig({ PROXY_API_KEY: PROXY_KEY, MCP_DATA_DIR: dir, ...zaiEnv(zai), ...googleEnv(google), ...env });
  const db = openDatabase(config.dbPath);
  if (opts.google) {
    EMAILS.forEach((email, i) =>
      upsertAccount(
        db,
        { provider: 'antigravity', email, label: email.split('@')[0], credentials: { kind: 'oauth', refreshToken: google.refreshTokenFor(email) } },
        Date.now() + i,
      ),
    );
  } else {
    KEYS.forEach((k, i) => upsertAccount(db, { provider: 'zai', label: LABELS[i], credentials: { kind: 'api_key', apiKey: k } }, Date.now() + i));
  }
  const server = await serveInProcess(config, db, opts.now ?? (() => Date.now()));
  return { ...server, dir, db, accounts: listAccounts(db) };
}

interface Reply {
  status: number;
  account: string | null;
  headers: Headers;
  text: string;
}

/**
 * One turn of conversation `session` (turn 0 is its first message), with a tool declared as Claude
 * Code's main turns have: a first turn without tools is taken for a side request (a title), which
 * binds the conversation only until its first main turn is served.
 */
async function turn(p: Proxy, session: string, n: number, opts: { stream?: boolean; model?: string } = {}): Promise<Reply> {
  const messages: Array<{ role: string; content: string }> = [{ role: 'user', content: `conversation ${session}` }];
  for (let i = 0; i < n; i++) messages.push({ role: 'assistant', content: `answer ${i}` }, { role: 'user', content: `turn ${i + 1}` });
  const body = {
    model: opts.model ?? 'glm-4.7',
    max_tokens: 64,
    stream: opts.stream ?? false,
    messages,
    tools: [{ name: 'Bash', description: 'run a command', input_schema: { type: 'object', properties: {} } }],
    metadata: { user_id: JSON.stringify({ device_id: 'dev', account_uuid: '', session_id: session }) },
  };
  const res = await fetch(`${p.url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': PROXY_KEY, 'anthropic-version': '2023-06-01' },
    body: JSON.stringify(body),
  });
  return { status: res.status, account: res.headers.get('x-proxy-account'), headers: res.headers, text: await res.text() };
}

function labelOf(p: Proxy, id: string | null): string {
  return p.accounts.find((a) => a.id === id)?.label ?? `?${id}`;
}

async function health(p: Proxy): Promise<Array<{ label: string; inFlight: number; state: string }>> {
  const r = (await (await fetch(`${p.url}/health`, { headers: { 'x-api-key': PROXY_KEY } })).json()) as {
    accountDetails: Array<{ label: string; inFlight: number; state: string }>;
  };
  return r.accountDetails;
}

function sessions(n: number, tag: string): string[] {
  return Array.from({ length: n }, (_, i) => `${tag}-${i}-${Math.random().toString(36).slice(2, 8)}`);
}

describe('two dozen conversations over four Z.AI keys', () => {
  test("keys failing mid-run: a throttled key's conversations are served elsewhere and come back after it, a spent key's move once, evenly, and nothing is lost", async () => {
    // The clock the pool reads, so the throttle can end without waiting its minute.
    let skew = 0;
    const p = await startProxy({}, { now: () => Date.now() + skew });
    try {
      const ids = sessions(24, 'team');
      const first = await Promise.all(ids.map((s, i) => turn(p, s, 0, { stream: i % 2 === 0 })));
      expect(first.map((r) => r.status)).toEqual(Array(24).fill(200));
      const home = first.map((r) => labelOf(p, r.account));
      const spread = new Map<string, number>();
      for (const l of home) spread.set(l, (spread.get(l) ?? 0) + 1);
      // By load at the time: within a couple of conversations of each other.
      expect(spread.size).toBe(4);
      expect(Math.max(...spread.values()) - Math.min(...spread.values())).toBeLessThanOrEqual(2);
      // b throttled (no time given: the default minute), c out of quota for an hour.
      zai.setMode({ kind: 'error', code: '1302' }, { key: KEYS[1] });
      zai.setMode({ kind: 'error', code: '1308', resetAt: Date.now() + 3_600_000 }, { key: KEYS[2] });
      const second = await Promise.all(ids.map((s, i) => turn(p, s, 1, { stream: i % 2 === 1 })));
      expect(second.map((r) => r.status)).toEqual(Array(24).fill(200));
      const moved = second.map((r) => labelOf(p, r.account));
      for (let i = 0; i < ids.length; i++) {
        if (home[i] === 'a' || home[i] === 'd') expect(moved[i]).toBe(home[i]!);
        else expect(['a', 'd']).toContain(moved[i]!);
      }
      const load = new Map<string, number>();
      for (const l of moved) load.set(l, (load.get(l) ?? 0) + 1);
      const stayed = (l: string) => home.filter((h) => h === l).length;
      expect(load.get('a')! - stayed('a')).toBeGreaterThan(1);
      expect(load.get('d')! - stayed('d')).toBeGreaterThan(1);
      // While b rests, its conversations are served by a or d; c's stay where they moved.
      const third = await Promise.all(ids.map((s) => turn(p, s, 2)));
      expect(third.map((r) => r.status)).toEqual(Array(24).fill(200));
      const thirdAt = third.map((r) => labelOf(p, r.account));
      for (let i = 0; i < ids.length; i++) {
        if (home[i] === 'b') expect(['a', 'd']).toContain(thirdAt[i]!);
        else expect(thirdAt[i]).toBe(moved[i]!);
      }
      // b's minute is over: its conversations are home again, where their cache is; c's still stay.
      zai.clearModes();
      skew = 61_000;
      const fourth = await Promise.all(ids.map((s) => turn(p, s, 3)));
      expect(fourth.map((r) => r.status)).toEqual(Array(24).fill(200));
      expect(fourth.map((r) => labelOf(p, r.account))).toEqual(home.map((h, i) => (h === 'c' ? moved[i]! : h)));
      expect((await health(p)).map((a) => a.inFlight)).toEqual([0, 0, 0, 0]);
    } finally {
      await p.stop();
    }
  }, 30_000);
});

describe('one 5xx blip on a key under a burst', () => {
  test('fails its requests over without resting the key, so its conversations stay on it next turn', async () => {
    const p = await startProxy();
    try {
      const ids = sessions(12, 'blip');
      const first = await Promise.all(ids.map((s) => turn(p, s, 0)));
      const home = first.map((r) => labelOf(p, r.account));
      // The key with the most conversations (at least three of the twelve) meets the blip: how they
      // spread depends on timing, and every one of its requests must meet it.
      const count = (l: string) => home.filter((h) => h === l).length;
      const hit = LABELS.reduce((best, l) => (count(l) > count(best) ? l : best));
      expect(count(hit)).toBeGreaterThanOrEqual(3);
      // The load balancer in front of it answers each of its requests with a 502 page, then recovers.
      zai.setMode({ kind: 'html502' }, { key: KEYS[LABELS.indexOf(hit)], times: count(hit) });
      const second = await Promise.all(ids.map((s) => turn(p, s, 1)));
      expect(second.map((r) => r.status)).toEqual(Array(12).fill(200));
      expect(second.filter((r) => labelOf(p, r.account) === hit)).toHaveLength(0);
      const third = await Promise.all(ids.map((s) => turn(p, s, 2)));
      expect(third.map((r) => labelOf(p, r.account))).toEqual(home);
      expect((await health(p)).find((a) => a.label === hit)!.state).toBe('ok');
    } finally {
      await p.stop();
    }
  }, 30_000);
});

describe('the soft-quota floor (SOFT_LIMIT_THRESHOLD) reached by two keys mid-run', () => {
  test('their conversations move once, evenly, to the keys above it, and the low keys take nothing while those can serve', async () => {
    const p = await startProxy({ SOFT_LIMIT_THRESHOLD: '0.1' });
    try {
      const ids = sessions(16, 'soft');
      const first = await Promise.all(ids.map((s, i) => turn(p, s, 0, { stream: i % 2 === 0 })));
      const home = first.map((r) => labelOf(p, r.account));
      expect(new Set(home)).toEqual(new Set(LABELS));
      const low = defaultFakeQuota();
      low.windows[0]!.currentValue = Math.round(low.windows[0]!.usage * 0.95); // 5% left in the 5-hour window
      zai.setQuota(low, { key: KEYS[0] });
      zai.setQuota(low, { key: KEYS[1] });
      await p.routing.quota.pollAll();
      const from = zai.messages().length;
      const second = await Promise.all(ids.map((s, i) => turn(p, s, 1, { stream: i % 2 === 1 })));
      const third = await Promise.all(ids.map((s) => turn(p, s, 2)));
      for (const r of [...second, ...third]) expect(r.status).toBe(200);
      const moved = second.map((r) => labelOf(p, r.account));
      for (let i = 0; i < ids.length; i++) {
        if (home[i] === 'c' || home[i] === 'd') expect(moved[i]).toBe(home[i]!);
        else expect(['c', 'd']).toContain(moved[i]!);
      }
      // The movers spread over both keys above the floor (by load at the time), none stays behind.
      const movers = moved.filter((_, i) => home[i] === 'a' || home[i] === 'b');
      expect(movers.length).toBeGreaterThan(2);
      expect(new Set(movers)).toEqual(new Set(['c', 'd']));
      expect(third.map((r) => labelOf(p, r.account))).toEqual(moved);
      expect(zai.messages().slice(from).filter((m) => m.key === KEYS[0] || m.key === KEYS[1])).toHaveLength(0);
    } finally {
      await p.stop();
    }
  }, 30_000);
});

describe('a key drained toward the soft floor between two quota rounds', () => {
  test('is read again soon after it serves near the floor, so its conversations leave it before the next round, not minutes below the floor', async () => {
    let skew = 0;
    const p = await startProxy({ SOFT_LIMIT_THRESHOLD: '0.2' }, { now: () => Date.now() + skew });
    try {
      const near = defaultFakeQuota();
      near.windows[0]!.currentValue = Math.round(near.windows[0]!.usage * 0.75); // 25% left: above the floor, close to it
      zai.setQuota(near, { key: KEYS[0] });
      await p.routing.quota.pollAll();
      const ids = sessions(8, 'drain');
      const first = await Promise.all(ids.map((s) => turn(p, s, 0)));
      const onA = ids.filter((_, i) => labelOf(p, first[i]!.account) === 'a');
      expect(onA.length).toBeGreaterThan(0);
      // The reading a's first answer asked for (it is near the floor) is over before the drain below.
      await p.routing.quota.pollAccount(p.accounts[0]!.id);
      // The team keeps using a: the upstream's count passes the floor, and the quota round is minutes away.
      const drained = defaultFakeQuota();
      drained.windows[0]!.currentValue = Math.round(drained.windows[0]!.usage * 0.9);
      zai.setQuota(drained, { key: KEYS[0] });
      skew = 61_000;
      // One turn alone: a still reads 25% here, so the turn stays. Concurrent turns would race the
      // reading this one triggers (a busy machine lets it land before the last of them is routed).
      const left = () => Math.min(...p.routing.pool.state().find((s) => s.account.id === p.accounts[0]!.id)!.quotas.map((q) => q.remainingFraction ?? 1));
      expect(left()).toBe(0.25);
      expect(labelOf(p, (await turn(p, onA[0]!, 1)).account)).toBe('a');
      // The reading that serving near the floor asked for, not a round (minutes away).
      for (const end = Date.now() + 5000; left() !== 0.1 && Date.now() < end; ) await Bun.sleep(10);
      expect(left()).toBe(0.1);
      const next = await Promise.all(onA.map((s, i) => turn(p, s, i === 0 ? 2 : 1)));
      for (const r of next) expect(labelOf(p, r.account)).not.toBe('a');
    } finally {
      await p.stop();
    }
  }, 30_000);
});

describe('MAX_CONCURRENT_PER_ACCOUNT saturated by two dozen streams while keys fail', () => {
  test('a key turning invalid and one disabled then enabled by the CLI: every request served, no slot leaked, /metrics ends at zero', async () => {
    const p = await startProxy({ MAX_CONCURRENT_PER_ACCOUNT: '2', MAX_WAIT_SEC: '20' });
    try {
      zai.setMode({ kind: 'slow_chunks', chunks: 6, delayMs: 40 });
      const ids = sessions(24, 'cap');
      let peak = 0;
      const from = zai.messages().length;
      const sampler = setInterval(() => {
        const open = new Map<string, number>();
        for (const m of zai.messages().slice(from)) if (!m.ended) open.set(m.key ?? '', (open.get(m.key ?? '') ?? 0) + 1);
        for (const n of open.values()) peak = Math.max(peak, n);
      }, 5);
      const cli = openDatabase(`${p.dir}/proxy.db`);
      const idOf = (l: string) => p.accounts.find((a) => a.label === l)!.id;
      const run = (n: number) => Promise.all(ids.map((s, i) => turn(p, s, n, { stream: i % 3 !== 0 })));
      const first = run(0);
      await Bun.sleep(100);
      // c's key is revoked, d is taken out by the CLI, both while their streams run.
      zai.setMode({ kind: 'error', code: '1309' }, { key: KEYS[2] });
      updateAccount(cli, idOf('d'), { status: 'disabled', statusReason: 'disabled by user' });
      const r1 = await first;
      const r2 = await run(1);
      updateAccount(cli, idOf('d'), { status: 'active', statusReason: null });
      await Bun.sleep(700);
      const r3 = await run(2);
      clearInterval(sampler);
      cli.close();
      for (const r of [...r1, ...r2, ...r3]) {
        expect(r.status).toBe(200);
        expect(r.text).toContain('end_turn');
      }
      expect(peak).toBeLessThanOrEqual(2);
      expect(r2.map((r) => labelOf(p, r.account)).filter((l) => l === 'c' || l === 'd')).toEqual([]);
      expect(r3.map((r) => labelOf(p, r.account))).toContain('d');
      const h = await health(p);
      expect(h.map((a) => a.inFlight)).toEqual([0, 0, 0, 0]);
      const metrics = await (await fetch(`${p.url}/metrics`, { headers: { 'x-api-key': PROXY_KEY } })).text();
      for (const l of LABELS) expect(metrics).toContain(`mcp_account_in_flight{account="${l}",provider="zai"} 0`);
    } finally {
      await p.stop();
    }
  }, 60_000);

  test('every key limited, one disabled key enabled by the CLI meanwhile: the waiting requests go to it at once', async () => {
    const p = await startProxy({ MAX_WAIT_SEC: '30' });
    try {
      const cli = openDatabase(`${p.dir}/proxy.db`);
      const idOf = (l: string) => p.accounts.find((a) => a.label === l)!.id;
      updateAccount(cli, idOf('d'), { status: 'disabled', statusReason: 'disabled by user' });
      p.routing.pool.sync();
      for (const k of KEYS.slice(0, 3)) zai.setMode({ kind: 'http429', retryAfter: 20 }, { key: k });
      const ids = sessions(6, 'wait');
      const t0 = performance.now();
      const replies = Promise.all(ids.map((s) => turn(p, s, 0)));
      await Bun.sleep(500);
      updateAccount(cli, idOf('d'), { status: 'active', statusReason: null });
      cli.close();
      const got = await replies;
      expect(got.map((r) => r.status)).toEqual(Array(6).fill(200));
      expect(got.map((r) => labelOf(p, r.account))).toEqual(Array(6).fill('d'));
      expect(performance.now() - t0).toBeLessThan(3000);
    } finally {
      await p.stop();
    }
  }, 40_000);
});

describe('eighteen conversations over three Google accounts', () => {
  test('a spent Claude group on one account and a revoked login on another: their conversations move to the third and stay; capacity everywhere past MAX_WAIT_SEC is a 529 with the cool-down left as retry-after', async () => {
    const p = await startProxy({ MAX_WAIT_SEC: '5' }, { google: true });
    try {
      const ids = sessions(18, 'g');
      const model = 'claude-sonnet-4-6';
      const first = await Promise.all(ids.map((s, i) => turn(p, s, 0, { model, stream: i % 2 === 0 })));
      expect(first.map((r) => r.status)).toEqual(Array(18).fill(200));
      const home = first.map((r) => labelOf(p, r.account));
      expect(new Set(home)).toEqual(new Set(['g1', 'g2', 'g3']));
      google.setMode({ kind: 'quota_exhausted', resetMs: 3 * 3_600_000 }, { email: EMAILS[0], model });
      google.setMode({ kind: 'unauthorized' }, { email: EMAILS[1] });
      google.setMode({ kind: 'token_invalid_grant' });
      const second = await Promise.all(ids.map((s, i) => turn(p, s, 1, { model, stream: i % 2 === 1 })));
      expect(second.map((r) => r.status)).toEqual(Array(18).fill(200));
      expect(second.map((r) => labelOf(p, r.account))).toEqual(Array(18).fill('g3'));
      const h = await health(p);
      expect(h.map((a) => [a.label, a.inFlight])).toEqual([['g1', 0], ['g2', 0], ['g3', 0]]);
      expect(p.routing.pool.account(p.accounts[1]!.id)!.status).toBe('invalid');
      // Now g3 is out of capacity too, for longer than MAX_WAIT_SEC: a 529 at once, retry-after the cool-down left.
      google.setMode({ kind: 'capacity' }, { email: EMAILS[2] });
      const t0 = Date.now();
      const third = await Promise.all(ids.slice(0, 4).map((s) => turn(p, s, 2, { model })));
      for (const r of third) {
        expect(r.status).toBe(529);
        const ra = Number(r.headers.get('retry-after'));
        expect(ra).toBeGreaterThanOrEqual(1);
        expect(ra).toBeGreaterThan(5);
        expect(ra).toBeLessThanOrEqual(10);
        expect(JSON.parse(r.text).type).toBe('error');
      }
      expect(Date.now() - t0).toBeLessThan(3000);
      expect((await health(p)).map((a) => a.inFlight)).toEqual([0, 0, 0]);
    } finally {
      await p.stop();
    }
  }, 60_000);
});

describe('the fallback map under a dozen Opus conversations', () => {
  test('Opus spent on every Google account mid-run: every conversation is served by the fallback, says so, and the next turn goes there without a call to Opus', async () => {
    const p = await startProxy({ ENABLE_FALLBACK: '1', MAX_WAIT_SEC: '5' }, { google: true });
    try {
      const ids = sessions(12, 'opus');
      const first = await Promise.all(ids.map((s, i) => turn(p, s, 0, { model: 'claude-opus-4-8', stream: i % 2 === 0 })));
      expect(first.map((r) => r.status)).toEqual(Array(12).fill(200));
      for (const email of EMAILS) google.setMode({ kind: 'quota_exhausted', resetMs: 3 * 3_600_000 }, { email, model: 'claude-opus-4-6-thinking' });
      const second = await Promise.all(ids.map((s, i) => turn(p, s, 1, { model: 'claude-opus-4-8', stream: i % 2 === 1 })));
      expect(second.map((r) => r.status)).toEqual(Array(12).fill(200));
      for (const r of second) expect(r.headers.get('x-proxy-fallback-from')).toBe('claude-opus-4-8');
      const opusCalls = () => google.generations().filter((g) => JSON.stringify(g.body).includes('claude-opus-4-6-thinking')).length;
      const before = opusCalls();
      const third = await Promise.all(ids.map((s) => turn(p, s, 2, { model: 'claude-opus-4-8' })));
      expect(third.map((r) => r.status)).toEqual(Array(12).fill(200));
      expect(opusCalls()).toBe(before);
      expect((await health(p)).map((a) => a.inFlight)).toEqual([0, 0, 0]);
      const metrics = await (await fetch(`${p.url}/metrics`, { headers: { 'x-api-key': PROXY_KEY } })).text();
      expect(metrics).toMatch(/mcp_fallbacks_total\{[^}]*\} \d+/);
    } finally {
      await p.stop();
    }
  }, 30_000);
});

describe('`mcp serve` with four keys, driven from outside', () => {
  test('requests waiting out every key\'s throttle are served as soon as `mcp accounts enable` brings a key back; the views end clean', async () => {
    const dir = tempDir('mcp-load-serve-');
    const env = mcpEnv(dir, { PROXY_API_KEY: PROXY_KEY, MAX_WAIT_SEC: '30', ...zaiEnv(zai) });
    for (let i = 0; i < KEYS.length; i++) {
      expect((await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', KEYS[i]!, '--label', LABELS[i]!], { env })).code).toBe(0);
    }
    expect((await runMcp(['accounts', 'disable', 'd'], { env })).code).toBe(0);
    const server = await startServe({ env });
    try {
      const p = { url: server.url } as Proxy;
      for (const k of KEYS.slice(0, 3)) zai.setMode({ kind: 'http429', retryAfter: 20 }, { key: k });
      const t0 = performance.now();
      const replies = Promise.all(sessions(8, 'serve').map((s, i) => turn(p, s, 0, { stream: i % 2 === 0 })));
      await Bun.sleep(300);
      expect((await runMcp(['accounts', 'enable', 'd'], { env })).code).toBe(0);
      const got = await replies;
      expect(got.map((r) => r.status)).toEqual(Array(8).fill(200));
      expect(performance.now() - t0).toBeLessThan(8_000);
      const auth = { 'x-api-key': PROXY_KEY };
      const limits = (await (await fetch(`${server.url}/account-limits`, { headers: auth })).json()) as {
        accounts: Array<{ label: string; inFlight: number; limits: Array<{ resetInSec: number }> }>;
      };
      for (const a of limits.accounts) {
        expect(a.inFlight).toBe(0);
        if (a.label === 'd') expect(a.limits).toHaveLength(0);
        else for (const l of a.limits) expect(l.resetInSec).toBeLessThanOrEqual(20);
      }
      const metrics = await (await fetch(`${server.url}/metrics`, { headers: auth })).text();
      for (const l of LABELS) expect(metrics).toContain(`mcp_account_in_flight{account="${l}",provider="zai"} 0`);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  }, 60_000);
});
