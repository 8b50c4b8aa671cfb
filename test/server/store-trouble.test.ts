// Every HTTP surface with a database that cannot be read (locked past its timeout, damaged, its disk
// gone): the pool keeps routing on what it last read, the ops pages say what is wrong, and no
// request turns into a 500.
import { afterEach, expect, test } from 'bun:test';
import type { Database } from 'bun:sqlite';
import { createApp } from '../../src/server/app.ts';
import { assembleServer } from '../../src/cli/serve.ts';
import { type DashboardData, renderDashboard } from '../../src/server/dashboard.ts';
import { addZai, cleanupDbs, rig, type Rig, T0, tempDb, testConfig } from '../gateway/helpers.ts';
import { usageRecord } from '../usage-record.ts';
import { UpstreamError } from '../../src/providers/provider.ts';
import { openDatabase } from '../../src/store/db.ts';
import { findAccount } from '../../src/store/accounts.ts';

afterEach(cleanupDbs);

const KEY = 'test-key-123456';

/** Every read of `db` fails as a locked database does, until healed. */
function breakReads(db: Database): { heal(): void } {
  const query = db.query.bind(db);
  let broken = true;
  db.query = ((sql: string) => {
    if (broken) throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    return query(sql);
  }) as Database['query'];
  return { heal: () => void (broken = false) };
}

function serve(r: Rig) {
  const app = createApp({ config: r.config, gateway: r.routing.gateway, ops: r.routing.ops });
  app.listen({ port: 0, hostname: '127.0.0.1' });
  return { base: `http://127.0.0.1:${app.server!.port}`, stop: () => void app.stop(true) };
}

test('with a database that cannot be read, every endpoint still answers from what the pool last read, and /health says why', async () => {
  const r = rig({ labels: ['a', 'b'] });
  const s = serve(r);
  const store = breakReads(r.db);
  try {
    const get = (path: string, method = 'GET', body?: string) =>
      fetch(s.base + path, { method, headers: { 'x-api-key': KEY, 'content-type': 'application/json' }, body });
    for (const [method, path, body] of [
      ['GET', '/health'],
      ['GET', '/account-limits'],
      ['GET', '/account-limits?format=table'],
      ['GET', '/dashboard'],
      ['GET', '/v1/models'],
      ['GET', '/v1/models/glm-4.7'],
      ['GET', '/metrics'],
      ['POST', '/v1/messages', JSON.stringify({ model: 'glm-4.7', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })],
    ] as const) {
      const res = await get(path, method, body);
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
      await res.arrayBuffer();
    }
    const health = (await (await get('/health')).json()) as Record<string, unknown>;
    expect(health.status).toBe('degraded');
    expect(health.storeError).toBe('cannot read the database: database is locked');
    expect(health.accounts).toMatchObject({ total: 2, ok: 2 });
    expect(await (await get('/dashboard')).text()).toContain('cannot read the database: database is locked');
    // Refreshing writes nothing the store must read first: it is done, per account.
    const refreshed = await get('/refresh-token', 'POST');
    expect(refreshed.status).toBe(200);

    store.heal();
    // It is read again a few seconds later (a locked store holds each read for busy_timeout).
    r.clock.advance(5_000);
    const again = (await (await get('/health')).json()) as Record<string, unknown>;
    expect(again.status).toBe('ok');
    expect(again.storeError).toBeUndefined();
  } finally {
    s.stop();
  }
});

test('with usage rows the database will not take (a full disk), /health is degraded and says why, and the dashboard too; both clear once written', async () => {
  const { db } = tempDb();
  addZai(db, 'a');
  const { recorder, app, routing } = await assembleServer(db, testConfig());
  try {
    const health = async () => (await (await app.handle(new Request('http://proxy/health'))).json()) as Record<string, unknown>;
    expect((await health()).status).toBe('ok');
    // Any failure that is not a passing lock is reported at once (SQLite's own words for a full disk vary).
    db.exec('ALTER TABLE usage RENAME TO usage_away');
    recorder.record(usageRecord());
    recorder.flush();
    const h = await health();
    expect(h.status).toBe('degraded');
    expect(h.usageError).toMatch(/^cannot write usage to the database: no such table: usage \(1 record\(s\) waiting in memory\)$/);
    expect(renderDashboard(routing.ops.health(true) as unknown as DashboardData, Date.now())).toContain('cannot write usage to the database');
    db.exec('ALTER TABLE usage_away RENAME TO usage');
    expect(recorder.flush()).toBe(1);
    const healed = await health();
    expect(healed.status).toBe('ok');
    expect(healed.usageError).toBeUndefined();
  } finally {
    recorder.stop();
    await routing.stop();
  }
});

