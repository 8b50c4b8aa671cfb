import { afterEach, expect, test } from 'bun:test';
import { ApiError } from '../../src/anthropic/errors.ts';
import { createRouting } from '../../src/gateway/index.ts';
import { quotaCell, textTable } from '../../src/gateway/ops.ts';
import { registerSecret } from '../../src/log.ts';
import { UpstreamError } from '../../src/providers/provider.ts';
import { findAccount, updateAccount } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';
import { cleanupDbs, dispatchReq, drain, request, rig, scriptedProvider, T0, tempDb, testConfig } from './helpers.ts';

afterEach(cleanupDbs);

function limitA(r: ReturnType<typeof rig>, model: string, resetAt: number) {
  const account = r.accounts[0]!;
  r.routing.pool.report(
    { account, provider: 'zai', model, sticky: false, soft: false, release() {} },
    { kind: 'error', error: new UpstreamError('rate_limited', 'slow down', { resetAt }) },
  );
}

test('health without the key: status and counts only', () => {
  const r = rig();
  limitA(r, 'glm-4.7', T0 + 60_000);
  const h = r.routing.ops.health(false);
  expect(h.status).toBe('ok');
  expect(h.accounts).toEqual({ total: 3, ok: 2, limited: 0, partly_limited: 1, invalid: 0, disabled: 0 });
  expect(h.accountDetails).toBeUndefined();
  expect(JSON.stringify(h)).not.toContain('key-a');
});

test('health with the key: per-account state, limits and quota, never a credential', () => {
  const r = rig();
  limitA(r, 'glm-4.7', T0 + 60_000);
  r.routing.pool.setQuotas(r.accounts[1]!.id, [{ model: '*', remainingFraction: 0.42, resetAt: T0 + 3_600_000, window: '5h' }]);
  const h = r.routing.ops.health(true) as { accountDetails: Array<Record<string, unknown>> };
  const [a, b] = h.accountDetails;
  expect(a).toMatchObject({ label: 'a', state: 'partly_limited', status: 'active' });
  expect(a!.limits).toEqual([
    { model: 'glm-4.7', kind: 'rate_limited', resetAt: new Date(T0 + 60_000).toISOString(), resetInSec: 60, reason: 'slow down' },
  ]);
  expect(b!.quota).toEqual([
    { model: '*', window: '5h', remaining: '42%', remainingFraction: 0.42, resetAt: new Date(T0 + 3_600_000).toISOString(), fetchedAt: new Date(T0).toISOString() },
  ]);
  expect(JSON.stringify(h)).not.toContain('key-');
});

test('health says unavailable when no account can serve, no_accounts when there are none', () => {
  const r = rig({ labels: ['a'] });
  r.routing.pool.markInvalid(r.accounts[0]!, 'revoked');
  expect(r.routing.ops.health(false).status).toBe('unavailable');
  const { db } = tempDb();
  const empty = createRouting({ db, config: testConfig(), providers: { zai: scriptedProvider('zai') }, now: () => T0 });
  expect(empty.ops.health(false).status).toBe('no_accounts');
});

test('an account the user disabled does not make the pool "degraded"; every account disabled is "unavailable"', () => {
  const r = rig({ labels: ['a', 'b'] });
  const cli = openDatabase(r.path);
  try {
    updateAccount(cli, r.accounts[1]!.id, { status: 'disabled', statusReason: 'disabled by user' }, T0);
    const h = r.routing.ops.health(false);
    expect(h.accounts).toMatchObject({ total: 2, ok: 1, disabled: 1 });
    expect(h.status).toBe('ok');
    updateAccount(cli, r.accounts[0]!.id, { status: 'disabled', statusReason: 'disabled by user' }, T0);
    expect(r.routing.ops.health(false).status).toBe('unavailable');
  } finally {
    cli.close();
  }
});

test('an account-wide limit makes the account "limited"', () => {
  const r = rig({ labels: ['a', 'b'] });
  limitA(r, '*', T0 + 1000);
  const h = r.routing.ops.health(false);
  expect(h.status).toBe('degraded');
  expect((h.accounts as Record<string, number>).limited).toBe(1);
});

