// Accounts: who can serve, with what credentials, in what state. Credentials and meta are JSON.
import type { Database } from 'bun:sqlite';
import { immediate, StoreError } from './db.ts';

export type ProviderId = 'antigravity' | 'zai';
export const PROVIDERS: readonly ProviderId[] = ['antigravity', 'zai'];

export type AccountStatus = 'active' | 'disabled' | 'invalid';

export type Credentials =
  | { kind: 'api_key'; apiKey: string }
  | { kind: 'oauth'; refreshToken: string; accessToken?: string; expiresAt?: number };

export interface Account {
  id: string;
  provider: ProviderId;
  label: string;
  email: string | null;
  status: AccountStatus;
  statusReason: string | null;
  verifyUrl: string | null;
  credentials: Credentials;
  /** Provider facts: projectId, tier, plan level… */
  meta: Record<string, unknown>;
  createdAt: number;
  updatedAt: number;
  lastUsedAt: number | null;
}

export interface NewAccount {
  provider: ProviderId;
  label?: string;
  email?: string | null;
  credentials: Credentials;
  meta?: Record<string, unknown>;
}

export interface AccountPatch {
  label?: string;
  email?: string | null;
  status?: AccountStatus;
  statusReason?: string | null;
  verifyUrl?: string | null;
  credentials?: Credentials;
  /** Merged into the existing meta. */
  meta?: Record<string, unknown>;
  lastUsedAt?: number | null;
  /**
   * Apply the patch only while the stored refresh token is one of these: a token refresh that took the
   * token from memory must not undo a new login stored meanwhile (`mcp accounts add` while serving).
   */
  ifRefreshToken?: readonly string[];
}

interface Row {
  id: string;
  provider: string;
  label: string;
  email: string | null;
  status: string;
  status_reason: string | null;
  verify_url: string | null;
  credentials: string;
  meta: string;
  created_at: number;
  updated_at: number;
  last_used_at: number | null;
}

function fromRow(r: Row): Account {
  return {
    id: r.id,
    provider: r.provider as ProviderId,
    label: r.label,
    email: r.email,
    status: r.status as AccountStatus,
    statusReason: r.status_reason,
    verifyUrl: r.verify_url,
    credentials: JSON.parse(r.credentials) as Credentials,
    meta: JSON.parse(r.meta) as Record<string, unknown>,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    lastUsedAt: r.last_used_at,
  };
}

function newId(): string {
  const b = crypto.getRandomValues(new Uint8Array(4));
  return `acc_${Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')}`;
}

export function listAccounts(db: Database): Account[] {
  return (db.query('SELECT * FROM accounts ORDER BY created_at, id').all() as Row[]).map(fromRow);
}

/**
 * Finds an account by id, else by exact label. Both are unique, so each step finds one account at
 * most; the order is spelled out because a label may equal another account's id (an imported file
 * names its labels freely), and "the first row matching either" would then depend on the query plan.
 */
export function findAccount(db: Database, idOrLabel: string): Account | null {
  const r = (db.query('SELECT * FROM accounts WHERE id = ?').get(idOrLabel) ??
    db.query('SELECT * FROM accounts WHERE label = ?').get(idOrLabel)) as Row | null;
  return r ? fromRow(r) : null;
}

function uniqueLabel(db: Database, base: string): string {
  let label = base;
  for (let n = 2; db.query('SELECT 1 FROM accounts WHERE label = ?').get(label); n++) label = `${base}-${n}`;
  return label;
}

/**
 * Adds an account, or updates the existing one with the same provider and email (re-login must not
 * duplicate). Returns the stored account and whether it was new.
 */
export function upsertAccount(db: Database, input: NewAccount, now = Date.now()): { account: Account; created: boolean } {
  return immediate(db, () => {
    const email = input.email ?? null;
    const existing = email
      ? // E-mail addresses are matched without case: a file from another tool may capitalise them.
        (db.query('SELECT * FROM accounts WHERE provider = ? AND email = ? COLLATE NOCASE').get(input.provider, email) as Row | null)
      : null;
    if (existing) {
      const meta = { ...(JSON.parse(existing.meta) as Record<string, unknown>), ...(input.meta ?? {}) };
      db.query(
        `UPDATE accounts SET credentials = ?, meta = ?, status = 'active', status_reason = NULL, verify_url = NULL,
           updated_at = ? WHERE id = ?`,
      ).run(JSON.stringify(input.credentials), JSON.stringify(meta), now, existing.id);
      return { account: fromRow(db.query('SELECT * FROM accounts WHERE id = ?').get(existing.id) as Row), created: false };
    }
    if (input.label && db.query('SELECT 1 FROM accounts WHERE label = ?').get(input.label)) {
      throw new StoreError(`an account labelled "${input.label}" already exists`);
    }
    const id = newId();
    const label = input.label ?? uniqueLabel(db, email ?? `${input.provider}-${id.slice(4)}`);
    db.query(
      `INSERT INTO accounts (id, provider, label, email, status, credentials, meta, created_at, updated_at)
       VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?)`,
    ).run(id, input.provider, label, email, JSON.stringify(input.credentials), JSON.stringify(input.meta ?? {}), now, now);
    return { account: fromRow(db.query('SELECT * FROM accounts WHERE id = ?').get(id) as Row), created: true };
  });
}

