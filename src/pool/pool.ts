// Accounts as a schedulable resource. State (accounts, per-model limits, quotas) lives in SQLite so
// it survives restarts and is shared with the CLI; this process keeps a copy in memory, reloaded
// whenever another connection commits (PRAGMA data_version), plus what only this process knows:
// requests in flight, session bindings, when it last handed each account out. The gateway asks
// for a lease and reports how the upstream call went; the pool turns that into state.
import type { Database } from 'bun:sqlite';
import type { QuotaInfo, UpstreamError } from '../providers/provider.ts';
import {
  type Account,
  type AccountPatch,
  type AccountStatus,
  listAccounts,
  type ProviderId,
  secretOf,
  setStatusIf,
  touchAccounts,
  updateAccount,
} from '../store/accounts.ts';
import { loadBindings, saveBindings, type SessionBinding } from '../store/bindings.ts';
import { briefly, dataVersion, isBusyError, LOCK_WARN_AFTER_MS } from '../store/db.ts';
import {
  ALL_MODELS,
  clearExpiredLimits,
  clearLimit,
  type LimitKind,
  listLimits,
  listQuotas,
  type ModelLimit,
  type QuotaRecord,
  replaceQuotas,
  setLimit,
} from '../store/limits.ts';
import { trackSize } from '../diagnostics.ts';
import { log, maskSecrets } from '../log.ts';
import { type Candidate, isSoftLimited, limitKindsOf, selectAccount, type Selection } from './select.ts';

/** Cool-down after a capacity error when the upstream gave no time: it is not the account's fault. */
export const CAPACITY_COOLDOWN_MS = 10_000;
/** A plan that lacks a model is asked again after this when the upstream gave no time (plans change rarely). */
const NO_ACCESS_RECHECK_MS = 3_600_000;
/**
 * The shortest rest a limit with a reset hint gets. A sub-second hint, made absolute when the error
 * was classified, is already past when it is reported: it means "very soon", not the default cool-down.
 */
export const MIN_LIMIT_MS = 1_000;
/**
 * A quota reading begun this long after a 429's quota limit outranks it. The reading asked right
 * after the 429 may not have caught up with it yet; one minutes later that still shows quota left
 * means the 429 was wrong or its quota came back early.
 */
export const READING_OUTRANKS_429_AFTER_MS = 60_000;
/** Consecutive transient failures on one account before it is rested for the default cool-down. */
export const TRANSIENT_FAILURES_BEFORE_COOLDOWN = 3;
/**
 * A request begun this soon after the last counted transient failure met the same blip. Requests
 * "sent together" reach a busy server spread over tens of milliseconds, some after the first one's
 * failure is already known. A client's own retry comes later (the SDK and Claude Code wait at least
 * ~0.4 s), so a retried failure still adds up and a dead account is rested.
 */
export const TRANSIENT_BURST_MS = 250;
/** Session bindings kept (oldest forgotten first). */
const MAX_BINDINGS = 20_000;
/**
 * Bindings older than this are not brought back by a restart (nor kept on disk): a conversation idle
 * for a week has no cache left to lose, and the table stays bounded.
 */
const BINDING_KEEP_MS = 7 * 24 * 60 * 60 * 1000;
/** lastUsedAt is written to the store in batches at most this often. */
const TOUCH_FLUSH_MS = 5_000;
/** How often a running server looks for changes made by other processes (the CLI). */
const SYNC_INTERVAL_MS = 500;
/** A PRAGMA data_version per request cost ~9% of the proxy's CPU under load; once per 25 ms is plenty. */
const HOT_SYNC_MS = 25;
/** How long a store that could not be read is left alone before it is read again. */
const STORE_RETRY_MS = 5_000;

export interface Lease {
  readonly account: Account;
  readonly provider: ProviderId;
  readonly model: string;
  readonly sticky: boolean;
  readonly soft: boolean;
  /** Quota fraction left for the model at the account's last reading (tightest window), null when unknown. */
  readonly remaining?: number | null;
  /** Ends the lease (in-flight count); idempotent. */
  release(): void;
}

export type AcquireResult =
  | { kind: 'lease'; lease: Lease }
  /**
   * limitKind: what limits the account waited for; earliest: one free sooner than home (see Selection);
   * kinds: every kind of limit that keeps the accounts out, when there is more than one (an error
   * message must not call them all rate limited when one is resting after an overload).
   */
  | { kind: 'limited'; until: number; limitKind: LimitKind; earliest?: { until: number; limitKind: LimitKind }; kinds?: LimitKind[] }
  /** Every account that could serve is at its concurrency cap: waitForSlot() (at most until freeAt), then ask again. */
  | { kind: 'busy'; freeAt?: number }
  | { kind: 'none'; reason: 'no_accounts' | 'no_active_accounts' | 'all_tried'; detail: string };

/** What acquire() would answer, without a lease: an account is free, or why none is. */
export type PeekResult = { kind: 'free' } | Exclude<AcquireResult, { kind: 'lease' }>;

export interface AcquireRequest {
  provider: ProviderId;
  /** Upstream model id (limits and quotas are per this id). */
  model: string;
  /** Sessions are bound per model family: `${provider}:${family}`. */
  familyKey: string;
  sessionKey: string;
  /**
   * The history's own key (gateway/session.ts historyKeyOf), when it has an answer: a conversation
   * not bound yet whose history is (a fork) starts on that history's account, where its cache is.
   */
  historyKey?: string | null;
  /** Accounts already tried for this request. */
  exclude?: ReadonlySet<string>;
  /**
   * Accounts that cannot serve the model at all (their tier does not list it): not candidates, so
   * they neither count as tried nor hide that every account that can serve is limited.
   */
  skip?: ReadonlySet<string>;
  /** Only this account (a retry after a credential refresh). */
  only?: string;
  /**
   * A side request: no tools and no answer yet (Claude Code's session title, a small model's
   * one-off). It may bind a conversation that has no account yet, but never moves one a main request
   * bound: served elsewhere (its model limited on the conversation's account, say), it would drag the
   * conversation off the account that holds its prompt cache.
   */
  side?: boolean;
}

