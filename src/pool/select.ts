// Which account serves the next request for one model: a pure function of the pool's state and the
// clock. A conversation stays on its account while that account is usable (its prompt cache lives
// there); new conversations go to the least-loaded preferred account, so parallel sessions spread.
// Soft-limited accounts (little quota left) serve only when no preferred account can, so a conversation
// on one moves, once, to an account above the floor; with none above it, new conversations spread
// over those with comparable quota left (SOFT_SPREAD_SHARE). An account serving its cap of requests at once is
// skipped; a conversation bound to it overflows to another account for that one request and stays
// bound, so its cache is still there next turn. So does one whose account just failed it with a 5xx,
// or is paused by a short throttle or capacity cool-down (SHORT_LIMIT_MS); a longer limit moves it,
// once. (A binding whose account failed the conversation's first turn never reaches here: the pool
// passes none, as that account holds none of its cache.)
import type { AccountStatus } from '../store/accounts.ts';
import type { LimitKind } from '../store/limits.ts';

/**
 * A throttle or cool-down ending within this long is a pause, not a reason to move a conversation:
 * its request overflows to another account and the conversation comes home after it. A minute covers
 * Google's per-second RATE_LIMIT_EXCEEDED, the 10 s capacity cool-down, per-minute request windows and
 * the default cool-down of a 429 that named no time (DEFAULT_COOLDOWN_SEC, 60), and a prompt cache
 * outlives it (Google's implicit cache and Z.AI's hold for minutes). Longer limits (quotas, hours)
 * outlast the cache anyway: moving then costs nothing more.
 */
export const SHORT_LIMIT_MS = 60_000;
/**
 * When every account is limited, a conversation whose own account is only throttled waits this much
 * longer than the earliest reset for it: served elsewhere it would prefill its whole context again
 * (Claude Code's system prompt and tools alone are some 20k tokens), which takes about as long.
 */
export const HOME_WAIT_SLACK_MS = 2_000;
/**
 * With every account at or below the soft floor, one with at least this share of the fullest one's
 * quota left takes requests whenever it is less busy: the fullest cannot take every new conversation.
 */
export const SOFT_SPREAD_SHARE = 0.5;

export interface Candidate {
  id: string;
  status: AccountStatus;
  /**
   * Latest reset among the limits that apply to this model (its own, the account-wide one, and a
   * quota window read as spent); null = none.
   */
  limitedUntil: number | null;
  /** What the limit ending at limitedUntil is (null with it). */
  limitKind: LimitKind | null;
  /** Remaining quota fraction for this model (tightest window), null when unknown. */
  remaining: number | null;
  /** Requests this process is serving on the account right now. */
  inFlight: number;
  /** How many requests the account may serve at once; null = no cap. */
  maxInFlight: number | null;
  /** When this process last handed the account out (epoch ms), null = never. */
  lastUsedAt: number | null;
}

export interface SelectInput {
  /** In the pool's stable order (oldest account first): the last tie-breaker. */
  candidates: readonly Candidate[];
  /** The account this conversation is bound to for the model family, if any. */
  boundAccountId: string | null;
  /** Remaining fraction at or below which an account is soft-limited; null turns soft limits off. */
  softLimitThreshold: number | null;
  /** Accounts already tried (and failed) for this request. */
  exclude?: ReadonlySet<string>;
  now: number;
}

