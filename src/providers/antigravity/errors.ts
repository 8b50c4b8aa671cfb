// Google Cloud Code error bodies -> UpstreamError (protocol §9). Pure: status, body text, headers and
// the clock in; one classified error out. Structured fields (ErrorInfo.reason, RetryInfo) win over
// text matching, because substring rules misfire (a 400 about max_tokens is not an auth problem).
import { UpstreamError, type UpstreamErrorKind } from '../provider.ts';

interface GoogleDetail {
  '@type'?: string;
  reason?: string;
  retryDelay?: string;
  metadata?: Record<string, unknown>;
  [k: string]: unknown;
}

interface GoogleError {
  code?: number;
  message?: string;
  status?: string;
  details?: GoogleDetail[];
}

/** The fields of a Google error body this module reads; null when the body is not one. */
export function parseGoogleError(bodyText: string): GoogleError | null {
  let t = bodyText.trim();
  // An answer to the streaming call may frame its error as an SSE event.
  if (t.startsWith('data:')) t = t.slice(5).trim();
  if (!t.startsWith('{') && !t.startsWith('[')) return null;
  try {
    let v = JSON.parse(t) as unknown;
    // The streaming endpoint sometimes wraps the error in an array.
    if (Array.isArray(v)) v = v[0];
    const e = (v as { error?: unknown } | null)?.error;
    if (e && typeof e === 'object' && !Array.isArray(e)) return e as GoogleError;
  } catch {
    // not JSON
  }
  return null;
}

const DURATION_PART = /(\d+(?:\.\d+)?)(ns|us|µs|ms|h|m|s)/g;
const DURATION_WHOLE = /^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|h|m|s))+$/;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, µs: 0.001, ns: 0.000001 };