/**
 * Applies a patch in one transaction; meta is merged. Returns null when the account is gone, and the
 * stored account unchanged when `ifRefreshToken` no longer matches.
 */
export function updateAccount(db: Database, id: string, patch: AccountPatch, now = Date.now()): Account | null {
  return immediate(db, () => {
    const row = db.query('SELECT * FROM accounts WHERE id = ?').get(id) as Row | null;
    if (!row) return null;
    const cur = fromRow(row);
    if (patch.ifRefreshToken !== undefined && (cur.credentials.kind !== 'oauth' || !patch.ifRefreshToken.includes(cur.credentials.refreshToken))) {
      return cur;
    }
    // Looked for under this transaction's lock: the CLI's own look (`set --label`) may be stale by
    // now, and the UNIQUE index would otherwise answer with a raw constraint error.
    if (patch.label !== undefined && patch.label !== cur.label && db.query('SELECT 1 FROM accounts WHERE label = ? AND id <> ?').get(patch.label, id)) {
      throw new StoreError(`an account labelled "${patch.label}" already exists`);
    }
    const next: Account = {
      ...cur,
      ...Object.fromEntries(Object.entries(patch).filter(([k, v]) => v !== undefined && k !== 'meta' && k !== 'ifRefreshToken')),
      meta: patch.meta ? { ...cur.meta, ...patch.meta } : cur.meta,
      updatedAt: now,
    } as Account;
    db.query(
      `UPDATE accounts SET label = ?, email = ?, status = ?, status_reason = ?, verify_url = ?, credentials = ?,
         meta = ?, updated_at = ?, last_used_at = ? WHERE id = ?`,
    ).run(
      next.label,
      next.email,
      next.status,
      next.statusReason,
      next.verifyUrl,
      JSON.stringify(next.credentials),
      JSON.stringify(next.meta),
      now,
      next.lastUsedAt,
      id,
    );
    return next;
  });
}

/** The credential that identifies a login: the refresh token, or the API key. */
export function secretOf(c: Credentials): string {
  return c.kind === 'oauth' ? c.refreshToken : c.apiKey;
}

/**
 * The server's verdict on an account (invalid, usable again), stored only while its status is one of
 * `from`: a `disabled` set in the CLI meanwhile is the user's and is never overwritten. With
 * `ifSecret`, only while the stored credentials are still those the verdict was reached with: a login
 * made meanwhile is newer news. Returns the stored account, changed or not (null when it is gone),
 * and whether it changed.
 */
export function setStatusIf(
  db: Database,
  id: string,
  from: readonly AccountStatus[],
  patch: { status: AccountStatus; statusReason: string | null; verifyUrl: string | null },
  now = Date.now(),
  ifSecret?: string,
): { account: Account; changed: boolean } | null {
  return immediate(db, () => {
    const row = db.query('SELECT * FROM accounts WHERE id = ?').get(id) as Row | null;
    if (!row) return null;
    const cur = fromRow(row);
    if (!from.includes(cur.status) || (ifSecret !== undefined && secretOf(cur.credentials) !== ifSecret)) return { account: cur, changed: false };
    db.query('UPDATE accounts SET status = ?, status_reason = ?, verify_url = ?, updated_at = ? WHERE id = ?').run(
      patch.status,
      patch.statusReason,
      patch.verifyUrl,
      now,
      id,
    );
    return { account: { ...cur, ...patch, updatedAt: now }, changed: true };
  });
}

/** Removes an account (and, by cascade, its limits and quotas). */
export function removeAccount(db: Database, idOrLabel: string): Account | null {
  return immediate(db, () => {
    const acc = findAccount(db, idOrLabel);
    if (acc) db.query('DELETE FROM accounts WHERE id = ?').run(acc.id);
    return acc;
  });
}

/** Records when accounts were last used; batched by the caller to stay off the hot path. */
export function touchAccounts(db: Database, lastUsed: ReadonlyMap<string, number>): void {
  if (lastUsed.size === 0) return;
  immediate(db, () => {
    const q = db.query('UPDATE accounts SET last_used_at = ? WHERE id = ?');
    for (const [id, at] of lastUsed) q.run(at, id);
  });
}
