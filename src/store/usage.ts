// Request accounting. Written in batches by the server, read by `mcp usage`.
import type { Database } from 'bun:sqlite';
import { immediate } from './db.ts';

export interface UsageRecord {
  ts: number;
  requestId: string;
  accountId: string | null;
  provider: string | null;
  clientModel: string;
  upstreamModel: string | null;
  status: number;
  latencyMs: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheCreationTokens: number;
  stream: boolean;
  fallbackFrom: string | null;
  failovers: number;
  errorType: string | null;
}

/** No real model name is this long; a client's made-up one must not bloat every usage row (and `mcp usage`). */
const MAX_NAME = 200;
const cut = <T extends string | null>(s: T): T => (s !== null && s.length > MAX_NAME ? (s.slice(0, MAX_NAME) as T) : s);

export function insertUsage(db: Database, records: readonly UsageRecord[]): void {
  if (records.length === 0) return;
  immediate(db, () => {
    const q = db.query(
      `INSERT INTO usage (ts, request_id, account_id, provider, client_model, upstream_model, status, latency_ms,
         input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, stream, fallback_from, failovers,
         error_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    for (const r of records) {
      q.run(
        r.ts,
        r.requestId,
        r.accountId,
        r.provider,
        cut(r.clientModel),
        cut(r.upstreamModel),
        r.status,
        r.latencyMs,
        r.inputTokens,
        r.outputTokens,
        r.cacheReadTokens,
        r.cacheCreationTokens,
        r.stream ? 1 : 0,
        cut(r.fallbackFrom),
        r.failovers,
        r.errorType,
      );
    }
  });
}

export function pruneUsage(db: Database, before: number): number {
  return db.query('DELETE FROM usage WHERE ts < ?').run(before).changes;
}

const CANCELLED = "(u.status = 499 OR u.error_type = 'client_closed')";

export interface UsageSummaryRow {
  key: string;
  requests: number;
  errors: number;
  /** The client went away before the answer was whole (Esc in Claude Code): not an error of the proxy's. */
  cancelled: number;
  /** Accounts given up during requests (a limit, a 5xx) before another served or the request failed. */
  failovers: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  avgLatencyMs: number;
}

/**
 * Totals since `since` (epoch ms), grouped by account label, model or provider. Errors: an error
 * status, or a stream that failed after its 200 (it keeps 200 and sets error_type); a request the
 * client closed (499, client_closed) is cancelled, not an error.
 */
export function summarizeUsage(db: Database, since: number, by: 'account' | 'model' | 'provider'): UsageSummaryRow[] {
  const key =
    by === 'account'
      ? "COALESCE(a.label, u.account_id, '-')"
      : by === 'model'
        ? // A request that never named a model (a body that was not JSON) has '' here.
          "COALESCE(NULLIF(u.client_model, ''), '-')"
        : "COALESCE(u.provider, '-')";
  return db
    .query(
      `SELECT ${key} AS key, COUNT(*) AS requests,
         SUM(CASE WHEN ${CANCELLED} THEN 0 WHEN u.status >= 400 OR u.error_type IS NOT NULL THEN 1 ELSE 0 END) AS errors,
         SUM(CASE WHEN ${CANCELLED} THEN 1 ELSE 0 END) AS cancelled, SUM(u.failovers) AS failovers,
         SUM(u.input_tokens) AS inputTokens, SUM(u.output_tokens) AS outputTokens,
         SUM(u.cache_read_tokens) AS cacheReadTokens, CAST(AVG(u.latency_ms) AS INTEGER) AS avgLatencyMs
       FROM usage u LEFT JOIN accounts a ON a.id = u.account_id
       WHERE u.ts >= ? GROUP BY key ORDER BY requests DESC`,
    )
    .all(since) as UsageSummaryRow[];
}
