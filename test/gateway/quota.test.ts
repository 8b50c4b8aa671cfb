import { afterEach, expect, test } from 'bun:test';
import type { Catalog } from '../../src/gateway/catalog.ts';
import { createRouting } from '../../src/gateway/index.ts';
import { createQuotaPoller } from '../../src/gateway/quota.ts';
import type { Pool } from '../../src/pool/pool.ts';
import { UpstreamError } from '../../src/providers/provider.ts';
import { findAccount, removeAccount, updateAccount, upsertAccount } from '../../src/store/accounts.ts';
import { trackedSizes } from '../../src/diagnostics.ts';
import { openDatabase } from '../../src/store/db.ts';
import { listQuotas } from '../../src/store/limits.ts';
import { configureLog, log } from '../../src/log.ts';
import { ApiError } from '../../src/anthropic/errors.ts';
import { providerDepsFor } from '../../src/gateway/index.ts';
import { createZaiProvider } from '../../src/providers/zai/index.ts';
import { startFakeZai } from '../fakes/zai.ts';
import { addZai, cleanupDbs, dispatchReq, drain, request, scriptedProvider, T0, tempDb, testConfig } from './helpers.ts';

afterEach(cleanupDbs);

function setup(config = testConfig(), now: () => number = () => T0) {
  const { db, path } = tempDb();
  addZai(db, 'a', T0);
  addZai(db, 'b', T0 + 1);
  const zai = scriptedProvider('zai', ['glm-4.7', 'glm-9-secret']);
  zai.quotas.set('a', [{ model: '*', remainingFraction: 0.5, resetAt: T0 + 1000, window: '5h' }]);
  zai.quotas.set('b', [{ model: '*', remainingFraction: 0.8, resetAt: null, window: '5h' }]);
  let quotaCalls: string[] = [];
  const quota = zai.quota.bind(zai);
  zai.quota = async (account, signal) => {
    quotaCalls.push(account.label);
    return quota(account, signal);
  };
  const routing = createRouting({ db, config, providers: { zai }, now });
  return { db, path, zai, routing, calls: () => quotaCalls, reset: () => (quotaCalls = []) };
}

test('at start every active account is polled and its quota stored; discovered models join the catalog', async () => {
  const s = setup();
  await s.routing.start();
  try {
    await s.routing.quota.pollAll();
    expect(s.calls().sort()).toEqual(['a', 'b']);
    const q = listQuotas(s.db);
    expect(q.map((r) => `${r.window}:${r.remainingFraction}`).sort()).toEqual(['5h:0.5', '5h:0.8']);
    expect(s.routing.gateway.listModels().map((m) => m.id)).toContain('glm-9-secret');
  } finally {
    await s.routing.stop();
  }
});

test('start polls every account by itself, then again every QUOTA_POLL_INTERVAL_SEC', async () => {
  const s = setup(testConfig({ quotaPollIntervalSec: 0.2 }));
  await s.routing.start();
  try {
    await Bun.sleep(50);
    expect(s.calls().sort()).toEqual(['a', 'b']);
    expect(listQuotas(s.db)).toHaveLength(2);
    s.reset();
    await Bun.sleep(300);
    // At least one more round (a slow machine may fit two).
    expect([...new Set(s.calls())].sort()).toEqual(['a', 'b']);
  } finally {
    await s.routing.stop();
  }
});

