// The operations surface behind /health, /account-limits, /refresh-token and /metrics, and the
// routing metrics themselves (defined here once; the gateway and the quota poller count into them).
import { ApiError } from '../anthropic/errors.ts';
import type { Config } from '../config.ts';
import { maskSecrets } from '../log.ts';
import { defineCounter, defineGauge, defineHistogram, modelLabels, onCollect, renderMetrics } from '../metrics.ts';
import type { AccountState, Pool } from '../pool/pool.ts';
import { type ProviderId, UpstreamError } from '../providers/provider.ts';
import { VERSION } from '../version.ts';
import type { Providers } from './gateway.ts';
import type { Ops } from './types.ts';

export const metrics = {
  rateLimited: defineCounter('mcp_upstream_rate_limited_total', 'Upstream 429 / quota answers, by provider and model'),
  /** rateLimited's model label: the upstream model may be a name the client chose. */
  rateLimitedModel: modelLabels(),
  upstreamErrors: defineCounter('mcp_upstream_errors_total', 'Upstream failures before the first event, by provider and kind'),
  failovers: defineCounter('mcp_failovers_total', 'Requests moved to another account before the first event'),
  fallbacks: defineCounter('mcp_fallbacks_total', 'Requests served by a fallback model'),
  firstEventLatency: defineHistogram('mcp_upstream_first_event_seconds', 'Time from the upstream call to its first event'),
  accountStates: defineGauge('mcp_accounts', 'Accounts by provider and state'),
  quotaRemaining: defineGauge('mcp_quota_remaining_ratio', 'Last known remaining quota fraction per account, model and window'),
  activeStreams: defineGauge('mcp_active_streams', 'Responses streaming right now'),
  inFlight: defineGauge('mcp_account_in_flight', 'Requests each account is serving right now'),
  maxConcurrent: defineGauge('mcp_account_max_concurrent', 'Concurrency cap per account (only accounts that have one)'),
  slotWaits: defineCounter('mcp_concurrency_waits_total', 'Requests that waited because every account was at its concurrency cap, by provider and outcome'),
};

/** Providers whose accounts serve on with their quota spent: Antigravity with AI credits (antigravity.md §13.3). */
export function servesPastQuotaOf(config: Readonly<Config>): ReadonlySet<ProviderId> {
  return config.antigravity.aiCredits ? new Set<ProviderId>(['antigravity']) : new Set<ProviderId>();
}

/** The state one account is in right now, in one word. */
export function accountStateWord(s: AccountState, now: number): string {
  if (s.account.status !== 'active') return s.account.status;
  if (s.limits.some((l) => l.model === '*' && l.resetAt > now)) return 'limited';
  if (s.limits.some((l) => l.resetAt > now)) return 'partly_limited';
  return 'ok';
}

function pct(f: number | null): string {
  return f === null ? '?' : `${Math.round(f * 100)}%`;
}

function iso(t: number | null): string | null {
  return t === null ? null : new Date(t).toISOString();
}

/**
 * A quota figure as of `t`. Once its window has reset, the last poll's figure is stale (a disabled
 * or invalid account is not polled at all): the window is full again, as the pool routes it, and
 * its next reset is unknown until the next poll.
 */
export function quotaAsOf<Q extends { remainingFraction: number | null; resetAt: number | null }>(q: Q, t: number): Q {
  if (q.remainingFraction === null || q.resetAt === null || q.resetAt > t) return q;
  return { ...q, remainingFraction: 1, resetAt: null };
}

function accountJson(s: AccountState, now: number): Record<string, unknown> {
  const a = s.account;
  return {
    id: a.id,
    label: a.label,
    provider: a.provider,
    email: a.email,
    state: accountStateWord(s, now),
    status: a.status,
    reason: a.statusReason,
    verifyUrl: a.verifyUrl,
    lastUsed: iso(s.lastUsedAt),
    inFlight: s.inFlight,
    maxConcurrent: s.maxConcurrent,
    plan: typeof a.meta.plan === 'string' ? a.meta.plan : typeof a.meta.tier === 'string' ? a.meta.tier : null,
    limits: s.limits.map((l) => ({
      model: l.model,
      kind: l.kind,
      resetAt: iso(l.resetAt),
      resetInSec: Math.max(0, Math.ceil((l.resetAt - now) / 1000)),
      reason: l.reason,
    })),
    quota: s.quotas.map((q) => quotaAsOf(q, now)).map((q) => ({
      model: q.model,
      window: q.window || null,
      remaining: pct(q.remainingFraction),
      remainingFraction: q.remainingFraction,
      resetAt: iso(q.resetAt),
      fetchedAt: iso(q.fetchedAt),
    })),
  };
}

