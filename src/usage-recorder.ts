// Usage accounting off the hot path: request records are queued in memory and written to SQLite in
// one transaction per batch (every second, or at once when 200 are waiting), old rows are pruned
// hourly by retention, and stop() flushes what is left before the database closes.
import type { Database } from 'bun:sqlite';
import { log } from './log.ts';
import { defineCounter } from './metrics.ts';
import { briefly, isBusyError, LOCK_WARN_AFTER_MS } from './store/db.ts';
import { insertUsage, pruneUsage, type UsageRecord } from './store/usage.ts';

export interface UsageRecorderOptions {
  /** Rows older than this many days are deleted. */
  retentionDays: number;
  /** How often queued records are written (ms). */
  flushIntervalMs?: number;
  /** Queue length that triggers an immediate (next-tick) flush. */
  maxBatch?: number;
  /** How often old rows are pruned (ms); the first prune runs at start. */
  pruneIntervalMs?: number;
  /** The clock (tests). */
  now?: () => number;
  /** Records kept at most while the database refuses writes; older ones are dropped. */
  maxQueue?: number;
}

export interface UsageRecorder {
  /** Queues one record; never throws, never touches the disk. */
  record(r: UsageRecord): void;
  /**
   * Writes everything queued now. Returns how many rows were written. A lock another process holds
   * is waited on only briefly (the server's thread would freeze), unless `wait` (at stop).
   */
  flush(wait?: boolean): number;
  /** Deletes rows older than the retention. Returns how many were deleted. */
  prune(): number;
  /** Records waiting to be written. */
  pending(): number;
  /**
   * Why rows cannot be written, once that has been warned about (a lock that lasts, a full disk), with
   * how many wait in memory and how many were dropped meanwhile; null while they can.
   */
  trouble(): string | null;
  /** Stops the timers and flushes what is left. Safe to call twice. */
  stop(): void;
}

const DAY_MS = 86_400_000;
const DROP_WARN_EVERY_MS = 60_000;
/** Lost accounting shows on a dashboard too, not only in a log line once a minute. */
const droppedMetric = defineCounter('mcp_usage_records_dropped_total', 'Usage records lost because the database refused writes (a full queue, or still refused at shutdown)');
// Shown at 0 from the start: an alert on its increase needs the series before the first loss.
droppedMetric(undefined, 0);

export function createUsageRecorder(db: Database, opts: UsageRecorderOptions): UsageRecorder {
  const flushIntervalMs = opts.flushIntervalMs ?? 1000;
  const maxBatch = opts.maxBatch ?? 200;
  const pruneIntervalMs = opts.pruneIntervalMs ?? 3_600_000;
  const maxQueue = opts.maxQueue ?? 50_000;
  const now = opts.now ?? Date.now;
  let queue: UsageRecord[] = [];
  let stopped = false;
  let soonScheduled = false;
  let failingSince: number | null = null;
  let warned = false;
  let lastError = '';
  /** Records dropped since the last word about it, and when that was (a full queue drops on every flush). */
  let dropped = 0;
  let droppedSaidAt = Number.NEGATIVE_INFINITY;
  /** Records dropped since writes last landed: trouble() must not say they all wait in memory. */
  let droppedInTrouble = 0;

  const flush = (wait = false): number => {
    if (queue.length === 0) return 0;
    const batch = queue;
    queue = [];
    try {
      if (wait) insertUsage(db, batch);
      else briefly(db, () => insertUsage(db, batch));
      if (warned) log.info('usage: database writable again');
      failingSince = null;
      warned = false;
      droppedInTrouble = 0;
      return batch.length;
    } catch (err) {
      // Keep the rows for the next try (the database may be busy); cap memory if it stays down.
      queue = batch.concat(queue);
      if (queue.length > maxQueue) {
        droppedMetric(undefined, queue.length - maxQueue);
        dropped += queue.length - maxQueue;
        droppedInTrouble += queue.length - maxQueue;
        queue = queue.slice(queue.length - maxQueue);
      }
      failingSince ??= now();
      lastError = (err as Error)?.message ?? String(err);
      if (!warned && (!isBusyError(err) || now() - failingSince >= LOCK_WARN_AFTER_MS)) {
        warned = true;
        log.warn(`usage: cannot write ${queue.length} record(s), will retry: ${(err as Error).message}`);
      }
      // Lost usage must not go unsaid; once a minute is enough for a queue that stays full.
      if (dropped > 0 && now() - droppedSaidAt >= DROP_WARN_EVERY_MS) {
        log.warn(`usage: dropped the ${dropped} oldest record(s): at most ${maxQueue} wait in memory while the database refuses writes`);
        dropped = 0;
        droppedSaidAt = now();
      }
      return 0;
    }
  };

  const prune = (): number => {
    try {
      const n = briefly(db, () => pruneUsage(db, now() - opts.retentionDays * DAY_MS));
      if (n > 0) log.debug(`usage: pruned ${n} row(s) older than ${opts.retentionDays} days`);
      return n;
    } catch (err) {
      log.warn(`usage: prune failed: ${(err as Error).message}`);
      return 0;
    }
  };

  const flushTimer = setInterval(() => flush(), flushIntervalMs);
  const pruneTimer = setInterval(prune, pruneIntervalMs);
  // Timers must not keep a stopping process alive.
  flushTimer.unref?.();
  pruneTimer.unref?.();
  prune();

  return {
    record(r) {
      if (stopped) {
        // A late record after stop (a stream that outlived the grace period): write it directly.
        try {
          insertUsage(db, [r]);
        } catch {
          // The database is closed (or refuses): nowhere left to write it, but the loss is counted.
          droppedMetric(undefined, 1);
        }
        return;
      }
      queue.push(r);
      if (queue.length >= maxBatch && !soonScheduled) {
        soonScheduled = true;
        setTimeout(() => {
          soonScheduled = false;
          flush();
        }, 0);
      }
    },
    flush,
    prune,
    pending: () => queue.length,
    trouble: () => {
      if (!warned) return null;
      const lost = droppedInTrouble > 0 ? `; ${droppedInTrouble} older one(s) dropped, at most ${maxQueue} are kept` : '';
      return `${lastError} (${queue.length} record(s) waiting in memory${lost})`;
    },
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(flushTimer);
      clearInterval(pruneTimer);
      flush(true);
      // There is no next try: rows the database still refuses are gone, and the user should know.
      if (queue.length > 0) {
        droppedMetric(undefined, queue.length);
        log.warn(`usage: ${queue.length} record(s) could not be written before shutdown and are lost: ${lastError}`);
      }
    },
  };
}
