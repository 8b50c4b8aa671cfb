import { afterEach, describe, expect, test } from 'bun:test';
import { createRouting, providerDepsFor } from '../../src/gateway/index.ts';
import { CAPACITY_COOLDOWN_MS, createPool, type Lease, MIN_LIMIT_MS, type Outcome, READING_OUTRANKS_429_AFTER_MS, TRANSIENT_BURST_MS } from '../../src/pool/pool.ts';
import { UpstreamError } from '../../src/providers/provider.ts';
import { findAccount, removeAccount, updateAccount } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';
import { ALL_MODELS, listLimits, replaceQuotas, resetAccountLimits } from '../../src/store/limits.ts';
import { loadBindings } from '../../src/store/bindings.ts';
import { configureLog, log } from '../../src/log.ts';
import { trackedSizes } from '../../src/diagnostics.ts';
import { addZai, cleanupDbs, scriptedProvider, T0, tempDb, testConfig } from '../gateway/helpers.ts';
import { lockFromAnotherProcess } from '../store/lock-from-another-process.ts';

afterEach(cleanupDbs);

const COOLDOWN_SEC = 60;

function setup(labels = ['a', 'b'], maxConcurrentPerAccount: number | null = null, flushIntervalMs?: number) {
  const { db, path } = tempDb();
  let t = T0;
  const accounts = labels.map((l, i) => addZai(db, l, T0 + i));
  const pool = createPool({ db, now: () => t, defaultCooldownSec: COOLDOWN_SEC, softLimitThreshold: 0.2, maxConcurrentPerAccount, ...(flushIntervalMs ? { flushIntervalMs } : {}) });
  return { db, path, pool, accounts, setNow: (v: number) => (t = v) };
}

/** A provider's store writes on one account, with the log lines they leave (the caller restores the log). */
function providerWrites() {
  const { db } = tempDb();
  const acc = addZai(db, 'a');
  let t = T0;
  const deps = providerDepsFor(db, () => t);
  const lines: string[] = [];
  log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
  return { db, acc, deps, lines, advance: (ms: number) => (t += ms) };
}

function accountsOf(pool: ReturnType<typeof createPool>, label: string): string {
  return pool.accounts().find((a) => a.label === label)!.id;
}

function lease(pool: ReturnType<typeof createPool>, model = 'glm-4.7', session = 's'): Lease {
  const got = pool.acquire({ provider: 'zai', model, familyKey: 'zai:glm', sessionKey: session });
  if (got.kind !== 'lease') throw new Error(`no lease: ${JSON.stringify(got)}`);
  return got.lease;
}

describe('report: what each upstream outcome does to the account', () => {
  const err = (kind: UpstreamError['kind'], o: ConstructorParameters<typeof UpstreamError>[2] = {}) =>
    ({ kind: 'error', error: new UpstreamError(kind, `${kind} happened`, o) }) as Outcome;
  const rows: Array<{
    name: string;
    outcome: Outcome;
    limit: { model: string; kind: string; resetAt: number } | null;
    status: string;
  }> = [
    { name: 'success leaves no trace', outcome: { kind: 'success' }, limit: null, status: 'active' },
    { name: 'client abort is not counted', outcome: { kind: 'aborted' }, limit: null, status: 'active' },
    { name: 'a bad request says nothing about the account', outcome: { kind: 'neutral' }, limit: null, status: 'active' },
    {
      name: 'rate_limited with a reset: that model until the reset',
      outcome: err('rate_limited', { resetAt: T0 + 42_000 }),
      limit: { model: 'glm-4.7', kind: 'rate_limited', resetAt: T0 + 42_000 },
      status: 'active',
    },
    {
      name: 'rate_limited without a reset: the default cool-down',
      outcome: err('rate_limited'),
      limit: { model: 'glm-4.7', kind: 'rate_limited', resetAt: T0 + COOLDOWN_SEC * 1000 },
      status: 'active',
    },
    {
      // A sub-second hint the classifier made absolute is already past when the pool hears of it.
      name: 'rate_limited whose reset passed before the report: a one-second rest, not the default cool-down',
      outcome: err('rate_limited', { resetAt: T0 - 300 }),
      limit: { model: 'glm-4.7', kind: 'rate_limited', resetAt: T0 + MIN_LIMIT_MS },
      status: 'active',
    },
    {
      name: 'rate_limited with a reset just ahead: at least a one-second rest',
      outcome: err('rate_limited', { resetAt: T0 + 200 }),
      limit: { model: 'glm-4.7', kind: 'rate_limited', resetAt: T0 + MIN_LIMIT_MS },
      status: 'active',
    },
    {
      name: 'capacity whose reset passed before the report: a one-second rest, not the capacity cool-down',
      outcome: err('capacity', { resetAt: T0 - 300 }),
      limit: { model: 'glm-4.7', kind: 'capacity', resetAt: T0 + MIN_LIMIT_MS },
      status: 'active',
    },
    {
      name: 'quota_exhausted scope account: every model',
      outcome: err('quota_exhausted', { resetAt: T0 + 7_200_000, scope: 'account' }),
      limit: { model: ALL_MODELS, kind: 'quota_exhausted', resetAt: T0 + 7_200_000 },
      status: 'active',
    },
    {
      name: 'capacity: a short cool-down',
      outcome: err('capacity'),
      limit: { model: 'glm-4.7', kind: 'capacity', resetAt: T0 + CAPACITY_COOLDOWN_MS },
      status: 'active',
    },
    { name: 'one transient failure: nothing yet', outcome: err('transient'), limit: null, status: 'active' },
    { name: 'auth (after the refresh failed): invalid', outcome: err('auth'), limit: null, status: 'invalid' },
    {
      name: 'invalid_account: invalid',
      outcome: err('invalid_account', { verifyUrl: 'https://verify' }),
      limit: null,
      status: 'invalid',
    },
    { name: 'bad_request as an error: no state', outcome: err('bad_request'), limit: null, status: 'active' },
  ];
  for (const r of rows) {
    test(r.name, () => {
      const { db, pool, accounts } = setup(['a']);
      const l = lease(pool);
      pool.report(l, r.outcome);
      l.release();
      const limits = listLimits(db);
      if (r.limit) {
        expect(limits).toHaveLength(1);
        expect(limits[0]).toMatchObject({ accountId: accounts[0]!.id, ...r.limit });
      } else expect(limits).toHaveLength(0);
      expect(findAccount(db, 'a')!.status).toBe(r.status as 'active');
      expect(pool.account(accounts[0]!.id)!.status).toBe(r.status as 'active');
    });
  }

  test('invalid_account keeps the reason and the verify link', () => {
    const { db, pool } = setup(['a']);
    pool.report(lease(pool), err('invalid_account', { verifyUrl: 'https://accounts.google.com/x', code: 'VALIDATION_REQUIRED' }));
    const a = findAccount(db, 'a')!;
    expect(a.statusReason).toBe('VALIDATION_REQUIRED: invalid_account happened');
    expect(a.verifyUrl).toBe('https://accounts.google.com/x');
  });

  test('one 5xx blip met by requests sent together counts once: the account is not rested, though three failed', () => {
    const { pool, setNow } = setup(['a']);
    const together = [lease(pool, 'glm-4.7', 's1'), lease(pool, 'glm-4.7', 's2'), lease(pool, 'glm-4.7', 's3')];
    setNow(T0 + 100);
    for (const l of together) pool.report(l, { kind: 'error', error: new UpstreamError('transient', 'bad gateway') });
    expect(pool.state()[0]!.limits).toEqual([]);
    // Failures of requests sent well after each earlier failure do add up: a failing account is rested.
    for (let i = 0; i < 2; i++) {
      setNow(T0 + 100 + (i + 1) * TRANSIENT_BURST_MS);
      pool.report(lease(pool, 'glm-4.7', `later${i}`), { kind: 'error', error: new UpstreamError('transient', 'bad gateway') });
    }
    expect(pool.state()[0]!.limits.map((l) => l.kind)).toEqual(['transient']);
  });

  test('requests of one burst that reach a busy server just after the first failure still count as one blip', () => {
    const { pool, setNow } = setup(['a']);
    for (let i = 0; i < 5; i++) {
      // Each begins a few milliseconds after the one before failed: one client's burst, served slowly.
      setNow(T0 + i * 20);
      const l = lease(pool, 'glm-4.7', `s${i}`);
      setNow(T0 + i * 20 + 10);
      pool.report(l, { kind: 'error', error: new UpstreamError('transient', 'bad gateway') });
      l.release();
    }
    expect(pool.state()[0]!.limits).toEqual([]);
  });

  test('success clears a limit still on record for the model', () => {
    const { db, pool, setNow } = setup(['a']);
    pool.report(lease(pool), err('rate_limited', { resetAt: T0 + 1000 }));
    setNow(T0 + 2000);
    pool.report(lease(pool), { kind: 'success' });
    expect(listLimits(db)).toHaveLength(0);
  });

  test('a request that started before a limit and ends well afterwards does not clear it', () => {
    const { db, pool, setNow } = setup(['a']);
    const long = lease(pool, 'glm-4.7', 's1'); // a stream that spends the last of the quota
    setNow(T0 + 100);
    pool.report(lease(pool, 'glm-4.7', 's2'), err('quota_exhausted', { resetAt: T0 + 3_600_000 }));
    setNow(T0 + 200);
    pool.report(long, { kind: 'success' });
    expect(listLimits(db)).toEqual([expect.objectContaining({ model: 'glm-4.7', kind: 'quota_exhausted' })]);
    expect(pool.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: 'x' }).kind).toBe('limited');
  });

  test('an exhausted quota also rests the models that share it, until the same reset', () => {
    const { db, pool } = setup(['a']);
    const l = lease(pool, 'claude-opus-4-6-thinking');
    pool.report(l, err('quota_exhausted', { resetAt: T0 + 3_600_000, sharedWith: ['claude-sonnet-4-6', 'gpt-oss-120b-medium'] }));
    const byModel = Object.fromEntries(listLimits(db).map((x) => [x.model, x]));
    expect(Object.keys(byModel).sort()).toEqual(['claude-opus-4-6-thinking', 'claude-sonnet-4-6', 'gpt-oss-120b-medium']);
    for (const x of Object.values(byModel)) expect(x).toMatchObject({ kind: 'quota_exhausted', resetAt: T0 + 3_600_000 });
    expect(byModel['claude-sonnet-4-6']!.reason).toContain('shared with claude-opus-4-6-thinking');
  });

  test('a short throttle never shortens a longer quota wait already known', () => {
    const { db, pool } = setup(['a']);
    const l = lease(pool);
    pool.report(l, err('quota_exhausted', { resetAt: T0 + 3_600_000 }));
    // A stream that was already running when the quota ran out reports a throttle later.
    pool.report(l, err('rate_limited', { resetAt: T0 + 5_000 }));
    expect(listLimits(db)[0]!.resetAt).toBe(T0 + 3_600_000);
  });
});

