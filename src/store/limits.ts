// Per account and model limit state, and the last known quota. Limits survive restarts.
import type { Database } from 'bun:sqlite';
import { immediate } from './db.ts';

/** "*" as model means every model of the account. */
export const ALL_MODELS = '*';

/** no_access: the account's plan lacks the model (Z.AI 1220); rechecked at resetAt. */
export type LimitKind = 'rate_limited' | 'quota_exhausted' | 'capacity' | 'transient' | 'no_access';

export interface ModelLimit {
  accountId: string;
  model: string;
  kind: LimitKind;
  resetAt: number;
  reason: string | null;
  updatedAt: number;
}

export interface QuotaRecord {
  accountId: string;
  model: string;
  window: string;
  remainingFraction: number | null;
  resetAt: number | null;
  fetchedAt: number;
}

interface LimitRow {
  account_id: string;
  model: string;
  kind: string;
  reset_at: number;
  reason: string | null;
  updated_at: number;
}

export function listLimits(db: Database): ModelLimit[] {
  return (db.query('SELECT * FROM model_limits').all() as LimitRow[]).map((r) => ({
    accountId: r.account_id,
    model: r.model,
    kind: r.kind as LimitKind,
    resetAt: r.reset_at,
    reason: r.reason,
    updatedAt: r.updated_at,
  }));
}

export function setLimit(db: Database, l: ModelLimit): void {
  db.query(
    `INSERT INTO model_limits (account_id, model, kind, reset_at, reason, updated_at) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT(account_id, model) DO UPDATE SET kind = excluded.kind, reset_at = excluded.reset_at,
       reason = excluded.reason, updated_at = excluded.updated_at`,
  ).run(l.accountId, l.model, l.kind, l.resetAt, l.reason, l.updatedAt);
}

export function clearLimit(db: Database, accountId: string, model: string): void {
  db.query('DELETE FROM model_limits WHERE account_id = ? AND model = ?').run(accountId, model);
}

export function clearAccountLimits(db: Database, accountId: string): void {
  db.query('DELETE FROM model_limits WHERE account_id = ?').run(accountId);
}

/**
 * Forgets an account's limits and the quota readings that found a window spent (nothing left, reset
 * still ahead), in one transaction; returns what was there. The pool routes around both, so a reset
 * that kept the readings would leave the account parked until the next quota poll.
 */
export function resetAccountLimits(db: Database, accountId: string, now: number): { limits: ModelLimit[]; spent: QuotaRecord[] } {
  return immediate(db, () => {
    const limits = listLimits(db).filter((l) => l.accountId === accountId);
    const spent = listQuotas(db).filter((q) => q.accountId === accountId && q.remainingFraction === 0 && q.resetAt !== null && q.resetAt > now);
    clearAccountLimits(db, accountId);
    db.query('DELETE FROM quotas WHERE account_id = ? AND remaining_fraction = 0 AND reset_at > ?').run(accountId, now);
    return { limits, spent };
  });
}

export function clearExpiredLimits(db: Database, now: number): number {
  return db.query('DELETE FROM model_limits WHERE reset_at <= ?').run(now).changes;
}

interface QuotaRow {
  account_id: string;
  model: string;
  window: string;
  remaining_fraction: number | null;
  reset_at: number | null;
  fetched_at: number;
}

export function listQuotas(db: Database): QuotaRecord[] {
  return (db.query('SELECT * FROM quotas').all() as QuotaRow[]).map((r) => ({
    accountId: r.account_id,
    model: r.model,
    window: r.window,
    remainingFraction: r.remaining_fraction,
    resetAt: r.reset_at,
    fetchedAt: r.fetched_at,
  }));
}

/** Replaces everything known about one account's quota in one transaction. */
export function replaceQuotas(db: Database, accountId: string, records: readonly QuotaRecord[]): void {
  immediate(db, () => {
    db.query('DELETE FROM quotas WHERE account_id = ?').run(accountId);
    const q = db.query(
      `INSERT OR REPLACE INTO quotas (account_id, model, window, remaining_fraction, reset_at, fetched_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
    );
    for (const r of records) q.run(accountId, r.model, r.window, r.remainingFraction, r.resetAt, r.fetchedAt);
  });
}