export type Selection =
  /**
   * overflow: the conversation's account is at its cap, just failed this request with a 5xx, or is
   * paused briefly; this one serves the request without taking the binding.
   */
  | { kind: 'account'; accountId: string; sticky: boolean; soft: boolean; overflow: boolean }
  /**
   * Accounts could serve, but every one is at its concurrency cap: a slot frees when a request ends.
   * freeAt: when the first untried account that is limited now comes free (no release announces that).
   */
  | { kind: 'busy'; freeAt?: number }
  /**
   * Every account that could serve is limited; the earliest one is free again at `until` (or the
   * conversation's own, throttled, up to HOME_WAIT_SLACK_MS later), and `limitKind` is what limits
   * it (how the client should be told: a throttle, a quota, capacity). When `until` is home's,
   * `earliest` is the other account free sooner: a wait budget too short for home waits for that
   * one instead, and a client told to retry is told its reset.
   */
  | { kind: 'limited'; until: number; limitKind: LimitKind; earliest?: { until: number; limitKind: LimitKind } }
  /** Nothing can serve and nothing will by waiting: no accounts, all invalid/disabled, or all tried. */
  | { kind: 'none'; reason: 'no_accounts' | 'no_active_accounts' | 'all_tried' };

export function isLimited(c: Candidate, now: number): boolean {
  return c.limitedUntil !== null && c.limitedUntil > now;
}

/**
 * Limited now by a throttle or a capacity cool-down that ends within SHORT_LIMIT_MS. Not a quota, a
 * plan without the model, nor the rest after repeated failures: that account is unwell, and keeping
 * its conversations would have each of them pay a failed call whenever the rest ends.
 */
export function isShortLimit(c: Candidate, now: number): boolean {
  if (c.limitedUntil === null || c.limitedUntil <= now || c.limitedUntil - now > SHORT_LIMIT_MS) return false;
  return c.limitKind === 'rate_limited' || c.limitKind === 'capacity';
}

/** The kinds of limit that keep the active accounts out now, each once, in pool order. */
export function limitKindsOf(candidates: readonly Candidate[], now: number): LimitKind[] {
  const out: LimitKind[] = [];
  for (const c of candidates) {
    if (c.status !== 'active' || !isLimited(c, now)) continue;
    const k = c.limitKind ?? 'rate_limited';
    if (!out.includes(k)) out.push(k);
  }
  return out;
}

export function isBusy(c: Candidate): boolean {
  return c.maxInFlight !== null && c.inFlight >= c.maxInFlight;
}

export function isSoftLimited(c: Candidate, threshold: number | null): boolean {
  return threshold !== null && c.remaining !== null && c.remaining <= threshold;
}

/** Fewest in flight, then least recently used (never used first), then pool order. */
function leastLoaded(list: readonly Candidate[]): Candidate {
  let best = list[0]!;
  for (let i = 1; i < list.length; i++) {
    const c = list[i]!;
    if (c.inFlight !== best.inFlight) {
      if (c.inFlight < best.inFlight) best = c;
      continue;
    }
    const cu = c.lastUsedAt ?? -Infinity;
    const bu = best.lastUsedAt ?? -Infinity;
    if (cu < bu) best = c;
  }
  return best;
}