describe('acquire when every account is limited', () => {
  const err = (kind: UpstreamError['kind'], o: ConstructorParameters<typeof UpstreamError>[2] = {}) =>
    ({ kind: 'error', error: new UpstreamError(kind, `${kind} happened`, o) }) as Outcome;

  test('names the earliest reset and the kind of that limit', () => {
    const { pool } = setup(['a', 'b']);
    const la = lease(pool, 'glm-4.7', 's1');
    const lb = lease(pool, 'glm-4.7', 's2');
    pool.report(la, err('quota_exhausted', { resetAt: T0 + 3_600_000 }));
    pool.report(lb, err('capacity', { resetAt: T0 + 20_000 }));
    // And every kind that keeps the accounts out, so the client is not told they are all overloaded.
    expect(pool.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: 'x' })).toEqual({
      kind: 'limited',
      until: T0 + 20_000,
      limitKind: 'capacity',
      kinds: ['quota_exhausted', 'capacity'],
    });
  });

  test('an account-wide limit that outlasts the model\'s own decides the kind', () => {
    const { pool } = setup(['a']);
    const l = lease(pool);
    pool.report(l, err('rate_limited', { resetAt: T0 + 5_000 }));
    pool.report(l, err('quota_exhausted', { resetAt: T0 + 7_200_000, scope: 'account' }));
    expect(pool.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: 'x' })).toEqual({
      kind: 'limited',
      until: T0 + 7_200_000,
      limitKind: 'quota_exhausted',
    });
  });
});

describe('a conversation whose account meets a limit', () => {
  const err = (kind: UpstreamError['kind'], o: ConstructorParameters<typeof UpstreamError>[2] = {}) =>
    ({ kind: 'error', error: new UpstreamError(kind, `${kind} happened`, o) }) as Outcome;
  const ask = (pool: ReturnType<typeof createPool>, exclude?: Set<string>) => {
    const got = pool.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: 'conv', ...(exclude ? { exclude } : {}) });
    if (got.kind !== 'lease') throw new Error(JSON.stringify(got));
    got.lease.release();
    return got.lease;
  };

  const short: Array<{ name: string; outcome: Outcome; over: number }> = [
    { name: 'a 1 s throttle', outcome: err('rate_limited', { resetAt: T0 + 1_000 }), over: T0 + 1_000 },
    { name: 'the 10 s capacity cool-down', outcome: err('capacity'), over: T0 + CAPACITY_COOLDOWN_MS },
    { name: 'a 429 with no time (the default cool-down, a minute)', outcome: err('rate_limited'), over: T0 + COOLDOWN_SEC * 1000 },
  ];
  for (const row of short) {
    test(`${row.name}: the retry and the next turns during it are served elsewhere, the conversation stays bound and goes home after it`, () => {
      const { pool, setNow } = setup(['a', 'b']);
      // An established conversation: a has served it a turn, so its prompt cache is there.
      pool.report(ask(pool), { kind: 'success' });
      const home = ask(pool);
      expect(home.account.label).toBe('a');
      pool.report(home, row.outcome);
      // The gateway's retry of the same request, with the home account tried.
      const retry = ask(pool, new Set([home.account.id]));
      expect([retry.account.label, retry.sticky]).toEqual(['b', false]);
      setNow(row.over - 1);
      expect(ask(pool).account.label).toBe('b');
      setNow(row.over);
      const back = ask(pool);
      expect([back.account.label, back.sticky]).toEqual(['a', true]);
    });
  }

  for (const row of short) {
    test(`${row.name} on the first request of a new conversation: the account that serves it instead takes the conversation, which stays there after the limit`, () => {
      const { pool, setNow } = setup(['a', 'b']);
      const first = ask(pool);
      expect(first.account.label).toBe('a');
      // a never served this conversation: it holds no cache of it, b will.
      pool.report(first, row.outcome);
      const retry = ask(pool, new Set([first.account.id]));
      expect(retry.account.label).toBe('b');
      pool.report(retry, { kind: 'success' });
      setNow(row.over - 1);
      expect(ask(pool).account.label).toBe('b');
      setNow(row.over);
      const next = ask(pool);
      expect([next.account.label, next.sticky]).toEqual(['b', true]);
    });
  }

  test('a 5xx on the first request of a new conversation: the account that serves it takes the conversation', () => {
    const { pool, setNow } = setup(['a', 'b']);
    const first = ask(pool);
    pool.report(first, err('transient'));
    const retry = ask(pool, new Set([first.account.id]));
    expect(retry.account.label).toBe('b');
    pool.report(retry, { kind: 'success' });
    setNow(T0 + 1_000);
    const next = ask(pool);
    expect([next.account.label, next.sticky]).toEqual(['b', true]);
  });

  test('a 5xx on a turn of an established conversation moves only that request', () => {
    const { pool, setNow } = setup(['a', 'b']);
    pool.report(ask(pool), { kind: 'success' });
    const home = ask(pool);
    pool.report(home, err('transient'));
    expect(ask(pool, new Set([home.account.id])).account.label).toBe('b');
    setNow(T0 + 1_000);
    const next = ask(pool);
    expect([next.account.label, next.sticky]).toEqual(['a', true]);
  });

  test('a quota exhaustion moves the conversation, and it stays on its new account after the reset', () => {
    const { pool, setNow } = setup(['a', 'b']);
    const home = ask(pool);
    pool.report(home, err('quota_exhausted', { resetAt: T0 + 3_600_000 }));
    expect(ask(pool, new Set([home.account.id])).account.label).toBe('b');
    setNow(T0 + 3_600_000);
    const after = ask(pool);
    expect([after.account.label, after.sticky]).toEqual(['b', true]);
  });

  test('a throttle of more than a minute moves the conversation for good', () => {
    const { pool, setNow } = setup(['a', 'b']);
    const home = ask(pool);
    pool.report(home, err('rate_limited', { resetAt: T0 + 5 * 60_000 }));
    expect(ask(pool, new Set([home.account.id])).account.label).toBe('b');
    setNow(T0 + 5 * 60_000);
    expect(ask(pool).account.label).toBe('b');
  });
});

