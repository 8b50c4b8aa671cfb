// The batched usage recorder: nothing is written per request, batches land together, retention
// prunes old rows, stop() flushes the rest, and a failing database does not lose or throw.
import { afterEach, expect, test } from 'bun:test';
import type { Database } from 'bun:sqlite';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../src/store/db.ts';
import { createUsageRecorder, type UsageRecorder } from '../src/usage-recorder.ts';
import { configureLog, log } from '../src/log.ts';
import { renderMetrics } from '../src/metrics.ts';
import { usageRecord } from './usage-record.ts';
import { lockFromAnotherProcess } from './store/lock-from-another-process.ts';

const dirs: string[] = [];
const open: Array<{ db: Database; rec?: UsageRecorder }> = [];

function fresh(): Database {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-usage-rec-'));
  dirs.push(dir);
  const db = openDatabase(join(dir, 'proxy.db'));
  open.push({ db });
  return db;
}

afterEach(() => {
  for (const o of open.splice(0)) {
    o.rec?.stop();
    try {
      o.db.close();
    } catch {
      // already closed by the test
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The usage records counted as lost so far (the registry is process-wide: tests compare before and after). */
const dropped = () => Number(/^mcp_usage_records_dropped_total (\d+)$/m.exec(renderMetrics())?.[1] ?? 0);
const count = (db: Database) => (db.query('SELECT COUNT(*) AS n FROM usage').get() as { n: number }).n;

test('mcp_usage_records_dropped_total is shown at 0 before any loss, so an alert on its increase sees the first one', async () => {
  // In a process of its own: this one's registry holds whatever earlier tests (any file) dropped.
  const script = `import '${join(import.meta.dir, '..', 'src', 'usage-recorder.ts')}'; import { renderMetrics } from '${join(import.meta.dir, '..', 'src', 'metrics.ts')}'; process.stdout.write(renderMetrics());`;
  const p = Bun.spawn([process.execPath, '-e', script], { stdout: 'pipe', stderr: 'pipe' });
  const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  expect(code).toBe(0);
  expect(out).toMatch(/^mcp_usage_records_dropped_total 0$/m);
});

test('records are queued, not written, until the flush interval', async () => {
  const db = fresh();
  const rec = createUsageRecorder(db, { retentionDays: 30, flushIntervalMs: 60 });
  open[open.length - 1]!.rec = rec;
  rec.record(usageRecord());
  rec.record(usageRecord());
  expect(count(db)).toBe(0);
  expect(rec.pending()).toBe(2);
  await Bun.sleep(150);
  expect(count(db)).toBe(2);
  expect(rec.pending()).toBe(0);
});

test('a full batch is written on the next tick without waiting for the interval', async () => {
  const db = fresh();
  const rec = createUsageRecorder(db, { retentionDays: 30, flushIntervalMs: 60_000, maxBatch: 5 });
  open[open.length - 1]!.rec = rec;
  for (let i = 0; i < 5; i++) rec.record(usageRecord());
  expect(count(db)).toBe(0);
  await Bun.sleep(10);
  expect(count(db)).toBe(5);
});

test('stop() flushes what is still queued, and a second stop is harmless', () => {
  const db = fresh();
  const rec = createUsageRecorder(db, { retentionDays: 30, flushIntervalMs: 60_000 });
  rec.record(usageRecord({ requestId: 'req_last' }));
  rec.stop();
  rec.stop();
  expect(count(db)).toBe(1);
  expect((db.query('SELECT request_id FROM usage').get() as { request_id: string }).request_id).toBe('req_last');
});

test('rows older than the retention are pruned at start and on prune()', () => {
  const db = fresh();
  const now = Date.parse('2026-06-01T00:00:00Z');
  const day = 86_400_000;
  const seed = createUsageRecorder(db, { retentionDays: 3650, flushIntervalMs: 60_000, now: () => now });
  seed.record(usageRecord({ ts: now - 40 * day, requestId: 'old' }));
  seed.record(usageRecord({ ts: now - 10 * day, requestId: 'mid' }));
  seed.record(usageRecord({ ts: now - 1 * day, requestId: 'new' }));
  seed.stop();
  expect(count(db)).toBe(3);

  let clock = now;
  const rec = createUsageRecorder(db, { retentionDays: 30, flushIntervalMs: 60_000, now: () => clock });
  open[open.length - 1]!.rec = rec;
  expect(count(db)).toBe(2); // the 40-day-old row went at start
  clock = now + 25 * day; // "mid" is now 35 days old
  expect(rec.prune()).toBe(1);
  const ids = (db.query('SELECT request_id FROM usage').all() as Array<{ request_id: string }>).map((r) => r.request_id);
  expect(ids).toEqual(['new']);
});

test('a write failure keeps the records for the next flush instead of losing them or throwing', () => {
  const db = fresh();
  const rec = createUsageRecorder(db, { retentionDays: 30, flushIntervalMs: 60_000 });
  open[open.length - 1]!.rec = rec;
  db.exec('ALTER TABLE usage RENAME TO usage_away');
  rec.record(usageRecord());
  rec.record(usageRecord());
  expect(() => rec.flush()).not.toThrow();
  expect(rec.pending()).toBe(2);
  db.exec('ALTER TABLE usage_away RENAME TO usage');
  expect(rec.flush()).toBe(2);
  expect(count(db)).toBe(2);
});

test('the queue is capped while the database keeps refusing writes', () => {
  const db = fresh();
  const rec = createUsageRecorder(db, { retentionDays: 30, flushIntervalMs: 60_000, maxQueue: 3 });
  open[open.length - 1]!.rec = rec;
  db.exec('ALTER TABLE usage RENAME TO usage_away');
  for (let i = 0; i < 10; i++) rec.record(usageRecord());
  rec.flush();
  expect(rec.pending()).toBe(3);
});

test('once records were dropped from a full queue, the trouble it reports says so rather than that they all wait in memory; writes landing clear it', () => {
  const db = fresh();
  const rec = createUsageRecorder(db, { retentionDays: 30, flushIntervalMs: 60_000, maxQueue: 3 });
  open[open.length - 1]!.rec = rec;
  db.exec('ALTER TABLE usage RENAME TO usage_away');
  rec.record(usageRecord());
  rec.flush();
  expect(rec.trouble()).toBe('no such table: usage (1 record(s) waiting in memory)');
  for (let i = 0; i < 4; i++) rec.record(usageRecord());
  rec.flush();
  expect(rec.trouble()).toBe('no such table: usage (3 record(s) waiting in memory; 2 older one(s) dropped, at most 3 are kept)');
  db.exec('ALTER TABLE usage_away RENAME TO usage');
  expect(rec.flush()).toBe(3);
  expect(rec.trouble()).toBeNull();
  db.exec('ALTER TABLE usage RENAME TO usage_away');
  rec.record(usageRecord());
  rec.flush();
  expect(rec.trouble()).toBe('no such table: usage (1 record(s) waiting in memory)');
  db.exec('ALTER TABLE usage_away RENAME TO usage');
});

test('records dropped from a full queue are logged, and a queue that stays full says so at most once a minute', () => {
  const db = fresh();
  let t = 1_000_000;
  const rec = createUsageRecorder(db, { retentionDays: 30, flushIntervalMs: 60_000, maxQueue: 3, now: () => t });
  open[open.length - 1]!.rec = rec;
  const lines: string[] = [];
  log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
  try {
    db.exec('ALTER TABLE usage RENAME TO usage_away');
    for (let i = 0; i < 5; i++) rec.record(usageRecord());
    rec.flush();
    expect(lines.filter((l) => l.includes('dropped'))).toEqual([expect.stringMatching(/^warn: usage: dropped the 2 oldest record\(s\): at most 3/)]);
    rec.record(usageRecord());
    t += 1000;
    rec.flush();
    expect(lines.filter((l) => l.includes('dropped'))).toHaveLength(1);
    rec.record(usageRecord());
    t += 60_000;
    rec.flush();
    expect(lines.filter((l) => l.includes('dropped')).at(-1)).toMatch(/dropped the 2 oldest record\(s\)/);
  } finally {
    configureLog({ format: 'pretty' });
  }
});

test('records the database still refuses at stop are reported as lost, not dropped silently', () => {
  const db = fresh();
  const rec = createUsageRecorder(db, { retentionDays: 30, flushIntervalMs: 60_000 });
  open[open.length - 1]!.rec = rec;
  db.exec('ALTER TABLE usage RENAME TO usage_away');
  rec.record(usageRecord());
  rec.flush();
  rec.record(usageRecord());
  const lines: string[] = [];
  log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
  try {
    rec.stop();
    expect(lines).toEqual([expect.stringMatching(/^warn: usage: 2 record\(s\) could not be written before shutdown and are lost: no such table/)]);
  } finally {
    configureLog({ format: 'pretty' });
  }
});

test('a record arriving after stop is written directly, and never throws once the database is closed (it is counted as dropped)', () => {
  const db = fresh();
  const rec = createUsageRecorder(db, { retentionDays: 30, flushIntervalMs: 60_000 });
  rec.stop();
  rec.record(usageRecord());
  expect(count(db)).toBe(1);
  db.close();
  const before = dropped();
  expect(() => rec.record(usageRecord())).not.toThrow();
  // Lost, and counted as lost.
  expect(dropped() - before).toBe(1);
});

test("a flush gives up at once on another process's lock instead of freezing the server for busy_timeout, and keeps the rows", async () => {
  const db = fresh();
  const rec = createUsageRecorder(db, { retentionDays: 30, flushIntervalMs: 60_000 });
  open[open.length - 1]!.rec = rec;
  rec.record(usageRecord());
  const locker = await lockFromAnotherProcess(db.filename, 3000);
  const t0 = performance.now();
  expect(rec.flush()).toBe(0);
  // The store's own busy_timeout is 5 s: a flush that waited it out would hold every request that long.
  expect(performance.now() - t0).toBeLessThan(1000);
  expect(rec.pending()).toBe(1);
  locker.kill();
  await locker.exited;
  expect(rec.flush()).toBe(1);
  expect(count(db)).toBe(1);
});

test('stop() waits out a lock another process holds briefly, so the last rows are not lost', async () => {
  const db = fresh();
  const rec = createUsageRecorder(db, { retentionDays: 30, flushIntervalMs: 60_000 });
  open[open.length - 1]!.rec = rec;
  rec.record(usageRecord());
  rec.record(usageRecord());
  const locker = await lockFromAnotherProcess(db.filename, 400);
  rec.stop();
  expect(rec.pending()).toBe(0);
  expect(count(db)).toBe(2);
  await locker.exited;
});

test('a lock held a moment is not worth a warning; one that lasts 5 s is, and so is its end', () => {
  const db = fresh();
  let t = 1_000_000;
  const rec = createUsageRecorder(db, { retentionDays: 30, flushIntervalMs: 60_000, now: () => t });
  open[open.length - 1]!.rec = rec;
  const lines: string[] = [];
  log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
  try {
    const other = openDatabase(db.filename);
    other.exec('BEGIN IMMEDIATE');
    rec.record(usageRecord());
    expect(rec.flush()).toBe(0);
    t += 4_000;
    expect(rec.flush()).toBe(0);
    expect(lines).toEqual([]);
    expect(rec.trouble()).toBeNull();
    t += 1_000;
    rec.record(usageRecord());
    expect(rec.flush()).toBe(0);
    expect(lines).toEqual([expect.stringMatching(/^warn: usage: cannot write 2 record\(s\), will retry: database is locked/)]);
    expect(rec.trouble()).toBe('database is locked (2 record(s) waiting in memory)');
    other.exec('COMMIT');
    other.close();
    expect(rec.flush()).toBe(2);
    expect(lines.at(-1)).toBe('info: usage: database writable again');
    expect(rec.trouble()).toBeNull();
    // A short lock after that is quiet again.
    lines.length = 0;
    const again = openDatabase(db.filename);
    again.exec('BEGIN IMMEDIATE');
    rec.record(usageRecord());
    expect(rec.flush()).toBe(0);
    again.exec('COMMIT');
    again.close();
    expect(rec.flush()).toBe(1);
    expect(lines).toEqual([]);
  } finally {
    configureLog({ format: 'pretty' });
  }
});

test('a failure that is not a lock (a missing table, a full disk) is a warning at once', () => {
  const db = fresh();
  const rec = createUsageRecorder(db, { retentionDays: 30, flushIntervalMs: 60_000 });
  open[open.length - 1]!.rec = rec;
  const lines: string[] = [];
  log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
  try {
    db.exec('ALTER TABLE usage RENAME TO usage_away');
    rec.record(usageRecord());
    rec.flush();
    expect(lines).toEqual([expect.stringMatching(/^warn: usage: cannot write 1 record\(s\), will retry: no such table/)]);
  } finally {
    configureLog({ format: 'pretty' });
  }
});

test('records lost to a full queue or at shutdown are counted in mcp_usage_records_dropped_total', () => {
  const before = dropped();
  const db = fresh();
  const rec = createUsageRecorder(db, { retentionDays: 30, flushIntervalMs: 60_000, maxQueue: 3 });
  open[open.length - 1]!.rec = rec;
  db.exec('ALTER TABLE usage RENAME TO usage_away');
  for (let i = 0; i < 5; i++) rec.record(usageRecord());
  rec.flush();
  expect(dropped() - before).toBe(2);
  rec.stop();
  expect(dropped() - before).toBe(5);
});