export function selectAccount(input: SelectInput): Selection {
  const { candidates, now, exclude } = input;
  if (candidates.length === 0) return { kind: 'none', reason: 'no_accounts' };
  const active = candidates.filter((c) => c.status === 'active');
  if (active.length === 0) return { kind: 'none', reason: 'no_active_accounts' };
  const untried = exclude && exclude.size ? active.filter((c) => !exclude.has(c.id)) : active;
  const usable = untried.filter((c) => !isLimited(c, now));
  if (usable.length === 0) {
    // Waiting helps only when every account is limited (tried ones included: a 429 just limited
    // them). One that was tried and is still unlimited failed some other way (a 5xx): that failure
    // is the request's answer, not the others' limits, which may last hours.
    // An account whose plan lacks the model (no_access) is only rechecked at its reset, and will
    // most likely refuse again: while another account has the model, that one's reset is the answer.
    let earliest: Candidate | null = null;
    for (const c of active) {
      if (!isLimited(c, now)) return { kind: 'none', reason: 'all_tried' };
      if (earliest === null) earliest = c;
      else if ((c.limitKind === 'no_access') !== (earliest.limitKind === 'no_access')) {
        if (earliest.limitKind === 'no_access') earliest = c;
      } else if (c.limitedUntil! < earliest.limitedUntil!) earliest = c;
    }
    const home = input.boundAccountId === null ? undefined : active.find((c) => c.id === input.boundAccountId);
    // Not for a soft-limited home while the earliest is above the floor: the floor would move it then.
    if (
      home !== undefined &&
      isShortLimit(home, now) &&
      home.limitedUntil! - earliest!.limitedUntil! <= HOME_WAIT_SLACK_MS &&
      !(isSoftLimited(home, input.softLimitThreshold) && !isSoftLimited(earliest!, input.softLimitThreshold)) &&
      home !== earliest
    ) {
      const first = { until: earliest!.limitedUntil!, limitKind: earliest!.limitKind ?? 'rate_limited' } as const;
      return { kind: 'limited', until: home.limitedUntil!, limitKind: home.limitKind ?? 'rate_limited', earliest: first };
    }
    return { kind: 'limited', until: earliest!.limitedUntil!, limitKind: earliest!.limitKind ?? 'rate_limited' };
  }
  const free = usable.filter((c) => !isBusy(c));
  if (free.length === 0) {
    let freeAt: number | undefined;
    for (const c of untried) if (isLimited(c, now) && (freeAt === undefined || c.limitedUntil! < freeAt)) freeAt = c.limitedUntil!;
    return freeAt === undefined ? { kind: 'busy' } : { kind: 'busy', freeAt };
  }
  const preferred = free.filter((c) => !isSoftLimited(c, input.softLimitThreshold));
  const bound = input.boundAccountId ? usable.find((c) => c.id === input.boundAccountId) : undefined;
  // A binding whose account already failed this request without a limit (a 5xx) is no reason to move
  // the conversation: that one request is served elsewhere, as when the account is at its cap.
  const boundTried = input.boundAccountId !== null && exclude?.has(input.boundAccountId) === true;
  const triedUnlimited = boundTried && active.some((c) => c.id === input.boundAccountId && !isLimited(c, now));
  // A home account paused by a short throttle keeps the conversation too: its cache outlives the
  // pause. Unless it is soft-limited with a fresh account free: the floor would move it next turn.
  const home = bound === undefined && input.boundAccountId !== null ? active.find((c) => c.id === input.boundAccountId) : undefined;
  const paused = home !== undefined && isShortLimit(home, now) && !(preferred.length > 0 && isSoftLimited(home, input.softLimitThreshold));
  const overflow = (bound !== undefined && isBusy(bound)) || triedUnlimited || paused;
  if (bound && !overflow) {
    const soft = isSoftLimited(bound, input.softLimitThreshold);
    // A soft-limited binding is given up only when a fresh account can take the conversation.
    if (!soft || preferred.length === 0) return { kind: 'account', accountId: bound.id, sticky: true, soft, overflow: false };
  }
  if (preferred.length) return { kind: 'account', accountId: leastLoaded(preferred).id, sticky: false, soft: false, overflow };
  // Only soft-limited accounts are left: among those with at least half the fullest one's quota, the
  // least busy serves, the fuller on a tie. Readings come minutes apart: the fullest alone would get
  // every new conversation until the next one (parallel sub-agents at once), to be throttled there
  // while the others idle. A nearly empty account is still spared while others have more.
  let fullest = 0;
  for (const c of free) fullest = Math.max(fullest, c.remaining ?? 0);
  let best: Candidate | null = null;
  for (const c of free) {
    const r = c.remaining ?? 0;
    if (r < fullest * SOFT_SPREAD_SHARE) continue;
    if (best === null || c.inFlight < best.inFlight) {
      best = c;
      continue;
    }
    if (c.inFlight > best.inFlight) continue;
    const br = best.remaining ?? 0;
    if (r > br || (r === br && leastLoaded([best, c]) === c)) best = c;
  }
  best ??= free[0]!;
  return { kind: 'account', accountId: best.id, sticky: false, soft: true, overflow };
}
