import { afterAll, beforeEach, describe, expect, test } from 'bun:test';
import {
  buildAuthUrl,
  createPkce,
  createTokenManager,
  exchangeCode,
  fetchUserEmail,
  REFRESH_SKEW_MS,
} from '../../../src/providers/antigravity/oauth.ts';
import { UpstreamError } from '../../../src/providers/provider.ts';
import type { Account, AccountPatch } from '../../../src/store/accounts.ts';
import { startFakeGoogle } from '../../fakes/google.ts';

const fake = startFakeGoogle();
afterAll(() => fake.stop());
const cfg = { clientId: 'cid', clientSecret: 'csecret', authUrl: fake.authUrl, tokenUrl: fake.tokenUrl, userinfoUrl: fake.userinfoUrl };

let clock = Date.now();
let patches: Array<[string, AccountPatch]> = [];
const deps = { updateAccount: (id: string, p: AccountPatch) => void patches.push([id, p]), now: () => clock };

function account(email = 'oauth@example.com', extra: Partial<Extract<Account['credentials'], { kind: 'oauth' }>> = {}): Account {
  return {
    id: `acc_${email.split('@')[0]}`,
    provider: 'antigravity',
    label: email,
    email,
    status: 'active',
    statusReason: null,
    verifyUrl: null,
    credentials: { kind: 'oauth', refreshToken: fake.refreshTokenFor(email), ...extra },
    meta: {},
    createdAt: 0,
    updatedAt: 0,
    lastUsedAt: null,
  };
}

beforeEach(() => {
  fake.clearModes();
  fake.stats.refreshes = 0;
  patches = [];
  clock = Date.now();
});

describe('PKCE and the consent URL', () => {
  test('the challenge is the S256 of the verifier, both base64url without padding', () => {
    const { verifier, challenge } = createPkce();
    expect(verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const expected = Buffer.from(new Bun.CryptoHasher('sha256').update(verifier).digest()).toString('base64url');
    expect(challenge).toBe(expected);
  });

  test('the URL asks for offline access with consent, PKCE S256, state and the scopes', () => {
    const u = new URL(buildAuthUrl(cfg, { redirectUri: 'http://localhost:51121/oauth-callback', state: 'st4te', codeChallenge: 'chal' }));
    const q = u.searchParams;
    expect(q.get('client_id')).toBe('cid');
    expect(q.get('redirect_uri')).toBe('http://localhost:51121/oauth-callback');
    expect(q.get('response_type')).toBe('code');
    expect(q.get('access_type')).toBe('offline');
    expect(q.get('prompt')).toBe('consent');
    expect(q.get('code_challenge')).toBe('chal');
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.get('state')).toBe('st4te');
    expect(q.get('scope')!.split(' ')).toContain('https://www.googleapis.com/auth/cloud-platform');
  });

  test('a code from the consent redirect exchanges for tokens with the same verifier and redirect', async () => {
    const pkce = createPkce();
    const redirectUri = 'http://127.0.0.1:51999/oauth-callback';
    const res = await fetch(buildAuthUrl(cfg, { redirectUri, state: 's', codeChallenge: pkce.challenge }), { redirect: 'manual' });
    const code = new URL(res.headers.get('location')!).searchParams.get('code')!;
    const t = await exchangeCode(cfg, { code, verifier: pkce.verifier, redirectUri });
    expect(t.refreshToken).toStartWith('1//');
    expect(await fetchUserEmail(cfg, t.accessToken)).toBe('user@example.com');
  });

  test('a wrong verifier is refused', async () => {
    const pkce = createPkce();
    const redirectUri = 'http://127.0.0.1:51999/oauth-callback';
    const res = await fetch(buildAuthUrl(cfg, { redirectUri, state: 's', codeChallenge: pkce.challenge }), { redirect: 'manual' });
    const code = new URL(res.headers.get('location')!).searchParams.get('code')!;
    await expect(exchangeCode(cfg, { code, verifier: createPkce().verifier, redirectUri })).rejects.toBeInstanceOf(UpstreamError);
  });
});