/** One line of an account's quota as people read it. */
export interface QuotaLine {
  label: string;
  remainingFraction: number;
}

/**
 * An account's quotas, folded for people. Models at the same figure are one line (named when one
 * or two, else by their families: "gemini/claude/gpt (10 models)"); a window a group of models
 * shares (Antigravity's 5-hour and weekly windows, one quota per model) is one line named by the
 * families: "claude/gpt weekly". Unknown figures are left out; first appearance keeps the order.
 */
export function quotaLines(quotas: ReadonlyArray<{ model: string; window?: string | null; remainingFraction: number | null }>): QuotaLine[] {
  const groups = new Map<string, { models: string[]; window: string; f: number }>();
  const out: Array<QuotaLine | { group: string }> = [];
  for (const q of quotas) {
    if (q.remainingFraction === null) continue;
    if (q.model === '*') {
      out.push({ label: q.window || 'all models', remainingFraction: q.remainingFraction });
      continue;
    }
    const window = q.window || '';
    const key = `${window}\u0000${Math.round(q.remainingFraction * 100)}`;
    let g = groups.get(key);
    if (!g) {
      groups.set(key, (g = { models: [], window, f: q.remainingFraction }));
      out.push({ group: key });
    }
    g.models.push(q.model);
  }
  return out.map((x) => {
    if (!('group' in x)) return x;
    const g = groups.get(x.group)!;
    const families = [...new Set(g.models.map((m) => m.split('-', 1)[0]!))].join('/');
    const who = g.window ? families : g.models.length <= 2 ? g.models.join(', ') : `${families} (${g.models.length} models)`;
    return { label: g.window ? `${who} ${g.window}` : who, remainingFraction: g.f };
  });
}

/** The QUOTA LEFT cell of the table: quotaLines as text. */
export function quotaCell(quotas: Parameters<typeof quotaLines>[0]): string {
  return quotaLines(quotas)
    .map((l) => `${l.label} ${pct(l.remainingFraction)}`)
    .join(', ');
}

