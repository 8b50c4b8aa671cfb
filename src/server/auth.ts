// Client key check: `x-api-key` or `Authorization: Bearer` (or Basic auth), compared in constant time. Both sides
// are hashed first so the comparison is over equal-length buffers and the key length does not leak.
import { createHash, timingSafeEqual } from 'node:crypto';
import { ApiError } from '../anthropic/errors.ts';

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Constant-time equality of two secrets (any lengths). */
export function keysMatch(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * The key the client sent: x-api-key first, else a Bearer token, else Basic auth's password (its
 * user name when the password is empty), which is how a browser sends it to /dashboard. `basic`
 * false ignores Basic auth: a browser replays it by itself, even on a form a foreign page posts.
 */
export function clientKey(headers: Headers, basic = true): string | null {
  const x = headers.get('x-api-key');
  if (x) return x.trim();
  return authorizationKey(headers, basic);
}

/** The key in the Authorization header (Bearer, or Basic when `basic`), or null. */
function authorizationKey(headers: Headers, basic: boolean): string | null {
  const auth = headers.get('authorization');
  if (!auth) return null;
  const a = auth.trim();
  const scheme = a.slice(0, 6).toLowerCase();
  if (scheme === 'basic ') return basic ? basicKey(a.slice(6).trim()) : null;
  if (a.length < 7 || scheme + a[6]!.toLowerCase() !== 'bearer ') return null;
  const token = a.slice(7).trim();
  return token || null;
}

function basicKey(encoded: string): string | null {
  let pair: string;
  try {
    pair = Buffer.from(encoded, 'base64').toString('utf8');
  } catch {
    return null;
  }
  const colon = pair.indexOf(':');
  const key = colon < 0 ? pair : pair.slice(colon + 1) || pair.slice(0, colon);
  return key.trim() || null;
}

/**
 * Returns a matcher bound to the configured keys: the position (1-based) of the key the client
 * sent (in x-api-key or Authorization), or 0 when it sent none of them. No configured key refuses
 * everyone (fail closed). Every key is compared, whichever matches, so the time taken does not say
 * which did. `basic`: whether Basic auth counts (see clientKey).
 */
export function makeKeyMatcher(expected: readonly string[]): (headers: Headers, basic?: boolean) => number {
  const wants = expected.filter((k) => k !== '').map(digest);
  const position = (key: string | null | undefined): number => {
    if (!key) return 0;
    const got = digest(key);
    let found = 0;
    for (let i = 0; i < wants.length; i++) if (timingSafeEqual(got, wants[i]!) && !found) found = i + 1;
    return found;
  };
  // Both headers are tried: an Anthropic SDK given the proxy key as its auth token still sends the
  // ANTHROPIC_API_KEY it found in the environment as x-api-key, and that must not hide the right key.
  return (headers, basic = true) => {
    if (!wants.length) return 0;
    const byApiKey = position(headers.get('x-api-key')?.trim());
    const byAuthorization = position(authorizationKey(headers, basic));
    return byApiKey || byAuthorization;
  };
}

// With several keys, which one a request came with (for its log line); set by the app's auth hook.
const keyNumbers = new WeakMap<Request, number>();

export function noteKeyNumber(request: Request, n: number): void {
  keyNumbers.set(request, n);
}

/** The position in PROXY_API_KEY of the key `request` came with, when several are configured. */
export function keyNumberOf(request: Request): number | undefined {
  return keyNumbers.get(request);
}

// A key the proxy refused is as wrong on the next try: without this, Claude Code retries a 401 with
// backoff (10 times by default, minutes) before it says "Invalid API key". Its apiKeyHelper and
// OAuth refresh-and-retry-once comes before this header and still happens.
const NO_RETRY = { 'x-should-retry': 'false' } as const;

export function authError(headers: Headers, basic = true): ApiError {
  if (!basic && !headers.get('x-api-key') && /^\s*basic /i.test(headers.get('authorization') ?? '')) {
    return new ApiError('authentication_error', 'Basic auth is accepted on GET requests only; send the key as x-api-key or Authorization: Bearer', {
      headers: NO_RETRY,
    });
  }
  const sent = headers.has('x-api-key') || headers.has('authorization');
  return new ApiError('authentication_error', sent ? 'invalid x-api-key' : 'missing x-api-key or Authorization: Bearer header', { headers: NO_RETRY });
}