describe('the access-token cache', () => {
  test('ten concurrent requests cause exactly one refresh', async () => {
    const tm = createTokenManager(cfg, deps);
    fake.setMode({ kind: 'token_slow', ms: 100 }, { times: 1 });
    const a = account('flight@example.com');
    const tokens = await Promise.all(Array.from({ length: 10 }, () => tm.get(a)));
    expect(fake.stats.refreshes).toBe(1);
    expect(new Set(tokens).size).toBe(1);
  });

  test('a cached token is reused until a few minutes before it expires, then refreshed', async () => {
    const tm = createTokenManager(cfg, deps);
    const a = account('early@example.com');
    const first = await tm.get(a);
    clock += 3599_000 - REFRESH_SKEW_MS - 1000;
    expect(await tm.get(a)).toBe(first);
    expect(fake.stats.refreshes).toBe(1);
    clock += 2000;
    const second = await tm.get(a);
    expect(second).not.toBe(first);
    expect(fake.stats.refreshes).toBe(2);
  });

  test('the refreshed token and its expiry are persisted on the account', async () => {
    const tm = createTokenManager(cfg, deps);
    const a = account('persist@example.com');
    const token = await tm.get(a);
    const [id, patch] = patches.at(-1)!;
    expect(id).toBe(a.id);
    expect(patch.credentials).toEqual({
      kind: 'oauth',
      refreshToken: (a.credentials as { refreshToken: string }).refreshToken,
      accessToken: token,
      expiresAt: clock + 3599_000,
    });
  });

  test('a stored access token that is still fresh is used without a refresh', async () => {
    const tm = createTokenManager(cfg, deps);
    const a = account('stored@example.com', { accessToken: 'ya29.stored', expiresAt: clock + 30 * 60_000 });
    expect(await tm.get(a)).toBe('ya29.stored');
    expect(fake.stats.refreshes).toBe(0);
  });

  test('after an upstream 401 the dropped token is never reused, even from the stored credentials', async () => {
    const tm = createTokenManager(cfg, deps);
    const a = account('dropped@example.com', { accessToken: 'ya29.stale', expiresAt: clock + 30 * 60_000 });
    expect(await tm.get(a)).toBe('ya29.stale');
    tm.drop(a.id);
    const fresh = await tm.get(a);
    expect(fresh).not.toBe('ya29.stale');
    expect(fake.stats.refreshes).toBe(1);
  });

  test('invalid_grant fails with invalid_account and the reason; the status is the pool\'s to set', async () => {
    const tm = createTokenManager(cfg, deps);
    fake.setMode({ kind: 'token_invalid_grant' });
    const a = account('revoked@example.com');
    const err = await tm.get(a).catch((e) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).kind).toBe('invalid_account');
    expect((err as UpstreamError).message).toContain('invalid_grant');
    expect((err as UpstreamError).message).not.toContain((a.credentials as { refreshToken: string }).refreshToken);
    // A plain write here would overwrite a `disabled` the user set meanwhile (pool.markInvalid does not).
    expect(patches.some(([, x]) => x.status !== undefined)).toBe(false);
  });

  test('what a refresh writes holds only while the stored refresh token is the one it started from (a new login may land meanwhile)', async () => {
    const tm = createTokenManager(cfg, deps);
    const a = account('guarded@example.com');
    const used = (a.credentials as { refreshToken: string }).refreshToken;
    await tm.get(a);
    expect(patches.at(-1)?.[1].ifRefreshToken).toEqual([used]);
  });

  test('after Google rotated the refresh token, the next write also holds over the rotated one (an earlier write the store refused)', async () => {
    const tm = createTokenManager(cfg, deps);
    const a = account('guarded-rotated@example.com');
    const old = (a.credentials as { refreshToken: string }).refreshToken;
    fake.setMode({ kind: 'token_rotate' }, { times: 1 });
    await tm.get(a);
    const rotatedTo = (patches.at(-1)![1].credentials as { refreshToken: string }).refreshToken;
    await tm.refresh(a);
    expect(patches.at(-1)?.[1].ifRefreshToken).toEqual([old, rotatedTo]);
  });

  // A token endpoint (or a proxy before it) that quotes the form it was sent: the message becomes the
  // account's reason (/health, accounts list), a client's error and a log line, and the form is
  // URL-encoded, which no token shape matches.
  test.each([
    ['invalid_grant', 400],
    ['invalid_client', 401],
    ['server_error', 500],
  ] as const)('an answer of %s that quotes the form sent keeps the refresh token and client secret out of the error', async (error, status) => {
    const secret = ['FAKE', 'client', 'secret', 'for', 'echo'].join('-');
    const tm = createTokenManager({ ...cfg, clientSecret: secret }, deps);
    const a = account(`echo-${error}@example.com`);
    const refreshToken = (a.credentials as { refreshToken: string }).refreshToken;
    fake.setMode({ kind: 'token_echo', error, status });
    const err = (await tm.get(a).catch((e) => e)) as UpstreamError;
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err.message).toContain(error === 'server_error' ? `HTTP ${status}` : error);
    for (const s of [refreshToken, encodeURIComponent(refreshToken), secret]) expect(err.message).not.toContain(s.slice(-16));
  });

  test('a refused code exchange that quotes the form sent keeps the code, verifier and client secret out of the error', async () => {
    const secret = ['FAKE', 'client', 'secret', 'for', 'echo'].join('-');
    const pkce = createPkce();
    const redirectUri = 'http://127.0.0.1:51999/oauth-callback';
    const res = await fetch(buildAuthUrl(cfg, { redirectUri, state: 's', codeChallenge: pkce.challenge }), { redirect: 'manual' });
    const code = new URL(res.headers.get('location')!).searchParams.get('code')!;
    fake.setMode({ kind: 'token_echo' }, { times: 1 });
    const err = (await exchangeCode({ ...cfg, clientSecret: secret }, { code, verifier: pkce.verifier, redirectUri }).catch((e) => e)) as UpstreamError;
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err.message).toContain('Google refused the authorization code');
    for (const s of [code, encodeURIComponent(code), pkce.verifier, secret]) expect(err.message).not.toContain(s.slice(-16));
  });

  test('a refused OAuth client (invalid_client) is the configuration, not the account: transient, said so, never marks it', async () => {
    const tm = createTokenManager(cfg, deps);
    fake.setMode({ kind: 'token_invalid_client' });
    const err = (await tm.get(account('client@example.com')).catch((e) => e)) as UpstreamError;
    expect(err.kind).toBe('transient');
    expect(err.code).toBe('invalid_client');
    expect(err.message).toContain('GOOGLE_CLIENT_ID');
    expect(patches.some(([, p]) => p.status !== undefined)).toBe(false);
  });

  test.each(['token_http500', 'token_html502', 'token_down'] as const)('%s is transient, said in one line, and never marks the account', async (kind) => {
    const tm = createTokenManager(cfg, deps);
    fake.setMode({ kind });
    const err = await tm.get(account(`${kind}@example.com`)).catch((e) => e);
    expect((err as UpstreamError).kind).toBe('transient');
    expect((err as UpstreamError).message).toMatch(/^Google token endpoint (answered HTTP 5\d\d|unreachable)/);
    expect((err as UpstreamError).message).not.toMatch(/[<\n]/);
    expect(patches.some(([, p]) => p.status === 'invalid')).toBe(false);
  });

  test('an unreachable token endpoint is transient', async () => {
    const tm = createTokenManager({ ...cfg, tokenUrl: 'http://127.0.0.1:1/token' }, deps);
    const err = await tm.get(account('unreachable@example.com')).catch((e) => e);
    expect((err as UpstreamError).kind).toBe('transient');
    expect((err as UpstreamError).code).toBe('AUTH_NETWORK_ERROR');
  });

  test('Google failing an early refresh (5xx) is no failure while the cached token has minutes left: that token is served', async () => {
    const tm = createTokenManager(cfg, deps);
    const a = account('early-5xx@example.com');
    const first = await tm.get(a);
    // Inside the refresh window, four minutes before the token expires.
    clock += 3599_000 - 4 * 60_000;
    fake.setMode({ kind: 'token_http500' });
    expect(await tm.get(a)).toBe(first);
    expect(fake.stats.refreshes).toBe(2);
    // Not asked again on every request while Google is failing; asked again a little later.
    expect(await tm.get(a)).toBe(first);
    expect(fake.stats.refreshes).toBe(2);
    fake.clearModes();
    clock += 60_000;
    const next = await tm.get(a);
    expect(next).not.toBe(first);
    expect(fake.stats.refreshes).toBe(3);
  });

  test('a stored access token with minutes left stands in when the token endpoint is unreachable', async () => {
    const tm = createTokenManager(cfg, deps);
    const a = account('stored-down@example.com', { accessToken: 'ya29.stored-FAKE', expiresAt: clock + 3 * 60_000 });
    fake.setMode({ kind: 'token_down' });
    expect(await tm.get(a)).toBe('ya29.stored-FAKE');
    const tried = fake.stats.refreshes;
    expect(await tm.get(a)).toBe('ya29.stored-FAKE');
    expect(fake.stats.refreshes).toBe(tried);
  });

  test('a token about to expire, or one refused by a 401, is never served when the refresh fails', async () => {
    const tm = createTokenManager(cfg, deps);
    const a = account('too-late@example.com');
    const first = await tm.get(a);
    clock += 3599_000 - 20_000;
    fake.setMode({ kind: 'token_http500' });
    expect(((await tm.get(a).catch((e) => e)) as UpstreamError).kind).toBe('transient');
    clock -= 3 * 60_000;
    const err = (await tm.refresh(a, first).catch((e) => e)) as UpstreamError;
    expect(err.kind).toBe('transient');
    expect(((await tm.get(a).catch((e) => e)) as UpstreamError).kind).toBe('transient');
  });

  test('a forced refresh (verify, the admin refresh) that fails transiently leaves the good cached token in use', async () => {
    const tm = createTokenManager(cfg, deps);
    const a = account('forced-5xx@example.com');
    const first = await tm.get(a);
    fake.setMode({ kind: 'token_http500' });
    expect(((await tm.refresh(a).catch((e) => e)) as UpstreamError).kind).toBe('transient');
    expect(await tm.get(a)).toBe(first);
  });

  test('invalid_grant during an early refresh is reported, not covered by the token still cached', async () => {
    const tm = createTokenManager(cfg, deps);
    const a = account('early-revoked@example.com');
    await tm.get(a);
    clock += 3599_000 - 4 * 60_000;
    fake.setMode({ kind: 'token_invalid_grant' });
    expect(((await tm.get(a).catch((e) => e)) as UpstreamError).kind).toBe('invalid_account');
  });

  test('tokens rejected by a 401 are forgotten once they have expired anyway (months of 401s stay bounded)', async () => {
    const tm = createTokenManager(cfg, deps);
    const a = account('many-401@example.com');
    await tm.get(a);
    // Requests that got a 401 with tokens already replaced: each is remembered as rejected.
    for (let i = 0; i < 1_000; i++) await tm.refresh(a, `ya29.FAKE-rejected-${i}`);
    expect(tm.rejectedCount()).toBe(1_000);
    // Hours later no access token of then can still be live: another 401 finds the list short.
    clock += 3 * 60 * 60_000;
    await tm.refresh(a, 'ya29.FAKE-rejected-later');
    expect(tm.rejectedCount()).toBeLessThanOrEqual(2);
  });

  test('refresh() fetches a new token even when the cached one is fresh', async () => {
    const tm = createTokenManager(cfg, deps);
    const a = account('force@example.com');
    const first = await tm.get(a);
    const second = await tm.refresh(a);
    expect(second).not.toBe(first);
    expect(await tm.get(a)).toBe(second);
    expect(fake.stats.refreshes).toBe(2);
  });

  test('a 401 reported after another request already refreshed reuses that fresh token', async () => {
    const tm = createTokenManager(cfg, deps);
    const a = account('late-401@example.com');
    const stale = await tm.get(a);
    // Two requests sent with `stale` and both got a 401; the second says so after the first's refresh.
    const fresh = await tm.refresh(a, stale);
    expect(await tm.refresh(a, stale)).toBe(fresh);
    expect(await tm.get(a)).toBe(fresh);
    expect(fake.stats.refreshes).toBe(2);
  });

  test('a refresh token Google rotated is used next, even when the store did not take it', async () => {
    const tm = createTokenManager(cfg, { updateAccount: () => {}, now: () => clock });
    const a = account('rotated@example.com');
    const old = (a.credentials as { refreshToken: string }).refreshToken;
    fake.setMode({ kind: 'token_rotate' }, { times: 1 });
    await tm.get(a);
    // The account handed in still names the old, now revoked, refresh token.
    expect((a.credentials as { refreshToken: string }).refreshToken).toBe(old);
    expect(await tm.refresh(a)).toStartWith('ya29.');
  });

  test('a rotated refresh token is persisted with the new access token in one write', async () => {
    const tm = createTokenManager(cfg, deps);
    const a = account('rotated-persist@example.com');
    const old = (a.credentials as { refreshToken: string }).refreshToken;
    fake.setMode({ kind: 'token_rotate' }, { times: 1 });
    const token = await tm.get(a);
    const writes = patches.filter(([, p]) => p.credentials);
    expect(writes.length).toBe(1);
    const c = writes[0]![1].credentials as { refreshToken: string; accessToken: string };
    expect(c.refreshToken).not.toBe(old);
    expect(c.refreshToken).toBe(fake.refreshTokenFor('rotated-persist@example.com'));
    expect(c.accessToken).toBe(token);
  });

  test('a new login (another refresh token stored since) wins over a rotation remembered earlier', async () => {
    const tm = createTokenManager(cfg, { updateAccount: () => {}, now: () => clock });
    const a = account('relogin@example.com');
    fake.setMode({ kind: 'token_rotate' }, { times: 1 });
    await tm.get(a);
    // Stored by `mcp accounts add` since (this fake does not know it: only what is sent matters here).
    const relogged = { ...a, credentials: { kind: 'oauth' as const, refreshToken: '1//FAKE-from-a-new-login' } };
    const sent = fake.requests.length;
    await tm.refresh(relogged).catch(() => {});
    const body = fake.requests.slice(sent).find((r) => r.rpc === 'token')!.body as string;
    expect(new URLSearchParams(body).get('refresh_token')).toBe(relogged.credentials.refreshToken);
  });

  test('a caller that aborts stops waiting while the refresh completes for the others', async () => {
    const tm = createTokenManager(cfg, deps);
    fake.setMode({ kind: 'token_slow', ms: 150 }, { times: 1 });
    const a = account('abort@example.com');
    const ac = new AbortController();
    const aborted = tm.get(a, ac.signal).catch((e) => e);
    const other = tm.get(a);
    ac.abort();
    expect(((await aborted) as UpstreamError).message).toContain('aborted');
    expect(await other).toStartWith('ya29.');
    expect(fake.stats.refreshes).toBe(1);
  });
});
