// GET /dashboard: the pool at a glance in a browser, for people who would rather not read JSON.
// Rendered on the server from the same data as /health with the key, and refreshed by the browser
// every 10 s: no script, so nothing runs in the page and nothing can break there. The browser asks
// for the key itself (Basic auth, the key as the password).
import { Elysia } from 'elysia';
import { quotaLines } from '../gateway/ops.ts';
import type { Ops } from '../gateway/types.ts';

const REFRESH_SEC = 10;

interface QuotaView {
  model: string;
  window: string | null;
  remainingFraction: number | null;
}

interface LimitView {
  model: string;
  kind: string;
  resetInSec: number;
  reason?: string | null;
}

interface AccountView {
  label: string;
  provider: string;
  email?: string | null;
  state: string;
  reason?: string | null;
  verifyUrl?: string | null;
  lastUsed?: string | null;
  inFlight: number;
  maxConcurrent: number | null;
  plan?: string | null;
  limits: LimitView[];
  quota: QuotaView[];
}

export interface DashboardData {
  status: string;
  version: string;
  uptimeSec: number;
  accounts: Record<string, number>;
  accountDetails?: AccountView[];
  /** Why the pool cannot read its database (it routes on what it read before). */
  storeError?: string;
  /** Why limits and account states cannot be stored (they are honoured from memory meanwhile). */
  writeError?: string;
  /** Why usage rows cannot be written; it says itself how many wait in memory and how many were dropped. */
  usageError?: string;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(s: unknown): string {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** 59s, 4m, 3h12m, 2d5h. */
export function duration(sec: number): string {
  const s = Math.max(0, Math.round(sec));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600)}h`;
}

function since(iso: string | null | undefined, now: number): string {
  const t = iso ? Date.parse(iso) : Number.NaN;
  return Number.isFinite(t) ? `${duration((now - t) / 1000)} ago` : 'never';
}

function bar(fraction: number): string {
  const pct = Math.round(fraction * 100);
  const level = fraction <= 0.05 ? 'low' : fraction <= 0.2 ? 'mid' : 'high';
  return `<span class="bar ${level}" title="${pct}% left"><span style="width:${pct}%"></span></span> ${pct}%`;
}

function accountRow(a: AccountView, now: number): string {
  const who = a.email && a.email !== a.label ? `${escapeHtml(a.label)}<br><small>${escapeHtml(a.email)}</small>` : escapeHtml(a.label);
  let state = `<span class="state ${escapeHtml(a.state)}">${escapeHtml(a.state.replace('_', ' '))}</span>`;
  if (a.reason) state += `<br><small>${escapeHtml(a.reason)}</small>`;
  if (a.verifyUrl && /^https:\/\//.test(a.verifyUrl)) state += `<br><small><a href="${escapeHtml(a.verifyUrl)}" rel="noreferrer">verify the account</a></small>`;
  const limits = a.limits.length
    ? `<ul>${a.limits.map((l) => `<li>${escapeHtml(l.model === '*' ? 'all models' : l.model)} ${escapeHtml(l.kind.replace('_', ' '))}, back in ${duration(l.resetInSec)}</li>`).join('')}</ul>`
    : '—';
  const quota = quotaLines(a.quota).map((l) => `<li>${escapeHtml(l.label)} ${bar(l.remainingFraction)}</li>`);
  const flight = a.maxConcurrent === null ? String(a.inFlight) : `${a.inFlight} / ${a.maxConcurrent}`;
  return (
    `<tr><td>${who}</td><td>${escapeHtml(a.provider)}${a.plan ? `<br><small>${escapeHtml(a.plan)}</small>` : ''}</td><td>${state}</td>` +
    `<td class="num">${flight}</td><td>${limits}</td><td>${quota.length ? `<ul>${quota.join('')}</ul>` : '—'}</td><td>${since(a.lastUsed, now)}</td></tr>`
  );
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1b1b1b;background:#fafafa}
h1{font-size:1.3rem;margin:0 .6rem 0 0;display:inline}
header{margin-bottom:1rem}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #e3e3e3;padding:.45rem .6rem;text-align:left;vertical-align:top}
th{font-weight:600;background:#f1f1f1}
td.num{text-align:right}
ul{margin:0;padding:0;list-style:none}
small{color:#666}
.state,.status{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:.85em;background:#ddd}
.ok{background:#cdeccd}.degraded,.partly_limited,.limited{background:#fbe7b5}
.invalid,.unavailable{background:#f6c7c3}.disabled,.no_accounts{background:#e0e0e0}
.bar{display:inline-block;width:6rem;height:.55rem;background:#eee;border-radius:.3rem;overflow:hidden;vertical-align:middle}
.bar span{display:block;height:100%}
.bar.high span{background:#5aa55a}.bar.mid span{background:#d9a521}.bar.low span{background:#c94b3f}
footer{margin-top:1rem;color:#666;font-size:.85em}
.alert{margin:.6rem 0 0;padding:.4rem .6rem;border-radius:.3rem;background:#f6c7c3;color:#111}
@media (prefers-color-scheme:dark){body{background:#161616;color:#e6e6e6}table{background:#1f1f1f}th{background:#262626}
th,td{border-color:#333}small,footer{color:#999}.bar{background:#333}.state,.status{color:#111}}`;

/** The whole page for one moment of the pool. */
export function renderDashboard(d: DashboardData, now: number): string {
  const counts = Object.entries(d.accounts)
    .filter(([k, v]) => k !== 'total' && v > 0)
    .map(([k, v]) => `${v} ${k.replace('_', ' ')}`)
    .join(', ');
  const accounts = d.accountDetails ?? [];
  const rows = accounts.length
    ? accounts.map((a) => accountRow(a, now)).join('\n')
    : '<tr><td colspan="7">No accounts yet: add one with <code>mcp accounts add</code>.</td></tr>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="${REFRESH_SEC}"><title>mcp · ${escapeHtml(d.status.replace('_', ' '))}</title><style>${STYLE}</style></head>
<body><header><h1>mcp</h1><span class="status ${escapeHtml(d.status)}">${escapeHtml(d.status.replace('_', ' '))}</span>
<small>version ${escapeHtml(d.version)} · up ${duration(d.uptimeSec)} · ${d.accounts.total ?? accounts.length} account(s)${counts ? `: ${escapeHtml(counts)}` : ''}</small>
${d.storeError ? `<p class="alert">${escapeHtml(d.storeError)}; the accounts below are as last read from it.</p>` : ''}${d.writeError ? `<p class="alert">${escapeHtml(d.writeError)}; they are honoured meanwhile, but a restart would forget them.</p>` : ''}${d.usageError ? `<p class="alert">${escapeHtml(d.usageError)}; requests are still served.</p>` : ''}</header>
<table><thead><tr><th>Account</th><th>Provider</th><th>State</th><th>In flight</th><th>Limits</th><th>Quota left</th><th>Last used</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<footer>Refreshes every ${REFRESH_SEC} s · ${escapeHtml(new Date(now).toISOString())} · the same as JSON: <code>/account-limits</code>, Prometheus: <code>/metrics</code></footer>
</body></html>
`;
}

const HTML = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  // Nothing but its own inline style: no script, no frame around it, no form, no base to rewrite its links.
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  // Whatever the page links to (Google's verify page) does not learn the proxy's address.
  'referrer-policy': 'no-referrer',
} as const;

export function dashboardRoutes(ops: Ops, now: () => number = Date.now) {
  return new Elysia({ name: 'dashboard' }).get('/dashboard', () => new Response(renderDashboard(ops.health(true) as unknown as DashboardData, now()), { headers: HTML }));
}
