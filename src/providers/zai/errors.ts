// Z.AI failure -> UpstreamError. Z.AI answers with three body shapes (Anthropic envelope + code,
// its native {error:{code,message}}, FastAPI's 422 {detail:[…]}) and puts the real meaning in a
// business code, so the HTTP status alone is not enough: a 429 can be a 5-second throttle or a
// week-long quota. Pure: the clock is passed in.
import { UpstreamError, type UpstreamErrorKind } from '../provider.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** China Standard Time: Z.AI writes reset times in it, without an offset. */
const CST_OFFSET = 8 * HOUR;
/** 1302/1303 throttles lift quickly; cool the key down briefly when Z.AI gives no time. */
const SHORT_COOLDOWN_MS = 5_000;
/**
 * 1220 / 1311 (no access to the model on this key's plan) rest that model on the key this long: a plan
 * rarely changes, but an upgrade is picked up within the hour at the cost of one failed-over call.
 */
const NO_MODEL_ACCESS_MS = HOUR;
const MAX_MESSAGE = 300;
/** Z.AI's international Anthropic endpoint, the example a wrong ZAI_BASE_URL is pointed to. */
const DEFAULT_BASE = 'https://api.z.ai/api/anthropic';

const CODE_PREFIX = /^\s*\[(\d{3,5})\]/;
const BRACKETED = /^\s*\[(\d{3,5})\]\s*\[([\s\S]*?)\](?:\s*\[[^\]]*\])?\s*$/;
/** "reset at" (1308/1310) or "Resets at" (1316-1321); a zone, when one is written, is honoured. */
const RESET_AT = /resets? at\s+(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?/i;
/** The China region (bigmodel.cn) words 1308/1310 in Chinese; the one time in it is the reset. */
const ANY_TIME = /(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?/;
const HTML = /^\s*</;
/** Z.AI's ways of saying the conversation no longer fits the model's context. */
const PROMPT_TOO_LONG = /prompt is too long|prompt exceeds max length|context length exceeded|exceeds the maximum number of tokens/i;
/** A max_tokens complaint ("input length and max_tokens exceed context limit") heals by a smaller max_tokens, not /compact. */
const MAX_TOKENS = /max_tokens/i;
const TOKEN_COUNTS = /(\d{3,})\D+?(\d{3,})/;
const WS = /\s+/g;

interface ParsedBody {
  code: string | null;
  /** Anthropic error.type when the body had one. */
  type: string | null;
  message: string;
}

/**
 * Reset instant from "…reset at 2026-08-31 18:19:41" (UTC+8, no offset written), or null. `anyTime`
 * takes a time without "reset at" too, for messages that say nothing else (1308/1310 in Chinese).
 */
export function parseZaiResetAt(text: string, anyTime = false): number | null {
  const m = RESET_AT.exec(text) ?? (anyTime ? ANY_TIME.exec(text) : null);
  if (!m) return null;
  const [, y, mo, d, h, mi, s, zone] = m;
  const utc = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  return Number.isFinite(utc) ? utc - zoneOffset(zone) : null;
}

/** Offset of a written zone ("Z", "+08:00", "-0500") in ms; none written is China time. */
function zoneOffset(zone: string | undefined): number {
  if (!zone) return CST_OFFSET;
  if (zone.toUpperCase() === 'Z') return 0;
  const sign = zone[0] === '-' ? -1 : 1;
  const digits = zone.slice(1).replace(':', '');
  return sign * (Number(digits.slice(0, 2)) * HOUR + Number(digits.slice(2)) * 60_000);
}

/** The next midnight in China (UTC+8) after now: when Z.AI's daily limits (1304) reset. */
export function nextChinaMidnight(now: number): number {
  const local = now + CST_OFFSET;
  return Math.floor(local / DAY) * DAY + DAY - CST_OFFSET;
}

/** retry-after-ms, else retry-after (seconds or an HTTP date), as an epoch ms; null when absent. */
export function retryAfterAt(headers: Headers, now: number): number | null {
  const ms = headers.get('retry-after-ms');
  if (ms && Number.isFinite(Number(ms))) return now + Math.max(0, Number(ms));
  const ra = headers.get('retry-after');
  if (!ra) return null;
  const secs = Number(ra);
  if (Number.isFinite(secs)) return now + Math.max(0, secs) * 1000;
  const date = Date.parse(ra);
  return Number.isFinite(date) ? Math.max(now, date) : null;
}

function clean(text: string): string {
  const t = text.replace(WS, ' ').trim();
  return t.length > MAX_MESSAGE ? `${t.slice(0, MAX_MESSAGE)}…` : t;
}

function pydanticMessage(detail: unknown[]): string {
  const parts = detail.map((d) => {
    if (!d || typeof d !== 'object') return String(d);
    const e = d as { loc?: unknown; msg?: unknown };
    const loc = Array.isArray(e.loc) ? e.loc.filter((p, i) => !(i === 0 && p === 'body')).join('.') : '';
    const msg = typeof e.msg === 'string' ? e.msg : 'invalid value';
    return loc ? `${loc}: ${msg}` : msg;
  });
  return parts.join('; ');
}

/** Reads any of the three body shapes; unknown text (HTML from a proxy, plain text) is kept short. */
export function parseZaiErrorBody(bodyText: string): ParsedBody & { detail: boolean } {
  let json: unknown;
  try {
    json = bodyText ? JSON.parse(bodyText) : undefined;
  } catch {
    json = undefined;
  }
  if (json && typeof json === 'object') {
    const o = json as Record<string, unknown>;
    if (Array.isArray(o.detail)) {
      return { code: null, type: null, message: clean(pydanticMessage(o.detail)), detail: true };
    }
    const err = (o.error && typeof o.error === 'object' ? o.error : o) as Record<string, unknown>;
    // FastAPI's own refusals (the surface 422s come from) carry their reason as a string `detail`.
    const rawMsg =
      typeof err.message === 'string'
        ? err.message
        : typeof o.msg === 'string'
          ? o.msg
          : typeof o.message === 'string'
            ? o.message
            : typeof o.detail === 'string'
              ? o.detail
              : typeof o.error === 'string'
                ? o.error
                : '';
    let code = typeof err.code === 'string' || typeof err.code === 'number' ? String(err.code) : null;
    const bracketed = BRACKETED.exec(rawMsg);
    const prefix = CODE_PREFIX.exec(rawMsg);
    if (!code && prefix) code = prefix[1]!;
    // "[1308][Usage limit reached …][request id]" -> "Usage limit reached …"
    const message = bracketed ? bracketed[2]! : prefix ? rawMsg.slice(prefix[0].length) : rawMsg;
    const type = typeof err.type === 'string' ? err.type : null;
    return { code, type, message: clean(message), detail: false };
  }
  if (HTML.test(bodyText)) return { code: null, type: null, message: 'upstream returned an HTML error page', detail: false };
  return { code: null, type: null, message: clean(bodyText), detail: false };
}

type Rule = { kind: UpstreamErrorKind; scope?: 'model' | 'account' };

// Business codes (§3.5). Z.AI limits are per key, not per model, hence scope 'account'.
const CODE_RULES: Record<string, Rule> = {
  '1302': { kind: 'rate_limited', scope: 'account' },
  '1303': { kind: 'rate_limited', scope: 'account' },
  '1231': { kind: 'rate_limited', scope: 'account' },
  '1305': { kind: 'capacity' },
  '1304': { kind: 'quota_exhausted', scope: 'account' },
  '1308': { kind: 'quota_exhausted', scope: 'account' },
  '1310': { kind: 'quota_exhausted', scope: 'account' },
  // The 5-hour (1316, 1318, 1320) and 7-day (1317, 1319, 1321) windows spent, with no extra-usage
  // balance or spend limit left to go on: the same quota as 1308/1310, "Resets at" in the message.
  '1316': { kind: 'quota_exhausted', scope: 'account' },
  '1317': { kind: 'quota_exhausted', scope: 'account' },
  '1318': { kind: 'quota_exhausted', scope: 'account' },
  '1319': { kind: 'quota_exhausted', scope: 'account' },
  '1320': { kind: 'quota_exhausted', scope: 'account' },
  '1321': { kind: 'quota_exhausted', scope: 'account' },
  '1110': { kind: 'invalid_account', scope: 'account' },
  '1111': { kind: 'invalid_account', scope: 'account' },
  '1112': { kind: 'invalid_account', scope: 'account' },
  '1113': { kind: 'invalid_account', scope: 'account' },
  '1121': { kind: 'invalid_account', scope: 'account' },
  '1309': { kind: 'invalid_account', scope: 'account' },
  '1313': { kind: 'invalid_account', scope: 'account' },
  '1314': { kind: 'invalid_account', scope: 'account' }, // enterprise package expired
  '1315': { kind: 'invalid_account', scope: 'account' }, // key of another product type (enterprise only)
  // "You do not have permission to access ${API_name}": on the Anthropic surface the API is the
  // model (glm-5 on a plan without it). Only that model is out; the key serves the others, and a
  // key of a bigger plan may serve this one, so it fails over. No key's plan: the client is told so.
  '1220': { kind: 'no_access', scope: 'model' },
  // "Your current subscription plan does not yet include access to ${model_name}": said plainly.
  '1311': { kind: 'no_access', scope: 'model' },
  '1211': { kind: 'not_found' },
  '1221': { kind: 'not_found' },
  '1222': { kind: 'not_found' },
  '1200': { kind: 'bad_request' },
  '1210': { kind: 'bad_request' },
  '1212': { kind: 'bad_request' },
  '1213': { kind: 'bad_request' },
  '1214': { kind: 'bad_request' },
  '1215': { kind: 'bad_request' },
  '1261': { kind: 'bad_request' }, // prompt exceeds max length
  '1300': { kind: 'bad_request' },
  '1301': { kind: 'bad_request' },
  '500': { kind: 'transient' },
  '1100': { kind: 'transient' },
  '1120': { kind: 'transient' },
  '1230': { kind: 'transient' },
  '1234': { kind: 'transient' },
};

const AUTH_CODES = new Set(['1000', '1001', '1002', '1003', '1004']);

/** The plan (1309) or enterprise package (1314) expired: the quota endpoint may still answer for the key. */
const EXPIRED_PLAN = /\[(1309|1314)\]/;

/** Whether an account's stored reason says its plan expired (the message keeps its "[1309]" code). */
export function isExpiredPlanReason(reason: string | null | undefined): boolean {
  return !!reason && EXPIRED_PLAN.test(reason);
}

// Anthropic error.type, for in-stream `event: error` bodies and envelopes without a known code.
const TYPE_RULES: Record<string, UpstreamErrorKind> = {
  overloaded_error: 'capacity',
  rate_limit_error: 'rate_limited',
  api_error: 'transient',
  timeout_error: 'transient',
  invalid_request_error: 'bad_request',
  request_too_large: 'bad_request',
  // An in-stream refusal of the key (after the 200) is the same auth failure as a 401 before it;
  // passed on as permission_error the client would take it for its own key's problem.
  authentication_error: 'auth',
  permission_error: 'auth',
  billing_error: 'invalid_account',
  not_found_error: 'not_found',
};

function kindFromStatus(status: number, type: string | null): UpstreamErrorKind {
  if (status === 401) return 'auth';
  if (status === 403 || status === 402) return 'invalid_account';
  if (status === 404) return 'not_found';
  if (status === 429) return 'rate_limited';
  if (status === 529 || status === 503) return 'capacity';
  if (status === 408 || status === 409 || status >= 500 || status === 0) return 'transient';
  if (status >= 400) return 'bad_request';
  // 200 with an error (in-stream error event): go by the Anthropic type.
  return (type && TYPE_RULES[type]) || 'transient';
}

/**
 * Claude Code offers /compact (and shows how far over the limit the conversation is) only for a 400
 * that reads "prompt is too long: N tokens > M maximum"; Z.AI's own wordings are put in that form.
 */
function promptTooLong(message: string, nums: RegExpExecArray | null): string {
  return nums ? `prompt is too long: ${nums[1]} tokens > ${nums[2]} maximum (${message})` : `Prompt is too long: ${message}`;
}

/**
 * Classifies one Z.AI failure. `status` is the HTTP status (200 for an in-stream error event);
 * `secret`, when given, is scrubbed from the message (the message may reach the client and logs).
 */
export function classifyZaiError(
  status: number,
  bodyText: string,
  headers: Headers,
  now: number,
  secret?: string,
): UpstreamError {
  const body = parseZaiErrorBody(bodyText);
  const code = body.code;
  const retryAt = retryAfterAt(headers, now);
  let rule: Rule;
  if (body.detail || status === 422) rule = { kind: 'bad_request' };
  // An auth code is about the key whatever the status: 'auth' has the gateway mark the key and tell
  // the client a retryable api_error (authentication_error would mean the client's own proxy key).
  else if (code && AUTH_CODES.has(code)) rule = { kind: 'auth', scope: 'account' };
  else if (code && CODE_RULES[code]) rule = CODE_RULES[code]!;
  else if (status === 200 || status === 0) {
    const kind = (body.type && TYPE_RULES[body.type]) || 'transient';
    rule = kind === 'auth' ? { kind, scope: 'account' } : { kind };
  }
  else rule = { kind: kindFromStatus(status, body.type) };
  // Z.AI names an unknown model with a code (1211) in its JSON; a 404 with neither code nor Anthropic
  // type (empty, HTML, a bare "Not Found") is a path it does not serve: the base URL is wrong. Told as
  // an unknown model, Claude Code would send the user to /model; no other key answers differently.
  // Z.AI's own 1222 "API does not exist" says the same of a path under its host.
  const wrongBase = (status === 404 && !code && !body.type && !body.detail) || code === '1222';
  if (wrongBase) rule = { kind: 'bad_request' };
  // Z.AI refuses a key or an account in JSON, with a code; a 403 page is a firewall or CDN in front of
  // it turning the proxy's address away, which says nothing of the key: taken for a dead account, it
  // would take every key of the pool out one request (or one quota round) after the other.
  else if (status === 403 && !code && HTML.test(bodyText)) rule = { kind: 'transient' };

  let resetAt: number | null = null;
  if (code === '1302' || code === '1303' || code === '1231') resetAt = retryAt ?? now + SHORT_COOLDOWN_MS;
  else if (code === '1304') resetAt = nextChinaMidnight(now);
  else if (rule.kind === 'quota_exhausted' && code !== null) resetAt = parseZaiResetAt(body.message, true) ?? retryAt;
  else if (code === '1220' || code === '1311') resetAt = now + NO_MODEL_ACCESS_MS;
  else if (rule.kind === 'rate_limited' || rule.kind === 'capacity' || rule.kind === 'quota_exhausted') resetAt = retryAt;

  let message =
    status && HTML.test(bodyText)
      ? `Z.AI returned HTTP ${status} as an HTML error page`
      : body.message || (status ? `Z.AI returned HTTP ${status}` : 'Z.AI request failed');
  const tooLong =
    rule.kind === 'bad_request' && (code === '1261' || (PROMPT_TOO_LONG.test(message) && !MAX_TOKENS.test(message))) && !/^prompt is too long/i.test(message);
  // The counts are read before the code is prefixed, so "[1210]" is never taken for a token count.
  const counts = tooLong ? TOKEN_COUNTS.exec(message) : null;
  if (wrongBase) {
    const said = code ? `[${code}] ${body.message || 'API does not exist'}` : `HTTP ${status} with no error code${HTML.test(bodyText) ? ' (an HTML page)' : ''}`;
    message = `Z.AI answered ${said}: mcp's ZAI_BASE_URL is probably wrong (it should end in /api/anthropic, e.g. ${DEFAULT_BASE})`;
  }
  else if (body.detail) message = `Invalid request: ${message}`;
  else if (code && !message.includes(`[${code}]`)) message = `[${code}] ${message}`;
  if (tooLong) message = promptTooLong(message, counts);
  if (secret && secret.length >= 4 && message.includes(secret)) message = message.split(secret).join('***');

  return new UpstreamError(rule.kind, message, {
    status,
    resetAt,
    scope: rule.scope ?? 'model',
    code: code ?? (status === 422 ? '422' : null),
  });
}