/** Go duration string ("108h48m20.79s", "479.417207ms", "0.479s") -> ms; null when it is not one. */
export function parseGoDuration(s: string): number | null {
  const t = s.trim();
  if (!t || !DURATION_WHOLE.test(t)) return null;
  let ms = 0;
  for (const m of t.matchAll(DURATION_PART)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  return ms;
}

const RESET_AFTER = /reset after\s+((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)/i;
const RESETS_IN = /resets? in\s+((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)/i;
// Gemini's own 429s say "Please retry in 39.575193018s."
const RETRY_IN = /retry in\s+((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)\b/i;
const AFTER_SECONDS = /after\s+(\d+(?:\.\d+)?)\s*(?:s|secs?|seconds?)\b/i;

/** Delay (ms) stated in the message text, e.g. "Your quota will reset after 17s", "Resets in 108h48m29s". */
export function delayFromText(text: string): number | null {
  for (const re of [RESET_AFTER, RESETS_IN, RETRY_IN]) {
    const m = re.exec(text);
    if (m) {
      const d = parseGoDuration(m[1]!);
      if (d !== null) return d;
    }
  }
  const m = AFTER_SECONDS.exec(text);
  return m ? Number(m[1]) * 1000 : null;
}

function typeIs(d: GoogleDetail, suffix: string): boolean {
  return typeof d['@type'] === 'string' && d['@type'].endsWith(suffix);
}

/** Epoch ms from a Retry-After header (seconds or HTTP date) or x-ratelimit-reset(-after). */
function resetFromHeaders(headers: Headers, now: number): number | null {
  const ra = headers.get('retry-after');
  if (ra) {
    const t = ra.trim();
    if (/^\d+(?:\.\d+)?$/.test(t)) return now + Number(t) * 1000;
    const d = Date.parse(t);
    if (Number.isFinite(d)) return d;
  }
  const after = headers.get('x-ratelimit-reset-after');
  if (after && /^\d+(?:\.\d+)?$/.test(after.trim())) return now + Number(after.trim()) * 1000;
  const at = headers.get('x-ratelimit-reset');
  if (at && /^\d+$/.test(at.trim())) {
    const n = Number(at.trim());
    return n > 1e12 ? n : n * 1000;
  }
  return null;
}

/**
 * When the limit lifts (epoch ms), in the order of §9.3: RetryInfo.retryDelay, ErrorInfo
 * quotaResetDelay, quotaResetTimeStamp (if still in the future), the message text, then headers.
 */
export function resetAtOf(err: GoogleError | null, text: string, headers: Headers, now: number): number | null {
  const details = Array.isArray(err?.details) ? err.details : [];
  for (const d of details) {
    if (typeIs(d, 'google.rpc.RetryInfo') && typeof d.retryDelay === 'string') {
      const ms = parseGoDuration(d.retryDelay);
      if (ms !== null) return now + Math.ceil(ms);
    }
  }
  for (const d of details) {
    const v = d.metadata?.quotaResetDelay;
    if (typeof v === 'string') {
      const ms = parseGoDuration(v);
      if (ms !== null) return now + Math.ceil(ms);
    }
  }
  for (const d of details) {
    const v = d.metadata?.quotaResetTimeStamp;
    if (typeof v === 'string') {
      const t = Date.parse(v);
      if (Number.isFinite(t) && t > now) return t;
    }
  }
  const fromText = delayFromText(err?.message ?? text);
  if (fromText !== null) return now + Math.ceil(fromText);
  return resetFromHeaders(headers, now);
}

/** Claude-on-Vertex errors arrive as a JSON-encoded Anthropic error inside `message`; unwrap it. */
function cleanMessage(message: string): string {
  const t = message.trim();
  if (t.startsWith('{')) {
    try {
      const inner = JSON.parse(t) as { error?: { message?: unknown } };
      if (typeof inner.error?.message === 'string') return inner.error.message;
    } catch {
      // keep the raw text
    }
  }
  return t;
}

function reasonsOf(err: GoogleError | null): string[] {
  const out: string[] = [];
  for (const d of Array.isArray(err?.details) ? err.details : []) {
    if (typeof d.reason === 'string') out.push(d.reason);
  }
  return out;
}

function verifyUrlOf(err: GoogleError | null, message: string): string | null {
  for (const d of Array.isArray(err?.details) ? err.details : []) {
    const m = d.metadata ?? {};
    for (const k of ['validation_url', 'validationUrl', 'verify_url', 'verifyUrl']) {
      if (typeof m[k] === 'string' && m[k]) return m[k] as string;
    }
  }
  const link = /https:\/\/accounts\.google\.com\/\S+/.exec(message);
  return link ? link[0].replace(/[).,;"']+$/, '') : null;
}

// The rejections of a replayed thinking signature, which Claude Code heals by dropping thinking from
// the history: Claude's (bad or missing signature) and Gemini's. Not any 400 that says "signature":
// a tool schema or an argument of that name, or a call missing its thought_signature, heal no such way.
const THINKING_SIGNATURE = [
  /invalid\s+`?signature`?\s+in\s+`?thinking`?\s+block/i,
  /\bthinking\.signature\b/i,
  /\bthought signature is not valid/i,
  /\bcorrupted thought signature/i,
];
/**
 * Claude Code reads "prompt is too long: N tokens > M maximum" to tell the user how far over the limit
 * the conversation is (and to suggest /compact), so Google's other wordings are put in that form.
 */
function promptTooLong(message: string): string {
  if (/^prompt is too long: \d+ tokens > \d+ maximum/i.test(message)) return message;
  const nums = TOKEN_COUNTS.exec(message);
  if (nums) return `prompt is too long: ${nums[1]} tokens > ${nums[2]} maximum (${message})`;
  return `Prompt is too long: ${message}`;
}
const TOKEN_COUNTS = /(\d{3,})\D+?(\d{3,})/;
const PROMPT_TOO_LONG = /prompt is too long|prompt_too_long|context length exceeded|exceeds the maximum number of tokens/i;
const TOS_BAN = /has been disabled/i;
const TOS_BAN2 = /violation of terms of service/i;
/** §9.2's 403s that mean the project (or the metadata it was discovered with) is wrong. */
const PROJECT_DENIED = /cloudaicompanion\.companions\.generateChat|valid license of this product/i;
const DISABLED_REASON = /^(?:account|user)_disabled$/i;
const CAPACITY_TEXT = /no capacity available|overloaded|temporarily unavailable/i;
const QUOTA_TEXT = /quota_exhausted|quota exhausted|individual quota|daily limit|quota exceeded/i;
/** A throttle longer than this is treated as exhausted quota rather than a short rate limit ([CPA]). */
const LONG_LIMIT_MS = 5 * 60_000;

function snippet(text: string): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > 300 ? `${t.slice(0, 300)}…` : t;
}

/** Classifies one non-2xx answer from Cloud Code (generation, models, loadCodeAssist…). */
export function classifyGoogleError(status: number, bodyText: string, headers: Headers, now: number): UpstreamError {
  const err = parseGoogleError(bodyText);
  const rawMessage = typeof err?.message === 'string' ? err.message : '';
  const message = rawMessage ? cleanMessage(rawMessage) : '';
  const gStatus = typeof err?.status === 'string' ? err.status : '';
  const reasons = reasonsOf(err);
  const has = (r: string) => reasons.includes(r);
  const code = reasons[0] ?? (gStatus || null);
  const isHtml = !err && /^\s*</.test(bodyText);
  const text = message || (isHtml ? '' : snippet(bodyText));
  const mk = (kind: UpstreamErrorKind, msg: string, extra: { resetAt?: number | null; scope?: 'model' | 'account'; code?: string | null; verifyUrl?: string | null } = {}) =>
    new UpstreamError(kind, msg, { status, code: extra.code === undefined ? code : extra.code, ...extra });
  const describe = (fallback: string) => (text ? `Antigravity: ${text}` : `Antigravity: ${fallback}`);

  if (status === 401 || gStatus === 'UNAUTHENTICATED') {
    return mk('auth', describe('access token rejected (401)'), { scope: 'account' });
  }

  if (status === 403 || gStatus === 'PERMISSION_DENIED') {
    if (has('VALIDATION_REQUIRED') || /VALIDATION_REQUIRED/.test(rawMessage)) {
      const verifyUrl = verifyUrlOf(err, rawMessage);
      return mk('invalid_account', 'Antigravity: this Google account needs verification' + (verifyUrl ? ' (open the verify link)' : ''), {
        scope: 'account',
        code: 'VALIDATION_REQUIRED',
        verifyUrl,
      });
    }
    if (TOS_BAN.test(rawMessage) && TOS_BAN2.test(rawMessage)) {
      return mk('invalid_account', 'Antigravity: this Google account has been disabled for a terms-of-service violation', {
        scope: 'account',
        code: 'TOS_VIOLATION',
      });
    }
    if (reasons.some((r) => DISABLED_REASON.test(r))) {
      return mk('invalid_account', describe('this Google account is disabled'), { scope: 'account' });
    }
    // Any other 403 (no licence, generateChat denied on the project, one model denied) is about the
    // client's metadata, the project or the model (§9.2): try elsewhere, never mark the account dead.
    // The project ones are tagged so the provider discovers the project again ("fix discovery").
    if (PROJECT_DENIED.test(rawMessage)) return mk('transient', describe(`permission denied on the project (HTTP ${status})`), { code: 'PROJECT_DENIED' });
    return mk('transient', describe(`permission denied (HTTP ${status})`));
  }

  if (status === 404 || gStatus === 'NOT_FOUND') {
    return mk('not_found', describe('requested entity was not found (404): unknown model, or the client version is too old for it'));
  }

  const capacity =
    has('MODEL_CAPACITY_EXHAUSTED') || status === 503 || status === 529 || (status === 429 && CAPACITY_TEXT.test(rawMessage) && !reasons.length);
  if (capacity && !has('QUOTA_EXHAUSTED') && !has('RATE_LIMIT_EXCEEDED')) {
    return mk('capacity', describe(`no capacity upstream (HTTP ${status})`), { resetAt: resetAtOf(err, bodyText, headers, now) });
  }

  if (status === 429 || gStatus === 'RESOURCE_EXHAUSTED') {
    const resetAt = resetAtOf(err, bodyText, headers, now);
    const long = resetAt !== null && resetAt - now >= LONG_LIMIT_MS;
    if (has('QUOTA_EXHAUSTED') || has('INSUFFICIENT_G1_CREDITS_BALANCE')) {
      return mk('quota_exhausted', describe('quota exhausted'), { resetAt });
    }
    if (has('RATE_LIMIT_EXCEEDED')) {
      return mk(long ? 'quota_exhausted' : 'rate_limited', describe('rate limit exceeded'), { resetAt });
    }
    if (QUOTA_TEXT.test(rawMessage) || long) {
      return mk('quota_exhausted', describe('quota exhausted'), { resetAt, code: code ?? 'QUOTA_EXHAUSTED' });
    }
    // No reason: a short throttle or a "false 429" — cool down briefly, never for hours.
    return mk('rate_limited', describe('rate limited (429)'), { resetAt });
  }

  if (status === 400 || status === 413 || status === 422 || gStatus === 'INVALID_ARGUMENT' || gStatus === 'FAILED_PRECONDITION') {
    if (THINKING_SIGNATURE.some((re) => re.test(message))) {
      // Worded so Claude Code's self-healing matches it ("invalid signature" + "thinking block"): it then strips
      // thinking from the history and retries once, instead of ending the session (protocol §1.6).
      return mk('bad_request', `Invalid signature in thinking block: Antigravity rejected a signature from the conversation history (${message})`, {
        code: code ?? 'INVALID_SIGNATURE',
      });
    }
    if (PROMPT_TOO_LONG.test(message)) return mk('bad_request', promptTooLong(message));
    return mk('bad_request', describe(`invalid request (HTTP ${status})`));
  }

  if (status >= 500 || status === 0 || status === 408 || isHtml) {
    return mk('transient', isHtml ? `Antigravity: upstream answered HTTP ${status} with an HTML page` : describe(`upstream error (HTTP ${status})`));
  }

  return mk('bad_request', describe(`unexpected HTTP ${status}`));
}