describe("Claude Code's side requests (session title, small-model one-offs: no tools, no answer yet)", () => {
  const noAccess = { kind: 'error', error: new UpstreamError('no_access', 'plan lacks glm-4.5-air') } as Outcome;
  const ask = (pool: ReturnType<typeof createPool>, model: string, side: boolean, exclude?: Set<string>) => {
    const got = pool.acquire({ provider: 'zai', model, familyKey: 'zai:glm', sessionKey: 'conv', side, ...(exclude ? { exclude } : {}) });
    if (got.kind !== 'lease') throw new Error(JSON.stringify(got));
    got.lease.release();
    return got.lease;
  };

  test("one served elsewhere (its model limited on the conversation's account) leaves the conversation where its cache is", () => {
    const { pool, setNow } = setup(['a', 'b']);
    expect(ask(pool, 'glm-4.7', false).account.label).toBe('a');
    setNow(T0 + 1_000);
    // The title model is not on a's plan: the title is served by b.
    const title = ask(pool, 'glm-4.5-air', true);
    expect(title.account.label).toBe('a');
    pool.report(title, noAccess);
    expect(ask(pool, 'glm-4.5-air', true, new Set([title.account.id])).account.label).toBe('b');
    setNow(T0 + 2_000);
    expect(ask(pool, 'glm-4.5-air', true).account.label).toBe('b');
    // The next main turn is still on a, though a was used longer ago.
    const next = ask(pool, 'glm-4.7', false);
    expect([next.account.label, next.sticky]).toEqual(['a', true]);
  });

  test('one that comes first places the conversation, and the first main turn may move it where its model is served', () => {
    const { pool, accounts, setNow } = setup(['a', 'b']);
    expect(ask(pool, 'glm-4.5-air', true).account.label).toBe('a');
    // The main model is limited on a: the first main turn goes to b, and the conversation with it.
    pool.report(ask(pool, 'glm-4.7', false), { kind: 'error', error: new UpstreamError('quota_exhausted', 'q', { resetAt: T0 + 3_600_000 }) });
    expect(ask(pool, 'glm-4.7', false, new Set([accounts[0]!.id])).account.label).toBe('b');
    expect(ask(pool, 'glm-4.7', false).account.label).toBe('b');
    // From then on a side request served on a (its model is not on b's plan) does not pull it back,
    // once a could serve the main model again too.
    const onB = ask(pool, 'glm-4.5-air', true);
    expect(onB.account.label).toBe('b');
    pool.report(onB, noAccess);
    expect(ask(pool, 'glm-4.5-air', true, new Set([accounts[1]!.id])).account.label).toBe('a');
    setNow(T0 + 3_600_000);
    const next = ask(pool, 'glm-4.7', false);
    expect([next.account.label, next.sticky]).toEqual(['b', true]);
  });

  test('a conversation only side requests have placed is moved by the next one served elsewhere', () => {
    const { pool } = setup(['a', 'b']);
    const first = ask(pool, 'glm-4.5-air', true);
    expect(first.account.label).toBe('a');
    pool.report(first, noAccess);
    expect(ask(pool, 'glm-4.5-air', true, new Set([first.account.id])).account.label).toBe('b');
    // The main model is served on both: the conversation is where the side request went last.
    expect(ask(pool, 'glm-4.7', false).account.label).toBe('b');
  });

  test('a title still running on the only free slot of its account: the main turns served elsewhere meanwhile take the conversation with them', () => {
    // Claude Code with MAX_CONCURRENT_PER_ACCOUNT=1 and a slow title: its main turns ran on b while
    // the title held a, and its next turn went back to a, away from the cache it had built on b.
    const { pool, setNow } = setup(['a', 'b'], 1);
    const title = pool.acquire({ provider: 'zai', model: 'glm-4.5-air', familyKey: 'zai:glm', sessionKey: 'conv', side: true });
    if (title.kind !== 'lease') throw new Error(JSON.stringify(title));
    expect(title.lease.account.label).toBe('a');
    const main = ask(pool, 'glm-4.7', false);
    expect(main.account.label).toBe('b');
    title.lease.release();
    setNow(T0 + 5_000);
    const next = ask(pool, 'glm-4.7', false);
    expect([next.account.label, next.sticky]).toEqual(['b', true]);
  });

  describe('across a restart (a new pool over the same database)', () => {
    const restart = (path: string, t: number) => createPool({ db: openDatabase(path), now: () => t, defaultCooldownSec: COOLDOWN_SEC, softLimitThreshold: 0.2 });

    /** The conversation placed on a by a main or a side request; after a restart a title a cannot serve goes to b. */
    function placedThenTitledElsewhere(bySide: boolean) {
      const { pool, path } = setup(['a', 'b']);
      expect(ask(pool, bySide ? 'glm-4.5-air' : 'glm-4.7', bySide).account.label).toBe('a');
      pool.stop();
      const after = restart(path, T0 + 60_000);
      const title = ask(after, 'glm-4.5-air', true);
      expect(title.account.label).toBe('a');
      after.report(title, noAccess);
      expect(ask(after, 'glm-4.5-air', true, new Set([title.account.id])).account.label).toBe('b');
      return { path, after };
    }

    test('a conversation a main request placed is still not moved by a side request served elsewhere', () => {
      const { after } = placedThenTitledElsewhere(false);
      const next = ask(after, 'glm-4.7', false);
      expect([next.account.label, next.sticky]).toEqual(['a', true]);
      after.stop();
    });

    test('a conversation only side requests placed is still moved by the next one served elsewhere', () => {
      const { path, after } = placedThenTitledElsewhere(true);
      expect(ask(after, 'glm-4.7', false).account.label).toBe('b');
      // A main request has placed it now: the next restart protects it.
      after.stop();
      const again = restart(path, T0 + 120_000);
      // (b failed it, say: it is served on a.)
      const side = ask(again, 'glm-4.6', true, new Set([accountsOf(again, 'b')]));
      expect(side.account.label).toBe('a');
      expect(ask(again, 'glm-4.7', false).account.label).toBe('b');
      again.stop();
    });
  });
});

describe('a conversation forked from another (a new session key over the same history)', () => {
  test('starts on the account its history is on, though that account is the one used last', () => {
    const { pool, setNow } = setup(['a', 'b']);
    const ask = (sessionKey: string, historyKey?: string) => {
      const got = pool.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey, ...(historyKey ? { historyKey } : {}) });
      if (got.kind !== 'lease') throw new Error(JSON.stringify(got));
      got.lease.release();
      return got.lease.account.label;
    };
    expect(ask('s1')).toBe('a');
    setNow(T0 + 1_000);
    expect(ask('s2')).toBe('b');
    setNow(T0 + 2_000);
    expect(ask('s1', 'h1')).toBe('a');
    setNow(T0 + 3_000);
    expect(ask('fork-of-s1', 'h1')).toBe('a');
    // A new conversation with no history to go by is still spread.
    expect(ask('s3')).toBe('b');
    // And the fork, once placed, is a conversation of its own.
    expect(ask('fork-of-s1')).toBe('a');
  });
});

