// Google OAuth for Antigravity accounts (protocol §2): PKCE authorize URL, code exchange, refresh,
// userinfo, and the per-account access-token cache that every upstream call goes through. A token
// is refreshed a few minutes before it expires, once per account however many requests ask at the
// same time; invalid_grant is an invalid_account error (the pool marks the account, never over a
// user's `disabled`), a network or 5xx failure is transient.
import type { Config } from '../../config.ts';
import { log, registerSecret } from '../../log.ts';
import type { Account } from '../../store/accounts.ts';
import { UpstreamError, type ProviderDeps } from '../provider.ts';
import { closeHttp1Pool } from '../http1.ts';

export const OAUTH_SCOPES = [
  'https://www.googleapis.com/auth/cloud-platform',
  'https://www.googleapis.com/auth/userinfo.email',
  'https://www.googleapis.com/auth/userinfo.profile',
  'https://www.googleapis.com/auth/cclog',
  'https://www.googleapis.com/auth/experimentsandconfigs',
];

/** Refresh this long before the access token expires. */
export const REFRESH_SKEW_MS = 5 * 60_000;
/**
 * When an early refresh fails for a transient reason, the token in hand still serves while it has
 * this long left (a request checked at its start), and the refresh is not tried again for a while.
 */
const SPARE_MIN_LEFT_MS = 60_000;
const RETRY_REFRESH_AFTER_MS = 30_000;
const TOKEN_TIMEOUT_MS = 20_000;
/** Google's access tokens live an hour: one rejected longer ago has expired and cannot come back. */
const REJECTED_KEEP_MS = 60 * 60_000;

type OAuthConfig = Pick<Config['antigravity'], 'clientId' | 'clientSecret' | 'authUrl' | 'tokenUrl' | 'userinfoUrl'>;

function base64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export interface Pkce {
  verifier: string;
  challenge: string;
}

/** verifier = base64url(32 random bytes); challenge = base64url(sha256(verifier)) (S256). */
export function createPkce(): Pkce {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const challenge = base64url(new Uint8Array(new Bun.CryptoHasher('sha256').update(verifier).digest()));
  return { verifier, challenge };
}

export function randomState(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('hex');
}

/** The consent URL (§2.2): offline access + consent prompt so Google always returns a refresh token. */
export function buildAuthUrl(cfg: OAuthConfig, opts: { redirectUri: string; state: string; codeChallenge: string }): string {
  const q = new URLSearchParams({
    client_id: cfg.clientId,
    redirect_uri: opts.redirectUri,
    response_type: 'code',
    scope: OAUTH_SCOPES.join(' '),
    access_type: 'offline',
    prompt: 'consent',
    code_challenge: opts.codeChallenge,
    code_challenge_method: 'S256',
    state: opts.state,
  });
  return `${cfg.authUrl}?${q.toString()}`;
}

export interface TokenSet {
  accessToken: string;
  /** Epoch ms. */
  expiresAt: number;
  /** Only when Google sent one (always on code exchange, rarely on refresh). */
  refreshToken?: string;
  /** The scopes granted, space-separated, when Google said (it does on both grants). */
  scope?: string;
}

/**
 * Scopes without which the account cannot work: Cloud Code needs cloud-platform, the e-mail comes
 * from userinfo. Google's consent page lets a user untick them (granular consent).
 */
const REQUIRED_SCOPES = ['https://www.googleapis.com/auth/cloud-platform', 'https://www.googleapis.com/auth/userinfo.email'];

/** The required scopes a token was not granted (none when Google did not list the scopes). */
export function missingScopes(t: Pick<TokenSet, 'scope'>): string[] {
  if (t.scope === undefined) return [];
  const granted = new Set(t.scope.split(/\s+/));
  return REQUIRED_SCOPES.filter((s) => !granted.has(s));
}

interface TokenBody {
  access_token?: unknown;
  expires_in?: unknown;
  refresh_token?: unknown;
  scope?: unknown;
  error?: unknown;
  error_description?: unknown;
}

/** Refresh-token failures that mean "log in again" (§9.2 401 row). */
const PERMANENT_OAUTH_ERRORS = new Set(['invalid_grant']);
/**
 * The OAuth client itself refused: the configuration is wrong, not the account. Marking every account
 * invalid for it would empty the pool until the next re-verification after the fix.
 */
