// `mcp usage`: the window parser, the table, and the command against a seeded database.
import { describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { runCaptured, useTempDataDir } from './run-cli.ts';
import { parseSince, usageTable } from '../../src/cli/usage.ts';
import { upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';
import { insertUsage } from '../../src/store/usage.ts';
import { usageRecord } from '../usage-record.ts';

const NOW = Date.parse('2026-03-01T12:00:00Z');

describe('--since', () => {
  test.each([
    ['30m', NOW - 30 * 60_000],
    ['24h', NOW - 86_400_000],
    ['7d', NOW - 7 * 86_400_000],
    ['2w', NOW - 14 * 86_400_000],
    ['90s', NOW - 90_000],
    // A bare date is local midnight, like a time with no zone (local too).
    ['2026-02-01', new Date(2026, 1, 1).getTime()],
    ['2026-02-01T10:00', new Date(2026, 1, 1, 10).getTime()],
    ['2026-02-01T10:00:00Z', Date.parse('2026-02-01T10:00:00Z')],
  ])('%s', (text, expected) => {
    expect(parseSince(text, NOW)).toBe(expected);
  });

  test.each(['yesterday', '24', 'h', '-3d', '2026-13-45'])('"%s" is refused naming the accepted forms', (text) => {
    expect(() => parseSince(text, NOW)).toThrow('--since must be a duration like 30m, 24h, 7d, 2w');
  });

  test.each(['2062-01-31', '2099-01-01T10:00:00Z'])('"%s" in the future is refused, not shown as an empty window', (text) => {
    expect(() => parseSince(text, NOW)).toThrow(`--since ${text} is in the future`);
  });

  test.each(['0h', '0m', '00d'])('"%s" is refused as an empty window, not answered "no requests since" now', (text) => {
    expect(() => parseSince(text, NOW)).toThrow(`--since ${text} is an empty window: give a duration above 0`);
  });

  // A day the calendar lacks would otherwise roll over (Feb 31 -> Mar 3) and silently shift the window.
  test.each(['2026-02-31', '2026-04-31T10:00:00Z'])('"%s" is refused as a wrong invocation, not rolled over', (text) => {
    expect(() => parseSince(text, NOW)).toThrow('--since must be a duration like 30m, 24h, 7d, 2w');
  });

  // `99999999d` printed "no requests since -271764-03-26…"; a longer one was "not a duration", which it is.
  test.each([
    ['99999999d', 'd'],
    ['99999999999w', 'w'],
    ['999999999999999999999s', 's'],
  ])('"%s" reaching back before 1970 is refused naming the longest accepted in its unit', (text, unit) => {
    const most = Math.floor((NOW - Date.UTC(1970, 0, 1)) / { d: 86_400_000, w: 604_800_000, s: 1000 }[unit]!);
    expect(() => parseSince(text, NOW)).toThrow(`--since ${text} reaches back before 1970: give at most ${most}${unit} or a date from 1970-01-01 on`);
    // The longest accepted one is accepted.
    expect(parseSince(`${most}${unit}`, NOW)).toBeGreaterThanOrEqual(Date.UTC(1970, 0, 1));
  });

  // A year of one or two digits was read as 19xx (JavaScript's Date): `0099-01-01` meant 1999-01-01.
  test.each(['0001-01-01', '0099-01-01', '1969-12-31T23:00:00Z'])('"%s" before 1970 is refused, not read as another year', (text) => {
    expect(() => parseSince(text, NOW)).toThrow(`--since ${text} is before 1970: give a date from 1970-01-01 on`);
  });
});

test('the table has one row per group and a weighted total', () => {
  const text = usageTable(
    [
      { key: 'a', requests: 3, errors: 1, cancelled: 1, failovers: 2, inputTokens: 1000, outputTokens: 20, cacheReadTokens: 5, avgLatencyMs: 100 },
      { key: 'b', requests: 1, errors: 0, cancelled: 0, failovers: 1, inputTokens: 10, outputTokens: 2, cacheReadTokens: 0, avgLatencyMs: 500 },
    ],
    'model',
  );
  expect(text.split('\n')).toEqual([
    'MODEL  REQUESTS  ERRORS  CANCELLED  FAILOVERS  INPUT  OUTPUT  CACHE READ  AVG MS',
    'a      3         1       1          2          1,000  20      5           100',
    'b      1         0       0          1          10     2       0           500',
    'total  4         1       1          3          1,010  22      5           200',
  ]);
});

describe('mcp usage (in process, seeded data dir)', () => {
  const dataDirOf = useTempDataDir('mcp-cli-usage-');

  const run = (...argv: string[]) => runCaptured(argv);

  function seed(): void {
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    const { account } = upsertAccount(db, { provider: 'zai', label: 'work-key', credentials: { kind: 'api_key', apiKey: 'zai-usage-key-0123456789' } });
    const now = Date.now();
    insertUsage(db, [
      usageRecord({ ts: now - 60_000, accountId: account.id, clientModel: 'claude-sonnet-4-5', inputTokens: 100, outputTokens: 10 }),
      usageRecord({ ts: now - 120_000, accountId: account.id, clientModel: 'claude-opus-4-5', inputTokens: 50, outputTokens: 5, status: 529 }),
      usageRecord({ ts: now - 3 * 86_400_000, accountId: account.id, clientModel: 'claude-opus-4-5', inputTokens: 7 }),
    ]);
    db.close();
  }

  test('by account (default, last 24h): the account label with its requests, errors and tokens', async () => {
    seed();
    const r = await run('usage');
    expect(r.code).toBe(0);
    const rows = r.out.trim().split('\n');
    expect(rows[0]).toMatch(/^since .* \(24h\), by account$/);
    expect(rows[1]).toBe('ACCOUNT   REQUESTS  ERRORS  CANCELLED  FAILOVERS  INPUT  OUTPUT  CACHE READ  AVG MS');
    expect(rows[2]).toMatch(/^work-key  2\s+1\s+0\s+0\s+150\s+15\s+0\s+120$/);
    expect(rows).toHaveLength(3);
  });

  test('--by model --since 7d includes the older request and a total row', async () => {
    seed();
    const r = await run('usage', '--by', 'model', '--since', '7d');
    expect(r.out).toContain('claude-opus-4-5    2');
    expect(r.out).toContain('claude-sonnet-4-5  1');
    expect(r.out).toMatch(/total\s+3\s+1\s+0\s+0\s+157/);
  });

  test('--json gives the rows as data', async () => {
    seed();
    const r = await run('usage', '--by', 'provider', '--json');
    const body = JSON.parse(r.out) as { by: string; rows: Array<{ key: string; requests: number }> };
    expect(body.by).toBe('provider');
    expect(body.rows).toEqual([expect.objectContaining({ key: 'zai', requests: 2, errors: 1, inputTokens: 150 })]);
  });

  // A stream that failed after its 200 (an overloaded_error event mid-answer) keeps status 200 in the
  // record and sets its error type: the client saw an error, so the ERRORS column counts it.
  test('a stream that ended in an error event counts as an error', async () => {
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    const now = Date.now();
    insertUsage(db, [
      usageRecord({ ts: now - 1000, clientModel: 'glm-4.7', status: 200, errorType: 'overloaded_error' }),
      usageRecord({ ts: now - 2000, clientModel: 'glm-4.7', status: 200 }),
    ]);
    db.close();
    const body = JSON.parse((await run('usage', '--by', 'model', '--json')).out) as { rows: Array<{ requests: number; errors: number }> };
    expect(body.rows).toEqual([expect.objectContaining({ key: 'glm-4.7', requests: 2, errors: 1 })]);
  });

  test('a request the client closed (Esc in Claude Code) is cancelled, not an error; failovers are summed', async () => {
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    const now = Date.now();
    insertUsage(db, [
      usageRecord({ ts: now - 1000, clientModel: 'glm-4.7', status: 499, errorType: 'client_closed' }),
      usageRecord({ ts: now - 1500, clientModel: 'glm-4.7', status: 200, errorType: 'client_closed', failovers: 2 }),
      usageRecord({ ts: now - 2000, clientModel: 'glm-4.7', status: 429, errorType: 'rate_limit_error', failovers: 1 }),
    ]);
    db.close();
    const body = JSON.parse((await run('usage', '--by', 'model', '--json')).out) as { rows: unknown[] };
    expect(body.rows).toEqual([expect.objectContaining({ key: 'glm-4.7', requests: 3, errors: 1, cancelled: 2, failovers: 3 })]);
  });

  test('a window reaching past the retention says that nothing older is left to count', async () => {
    seed();
    const saved = process.env.USAGE_RETENTION_DAYS;
    try {
      delete process.env.USAGE_RETENTION_DAYS;
      const r = await run('usage', '--since', '60d');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/\(usage is kept 30 days, USAGE_RETENTION_DAYS: nothing before \S+ is left to count\)/);
      expect((await run('usage', '--since', '7d')).out).not.toContain('usage is kept');
      process.env.USAGE_RETENTION_DAYS = '365';
      const empty = await run('usage', '--since', '400d', '--by', 'provider');
      expect(empty.out).toContain('usage is kept 365 days');
    } finally {
      if (saved === undefined) delete process.env.USAGE_RETENTION_DAYS;
      else process.env.USAGE_RETENTION_DAYS = saved;
    }
  });

  test('--json with a window reaching past the retention gives the cut-off as keptSince, and none for a window inside it', async () => {
    seed();
    const saved = process.env.USAGE_RETENTION_DAYS;
    try {
      delete process.env.USAGE_RETENTION_DAYS;
      const cut = JSON.parse((await run('usage', '--since', '60d', '--json')).out) as { keptSince?: string; retentionDays: number };
      expect(cut.retentionDays).toBe(30);
      expect(Date.now() - Date.parse(cut.keptSince!)).toBeGreaterThanOrEqual(30 * 86_400_000 - 60_000);
      const inside = JSON.parse((await run('usage', '--since', '7d', '--json')).out) as Record<string, unknown>;
      expect(inside).not.toHaveProperty('keptSince');
    } finally {
      if (saved === undefined) delete process.env.USAGE_RETENTION_DAYS;
      else process.env.USAGE_RETENTION_DAYS = saved;
    }
  });

  test('an empty window says so', async () => {
    const r = await run('usage');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^no requests since /);
  });

  test('a bad --by or --since is a usage error (exit 2)', async () => {
    const by = await run('usage', '--by', 'colour');
    expect(by.code).toBe(2);
    expect(by.err).toContain('--by must be one of account, model, provider');
    const since = await run('usage', '--since', 'soon');
    expect(since.code).toBe(2);
  });
});