describe('state in SQLite', () => {
  test('a restart keeps every limit and reset time', () => {
    const { db, path, pool, accounts } = setup(['a', 'b']);
    pool.report(lease(pool), { kind: 'error', error: new UpstreamError('quota_exhausted', 'q', { resetAt: T0 + 99_000 }) });
    db.close();
    const db2 = openDatabase(path);
    const pool2 = createPool({ db: db2, now: () => T0 + 1, defaultCooldownSec: 60, softLimitThreshold: 0.2 });
    const l = pool2.state().find((s) => s.account.id === accounts[0]!.id)!.limits;
    expect(l).toEqual([expect.objectContaining({ model: 'glm-4.7', kind: 'quota_exhausted', resetAt: T0 + 99_000 })]);
    // And it is honoured: the next lease for that model goes to b.
    const got = pool2.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: 'x' });
    expect(got.kind === 'lease' && got.lease.account.label).toBe('b');
    db2.close();
  });

  test('a restart keeps each conversation on the account it was on, though that account is the one used last', () => {
    const { db, path, pool, setNow } = setup(['a', 'b']);
    const take = (p: ReturnType<typeof createPool>, session: string) => {
      const l = lease(p, 'glm-4.7', session);
      l.release();
      return l.account.label;
    };
    expect(take(pool, 's1')).toBe('a');
    setNow(T0 + 1_000);
    expect(take(pool, 's2')).toBe('b');
    setNow(T0 + 2_000);
    // s1's next turn makes a the most recently used account: a new conversation would go to b.
    expect(take(pool, 's1')).toBe('a');
    pool.stop();
    db.close();
    const db2 = openDatabase(path);
    const pool2 = createPool({ db: db2, now: () => T0 + 60_000, defaultCooldownSec: 60, softLimitThreshold: 0.2 });
    expect(take(pool2, 's1')).toBe('a');
    expect(take(pool2, 's2')).toBe('b');
    pool2.stop();
    db2.close();
  });

  test('after a restart a conversation whose account was removed meanwhile is placed afresh', () => {
    const { db, path, pool, accounts } = setup(['a', 'b', 'c']);
    const l = lease(pool, 'glm-4.7', 's1');
    l.release();
    expect(l.account.label).toBe('a');
    pool.stop();
    removeAccount(db, accounts[0]!.id);
    db.close();
    const db2 = openDatabase(path);
    const pool2 = createPool({ db: db2, now: () => T0 + 60_000, defaultCooldownSec: 60, softLimitThreshold: 0.2 });
    const again = lease(pool2, 'glm-4.7', 's1');
    expect(again.account.label).toBe('b');
    pool2.stop();
    db2.close();
  });

  test('after a restart an expired limit is ignored and live ones apply: with every account still limited, no lease', () => {
    const { db, path, pool } = setup(['a', 'b']);
    const quota = (resetAt: number) => ({ kind: 'error', error: new UpstreamError('quota_exhausted', 'q', { resetAt }) }) as Outcome;
    pool.report(lease(pool, 'glm-4.7', 's1'), quota(T0 + 10_000));
    pool.report(lease(pool, 'glm-4.7', 's2'), quota(T0 + 99_000));
    db.close();
    const reopen = (t: number) => {
      const d = openDatabase(path);
      return { d, p: createPool({ db: d, now: () => t, defaultCooldownSec: 60, softLimitThreshold: 0.2 }) };
    };
    const live = reopen(T0 + 5_000);
    expect(live.p.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: 'x' })).toEqual({
      kind: 'limited',
      until: T0 + 10_000,
      limitKind: 'quota_exhausted',
    });
    live.d.close();
    const later = reopen(T0 + 20_000);
    const got = later.p.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: 'x' });
    expect(got.kind === 'lease' && got.lease.account.label).toBe('a');
    later.d.close();
  });

  test('changes made by another connection (the CLI) are seen on the next sync', () => {
    const { path, pool, accounts } = setup(['a']);
    const cli = openDatabase(path);
    addZai(cli, 'new-one', T0 + 100);
    updateAccount(cli, accounts[0]!.id, { status: 'disabled', statusReason: 'disabled by user' });
    const announced: string[][] = [];
    pool.onAccountsAdded((ids) => announced.push(ids));
    expect(pool.sync()).toBe(true);
    expect(pool.accounts().map((a) => `${a.label}:${a.status}`)).toEqual(['a:disabled', 'new-one:active']);
    expect(announced).toHaveLength(1);
    const got = pool.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: 'x' });
    expect(got.kind === 'lease' && got.lease.account.label).toBe('new-one');
    removeAccount(cli, 'new-one');
    pool.sync();
    expect(pool.accounts().map((a) => a.label)).toEqual(['a']);
    expect(pool.sync()).toBe(false);
    cli.close();
  });

  test('a spent quota reading that `accounts reset` forgets (another connection) frees the account on the next sync', () => {
    const { path, pool, accounts } = setup(['a']);
    const id = accounts[0]!.id;
    const cli = openDatabase(path);
    replaceQuotas(cli, id, [{ accountId: id, model: 'glm-4.7', window: '5h', remainingFraction: 0, resetAt: T0 + 3_600_000, fetchedAt: T0 }]);
    pool.sync();
    expect(pool.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: 'x' }).kind).not.toBe('lease');
    const { spent } = resetAccountLimits(cli, id, T0);
    expect(spent.map((q) => q.model)).toEqual(['glm-4.7']);
    expect(pool.sync()).toBe(true);
    const got = pool.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: 'x' });
    expect(got.kind === 'lease' && got.lease.account.label).toBe('a');
    cli.close();
  });

  test('accounts added, used and removed over months leave nothing behind in the pool', () => {
    const { path, pool } = setup(['a']);
    const cli = openDatabase(path);
    for (let i = 0; i < 200; i++) {
      addZai(cli, `churn-${i}`, T0 + i);
      pool.sync();
      const got = pool.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: `s${i}`, only: findAccount(cli, `churn-${i}`)!.id });
      if (got.kind !== 'lease') throw new Error(`no lease: ${JSON.stringify(got)}`);
      pool.report(got.lease, { kind: 'error', error: new UpstreamError('transient', 'blip') });
      got.lease.release();
      removeAccount(cli, `churn-${i}`);
      pool.sync();
    }
    expect(pool.accounts().map((a) => a.label)).toEqual(['a']);
    expect(trackedSizes()['pool.perAccount']).toBeLessThanOrEqual(1);
    expect(trackedSizes()['pool.bindings']).toBe(0);
    cli.close();
  });

  test('a reload the store refuses halfway keeps the last view whole, and the CLI change is read on the next sync', () => {
    const { db, path, pool, setNow } = setup(['a']);
    const cli = openDatabase(path);
    addZai(cli, 'new-one', T0 + 100);
    const query = db.query.bind(db);
    let locked = true;
    let reads = 0;
    // The accounts read, then the limits read finds the store locked (a writer past busy_timeout).
    db.query = ((sql: string) => {
      reads++;
      if (locked && sql.includes('model_limits')) throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
      return query(sql);
    }) as typeof db.query;
    expect(pool.sync()).toBe(false);
    expect(pool.accounts().map((a) => a.label)).toEqual(['a']);
    expect(pool.storeTrouble()).toBe('database is locked');
    // A locked store holds each read for busy_timeout, the whole process with it: not asked again at once.
    locked = false;
    reads = 0;
    expect(pool.sync()).toBe(false);
    expect(reads).toBe(0);
    setNow(T0 + 5_000);
    expect(pool.sync()).toBe(true);
    expect(pool.accounts().map((a) => a.label)).toEqual(['a', 'new-one']);
    expect(pool.storeTrouble()).toBeNull();
    cli.close();
  });

  test('a store that could not be read is read again 5 seconds later even when the clock jumped back meanwhile', () => {
    const { db, path, pool, setNow } = setup(['a']);
    const cli = openDatabase(path);
    addZai(cli, 'new-one', T0 + 100);
    const query = db.query.bind(db);
    let locked = true;
    db.query = ((sql: string) => {
      if (locked && sql.includes('model_limits')) throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
      return query(sql);
    }) as typeof db.query;
    expect(pool.sync()).toBe(false);
    locked = false;
    // NTP steps the clock an hour back: the retry must not wait for the old wall time to come round again.
    setNow(T0 - 3_600_000 + 5_000);
    expect(pool.sync()).toBe(true);
    expect(pool.storeTrouble()).toBeNull();
    cli.close();
  });

  test('a running pool notices CLI edits within 2 seconds on its own', async () => {
    const { path, pool } = setup(['a']);
    pool.start();
    try {
      const cli = openDatabase(path);
      addZai(cli, 'late');
      cli.close();
      const deadline = Date.now() + 2000;
      while (!pool.accounts().some((a) => a.label === 'late') && Date.now() < deadline) await Bun.sleep(50);
      expect(pool.accounts().map((a) => a.label)).toContain('late');
    } finally {
      pool.stop();
    }
  });

  describe('a store that refuses writes (busy past its timeout, disk full)', () => {
    // Another connection holds the write lock; the pool's store gives up after 20 ms instead of 5 s.
    function locked(labels = ['a', 'b'], flushIntervalMs?: number) {
      const s = setup(labels, null, flushIntervalMs);
      s.db.exec('PRAGMA busy_timeout = 20');
      const other = openDatabase(s.path);
      other.exec('BEGIN IMMEDIATE');
      const lines: string[] = [];
      log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
      return { ...s, other, lines, unlock: () => other.exec('COMMIT') };
    }
    afterEach(() => configureLog({ format: 'pretty' }));
    const quota = (resetAt: number) => ({ kind: 'error', error: new UpstreamError('quota_exhausted', 'q', { resetAt }) }) as Outcome;

    test('a limit it could not store is still honoured, survives a reload, and is stored once the store takes writes', () => {
      const { path, pool, accounts, other, lines, unlock } = locked();
      pool.report(lease(pool), quota(T0 + 99_000));
      // Something else commits meanwhile (the CLI): the reload reads a store without the limit.
      addZai(other, 'c', T0 + 5);
      unlock();
      expect(pool.sync()).toBe(true);
      const got = pool.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: 'x' });
      expect(got.kind === 'lease' && got.lease.account.label).toBe('b');
      expect(listLimits(other)).toEqual([]);
      pool.stop(); // retries what is unsaved (so does the 5 s timer of a started pool)
      expect(listLimits(other)).toEqual([expect.objectContaining({ accountId: accounts[0]!.id, model: 'glm-4.7', resetAt: T0 + 99_000 })]);
      // A lock that passed in a moment was not worth a word, nor is its end.
      expect(lines).toEqual([]);
      // A restart finds it.
      const pool2 = createPool({ db: openDatabase(path), now: () => T0 + 1, defaultCooldownSec: 60, softLimitThreshold: 0.2 });
      expect(pool2.state().find((x) => x.account.id === accounts[0]!.id)!.limits).toHaveLength(1);
      other.close();
    });

    test('a lock another process holds a moment is not worth a warning: the limit is stored on the next round, quietly', async () => {
      const { path, pool, accounts } = setup(['a']);
      const lines: string[] = [];
      log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
      // Held well under the 5 s a lock may last unsaid (the CLI writing, a backup).
      const locker = await lockFromAnotherProcess(path, 300);
      pool.report(lease(pool), quota(T0 + 99_000));
      expect(pool.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: 'x' }).kind).toBe('limited');
      await locker.exited;
      pool.stop();
      const reader = openDatabase(path);
      expect(listLimits(reader)).toEqual([expect.objectContaining({ accountId: accounts[0]!.id, model: 'glm-4.7' })]);
      reader.close();
      expect(lines).toEqual([]);
    });

    test('a lock that lasts 5 s is warned about once, naming what waits, and so is the write landing after it', async () => {
      const { pool, other, lines, unlock, setNow } = locked(['a'], 50);
      pool.report(lease(pool), quota(T0 + 99_000));
      pool.report(lease(pool, 'glm-4.6'), quota(T0 + 99_000));
      expect(lines).toEqual([]);
      setNow(T0 + 5_000);
      // The next retry round still finds the lock: it has lasted 5 s.
      pool.start();
      try {
        const deadline = Date.now() + 3000;
        while (!lines.some((l) => l.startsWith('warn:')) && Date.now() < deadline) await Bun.sleep(20);
        expect(lines).toEqual([expect.stringMatching(/^warn: could not store the limit of acc_\w+ on glm-4\.7 \(and 1 other change\(s\)\), will retry: database is locked/)]);
        unlock();
        while (lines.length < 3 && Date.now() < deadline) await Bun.sleep(20);
        expect(lines.slice(1).sort()).toEqual([
          expect.stringMatching(/^info: stored the limit of acc_\w+ on glm-4\.6 after all/),
          expect.stringMatching(/^info: stored the limit of acc_\w+ on glm-4\.7 after all/),
        ]);
      } finally {
        pool.stop();
        other.close();
      }
    });

    test('a lock that ended with nothing left to store does not count towards the next one', async () => {
      const { pool, other, lines, unlock, setNow } = locked(['a'], 50);
      // Refused under a lock, and run out before the store took it: never written at all.
      pool.report(lease(pool), quota(T0 + 1_000));
      setNow(T0 + 2_000);
      pool.start();
      try {
        await Bun.sleep(200);
        unlock();
        // Hours later another lock, met by a new limit: a lock a moment old again.
        setNow(T0 + 3_600_000);
        other.exec('BEGIN IMMEDIATE');
        pool.report(lease(pool, 'glm-4.6'), quota(T0 + 7_200_000));
        await Bun.sleep(200);
        expect(lines).toEqual([]);
        other.exec('COMMIT');
      } finally {
        pool.stop();
        other.close();
      }
    });

    test('a store that refuses a write for anything but a lock (read-only, full) is warned about at once', () => {
      const { db, pool } = setup(['a']);
      const lines: string[] = [];
      log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
      db.exec('PRAGMA query_only = ON');
      pool.report(lease(pool), quota(T0 + 99_000));
      expect(lines).toEqual([expect.stringMatching(/^warn: could not store the limit of acc_\w+ on glm-4\.7, will retry: /)]);
      db.exec('PRAGMA query_only = OFF');
      pool.stop();
      expect(lines.at(-1)).toMatch(/^info: stored the limit of acc_\w+ on glm-4\.7 after all/);
    });

    test('an exhausted quota shared by many models waits on a locked store once, not once per model', () => {
      const { db, pool, accounts, other } = locked(['a']);
      db.exec('PRAGMA busy_timeout = 150');
      const shared = ['claude-sonnet-4-6', 'claude-opus-4-6', 'gpt-oss-120b-medium', 'claude-haiku-4-5', 'claude-sonnet-4-5'];
      const l = lease(pool, 'claude-opus-4-6-thinking');
      const t0 = performance.now();
      pool.report(l, { kind: 'error', error: new UpstreamError('quota_exhausted', 'q', { resetAt: T0 + 99_000, sharedWith: shared }) });
      expect(performance.now() - t0).toBeLessThan(450);
      // Every one of them is honoured, and stored once the store takes writes.
      for (const m of shared) expect(pool.acquire({ provider: 'zai', model: m, familyKey: 'zai:x', sessionKey: 'y' }).kind).toBe('limited');
      other.exec('COMMIT');
      pool.stop();
      expect(listLimits(other).filter((x) => x.accountId === accounts[0]!.id)).toHaveLength(shared.length + 1);
      other.close();
    });

    test('a cleared limit and an invalid account are stored later too; the newest change of a limit wins', () => {
      const { db, pool, accounts, other, unlock, setNow } = locked(['a']);
      unlock();
      const [first, second, third] = [lease(pool), lease(pool), lease(pool)];
      pool.report(first, quota(T0 + 99_000));
      expect(listLimits(other)).toHaveLength(1);
      other.exec('BEGIN IMMEDIATE');
      setNow(T0 + 99_000); // the limit ran out: a success clears its row
      pool.report(second, { kind: 'success' }); // clears the limit: unsaved
      pool.report(third, { kind: 'error', error: new UpstreamError('invalid_account', 'revoked') });
      expect(pool.accounts()[0]!.status).toBe('invalid');
      other.exec('COMMIT');
      pool.sync();
      expect(pool.accounts()[0]!.status).toBe('invalid');
      pool.stop();
      expect(listLimits(other)).toEqual([]);
      expect(findAccount(db, accounts[0]!.id)?.status).toBe('invalid');
      other.close();
    });

    test("an invalid verdict left unsaved never overwrites the user's disable, in the store or in the view", () => {
      const { db, pool, accounts, other } = locked(['a']);
      pool.report(lease(pool), { kind: 'error', error: new UpstreamError('invalid_account', 'revoked') });
      expect(pool.account(accounts[0]!.id)!.status).toBe('invalid');
      // The CLI, holding the lock, disables the account and commits.
      updateAccount(other, accounts[0]!.id, { status: 'disabled', statusReason: 'disabled by user' });
      other.exec('COMMIT');
      pool.sync();
      expect(pool.account(accounts[0]!.id)!.status).toBe('disabled');
      pool.stop();
      expect(findAccount(db, accounts[0]!.id)).toMatchObject({ status: 'disabled', statusReason: 'disabled by user' });
      other.close();
    });

    test('a write for an account removed meanwhile is dropped and does not hold back the writes after it', () => {
      const { db, pool, accounts, other, lines } = locked();
      const [a, b] = accounts;
      pool.report(lease(pool, 'glm-4.7', 's1'), quota(T0 + 99_000));
      pool.report(lease(pool, 'glm-4.7', 's2'), quota(T0 + 99_000));
      expect(pool.state().map((x) => x.limits.length)).toEqual([1, 1]);
      removeAccount(other, a!.id);
      other.exec('COMMIT');
      pool.stop();
      expect(listLimits(db)).toEqual([expect.objectContaining({ accountId: b!.id, model: 'glm-4.7' })]);
      expect(lines.filter((l) => l.startsWith('error:'))).toEqual([]);
      expect(lines).toContainEqual(expect.stringMatching(/^info: dropped the limit of acc_\w+ on glm-4\.7: the account is gone/));
      other.close();
    });

    test('a limit that ran out before the store took writes is not written, and what is still unsaved at stop is reported lost', () => {
      const { pool, other, lines, unlock, setNow } = locked();
      pool.report(lease(pool), quota(T0 + 1_000));
      pool.report(lease(pool, 'glm-4.6'), quota(T0 + 99_000));
      setNow(T0 + 2_000);
      pool.stop();
      expect(lines.filter((l) => l.startsWith('error:'))).toEqual([expect.stringMatching(/^error: could not store the limit of acc_\w+ on glm-4\.6 before stopping: it is lost/)]);
      unlock();
      expect(listLimits(other)).toEqual([]);
      other.close();
    });
  });

  test("an account the user disabled (in the CLI, not yet seen here) is not marked invalid over it", () => {
    const { db, pool, accounts } = setup(['a']);
    const l = lease(pool);
    const cli = openDatabase(db.filename);
    updateAccount(cli, accounts[0]!.id, { status: 'disabled', statusReason: 'disabled by user' });
    cli.close();
    pool.report(l, { kind: 'error', error: new UpstreamError('invalid_account', 'revoked') });
    expect(findAccount(db, accounts[0]!.id)).toMatchObject({ status: 'disabled', statusReason: 'disabled by user' });
    expect(pool.account(accounts[0]!.id)!.status).toBe('disabled');
  });

  test('an auth failure seen with old credentials does not mark invalid an account logged in again meanwhile', () => {
    const { db, pool, accounts } = setup(['a']);
    const l = lease(pool);
    // `mcp accounts add` while the request was in flight: new credentials, back in rotation.
    const cli = openDatabase(db.filename);
    updateAccount(cli, accounts[0]!.id, { credentials: { kind: 'api_key', apiKey: 'key-a-FAKE-new' }, status: 'active', statusReason: null });
    cli.close();
    pool.report(l, { kind: 'error', error: new UpstreamError('auth', 'key rejected') });
    expect(findAccount(db, accounts[0]!.id)).toMatchObject({ status: 'active', statusReason: null });
    expect(pool.account(accounts[0]!.id)!.status).toBe('active');
    // The same failure with the credentials still stored does mark it.
    const again = lease(pool);
    pool.report(again, { kind: 'error', error: new UpstreamError('auth', 'key rejected') });
    expect(findAccount(db, accounts[0]!.id)!.status).toBe('invalid');
  });

  test('reactivate brings back only an invalid account, never a disabled one', () => {
    const { db, pool, accounts } = setup(['a', 'b']);
    const [a, b] = accounts;
    pool.report(lease(pool), { kind: 'error', error: new UpstreamError('invalid_account', 'revoked') });
    const invalid = pool.account(a!.id)!.status === 'invalid' ? a! : b!;
    expect(pool.reactivate(invalid.id)).toBe(true);
    expect(findAccount(db, invalid.id)).toMatchObject({ status: 'active', statusReason: null, verifyUrl: null });
    const cli = openDatabase(db.filename);
    updateAccount(cli, b!.id, { status: 'disabled', statusReason: 'disabled by user' });
    cli.close();
    expect(pool.reactivate(b!.id)).toBe(false);
    expect(findAccount(db, b!.id)!.status).toBe('disabled');
    pool.sync();
    expect(pool.account(b!.id)!.status).toBe('disabled');
  });

  test('credentials a provider stores are mirrored into the cached account handed to send()', () => {
    const { db } = tempDb();
    const acc = addZai(db, 'a');
    const deps = providerDepsFor(db, () => T0);
    const routing = createRouting({ db, config: testConfig(), providers: { zai: scriptedProvider('zai') }, now: () => T0 });
    deps.updateAccount(acc.id, { credentials: { kind: 'api_key', apiKey: 'rotated-key-123456' } });
    const cached = routing.pool.account(acc.id)!;
    expect(cached.credentials).toEqual({ kind: 'api_key', apiKey: 'rotated-key-123456' });
    void routing.stop();
  });

  test("a provider's write the database refuses (read-only, full, locked) is a warning, not a failed request", () => {
    const { db, acc, deps, lines } = providerWrites();
    try {
      db.exec('PRAGMA query_only = ON');
      expect(() => deps.updateAccount(acc.id, { meta: { plan: 'pro' } })).not.toThrow();
    } finally {
      configureLog({ format: 'pretty' });
      db.exec('PRAGMA query_only = OFF');
    }
    expect(lines.join('\n')).toContain(`could not store the change to account ${acc.id}`);
  });

  test('a new credential (as a rotated token) the database refuses (read-only, full) is kept and lands once it takes writes again: one warning, one "after all"', () => {
    const { db, acc, deps, lines } = providerWrites();
    const token = (n: number) => ({ credentials: { kind: 'api_key' as const, apiKey: `FAKE-rotated-key-${n}-0123456789` } });
    try {
      db.exec('PRAGMA query_only = ON');
      deps.updateAccount(acc.id, token(1));
      deps.updateAccount(acc.id, { meta: { plan: 'pro' } });
      expect(lines).toEqual([expect.stringMatching(new RegExp(`^warn: could not store the change to account ${acc.id} \\(credentials\\): attempt to write a readonly database; kept in memory and tried again every 30 s$`))]);
      expect(deps.writeTrouble()).toBe('attempt to write a readonly database (2 account change(s) waiting in memory)');
      db.exec('PRAGMA query_only = OFF');
      // The next change the provider makes tries the waiting ones first, in order.
      deps.updateAccount(acc.id, { meta: { plan: 'max' } });
      expect(findAccount(db, acc.id)).toMatchObject({ credentials: { apiKey: 'FAKE-rotated-key-1-0123456789' }, meta: { plan: 'max' } });
      expect(lines.slice(1)).toEqual([`info: stored the 3 changes to account ${acc.id} after all`]);
      expect(deps.writeTrouble()).toBeNull();
    } finally {
      configureLog({ format: 'pretty' });
      db.exec('PRAGMA query_only = OFF');
    }
  });

  test('a change the database refused is written at stop, once it takes writes again', () => {
    const { db, acc, deps } = providerWrites();
    try {
      db.exec('PRAGMA query_only = ON');
      deps.updateAccount(acc.id, { meta: { plan: 'pro' } });
      db.exec('PRAGMA query_only = OFF');
      deps.flush();
      expect(findAccount(db, acc.id)?.meta.plan).toBe('pro');
    } finally {
      configureLog({ format: 'pretty' });
    }
  });

  test('a change that comes after the database was closed at stop is said to be lost, not queued', () => {
    const { db, acc, deps, lines } = providerWrites();
    try {
      db.close();
      deps.updateAccount(acc.id, { meta: { plan: 'pro' } });
      expect(lines).toEqual([`warn: could not store the change to account ${acc.id} (meta): the database is already closed`]);
      expect(deps.writeTrouble()).toBeNull();
    } finally {
      configureLog({ format: 'pretty' });
    }
  });

  test('in-flight counts rise with leases and fall when they end', () => {
    const { pool, accounts } = setup(['a']);
    const l1 = lease(pool);
    const l2 = lease(pool);
    expect(pool.inFlight(accounts[0]!.id)).toBe(2);
    l1.release();
    l1.release();
    expect(pool.inFlight(accounts[0]!.id)).toBe(1);
    l2.release();
    expect(pool.inFlight(accounts[0]!.id)).toBe(0);
  });

  test('a quota window whose reset has passed no longer soft-limits the account', () => {
    const { pool, accounts, setNow } = setup(['a', 'b']);
    pool.setQuotas(accounts[0]!.id, [{ model: '*', remainingFraction: 1, resetAt: null, window: 'weekly' }]);
    pool.setQuotas(accounts[1]!.id, [{ model: '*', remainingFraction: 0.05, resetAt: T0 + 1000, window: '5h' }]);
    const before = pool.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: 'x', exclude: new Set([accounts[0]!.id]) });
    expect(before.kind === 'lease' && before.lease.soft).toBe(true);
    setNow(T0 + 1000);
    const after = pool.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: 'y', exclude: new Set([accounts[0]!.id]) });
    expect(after.kind === 'lease' && after.lease.soft).toBe(false);
  });

  test('quotas are stored, clamped, and steer the soft limit', () => {
    const { db, pool, accounts } = setup(['a', 'b']);
    pool.setQuotas(accounts[0]!.id, [
      { model: '*', remainingFraction: 0.9, resetAt: null, window: 'weekly' },
      { model: '*', remainingFraction: 0.15, resetAt: T0 + 1000, window: '5h' },
    ]);
    pool.setQuotas(accounts[1]!.id, [{ model: '*', remainingFraction: 1.7, resetAt: null, window: '5h' }]);
    const b = pool.state().find((s) => s.account.label === 'b')!;
    expect(b.quotas[0]!.remainingFraction).toBe(1);
    const got = pool.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: 'x' });
    expect(got.kind === 'lease' && got.lease.account.label).toBe('b');
    // Persisted for the CLI and restarts.
    const rows = db.query('SELECT COUNT(*) AS n FROM quotas').get() as { n: number };
    expect(rows.n).toBe(3);
  });
});