const CLIENT_OAUTH_ERRORS = new Set(['invalid_client', 'unauthorized_client']);

/** Google refused the OAuth client (the configuration), whatever the account. */
export function isOAuthClientError(err: unknown): boolean {
  return err instanceof UpstreamError && err.code !== null && CLIENT_OAUTH_ERRORS.has(err.code);
}

// What the token endpoint is sent that must never be quoted back.
const SECRET_FORM_FIELDS = ['client_secret', 'refresh_token', 'code', 'code_verifier'] as const;

/**
 * The token endpoint's words with every secret of the form it was sent masked: the message becomes
 * the account's reason, a client's error and a log line, and a server (or a proxy before it) that
 * quotes the request does so URL-encoded, where no token shape is recognised.
 */
function withoutForm(text: string, form: Record<string, string>): string {
  let out = text;
  for (const field of SECRET_FORM_FIELDS) {
    const value = form[field];
    if (!value || value.length < 6) continue;
    for (const shown of new Set([value, encodeURIComponent(value), new URLSearchParams({ v: value }).toString().slice(2)])) out = out.split(shown).join('***');
  }
  return out;
}

async function postToken(cfg: OAuthConfig, form: Record<string, string>, now: number, signal?: AbortSignal): Promise<TokenSet> {
  const timeout = AbortSignal.timeout(TOKEN_TIMEOUT_MS);
  let res: Response;
  let text: string;
  try {
    res = await fetch(cfg.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', 'user-agent': 'Go-http-client/2.0' },
      body: new URLSearchParams(form).toString(),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    text = await res.text();
  } catch (err) {
    const why = timeout.aborted ? 'timed out' : signal?.aborted ? 'aborted' : ((err as { code?: string })?.code ?? 'network error');
    throw new UpstreamError('transient', `Google token endpoint unreachable (${why})`, { status: 0, code: 'AUTH_NETWORK_ERROR', cause: err });
  }
  const body = jsonObject(text) as TokenBody;
  if (!res.ok) {
    const error = typeof body.error === 'string' ? withoutForm(body.error, form) : '';
    const desc = typeof body.error_description === 'string' ? withoutForm(body.error_description, form) : '';
    if (PERMANENT_OAUTH_ERRORS.has(error)) {
      // A code is refused when it expired, was used already, or belongs to another login attempt.
      const what = form.grant_type === 'authorization_code' ? 'Google refused the authorization code' : 'Google refused the refresh token';
      const then = form.grant_type === 'authorization_code' ? 'start the login again' : 'log in again';
      throw new UpstreamError('invalid_account', `${what} (${error}${desc ? `: ${desc}` : ''}); ${then}`, {
        status: res.status,
        code: error,
        scope: 'account',
      });
    }
    if (CLIENT_OAUTH_ERRORS.has(error)) {
      throw new UpstreamError('transient', `Google refused the OAuth client (${error}${desc ? `: ${desc}` : ''}); check GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET`, {
        status: res.status,
        code: error,
      });
    }
    throw new UpstreamError('transient', `Google token endpoint answered HTTP ${res.status}${error ? ` (${error})` : ''}`, {
      status: res.status,
      code: error || null,
    });
  }
  if (typeof body.access_token !== 'string' || !body.access_token) {
    throw new UpstreamError('transient', 'Google token endpoint answered without an access token', { status: res.status });
  }
  const expiresIn = typeof body.expires_in === 'number' ? body.expires_in : Number(body.expires_in) || 3599;
  registerSecret(body.access_token, now + expiresIn * 1000, now);
  const out: TokenSet = { accessToken: body.access_token, expiresAt: now + expiresIn * 1000 };
  if (typeof body.scope === 'string') out.scope = body.scope;
  if (typeof body.refresh_token === 'string' && body.refresh_token) {
    registerSecret(body.refresh_token);
    out.refreshToken = body.refresh_token;
  }
  return out;
}

/** §2.5: authorization code + PKCE verifier -> tokens (a refresh token is required). */
export async function exchangeCode(
  cfg: OAuthConfig,
  opts: { code: string; verifier: string; redirectUri: string },
  now = Date.now(),
  signal?: AbortSignal,
): Promise<TokenSet & { refreshToken: string }> {
  const t = await postToken(
    cfg,
    {
      client_id: cfg.clientId,
      client_secret: cfg.clientSecret,
      code: opts.code,
      code_verifier: opts.verifier,
      grant_type: 'authorization_code',
      redirect_uri: opts.redirectUri,
    },
    now,
    signal,
  );
  if (!t.refreshToken) throw new UpstreamError('invalid_account', 'Google returned no refresh token; revoke the app grant and log in again');
  return t as TokenSet & { refreshToken: string };
}

/** §2.6: refresh token -> a fresh access token. */
export function refreshAccessToken(cfg: OAuthConfig, refreshToken: string, now = Date.now(), signal?: AbortSignal): Promise<TokenSet> {
  registerSecret(refreshToken);
  return postToken(
    cfg,
    { client_id: cfg.clientId, client_secret: cfg.clientSecret, grant_type: 'refresh_token', refresh_token: refreshToken },
    now,
    signal,
  );
}

/**
 * A JSON object's fields, or none: a body that is not one (an HTML page, `null`, an array, nothing
 * at all) from something in front of Google must read as "no such field", not as a TypeError.
 */
function jsonObject(text: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** The account's e-mail from the userinfo endpoint. */
export async function fetchUserEmail(cfg: OAuthConfig, accessToken: string, signal?: AbortSignal): Promise<string> {
  const timeout = AbortSignal.timeout(TOKEN_TIMEOUT_MS);
  let res: Response;
  let text: string;
  try {
    res = await fetch(cfg.userinfoUrl, {
      headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' },
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    text = await res.text();
  } catch (err) {
    throw new UpstreamError('transient', 'Google userinfo endpoint unreachable', { cause: err });
  }
  if (!res.ok) throw new UpstreamError(res.status === 401 ? 'auth' : 'transient', `Google userinfo answered HTTP ${res.status}`, { status: res.status });
  const email = jsonObject(text).email;
  if (typeof email !== 'string' || !email) throw new UpstreamError('transient', 'Google userinfo returned no e-mail');
  return email;
}

export interface TokenManager {
  /** A valid access token for the account (cached, refreshed early, single-flight). */
  get(account: Account, signal?: AbortSignal): Promise<string>;
  /**
   * Refresh now, whatever the cache says (`refresh()`; the cached token serves until replaced), or
   * after an upstream 401 with `failed`: then a token refreshed since by another request is
   * returned as it is, not refreshed again.
   */
  refresh(account: Account, failed?: string): Promise<string>;
  /** Forget the cached token (the next get() refreshes unless the stored one is still good). */
  drop(accountId: string): void;
  /** Access tokens held as rejected (tests: the list stays bounded). */
  rejectedCount(): number;
}

export function createTokenManager(cfg: OAuthConfig, deps: ProviderDeps): TokenManager {
  const cache = new Map<string, { token: string; expiresAt: number }>();
  /**
   * Tokens known to be rejected (401): never reuse them from the stored credentials either. Token ->
   * until when that matters (it has expired by then); pruned when one is added, which is rare.
   */
  const rejected = new Map<string, number>();
  function reject(token: string): void {
    closeHttp1Pool(token);
    const t = deps.now();
    for (const [k, until] of rejected) if (until <= t) rejected.delete(k);
    rejected.set(token, t + REJECTED_KEEP_MS);
  }
  const inflight = new Map<string, Promise<string>>();
  /** Accounts whose early refresh failed transiently: not tried again before this time. */
  const retryAt = new Map<string, number>();
  /**
   * Refresh tokens Google replaced (old -> new), per account. The account handed in may predate the
   * store write (or the store refused it): the revoked old token must not be sent again.
   */
  const rotated = new Map<string, { from: string; to: string }>();

  function refreshTokenOf(account: Account): string {
    if (account.credentials.kind !== 'oauth' || !account.credentials.refreshToken) {
      throw new UpstreamError('invalid_account', 'Antigravity accounts need a Google refresh token', { scope: 'account' });
    }
    const stored = account.credentials.refreshToken;
    // Only a replacement of this very token: one from a new login since stands.
    const r = rotated.get(account.id);
    return r && r.from === stored ? r.to : stored;
  }

  function doRefresh(account: Account): Promise<string> {
    const running = inflight.get(account.id);
    if (running) return running;
    const p = (async () => {
      const refreshToken = refreshTokenOf(account);
      try {
        // No client signal: the refresh serves every waiter, one aborted request must not kill it.
        const t = await refreshAccessToken(cfg, refreshToken, deps.now());
        const before = cache.get(account.id)?.token;
        cache.set(account.id, { token: t.accessToken, expiresAt: t.expiresAt });
        // Requests now go out with the new token: the old one's idle connections are never taken again.
        if (before !== undefined && before !== t.accessToken) closeHttp1Pool(before);
        retryAt.delete(account.id);
        const stored = (account.credentials as { refreshToken: string }).refreshToken;
        if (t.refreshToken && t.refreshToken !== refreshToken) rotated.set(account.id, { from: stored, to: t.refreshToken });
        // One write for both tokens: a rotated refresh token never lands without its access token.
        // Only over the token this refresh started from (as stored, or as rotated since): a new
        // login stored meanwhile (the CLI) is newer than this.
        deps.updateAccount(account.id, {
          credentials: { kind: 'oauth', refreshToken: t.refreshToken ?? refreshToken, accessToken: t.accessToken, expiresAt: t.expiresAt },
          ifRefreshToken: stored === refreshToken ? [stored] : [stored, refreshToken],
        });
        return t.accessToken;
      } finally {
        inflight.delete(account.id);
      }
    })();
    inflight.set(account.id, p);
    return p;
  }

  return {
    async get(account: Account, signal?: AbortSignal): Promise<string> {
      const now = deps.now();
      const hit = cache.get(account.id);
      if (hit && hit.expiresAt - REFRESH_SKEW_MS > now) return hit.token;
      const c = account.credentials;
      const stored = c.kind === 'oauth' && c.accessToken && c.expiresAt && !rejected.has(c.accessToken) ? { token: c.accessToken, expiresAt: c.expiresAt } : null;
      if (!hit && stored && stored.expiresAt - REFRESH_SKEW_MS > now) {
        registerSecret(stored.token, stored.expiresAt, now);
        cache.set(account.id, stored);
        return stored.token;
      }
      // The token in hand while the refresh is early: Google's token endpoint failing then must not
      // fail requests (nor send each one to wait on it again) while that token still works.
      const spare = hit ?? stored;
      const spareUsable = () => !!spare && spare.expiresAt - SPARE_MIN_LEFT_MS > deps.now() && !rejected.has(spare.token);
      if (spareUsable() && (retryAt.get(account.id) ?? 0) > now) return spare!.token;
      const p = doRefresh(account);
      try {
        if (!signal) return await p;
        // The caller may stop waiting; the refresh itself carries on for the others.
        return await new Promise<string>((resolve, reject) => {
          if (signal.aborted) return reject(new UpstreamError('transient', 'request aborted by the client'));
          const onAbort = () => reject(new UpstreamError('transient', 'request aborted by the client'));
          signal.addEventListener('abort', onAbort, { once: true });
          p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
        });
      } catch (err) {
        if (!(err instanceof UpstreamError) || err.kind !== 'transient' || signal?.aborted || !spareUsable()) throw err;
        if (!retryAt.has(account.id) || retryAt.get(account.id)! <= deps.now()) {
          log.warn(`antigravity: refreshing ${account.label}'s token failed (${err.message}); its current token serves while it lasts`);
        }
        retryAt.set(account.id, deps.now() + RETRY_REFRESH_AFTER_MS);
        // A stored token served: held in the cache (and known to the log redaction) like a fresh one.
        if (!cache.has(account.id)) {
          registerSecret(spare!.token, spare!.expiresAt, deps.now());
          cache.set(account.id, spare!);
        }
        return spare!.token;
      }
    },
    refresh(account: Account, failed?: string): Promise<string> {
      const hit = cache.get(account.id);
      // Several requests got a 401 with the same token: the first refreshes, the later ones take its result.
      if (failed !== undefined) {
        reject(failed);
        if (hit && hit.token !== failed && hit.expiresAt - REFRESH_SKEW_MS > deps.now()) return Promise.resolve(hit.token);
        const running = inflight.get(account.id);
        if (running) return running;
        if (hit) reject(hit.token);
        cache.delete(account.id);
      }
      // A forced refresh says nothing against the token in hand: it serves until the new one comes,
      // and stays if Google's token endpoint fails meanwhile.
      return doRefresh(account);
    },
    drop(accountId: string): void {
      const hit = cache.get(accountId);
      if (hit) reject(hit.token);
      cache.delete(accountId);
    },
    rejectedCount: () => rejected.size,
  };
}
