// Background quota refresh: every active account's provider is asked for its remaining quota (and
// the models it serves) at start, every quotaPollIntervalSec (jittered so accounts and processes do
// not line up; a round asks a few accounts at a time), right after a 429, after serving near the
// soft floor, and as soon as a new account shows up in the store. On the same rounds an account
// marked invalid is re-verified, and put back in rotation once it passes (the user completed
// Google's verification, paid a bill): an account is never lost to a state it left.
import type { Config } from '../config.ts';
import { trackSize } from '../diagnostics.ts';
import { log } from '../log.ts';
import type { Pool } from '../pool/pool.ts';
import type { Account } from '../store/accounts.ts';
import { UpstreamError } from '../providers/provider.ts';
import type { Catalog } from './catalog.ts';
import type { Providers } from './gateway.ts';

/** After a 429 the quota is re-read at most this often per account. */
const AFTER_429_MIN_GAP_MS = 5_000;
/**
 * How far above the soft floor (SOFT_LIMIT_THRESHOLD) an account's last reading must be for a request
 * it serves to have its quota re-read, and at most how often per account: between two rounds a team
 * drains an account far past the floor, which the pool only sees in a reading.
 */
const NEAR_FLOOR_MARGIN = 0.1;
const NEAR_FLOOR_MIN_GAP_MS = 60_000;
/** One quota call may take this long. */
const CALL_TIMEOUT_MS = 30_000;
/**
 * Accounts a round asks at once. Fifty accounts asked together are a hundred calls (and as many
 * 200 KB catalogs) from one address in the same second, every round: a burst the upstream may
 * throttle or hold against the accounts.
 */
const ROUND_CONCURRENCY = 4;

export interface QuotaPoller {
  start(): void;
  /** Stops the timer and aborts the calls in flight; resolves when they are over. */
  stop(): Promise<void>;
  /** Polls every active account now; resolves when all have answered or failed. */
  pollAll(): Promise<void>;
  /** Polls one account now (single-flight per account). */
  pollAccount(id: string): Promise<void>;
  /** A 429 was seen on the account: re-read its quota soon (rate-limited per account). */
  afterRateLimit(id: string): void;
  /** The account served a request; `remaining` is its last reading for the model: near the soft floor, re-read it (rate-limited). */
  afterUse(id: string, remaining: number | null): void;
}

