import { afterEach, describe, expect, test } from 'bun:test';
import { ApiError } from '../../src/anthropic/errors.ts';
import { clientErrorFor, exhaustedError, formatWait, limitedError } from '../../src/gateway/gateway.ts';
import { UpstreamError } from '../../src/providers/provider.ts';
import { findAccount, updateAccount } from '../../src/store/accounts.ts';
import { ALL_MODELS, type LimitKind, listLimits } from '../../src/store/limits.ts';
import { createRouting } from '../../src/gateway/index.ts';
import { TRANSIENT_BURST_MS } from '../../src/pool/pool.ts';
import { upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';
import { addZai, cleanupDbs, dispatchReq, drain, fakeClock, readToFailure, request, rig, scriptedProvider, sessionBody, T0, tempDb, testConfig, textEvents } from './helpers.ts';
import { configureLog, log } from '../../src/log.ts';
import { listenerSpy } from '../fixtures/listener-spy.ts';

afterEach(cleanupDbs);

/** A main turn as Claude Code sends it (with its tools): not taken for a side request such as its session title. */
function mainTurn(session: string, turn: number) {
  const tools = [{ name: 'Bash', description: 'run a command', input_schema: { type: 'object' as const, properties: {} } }];
  return { ...sessionBody('glm-4.7', session, turn), tools };
}

async function rejection(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('expected an ApiError');
}

describe('dispatch', () => {
  test('returns once the first event arrived, with the account and upstream model', async () => {
    const r = rig();
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    expect(d.accountId).toBe(r.accounts[0]!.id);
    expect(d.provider).toBe('zai');
    expect(d.upstreamModel).toBe('glm-4.7');
    expect(d.fallbackFrom).toBeNull();
    expect(d.failovers).toBe(0);
    const events = await drain(d);
    expect(events.map((e) => e.type)).toEqual([
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(r.routing.pool.inFlight(d.accountId)).toBe(0);
  });

  test('the lease is held while the stream is read (in-flight count) and released at the end', async () => {
    const r = rig();
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    expect(r.routing.pool.inFlight(d.accountId)).toBe(1);
    await drain(d);
    expect(r.routing.pool.inFlight(d.accountId)).toBe(0);
  });

  test('a 429 with a reset moves the request to another account and limits only that model', async () => {
    const r = rig({ labels: ['a', 'b'] });
    const [a, b] = r.accounts;
    r.zai.answer = (c) =>
      c.label === 'a' && c.model === 'glm-5.1'
        ? { error: new UpstreamError('rate_limited', 'slow down', { status: 429, resetAt: T0 + 30_000 }) }
        : {};
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-5.1')));
    expect(d.accountId).toBe(b!.id);
    expect(d.failovers).toBe(1);
    await drain(d);
    const lim = listLimits(r.db);
    expect(lim).toHaveLength(1);
    expect(lim[0]).toMatchObject({ accountId: a!.id, model: 'glm-5.1', kind: 'rate_limited', resetAt: T0 + 30_000 });
    // Another model still goes to a (a fresh session, equal load and use: pool order)...
    const other = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7', { messages: [{ role: 'user', content: 'x' }] })));
    expect(other.accountId).toBe(a!.id);
    await drain(other);
    // ...while the limited model keeps away from it.
    const again = await r.routing.gateway.dispatch(dispatchReq(request('glm-5.1', { messages: [{ role: 'user', content: 'y' }] })));
    expect(again.accountId).toBe(b!.id);
    expect(again.failovers).toBe(0);
    await drain(again);
  });

  test('the limit expires on time', async () => {
    const r = rig({ labels: ['a', 'b'] });
    r.routing.pool.report(fakeLease(r, 'a', 'glm-4.7'), { kind: 'error', error: new UpstreamError('rate_limited', 'x', { resetAt: T0 + 10_000 }) });
    r.clock.set(T0 + 9_999);
    const before = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7', { messages: [{ role: 'user', content: '1' }] })));
    expect(before.accountId).toBe(r.accounts[1]!.id);
    await drain(before);
    r.clock.set(T0 + 10_000);
    // b is now the most recently used: a fresh session goes back to a, without any wait.
    const after = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7', { messages: [{ role: 'user', content: '2' }] })));
    expect(after.accountId).toBe(r.accounts[0]!.id);
    expect(r.clock.sleeps).toHaveLength(0);
    await drain(after);
    expect(listLimits(r.db)).toHaveLength(0);
  });

  test('a lone account limited briefly: the request waits for its reset and is served', async () => {
    const r = rig({ labels: ['a'] });
    r.zai.answer = (_c, n) => (n === 1 ? { error: new UpstreamError('rate_limited', 'slow', { status: 429, resetAt: T0 + 10_000 }) } : {});
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    expect(r.clock.sleeps).toHaveLength(1);
    expect(r.clock.now()).toBeGreaterThanOrEqual(T0 + 10_000);
    expect(r.zai.calls).toHaveLength(2);
    await drain(d);
    expect(listLimits(r.db)).toHaveLength(0);
  });

  test('a lone account that keeps answering 429: waits at most MAX_WAIT_SEC in total, then 429', async () => {
    const r = rig({ labels: ['a'], config: { maxWaitSec: 30 } });
    r.zai.answer = () => ({ error: new UpstreamError('rate_limited', 'slow', { status: 429, resetAt: r.clock.now() + 10_000 }) });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(e.status).toBe(429);
    expect(r.clock.now() - T0).toBeLessThanOrEqual(30_000 + 2_000);
  });

  test('an account-wide quota limit covers every model of the account', async () => {
    const r = rig({ labels: ['a', 'b'] });
    const [a, b] = r.accounts;
    r.zai.answer = (c) =>
      c.label === 'a' ? { error: new UpstreamError('quota_exhausted', '[1308] limit', { status: 429, resetAt: T0 + 3_600_000, scope: 'account' }) } : {};
    await drain(await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(listLimits(r.db)[0]).toMatchObject({ accountId: a!.id, model: ALL_MODELS, kind: 'quota_exhausted' });
    r.zai.calls.length = 0;
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.6', { messages: [{ role: 'user', content: 'q' }] })));
    expect(d.accountId).toBe(b!.id);
    expect(r.zai.calls.map((c) => c.label)).toEqual(['b']);
    await drain(d);
  });

  test('a bad request goes straight to the client as 400 and is not retried', async () => {
    const r = rig();
    r.zai.answer = () => ({ error: new UpstreamError('bad_request', 'messages.0: bad', { status: 400 }) });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(e.status).toBe(400);
    expect(e.type).toBe('invalid_request_error');
    expect(e.message).toContain('messages.0: bad');
    expect(r.zai.calls).toHaveLength(1);
    expect(listLimits(r.db)).toHaveLength(0);
  });

  test('a model name beyond ASCII is named in errors as the client wrote it (the server hands it over as text)', async () => {
    const r = rig({ labels: ['a'] });
    r.zai.answer = () => ({ error: new UpstreamError('not_found', '', { status: 404 }) });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-é'))));
    expect(e.status).toBe(404);
    expect(e.message).toBe('model: glm-é');
  });

  test('an unknown upstream model is a 404 and is not retried', async () => {
    const r = rig();
    r.zai.answer = () => ({ error: new UpstreamError('not_found', 'Unknown Model', { status: 400, code: '1211' }) });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-9'))));
    expect(e.status).toBe(404);
    expect(r.zai.calls).toHaveLength(1);
  });

  // Z.AI says "[1211] Unknown Model, please check the model code." and Google "Requested entity was
  // not found.": neither names the model, so a user with several clients could not tell which name was wrong.
  test('an unknown upstream model is a 404 that names the model asked for', async () => {
    const r = rig();
    r.zai.answer = () => ({ error: new UpstreamError('not_found', 'Unknown Model, please check the model code.', { status: 400, code: '1211' }) });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-9'))));
    expect(e.message).toBe('model: glm-9: Unknown Model, please check the model code.');
    r.zai.answer = () => ({ error: new UpstreamError('not_found', 'model glm-9 does not exist', { status: 404 }) });
    const named = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-9'))));
    expect(named.message).toBe('model glm-9 does not exist');
  });

  test('capacity and 5xx fail over; capacity cools the account down briefly, one 5xx does not', async () => {
    const r = rig();
    r.zai.answer = (c) =>
      c.label === 'a'
        ? { error: new UpstreamError('capacity', 'overloaded', { status: 529 }) }
        : c.label === 'b'
          ? { error: new UpstreamError('transient', 'bad gateway', { status: 502 }) }
          : {};
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    expect(d.accountId).toBe(r.accounts[2]!.id);
    expect(d.failovers).toBe(2);
    expect(d.failoverReasons).toEqual(['a:capacity', 'b:transient']);
    await drain(d);
    const lim = listLimits(r.db);
    expect(lim).toHaveLength(1);
    expect(lim[0]!.kind).toBe('capacity');
    expect(lim[0]!.resetAt - T0).toBeLessThanOrEqual(10_000);
  });

  test('three 5xx in a row rest the account for the default cool-down', async () => {
    const r = rig({ labels: ['a'] });
    r.zai.answer = () => ({ error: new UpstreamError('transient', 'boom', { status: 500 }) });
    // Seconds apart, as a client's turns are: requests sent together would meet one blip.
    for (let i = 0; i < 3; i++) {
      if (i > 0) r.clock.advance(TRANSIENT_BURST_MS);
      const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
      expect(e.status).toBeGreaterThanOrEqual(500);
    }
    const lim = listLimits(r.db);
    expect(lim).toHaveLength(1);
    expect(lim[0]).toMatchObject({ kind: 'transient' });
    expect(lim[0]!.resetAt - lim[0]!.updatedAt).toBe(r.config.defaultCooldownSec * 1000);
  });

  test('an empty upstream stream fails over', async () => {
    const r = rig({ labels: ['a', 'b'] });
    r.zai.answer = (c) => (c.label === 'a' ? { events: [] } : {});
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    expect(d.accountId).toBe(r.accounts[1]!.id);
    await drain(d);
  });

  test('at most maxAttempts upstream calls per request', async () => {
    const r = rig({ labels: ['a', 'b', 'c', 'd'], config: { maxAttempts: 2 } });
    r.zai.answer = () => ({ error: new UpstreamError('transient', 'down', { status: 503 }) });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(r.zai.calls).toHaveLength(2);
    expect(e.status).toBe(502);
  });

  test('an auth failure refreshes once and retries the same account', async () => {
    const r = rig({ labels: ['a', 'b'] });
    r.zai.answer = (_c, n) => (n === 1 ? { error: new UpstreamError('auth', 'expired', { status: 401 }) } : {});
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    expect(r.zai.refreshes).toEqual(['a']);
    expect(r.zai.calls.map((c) => c.label)).toEqual(['a', 'a']);
    expect(d.accountId).toBe(r.accounts[0]!.id);
    await drain(d);
  });

  test('auth failing again after the refresh marks the account invalid and fails over', async () => {
    const r = rig({ labels: ['a', 'b'] });
    r.zai.answer = (c) => (c.label === 'a' ? { error: new UpstreamError('auth', 'revoked', { status: 401 }) } : {});
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    expect(r.zai.calls.map((c) => c.label)).toEqual(['a', 'a', 'b']);
    expect(d.accountId).toBe(r.accounts[1]!.id);
    await drain(d);
    expect(findAccount(r.db, 'a')!.status).toBe('invalid');
  });

  test('a refresh that fails marks the account invalid', async () => {
    const r = rig({ labels: ['a', 'b'] });
    r.zai.refreshFails.add('a');
    r.zai.answer = (c) => (c.label === 'a' ? { error: new UpstreamError('auth', 'expired', { status: 401 }) } : {});
    await drain(await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    const a = findAccount(r.db, 'a')!;
    expect(a.status).toBe('invalid');
    expect(a.statusReason).toContain('invalid_grant');
  });

  test('a refresh that fails for want of a network keeps the account and fails over', async () => {
    const r = rig({ labels: ['a', 'b'] });
    r.zai.refreshDown.add('a');
    r.zai.answer = (c) => (c.label === 'a' ? { error: new UpstreamError('auth', 'expired', { status: 401 }) } : {});
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    expect(d.accountId).toBe(r.accounts[1]!.id);
    await drain(d);
    expect(findAccount(r.db, 'a')!.status).toBe('active');
  });

  test("an upstream 401 never reaches the client as authentication_error (that is about the client's proxy key): a retryable 503", async () => {
    const r = rig({ labels: ['a'] });
    r.zai.refreshDown.add('a');
    r.zai.answer = () => ({ error: new UpstreamError('auth', 'token expired', { status: 401 }) });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(e.type).toBe('api_error');
    expect(e.status).toBe(503);
    expect(e.headers['x-should-retry']).toBeUndefined();
    expect(findAccount(r.db, 'a')!.status).toBe('active');
  });

  test('an upstream 401 after the stream started ends it with an api_error, not authentication_error', async () => {
    const r = rig({ labels: ['a'] });
    r.zai.answer = () => ({ error: new UpstreamError('auth', 'token revoked', { status: 401 }), after: 2 });
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    const e = await rejection(drain(d));
    expect(e.type).toBe('api_error');
    expect(e.status).toBe(503);
  });

  test('capacity on every call (Z.AI 1305) stops after MAX_ATTEMPTS upstream calls in all, waits included: a 529', async () => {
    const r = rig({ labels: ['a', 'b', 'c'], config: { maxWaitSec: 120, maxAttempts: 5 } });
    r.zai.answer = () => ({ error: new UpstreamError('capacity', '[1305] overloaded', { status: 429, code: '1305' }) });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(e.status).toBe(529);
    expect(e.type).toBe('overloaded_error');
    expect(r.zai.calls).toHaveLength(5);
  });

  describe('MAX_ATTEMPTS spent: the answer is the pool\'s soonest reset and what limits that account, whatever the last attempt met', () => {
    const rl = (ms: number) => new UpstreamError('rate_limited', 'slow down', { status: 429, resetAt: T0 + ms });
    const overloaded = new UpstreamError('capacity', 'overloaded', { status: 529 });
    const rows: Array<{ name: string; errors: Record<string, UpstreamError>; status: number; type: string; headers: Record<string, string>; says: string }> = [
      {
        name: 'two accounts rate limited, one for 3 s, the last overloaded: a 429 to retry in 3 s, not a 529 with no time',
        errors: { a: rl(3_000), b: rl(30_000), c: overloaded },
        status: 429,
        type: 'rate_limit_error',
        headers: { 'retry-after': '3' },
        says: 'every account is rate limited or resting after an upstream overload, retry after 3s',
      },
      {
        name: 'two accounts rate limited for longer than the overloaded one rests: a 529 with its cool-down as retry-after',
        errors: { a: rl(30_000), b: rl(40_000), c: overloaded },
        status: 529,
        type: 'overloaded_error',
        headers: { 'retry-after': '10' },
        says: 'every account is resting after an upstream overload or rate limited, retry after 10s',
      },
    ];
    for (const row of rows) {
      test(row.name, async () => {
        const r = rig({ labels: ['a', 'b', 'c'], config: { maxWaitSec: 60, maxAttempts: 3 } });
        r.zai.answer = (c) => ({ error: row.errors[c.label]! });
        const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
        expect(r.zai.calls.map((c) => c.label)).toEqual(['a', 'b', 'c']);
        expect([e.status, e.type as string]).toEqual([row.status, row.type]);
        expect(e.headers).toEqual(row.headers);
        expect(e.message).toContain(row.says);
      });
    }

    test('the last attempt met a dead account while another can serve: a 503 to retry, not "do not retry"', async () => {
      const r = rig({ labels: ['a', 'b', 'c'], config: { maxWaitSec: 60, maxAttempts: 2 } });
      r.zai.answer = (c) =>
        c.label === 'a' ? { error: new UpstreamError('transient', 'bad gateway', { status: 502 }) } : c.label === 'b' ? { error: new UpstreamError('invalid_account', 'banned', { status: 403 }) } : {};
      const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
      expect(e.status).toBe(503);
      expect(e.headers['x-should-retry']).toBeUndefined();
      expect(e.message).toContain('banned');
    });
  });

  test('capacity everywhere is waited out for one short cool-down, not MAX_WAIT_SEC: then a 529 the client retries itself', async () => {
    // Claude Code retries a 529 ten times; two minutes of waiting inside each of its attempts made
    // a lasting overload (or Z.AI's disguised filter, a 1305 every time) ten minutes of silence.
    const r = rig({ labels: ['a', 'b'], config: { maxWaitSec: 120, maxAttempts: 50 } });
    r.zai.answer = () => ({ error: new UpstreamError('capacity', '[1305] overloaded', { status: 429, code: '1305' }) });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(e.status).toBe(529);
    expect(Number(e.headers['retry-after'])).toBeGreaterThan(0);
    expect(r.clock.sleeps.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(15_000);
    expect(r.zai.calls).toHaveLength(4);
  });

  test('an invalid account is marked with reason and verify link, and the request fails over', async () => {
    const r = rig({ labels: ['a', 'b'] });
    r.zai.answer = (c) =>
      c.label === 'a'
        ? { error: new UpstreamError('invalid_account', 'verify your account', { status: 403, verifyUrl: 'https://accounts.google.com/v', code: 'VALIDATION_REQUIRED' }) }
        : {};
    await drain(await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    const a = findAccount(r.db, 'a')!;
    expect(a.status).toBe('invalid');
    expect(a.statusReason).toContain('verify your account');
    expect(a.verifyUrl).toBe('https://accounts.google.com/v');
    // Never serves again.
    r.zai.calls.length = 0;
    await drain(await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7', { messages: [{ role: 'user', content: 'z' }] }))));
    expect(r.zai.calls.map((c) => c.label)).toEqual(['b']);
  });

  test('a dead pool answers a final 503 (the proxy has no account; not the client key: no 403) without calling upstream', async () => {
    const r = rig({ labels: ['a'] });
    r.routing.pool.markInvalid(r.accounts[0]!, 'banned');
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(e.status).toBe(503);
    expect(e.type).toBe('api_error');
    expect(e.headers['x-should-retry']).toBe('false');
    expect(e.message).toContain('banned');
    expect(r.zai.calls).toHaveLength(0);
  });

  test('all limited within MAX_WAIT_SEC: waits for the earliest reset, then serves', async () => {
    const r = rig({ labels: ['a', 'b'], config: { maxWaitSec: 60 } });
    r.routing.pool.report(fakeLease(r, 'a', 'glm-4.7'), { kind: 'error', error: new UpstreamError('rate_limited', 'x', { resetAt: T0 + 50_000 }) });
    r.routing.pool.report(fakeLease(r, 'b', 'glm-4.7'), { kind: 'error', error: new UpstreamError('rate_limited', 'x', { resetAt: T0 + 20_000 }) });
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    expect(d.accountId).toBe(r.accounts[1]!.id);
    expect(r.clock.sleeps).toHaveLength(1);
    expect(r.clock.sleeps[0]!).toBeGreaterThanOrEqual(20_000);
    expect(r.clock.sleeps[0]!).toBeLessThan(21_000);
    await drain(d);
  });

  describe('the log line of a wait names what it waits for', () => {
    const rows: Array<[string, (r: ReturnType<typeof rig>) => void, string]> = [
      [
        'a rate limit',
        (r) => r.routing.pool.report(fakeLease(r, 'a', 'glm-4.7'), { kind: 'error', error: new UpstreamError('rate_limited', 'x', { resetAt: T0 + 5_000 }) }),
        'for the first account free again to end its rate limit',
      ],
      [
        'a capacity cool-down',
        (r) => r.routing.pool.report(fakeLease(r, 'a', 'glm-4.7'), { kind: 'error', error: new UpstreamError('capacity', 'x', { resetAt: T0 + 5_000 }) }),
        'for the first account free again to end its cool-down after the upstream was overloaded',
      ],
      [
        'the rest after repeated 5xx (no limit)',
        (r) => {
          for (let i = 0; i < 3; i++) {
            r.routing.pool.report(fakeLease(r, 'a', 'glm-4.7'), { kind: 'error', error: new UpstreamError('transient', 'x') });
            r.clock.advance(TRANSIENT_BURST_MS);
          }
        },
        'for the first account free again to end its rest after repeated upstream errors',
      ],
    ];
    for (const [name, limit, says] of rows) {
      test(name, async () => {
        const r = rig({ labels: ['a'], config: { maxWaitSec: 60, defaultCooldownSec: 5 } });
        limit(r);
        const lines: string[] = [];
        log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
        try {
          await drain(await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
        } finally {
          configureLog({ format: 'pretty' });
        }
        expect(r.clock.sleeps).toHaveLength(1);
        const waits = lines.filter((l) => l.includes('waiting'));
        expect(waits).toHaveLength(1);
        expect(waits[0]).toContain('no account can serve glm-4.7 now');
        expect(waits[0]).toContain(says);
        if (!name.includes('rate limit')) expect(waits[0]).not.toContain('limit');
      });
    }
  });

  test('a reset within MAX_WAIT_SEC but past half the client\'s own timeout: a retryable 429 at once, no wait', async () => {
    const r = rig({ labels: ['a'], config: { maxWaitSec: 60 } });
    r.routing.pool.report(fakeLease(r, 'a', 'glm-4.7'), { kind: 'error', error: new UpstreamError('rate_limited', 'x', { resetAt: T0 + 20_000 }) });
    const e = await rejection(r.routing.gateway.dispatch({ ...dispatchReq(request('glm-4.7')), clientWaitMs: 30_000 }));
    expect(e.status).toBe(429);
    expect(e.headers['retry-after']).toBe('20');
    expect(e.headers['x-should-retry']).toBeUndefined();
    expect(r.clock.sleeps).toHaveLength(0);
    // A client that waits long enough is waited for.
    const d = await r.routing.gateway.dispatch({ ...dispatchReq(request('glm-4.7')), clientWaitMs: 60_000 });
    expect(r.clock.sleeps).toHaveLength(1);
    await drain(d);
  });

  test('all limited past MAX_WAIT_SEC: 429 naming RESOURCE_EXHAUSTED and the reset, no upstream call', async () => {
    const r = rig({ labels: ['a', 'b'], config: { maxWaitSec: 60 } });
    for (const l of ['a', 'b']) {
      r.routing.pool.report(fakeLease(r, l, 'glm-4.7'), {
        kind: 'error',
        error: new UpstreamError('quota_exhausted', 'x', { resetAt: T0 + 3_600_000 }),
      });
    }
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(e.status).toBe(429);
    expect(e.type).toBe('rate_limit_error');
    expect(e.message).toContain('RESOURCE_EXHAUSTED');
    expect(e.message).toContain(new Date(T0 + 3_600_000).toISOString());
    expect(e.headers['retry-after']).toBe('3600');
    expect(e.headers['x-should-retry']).toBe('false');
    expect(r.zai.calls).toHaveLength(0);
    expect(r.clock.sleeps).toHaveLength(0);
  });

  test("a model no account may use (Z.AI 1220 on every key): a final 404 naming the model, then no upstream call until the recheck", async () => {
    const r = rig({ labels: ['a', 'b'], config: { maxWaitSec: 60 } });
    r.zai.answer = () => ({ error: new UpstreamError('no_access', 'You do not have permission to access glm-4.7', { code: '1220', resetAt: T0 + 3_600_000 }) });
    for (let i = 0; i < 2; i++) {
      const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
      expect(e.status).toBe(404);
      expect(e.type).toBe('not_found_error');
      expect(e.message).toContain('glm-4.7');
      expect(e.message).not.toContain('Rate limited');
      expect(e.headers['x-should-retry']).toBe('false');
      expect(r.zai.calls).toHaveLength(2);
    }
    expect(r.clock.sleeps).toHaveLength(0);
  });

  test('one 5xx on the only unlimited account while the others are out of quota: a retryable 502, not a final 429', async () => {
    const r = rig({ labels: ['a', 'b'], config: { maxWaitSec: 60 } });
    r.routing.pool.report(fakeLease(r, 'b', 'glm-4.7'), { kind: 'error', error: new UpstreamError('quota_exhausted', 'x', { resetAt: T0 + 3_600_000 }) });
    r.zai.answer = () => ({ error: new UpstreamError('transient', 'bad gateway', { status: 502 }) });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(e.status).toBe(502);
    expect(e.type).toBe('api_error');
    expect(e.headers['x-should-retry']).toBeUndefined();
    expect(r.zai.calls.map((c) => c.label)).toEqual(['a']);
    expect(r.clock.sleeps).toHaveLength(0);
  });

  for (const [name, error] of [
    ['an overload', new UpstreamError('capacity', 'overloaded', { status: 529 })],
    ['a dead account', new UpstreamError('invalid_account', 'banned', { status: 403 })],
  ] as const) {
    test(`a 5xx on one account, then ${name} on the last: the 5xx is the answer (that account can serve a retry), a retryable 502`, async () => {
      const r = rig({ labels: ['a', 'b'], config: { maxWaitSec: 60 } });
      r.zai.answer = (c) => (c.label === 'a' ? { error: new UpstreamError('transient', 'bad gateway', { status: 502 }) } : { error });
      const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
      expect(r.zai.calls.map((c) => c.label)).toEqual(['a', 'b']);
      expect([e.status, e.type as string]).toEqual([502, 'api_error']);
      expect(e.headers['x-should-retry']).toBeUndefined();
      expect(e.message).toContain('bad gateway');
    });
  }

  test('capacity on the only unlimited account while the others are out of quota: a retryable 529', async () => {
    const r = rig({ labels: ['a', 'b'], config: { maxWaitSec: 60 } });
    r.routing.pool.report(fakeLease(r, 'b', 'glm-4.7'), { kind: 'error', error: new UpstreamError('quota_exhausted', 'x', { resetAt: T0 + 3_600_000 }) });
    r.zai.answer = () => ({ error: new UpstreamError('capacity', 'overloaded', { status: 529 }) });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    // a is now in its capacity cool-down, b out of quota: the earliest free account is a, for capacity.
    expect(e.status).toBe(529);
    expect(e.headers['x-should-retry']).toBeUndefined();
  });

  test('capacity everywhere for longer than MAX_WAIT_SEC, known before any call: a retryable 529 with retry-after, no upstream call', async () => {
    const r = rig({ labels: ['a', 'b'], config: { maxWaitSec: 60 } });
    for (const l of ['a', 'b']) {
      r.routing.pool.report(fakeLease(r, l, 'glm-4.7'), { kind: 'error', error: new UpstreamError('capacity', 'x', { resetAt: T0 + 300_000 }) });
    }
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(e.status).toBe(529);
    expect(e.type).toBe('overloaded_error');
    expect(e.headers).toEqual({ 'retry-after': '300' });
    expect(r.zai.calls).toHaveLength(0);
  });

  test('a throttle longer than MAX_WAIT_SEC, known before any call, is final like a quota (x-should-retry: false)', async () => {
    const r = rig({ labels: ['a', 'b'], config: { maxWaitSec: 60 } });
    r.routing.pool.report(fakeLease(r, 'a', 'glm-4.7'), { kind: 'error', error: new UpstreamError('quota_exhausted', 'x', { resetAt: T0 + 3_600_000 }) });
    r.routing.pool.report(fakeLease(r, 'b', 'glm-4.7'), { kind: 'error', error: new UpstreamError('rate_limited', 'x', { resetAt: T0 + 600_000 }) });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    // Ten minutes is more than the user waits (MAX_WAIT_SEC): Claude Code should not sit on it.
    expect(e.status).toBe(429);
    expect(e.headers).toEqual({ 'retry-after': '600', 'x-should-retry': 'false' });
    expect(r.zai.calls).toHaveLength(0);
  });

  test('short throttles that use up the wait budget (Z.AI 1302): a retryable 429 with the short retry-after, not a final one', async () => {
    const r = rig({ labels: ['a', 'b'], config: { maxWaitSec: 20, maxAttempts: 50 } });
    r.zai.answer = () => ({
      error: new UpstreamError('rate_limited', '[1302] High concurrency', { status: 429, code: '1302', scope: 'account', resetAt: r.clock.now() + 5_000 }),
    });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(e.status).toBe(429);
    expect(e.type).toBe('rate_limit_error');
    expect(e.headers['x-should-retry']).toBeUndefined();
    expect(Number(e.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(e.headers['retry-after'])).toBeLessThanOrEqual(5);
    expect(e.message).not.toContain('RESOURCE_EXHAUSTED');
  });

  test('every account resting after repeated 5xx, past the wait budget: a retryable 503 with the cool-down, never a final one nor a rate limit', async () => {
    const r = rig({ labels: ['a'], config: { maxWaitSec: 30, defaultCooldownSec: 60 } });
    r.routing.pool.report(fakeLease(r, 'a', 'glm-4.7'), { kind: 'error', error: new UpstreamError('transient', 'x') });
    r.routing.pool.report(fakeLease(r, 'a', 'glm-4.7'), { kind: 'error', error: new UpstreamError('transient', 'x') });
    r.routing.pool.report(fakeLease(r, 'a', 'glm-4.7'), { kind: 'error', error: new UpstreamError('transient', 'x') });
    expect(listLimits(r.db)[0]!.kind).toBe('transient');
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(e.status).toBe(503);
    expect(e.type).toBe('api_error');
    expect(e.headers).toEqual({ 'retry-after': '60' });
    expect(r.zai.calls).toHaveLength(0);
  });

  test('every account resting after repeated 5xx, within MAX_WAIT_SEC: no minute of silence inside the request, a 503 with the rest as retry-after at once', async () => {
    // Claude Code against one Google account answering 502s: every other of its retries sat 60 s in
    // mcp without a word (its own log said "retrying in 2.2s"), then met the same 502. Its retries
    // multiply such waits, as they did capacity's.
    const r = rig({ labels: ['a'], config: { maxWaitSec: 120, defaultCooldownSec: 60 } });
    for (let i = 0; i < 3; i++) {
      r.routing.pool.report(fakeLease(r, 'a', 'glm-4.7'), { kind: 'error', error: new UpstreamError('transient', 'x') });
      r.clock.advance(TRANSIENT_BURST_MS);
    }
    expect(listLimits(r.db)[0]!.kind).toBe('transient');
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(r.clock.sleeps.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(15_000);
    expect(e.status).toBe(503);
    expect(e.type).toBe('api_error');
    expect(Number(e.headers['retry-after'])).toBeGreaterThan(15);
    expect(e.headers['x-should-retry']).toBeUndefined();
    expect(r.zai.calls).toHaveLength(0);
  });

  test('a wait is abandoned when the client goes away', async () => {
    const r = rig({ labels: ['a'], config: { maxWaitSec: 60 } });
    r.routing.pool.report(fakeLease(r, 'a', 'glm-4.7'), { kind: 'error', error: new UpstreamError('rate_limited', 'x', { resetAt: T0 + 20_000 }) });
    const ac = new AbortController();
    ac.abort();
    await expect(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'), {}, ac.signal))).rejects.toBeDefined();
    expect(r.zai.calls).toHaveLength(0);
  });

  test('fallback serves the mapped model when the asked one is exhausted everywhere, and says so', async () => {
    const r = rig({ labels: ['a', 'b'], config: { fallback: true, maxWaitSec: 10 } });
    for (const l of ['a', 'b']) {
      r.routing.pool.report(fakeLease(r, l, 'glm-5.1'), { kind: 'error', error: new UpstreamError('rate_limited', 'x', { resetAt: T0 + 600_000 }) });
    }
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-5.1')));
    expect(d.upstreamModel).toBe('glm-4.7');
    expect(d.fallbackFrom).toBe('glm-5.1');
    expect(r.zai.calls[0]!.model).toBe('glm-4.7');
    expect(r.zai.calls[0]!.clientModel).toBe('glm-5.1');
    await drain(d);
  });

  describe('the log line of a fallback names what keeps the accounts out', () => {
    const rows: Array<[string, UpstreamError, string]> = [
      ['quotas', new UpstreamError('quota_exhausted', 'x', { resetAt: T0 + 600_000 }), 'every account is out of quota'],
      ['an overload, which is no exhaustion', new UpstreamError('capacity', 'x', { resetAt: T0 + 600_000 }), 'every account is resting after an upstream overload'],
    ];
    for (const [name, error, says] of rows) {
      test(name, async () => {
        const r = rig({ labels: ['a', 'b'], config: { fallback: true, maxWaitSec: 10 } });
        for (const l of ['a', 'b']) r.routing.pool.report(fakeLease(r, l, 'glm-5.1'), { kind: 'error', error });
        const lines: string[] = [];
        log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
        try {
          await drain(await r.routing.gateway.dispatch(dispatchReq(request('glm-5.1'))));
        } finally {
          configureLog({ format: 'pretty' });
        }
        const fell = lines.filter((l) => l.includes('falling back to glm-4.7'));
        expect(fell).toHaveLength(1);
        expect(fell[0]).toContain(`glm-5.1 cannot be served until ${new Date(T0 + 600_000).toISOString()}: ${says}`);
        expect(fell[0]).not.toContain('exhausted');
      });
    }
  });

  test('the fallback waits only for what is left of MAX_WAIT_SEC, not a whole second MAX_WAIT_SEC', async () => {
    const r = rig({ labels: ['a', 'b'], config: { fallback: true, maxWaitSec: 10 } });
    for (const l of ['a', 'b']) {
      r.routing.pool.report(fakeLease(r, l, 'glm-5.1'), { kind: 'error', error: new UpstreamError('rate_limited', 'x', { resetAt: T0 + 8_000 }) });
      r.routing.pool.report(fakeLease(r, l, 'glm-4.7'), { kind: 'error', error: new UpstreamError('rate_limited', 'x', { resetAt: T0 + 16_000 }) });
    }
    // After the first wait (8 s) the asked model is limited again, for longer than is left.
    r.zai.answer = () => ({ error: new UpstreamError('rate_limited', 'again', { resetAt: r.clock.now() + 8_000 }) });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-5.1'))));
    expect(e.status).toBe(429);
    expect(r.clock.sleeps.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(10_000);
  });

  test('x-proxy-no-fallback: 1 refuses the fallback', async () => {
    const r = rig({ labels: ['a'], config: { fallback: true, maxWaitSec: 10 } });
    r.routing.pool.report(fakeLease(r, 'a', 'glm-5.1'), { kind: 'error', error: new UpstreamError('rate_limited', 'x', { resetAt: T0 + 600_000 }) });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-5.1'), { 'x-proxy-no-fallback': '1' })));
    expect(e.status).toBe(429);
    expect(r.zai.calls).toHaveLength(0);
  });

  test('a fallback exhausted everywhere too: a 429 about the asked model, no upstream call, never a second hop', async () => {
    const r = rig({ labels: ['a', 'b'], config: { fallback: true, maxWaitSec: 10 } });
    for (const l of ['a', 'b']) {
      for (const m of ['glm-5.1', 'glm-4.7']) {
        r.routing.pool.report(fakeLease(r, l, m), { kind: 'error', error: new UpstreamError('quota_exhausted', 'x', { resetAt: T0 + 600_000 }) });
      }
    }
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-5.1'))));
    expect(e.status).toBe(429);
    expect(e.message).toContain('glm-5.1');
    expect(r.zai.calls).toHaveLength(0); // glm-4.6 (glm-4.7's own fallback) is not tried
  });

  test('FALLBACK_MAP overrides the built-in map', async () => {
    const r = rig({ labels: ['a'], config: { fallback: true, maxWaitSec: 10, fallbackMap: { 'glm-5.1': 'glm-4.6' } } });
    r.routing.pool.report(fakeLease(r, 'a', 'glm-5.1'), { kind: 'error', error: new UpstreamError('rate_limited', 'x', { resetAt: T0 + 600_000 }) });
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-5.1')));
    expect(d.upstreamModel).toBe('glm-4.6');
    await drain(d);
  });

  test('a FALLBACK_MAP entry naming the model itself another way (zai/glm-5.1) is no fallback: the 429 at once, no second round', async () => {
    const r = rig({ labels: ['a'], config: { fallback: true, maxWaitSec: 10, fallbackMap: { 'glm-5.1': 'zai/glm-5.1' } } });
    r.routing.pool.report(fakeLease(r, 'a', 'glm-5.1'), { kind: 'error', error: new UpstreamError('rate_limited', 'x', { resetAt: T0 + 600_000 }) });
    const lines: string[] = [];
    log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
    try {
      const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-5.1'))));
      expect(e.status).toBe(429);
      expect(e.message).toContain('glm-5.1');
    } finally {
      configureLog({ format: 'pretty' });
    }
    expect(r.zai.calls).toHaveLength(0);
    expect(lines.filter((l) => l.includes('falling back'))).toEqual([]);
  });

  /** One Google account ('g', serving claude-sonnet-4-6) and one Z.AI key ('z', glm-4.7); FALLBACK_MAP sends the one to the other. */
  function mixedPool() {
    const { db } = tempDb();
    const clock = fakeClock();
    const ag = upsertAccount(db, { provider: 'antigravity', label: 'g', email: 'g@example.com', credentials: { kind: 'oauth', refreshToken: 'FAKE-refresh-g' } }, T0).account;
    addZai(db, 'z', T0 + 1);
    const antigravity = scriptedProvider('antigravity', ['claude-sonnet-4-6']);
    const zai = scriptedProvider('zai', ['glm-4.7']);
    const make = (fb: boolean) =>
      createRouting({ db, config: testConfig({ fallback: fb, maxWaitSec: 10, fallbackMap: { 'claude-sonnet-4-6': 'glm-4.7' } }), providers: { antigravity, zai }, now: clock.now, sleep: clock.sleep });
    return { ag, antigravity, zai, routing: make(true), make };
  }

  test('FALLBACK_MAP can send an exhausted Google model to a Z.AI model (the fallback crosses providers)', async () => {
    const { ag, antigravity, zai, routing } = mixedPool();
    const lease = routing.pool.acquire({ provider: 'antigravity', model: 'claude-sonnet-4-6', familyKey: 'antigravity:claude', sessionKey: 's', exclude: new Set() });
    if (lease.kind !== 'lease') throw new Error(`no lease: ${lease.kind}`);
    expect(lease.lease.account.id).toBe(ag.id);
    routing.pool.report(lease.lease, { kind: 'error', error: new UpstreamError('quota_exhausted', 'x', { resetAt: T0 + 3_600_000 }) });
    const d = await routing.gateway.dispatch(dispatchReq(request('claude-sonnet-4-6')));
    expect(d.upstreamModel).toBe('glm-4.7');
    expect(zai.calls).toHaveLength(1);
    expect(antigravity.calls).toHaveLength(0);
    await drain(d);
  });

  test('with a fallback configured, a model whose accounts are all unusable (invalid) is served by the fallback too', async () => {
    const { ag, antigravity, routing, make } = mixedPool();
    routing.pool.markInvalid(ag, 'invalid_grant: log in again');
    const d = await routing.gateway.dispatch(dispatchReq(request('claude-sonnet-4-6')));
    expect(d.upstreamModel).toBe('glm-4.7');
    expect(antigravity.calls).toHaveLength(0);
    await drain(d);
    // Without the fallback the client hears why, as before.
    const e = await rejection(make(false).gateway.dispatch(dispatchReq(request('claude-sonnet-4-6'))));
    expect(e.status).toBe(503);
    expect(e.message).toContain('invalid_grant');
  });

  test('with a fallback configured, accounts found dead during the request (refused credentials) hand it to the fallback', async () => {
    const { antigravity, routing } = mixedPool();
    antigravity.answer = () => ({ error: new UpstreamError('invalid_account', 'This service has been disabled in this account', { status: 403 }) });
    const d = await routing.gateway.dispatch(dispatchReq(request('claude-sonnet-4-6')));
    expect(d.upstreamModel).toBe('glm-4.7');
    expect(antigravity.calls).toHaveLength(1);
    await drain(d);
  });

  test('without --fallback an exhausted model is a 429, not another model', async () => {
    const r = rig({ labels: ['a'], config: { fallback: false, maxWaitSec: 10 } });
    r.routing.pool.report(fakeLease(r, 'a', 'glm-5.1'), { kind: 'error', error: new UpstreamError('rate_limited', 'x', { resetAt: T0 + 600_000 }) });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-5.1'))));
    expect(e.status).toBe(429);
  });

  test('an upstream error after the first event ends the stream with an ApiError and records the limit', async () => {
    const r = rig({ labels: ['a', 'b'] });
    r.zai.answer = () => ({ error: new UpstreamError('rate_limited', 'mid', { status: 429, resetAt: T0 + 5000 }), after: 2 });
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    const { seen, thrown } = await readToFailure(d);
    expect(seen).toEqual(['message_start', 'content_block_start']);
    expect(thrown).toBeInstanceOf(ApiError);
    expect((thrown as ApiError).type).toBe('rate_limit_error');
    expect(listLimits(r.db)).toHaveLength(1);
    expect(r.routing.pool.inFlight(d.accountId)).toBe(0);
  });

  test('a provider bug (not an UpstreamError) before the first event: a 502 without its detail, no failover, nothing held against the account', async () => {
    const r = rig({ labels: ['a', 'b'] });
    r.zai.answer = () => ({ error: new TypeError("Cannot read properties of undefined (reading 'secretField')") as never });
    // More requests than the failures in a row that rest an account.
    for (let i = 0; i < 4; i++) {
      const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
      expect(e.status).toBe(502);
      expect(e.type).toBe('api_error');
      expect(e.message).not.toContain('secretField');
    }
    // The same code would fail the same way on any account: one upstream call per request.
    expect(r.zai.calls).toHaveLength(4);
    expect(listLimits(r.db)).toHaveLength(0);
    for (const a of r.accounts) expect(r.routing.pool.inFlight(a.id)).toBe(0);
  });

  test('a request too deep for the provider to write out is a 400 to the client, not a bug or an account failure', async () => {
    const r = rig({ labels: ['a', 'b'] });
    r.zai.answer = () => ({ error: new RangeError('Maximum call stack size exceeded.') as never });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(e.status).toBe(400);
    expect(e.type).toBe('invalid_request_error');
    expect(e.message).toContain('too deeply');
    // Any account would fail the same way: one call, nothing held against it.
    expect(r.zai.calls).toHaveLength(1);
    expect(listLimits(r.db)).toHaveLength(0);
  });

  test('a provider bug after the first event ends the stream with a 502 api_error without its detail, and no limit', async () => {
    const r = rig({ labels: ['a', 'b'] });
    r.zai.answer = () => ({ error: new RangeError('secret internal detail') as never, after: 3 });
    for (let i = 0; i < 4; i++) {
      const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
      let thrown: unknown;
      try {
        await drain(d);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(ApiError);
      expect((thrown as ApiError).status).toBe(502);
      expect((thrown as ApiError).message).not.toContain('secret internal detail');
      expect(r.routing.pool.inFlight(d.accountId)).toBe(0);
    }
    expect(listLimits(r.db)).toHaveLength(0);
  });

  test('not streaming: a failure after the first event moves the request to another account, and the limit is kept', async () => {
    const r = rig({ labels: ['a', 'b'] });
    r.zai.answer = (call) =>
      call.label === 'a' ? { error: new UpstreamError('rate_limited', 'mid', { status: 429, resetAt: T0 + 5000 }), after: 2 } : {};
    // Two conversations, so one of them starts on a.
    for (const session of ['s1', 's2']) {
      const d = await r.routing.gateway.dispatch(dispatchReq({ ...sessionBody('glm-4.7', session), stream: false }));
      expect(d.accountId).toBe(r.accounts[1]!.id);
      // The account is free as soon as its answer is whole, before the client reads it.
      expect(r.routing.pool.inFlight(d.accountId)).toBe(0);
      const evs = await drain(d);
      expect(evs.map((e) => e.type)).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    }
    expect(r.zai.calls.map((c) => c.label)).toEqual(['a', 'b', 'b']);
    expect(listLimits(r.db).map((l) => [l.accountId, l.kind])).toEqual([[r.accounts[0]!.id, 'rate_limited']]);
  });

  test('not streaming: an error event inside the answer fails over like a thrown error', async () => {
    const r = rig({ labels: ['a', 'b'] });
    r.zai.answer = (call) =>
      call.label === 'a'
        ? { events: [textEvents('x', 'glm-4.7')[0]!, { type: 'error', error: { type: 'overloaded_error', message: 'busy' } } as never] }
        : {};
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7', { stream: false })));
    expect(d.accountId).toBe(r.accounts[1]!.id);
    expect(d.failovers).toBe(1);
    expect((await drain(d)).at(-1)!.type).toBe('message_stop');
  });

  test('not streaming: an answer that cannot be made a Message (invalid tool input) fails over, and the Message comes with it', async () => {
    const r = rig({ labels: ['a', 'b'] });
    const toolAnswer = (json: string) => [
      textEvents('x', 'glm-4.7')[0]!,
      { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'toolu_1', name: 'Bash', input: {} } },
      { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: json } },
      { type: 'content_block_stop', index: 0 },
      { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 9 } },
      { type: 'message_stop' },
    ] as never;
    r.zai.answer = (call) => ({ events: toolAnswer(call.label === 'a' ? '{"command": ls}' : '{"command":"ls"}') });
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7', { stream: false })));
    expect(d.accountId).toBe(r.accounts[1]!.id);
    expect(d.failovers).toBe(1);
    expect(d.message?.content).toEqual([{ type: 'tool_use', id: 'toolu_1', name: 'Bash', input: { command: 'ls' } }]);
  });

  test('not streaming: a client gone in the middle of the answer stops the upstream call and is not counted against the account', async () => {
    const r = rig({ labels: ['a'] });
    r.zai.answer = () => ({ hangAfter: 2 });
    const ac = new AbortController();
    const p = r.routing.gateway.dispatch(dispatchReq(request('glm-4.7', { stream: false }), {}, ac.signal));
    await Bun.sleep(5);
    ac.abort();
    await expect(p).rejects.toBeDefined();
    expect(r.zai.calls).toHaveLength(1);
    expect(listLimits(r.db)).toHaveLength(0);
    expect(findAccount(r.db, 'a')!.status).toBe('active');
    expect(r.routing.pool.inFlight(r.accounts[0]!.id)).toBe(0);
  });

  test('a client that went away is never counted against the account', async () => {
    const r = rig({ labels: ['a'] });
    r.zai.answer = () => ({ hang: true });
    const ac = new AbortController();
    const p = r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'), {}, ac.signal));
    await Bun.sleep(5);
    ac.abort();
    await expect(p).rejects.toBeDefined();
    expect(listLimits(r.db)).toHaveLength(0);
    expect(findAccount(r.db, 'a')!.status).toBe('active');
    expect(r.routing.pool.inFlight(r.accounts[0]!.id)).toBe(0);
  });

  test('two conversations land on different accounts and each stays on its own across ten turns', async () => {
    const r = rig({ labels: ['a', 'b', 'c'] });
    const served: Record<string, Set<string>> = { s1: new Set(), s2: new Set() };
    for (let turn = 0; turn < 10; turn++) {
      // Both in flight at once, as parallel sessions are.
      const [d1, d2] = await Promise.all([
        r.routing.gateway.dispatch(dispatchReq(sessionBody('glm-4.7', 's1', turn))),
        r.routing.gateway.dispatch(dispatchReq(sessionBody('glm-4.7', 's2', turn))),
      ]);
      served.s1!.add(d1.accountId);
      served.s2!.add(d2.accountId);
      await Promise.all([drain(d1), drain(d2)]);
    }
    expect(served.s1!.size).toBe(1);
    expect(served.s2!.size).toBe(1);
    expect([...served.s1!][0]).not.toBe([...served.s2!][0]);
    expect(r.zai.calls.filter((c) => c.sessionKey === 's1')).toHaveLength(10);
  });

  test('without a session id the first user message keeps a conversation on its account', async () => {
    const r = rig({ labels: ['a', 'b'] });
    const first = { role: 'user' as const, content: 'refactor the parser' };
    const d0 = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7', { messages: [first] })));
    await drain(d0);
    // Another conversation takes a turn in between and makes a the most recently used.
    const other = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7', { messages: [{ role: 'user', content: 'other' }] })));
    await drain(other);
    const d1 = await r.routing.gateway.dispatch(
      dispatchReq(request('glm-4.7', { messages: [first, { role: 'assistant', content: 'ok' }, { role: 'user', content: 'go on' }] })),
    );
    expect(d1.accountId).toBe(d0.accountId);
    await drain(d1);
  });

  test('a soft-limited account is avoided while a fresh one exists and used when none does', async () => {
    const r = rig({ labels: ['a', 'b'] });
    r.routing.pool.setQuotas(r.accounts[0]!.id, [{ model: '*', remainingFraction: 0.1, resetAt: null, window: '5h' }]);
    r.routing.pool.setQuotas(r.accounts[1]!.id, [{ model: '*', remainingFraction: 0.9, resetAt: null, window: '5h' }]);
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    expect(d.accountId).toBe(r.accounts[1]!.id);
    await drain(d);
    r.routing.pool.report(fakeLease(r, 'b', 'glm-4.7'), { kind: 'error', error: new UpstreamError('rate_limited', 'x', { resetAt: T0 + 600_000 }) });
    const d2 = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7', { messages: [{ role: 'user', content: 'n' }] })));
    expect(d2.accountId).toBe(r.accounts[0]!.id);
    await drain(d2);
  });

  test('a conversation leaves its account once that account falls to the soft floor while another has quota (the floor holds); new ones avoid it', async () => {
    const r = rig({ labels: ['a', 'b'] });
    const d0 = await r.routing.gateway.dispatch(dispatchReq(sessionBody('glm-4.7', 's1', 0)));
    await drain(d0);
    const home = d0.accountId;
    const other = r.accounts.find((a) => a.id !== home)!.id;
    r.routing.pool.setQuotas(home, [{ model: '*', remainingFraction: 0.1, resetAt: null, window: '5h' }]);
    r.routing.pool.setQuotas(other, [{ model: '*', remainingFraction: 0.9, resetAt: null, window: '5h' }]);
    const d1 = await r.routing.gateway.dispatch(dispatchReq(sessionBody('glm-4.7', 's1', 1)));
    expect(d1.accountId).toBe(other);
    await drain(d1);
    const d2 = await r.routing.gateway.dispatch(dispatchReq(sessionBody('glm-4.7', 's1', 2)));
    expect(d2.accountId).toBe(other);
    await drain(d2);
    const fresh = await r.routing.gateway.dispatch(dispatchReq(sessionBody('glm-4.7', 's2', 0)));
    expect(fresh.accountId).toBe(other);
    await drain(fresh);
  });

  test("Claude Code's session title on a model the conversation's account lacks is served elsewhere and leaves the conversation on its account", async () => {
    const r = rig({ labels: ['a', 'b'], models: ['glm-4.7', 'glm-4.5-air'] });
    const tools = [{ name: 'Bash', description: 'run a command', input_schema: { type: 'object' as const, properties: {} } }];
    const main = (turn: number) => ({ ...sessionBody('glm-4.7', 's1', turn), tools });
    const d0 = await r.routing.gateway.dispatch(dispatchReq(main(0)));
    await drain(d0);
    const home = d0.accountId;
    r.zai.answer = (c) => (c.model === 'glm-4.5-air' && c.accountId === home ? { error: new UpstreamError('no_access', 'plan lacks the model', { status: 403 }) } : {});
    // The title: no tools, no answer yet, a small model.
    const title = await r.routing.gateway.dispatch(dispatchReq(sessionBody('glm-4.5-air', 's1', 0)));
    expect(title.accountId).not.toBe(home);
    await drain(title);
    const d1 = await r.routing.gateway.dispatch(dispatchReq(main(1)));
    expect(d1.accountId).toBe(home);
    await drain(d1);
  });

  test('each attempt is told the failovers before it, so a request that fails in the end is recorded with them', async () => {
    const r = rig({ labels: ['a', 'b'] });
    r.zai.answer = (_c, n) => ({ error: n === 1 ? new UpstreamError('transient', 'upstream 500', { status: 500 }) : new UpstreamError('bad_request', 'prompt is too long', { status: 400 }) });
    const seen: Array<{ failovers: number; failoverReasons: readonly string[]; fallbackFrom: string | null }> = [];
    const req = { ...dispatchReq(request('glm-4.7')), onAttempt: (a: (typeof seen)[number]) => seen.push({ failovers: a.failovers, failoverReasons: [...a.failoverReasons], fallbackFrom: a.fallbackFrom }) };
    const e = await rejection(r.routing.gateway.dispatch(req));
    expect(e.status).toBe(400);
    expect(seen).toEqual([
      { failovers: 0, failoverReasons: [], fallbackFrom: null },
      { failovers: 1, failoverReasons: ['a:transient'], fallbackFrom: null },
    ]);
  });

  test('a conversation whose account fails once (5xx) is served elsewhere for that turn and comes back next turn', async () => {
    const r = rig({ labels: ['a', 'b'] });
    const d0 = await r.routing.gateway.dispatch(dispatchReq(mainTurn('s1', 0)));
    await drain(d0);
    const home = d0.accountId;
    const failAt = r.zai.calls.length + 1;
    r.zai.answer = (_c, n) => (n === failAt ? { error: new UpstreamError('transient', 'upstream 500', { status: 500 }) } : {});
    const d1 = await r.routing.gateway.dispatch(dispatchReq(mainTurn('s1', 1)));
    expect(d1.accountId).not.toBe(home);
    await drain(d1);
    const d2 = await r.routing.gateway.dispatch(dispatchReq(mainTurn('s1', 2)));
    expect(d2.accountId).toBe(home);
    await drain(d2);
  });

  for (const [name, error] of [
    ['a 10 s rate limit', new UpstreamError('rate_limited', 'slow', { status: 429, resetAt: T0 + 10_000 })],
    ['a 5xx', new UpstreamError('transient', 'upstream 500', { status: 500 })],
  ] as const) {
    test(`${name} on the first request of a new conversation: the account that serves it keeps the conversation, also after the limit`, async () => {
      // The first account never served it, so it holds none of its cache: the one that served does.
      const r = rig({ labels: ['a', 'b'] });
      r.zai.answer = (_c, n) => (n === 1 ? { error } : {});
      const d0 = await r.routing.gateway.dispatch(dispatchReq(mainTurn('s1', 0)));
      expect(r.zai.calls.map((c) => c.label)).toEqual(['a', 'b']);
      await drain(d0);
      r.clock.advance(20_000);
      const d1 = await r.routing.gateway.dispatch(dispatchReq(mainTurn('s1', 1)));
      expect(d1.accountId).toBe(d0.accountId);
      await drain(d1);
    });
  }

  test('a conversation whose account hits a long rate limit moves, and stays on its new account', async () => {
    const r = rig({ labels: ['a', 'b'] });
    const d0 = await r.routing.gateway.dispatch(dispatchReq(sessionBody('glm-4.7', 's1', 0)));
    await drain(d0);
    const home = d0.accountId;
    const failAt = r.zai.calls.length + 1;
    r.zai.answer = (_c, n) => (n === failAt ? { error: new UpstreamError('rate_limited', 'slow', { status: 429, resetAt: T0 + 5 * 60_000 }) } : {});
    const d1 = await r.routing.gateway.dispatch(dispatchReq(sessionBody('glm-4.7', 's1', 1)));
    expect(d1.accountId).not.toBe(home);
    await drain(d1);
    r.clock.advance(6 * 60_000); // the limit is over: the conversation's cache is on its new account now
    const d2 = await r.routing.gateway.dispatch(dispatchReq(sessionBody('glm-4.7', 's1', 2)));
    expect(d2.accountId).toBe(d1.accountId);
    await drain(d2);
  });

  test('a conversation whose account hits a 10 s rate limit is served elsewhere once, then goes home', async () => {
    const r = rig({ labels: ['a', 'b'] });
    const d0 = await r.routing.gateway.dispatch(dispatchReq(mainTurn('s1', 0)));
    await drain(d0);
    const home = d0.accountId;
    const failAt = r.zai.calls.length + 1;
    r.zai.answer = (_c, n) => (n === failAt ? { error: new UpstreamError('rate_limited', 'slow', { status: 429, resetAt: T0 + 10_000 }) } : {});
    const d1 = await r.routing.gateway.dispatch(dispatchReq(mainTurn('s1', 1)));
    expect(d1.accountId).not.toBe(home);
    await drain(d1);
    r.clock.advance(20_000); // the throttle is over: the cache is still on the home account
    const d2 = await r.routing.gateway.dispatch(dispatchReq(mainTurn('s1', 2)));
    expect(d2.accountId).toBe(home);
    await drain(d2);
  });

  /** A conversation on its home account, then both accounts briefly throttled: home until +2.5 s, the other until +1 s. */
  async function homeThrottledPastOther(maxWaitSec: number) {
    const r = rig({ labels: ['a', 'b'], config: { maxWaitSec } });
    const d0 = await r.routing.gateway.dispatch(dispatchReq(sessionBody('glm-4.7', 's1', 0)));
    await drain(d0);
    const home = d0.accountId;
    const other = r.accounts.find((a) => a.id !== home)!;
    const limit = (label: string, resetAt: number) =>
      r.routing.pool.report(fakeLease(r, label, 'glm-4.7'), { kind: 'error', error: new UpstreamError('rate_limited', 'x', { resetAt }) });
    limit(r.accounts.find((a) => a.id === home)!.label, T0 + 2_500);
    limit(other.label, T0 + 1_000);
    return { r, home, other };
  }

  test('every account throttled briefly, the home one a moment after the other: the request waits for home and is served there', async () => {
    const { r, home } = await homeThrottledPastOther(60);
    const d1 = await r.routing.gateway.dispatch(dispatchReq(sessionBody('glm-4.7', 's1', 1)));
    expect(d1.accountId).toBe(home);
    expect(r.clock.sleeps).toHaveLength(1);
    expect(r.clock.sleeps[0]!).toBeGreaterThanOrEqual(2_500);
    await drain(d1);
  });

  test('every account throttled briefly, home past the wait budget but the other within it: the request waits for the other, not a 429', async () => {
    const { r, other } = await homeThrottledPastOther(2);
    const d1 = await r.routing.gateway.dispatch(dispatchReq(sessionBody('glm-4.7', 's1', 1)));
    expect(d1.accountId).toBe(other.id);
    expect(r.clock.sleeps).toHaveLength(1);
    expect(r.clock.sleeps[0]!).toBeLessThan(2_000);
    await drain(d1);
  });

  test('every account throttled briefly and no wait allowed: the 429 tells the earliest reset, not home\'s', async () => {
    const { r, other } = await homeThrottledPastOther(0);
    const err = await r.routing.gateway.dispatch(dispatchReq(sessionBody('glm-4.7', 's1', 1))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).headers['retry-after']).toBe('1');
    expect(r.clock.sleeps).toHaveLength(0);
  });

  test('--no-soft-limit: quota does not steer selection', async () => {
    const r = rig({ labels: ['a', 'b'], config: { softLimitEnabled: false } });
    r.routing.pool.setQuotas(r.accounts[0]!.id, [{ model: '*', remainingFraction: 0.05, resetAt: null }]);
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    expect(d.accountId).toBe(r.accounts[0]!.id);
    await drain(d);
  });
});

function fakeLease(r: ReturnType<typeof rig>, label: string, model: string) {
  const account = r.accounts.find((a) => a.label === label)!;
  return { account, provider: 'zai' as const, model, sticky: false, soft: false, release() {} };
}

test('a client gone before the stream is read still ends the lease', async () => {
  const r = rig({ labels: ['a'] });
  const ac = new AbortController();
  const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'), {}, ac.signal));
  expect(r.routing.pool.inFlight(d.accountId)).toBe(1);
  ac.abort();
  await (d.events as AsyncGenerator).return?.(undefined);
  expect(r.routing.pool.inFlight(d.accountId)).toBe(0);
});

describe('the final client error for each upstream failure', () => {
  const NOW = T0;
  const MAX_WAIT = 120_000;
  const rows: Array<[string, UpstreamError, number, string, Record<string, string>]> = [
    ['bad request', new UpstreamError('bad_request', 'prompt is too long'), 400, 'invalid_request_error', {}],
    ['unknown model', new UpstreamError('not_found', 'no such model'), 404, 'not_found_error', {}],
    ['short rate limit: retryable 429', new UpstreamError('rate_limited', 'slow', { resetAt: NOW + 7_000 }), 429, 'rate_limit_error', { 'retry-after': '7' }],
    [
      'long quota: final 429',
      new UpstreamError('quota_exhausted', 'weekly', { resetAt: NOW + 3 * 3_600_000 }),
      429,
      'rate_limit_error',
      { 'retry-after': '10800', 'x-should-retry': 'false' },
    ],
    ['capacity: 529 overloaded', new UpstreamError('capacity', 'no capacity'), 529, 'overloaded_error', {}],
    // authentication_error would tell Claude Code its key to the proxy is wrong; the account's is.
    ['upstream credentials rejected: a retryable 503, never authentication_error', new UpstreamError('auth', 'expired'), 503, 'api_error', {}],
    ['dead account: a 503 not to retry (403 would send Claude Code users to /login)', new UpstreamError('invalid_account', 'banned'), 503, 'api_error', { 'x-should-retry': 'false' }],
    ['5xx / network: retryable 502', new UpstreamError('transient', 'reset'), 502, 'api_error', {}],
  ];
  for (const [name, e, status, type, headers] of rows) {
    test(name, () => {
      const api = clientErrorFor(e, 'glm-4.7', NOW, MAX_WAIT);
      expect(api.status).toBe(status);
      expect(api.type as string).toBe(type);
      expect(api.headers).toEqual(headers);
    });
  }

  const limitRows: Array<[string, LimitKind, number, number, string, Record<string, string>]> = [
    ['capacity, short: 529 with retry-after', 'capacity', 8_000, 529, 'overloaded_error', { 'retry-after': '8' }],
    ['capacity past MAX_WAIT: still a retryable 529', 'capacity', 600_000, 529, 'overloaded_error', { 'retry-after': '600' }],
    ['throttle within MAX_WAIT: retryable 429', 'rate_limited', 5_000, 429, 'rate_limit_error', { 'retry-after': '5' }],
    ['throttle past MAX_WAIT: final 429', 'rate_limited', 600_000, 429, 'rate_limit_error', { 'retry-after': '600', 'x-should-retry': 'false' }],
    ['quota within MAX_WAIT (a short Google quota reset): retryable 429', 'quota_exhausted', 30_000, 429, 'rate_limit_error', { 'retry-after': '30' }],
    ['quota past MAX_WAIT: final 429', 'quota_exhausted', 7_200_000, 429, 'rate_limit_error', { 'retry-after': '7200', 'x-should-retry': 'false' }],
    // A 429 would have Claude Code tell the user of a rate limit while the upstream is failing.
    ['cool-down after 5xx, even past MAX_WAIT: a retryable 503, not a rate limit', 'transient', 600_000, 503, 'api_error', { 'retry-after': '600' }],
  ];
  for (const [name, kind, wait, status, type, headers] of limitRows) {
    test(`every account limited: ${name}`, () => {
      const api = limitedError('glm-4.7', kind, NOW + wait, NOW, MAX_WAIT);
      expect(api.status).toBe(status);
      expect(api.type as string).toBe(type);
      expect(api.headers).toEqual(headers);
      expect(api.message).toContain(new Date(NOW + wait).toISOString());
    });
  }

  test('every account limited, by one kind or several: the message names each kind that keeps them out, that of the account free first leading', () => {
    const alone = limitedError('glm-4.7', 'capacity', NOW + 10_000, NOW, MAX_WAIT);
    expect(alone.message).toContain('Upstream overloaded for glm-4.7: every account is resting after an upstream overload, retry after 10s.');
    const mixed = limitedError('glm-4.7', 'capacity', NOW + 10_000, NOW, MAX_WAIT, undefined, ['rate_limited', 'quota_exhausted', 'capacity']);
    expect(mixed.status).toBe(529);
    expect(mixed.message).toContain('every account is resting after an upstream overload, rate limited or out of quota, retry after 10s.');
    const throttled = limitedError('glm-4.7', 'rate_limited', NOW + 5_000, NOW, MAX_WAIT, undefined, ['transient', 'rate_limited']);
    expect(throttled.status).toBe(429);
    expect(throttled.message).toContain('Rate limited on glm-4.7: every account is rate limited or resting after repeated upstream failures, retry after 5s.');
    expect(limitedError('glm-4.7', 'quota_exhausted', NOW + 5_000, NOW, MAX_WAIT).message).toContain('every account is rate limited, retry after 5s.');
  });

  test('the exhausted message names RESOURCE_EXHAUSTED, the wait and the reset instant', () => {
    const api = exhaustedError('claude-opus-4-6-thinking', NOW + 3_723_000, NOW);
    expect(api.message).toBe(
      `RESOURCE_EXHAUSTED: Rate limited on claude-opus-4-6-thinking. Quota will reset after 1h2m3s. Next available: ${new Date(NOW + 3_723_000).toISOString()}`,
    );
    expect(formatWait(59_001)).toBe('1m0s');
    expect(formatWait(0)).toBe('1s');
  });
});

test("a provider's own ApiError for a bad request reaches the client unchanged", async () => {
  const r = rig({ labels: ['a', 'b'] });
  r.zai.send = () => {
    throw new ApiError('invalid_request_error', 'tools.0.input_schema: not an object');
  };
  const e = await (async () => {
    try {
      await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    } catch (err) {
      return err as ApiError;
    }
    throw new Error('expected a rejection');
  })();
  expect(e.status).toBe(400);
  expect(e.message).toBe('tools.0.input_schema: not an object');
});

describe('concurrency cap (MAX_CONCURRENT_PER_ACCOUNT)', () => {
  test('a request beyond the cap waits for a running one to end, then is served by that account', async () => {
    const r = rig({ labels: ['a'], config: { maxConcurrentPerAccount: 1 } });
    const first = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    let served = false;
    const second = r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))).then((d) => {
      served = true;
      return d;
    });
    await Bun.sleep(30);
    expect(served).toBe(false);
    expect(r.zai.calls).toHaveLength(1);
    await drain(first);
    const d = await second;
    expect(d.accountId).toBe(r.accounts[0]!.id);
    expect(r.zai.calls).toHaveLength(2);
    await drain(d);
    expect(r.routing.pool.inFlight(d.accountId)).toBe(0);
  });

  test('nothing frees up within MAX_WAIT_SEC: a retryable 529 overloaded_error, with no upstream call', async () => {
    const r = rig({ labels: ['a', 'b'], config: { maxConcurrentPerAccount: 1, maxWaitSec: 1 } });
    const held = [await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))), await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')))];
    expect(new Set(held.map((d) => d.accountId)).size).toBe(2);
    const t0 = performance.now();
    const err = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(900);
    expect(err.status).toBe(529);
    expect(err.type).toBe('overloaded_error');
    expect(err.headers['retry-after']).toBe('1');
    expect(err.message).toContain('MAX_CONCURRENT_PER_ACCOUNT');
    expect(r.zai.calls).toHaveLength(2);
    for (const d of held) await drain(d);
  });

  test('the only account not limited is full: the 529 says the others are limited, not that every account is full', async () => {
    const r = rig({ labels: ['a', 'b'], config: { maxConcurrentPerAccount: 1, maxWaitSec: 60 } });
    r.routing.pool.report(fakeLease(r, 'a', 'glm-4.7'), { kind: 'error', error: new UpstreamError('quota_exhausted', 'x', { resetAt: T0 + 3_600_000 }) });
    const held = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    expect(held.accountId).toBe(r.accounts[1]!.id);
    const err = await rejection(r.routing.gateway.dispatch({ ...dispatchReq(request('glm-4.7')), clientWaitMs: 200 }));
    expect(err.status).toBe(529);
    expect(err.message).toContain('every zai account that can serve glm-4.7 now is serving as many requests as its concurrency cap allows');
    expect(err.message).toContain(`the others are limited, the first until ${new Date(T0 + 3_600_000).toISOString()}`);
    await drain(held);
  });

  test("the slot wait is cut at half the client's own timeout: a 529 it retries, not a timeout", async () => {
    const r = rig({ labels: ['a'], config: { maxConcurrentPerAccount: 1, maxWaitSec: 60 } });
    const held = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    const t0 = performance.now();
    const err = await rejection(r.routing.gateway.dispatch({ ...dispatchReq(request('glm-4.7')), clientWaitMs: 1_000 }));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(450);
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(err.status).toBe(529);
    expect(err.headers['x-should-retry']).toBeUndefined();
    expect(r.zai.calls).toHaveLength(1);
    await drain(held);
  });

  test("a conversation's request overflows to a free account while its own is full, and comes back after", async () => {
    const r = rig({ labels: ['a', 'b'], config: { maxConcurrentPerAccount: 1 } });
    const turn1 = await r.routing.gateway.dispatch(dispatchReq(sessionBody('glm-4.7', 'conv')));
    expect(turn1.accountId).toBe(r.accounts[0]!.id);
    // A parallel request of the same conversation (a subagent, say) while a is busy.
    const parallel = await r.routing.gateway.dispatch(dispatchReq(sessionBody('glm-4.7', 'conv')));
    expect(parallel.accountId).toBe(r.accounts[1]!.id);
    await drain(turn1);
    await drain(parallel);
    const turn2 = await r.routing.gateway.dispatch(dispatchReq(sessionBody('glm-4.7', 'conv', 1)));
    expect(turn2.accountId).toBe(r.accounts[0]!.id);
    await drain(turn2);
  });

  test('a client that leaves while waiting for a slot costs no upstream call and frees nothing it never had', async () => {
    const r = rig({ labels: ['a'], config: { maxConcurrentPerAccount: 1, maxWaitSec: 60 } });
    const first = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    const ac = new AbortController();
    const waiting = rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'), {}, ac.signal)));
    await Bun.sleep(20);
    ac.abort();
    const err = await waiting;
    expect(err.message).toContain('client closed');
    expect(r.zai.calls).toHaveLength(1);
    expect(r.routing.pool.inFlight(first.accountId)).toBe(1);
    await drain(first);
    expect(r.routing.pool.inFlight(first.accountId)).toBe(0);
  });
});

describe('a server that begins to stop (draining)', () => {
  test('a request waiting for a slot is answered at once with a retryable 529; the one upstream carries on; the wait leaves no listener on the server-wide signal', async () => {
    const r = rig({ labels: ['a'], config: { maxConcurrentPerAccount: 1, maxWaitSec: 60 } });
    const draining = new AbortController();
    const sig = draining.signal;
    const listening = listenerSpy(sig);
    const first = await r.routing.gateway.dispatch({ ...dispatchReq(request('glm-4.7')), draining: sig });
    const waiting = rejection(r.routing.gateway.dispatch({ ...dispatchReq(request('glm-4.7')), draining: sig }));
    await Bun.sleep(20);
    expect(listening.size()).toBe(1);
    const t0 = performance.now();
    draining.abort();
    const err = await waiting;
    expect(performance.now() - t0).toBeLessThan(500);
    expect(err.status).toBe(529);
    expect(err.type).toBe('overloaded_error');
    expect(err.message).toContain('mcp is stopping');
    expect(listening.size()).toBe(0);
    expect(r.zai.calls).toHaveLength(1);
    expect(r.routing.pool.inFlight(first.accountId)).toBe(1);
    await drain(first);
    // Once draining, a request that would have to wait is answered without waiting.
    const held = await r.routing.gateway.dispatch({ ...dispatchReq(request('glm-4.7')), draining: sig });
    const late = await rejection(r.routing.gateway.dispatch({ ...dispatchReq(request('glm-4.7')), draining: sig }));
    expect(late.status).toBe(529);
    await drain(held);
  });
});

describe("requests whose only tool is Anthropic's web search", () => {
  function searchRig(config: Parameters<typeof testConfig>[0] = {}) {
    const { db } = tempDb();
    const clock = fakeClock();
    const account = upsertAccount(db, { provider: 'antigravity', label: 'g', email: 'g@example.com', credentials: { kind: 'oauth', refreshToken: 'refresh-g-0000000000' } }, T0).account;
    const agy = scriptedProvider('antigravity', ['claude-opus-4-6-thinking', 'gemini-3-flash', 'gemini-3.1-flash-lite']);
    const routing = createRouting({ db, config: testConfig(config), providers: { antigravity: agy }, now: clock.now, sleep: clock.sleep });
    return { routing, agy, account };
  }
  const search = (model: string) => request(model, { tools: [{ type: 'web_search_20250305', name: 'web_search' }], tool_choice: { type: 'tool', name: 'web_search' } });

  test('go to the search model, whatever model the client named; other requests stay on theirs', async () => {
    const r = searchRig();
    const d = await r.routing.gateway.dispatch(dispatchReq(search('opus')));
    expect(d.upstreamModel).toBe('gemini-3.1-flash-lite');
    expect(r.agy.calls.at(-1)).toMatchObject({ model: 'gemini-3.1-flash-lite', clientModel: 'opus' });
    await drain(d);
    const plain = await r.routing.gateway.dispatch(dispatchReq(request('opus')));
    expect(plain.upstreamModel).toBe('claude-opus-4-6-thinking');
    await drain(plain);
  });

  test('a GLM session searches with Google when the pool has Google accounts; a Z.AI-only pool keeps it on Z.AI', async () => {
    const { db, path } = tempDb();
    const clock = fakeClock();
    addZai(db, 'z', T0);
    const zai = scriptedProvider('zai', ['glm-4.7']);
    const agy = scriptedProvider('antigravity', ['gemini-3.1-flash-lite']);
    const mixed = createRouting({ db, config: testConfig(), providers: { zai, antigravity: agy }, now: clock.now, sleep: clock.sleep });
    const zaiOnly = await mixed.gateway.dispatch(dispatchReq(search('glm-4.7')));
    expect([zaiOnly.provider, zaiOnly.upstreamModel]).toEqual(['zai', 'glm-4.7']);
    await drain(zaiOnly);
    // Added by the CLI (another connection), as a user would.
    const cli = openDatabase(path);
    upsertAccount(cli, { provider: 'antigravity', label: 'g', email: 'g@example.com', credentials: { kind: 'oauth', refreshToken: 'refresh-g-0000000000' } }, T0);
    cli.close();
    mixed.pool.sync();
    const both = await mixed.gateway.dispatch(dispatchReq(search('glm-4.7')));
    expect([both.provider, both.upstreamModel]).toEqual(['antigravity', 'gemini-3.1-flash-lite']);
    await drain(both);
  });

  test('with --fallback, a search model limited everywhere hands the search to another Gemini', async () => {
    const r = searchRig({ fallback: true, maxWaitSec: 10 });
    const lease = { account: r.account, provider: 'antigravity' as const, model: 'gemini-3.1-flash-lite', sticky: false, soft: false, release() {} };
    r.routing.pool.report(lease, { kind: 'error', error: new UpstreamError('quota_exhausted', 'x', { resetAt: T0 + 600_000 }) });
    const d = await r.routing.gateway.dispatch(dispatchReq(search('opus')));
    expect(d.upstreamModel).toBe('gemini-3-flash');
    expect(r.agy.calls.map((c) => c.model)).toEqual(['gemini-3-flash']);
    await drain(d);
  });
});

describe('accounts whose catalogs differ', () => {
  test("a model only some Google accounts list goes only to those; one nobody lists goes to any (the upstream decides)", async () => {
    const { db } = tempDb();
    const clock = fakeClock();
    const creds = (l: string) => ({ provider: 'antigravity' as const, label: l, email: `${l}@example.com`, credentials: { kind: 'oauth' as const, refreshToken: `FAKE-refresh-${l}` } });
    const pro = upsertAccount(db, creds('pro'), T0).account;
    const free = upsertAccount(db, creds('free'), T0 + 1).account;
    const agy = scriptedProvider('antigravity');
    const routing = createRouting({ db, config: testConfig(), providers: { antigravity: agy }, now: clock.now, sleep: clock.sleep });
    const info = (id: string) => ({ id, displayName: id, family: 'other' as const });
    routing.catalog.setDiscovered(pro.id, 'antigravity', [info('claude-opus-4-6-thinking'), info('gemini-3-flash')]);
    routing.catalog.setDiscovered(free.id, 'antigravity', [info('gemini-3-flash')]);
    for (let i = 0; i < 6; i++) await drain(await routing.gateway.dispatch(dispatchReq(sessionBody('opus', `s${i}`))));
    expect(new Set(agy.calls.map((c) => c.label))).toEqual(new Set(['pro']));
    agy.calls.length = 0;
    for (let i = 0; i < 6; i++) await drain(await routing.gateway.dispatch(dispatchReq(sessionBody('gemini-9-unlisted', `t${i}`))));
    expect(new Set(agy.calls.map((c) => c.label))).toEqual(new Set(['pro', 'free']));
  });
});

describe('onAttempt: who answered, for a request that fails in the end', () => {
  test('each upstream call is announced, the failover included, and a refused request names its last account', async () => {
    const r = rig({ labels: ['a', 'b'] });
    r.zai.answer = (c) => (c.label === 'a' ? { error: new UpstreamError('rate_limited', 'slow', { resetAt: T0 + 60_000 }) } : { error: new UpstreamError('bad_request', 'prompt is too long') });
    const seen: string[] = [];
    const label = (id: string) => r.accounts.find((a) => a.id === id)!.label;
    const req = { ...dispatchReq(request('glm-4.7')), onAttempt: (a: { accountId: string; upstreamModel: string }) => seen.push(`${label(a.accountId)}:${a.upstreamModel}`) };
    const err = await rejection(r.routing.gateway.dispatch(req));
    expect(err.status).toBe(400);
    expect(seen).toEqual(['a:glm-4.7', 'b:glm-4.7']);
  });
});

describe('accounts whose catalogs lack the model, while the others are limited', () => {
  function lackingRig(config = testConfig()) {
    const { db } = tempDb();
    const clock = fakeClock();
    const creds = (l: string) => ({ provider: 'antigravity' as const, label: l, email: `${l}@example.com`, credentials: { kind: 'oauth' as const, refreshToken: `FAKE-refresh-${l}` } });
    const pro = upsertAccount(db, creds('pro'), T0).account;
    const free = upsertAccount(db, creds('free'), T0 + 1).account;
    const agy = scriptedProvider('antigravity');
    const routing = createRouting({ db, config, providers: { antigravity: agy }, now: clock.now, sleep: clock.sleep });
    const info = (id: string) => ({ id, displayName: id, family: 'other' as const });
    routing.catalog.setDiscovered(pro.id, 'antigravity', [info('claude-opus-4-6-thinking'), info('gemini-3-flash')]);
    routing.catalog.setDiscovered(free.id, 'antigravity', [info('gemini-3-flash')]);
    return { db, clock, pro, free, agy, routing };
  }

  test('an account that cannot serve the model does not turn "every account is limited" into "no usable account"', async () => {
    const r = lackingRig();
    const lease = { account: r.pro, provider: 'antigravity' as const, model: 'claude-opus-4-6-thinking', sticky: false, soft: false, release() {} };
    r.routing.pool.report(lease, { kind: 'error', error: new UpstreamError('quota_exhausted', 'x', { resetAt: T0 + 600_000 }) });
    const err = await rejection(r.routing.gateway.dispatch(dispatchReq(sessionBody('opus', 's1'))));
    expect(err.status).toBe(429);
    expect(err.type).toBe('rate_limit_error');
    expect(err.headers['retry-after']).toBe('600');
    expect(r.agy.calls).toHaveLength(0);
  });

  test('with the account that has the model out of rotation, the 503 says the other one lacks it, not that it is "active"', async () => {
    const r = lackingRig();
    r.routing.pool.markInvalid(r.pro, 'invalid_grant: log in again');
    const err = await rejection(r.routing.gateway.dispatch(dispatchReq(sessionBody('opus', 's1'))));
    expect(err.status).toBe(503);
    expect(err.message).toContain('pro: invalid (invalid_grant: log in again)');
    expect(err.message).toContain('free: its models do not include claude-opus-4-6-thinking');
    expect(r.agy.calls).toHaveLength(0);
  });

  test('a limit met during the request is waited out as usual, though another account lacks the model', async () => {
    const r = lackingRig(testConfig({ maxWaitSec: 60 }));
    r.agy.answer = (_c, n) => (n === 1 ? { error: new UpstreamError('rate_limited', 'slow down', { resetAt: T0 + 5_000 }) } : {});
    const d = await r.routing.gateway.dispatch(dispatchReq(sessionBody('opus', 's1')));
    await drain(d);
    expect(r.agy.calls.map((c) => c.label)).toEqual(['pro', 'pro']);
    expect(r.clock.sleeps).toHaveLength(1);
  });
});

describe('attempts used up on limits while other accounts are free', () => {
  test('quota errors on MAX_ATTEMPTS accounts in a row are no final "exhausted" answer while an untried account is free', async () => {
    const r = rig({ labels: ['a', 'b', 'c', 'd'], config: { maxAttempts: 2, maxWaitSec: 60 } });
    r.zai.answer = (c) => (c.label === 'a' || c.label === 'b' ? { error: new UpstreamError('quota_exhausted', 'spent', { resetAt: T0 + 5 * 3_600_000 }) } : {});
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(r.zai.calls).toHaveLength(2);
    expect(e.status).toBe(429);
    expect(e.headers['x-should-retry']).toBeUndefined();
    expect(e.headers['retry-after']).toBe('1');
  });

  test('attempts used up on two accounts, each tried again after a wait: the retryable answer counts attempts, not accounts', async () => {
    // What Claude Code showed with two Google accounts throttled every call: "5 accounts in a row
    // answered with a limit (MAX_ATTEMPTS); others can serve" (from a pool of two).
    const r = rig({ labels: ['a', 'b'], config: { maxAttempts: 5, maxWaitSec: 60 } });
    r.zai.answer = () => ({ error: new UpstreamError('rate_limited', 'slow down', { status: 429, resetAt: r.clock.now() + 3_000 }) });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(r.zai.calls).toHaveLength(5);
    expect(e.status).toBe(429);
    expect(e.headers['x-should-retry']).toBeUndefined();
    expect(e.message).not.toMatch(/5 accounts/);
    expect(e.message).toContain('5 attempts');
  });

  test('quota errors on MAX_ATTEMPTS accounts that leave every account limited answer with the earliest reset in the pool, not the last account\'s', async () => {
    const r = rig({ labels: ['a', 'b', 'c'], config: { maxAttempts: 2, maxWaitSec: 60 } });
    const lease = { account: r.accounts[2]!, provider: 'zai' as const, model: 'glm-4.7', sticky: false, soft: false, release() {} };
    r.routing.pool.report(lease, { kind: 'error', error: new UpstreamError('quota_exhausted', 'x', { resetAt: T0 + 2 * 3_600_000 }) });
    r.zai.answer = () => ({ error: new UpstreamError('quota_exhausted', 'spent', { resetAt: T0 + 5 * 3_600_000 }) });
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(r.zai.calls).toHaveLength(2);
    expect(e.status).toBe(429);
    expect(e.headers['retry-after']).toBe(String(2 * 3600));
  });
});

describe('the retry after a credential refresh', () => {
  test('an account limited by a parallel request while its credentials were refreshed: the request moves on, not a 429 with the others free', async () => {
    const r = rig({ labels: ['a', 'b'], config: { maxWaitSec: 60 } });
    r.zai.answer = (c, n) => (c.label === 'a' && n === 1 ? { error: new UpstreamError('auth', 'expired', { status: 401 }) } : {});
    r.zai.refresh = async (account) => {
      const lease = { account, provider: 'zai' as const, model: 'glm-4.7', sticky: false, soft: false, release() {} };
      r.routing.pool.report(lease, { kind: 'error', error: new UpstreamError('quota_exhausted', 'spent', { resetAt: T0 + 5 * 3_600_000 }) });
    };
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    expect(d.accountId).toBe(r.accounts[1]!.id);
    expect(r.zai.calls.map((c) => c.label)).toEqual(['a', 'b']);
    await drain(d);
  });
});

describe('every account tried, some failing, some limited', () => {
  test('a 5xx on one account and a long quota limit on the other: a retryable upstream error, not a final "quota will reset in hours"', async () => {
    const r = rig({ labels: ['a', 'b'], config: { maxWaitSec: 60 } });
    r.zai.answer = (c) =>
      c.label === 'a'
        ? { error: new UpstreamError('transient', 'bad gateway', { status: 502 }) }
        : { error: new UpstreamError('quota_exhausted', 'spent', { resetAt: T0 + 5 * 3_600_000 }) };
    const e = await rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(r.zai.calls.map((c) => c.label)).toEqual(['a', 'b']);
    expect(e.headers['x-should-retry']).toBeUndefined();
    expect(e.status).toBe(502);
  });
});

describe('every free account at its cap while another is limited', () => {
  test('the request is served as soon as the limited account comes free, not after MAX_WAIT_SEC or a slot', async () => {
    const r = rig({ labels: ['a', 'b'], config: { maxConcurrentPerAccount: 1, maxWaitSec: 3 } });
    const held = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    expect(held.accountId).toBe(r.accounts[0]!.id);
    const lease = { account: r.accounts[1]!, provider: 'zai' as const, model: 'glm-4.7', sticky: false, soft: false, release() {} };
    r.routing.pool.report(lease, { kind: 'error', error: new UpstreamError('rate_limited', 'slow down', { resetAt: T0 + 100 }) });
    // The clock the pool reads moves on while the request waits.
    setTimeout(() => r.clock.advance(1_500), 50);
    const t0 = performance.now();
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7', { messages: [{ role: 'user', content: 'other' }] })));
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(d.accountId).toBe(r.accounts[1]!.id);
    await drain(d);
    await drain(held);
  });
});

describe('a conversation bound to an account whose tier lacks the next model', () => {
  test('moves to one account that has it and stays there, instead of spreading over them turn by turn', async () => {
    const { db } = tempDb();
    const clock = fakeClock();
    const creds = (l: string) => ({ provider: 'antigravity' as const, label: l, email: `${l}@example.com`, credentials: { kind: 'oauth' as const, refreshToken: `FAKE-refresh-${l}` } });
    const free = upsertAccount(db, creds('free'), T0).account;
    const pro1 = upsertAccount(db, creds('pro1'), T0 + 1).account;
    const pro2 = upsertAccount(db, creds('pro2'), T0 + 2).account;
    const agy = scriptedProvider('antigravity');
    const routing = createRouting({ db, config: testConfig(), providers: { antigravity: agy }, now: clock.now, sleep: clock.sleep });
    const info = (id: string) => ({ id, displayName: id, family: 'other' as const });
    routing.catalog.setDiscovered(free.id, 'antigravity', [info('gemini-3-flash')]);
    for (const p of [pro1, pro2]) routing.catalog.setDiscovered(p.id, 'antigravity', [info('gemini-3-flash'), info('gemini-3.1-pro-high')]);
    await drain(await routing.gateway.dispatch(dispatchReq(sessionBody('gemini-3-flash', 'conv'))));
    expect(agy.calls.map((c) => c.label)).toEqual(['free']);
    agy.calls.length = 0;
    for (let turn = 1; turn <= 4; turn++) {
      clock.advance(1_000);
      await drain(await routing.gateway.dispatch(dispatchReq(sessionBody('gemini-3.1-pro-high', 'conv', turn))));
    }
    expect(new Set(agy.calls.map((c) => c.label)).size).toBe(1);
    expect(agy.calls[0]!.model).toBe('gemini-3.1-pro-high');
  });
});

describe('a client gone while the first events were read', () => {
  test('frees its slot even though the stream is never pulled', async () => {
    const r = rig({ labels: ['a'], config: { maxConcurrentPerAccount: 1 } });
    const ac = new AbortController();
    // The client leaves while the upstream's first, already buffered events are read.
    r.zai.answer = () => {
      ac.abort();
      return {};
    };
    await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'), {}, ac.signal)).catch(() => {});
    expect(r.routing.pool.inFlight(r.accounts[0]!.id)).toBe(0);
  });
});

describe('the wall clock stepped back while a request waits for a slot', () => {
  test('the wait still ends after MAX_WAIT_SEC of real time', async () => {
    const r = rig({ labels: ['a', 'b'], config: { maxConcurrentPerAccount: 1, maxWaitSec: 2 } });
    const held = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    const lease = { account: r.accounts[1]!, provider: 'zai' as const, model: 'glm-4.7', sticky: false, soft: false, release() {} };
    r.routing.pool.report(lease, { kind: 'error', error: new UpstreamError('rate_limited', 'slow down', { resetAt: T0 + 500 }) });
    setTimeout(() => r.clock.set(T0 - 3_600_000), 50);
    const t0 = performance.now();
    const e = await Promise.race([
      rejection(r.routing.gateway.dispatch(dispatchReq(request('glm-4.7', { messages: [{ role: 'user', content: 'other' }] })))),
      Bun.sleep(4_000).then(() => null),
    ]);
    expect(e?.status).toBe(529);
    expect(performance.now() - t0).toBeLessThan(3_000);
    await drain(held);
  }, 10_000);
});

describe('an auth error after the stream started', () => {
  test('does not take the account out of rotation: the next request refreshes its credentials as usual', async () => {
    const r = rig({ labels: ['a'] });
    r.zai.answer = (_c, n) => (n === 1 ? { error: new UpstreamError('auth', 'token expired', { status: 401 }), after: 2 } : {});
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    await rejection(drain(d));
    expect(findAccount(r.db, 'a')!.status).toBe('active');
    await drain(await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
    expect(r.zai.calls).toHaveLength(2);
  });
});

describe('a quota limit met after the stream started', () => {
  test('with another account free, the error says to retry, not that the quota resets in hours', async () => {
    const r = rig({ labels: ['a', 'b'], config: { maxWaitSec: 60 } });
    r.zai.answer = (c) => (c.label === 'a' ? { error: new UpstreamError('quota_exhausted', 'spent', { resetAt: T0 + 5 * 3_600_000 }), after: 2 } : {});
    const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    const e = await rejection(drain(d));
    expect(e.type).toBe('rate_limit_error');
    expect(e.headers['x-should-retry']).toBeUndefined();
    expect(e.message).not.toContain('Quota will reset');
  });
});

describe('a request waiting for the earliest reset, woken by the pool changing', () => {
  test('woken after the account it tried came free, it is served there, not answered with that account\'s old 429', async () => {
    const { db, path } = tempDb();
    const clock = fakeClock();
    const accounts = ['a', 'b'].map((l, i) => addZai(db, l, T0 + i));
    const zai = scriptedProvider('zai', ['glm-4.7']);
    const sleeps: number[] = [];
    // A real wait: it ends only when the gateway gives it up (the pool changed first).
    const sleep = (ms: number, signal?: AbortSignal) =>
      new Promise<void>((_, reject) => {
        sleeps.push(ms);
        signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
      });
    const routing = createRouting({ db, config: testConfig({ maxWaitSec: 30 }), providers: { zai }, now: clock.now, sleep });
    const pool = routing.pool;
    // b is out for an hour.
    const b = { account: accounts[1]!, provider: 'zai' as const, model: 'glm-4.7', sticky: false, soft: false, release() {} };
    pool.report(b, { kind: 'error', error: new UpstreamError('quota_exhausted', 'spent', { resetAt: T0 + 3_600_000 }) });
    zai.answer = (_c, n) => (n === 1 ? { error: new UpstreamError('rate_limited', 'slow down', { status: 429, resetAt: T0 + 1_000 }) } : {});
    const pending = routing.gateway.dispatch(dispatchReq(request('glm-4.7')));
    while (sleeps.length === 0) await Bun.sleep(1);
    // a's throttle is over (the wait's safety margin is not), and the CLI edits an account.
    clock.set(T0 + 1_200);
    const cli = openDatabase(path);
    updateAccount(cli, accounts[1]!.id, { label: 'b2' });
    cli.close();
    pool.sync();
    const d = await pending;
    expect(d.accountId).toBe(accounts[0]!.id);
    expect(zai.calls).toHaveLength(2);
    await drain(d);
  });
});

describe('failover log lines', () => {
  async function logged(labels: string[]): Promise<string[]> {
    const lines: string[] = [];
    log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
    try {
      const r = rig({ labels });
      r.zai.answer = (c) => (c.label === 'a' ? { error: new UpstreamError('transient', 'connection reset') } : {});
      try {
        await drain(await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
      } catch {
        // the one-account case ends in the failure: only the log is looked at here
      }
    } finally {
      configureLog({ format: 'pretty' });
    }
    return lines.filter((l) => l.includes('failed for glm-4.7'));
  }

  test('"trying another account" is said only when there is another account to try', async () => {
    expect((await logged(['a', 'b']))[0]).toEndWith('; trying another account');
    const alone = await logged(['a']);
    expect(alone).toHaveLength(1);
    expect(alone[0]).not.toContain('trying another account');
    expect(alone[0]).toEndWith('; no other account to try');
  });
});