/** What happened on the upstream, as far as the account's state is concerned. */
export type Outcome =
  | { kind: 'success' }
  /** The client went away: never counted against the account. */
  | { kind: 'aborted' }
  /** The request itself was at fault (bad_request, not_found): says nothing about the account. */
  | { kind: 'neutral' }
  | { kind: 'error'; error: UpstreamError };

export interface AccountState {
  account: Account;
  inFlight: number;
  /** Requests the account may serve at once; null = no cap. */
  maxConcurrent: number | null;
  lastUsedAt: number | null;
  /** Limits still in force. */
  limits: ModelLimit[];
  quotas: QuotaRecord[];
}

export interface Pool {
  /** Reloads from the store if another connection committed since the last look. Returns whether it did. */
  sync(): boolean;
  /** sync(), at most once per HOT_SYNC_MS: for the per-request path. */
  syncSoon(): void;
  /** Why the last read of the store failed (the pool then routes on what it read before), or null. */
  storeTrouble(): string | null;
  /**
   * Why changes of state (limits, invalid accounts, quotas) cannot be stored, with how many wait in
   * memory; null while they are stored. A lock counts once it has lasted LOCK_WARN_AFTER_MS.
   */
  writeTrouble(): string | null;
  accounts(): readonly Account[];
  account(id: string): Account | undefined;
  /** Providers with at least one account that is not disabled. */
  providersInUse(): Set<ProviderId>;
  acquire(req: AcquireRequest): AcquireResult;
  /** What acquire() would answer now, changing nothing (no lease, no binding). */
  peek(req: AcquireRequest): PeekResult;
  /** Turns an upstream outcome into account state (does not end the lease). */
  report(lease: Lease, outcome: Outcome): void;
  /**
   * Takes the account out of rotation, unless the user disabled it (that stays) or its credentials are
   * no longer those of `account`, the ones that failed (a new login since then stays in rotation).
   */
  markInvalid(account: Account, reason: string, verifyUrl?: string | null): void;
  /** An invalid account passed verification: back in rotation. False when it is not invalid (any more). */
  reactivate(accountId: string): boolean;
  /** The store patch of a provider (new tokens, project id), mirrored into the cache. */
  applyAccountPatch(id: string, patch: AccountPatch): Account | null;
  /** An account this process just wrote to the store (its own writes do not move data_version). */
  replaceAccount(a: Account): void;
  /** `readAt`: when the reading was asked for (a limit set meanwhile is newer news than it); now by default. */
  setQuotas(accountId: string, quotas: readonly QuotaInfo[], readAt?: number): void;
  /** Every account with what this process knows about it (for /health, /account-limits, metrics). */
  state(): AccountState[];
  inFlight(accountId: string): number;
  /** Resolves true when a request ends or the accounts are reloaded (a slot may be free), false after `ms` or on abort. */
  waitForSlot(ms: number, signal?: AbortSignal): Promise<boolean>;
  /**
   * Resolves true when the accounts are reloaded (the CLI) or a quota reading arrives, which may free
   * a limited account before its reset; false after `ms` or on abort. A request ending frees no limit.
   */
  waitForChange(ms: number, signal?: AbortSignal): Promise<boolean>;
  /** Called with the ids of accounts that appeared (CLI add) or were enabled again after a sync. */
  onAccountsAdded(fn: (ids: string[]) => void): void;
  /** Called with the ids of accounts that were removed (CLI) or disabled, after a sync. */
  onAccountsRemoved(fn: (ids: string[]) => void): void;
  start(): void;
  stop(): void;
}

export interface PoolOptions {
  db: Database;
  now: () => number;
  defaultCooldownSec: number;
  /** null = soft limits off. */
  softLimitThreshold: number | null;
  /** Requests one account may serve at once (MAX_CONCURRENT_PER_ACCOUNT); null = no cap. An account's meta.maxConcurrent overrides it. */
  maxConcurrentPerAccount?: number | null;
  /**
   * Providers whose accounts still serve with no quota left (Antigravity spending AI credits): a
   * reading of 0 only soft-limits them. Every other account with a spent window waits for its reset.
   */
  servesPastQuota?: ReadonlySet<ProviderId>;
  /** How often touches, bindings and writes the store refused are written in the background (ms). */
  flushIntervalMs?: number;
}

/** The account's own cap (meta.maxConcurrent, set by `mcp accounts set`; 0 = none for it), else the pool's. */
export function concurrencyCapOf(account: Account, poolCap: number | null): number | null {
  const own = account.meta.maxConcurrent;
  if (typeof own === 'number' && Number.isInteger(own) && own >= 0) return own === 0 ? null : own;
  return poolCap;
}

/**
 * A change of state the store did not take (busy past its timeout, disk full). Its write is retried
 * until it lands; until then `reapply` puts it back into the view after every reload, so neither a
 * request nor a reload forgets a limit or an invalid account the store does not have yet.
 */
interface Unsaved {
  what: string;
  write(): void;
  reapply(): void;
  /** A limit that ran out while unsaved need not be written at all. */
  expiresAt?: number;
  /** Whether its refusal was warned about (its storing after all is then worth a word too). */
  warned?: boolean;
}

function limitKey(accountId: string, model: string): string {
  return `${accountId}\u0000${model}`;
}

function byModel(records: readonly QuotaRecord[]): Map<string, QuotaRecord[]> {
  const out = new Map<string, QuotaRecord[]>();
  for (const r of records) {
    const k = r.model.toLowerCase(); // ALL_MODELS ('*') stays itself
    const list = out.get(k);
    if (list) list.push(r);
    else out.set(k, [r]);
  }
  return out;
}

/** The lowest known remaining fraction among `list` and `min`; a window whose reset has passed is full again, whatever the last poll said. */
function tightest(list: readonly QuotaRecord[] | undefined, t: number, min: number | null): number | null {
  if (!list) return min;
  for (const q of list) {
    if (q.remainingFraction === null || (q.resetAt !== null && q.resetAt <= t)) continue;
    if (min === null || q.remainingFraction < min) min = q.remainingFraction;
  }
  return min;
}