describe('concurrency cap (MAX_CONCURRENT_PER_ACCOUNT)', () => {
  const ask = (pool: ReturnType<typeof createPool>, session: string) =>
    pool.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: session });

  test('an account at its cap is passed over, and with every account full the pool says busy', () => {
    const { pool, accounts } = setup(['a', 'b'], 2);
    const held = [lease(pool, 'glm-4.7', 's1'), lease(pool, 'glm-4.7', 's2'), lease(pool, 'glm-4.7', 's3'), lease(pool, 'glm-4.7', 's4')];
    expect(held.map((l) => l.account.label).sort()).toEqual(['a', 'a', 'b', 'b']);
    expect(ask(pool, 's5')).toEqual({ kind: 'busy' });
    held[0]!.release();
    const next = ask(pool, 's5');
    expect(next.kind === 'lease' && next.lease.account.id).toBe(held[0]!.account.id);
    expect(pool.state().map((s) => [s.account.label, s.inFlight, s.maxConcurrent])).toEqual([
      ['a', 2, 2],
      ['b', 2, 2],
    ]);
    expect(accounts).toHaveLength(2);
  });

  test("an overflow serves the request elsewhere and leaves the conversation on its account", () => {
    const { pool } = setup(['a', 'b'], 1);
    const first = lease(pool, 'glm-4.7', 'conv');
    expect(first.account.label).toBe('a');
    const overflow = lease(pool, 'glm-4.7', 'conv');
    expect(overflow.account.label).toBe('b');
    expect(overflow.sticky).toBe(false);
    first.release();
    overflow.release();
    // The binding still says a, though b served last.
    const again = lease(pool, 'glm-4.7', 'conv');
    expect(again.account.label).toBe('a');
    expect(again.sticky).toBe(true);
  });

  test('an overflow retried on its account after a credential refresh (only) still leaves the conversation on its own account', () => {
    const { pool } = setup(['a', 'b'], 1);
    const first = lease(pool, 'glm-4.7', 'conv');
    const overflow = lease(pool, 'glm-4.7', 'conv');
    expect(overflow.account.label).toBe('b');
    overflow.release();
    // b answered 401, its credentials were refreshed: the gateway asks for b alone, once.
    const retry = pool.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: 'conv', only: overflow.account.id });
    expect(retry.kind === 'lease' && retry.lease.account.label).toBe('b');
    if (retry.kind === 'lease') retry.lease.release();
    first.release();
    expect(lease(pool, 'glm-4.7', 'conv').account.label).toBe('a');
  });

  test('a retry on one account (only) binds a conversation that had no account yet', () => {
    const { pool, accounts } = setup(['a', 'b']);
    const retry = pool.acquire({ provider: 'zai', model: 'glm-4.7', familyKey: 'zai:glm', sessionKey: 'new', only: accounts[1]!.id });
    if (retry.kind === 'lease') retry.lease.release();
    expect(lease(pool, 'glm-4.7', 'new').account.label).toBe('b');
  });

  test("an account's own cap (set with the CLI) wins over the pool's, and 0 lifts it", () => {
    const { path, pool, accounts } = setup(['a', 'b'], 1);
    const cli = openDatabase(path);
    updateAccount(cli, accounts[0]!.id, { meta: { maxConcurrent: 0 } });
    updateAccount(cli, accounts[1]!.id, { meta: { maxConcurrent: 3 } });
    cli.close();
    pool.sync();
    const labels = Array.from({ length: 8 }, (_, i) => lease(pool, 'glm-4.7', `s${i}`).account.label);
    // b takes three at most; a has no cap and takes the rest.
    expect(labels.filter((l) => l === 'b')).toHaveLength(3);
    expect(labels.filter((l) => l === 'a')).toHaveLength(5);
    expect(pool.state().map((s) => s.maxConcurrent)).toEqual([null, 3]);
  });

  test('with no cap configured nothing is ever busy', () => {
    const { pool } = setup(['a']);
    for (let i = 0; i < 50; i++) lease(pool, 'glm-4.7', `s${i}`);
    expect(ask(pool, 'more').kind).toBe('lease');
  });

  test('waitForSlot wakes when a request ends, and gives up on its timeout or an abort', async () => {
    const { pool } = setup(['a'], 1);
    const held = lease(pool);
    const waiting = pool.waitForSlot(5_000);
    setTimeout(() => held.release(), 20);
    const t0 = performance.now();
    expect(await waiting).toBe(true);
    expect(performance.now() - t0).toBeLessThan(1_000);

    lease(pool);
    expect(await pool.waitForSlot(30)).toBe(false);
    const ac = new AbortController();
    const aborted = pool.waitForSlot(5_000, ac.signal);
    ac.abort();
    expect(await aborted).toBe(false);
  });

  test('waitForChange wakes on a CLI change, not when a request ends (that frees no limit)', async () => {
    const { path, pool, accounts } = setup(['a'], 1);
    const held = lease(pool);
    const waiting = pool.waitForChange(5_000);
    let woke = false;
    void waiting.then(() => (woke = true));
    held.release();
    await Bun.sleep(10);
    expect(woke).toBe(false);
    const cli = openDatabase(path);
    updateAccount(cli, accounts[0]!.id, { label: 'renamed' });
    cli.close();
    pool.sync();
    expect(await waiting).toBe(true);
  });

  test('a CLI change seen on sync wakes the waiters (a new account or a raised cap may make room)', async () => {
    const { path, pool, accounts } = setup(['a'], 1);
    lease(pool);
    const waiting = pool.waitForSlot(5_000);
    const cli = openDatabase(path);
    updateAccount(cli, accounts[0]!.id, { meta: { maxConcurrent: 2 } });
    cli.close();
    pool.sync();
    expect(await waiting).toBe(true);
    expect(ask(pool, 'other').kind).toBe('lease');
  });
});