test('account limits as an aligned text table', () => {
  const r = rig();
  limitA(r, 'glm-4.7', T0 + 90_000);
  r.routing.pool.setQuotas(r.accounts[1]!.id, [{ model: '*', remainingFraction: 0.5, resetAt: null, window: 'weekly' }]);
  const lines = r.routing.ops.accountLimitsTable().trimEnd().split('\n');
  expect(lines[0]).toMatch(/^ACCOUNT\s+PROVIDER\s+STATE\s+REASON\s+IN FLIGHT\s+LIMITS \(reset in\)\s+QUOTA LEFT$/);
  expect(lines[1]).toMatch(/^a\s+zai\s+partly_limited\s+-\s+0\s+glm-4\.7 rate_limited 1m30s\s+-$/);
  expect(lines[2]).toMatch(/^b\s+zai\s+ok\s+-\s+0\s+-\s+weekly 50%$/);
  const col = lines[0]!.indexOf('STATE');
  expect(lines.slice(1).every((l) => l.slice(col).match(/^\S/))).toBe(true);
});

test('an account that needs verifying shows where to verify it in the text table, as it does in the JSON and the dashboard', () => {
  const r = rig({ labels: ['a'] });
  r.routing.pool.markInvalid(r.accounts[0]!, 'Google wants the account verified', 'https://accounts.example.com/verify?x=1');
  const lines = r.routing.ops.accountLimitsTable().trimEnd().split('\n');
  expect(lines[1]).toMatch(/^a\s+zai\s+invalid\s+Google wants the account verified \(verify at https:\/\/accounts\.example\.com\/verify\?x=1\)\s+0\s+-\s+-$/);
});

test("the quota cell names a group's shared window once, by the models' families", () => {
  const window = (model: string, w: string, f: number) => ({ model, window: w, remainingFraction: f });
  expect(
    quotaCell([
      { model: 'claude-sonnet-4-6', window: '', remainingFraction: 1 },
      window('claude-sonnet-4-6', 'weekly', 0.03),
      window('gpt-oss-120b-medium', 'weekly', 0.03),
      window('claude-sonnet-4-6', '5h', 0.98),
      window('gemini-3-flash', '5h', 1),
      window('gemini-pro-agent', '5h', 1),
      { model: 'gemini-3-flash', window: 'weekly', remainingFraction: null },
      { model: '*', window: '5h', remainingFraction: 0.5 },
    ]),
  ).toBe('claude-sonnet-4-6 100%, claude/gpt weekly 3%, claude 5h 98%, gemini 5h 100%, 5h 50%');
});

test('models at the same figure are one line: named when one or two, else counted by family', () => {
  const m = (model: string, f: number) => ({ model, window: null, remainingFraction: f });
  expect(quotaCell([m('claude-opus-4-6-thinking', 0), m('claude-sonnet-4-6', 1), m('gemini-3-flash', 1), m('gpt-oss-120b-medium', 1), m('gemini-pro-agent', 0)])).toBe(
    'claude-opus-4-6-thinking, gemini-pro-agent 0%, claude/gemini/gpt (3 models) 100%',
  );
});

test('account limits as JSON', () => {
  const r = rig();
  limitA(r, 'glm-4.7', T0 + 90_000);
  const j = r.routing.ops.accountLimits() as { accounts: Array<{ label: string; limits: unknown[] }>; summary: { total: number } };
  expect(j.summary.total).toBe(3);
  expect(j.accounts.map((a) => a.limits.length)).toEqual([1, 0, 0]);
});

test('refresh asks the provider for every account or for one; a refresh refused marks it invalid', async () => {
  const r = rig();
  const all = await r.routing.ops.refresh();
  expect(r.zai.refreshes.sort()).toEqual(['a', 'b', 'c']);
  expect(all.ok).toBe(true);
  r.zai.refreshes.length = 0;
  r.zai.refreshFails.add('b');
  const one = await r.routing.ops.refresh('b');
  expect(r.zai.refreshes).toEqual(['b']);
  expect(one.ok).toBe(false);
  expect(findAccount(r.db, 'b')!.status).toBe('invalid');
});