/** Left-aligned columns, two spaces apart; a cell's line breaks (upstream messages) become spaces so each row stays one line. */
export function textTable(header: readonly string[], rawRows: readonly (readonly string[])[]): string {
  const rows = rawRows.map((r) => r.map((c) => c.replace(/\s*[\r\n]\s*/g, ' ')));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

function until(t: number, now: number): string {
  const s = Math.max(0, Math.ceil((t - now) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  const h = Math.floor(s / 3600);
  return `${h}h${Math.floor((s % 3600) / 60)}m`;
}

export function createOps(deps: {
  pool: Pool;
  providers: Providers;
  now: () => number;
  startedAt?: number;
  /** Re-reads one account's quota (the poller's pollAccount; never rejects). */
  pollQuota?: (accountId: string) => Promise<void>;
  /** Why usage rows cannot be written, or null. */
  usageTrouble?: () => string | null;
  /** Why account changes providers learnt (fresh tokens) cannot be stored, or null. */
  accountWriteTrouble?: () => string | null;
}): Ops & { dispose(): void } {
  const { pool, providers, now } = deps;
  const startedAt = deps.startedAt ?? now();
  // The registry is process-wide; a stopped routing (tests start several) stops reporting.
  let live = true;

  onCollect(() => {
    if (!live) return;
    const t = now();
    const states = pool.state();
    metrics.accountStates.reset();
    metrics.quotaRemaining.reset();
    metrics.inFlight.reset();
    metrics.maxConcurrent.reset();
    for (const s of states) {
      metrics.accountStates.add({ provider: s.account.provider, state: accountStateWord(s, t) }, 1);
      metrics.inFlight.set({ account: s.account.label, provider: s.account.provider }, s.inFlight);
      if (s.maxConcurrent !== null) metrics.maxConcurrent.set({ account: s.account.label, provider: s.account.provider }, s.maxConcurrent);
      for (const q of s.quotas) {
        if (q.remainingFraction === null) continue;
        metrics.quotaRemaining.set({ account: s.account.label, model: q.model, window: q.window || 'default' }, quotaAsOf(q, t).remainingFraction!);
      }
    }
  });

  function summary(states: readonly AccountState[], t: number) {
    const counts = { total: states.length, ok: 0, limited: 0, partly_limited: 0, invalid: 0, disabled: 0 };
    for (const s of states) counts[accountStateWord(s, t) as keyof typeof counts]++;
    return counts;
  }

  return {
    dispose() {
      live = false;
    },

    health(detailed) {
      pool.sync();
      const t = now();
      const states = pool.state();
      const c = summary(states, t);
      const usable = c.ok + c.partly_limited;
      const trouble = pool.storeTrouble();
      const writeTroubles = [pool.writeTrouble(), deps.accountWriteTrouble?.() ?? null].filter((x): x is string => x !== null);
      const writeTrouble = writeTroubles.length ? writeTroubles.join('; ') : null;
      const usageTrouble = deps.usageTrouble?.() ?? null;
      // A disabled account is the user's choice, not a fault: it does not make the pool degraded.
      // A database it cannot read does: it serves, but neither sees CLI changes nor keeps its own.
      // So does one it cannot write usage to (a full disk): it serves, but loses the accounting; and
      // one that will not take limits or verdicts: a restart would forget them.
      let status = states.length === 0 ? 'no_accounts' : usable > 0 ? (usable === c.total - c.disabled ? 'ok' : 'degraded') : 'unavailable';
      if ((trouble !== null || writeTrouble !== null || usageTrouble !== null) && status === 'ok') status = 'degraded';
      const out: Record<string, unknown> = {
        status,
        version: VERSION,
        uptimeSec: Math.round((t - startedAt) / 1000),
        accounts: c,
      };
      if (trouble !== null) out.storeError = `cannot read the database: ${trouble}`;
      if (writeTrouble !== null) out.writeError = `cannot store account limits and states in the database: ${writeTrouble}`;
      if (usageTrouble !== null) out.usageError = `cannot write usage to the database: ${usageTrouble}`;
      if (detailed) out.accountDetails = states.map((s) => accountJson(s, t));
      return out;
    },

    accountLimits() {
      pool.sync();
      const t = now();
      const states = pool.state();
      return { timestamp: iso(t), summary: summary(states, t), accounts: states.map((s) => accountJson(s, t)) };
    },

    accountLimitsTable() {
      pool.sync();
      const t = now();
      const rows: string[][] = [];
      for (const s of pool.state()) {
        const a = s.account;
        const limits = s.limits.map((l) => `${l.model === '*' ? 'all' : l.model} ${l.kind} ${until(l.resetAt, t)}`).join(', ');
        const quota = quotaCell(s.quotas.map((q) => quotaAsOf(q, t)));
        // Where Google wants the account verified is what a person reading this needs next.
        const reason = a.verifyUrl ? `${a.statusReason ?? 'needs verifying'} (verify at ${a.verifyUrl})` : (a.statusReason ?? '-');
        rows.push([a.label, a.provider, accountStateWord(s, t), reason, s.maxConcurrent === null ? String(s.inFlight) : `${s.inFlight}/${s.maxConcurrent}`, limits || '-', quota || '-']);
      }
      if (!rows.length) return 'no accounts\n';
      return textTable(['ACCOUNT', 'PROVIDER', 'STATE', 'REASON', 'IN FLIGHT', 'LIMITS (reset in)', 'QUOTA LEFT'], rows);
    },

    async refresh(accountId) {
      pool.sync();
      const targets = accountId
        ? pool.accounts().filter((a) => a.id === accountId || a.label === accountId)
        : pool.accounts().filter((a) => a.status !== 'disabled');
      // A clear 404 envelope, not a 200 the caller has to read to see that nothing happened.
      if (accountId && !targets.length) throw new ApiError('not_found_error', `no account with id or label "${accountId.slice(0, 100)}"`);
      const results = await Promise.all(
        targets.map(async (a) => {
          const p = providers[a.provider];
          if (!p) return { id: a.id, label: a.label, ok: false, error: `provider ${a.provider} not available` };
          try {
            await p.refresh(a);
            // "Refresh now" means the quota too: fresh credentials are the moment to read it.
            await deps.pollQuota?.(a.id);
            return { id: a.id, label: a.label, ok: true };
          } catch (err) {
            const e = err instanceof UpstreamError ? err : null;
            if (e && (e.kind === 'auth' || e.kind === 'invalid_account')) pool.markInvalid(a, `credentials refresh failed: ${e.message}`, e.verifyUrl);
            // The upstream's words go back to the caller: a credential they quote goes no further.
            return { id: a.id, label: a.label, ok: false, error: maskSecrets((err as Error)?.message ?? String(err)) };
          }
        }),
      );
      return { ok: results.every((r) => r.ok), refreshed: results.filter((r) => r.ok).length, results };
    },

    metrics() {
      return renderMetrics();
    },
  };
}