/** The tightest remaining fraction for `model` (lower-cased) among an account's quotas by model, account-wide ones included. */
function remainingIn(idx: Map<string, QuotaRecord[]> | undefined, model: string, t: number): number | null {
  if (!idx) return null;
  return tightest(idx.get(ALL_MODELS), t, tightest(idx.get(model), t, null));
}

/** A window a reading found spent: nothing left, and its reset still ahead. */
function spentAt(q: QuotaRecord, t: number): q is QuotaRecord & { resetAt: number } {
  return q.remainingFraction === 0 && q.resetAt !== null && q.resetAt > t;
}

/**
 * The latest reset among the windows in `list` that a reading found spent (0 left, reset still
 * ahead), or `max`. Upstream answers such an account with a 429 until then: asking it is a wasted
 * call, and draining an account to the bone has cost week-long resets (antigravity.md §10.3).
 */
function spentUntil(list: readonly QuotaRecord[] | undefined, t: number, max: number | null): number | null {
  if (!list) return max;
  for (const q of list) {
    if (spentAt(q, t) && (max === null || q.resetAt > max)) max = q.resetAt;
  }
  return max;
}

/**
 * An account's spent quota windows as the limits they amount to (one per model, the latest reset),
 * for the views: /account-limits, the dashboard and `mcp accounts list` show what the pool routes by.
 */
export function quotaLimits(accountId: string, quotas: readonly QuotaRecord[], t: number): ModelLimit[] {
  const out = new Map<string, ModelLimit>();
  for (const q of quotas) {
    if (!spentAt(q, t)) continue;
    const model = q.model === ALL_MODELS ? ALL_MODELS : q.model.toLowerCase();
    const cur = out.get(model);
    if (cur && cur.resetAt >= q.resetAt) continue;
    const reason = `quota reading: nothing left${q.window ? ` in the ${q.window} window` : ''}`;
    out.set(model, { accountId, model: q.model, kind: 'quota_exhausted', resetAt: q.resetAt, reason, updatedAt: q.fetchedAt });
  }
  return [...out.values()];
}

/** Stored limits still in force, with the spent quota windows merged in: per model the later reset shows. */
export function limitsInForce(accountId: string, stored: readonly ModelLimit[], quotas: readonly QuotaRecord[], t: number): ModelLimit[] {
  const live = stored.filter((l) => l.accountId === accountId && l.resetAt > t);
  for (const q of quotaLimits(accountId, quotas, t)) {
    const i = live.findIndex((l) => l.model.toLowerCase() === q.model.toLowerCase());
    if (i < 0) live.push(q);
    else if (live[i]!.resetAt < q.resetAt) live[i] = q;
  }
  return live;
}

/**
 * The quota limits of `accountId` (from 429s) that a reading asked for at `readAt` contradicts: the
 * reading shows quota left on that model, and began well after the limit was set. Without this a
 * mistaken quota 429, or a quota Google gave back early, parks the account until the reset the 429
 * named (days, with the weekly windows), and nothing else would look at it again before then.
 */
export function limitsLiftedBy(accountId: string, stored: Iterable<ModelLimit>, quotas: readonly QuotaRecord[], readAt: number, t: number): ModelLimit[] {
  const idx = byModel(quotas);
  const all = idx.get(ALL_MODELS);
  const out: ModelLimit[] = [];
  for (const l of stored) {
    if (l.accountId !== accountId || l.kind !== 'quota_exhausted' || l.resetAt <= t) continue;
    if (l.updatedAt + READING_OUTRANKS_429_AFTER_MS > readAt) continue;
    // An account-wide limit needs account-wide figures; a model's limit goes by its own and the account's.
    const left = l.model === ALL_MODELS ? tightest(all, t, null) : tightest(all, t, tightest(idx.get(l.model.toLowerCase()), t, null));
    if (left !== null && left > 0) out.push(l);
  }
  return out;
}