export function createQuotaPoller(deps: {
  config: Readonly<Config>;
  pool: Pool;
  catalog: Catalog;
  providers: Providers;
  now: () => number;
}): QuotaPoller {
  const { config, pool, catalog, providers, now } = deps;
  const inflight = new Map<string, Promise<void>>();
  const lastAfter429 = new Map<string, number>();
  const lastNearFloor = new Map<string, number>();
  trackSize('quota.perAccount', () => lastAfter429.size + lastNearFloor.size);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running = false;
  const stopper = new AbortController();

  async function pollOne(id: string): Promise<void> {
    const account = pool.account(id);
    if (!account || account.status === 'disabled') return;
    const provider = providers[account.provider];
    if (!provider) return;
    const signal = AbortSignal.any([stopper.signal, AbortSignal.timeout(CALL_TIMEOUT_MS)]);
    const wasInvalid = account.status === 'invalid';
    if (wasInvalid) {
      let ok = false;
      try {
        ok = (await provider.verify(account, signal)).ok;
      } catch {
        // still unusable; asked again next round
      }
      if (!ok || stopper.signal.aborted) return;
    }
    try {
      const readAt = now();
      const quotas = await provider.quota(account, signal);
      if (stopper.signal.aborted) return;
      if (wasInvalid) reactivate(account);
      pool.setQuotas(id, quotas, readAt);
    } catch (err) {
      if (stopper.signal.aborted) return;
      const e = err instanceof UpstreamError ? err : null;
      if (e && e.kind === 'invalid_account') {
        if (wasInvalid) return; // verify passes but the quota says no: still not usable, nothing new to say
        pool.markInvalid(account, e.message, e.verifyUrl);
        log.warn(`account ${account.label} is not usable: ${e.message}`);
        return;
      }
      if (wasInvalid) reactivate(account);
      log.debug(`quota of ${account.label} not read: ${(err as Error)?.message ?? err}`);
      // The listing waits for the next round: for Google it is the very call that just failed (a
      // 429 would be asked again at once), and the catalog keeps what it discovered before.
      return;
    }
    try {
      const models = await provider.models(account, signal);
      // Removed or disabled while it was asked: its listing would outlive it until the next round.
      const still = pool.account(id);
      if (!stopper.signal.aborted && still !== undefined && still.status !== 'disabled') catalog.setDiscovered(id, account.provider, models);
    } catch (err) {
      log.debug(`models of ${account.label} not read: ${(err as Error)?.message ?? err}`);
    }
  }

  function reactivate(account: Account): void {
    // Through the pool's store writes: a store that refuses it is retried there, never thrown here.
    if (!pool.reactivate(account.id)) return;
    log.info(`account ${account.label} passes verification again (was invalid: ${account.statusReason ?? 'no reason'}); back in rotation`);
  }

  /** Polls the account unless `last` says it was polled for the same reason within `gapMs`. */
  function pollAtMostEvery(last: Map<string, number>, gapMs: number, id: string): void {
    const t = now();
    const at = last.get(id);
    // A last time ahead of now is a clock stepped back, not a recent read.
    if (at !== undefined && t >= at && t - at < gapMs) return;
    last.set(id, t);
    void pollAccount(id);
  }

  function pollAccount(id: string): Promise<void> {
    const cur = inflight.get(id);
    if (cur) return cur;
    // Callers fire and forget (timer, 429, new account): a failure here must be a log line, not an unhandled rejection.
    const p = pollOne(id)
      .catch((err) => log.warn(`quota round of ${id} failed: ${(err as Error)?.message ?? err}`))
      .finally(() => inflight.delete(id));
    inflight.set(id, p);
    return p;
  }

  async function pollAll(): Promise<void> {
    const accounts = pool.accounts();
    // Accounts removed (the CLI) take their poll times along: over months of churn they would pile up.
    const present = new Set(accounts.map((a) => a.id));
    for (const last of [lastAfter429, lastNearFloor]) for (const id of last.keys()) if (!present.has(id)) last.delete(id);
    const ids = accounts.filter((a) => a.status !== 'disabled').map((a) => a.id);
    // A disabled account is not asked again: its last listing would keep a model Google retired
    // looking served (and the tier targets on it) for as long as it stays disabled.
    catalog.retainAccounts(new Set(ids));
    let next = 0;
    const worker = async (): Promise<void> => {
      // After stop() the accounts still waiting are not asked at all.
      while (next < ids.length && !stopper.signal.aborted) await pollAccount(ids[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(ROUND_CONCURRENCY, ids.length) }, worker));
  }

  function schedule(): void {
    if (!running) return;
    const base = config.quotaPollIntervalSec * 1000;
    const jittered = base * (0.9 + Math.random() * 0.2);
    timer = setTimeout(() => {
      void pollAll().finally(schedule);
    }, jittered);
    timer.unref?.();
  }

  // An account removed or disabled with the CLI goes at once: its listing would keep models no account
  // serves in /v1/models (and the other accounts looking like a tier without them) until the next round.
  pool.onAccountsRemoved((ids) => {
    for (const id of ids) {
      lastAfter429.delete(id);
      lastNearFloor.delete(id);
    }
    catalog.retainAccounts(new Set(pool.accounts().filter((a) => a.status !== 'disabled').map((a) => a.id)));
  });

  pool.onAccountsAdded((ids) => {
    if (!running) return;
    for (const id of ids) void pollAccount(id);
  });

  return {
    start() {
      if (running) return;
      running = true;
      void pollAll();
      schedule();
    },
    async stop() {
      running = false;
      if (timer) clearTimeout(timer);
      stopper.abort();
      await Promise.allSettled([...inflight.values()]);
    },
    pollAll,
    pollAccount,
    afterRateLimit(id) {
      if (running) pollAtMostEvery(lastAfter429, AFTER_429_MIN_GAP_MS, id);
    },
    afterUse(id, remaining) {
      if (!running || !config.softLimitEnabled || remaining === null || remaining > config.softLimitThreshold + NEAR_FLOOR_MARGIN) return;
      pollAtMostEvery(lastNearFloor, NEAR_FLOOR_MIN_GAP_MS, id);
    },
  };
}