describe('a quota reading with quota left, asked well after a quota 429', () => {
  const WEEK = 7 * 86_400_000;
  const ask = (pool: ReturnType<typeof createPool>, model = 'glm-4.7', session = 'x') =>
    pool.acquire({ provider: 'zai', model, familyKey: 'zai:glm', sessionKey: session });
  const quota429 = (scope: 'account' | 'model' = 'account') =>
    ({ kind: 'error', error: new UpstreamError('quota_exhausted', 'quota exhausted', { resetAt: T0 + WEEK, scope }) }) as Outcome;
  const left = (fraction: number, model = '*') => [{ model, remainingFraction: fraction, resetAt: T0 + WEEK, window: 'weekly' }];

  test('lifts the limit, so a mistaken 429 does not park the account for the week it named', () => {
    const { db, pool, accounts, setNow } = setup(['a']);
    pool.report(lease(pool), quota429());
    const later = T0 + READING_OUTRANKS_429_AFTER_MS;
    setNow(later + 500);
    pool.setQuotas(accounts[0]!.id, left(0.8), later);
    expect(ask(pool).kind).toBe('lease');
    // Stored too: a restart must not bring the lifted limit back.
    expect(listLimits(db).filter((l) => l.resetAt > later)).toEqual([]);
  });

  test('a limit set while the reading was on its way is newer than the reading and stays', () => {
    const { pool, accounts, setNow } = setup(['a']);
    setNow(T0 + 10 * 60_000);
    pool.report(lease(pool), quota429());
    pool.setQuotas(accounts[0]!.id, left(0.8), T0 + 10 * 60_000 - 1_000);
    expect(ask(pool).kind).toBe('limited');
  });

  test('a reading that says the quota is spent leaves the limit in place', () => {
    const { pool, accounts, setNow } = setup(['a']);
    pool.report(lease(pool), quota429());
    setNow(T0 + 10 * 60_000);
    pool.setQuotas(accounts[0]!.id, left(0), T0 + 10 * 60_000);
    expect(ask(pool)).toEqual({ kind: 'limited', until: T0 + WEEK, limitKind: 'quota_exhausted' });
  });

  test("a model's limit is lifted only by a reading with quota left on that model", () => {
    const { pool, accounts, setNow } = setup(['a']);
    pool.report(lease(pool, 'glm-4.7'), quota429('model'));
    pool.report(lease(pool, 'glm-5', 'y'), quota429('model'));
    setNow(T0 + 10 * 60_000);
    pool.setQuotas(accounts[0]!.id, [...left(0.5, 'GLM-4.7'), ...left(0, 'glm-5')], T0 + 10 * 60_000);
    expect(ask(pool, 'glm-4.7').kind).toBe('lease');
    expect(ask(pool, 'glm-5', 'z').kind).toBe('limited');
  });

  test('a rate limit is not a quota matter: a reading does not lift it', () => {
    const { pool, accounts, setNow } = setup(['a']);
    pool.report(lease(pool), { kind: 'error', error: new UpstreamError('rate_limited', 'slow down', { resetAt: T0 + 3_600_000 }) } as Outcome);
    setNow(T0 + 10 * 60_000);
    pool.setQuotas(accounts[0]!.id, left(1), T0 + 10 * 60_000);
    expect(ask(pool).kind).toBe('limited');
  });
});