export function createPool(opts: PoolOptions): Pool {
  const { db, now } = opts;
  let accounts: Account[] = [];
  let byId = new Map<string, Account>();
  let limits = new Map<string, ModelLimit>();
  let quotasByAccount = new Map<string, QuotaRecord[]>();
  // The same quotas by lower-cased model ('*' for the account-wide ones): routing asks per request and
  // per account, and a Google account has some thirty figures since the quota windows.
  let quotasByModel = new Map<string, Map<string, QuotaRecord[]>>();
  let version = -1;
  const inFlight = new Map<string, number>();
  const poolCap = opts.maxConcurrentPerAccount ?? null;
  const servesPastQuota: ReadonlySet<ProviderId> = opts.servesPastQuota ?? new Set();
  // Requests waiting for an account below its cap: any release (or a reload) wakes them all to ask again.
  const slotWaiters = new Set<() => void>();
  // Requests waiting for a limit to end: only a reload or a quota reading can end one early.
  const changeWaiters = new Set<() => void>();
  function wake(waiters: Set<() => void>): void {
    const all = [...waiters];
    waiters.clear();
    for (const w of all) w();
  }
  function wakeSlotWaiters(): void {
    wake(slotWaiters);
  }
  function wakeAllWaiters(): void {
    if (slotWaiters.size) wake(slotWaiters);
    if (changeWaiters.size) wake(changeWaiters);
  }
  function waitOn(waiters: Set<() => void>, ms: number, signal?: AbortSignal): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      if (signal?.aborted) return resolve(false);
      const done = (freed: boolean): void => {
        clearTimeout(timer);
        waiters.delete(woken);
        signal?.removeEventListener('abort', onAbort);
        resolve(freed);
      };
      const woken = (): void => done(true);
      const onAbort = (): void => done(false);
      const timer = setTimeout(() => done(false), Math.max(0, ms));
      waiters.add(woken);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
  const lastUsed = new Map<string, number>();
  const pendingTouch = new Map<string, number>();
  const failures = new Map<string, number>();
  /** When the last transient failure counted in `failures` was reported, per account. */
  const lastFailureAt = new Map<string, number>();
  const bindings = new Map<string, string>();
  /** Binding keys only side requests have bound so far (AcquireRequest.side): a main request's binding outranks them. */
  const sideBound = new Set<string>();
  /**
   * Binding keys whose account has not served the conversation a turn since a main request bound it
   * there: 'pending' while that first turn is on its way, 'failed' once the account failed it. A
   * failed one is no binding: the conversation has no cache on that account, and the account that
   * serves the turn instead will have it. Not stored: after a restart every binding counts as served.
   */
  const firstTurn = new Map<string, 'pending' | 'failed'>();
  /** The binding key of each main request's lease, so its outcome can settle firstTurn. */
  const leaseBinding = new WeakMap<Lease, string>();
  /** `${provider}:${model}` whose every account was at or below the soft floor at its last lease. */
  const belowFloor = new Set<string>();
  // Written with the touches, off the hot path: a restart loses at most one flush interval of them.
  const pendingBindings = new Map<string, SessionBinding>();
  // When each lease was handed out: a success clears only the limits older than its request.
  const leasedAt = new WeakMap<Lease, number>();
  const addedListeners: Array<(ids: string[]) => void> = [];
  const removedListeners: Array<(ids: string[]) => void> = [];
  let syncTimer: ReturnType<typeof setInterval> | undefined;
  let touchTimer: ReturnType<typeof setInterval> | undefined;
  // Keyed by what they change (one limit, one account's status, one account's quotas): the newest wins.
  const unsaved = new Map<string, Unsaved>();
  trackSize('pool.bindings', () => bindings.size + firstTurn.size);
  trackSize('pool.limits', () => limits.size);
  trackSize('pool.unsaved', () => unsaved.size);
  trackSize('pool.slotWaiters', () => slotWaiters.size + changeWaiters.size);
  trackSize('pool.perAccount', () => lastUsed.size + failures.size + lastFailureAt.size + inFlight.size);

  /** When the store began refusing writes for a lock (another process holds it); null once a write lands. */
  let lockedSince: number | null = null;
  /** Why the store refuses the changes in `unsaved`, once worth a word; null once nothing waits. */
  let writeTrouble: string | null = null;

  /**
   * Writes state to the store. A store that fails (busy past its timeout, disk full) must not turn
   * a request into a 500: this process keeps acting on what it knows, and retries the write.
   */
  function persist(key: string, u: Unsaved, tryNow = true): void {
    // A newer change of the same thing inherits whether its refusal was already said.
    if (unsaved.get(key)?.warned) u.warned = true;
    if (!tryNow) {
      unsaved.set(key, u);
      return;
    }
    try {
      briefly(db, u.write);
      unsaved.delete(key);
      lockedSince = null;
      if (!unsaved.size) writeTrouble = null;
    } catch (err) {
      unsaved.set(key, u);
      refused(err);
    }
  }

  /**
   * Says once which writes the store refuses: at once for a failure that will not pass by itself
   * (read-only, full disk), only once a lock has lasted LOCK_WARN_AFTER_MS for a lock.
   */
  function refused(err: unknown): void {
    if (isBusyError(err)) {
      lockedSince ??= now();
      if (now() - lockedSince < LOCK_WARN_AFTER_MS) return;
    }
    writeTrouble = (err as Error)?.message ?? String(err);
    const due = [...unsaved.values()].filter((u) => !u.warned);
    if (!due.length) return;
    for (const u of due) u.warned = true;
    const more = due.length > 1 ? ` (and ${due.length - 1} other change(s))` : '';
    log.warn(`could not store ${due[0]!.what}${more}, will retry: ${(err as Error)?.message ?? err}`);
  }

  /** On the slow timer (a brief wait on a lock) and at stop (the store's full wait, so nothing is lost lightly). */
  function retryUnsaved(wait = false): void {
    for (const [key, u] of unsaved) {
      if (u.expiresAt !== undefined && u.expiresAt <= now()) {
        unsaved.delete(key);
        continue;
      }
      try {
        if (wait) u.write();
        else briefly(db, u.write);
      } catch (err) {
        const code = String((err as { code?: unknown } | null)?.code ?? '');
        // Busy or locked: every other write would wait out the timeout too, so they wait for the next round.
        if (isBusyError(err)) {
          // At stop there is no next round: what is left is reported lost right after.
          if (!wait) refused(err);
          return;
        }
        // The account was removed (the CLI): its state has nowhere to go, and must not block the rest.
        if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
          unsaved.delete(key);
          log.info(`dropped ${u.what}: the account is gone`);
          continue;
        }
        refused(err);
        continue;
      }
      unsaved.delete(key);
      lockedSince = null;
      // A refusal nobody was told about needs no news of its end.
      if (u.warned) log.info(`stored ${u.what} after all`);
    }
    // Nothing left waiting (what was stored, or ran out first): the next lock is a new one.
    if (!unsaved.size) lockedSince = writeTrouble = null;
  }

  function load(announce: boolean): void {
    // Every read first: a store that fails halfway must leave the view as it was, not half new.
    const readAccounts = listAccounts(db);
    const readLimits = listLimits(db);
    const readQuotas = listQuotas(db);
    const previous = byId;
    accounts = readAccounts;
    byId = new Map(accounts.map((a) => [a.id, a]));
    limits = new Map(readLimits.map((l) => [limitKey(l.accountId, l.model), l]));
    const q = new Map<string, QuotaRecord[]>();
    for (const r of readQuotas) {
      const list = q.get(r.accountId);
      if (list) list.push(r);
      else q.set(r.accountId, [r]);
    }
    quotasByAccount = q;
    quotasByModel = new Map([...q].map(([id, records]) => [id, byModel(records)]));
    for (const a of accounts) {
      const mine = lastUsed.get(a.id);
      if (a.lastUsedAt !== null && (mine === undefined || a.lastUsedAt > mine)) lastUsed.set(a.id, a.lastUsedAt);
    }
    for (const id of [...bindings.keys()]) {
      if (byId.has(bindings.get(id)!)) continue;
      bindings.delete(id);
      sideBound.delete(id);
      firstTurn.delete(id);
    }
    // Accounts removed (the CLI) take their bookkeeping along: over months of churn it would pile up.
    for (const id of lastUsed.keys()) if (!byId.has(id)) lastUsed.delete(id);
    for (const id of failures.keys()) if (!byId.has(id)) failures.delete(id);
    for (const id of lastFailureAt.keys()) if (!byId.has(id)) lastFailureAt.delete(id);
    for (const u of unsaved.values()) u.reapply();
    if (announce) {
      // One enabled again counts as new: its quota and listing were not read while it was disabled.
      const added = accounts
        .filter((a) => {
          const before = previous.get(a.id);
          return !before || (before.status === 'disabled' && a.status !== 'disabled');
        })
        .map((a) => a.id);
      if (added.length) for (const fn of addedListeners) fn(added);
      const removed = [...previous.values()]
        .filter((before) => {
          const a = byId.get(before.id);
          return before.status !== 'disabled' && (!a || a.status === 'disabled');
        })
        .map((a) => a.id);
      if (removed.length) for (const fn of removedListeners) fn(removed);
    }
    // New accounts, caps or cleared limits from the CLI may have made room.
    wakeAllWaiters();
  }

  let lastLook = Number.NEGATIVE_INFINITY;
  // Why the last read of the store failed; null while it reads fine.
  let storeTrouble: string | null = null;
  let storeRetryAt = 0;
  function syncSoon(): void {
    if (performance.now() - lastLook >= HOT_SYNC_MS) sync();
  }

  /**
   * Reloads when another connection committed. A store that cannot be read (locked past its
   * timeout, damaged, its disk gone) is not a reason to fail requests: the pool keeps routing on
   * what it last read, says so once, and reads again STORE_RETRY_MS later (a locked store holds
   * each read for busy_timeout, and the whole process with it). Only the very first read, at
   * start-up, throws.
   */
  function sync(): boolean {
    lastLook = performance.now();
    // A clock stepped back past the failure would otherwise put the next read off by the jump.
    if (storeTrouble !== null && now() < storeRetryAt && now() >= storeRetryAt - STORE_RETRY_MS) return false;
    try {
      const v = dataVersion(db);
      if (v === version) {
        readable();
        return false;
      }
      load(version >= 0);
      // Only once it is read: a failed reload is tried again, not taken as done.
      version = v;
      readable();
      return true;
    } catch (err) {
      if (version < 0) throw err;
      const message = (err as Error)?.message ?? String(err);
      if (storeTrouble === null) log.warn(`cannot read the database, routing on what was last read from it: ${message}`);
      storeTrouble = message;
      storeRetryAt = now() + STORE_RETRY_MS;
      return false;
    }
  }

  function readable(): void {
    if (storeTrouble === null) return;
    storeTrouble = null;
    log.info('the database can be read again');
  }

  /** The limit in force for the model that ends last (its own or the account-wide one), or null. */
  function limitOf(accountId: string, model: string, t: number): ModelLimit | null {
    const own = limits.get(limitKey(accountId, model));
    const all = model === ALL_MODELS ? undefined : limits.get(limitKey(accountId, ALL_MODELS));
    let found: ModelLimit | null = null;
    if (own && own.resetAt > t) found = own;
    if (all && all.resetAt > t && (found === null || all.resetAt > found.resetAt)) found = all;
    return found;
  }

  function setAccountQuotas(accountId: string, records: QuotaRecord[]): void {
    quotasByAccount.set(accountId, records);
    quotasByModel.set(accountId, byModel(records));
  }

  function candidates(provider: ProviderId, model: string, t: number, only?: string, skip?: ReadonlySet<string>): Candidate[] {
    const out: Candidate[] = [];
    const key = model.toLowerCase();
    const spentStops = !servesPastQuota.has(provider);
    for (const a of accounts) {
      if (a.provider !== provider || (only && a.id !== only) || skip?.has(a.id)) continue;
      const limit = limitOf(a.id, model, t);
      let limitedUntil = limit?.resetAt ?? null;
      let limitKind = limit?.kind ?? null;
      const idx = quotasByModel.get(a.id);
      let remaining: number | null = null;
      if (idx) {
        const own = idx.get(key);
        const all = idx.get(ALL_MODELS);
        remaining = remainingIn(idx, key, t);
        const spent = spentStops && remaining === 0 ? spentUntil(all, t, spentUntil(own, t, null)) : null;
        if (spent !== null && (limitedUntil === null || spent > limitedUntil)) {
          limitedUntil = spent;
          limitKind = 'quota_exhausted';
        }
      }
      out.push({
        id: a.id,
        status: a.status,
        limitedUntil,
        limitKind,
        remaining,
        inFlight: inFlight.get(a.id) ?? 0,
        maxInFlight: concurrencyCapOf(a, poolCap),
        lastUsedAt: lastUsed.get(a.id) ?? null,
      });
    }
    return out;
  }

  function describeNone(req: AcquireRequest): string {
    const mine = accounts.filter((a) => a.provider === req.provider);
    if (!mine.length) return `no ${req.provider} account in the pool`;
    // An active account that cannot serve the model says so, not just "active".
    const state = (a: Account): string =>
      a.status === 'active' && req.skip?.has(a.id) ? `its models do not include ${req.model}` : `${a.status}${a.statusReason ? ` (${a.statusReason})` : ''}`;
    return mine.map((a) => `${a.label}: ${state(a)}`).join('; ');
  }

  /**
   * Says once per model, not per request, when every account that could serve it is at or below
   * the soft floor (the floor can no longer be kept), and once more when one is above it again.
   */
  function noteFloor(req: AcquireRequest, t: number): void {
    const key = `${req.provider}:${req.model}`;
    // Every account that could take it now, busy or not: one above the floor at its cap is no news.
    const open = candidates(req.provider, req.model, t, undefined, req.skip).filter((c) => c.status === 'active' && (c.limitedUntil === null || c.limitedUntil <= t));
    const soft = open.length > 0 && open.every((c) => isSoftLimited(c, opts.softLimitThreshold));
    if (soft === belowFloor.has(key)) return;
    if (soft) {
      // Model names come from clients: a bound keeps a stream of made-up ones from piling up.
      if (belowFloor.size >= MAX_BINDINGS) belowFloor.clear();
      belowFloor.add(key);
      const pct = Math.round((opts.softLimitThreshold ?? 0) * 100);
      log.warn(`every ${req.provider} account that can serve ${req.model} is at or below the soft quota floor (${pct}% left, SOFT_LIMIT_THRESHOLD): serving from those with the most left`);
    } else {
      belowFloor.delete(key);
      log.info(`${req.model}: a ${req.provider} account above the soft quota floor serves it again`);
    }
  }

  function bind(family: string, session: string, key: string, accountId: string, t: number): void {
    // Whether only side requests bound it goes to the store too: a restart keeps the rule.
    pendingBindings.set(key, { family, session, accountId, boundAt: t, ...(sideBound.has(key) ? { side: true } : {}) });
    bindings.delete(key);
    bindings.set(key, accountId);
    if (bindings.size > MAX_BINDINGS) {
      const oldest = bindings.keys().next().value!;
      bindings.delete(oldest);
      sideBound.delete(oldest);
      firstTurn.delete(oldest);
    }
  }

  function bindKeyOf(req: AcquireRequest): string {
    return `${req.familyKey}\u0000${req.sessionKey}`;
  }

  function historyBindKeyOf(req: AcquireRequest): string | null {
    return req.historyKey ? `${req.familyKey}\u0000${req.historyKey}` : null;
  }

  function boundAccountOf(req: AcquireRequest, bindKey: string): string | null {
    if (req.only) return req.only;
    const own = bindings.get(bindKey);
    // Nor its history's binding: that is the same account, bound by the same failed request.
    if (own !== undefined) return firstTurn.get(bindKey) === 'failed' ? null : own;
    const history = historyBindKeyOf(req);
    return history === null ? null : (bindings.get(history) ?? null);
  }

  function select(req: AcquireRequest, t: number, bindKey: string): Exclude<Selection, { kind: 'limited' }> | Extract<AcquireResult, { kind: 'limited' }> {
    const cands = candidates(req.provider, req.model, t, req.only, req.skip);
    const sel = selectAccount({
      candidates: cands,
      boundAccountId: boundAccountOf(req, bindKey),
      softLimitThreshold: opts.softLimitThreshold,
      exclude: req.exclude,
      now: t,
    });
    if (sel.kind !== 'limited') return sel;
    const kinds = limitKindsOf(cands, t);
    return kinds.length > 1 ? { ...sel, kinds } : sel;
  }

  function peek(req: AcquireRequest): PeekResult {
    syncSoon();
    const sel = select(req, now(), bindKeyOf(req));
    if (sel.kind === 'account') return { kind: 'free' };
    if (sel.kind === 'none') return { kind: 'none', reason: sel.reason, detail: describeNone(req) };
    return sel;
  }

  function acquire(req: AcquireRequest): AcquireResult {
    syncSoon();
    const t = now();
    const bindKey = bindKeyOf(req);
    const sel = select(req, t, bindKey);
    if (sel.kind === 'limited' || sel.kind === 'busy') return sel;
    if (sel.kind === 'none') return { kind: 'none', reason: sel.reason, detail: describeNone(req) };
    const account = byId.get(sel.accountId)!;
    if (sel.soft || (belowFloor.size && belowFloor.has(`${req.provider}:${req.model}`))) noteFloor(req, t);
    // An overflow serves one request elsewhere; the conversation's cache stays on its account. A
    // retry on one account (only: after a credential refresh) repeats an attempt that already bound
    // the conversation if it was to: an overflow's retry must not take the binding now.
    const current = bindings.get(bindKey);
    const sideElsewhere = req.side === true && current !== undefined && current !== account.id && !sideBound.has(bindKey);
    // A main request overflowing a binding only side requests made (a title still running on that
    // account's last slot) takes the conversation: its cache will be where it is served, not there.
    const overSide = sel.overflow && req.side !== true && current !== undefined && sideBound.has(bindKey);
    if ((!sel.overflow || overSide) && !(req.only && current !== undefined) && !sideElsewhere) {
      if (!req.side) {
        // A conversation placed here anew (or after its side requests, whose cache is not its own) has
        // its first turn here still to come; one already served here keeps its standing.
        if (current !== account.id || sideBound.has(bindKey) || firstTurn.has(bindKey)) firstTurn.set(bindKey, 'pending');
        sideBound.delete(bindKey);
      } else if (current === undefined) sideBound.add(bindKey);
      bind(req.familyKey, req.sessionKey, bindKey, account.id, t);
      const history = historyBindKeyOf(req);
      if (history !== null) bind(req.familyKey, req.historyKey!, history, account.id, t);
    }
    inFlight.set(account.id, (inFlight.get(account.id) ?? 0) + 1);
    lastUsed.set(account.id, t);
    pendingTouch.set(account.id, t);
    let released = false;
    const lease: Lease = {
      account,
      provider: req.provider,
      model: req.model,
      sticky: sel.sticky,
      soft: sel.soft,
      remaining: remainingIn(quotasByModel.get(account.id), req.model.toLowerCase(), t),
      release() {
        if (released) return;
        released = true;
        const n = (inFlight.get(account.id) ?? 1) - 1;
        if (n <= 0) inFlight.delete(account.id);
        else inFlight.set(account.id, n);
        if (slotWaiters.size) wakeSlotWaiters();
      },
    };
    leasedAt.set(lease, t);
    if (!req.side) leaseBinding.set(lease, bindKey);
    return { kind: 'lease', lease };
  }

  /** tryNow false: straight to the retry queue (the store just refused a write; waiting on it again blocks the request). */
  function putLimit(accountId: string, model: string, kind: LimitKind, resetAt: number, reason: string | null, tryNow = true): void {
    // A reason is an upstream's words, and it is stored and shown (/health, dashboard, accounts list):
    // a credential it quotes goes no further.
    const l: ModelLimit = { accountId, model, kind, resetAt, reason: reason === null ? null : maskSecrets(reason), updatedAt: now() };
    // A shorter new limit never shortens a longer one already known (a throttle inside a quota wait).
    const cur = limits.get(limitKey(accountId, model));
    if (cur && cur.resetAt > resetAt && cur.resetAt > now()) return;
    const key = limitKey(accountId, model);
    limits.set(key, l);
    persist(
      `limit\u0000${key}`,
      {
        what: `the limit of ${accountId} on ${model}`,
        write: () => setLimit(db, l),
        reapply: () => limits.set(key, l),
        expiresAt: resetAt,
      },
      tryNow,
    );
  }

  function clearOwnLimit(accountId: string, model: string): void {
    const key = limitKey(accountId, model);
    limits.delete(key);
    persist(`limit\u0000${key}`, {
      what: `the cleared limit of ${accountId} on ${model}`,
      write: () => clearLimit(db, accountId, model),
      reapply: () => limits.delete(key),
    });
  }

  function markInvalid(account: Account, reason: string, verifyUrl: string | null = null): void {
    const id = account.id;
    setStatus(id, ['active', 'invalid'], { status: 'invalid', statusReason: maskSecrets(reason), verifyUrl }, `that account ${id} is invalid`, secretOf(account.credentials));
  }

  function reactivate(accountId: string): boolean {
    return setStatus(accountId, ['invalid'], { status: 'active', statusReason: null, verifyUrl: null }, `that account ${accountId} is usable again`);
  }

  /**
   * A status the server decided, stored and cached only over one of `from`: a `disabled` the user set
   * (maybe in the CLI, not yet seen here) always stays. Returns whether the account changed.
   */
  function setStatus(
    accountId: string,
    from: readonly AccountStatus[],
    patch: { status: AccountStatus; statusReason: string | null; verifyUrl: string | null },
    what: string,
    ifSecret?: string,
  ): boolean {
    const key = `status\u0000${accountId}`;
    const apply = (): boolean => {
      const cur = byId.get(accountId);
      if (!cur || !from.includes(cur.status) || (ifSecret !== undefined && secretOf(cur.credentials) !== ifSecret)) return false;
      replaceCached({ ...cur, ...patch });
      return true;
    };
    let changed = false;
    persist(key, {
      what,
      write: () => {
        const stored = setStatusIf(db, accountId, from, patch, now(), ifSecret);
        if (stored) replaceCached(stored.account);
        changed = stored?.changed ?? false;
      },
      reapply: apply,
    });
    return unsaved.has(key) ? apply() : changed;
  }

  function replaceCached(a: Account): void {
    const i = accounts.findIndex((x) => x.id === a.id);
    if (i >= 0) accounts[i] = a;
    byId.set(a.id, a);
  }

  function report(lease: Lease, outcome: Outcome): void {
    const id = lease.account.id;
    if (outcome.kind === 'aborted' || outcome.kind === 'neutral') return;
    const bindKey = leaseBinding.get(lease);
    if (bindKey !== undefined && firstTurn.has(bindKey) && bindings.get(bindKey) === id) {
      if (outcome.kind === 'success') firstTurn.delete(bindKey);
      else firstTurn.set(bindKey, 'failed');
    }
    if (outcome.kind === 'success') {
      failures.delete(id);
      // Only a limit that is still on record needs a write: success on the hot path stays write-free.
      // A limit set after this request began (a parallel one hit the quota while this stream ran) is
      // newer news than this success: it stays.
      const cur = limits.get(limitKey(id, lease.model));
      const began = leasedAt.get(lease);
      if (cur && (began === undefined || cur.updatedAt < began || cur.resetAt <= now())) clearOwnLimit(id, lease.model);
      return;
    }
    const e = outcome.error;
    const t = now();
    const cooldown = opts.defaultCooldownSec * 1000;
    const model = e.scope === 'account' ? ALL_MODELS : lease.model;
    const reason = e.code ? `${e.code}: ${e.message}` : e.message;
    switch (e.kind) {
      case 'rate_limited':
      case 'quota_exhausted': {
        const until = e.resetAt !== null ? Math.max(e.resetAt, t + MIN_LIMIT_MS) : t + cooldown;
        putLimit(id, model, e.kind, until, reason);
        // The models that draw on the same quota are out too: no request should find that out the hard way.
        // A store that just refused the first write is not waited on (busy_timeout) again for each of them.
        const storeRefused = unsaved.has(`limit\u0000${limitKey(id, model)}`);
        for (const other of e.sharedWith) putLimit(id, other, e.kind, until, `${reason} (quota shared with ${lease.model})`, !storeRefused);
        return;
      }
      case 'no_access':
        putLimit(id, model, 'no_access', e.resetAt ?? t + NO_ACCESS_RECHECK_MS, reason);
        return;
      case 'capacity':
        putLimit(id, model, 'capacity', e.resetAt !== null ? Math.max(e.resetAt, t + MIN_LIMIT_MS) : t + CAPACITY_COOLDOWN_MS, reason);
        return;
      case 'transient': {
        // Requests sent together meet one upstream blip together: only the failure of a request sent
        // well after the last counted one adds up, or a burst's single blip would rest the account
        // (and move every conversation on it for good) as if it had failed three times in a row.
        const began = leasedAt.get(lease);
        const lastAt = lastFailureAt.get(id);
        if (began !== undefined && lastAt !== undefined && began < lastAt + TRANSIENT_BURST_MS && failures.has(id)) return;
        const n = (failures.get(id) ?? 0) + 1;
        failures.set(id, n);
        lastFailureAt.set(id, t);
        if (n >= TRANSIENT_FAILURES_BEFORE_COOLDOWN) {
          failures.delete(id);
          putLimit(id, lease.model, 'transient', t + cooldown, `${n} failures in a row: ${reason}`);
        }
        return;
      }
      case 'auth':
      case 'invalid_account':
        markInvalid(lease.account, reason, e.verifyUrl);
        return;
      default:
        return;
    }
  }

  function flushTouches(wait = false): void {
    if (!pendingTouch.size) return;
    const batch = new Map(pendingTouch);
    pendingTouch.clear();
    try {
      if (wait) touchAccounts(db, batch);
      else briefly(db, () => touchAccounts(db, batch));
    } catch {
      // The store was busy or closed; the times are a convenience and come back on the next use.
    }
  }

  function flushBindings(wait = false): void {
    if (!pendingBindings.size) return;
    const batch = new Map(pendingBindings);
    pendingBindings.clear();
    try {
      const save = () => saveBindings(db, [...batch.values()], now() - BINDING_KEEP_MS, MAX_BINDINGS);
      if (wait) save();
      else briefly(db, save);
    } catch {
      // Kept for the next flush (a lock held past the brief wait is common: the CLI), or a restart
      // moves these conversations off their caches. Nothing was bound meanwhile (the write is
      // synchronous). A store refusing for long holds no more than the pool itself keeps.
      for (const [key, b] of batch) pendingBindings.set(key, b);
      for (const key of pendingBindings.keys()) {
        if (pendingBindings.size <= MAX_BINDINGS) break;
        pendingBindings.delete(key);
      }
    }
  }

  sync();
  try {
    for (const b of loadBindings(db, now() - BINDING_KEEP_MS, MAX_BINDINGS)) {
      if (!byId.has(b.accountId)) continue;
      const key = `${b.family}\u0000${b.session}`;
      bindings.set(key, b.accountId);
      if (b.side) sideBound.add(key);
    }
  } catch {
    // An unreadable table costs the conversations their accounts, not the server its start.
  }

  return {
    sync,
    syncSoon,
    storeTrouble: () => storeTrouble,
    writeTrouble: () => (writeTrouble === null || !unsaved.size ? null : `${writeTrouble} (${unsaved.size} change(s) waiting in memory)`),
    accounts: () => accounts,
    account: (id) => byId.get(id),
    providersInUse() {
      const s = new Set<ProviderId>();
      for (const a of accounts) if (a.status !== 'disabled') s.add(a.provider);
      return s;
    },
    acquire,
    peek,
    report,
    markInvalid,
    reactivate,
    replaceAccount(a) {
      if (byId.has(a.id)) replaceCached(a);
    },
    applyAccountPatch(id, patch) {
      const updated = updateAccount(db, id, patch, now());
      if (updated) replaceCached(updated);
      return updated;
    },
    setQuotas(accountId, quotas, readAt) {
      const t = now();
      const records: QuotaRecord[] = quotas.map((q) => ({
        accountId,
        model: q.model,
        window: q.window ?? '',
        remainingFraction: q.remainingFraction === null || !Number.isFinite(q.remainingFraction) ? null : Math.min(1, Math.max(0, q.remainingFraction)),
        resetAt: q.resetAt,
        fetchedAt: t,
      }));
      // Two windows with the same name for one model would collide on the key: keep the tighter.
      const unique = new Map<string, QuotaRecord>();
      for (const r of records) {
        const k = `${r.model}\u0000${r.window}`;
        const cur = unique.get(k);
        if (!cur || (r.remainingFraction ?? 1) < (cur.remainingFraction ?? 1)) unique.set(k, r);
      }
      if (!byId.has(accountId)) return;
      const kept = [...unique.values()];
      setAccountQuotas(accountId, kept);
      persist(`quota\u0000${accountId}`, {
        what: `the quota of ${accountId}`,
        write: () => replaceQuotas(db, accountId, kept),
        reapply: () => setAccountQuotas(accountId, kept),
      });
      for (const l of limitsLiftedBy(accountId, limits.values(), kept, readAt ?? t, t)) {
        clearOwnLimit(accountId, l.model);
        const label = byId.get(accountId)?.label ?? accountId;
        log.info(`account ${label}: a quota reading shows quota left${l.model === ALL_MODELS ? '' : ` on ${l.model}`}; the earlier limit (${l.reason ?? 'a 429'}) is lifted`);
      }
      // A window no longer spent, or a limit lifted, frees the account before any reset announces it.
      wakeAllWaiters();
    },
    state() {
      const t = now();
      return accounts.map((a) => ({
        account: a,
        inFlight: inFlight.get(a.id) ?? 0,
        maxConcurrent: concurrencyCapOf(a, poolCap),
        lastUsedAt: lastUsed.get(a.id) ?? a.lastUsedAt,
        limits: servesPastQuota.has(a.provider)
          ? [...limits.values()].filter((l) => l.accountId === a.id && l.resetAt > t)
          : limitsInForce(a.id, [...limits.values()], quotasByAccount.get(a.id) ?? [], t),
        quotas: quotasByAccount.get(a.id) ?? [],
      }));
    },
    inFlight: (id) => inFlight.get(id) ?? 0,
    waitForSlot: (ms, signal) => waitOn(slotWaiters, ms, signal),
    waitForChange: (ms, signal) => waitOn(changeWaiters, ms, signal),
    onAccountsAdded(fn) {
      addedListeners.push(fn);
    },
    onAccountsRemoved(fn) {
      removedListeners.push(fn);
    },
    start() {
      try {
        clearExpiredLimits(db, now());
      } catch {
        // busy: expired limits are ignored anyway
      }
      if (!syncTimer) {
        syncTimer = setInterval(() => {
          try {
            sync();
          } catch {
            // the database is closing
          }
        }, SYNC_INTERVAL_MS);
        syncTimer.unref?.();
      }
      if (!touchTimer) {
        touchTimer = setInterval(() => {
          retryUnsaved();
          flushTouches();
          flushBindings();
        }, opts.flushIntervalMs ?? TOUCH_FLUSH_MS);
        touchTimer.unref?.();
      }
    },
    stop() {
      if (syncTimer) clearInterval(syncTimer);
      if (touchTimer) clearInterval(touchTimer);
      syncTimer = touchTimer = undefined;
      retryUnsaved(true);
      for (const u of unsaved.values()) log.error(`could not store ${u.what} before stopping: it is lost`);
      unsaved.clear();
      writeTrouble = null;
      flushTouches(true);
      flushBindings(true);
    },
  };
}
