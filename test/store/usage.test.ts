// The usage table over time: pruning a big backlog must not leave the database's WAL file that big,
// and `mcp usage` groups rows under names a person can read.
import { afterAll, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../../src/store/db.ts';
import { insertUsage, pruneUsage, summarizeUsage, type UsageRecord } from '../../src/store/usage.ts';

const dir = mkdtempSync(join(tmpdir(), 'mcp-usage-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const row = (i: number): UsageRecord => ({
  ts: i,
  requestId: `req_${i.toString(16).padStart(24, '0')}`,
  accountId: 'acc_0000abcd',
  provider: 'antigravity',
  clientModel: 'claude-opus-4-6',
  upstreamModel: 'claude-opus-4-6-thinking',
  status: 200,
  latencyMs: 1234,
  inputTokens: 50_000,
  outputTokens: 800,
  cacheReadTokens: 40_000,
  cacheCreationTokens: 0,
  stream: true,
  fallbackFrom: null,
  failovers: 0,
  errorType: null,
});

test('after one big write (a backlog pruned at once) the WAL file shrinks back, it does not stay that size', () => {
  // Without a journal size limit SQLite reuses the WAL file but never truncates it while the server
  // runs: a prune of a year's rows left ~250 MB beside the database until the next restart.
  const path = join(dir, 'proxy.db');
  const db = openDatabase(path);
  insertUsage(db, Array.from({ length: 80_000 }, (_, i) => row(i)));
  expect(pruneUsage(db, 80_000)).toBe(80_000);
  expect(statSync(`${path}-wal`).size).toBeGreaterThan(10 * 1024 * 1024);
  // The next writes after the automatic checkpoint start the WAL over, cut to the limit.
  insertUsage(db, [row(1)]);
  insertUsage(db, [row(2)]);
  expect(statSync(`${path}-wal`).size).toBeLessThanOrEqual(8 * 1024 * 1024);
  db.close();
});

test('by model, requests that never named a model (a body that was not JSON) group under "-", not a blank name', () => {
  // `mcp usage --by model` printed an empty first cell for them, where --by account and provider print "-".
  const db = openDatabase(join(dir, 'by-model.db'));
  insertUsage(db, [row(1), { ...row(2), clientModel: '', accountId: null, provider: null, status: 400, errorType: 'invalid_request_error' }]);
  const keys = summarizeUsage(db, 0, 'model').map((r) => r.key);
  expect(keys.sort()).toEqual(['-', 'claude-opus-4-6']);
  db.close();
});

test('a model name a client made up thousands of characters long is stored cut to 200, not whole in every row', () => {
  const db = openDatabase(join(dir, 'long-model.db'));
  const long = `claude-${'x'.repeat(5000)}`;
  insertUsage(db, [{ ...row(1), clientModel: long, upstreamModel: long, fallbackFrom: long }]);
  const r = db.query('SELECT client_model AS c, upstream_model AS u, fallback_from AS f FROM usage').get() as { c: string; u: string; f: string };
  expect([r.c.length, r.u.length, r.f.length]).toEqual([200, 200, 200]);
  expect(r.c).toBe(long.slice(0, 200));
  expect(summarizeUsage(db, 0, 'model')[0]!.key).toHaveLength(200);
  db.close();
});
