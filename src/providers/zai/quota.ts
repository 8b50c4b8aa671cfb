// The coding-plan quota endpoint (§3.3) -> QuotaInfo per token window. Z.AI meters tokens per key,
// not per model, so every window covers model "*". Pure: JSON in, windows out.
import { UpstreamError, type QuotaInfo } from '../provider.ts';

export interface ZaiQuota {
  /** Plan level (lite, pro, max) when Z.AI says. */
  level: string | null;
  windows: QuotaInfo[];
}

const NO_PLAN = /coding plan|package|subscri/i;
const BAD_KEY = /token|auth|api key|apikey|invalid|unauthori/i;
/** Z.AI's auth codes (a bad key on this endpoint is `{code:401, msg:"token expired or incorrect"}`). */
const AUTH_CODES = new Set(['401', '1000', '1001', '1002', '1003', '1004']);

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'string' && v.trim() && Number.isFinite(Number(v)) ? Number(v) : null;
}

/** "5h" for unit 3 (hours), "weekly" / "2w" for unit 6 (weeks); other units keep their raw numbers. */
export function windowName(unit: number | null, n: number | null): string {
  const count = n ?? 1;
  if (unit === 3) return `${count}h`;
  if (unit === 6) return count === 1 ? 'weekly' : `${count}w`;
  if (unit === 5) return count === 1 ? 'monthly' : `${count}mo`;
  if (unit === 4) return count === 1 ? 'daily' : `${count}d`;
  return `unit${unit ?? '?'}x${count}`;
}

/** Below this an epoch time is in seconds (1e12 ms is 2001; 1e12 s is far past any reset). */
const EPOCH_MS_MIN = 1e12;

function fraction(limit: Record<string, unknown>): number | null {
  // §3.7: spent at 100 percent, though the counts may leave crumbs (or lag the percentage).
  const pct = num(limit.percentage);
  if (pct !== null && pct >= 100) return 0;
  const total = num(limit.usage);
  const remaining = num(limit.remaining);
  // Nothing remaining is spent too, whatever else is missing (or a percentage rounded below 100).
  if (remaining !== null && remaining <= 0) return 0;
  if (total !== null && total > 0 && remaining !== null) return Math.min(1, Math.max(0, remaining / total));
  const used = num(limit.currentValue);
  if (total !== null && total > 0 && used !== null) return Math.min(1, Math.max(0, 1 - used / total));
  if (pct !== null) return Math.min(1, Math.max(0, 1 - pct / 100));
  return null;
}

/**
 * Parses the quota body; `{success:false}` throws (invalid_account for a key without a plan).
 * `secret`, when given, is scrubbed from that message (it reaches logs and `accounts verify`).
 */
export function parseZaiQuota(body: unknown, secret?: string): ZaiQuota {
  if (!body || typeof body !== 'object') throw new UpstreamError('transient', 'Z.AI quota answer is not an object');
  const o = body as Record<string, unknown>;
  // Some failures come without `success`: a code other than 200 and no data say the same.
  const failed = o.success === false || (o.success === undefined && o.data === undefined && o.code !== undefined && String(o.code) !== '200');
  if (failed) {
    let msg = typeof o.msg === 'string' ? o.msg : typeof o.message === 'string' ? o.message : 'quota unavailable';
    if (secret && secret.length >= 4 && msg.includes(secret)) msg = msg.split(secret).join('***');
    const code = o.code === undefined ? null : String(o.code);
    // A bad key is auth (the poller leaves the account be; a request finds out for sure), whatever
    // else its message says: "token expired" is no expired plan.
    const kind =
      code !== null && AUTH_CODES.has(code)
        ? 'auth'
        : NO_PLAN.test(msg)
          ? 'invalid_account'
          : BAD_KEY.test(msg)
            ? 'auth'
            : /expired/i.test(msg)
              ? 'invalid_account'
              : 'transient';
    throw new UpstreamError(kind, `Z.AI quota: ${msg}`, { code, scope: 'account' });
  }
  // Something else at that address (a proxy's `{}`, another API's answer): no reading, not a full one.
  if (!o.data || typeof o.data !== 'object') throw new UpstreamError('transient', 'Z.AI quota answer has no data (is ZAI_QUOTA_URL right?)');
  const data = o.data as Record<string, unknown>;
  const limits = Array.isArray(data.limits) ? (data.limits as unknown[]) : [];
  const windows: QuotaInfo[] = [];
  for (const l of limits) {
    if (!l || typeof l !== 'object') continue;
    const limit = l as Record<string, unknown>;
    if (limit.type !== 'TOKENS_LIMIT') continue; // TIME_LIMIT counts MCP tool calls, not model use
    const reset = num(limit.nextResetTime);
    windows.push({
      model: '*',
      remainingFraction: fraction(limit),
      resetAt: reset !== null && reset > 0 ? (reset < EPOCH_MS_MIN ? reset * 1000 : reset) : null,
      window: windowName(num(limit.unit), num(limit.number)),
    });
  }
  return { level: typeof data.level === 'string' ? data.level : null, windows };
}

/** One line for `mcp accounts verify`: "ok: pro plan, 5h window 97% left, weekly window 80% left". */
export function describeQuota(q: ZaiQuota): string {
  const parts = q.windows.map((w) =>
    w.remainingFraction === null ? `${w.window} window` : `${w.window} window ${Math.round(w.remainingFraction * 100)}% left`,
  );
  const plan = q.level ? `${q.level} plan` : 'no plan level reported';
  return ['ok: ' + plan, ...parts].join(', ');
}