test('refresh of an account that does not exist is a 404 not_found_error, as the server expects', async () => {
  const r = rig();
  const err = await r.routing.ops.refresh('nope').then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  expect(err).toMatchObject({ type: 'not_found_error', status: 404 });
  expect(r.zai.refreshes).toEqual([]);
});

test('refresh also re-reads the quota of the accounts it refreshed, as the README says', async () => {
  const r = rig();
  r.zai.quotas.set('b', [{ model: '*', remainingFraction: 0.37, resetAt: null, window: '5h' }]);
  r.zai.quotas.set('c', [{ model: '*', remainingFraction: 0.9, resetAt: null, window: '5h' }]);
  expect((await r.routing.ops.refresh('b')).ok).toBe(true);
  const quotas = r.routing.pool.state().map((s) => [s.account.label, s.quotas.map((q) => q.remainingFraction)]);
  expect(quotas).toEqual([['a', []], ['b', [0.37]], ['c', []]]);
});

test('metrics count 429s, failovers, fallbacks and expose quota, states and active streams', async () => {
  const r = rig({ labels: ['a', 'b'], config: { fallback: true, maxWaitSec: 1 } });
  r.zai.answer = (c, n) => (c.label === 'a' && n === 1 ? { error: new UpstreamError('rate_limited', 'x', { status: 429, resetAt: T0 + 5000 }) } : {});
  await drain(await r.routing.gateway.dispatch(dispatchReq(request('glm-4.7'))));
  r.routing.pool.setQuotas(r.accounts[1]!.id, [{ model: '*', remainingFraction: 0.25, resetAt: null, window: '5h' }]);
  const d = await r.routing.gateway.dispatch(dispatchReq(request('glm-4.6', { messages: [{ role: 'user', content: 'm' }] })));
  const it = d.events[Symbol.asyncIterator]();
  await it.next();
  const text = r.routing.ops.metrics();
  expect(text).toMatch(/mcp_upstream_rate_limited_total\{[^}]*model="glm-4.7"[^}]*\} \d+/);
  expect(text).toMatch(/mcp_failovers_total\{[^}]*kind="rate_limited"[^}]*\} \d+/);
  expect(text).toMatch(/mcp_quota_remaining_ratio\{account="b",model="\*",window="5h"\} 0.25/);
  expect(text).toMatch(/mcp_accounts\{provider="zai",state="partly_limited"\} 1/);
  expect(text).toMatch(/mcp_active_streams 1/);
  expect(text).toContain('mcp_upstream_first_event_seconds_bucket');
  while (!(await it.next()).done);
  await r.routing.stop();
});

test('textTable pads columns to the widest cell', () => {
  expect(textTable(['A', 'BB'], [['xxx', 'y'], ['z', 'wwww']])).toBe('A    BB\nxxx  y\nz    wwww\n');
});

test('a quota window whose reset has passed shows as full again everywhere, as routing treats it, not the stale figure', () => {
  const r = rig({ labels: ['a'] });
  r.routing.pool.setQuotas(r.accounts[0]!.id, [
    { model: '*', remainingFraction: 0.03, resetAt: T0 + 60_000, window: '5h' },
    { model: '*', remainingFraction: 0.5, resetAt: T0 + 7 * 86_400_000, window: 'weekly' },
  ]);
  r.clock.advance(120_000);
  const h = r.routing.ops.health(true) as { accountDetails: Array<{ quota: unknown[] }> };
  expect(h.accountDetails[0]!.quota).toEqual([
    { model: '*', window: '5h', remaining: '100%', remainingFraction: 1, resetAt: null, fetchedAt: new Date(T0).toISOString() },
    { model: '*', window: 'weekly', remaining: '50%', remainingFraction: 0.5, resetAt: new Date(T0 + 7 * 86_400_000).toISOString(), fetchedAt: new Date(T0).toISOString() },
  ]);
  expect(r.routing.ops.accountLimitsTable()).toContain('5h 100%, weekly 50%');
  expect(r.routing.ops.metrics()).toMatch(/^mcp_quota_remaining_ratio\{account="a",model="\*",window="5h"\} 1$/m);
  const glm = r.routing.gateway.listModels().find((m) => m.id === 'glm-4.7')!;
  expect(glm.quota).toEqual({ remaining_fraction: 0.5, accounts: 1 });
});