test('a 429 triggers a quota re-read of that account (at most once per few seconds)', async () => {
  const s = setup();
  await s.routing.start();
  try {
    await s.routing.quota.pollAll();
    s.reset();
    s.zai.answer = (c, n) => (c.label === 'a' && n === 1 ? { error: new UpstreamError('rate_limited', 'x', { resetAt: T0 + 5000 }) } : {});
    await drain(await s.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    await Bun.sleep(10);
    expect(s.calls()).toEqual(['a']);
    s.routing.quota.afterRateLimit(s.routing.pool.accounts()[0]!.id);
    await Bun.sleep(10);
    expect(s.calls()).toEqual(['a']);
  } finally {
    await s.routing.stop();
  }
});

test('an account added by the CLI while running is polled right away', async () => {
  const s = setup();
  s.zai.quotas.set('late', [{ model: '*', remainingFraction: 0.3, resetAt: null, window: '5h' }]);
  await s.routing.start();
  try {
    await s.routing.quota.pollAll();
    s.reset();
    const cli = openDatabase(s.path);
    addZai(cli, 'late', T0 + 5);
    cli.close();
    s.routing.pool.sync();
    await Bun.sleep(20);
    expect(s.calls()).toEqual(['late']);
    const late = findAccount(s.db, 'late')!;
    expect(listQuotas(s.db).filter((q) => q.accountId === late.id)[0]!.remainingFraction).toBe(0.3);
  } finally {
    await s.routing.stop();
  }
});

test('a quota answer saying the account cannot serve marks it invalid', async () => {
  const s = setup();
  s.zai.quota = async (account) => {
    if (account.label === 'a') throw new UpstreamError('invalid_account', 'Z.AI quota: no coding plan', { scope: 'account' });
    return [];
  };
  await s.routing.start();
  try {
    await s.routing.quota.pollAll();
    expect(findAccount(s.db, 'a')!.status).toBe('invalid');
    expect(findAccount(s.db, 'a')!.statusReason).toContain('no coding plan');
    expect(findAccount(s.db, 'b')!.status).toBe('active');
  } finally {
    await s.routing.stop();
  }
});

test('a failing quota call keeps the last known quota', async () => {
  const s = setup();
  await s.routing.start();
  try {
    await s.routing.quota.pollAll();
    s.zai.quota = async () => {
      throw new UpstreamError('transient', 'down');
    };
    await s.routing.quota.pollAll();
    expect(listQuotas(s.db)).toHaveLength(2);
  } finally {
    await s.routing.stop();
  }
});

/** A change made through another connection, as the CLI makes it (the pool notices those). */
function asCli(path: string, fn: (db: ReturnType<typeof openDatabase>) => unknown): void {
  const db = openDatabase(path);
  try {
    fn(db);
  } finally {
    db.close();
  }
}

test('an account marked invalid that passes verification again is put back in rotation on the next round', async () => {
  const s = setup();
  const a = findAccount(s.db, 'a')!;
  asCli(s.path, (db) => updateAccount(db, a.id, { status: 'invalid', statusReason: 'VALIDATION_REQUIRED: verify your account' }));
  s.routing.pool.sync();
  let verifyOk = false;
  const verified: string[] = [];
  s.zai.verify = async (account) => {
    verified.push(account.label);
    return { ok: verifyOk, detail: verifyOk ? 'ok' : 'still needs verification' };
  };
  await s.routing.start();
  try {
    await s.routing.quota.pollAll();
    // Still failing: it stays invalid and its quota is not asked for.
    expect(verified).toContain('a');
    expect(findAccount(s.db, 'a')!.status).toBe('invalid');
    expect(s.calls()).not.toContain('a');
    verifyOk = true;
    await s.routing.quota.pollAll();
    expect(findAccount(s.db, 'a')).toMatchObject({ status: 'active', statusReason: null });
    expect(s.routing.pool.account(a.id)!.status).toBe('active');
    expect(s.calls()).toContain('a');
  } finally {
    await s.routing.stop();
  }
});

test('a disabled account is neither verified nor polled', async () => {
  const s = setup();
  const a = findAccount(s.db, 'a')!;
  asCli(s.path, (db) => updateAccount(db, a.id, { status: 'disabled', statusReason: 'disabled by user' }));
  s.routing.pool.sync();
  const verified: string[] = [];
  s.zai.verify = async (account) => {
    verified.push(account.label);
    return { ok: true, detail: 'ok' };
  };
  await s.routing.start();
  try {
    await s.routing.quota.pollAll();
    expect(verified).toEqual([]);
    expect(s.calls()).not.toContain('a');
    expect(findAccount(s.db, 'a')!.status).toBe('disabled');
  } finally {
    await s.routing.stop();
  }
});

test("a disabled account's listing leaves the catalog at the next round: a model it alone still names is not kept alive by it", async () => {
  const s = setup();
  s.zai.models = async (account) => [{ id: account.label === 'a' ? 'glm-retired' : 'glm-4.7', displayName: 'x', family: 'glm' }];
  await s.routing.start();
  try {
    await s.routing.quota.pollAll();
    expect(s.routing.catalog.modelsOf('zai').map((m) => m.id)).toContain('glm-retired');
    const a = findAccount(s.db, 'a')!;
    asCli(s.path, (db) => updateAccount(db, a.id, { status: 'disabled', statusReason: 'disabled by user' }));
    s.routing.pool.sync();
    await s.routing.quota.pollAll();
    expect(s.routing.catalog.modelsOf('zai').map((m) => m.id)).toEqual(['glm-4.7']);
  } finally {
    await s.routing.stop();
  }
});

test('an account passing verification again while the store refuses writes goes back in rotation and is stored later, without an unhandled rejection', async () => {
  const s = setup();
  const a = findAccount(s.db, 'a')!;
  asCli(s.path, (db) => updateAccount(db, a.id, { status: 'invalid', statusReason: 'VALIDATION_REQUIRED: verify your account' }));
  s.routing.pool.sync();
  s.zai.verify = async () => ({ ok: true, detail: 'ok' });
  // The quota call fails too: the account is reactivated from the poller's error path.
  s.zai.quota = async () => {
    throw new UpstreamError('transient', 'down');
  };
  const lines: string[] = [];
  log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
  s.db.exec('PRAGMA busy_timeout = 20');
  const other = openDatabase(s.path);
  other.exec('BEGIN IMMEDIATE');
  try {
    await s.routing.quota.pollAccount(a.id);
    expect(s.routing.pool.account(a.id)!.status).toBe('active');
    // A lock held a moment is not worth a warning (one that lasts 5 s is: test/pool/pool.test.ts).
    expect(lines.filter((l) => l.startsWith('warn:'))).toEqual([]);
    other.exec('COMMIT');
    s.routing.pool.stop(); // retries what is unsaved
    expect(findAccount(other, a.id)).toMatchObject({ status: 'active', statusReason: null });
  } finally {
    other.close();
    configureLog({ format: 'pretty' });
  }
});

test('a poll that fails for a reason of its own logs one line and never rejects', async () => {
  const lines: string[] = [];
  log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
  const pool = {
    account: () => {
      throw new Error('the database is closed');
    },
    onAccountsAdded: () => {},
    onAccountsRemoved: () => {},
  } as unknown as Pool;
  const poller = createQuotaPoller({ config: testConfig(), pool, catalog: {} as Catalog, providers: {}, now: () => T0 });
  try {
    await expect(poller.pollAccount('acc_1')).resolves.toBeUndefined();
    expect(lines).toEqual(['warn: quota round of acc_1 failed: the database is closed']);
  } finally {
    configureLog({ format: 'pretty' });
  }
});

test('with every account read at 0 left, no upstream call is made: the client hears when the quota resets', async () => {
  const s = setup();
  const spent = [{ model: '*', remainingFraction: 0, resetAt: T0 + 2 * 3_600_000, window: '5h' }];
  s.zai.quotas.set('a', spent);
  s.zai.quotas.set('b', spent);
  await s.routing.start();
  try {
    await s.routing.quota.pollAll();
    const err = await s.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(429);
    expect((err as ApiError).headers?.['retry-after']).toBe('7200');
    expect(s.zai.calls).toHaveLength(0);
  } finally {
    await s.routing.stop();
  }
});

test('with ANTIGRAVITY_AI_CREDITS a Google account read at 0 left still serves (its credits pay)', async () => {
  const { db } = tempDb();
  upsertAccount(db, { provider: 'antigravity', label: 'g', email: 'g@example.com', credentials: { kind: 'oauth', refreshToken: 'FAKE-refresh-g' } }, T0);
  const antigravity = scriptedProvider('antigravity', ['claude-sonnet-4-6']);
  antigravity.quotas.set('g', [{ model: 'claude-sonnet-4-6', remainingFraction: 0, resetAt: T0 + 3_600_000 }]);
  const base = testConfig();
  const config = testConfig({ antigravity: { ...base.antigravity, aiCredits: true } });
  const routing = createRouting({ db, config, providers: { antigravity }, now: () => T0 });
  await routing.start();
  try {
    await routing.quota.pollAll();
    await drain(await routing.gateway.dispatch(dispatchReq(request('claude-sonnet-4-6'))));
    expect(antigravity.calls).toHaveLength(1);
  } finally {
    await routing.stop();
  }
});

test('a round over many accounts asks a few at a time, never all at once', async () => {
  const { db } = tempDb();
  for (let i = 0; i < 12; i++) addZai(db, `k${i}`, T0 + i);
  const zai = scriptedProvider('zai', ['glm-4.7']);
  let open = 0;
  let most = 0;
  let calls = 0;
  zai.quota = async () => {
    calls++;
    most = Math.max(most, ++open);
    await Bun.sleep(5);
    open--;
    return [];
  };
  const routing = createRouting({ db, config: testConfig(), providers: { zai }, now: () => T0 });
  await routing.quota.pollAll();
  expect(calls).toBe(12);
  expect(most).toBeGreaterThan(1);
  expect(most).toBeLessThanOrEqual(4);
});

test('stop ends a round at once: the calls in flight are aborted and the accounts still waiting are not asked', async () => {
  const { db } = tempDb();
  for (let i = 0; i < 12; i++) addZai(db, `k${i}`, T0 + i);
  const zai = scriptedProvider('zai', ['glm-4.7']);
  let calls = 0;
  zai.quota = (_account, signal) => {
    calls++;
    return new Promise((_, reject) => signal?.addEventListener('abort', () => reject(new UpstreamError('transient', 'aborted')), { once: true }));
  };
  const routing = createRouting({ db, config: testConfig(), providers: { zai }, now: () => T0 });
  await routing.start();
  await Bun.sleep(10);
  const t0 = performance.now();
  await routing.stop();
  expect(performance.now() - t0).toBeLessThan(500);
  await Bun.sleep(20);
  expect(calls).toBeLessThanOrEqual(4);
});

test('a quota call that failed is not followed by a model listing in the same round (for Google it is the same call)', async () => {
  const s = setup();
  let listings = 0;
  s.zai.models = async () => {
    listings++;
    return [];
  };
  s.zai.quota = async () => {
    throw new UpstreamError('rate_limited', 'slow down', { status: 429 });
  };
  await s.routing.quota.pollAll();
  expect(listings).toBe(0);
  expect(findAccount(s.db, 'a')!.status).toBe('active');
});

test('a quota poll Z.AI refuses as a bad key (a 200 saying code 401, token expired) leaves the account in rotation and its limits alone', async () => {
  const fake = startFakeZai({ keys: ['key-a-000000'] });
  const { db } = tempDb();
  const a = addZai(db, 'a', T0);
  const config = testConfig({}, { ZAI_BASE_URL: fake.url, ZAI_QUOTA_URL: fake.quotaUrl });
  const zai = createZaiProvider(config, providerDepsFor(db, () => T0));
  const routing = createRouting({ db, config, providers: { zai }, now: () => T0 });
  try {
    routing.pool.report(
      { account: a, provider: 'zai', model: 'glm-4.7', sticky: false, soft: false, release() {} },
      { kind: 'error', error: new UpstreamError('rate_limited', 'slow down', { resetAt: T0 + 60_000 }) },
    );
    fake.setQuota({ success: false, code: 401, msg: 'token expired or incorrect' });
    await routing.quota.pollAll();
    expect(findAccount(db, 'a')!.status).toBe('active');
    expect(routing.pool.state()[0]!.limits).toEqual([expect.objectContaining({ model: 'glm-4.7', kind: 'rate_limited' })]);
  } finally {
    await fake.stop();
  }
});

test('a Z.AI key out for an expired plan (1309) stays out while the quota answers without naming a plan, and comes back once a reading shows one', async () => {
  const fake = startFakeZai({ keys: ['key-a-000000'] });
  const { db } = tempDb();
  const a = addZai(db, 'a', T0);
  const config = testConfig({}, { ZAI_BASE_URL: fake.url, ZAI_QUOTA_URL: fake.quotaUrl });
  const zai = createZaiProvider(config, providerDepsFor(db, () => T0));
  const routing = createRouting({ db, config, providers: { zai }, now: () => T0 });
  try {
    // What a request met: the gateway marks the key with the upstream's words.
    routing.pool.markInvalid(a, '[1309] Your GLM Coding Plan package has expired, please renew to restore access');
    // The quota endpoint still answers for the key, with no plan level and no token window.
    fake.setQuota({ windows: [], timeLimit: true });
    await routing.quota.pollAll();
    await routing.quota.pollAll();
    expect(findAccount(db, 'a')).toMatchObject({ status: 'invalid', statusReason: expect.stringContaining('[1309]') });
    // Renewed: the reading names the plan again.
    fake.setQuota({ level: 'pro', windows: [{ unit: 3, number: 5, usage: 1_000_000, currentValue: 10 }] });
    await routing.quota.pollAll();
    expect(findAccount(db, 'a')!.status).toBe('active');
  } finally {
    await fake.stop();
  }
});

test('an account the CLI enables again while running is polled right away: its quota and listing went stale while it was off', async () => {
  const s = setup();
  const a = findAccount(s.db, 'a')!;
  asCli(s.path, (db) => updateAccount(db, a.id, { status: 'disabled', statusReason: 'disabled by user' }));
  s.routing.pool.sync();
  await s.routing.start();
  try {
    await s.routing.quota.pollAll();
    s.reset();
    asCli(s.path, (db) => updateAccount(db, a.id, { status: 'active', statusReason: null }));
    s.routing.pool.sync();
    await Bun.sleep(20);
    expect(s.calls()).toEqual(['a']);
  } finally {
    await s.routing.stop();
  }
});

test('after a wall clock stepped back, a 429 still triggers a quota re-read (the gap is not counted from the future)', async () => {
  let t = T0;
  const s = setup(testConfig(), () => t);
  await s.routing.start();
  try {
    await s.routing.quota.pollAll();
    const a = s.routing.pool.accounts()[0]!.id;
    s.routing.quota.afterRateLimit(a);
    await Bun.sleep(10);
    s.reset();
    t = T0 - 3_600_000;
    s.routing.quota.afterRateLimit(a);
    await Bun.sleep(10);
    expect(s.calls()).toEqual(['a']);
  } finally {
    await s.routing.stop();
  }
});

test('a round minutes after quota 429s that reads quota left puts the accounts back, so a mistaken 429 does not park them for the week it named', async () => {
  let t = T0;
  const s = setup(testConfig(), () => t);
  await s.routing.start();
  try {
    const week = 7 * 86_400_000;
    s.zai.answer = () => ({ error: new UpstreamError('quota_exhausted', 'quota exhausted', { resetAt: T0 + week, scope: 'account' }) });
    const first = await s.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))).then(drain, (e: unknown) => e);
    expect((first as ApiError).status).toBe(429);
    s.zai.answer = () => ({});
    // The reading asked right after the 429s may lag them: it does not count against them.
    await s.routing.quota.pollAll();
    const still = await s.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))).then(drain, (e: unknown) => e);
    expect((still as ApiError).status).toBe(429);
    t = T0 + 10 * 60_000;
    await s.routing.quota.pollAll();
    const events = await drain(await s.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(events.at(-1)?.type).toBe('message_stop');
  } finally {
    await s.routing.stop();
  }
});

