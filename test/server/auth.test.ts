import { describe, expect, test } from 'bun:test';
import { authError, clientKey, keysMatch, makeKeyMatcher } from '../../src/server/auth.ts';

describe('keysMatch (constant-time compare)', () => {
  test('equal keys match', () => expect(keysMatch('abc-123', 'abc-123')).toBe(true));
  test('different keys of the same length do not match', () => expect(keysMatch('abc-124', 'abc-123')).toBe(false));
  test('a prefix or a longer key does not match (length is hashed away, no throw)', () => {
    expect(keysMatch('abc', 'abc-123')).toBe(false);
    expect(keysMatch('abc-1234', 'abc-123')).toBe(false);
    expect(keysMatch('', 'abc-123')).toBe(false);
  });
  test('comparison is case-sensitive', () => expect(keysMatch('ABC-123', 'abc-123')).toBe(false));
});

describe('clientKey', () => {
  const h = (o: Record<string, string>) => new Headers(o);
  test('reads x-api-key', () => expect(clientKey(h({ 'x-api-key': 'k1' }))).toBe('k1'));
  test('reads a Bearer token, any case of the scheme', () => {
    expect(clientKey(h({ authorization: 'Bearer k2' }))).toBe('k2');
    expect(clientKey(h({ authorization: 'bearer   k3 ' }))).toBe('k3');
  });
  test('x-api-key wins over Authorization', () =>
    expect(clientKey(h({ 'x-api-key': 'k1', authorization: 'Bearer k2' }))).toBe('k1'));
  test("reads Basic auth's password, or its user name when the password is empty (a browser on /dashboard, curl -u)", () => {
    const basic = (pair: string) => h({ authorization: `Basic ${Buffer.from(pair).toString('base64')}` });
    expect(clientKey(basic('anyone:k4'))).toBe('k4');
    expect(clientKey(basic('k5:'))).toBe('k5');
    expect(clientKey(basic('k6'))).toBe('k6');
    expect(clientKey(basic('user:pa:ss'))).toBe('pa:ss');
    expect(clientKey(basic(':'))).toBeNull();
    expect(clientKey(h({ authorization: 'basic ' }))).toBeNull();
  });
  test('another scheme or an empty token is no key', () => {
    expect(clientKey(h({ authorization: 'Digest abc' }))).toBeNull();
    expect(clientKey(h({ authorization: 'Bearer ' }))).toBeNull();
    expect(clientKey(h({}))).toBeNull();
  });
});

describe('makeKeyMatcher', () => {
  test('accepts the configured key by any of the ways to send it', () => {
    const check = makeKeyMatcher(['secret-key']);
    expect(check(new Headers({ 'x-api-key': 'secret-key' }))).toBe(1);
    expect(check(new Headers({ authorization: 'Bearer secret-key' }))).toBe(1);
    expect(check(new Headers({ authorization: `Basic ${btoa('me:secret-key')}` }))).toBe(1);
    expect(check(new Headers({ authorization: `Basic ${btoa('me:secret-kex')}` }))).toBe(0);
    expect(check(new Headers({ 'x-api-key': 'secret-kex' }))).toBe(0);
  });
  test('with several configured keys each one is accepted and named by its position, and nothing else', () => {
    const keys = ['old-key-1234', 'new-key-5678', 'laptop-key-90'];
    const check = makeKeyMatcher(keys);
    for (const [i, k] of keys.entries()) {
      expect(check(new Headers({ 'x-api-key': k }))).toBe(i + 1);
      expect(check(new Headers({ authorization: `Bearer ${k}` }))).toBe(i + 1);
    }
    expect(check(new Headers({ 'x-api-key': 'old-key-1234,new-key-5678' }))).toBe(0);
    expect(check(new Headers({ 'x-api-key': 'new-key' }))).toBe(0);
  });
  // An Anthropic SDK given the proxy key as auth_token still sends the ANTHROPIC_API_KEY it found in
  // the environment as x-api-key: the right key in the other header must not be refused for it.
  test('either header may carry the key when both are sent', () => {
    const check = makeKeyMatcher(['old-key-1234', 'new-key-5678']);
    expect(check(new Headers({ 'x-api-key': 'some-other-api-key', authorization: 'Bearer new-key-5678' }))).toBe(2);
    expect(check(new Headers({ 'x-api-key': 'old-key-1234', authorization: 'Bearer some-other-token' }))).toBe(1);
    expect(check(new Headers({ 'x-api-key': '  ', authorization: 'Bearer old-key-1234' }))).toBe(1);
    expect(check(new Headers({ 'x-api-key': 'nope', authorization: 'Bearer nope-either' }))).toBe(0);
    // Basic auth still counts only where the caller allows it.
    expect(check(new Headers({ 'x-api-key': 'nope', authorization: `Basic ${btoa('me:old-key-1234')}` }), false)).toBe(0);
  });
  test.each([
    ['no key', []],
    ['an empty key', ['']],
  ])('%s configured refuses everyone (fail closed)', (_name, keys) => {
    const check = makeKeyMatcher(keys);
    expect(check(new Headers({ 'x-api-key': '' }))).toBe(0);
    expect(check(new Headers({ authorization: 'Bearer x' }))).toBe(0);
  });
  test('the 401 message says whether a key was sent, never echoing it', () => {
    expect(authError(new Headers({ 'x-api-key': 'leaked?' })).message).not.toContain('leaked?');
    expect(authError(new Headers()).message).toContain('missing');
    expect(authError(new Headers()).status).toBe(401);
  });
  // Claude Code retries a plain 401 up to 10 times with backoff (minutes) before it says "Invalid API key".
  test('the 401 tells clients not to retry: a wrong proxy key does not get right by asking again', () => {
    expect(authError(new Headers({ 'x-api-key': 'wrong' })).headers['x-should-retry']).toBe('false');
    expect(authError(new Headers()).headers['x-should-retry']).toBe('false');
    expect(authError(new Headers({ authorization: 'Basic eDp5' }), false).headers['x-should-retry']).toBe('false');
  });
});