describe('a quota reading with nothing left', () => {
  const ask = (pool: ReturnType<typeof createPool>, session = 'x', model = 'glm-4.7') =>
    pool.acquire({ provider: 'zai', model, familyKey: 'zai:glm', sessionKey: session });
  const spent = (resetAt: number | null, window = '5h', model = '*') => ({ model, remainingFraction: 0, resetAt, window });

  test('keeps the account out until that window resets, so no call is spent on a certain 429', () => {
    const { pool, accounts, setNow } = setup(['a', 'b']);
    pool.setQuotas(accounts[0]!.id, [spent(T0 + 60_000)]);
    const got = ask(pool);
    expect(got.kind === 'lease' && got.lease.account.label).toBe('b');
    pool.setQuotas(accounts[1]!.id, [spent(T0 + 120_000)]);
    expect(ask(pool, 'y')).toEqual({ kind: 'limited', until: T0 + 60_000, limitKind: 'quota_exhausted' });
    setNow(T0 + 60_000);
    const after = ask(pool, 'z');
    expect(after.kind === 'lease' && after.lease.account.label).toBe('a');
  });

  test('a newer reading with quota left wakes the requests waiting for that account to come free', async () => {
    const { pool, accounts } = setup(['a']);
    pool.setQuotas(accounts[0]!.id, [spent(T0 + 3_600_000)]);
    expect(ask(pool).kind).toBe('limited');
    const waiting = pool.waitForChange(5_000);
    pool.setQuotas(accounts[0]!.id, [{ model: '*', remainingFraction: 0.6, resetAt: T0 + 3_600_000, window: '5h' }]);
    expect(await waiting).toBe(true);
    expect(ask(pool, 'y').kind).toBe('lease');
  });

  test('of two spent windows the later reset decides (a spent week outlasts a spent 5 hours)', () => {
    const { pool, accounts } = setup(['a']);
    pool.setQuotas(accounts[0]!.id, [spent(T0 + 3_600_000, '5h'), spent(T0 + 3 * 86_400_000, 'weekly')]);
    expect(ask(pool)).toEqual({ kind: 'limited', until: T0 + 3 * 86_400_000, limitKind: 'quota_exhausted' });
  });

  test("a model's own spent quota keeps only that model out", () => {
    const { pool, accounts } = setup(['a']);
    pool.setQuotas(accounts[0]!.id, [spent(T0 + 60_000, '', 'glm-4.7'), { model: 'glm-5', remainingFraction: 0.5, resetAt: T0 + 60_000, window: '' }]);
    expect(ask(pool, 'x', 'glm-4.7').kind).toBe('limited');
    expect(ask(pool, 'x', 'glm-5').kind).toBe('lease');
  });

  test('without a reset time it only soft-limits (nothing says when to look again)', () => {
    const { pool, accounts } = setup(['a']);
    pool.setQuotas(accounts[0]!.id, [spent(null)]);
    const got = ask(pool);
    expect(got.kind === 'lease' && got.lease.soft).toBe(true);
  });

  test('a newer reading with quota left lets the account serve again', () => {
    const { pool, accounts } = setup(['a']);
    pool.setQuotas(accounts[0]!.id, [spent(T0 + 60_000)]);
    expect(ask(pool).kind).toBe('limited');
    pool.setQuotas(accounts[0]!.id, [{ model: '*', remainingFraction: 0.6, resetAt: T0 + 60_000, window: '5h' }]);
    expect(ask(pool).kind).toBe('lease');
  });

  test('a limit learned from a 429 stands over a reading asked right after it that says there is quota left', () => {
    const { pool, accounts } = setup(['a']);
    pool.report(lease(pool), { kind: 'error', error: new UpstreamError('quota_exhausted', 'q', { resetAt: T0 + 99_000, scope: 'account' }) });
    pool.setQuotas(accounts[0]!.id, [{ model: '*', remainingFraction: 0.9, resetAt: T0 + 60_000, window: '5h' }]);
    expect(ask(pool)).toEqual({ kind: 'limited', until: T0 + 99_000, limitKind: 'quota_exhausted' });
  });

  test('a provider that can spend past its quota (Antigravity AI credits) is only soft-limited by it', () => {
    const { db } = setup([]);
    const acc = addZai(db, 'credits', T0);
    const pool = createPool({ db, now: () => T0, defaultCooldownSec: 60, softLimitThreshold: 0.2, servesPastQuota: new Set(['zai']) });
    pool.setQuotas(acc.id, [spent(T0 + 60_000)]);
    const got = ask(pool);
    expect(got.kind === 'lease' && got.lease.soft).toBe(true);
  });

  test('a restart keeps it: the reading is stored, and the reopened pool routes by it', () => {
    const { db, path, pool, accounts } = setup(['a']);
    pool.setQuotas(accounts[0]!.id, [spent(T0 + 60_000)]);
    db.close();
    const db2 = openDatabase(path);
    const pool2 = createPool({ db: db2, now: () => T0 + 1, defaultCooldownSec: 60, softLimitThreshold: 0.2 });
    expect(ask(pool2)).toEqual({ kind: 'limited', until: T0 + 60_000, limitKind: 'quota_exhausted' });
    db2.close();
  });

  test('status views see it as the limit the pool routes by', () => {
    const { pool, accounts } = setup(['a', 'b']);
    pool.setQuotas(accounts[0]!.id, [spent(T0 + 60_000, '5h')]);
    const a = pool.state().find((s) => s.account.label === 'a')!;
    expect(a.limits).toEqual([expect.objectContaining({ model: '*', kind: 'quota_exhausted', resetAt: T0 + 60_000 })]);
    expect(pool.state().find((s) => s.account.label === 'b')!.limits).toEqual([]);
  });
});