test('an account serving near the soft floor is read again, at most once a minute; one far above it, or with soft limits off, is not', async () => {
  let t = T0;
  const s = setup(testConfig({ softLimitEnabled: true, softLimitThreshold: 0.2 }), () => t);
  await s.routing.start();
  try {
    await s.routing.quota.pollAll();
    const [a, b] = s.routing.pool.accounts().map((x) => x.id);
    s.reset();
    s.routing.quota.afterUse(b!, 0.8);
    s.routing.quota.afterUse(a!, null);
    await Bun.sleep(10);
    expect(s.calls()).toEqual([]);
    s.routing.quota.afterUse(a!, 0.25);
    await Bun.sleep(10);
    s.routing.quota.afterUse(a!, 0.24);
    await Bun.sleep(10);
    expect(s.calls()).toEqual(['a']);
    t = T0 + 60_000;
    s.routing.quota.afterUse(a!, 0.15);
    await Bun.sleep(10);
    expect(s.calls()).toEqual(['a', 'a']);
  } finally {
    await s.routing.stop();
  }
  const off = setup(testConfig({ softLimitEnabled: false }));
  await off.routing.start();
  try {
    await off.routing.quota.pollAll();
    off.reset();
    off.routing.quota.afterUse(off.routing.pool.accounts()[0]!.id, 0.05);
    await Bun.sleep(10);
    expect(off.calls()).toEqual([]);
  } finally {
    await off.routing.stop();
  }
});