test('a reason with line breaks (an upstream message) stays on its row of the text table', () => {
  expect(textTable(['A', 'B'], [['x\n  y', 'z'], ['w', 'v\r\nu']])).toBe('A    B\nx y  z\nw    v u\n');
});

// Last in the file: it fills the process-wide 429 counter's model names, which the tests above read by name.
test('429s for names passed through as asked (claude-* to Z.AI) cannot grow the model label set of the 429 counter without end', async () => {
  const r = rig({ labels: ['a'], config: { maxWaitSec: 0 } });
  r.zai.answer = () => ({ error: new UpstreamError('rate_limited', 'x', { status: 429, resetAt: T0 + 5000 }) });
  for (let i = 0; i < 250; i++) {
    try {
      await drain(await r.routing.gateway.dispatch(dispatchReq(request(`claude-made-up-429-${i}`))));
    } catch {
      // 429 to the client, as expected
    }
  }
  const models = new Set<string>();
  for (const line of r.routing.ops.metrics().split('\n')) {
    const m = /^mcp_upstream_rate_limited_total\{.*model="([^"]*)"/.exec(line);
    if (m) models.add(m[1]!);
  }
  expect(models.size).toBeLessThanOrEqual(202);
  expect(models.has('other')).toBe(true);
});

test('a reason quoting a credential (an upstream echoing it) is stored and shown masked: health, account-limits, the table, the database', () => {
  const r = rig();
  // Built from parts: no token-shaped literal in the source.
  const secret = ['FAKE', 'refresh', 'token', 'abcdef123456'].join('-');
  const shaped = ['ya29', 'FAKE-access-token', 'y'.repeat(16)].join('.');
  registerSecret(secret);
  const account = r.accounts[0]!;
  const lease = { account, provider: 'zai' as const, model: 'glm-4.7', sticky: false, soft: false, release() {} };
  r.routing.pool.report(lease, { kind: 'error', error: new UpstreamError('rate_limited', `slow down, ${shaped}`, { resetAt: T0 + 60_000 }) });
  r.routing.pool.report(lease, { kind: 'error', error: new UpstreamError('invalid_account', `token ${secret} revoked`) });
  const shown = [
    JSON.stringify(r.routing.ops.health(true)),
    JSON.stringify(r.routing.ops.accountLimits()),
    r.routing.ops.accountLimitsTable(),
    JSON.stringify(findAccount(r.db, account.id)),
  ].join('\n');
  expect(shown).toContain('revoked');
  expect(shown).toContain('slow down');
  expect(shown).not.toContain(secret);
  expect(shown).not.toContain(shaped);
});

test("a refresh that failed answers the upstream's words with any credential they quote masked", async () => {
  const r = rig();
  // Built from parts: no token-shaped literal in the source.
  const secret = ['FAKE', 'refresh', 'token', 'fedcba654321'].join('-');
  const shaped = ['ya29', 'FAKE-access-token', 'z'.repeat(16)].join('.');
  registerSecret(secret);
  r.zai.refresh = async () => {
    throw new UpstreamError('transient', `token endpoint said: ${secret} and ${shaped} are not accepted`);
  };
  const got = JSON.stringify(await r.routing.ops.refresh('a'));
  expect(got).toContain('token endpoint said');
  expect(got).not.toContain(secret);
  expect(got).not.toContain(shaped);
});