describe("another process's write lock", () => {
  test('a limit reported while another process holds the lock is queued at once, not after busy_timeout, and stored once it lets go', async () => {
    const { db, pool, accounts } = setup(['a', 'b']);
    const locker = await lockFromAnotherProcess(db.filename, 3000);
    const t0 = performance.now();
    pool.report(lease(pool), { kind: 'error', error: new UpstreamError('quota_exhausted', 'q', { resetAt: T0 + 99_000 }) });
    // The store waits 5 s for a lock; on the request path that would hold every request and stream.
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(pool.state().find((x) => x.account.id === accounts[0]!.id)!.limits).toHaveLength(1);
    locker.kill();
    await locker.exited;
    pool.stop();
    expect(listLimits(db)).toEqual([expect.objectContaining({ accountId: accounts[0]!.id, model: 'glm-4.7', resetAt: T0 + 99_000 })]);
  });

  test('a binding the flush could not write while another process held the lock is written at the next flush, so a restart keeps the conversation on its account', async () => {
    const { db } = setup([]);
    for (const l of ['a', 'b']) addZai(db, l, T0);
    const pool = createPool({ db, now: () => T0, defaultCooldownSec: COOLDOWN_SEC, softLimitThreshold: 0.2, flushIntervalMs: 100 });
    pool.start();
    try {
      const locker = await lockFromAnotherProcess(db.filename, 500);
      const placed = ['s1', 's2'].map((s) => {
        const l = lease(pool, 'glm-4.7', s);
        l.release();
        return `${s}:${l.account.label}`;
      });
      // At least one flush meets the lock and gives up after its brief wait.
      await Bun.sleep(250);
      await locker.exited;
      await Bun.sleep(300);
      const label = new Map(pool.accounts().map((a) => [a.id, a.label]));
      const stored = loadBindings(db, 0, 100).map((b) => `${b.session}:${label.get(b.accountId)}`);
      expect(stored.sort()).toEqual(placed.sort());
    } finally {
      pool.stop();
    }
  });

  test("a limit the store refused under another process's lock is stored in the background once it lets go, before any stop", async () => {
    const { db } = setup([]);
    addZai(db, 'a', T0);
    const pool = createPool({ db, now: () => T0, defaultCooldownSec: COOLDOWN_SEC, softLimitThreshold: 0.2, flushIntervalMs: 100 });
    pool.start();
    try {
      const locker = await lockFromAnotherProcess(db.filename, 300);
      pool.report(lease(pool), { kind: 'error', error: new UpstreamError('quota_exhausted', 'q', { resetAt: T0 + 99_000 }) });
      expect(listLimits(db)).toEqual([]);
      await locker.exited;
      await Bun.sleep(300);
      expect(listLimits(db)).toEqual([expect.objectContaining({ model: 'glm-4.7', resetAt: T0 + 99_000 })]);
    } finally {
      pool.stop();
    }
  });

  test('stop() waits out a lock another process holds briefly, so an unsaved limit is not lost', async () => {
    const { db, pool, accounts } = setup(['a']);
    const locker = await lockFromAnotherProcess(db.filename, 3000);
    pool.report(lease(pool), { kind: 'error', error: new UpstreamError('quota_exhausted', 'q', { resetAt: T0 + 99_000 }) });
    locker.kill();
    await locker.exited;
    const again = await lockFromAnotherProcess(db.filename, 400);
    pool.stop();
    expect(listLimits(db)).toEqual([expect.objectContaining({ accountId: accounts[0]!.id, resetAt: T0 + 99_000 })]);
    await again.exited;
  });
});

describe('the soft floor given up', () => {
  test('a warning once per model when every account is at or below the floor, not per request; a word when one is above it again', () => {
    const { pool, accounts } = setup(['a', 'b']);
    const lines: string[] = [];
    log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
    try {
      const set = (label: number, left: number) => pool.setQuotas(accounts[label]!.id, [{ model: '*', remainingFraction: left, resetAt: null, window: '5h' }]);
      set(0, 0.9);
      set(1, 0.1);
      lease(pool, 'glm-4.7', 's1').release();
      expect(lines).toEqual([]);
      set(0, 0.15);
      for (let i = 0; i < 5; i++) lease(pool, 'glm-4.7', `s${i}`).release();
      lease(pool, 'glm-4.6', 'other').release();
      expect(lines).toEqual([
        expect.stringMatching(/^warn: every zai account that can serve glm-4\.7 is at or below the soft quota floor \(20% left, SOFT_LIMIT_THRESHOLD\)/),
        expect.stringMatching(/^warn: every zai account that can serve glm-4\.6 is at or below/),
      ]);
      // A refilled account is news too, once.
      set(1, 0.8);
      lease(pool, 'glm-4.7', 's1').release();
      lease(pool, 'glm-4.7', 's2').release();
      expect(lines.slice(2)).toEqual(['info: glm-4.7: a zai account above the soft quota floor serves it again']);
      // And once more when it falls again.
      set(1, 0.05);
      for (let i = 0; i < 3; i++) lease(pool, 'glm-4.7', `t${i}`).release();
      expect(lines.slice(3)).toEqual([expect.stringMatching(/^warn: every zai account that can serve glm-4\.7 is at or below the soft quota floor/)]);
    } finally {
      configureLog({ format: 'pretty' });
    }
  });
});

describe("a provider's write under another process's lock", () => {
  test('a refreshed token is not waited on for busy_timeout on the request path, and reaches the store once the lock is let go', async () => {
    const { db, acc, deps, lines } = providerWrites();
    try {
      const locker = await lockFromAnotherProcess(db.filename, 1_500);
      const t0 = performance.now();
      deps.updateAccount(acc.id, { meta: { plan: 'pro' } });
      deps.updateAccount(acc.id, { meta: { plan: 'max' } });
      // busy_timeout is 5 s: the whole server (one thread) would stand still that long.
      expect(performance.now() - t0).toBeLessThan(1000);
      await locker.exited;
      await Bun.sleep(1_500);
      // In order: the later write is the one that stays.
      expect(findAccount(db, acc.id)?.meta.plan).toBe('max');
    } finally {
      configureLog({ format: 'pretty' });
    }
    // A lock that passed within 5 s was not worth a word (as for the pool and the usage recorder).
    expect(lines).toEqual([]);
  });

  test('a lock that lasts 5 s is warned about once, and so is the write landing after it', async () => {
    const { db, acc, deps, lines, advance } = providerWrites();
    try {
      const locker = await lockFromAnotherProcess(db.filename, 1_600);
      deps.updateAccount(acc.id, { meta: { plan: 'pro' } });
      expect(lines).toEqual([]);
      // A lock a moment old is routine: /health is not told yet.
      expect(deps.writeTrouble()).toBeNull();
      // The retry a second later still meets the lock, which has now lasted 5 s.
      advance(5_000);
      const deadline = Date.now() + 3_000;
      while (!lines.length && Date.now() < deadline) await Bun.sleep(20);
      expect(lines).toEqual([expect.stringMatching(new RegExp(`^warn: could not store the change to account ${acc.id} \\(meta\\) yet, the database has been locked for 5 s: will retry`))]);
      // …and /health says degraded, with why and how much waits.
      expect(deps.writeTrouble()).toBe('database is locked (1 account change(s) waiting in memory)');
      await locker.exited;
      while (lines.length < 2 && Date.now() < deadline + 2_000) await Bun.sleep(20);
      expect(lines[1]).toBe(`info: stored the change to account ${acc.id} after all`);
      expect(deps.writeTrouble()).toBeNull();
      expect(findAccount(db, acc.id)?.meta.plan).toBe('pro');
    } finally {
      configureLog({ format: 'pretty' });
    }
  });
});