test('a removed account is forgotten by the poller at its next round (its poll times do not pile up over months of churn)', async () => {
  const s = setup(testConfig({ softLimitThreshold: 0.2 }));
  await s.routing.start();
  try {
    const [a, b] = s.routing.pool.accounts();
    s.routing.quota.afterRateLimit(a!.id);
    s.routing.quota.afterRateLimit(b!.id);
    s.routing.quota.afterUse(a!.id, 0.25);
    expect(trackedSizes()['quota.perAccount']).toBe(3);
    const cli = openDatabase(s.path);
    removeAccount(cli, a!.id);
    cli.close();
    s.routing.pool.sync();
    await s.routing.quota.pollAll();
    expect(trackedSizes()['quota.perAccount']).toBe(1);
  } finally {
    await s.routing.stop();
  }
});

test('an account removed or disabled with the CLI takes its model listing out of the catalog at once, not at the next round', async () => {
  const s = setup();
  addZai(s.db, 'c', T0 + 2);
  const models = s.zai.models.bind(s.zai);
  // Only a's tier lists glm-9-secret, only b's glm-8-other; c has neither.
  const own: Record<string, string> = { a: 'glm-9-secret', b: 'glm-8-other' };
  s.zai.models = async (account) => {
    const base = (await models(account)).filter((m) => m.id !== 'glm-9-secret');
    const extra = own[account.label];
    return extra ? [...base, { id: extra, displayName: extra, family: 'other' as const }] : base;
  };
  await s.routing.start();
  try {
    await s.routing.quota.pollAll();
    const ids = () => s.routing.gateway.listModels().map((m) => m.id);
    expect(ids()).toEqual(expect.arrayContaining(['glm-4.7', 'glm-9-secret', 'glm-8-other']));
    const [a, b] = s.routing.pool.accounts();
    const cli = openDatabase(s.path);
    removeAccount(cli, a!.id);
    updateAccount(cli, b!.id, { status: 'disabled' }, T0);
    cli.close();
    s.routing.pool.sync();
    expect(ids()).toContain('glm-4.7');
    expect(ids()).not.toContain('glm-9-secret');
    expect(ids()).not.toContain('glm-8-other');
  } finally {
    await s.routing.stop();
  }
});

test('a listing that arrives after its account was removed is not kept', async () => {
  const s = setup();
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const models = s.zai.models.bind(s.zai);
  // Only a's tier lists glm-9-secret.
  s.zai.models = async (account) => {
    if (account.label === 'a') await held;
    return (await models(account)).filter((m) => account.label === 'a' || m.id !== 'glm-9-secret');
  };
  await s.routing.start();
  try {
    const a = s.routing.pool.accounts()[0]!;
    const polled = s.routing.quota.pollAccount(a.id);
    await Bun.sleep(10);
    const cli = openDatabase(s.path);
    removeAccount(cli, a.id);
    cli.close();
    s.routing.pool.sync();
    release();
    await polled;
    expect(s.routing.gateway.listModels().map((m) => m.id)).not.toContain('glm-9-secret');
  } finally {
    await s.routing.stop();
  }
});
