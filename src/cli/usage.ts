// `mcp usage`: what the proxy served, from the usage table, grouped by account, model or provider.
import { defineCommand } from 'citty';
import { loadConfig } from '../config.ts';
import { databaseFailure, openForReading } from '../store/db.ts';
import { summarizeUsage, type UsageSummaryRow } from '../store/usage.ts';
import { printJson, renderTable, say, UsageError } from './output.ts';

export type UsageGroup = 'account' | 'model' | 'provider';
const GROUPS: readonly UsageGroup[] = ['account', 'model', 'provider'];
const DAY_MS = 86_400_000;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * The earliest time a window may start: no usage row is older (mcp did not exist), and before it a
 * window only shows a date nobody meant (`99999999d` printed as the year -271764).
 */
const EARLIEST_YEAR = 1970;
const EARLIEST = Date.UTC(EARLIEST_YEAR, 0, 1);

/** "90m", "24h", "7d", "2w" (before now), or an ISO date/time -> epoch ms, from 1970 on. */
export function parseSince(text: string, now: number): number {
  const s = text.trim();
  const rel = /^(\d+)\s*([smhdw])$/i.exec(s);
  if (rel) {
    // "0h" is a window of nothing: "no requests since <now>" would read as an idle proxy.
    if (Number(rel[1]) === 0) throw new UsageError(`--since ${text} is an empty window: give a duration above 0, e.g. 24h`);
    const unit = rel[2]!.toLowerCase();
    const at = now - Number(rel[1]) * UNIT_MS[unit]!;
    if (at >= EARLIEST) return at;
    const most = Math.floor((now - EARLIEST) / UNIT_MS[unit]!);
    throw new UsageError(`--since ${text} reaches back before ${EARLIEST_YEAR}: give at most ${most}${unit} or a date from ${EARLIEST_YEAR}-01-01 on`);
  }
  const day = /^(\d{4})-(\d{2})-(\d{2})/.exec(s);
  if (day) {
    const [y, m, d] = [Number(day[1]), Number(day[2]), Number(day[3])];
    if (y < EARLIEST_YEAR) throw new UsageError(`--since ${text} is before ${EARLIEST_YEAR}: give a date from ${EARLIEST_YEAR}-01-01 on`);
    // A bare date is local midnight, as a date with a time and no zone is local time: Date.parse
    // alone reads the one as UTC and the other as local.
    const at = s.length === 10 ? new Date(y, m - 1, d).getTime() : Date.parse(s);
    // Date.parse rolls a day the month lacks over (02-31 -> 03-03): refuse it rather than shift the window.
    const real = new Date(Date.UTC(y, m - 1, d));
    if (Number.isFinite(at) && real.getUTCMonth() === m - 1 && real.getUTCDate() === d) {
      // A typo of a year would otherwise read as "no requests": nothing was served after now.
      if (at > now) throw new UsageError(`--since ${text} is in the future: give a time before now`);
      return at;
    }
  }
  throw new UsageError(`--since must be a duration like 30m, 24h, 7d, 2w or a date like 2026-01-31, got "${text}"`);
}

const int = (n: number) => n.toLocaleString('en-US');

/** The table `mcp usage` prints, with a total row when there is more than one group. */
export function usageTable(rows: readonly UsageSummaryRow[], by: UsageGroup): string {
  const header = [by.toUpperCase(), 'REQUESTS', 'ERRORS', 'CANCELLED', 'FAILOVERS', 'INPUT', 'OUTPUT', 'CACHE READ', 'AVG MS'];
  const line = (r: UsageSummaryRow) => [
    r.key,
    int(r.requests),
    int(r.errors),
    int(r.cancelled),
    int(r.failovers),
    int(r.inputTokens),
    int(r.outputTokens),
    int(r.cacheReadTokens),
    int(r.avgLatencyMs),
  ];
  const body = rows.map(line);
  if (rows.length > 1) {
    const sum = (f: (r: UsageSummaryRow) => number) => rows.reduce((a, r) => a + f(r), 0);
    const requests = sum((r) => r.requests);
    body.push(
      line({
        key: 'total',
        requests,
        errors: sum((r) => r.errors),
        cancelled: sum((r) => r.cancelled),
        failovers: sum((r) => r.failovers),
        inputTokens: sum((r) => r.inputTokens),
        outputTokens: sum((r) => r.outputTokens),
        cacheReadTokens: sum((r) => r.cacheReadTokens),
        avgLatencyMs: requests ? Math.round(sum((r) => r.avgLatencyMs * r.requests) / requests) : 0,
      }),
    );
  }
  return renderTable(header, body);
}

export const usageCommand = defineCommand({
  meta: { name: 'usage', description: 'Requests, errors and tokens served, grouped by account, model or provider' },
  args: {
    since: { type: 'string', valueHint: 'when', description: 'Window: 30m, 24h, 7d, 2w or a date (default 24h)' },
    by: { type: 'string', valueHint: 'account|model|provider', description: 'Group rows by (default account)' },
    json: { type: 'boolean', description: 'Print the rows as JSON' },
  },
  run({ args }) {
    const by = (args.by ?? 'account').trim().toLowerCase() as UsageGroup;
    if (!GROUPS.includes(by)) throw new UsageError(`--by must be one of ${GROUPS.join(', ')}, got "${args.by}"`);
    const now = Date.now();
    const sinceText = args.since ?? '24h';
    const since = parseSince(sinceText, now);
    const config = loadConfig(process.env, {}, { requireApiKey: false });
    // Only reads: a database on a read-only mount, or another user's, still answers.
    const db = openForReading(config.dbPath);
    try {
      const rows = summarizeUsage(db, since, by);
      // A window reaching past the retention would otherwise read as a quiet month.
      const kept = now - config.usageRetentionDays * DAY_MS;
      if (args.json) {
        // A script reads no footnote: the cut-off is a field, there only when the window is cut.
        const cut = since < kept ? { keptSince: new Date(kept).toISOString() } : {};
        printJson({ since: new Date(since).toISOString(), by, retentionDays: config.usageRetentionDays, ...cut, rows });
        return;
      }
      if (rows.length === 0) say(`no requests since ${new Date(since).toISOString()}`);
      else {
        say(`since ${new Date(since).toISOString()} (${sinceText}), by ${by}`);
        say(usageTable(rows, by));
      }
      if (since < kept) say(`(usage is kept ${config.usageRetentionDays} days, USAGE_RETENTION_DAYS: nothing before ${new Date(kept).toISOString()} is left to count)`);
    } catch (err) {
      throw databaseFailure(config.dbPath, err) ?? err;
    } finally {
      db.close();
    }
  },
});