test('with limits the database will not store (locked for long), /health is degraded and says why, and the dashboard too; ok again once stored', async () => {
  const r = rig({ labels: ['a', 'b'] });
  const s = serve(r);
  const other = openDatabase(r.path);
  try {
    const health = async () => (await (await fetch(`${s.base}/health`)).json()) as Record<string, unknown>;
    other.exec('BEGIN IMMEDIATE');
    const account = r.accounts[0]!;
    r.routing.pool.report(
      { account, provider: 'zai', model: 'glm-4.7', sticky: false, soft: false, release() {} },
      { kind: 'error', error: new UpstreamError('rate_limited', 'slow down', { resetAt: T0 + 600_000 }) },
    );
    // A lock held a moment is routine (the CLI writing): not yet worth a "degraded".
    expect(await health()).toMatchObject({ status: 'ok' });
    // Still locked 5 s later, at the next retry round.
    r.clock.advance(5_000);
    r.routing.pool.report(
      { account, provider: 'zai', model: 'glm-4.6', sticky: false, soft: false, release() {} },
      { kind: 'error', error: new UpstreamError('rate_limited', 'slow down', { resetAt: T0 + 600_000 }) },
    );
    const h = await health();
    expect(h.status).toBe('degraded');
    expect(h.writeError).toBe('cannot store account limits and states in the database: database is locked (2 change(s) waiting in memory)');
    expect(renderDashboard(r.routing.ops.health(true) as unknown as DashboardData, r.clock.now())).toContain('cannot store account limits and states in the database');

    other.exec('COMMIT');
    // The next write that lands, and nothing is left waiting: ok again.
    r.routing.pool.report(
      { account, provider: 'zai', model: 'glm-4.6', sticky: false, soft: false, release() {} },
      { kind: 'error', error: new UpstreamError('rate_limited', 'slow down', { resetAt: T0 + 600_000 }) },
    );
    expect((await health()).writeError).toMatch(/\(1 change\(s\) waiting in memory\)$/);
    r.routing.pool.report(
      { account, provider: 'zai', model: 'glm-4.7', sticky: false, soft: false, release() {} },
      { kind: 'error', error: new UpstreamError('rate_limited', 'slow down', { resetAt: T0 + 600_000 }) },
    );
    const healed = await health();
    expect(healed.status).toBe('ok');
    expect(healed.writeError).toBeUndefined();
  } finally {
    other.close();
    s.stop();
  }
});

test('with an account change a provider learnt that the database will not store (read-only), /health is degraded and says why; ok once one is stored', async () => {
  const { db } = tempDb();
  const account = addZai(db, 'a');
  const { recorder, app, routing, providerDeps } = await assembleServer(db, testConfig());
  try {
    const health = async () => (await (await app.handle(new Request('http://proxy/health'))).json()) as Record<string, unknown>;
    expect((await health()).status).toBe('ok');
    db.exec('PRAGMA query_only = ON');
    // A refreshed token (a rotated refresh token) is what a restart could not do without.
    providerDeps.updateAccount(account.id, { meta: { plan: 'pro' } });
    const h = await health();
    expect(h.status).toBe('degraded');
    expect(h.writeError).toBe('cannot store account limits and states in the database: attempt to write a readonly database (1 account change(s) waiting in memory)');
    db.exec('PRAGMA query_only = OFF');
    providerDeps.updateAccount(account.id, { meta: { plan: 'max' } });
    const healed = await health();
    expect(healed.status).toBe('ok');
    expect(healed.writeError).toBeUndefined();
    expect(findAccount(db, account.id)?.meta.plan).toBe('max');
  } finally {
    recorder.stop();
    await routing.stop();
  }
});
