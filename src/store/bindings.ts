// Which account each conversation (model family + session key) is on. Kept so that a restarted server
// sends a resumed conversation back to the account that holds its prompt cache; written in batches by
// the pool, never per request.
import type { Database } from 'bun:sqlite';
import { immediate } from './db.ts';

export interface SessionBinding {
  family: string;
  session: string;
  accountId: string;
  boundAt: number;
  /** Only side requests have bound it so far (pool.ts AcquireRequest.side): a main request may move it. */
  side?: boolean;
}

/** The newest `limit` bindings bound at or after `since`, oldest first (the pool's recency order). */
export function loadBindings(db: Database, since: number, limit: number): SessionBinding[] {
  const rows = db
    .query('SELECT family, session, account_id, bound_at, side FROM session_bindings WHERE bound_at >= ? ORDER BY bound_at DESC LIMIT ?')
    .all(since, limit) as Array<{ family: string; session: string; account_id: string; bound_at: number; side: number }>;
  return rows
    .reverse()
    .map((r) => ({ family: r.family, session: r.session, accountId: r.account_id, boundAt: r.bound_at, ...(r.side ? { side: true } : {}) }));
}

/**
 * Writes `batch` and forgets bindings older than `since` and beyond the newest `keep`, so the table
 * stays as small as the pool's memory of them however many session ids clients make up.
 */
export function saveBindings(db: Database, batch: readonly SessionBinding[], since: number, keep: number): void {
  if (batch.length === 0) return;
  immediate(db, () => {
    const put = db.query(
      `INSERT INTO session_bindings (family, session, account_id, bound_at, side) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (family, session) DO UPDATE SET account_id = excluded.account_id, bound_at = excluded.bound_at, side = excluded.side`,
    );
    for (const b of batch) put.run(b.family, b.session, b.accountId, b.boundAt, b.side ? 1 : 0);
    db.query('DELETE FROM session_bindings WHERE bound_at < ?').run(since);
    // Older than the keep-th newest (rows bound in the same millisecond as it all stay).
    db.query(
      'DELETE FROM session_bindings WHERE bound_at < (SELECT bound_at FROM session_bindings ORDER BY bound_at DESC LIMIT 1 OFFSET ?)',
    ).run(Math.max(0, keep - 1));
  });
}
