// Whatever a caller hands the log, a secret in it is masked, registered or not: a CLI process never
// registers any, and a key added while the server runs is not registered either.
import { describe, expect, test } from 'bun:test';
import { configureLog, log, maskSecrets, redact, registeredSecretCount, registerSecret } from '../src/log.ts';
import { FAKE_ZAI_KEY, FAKE_ZAI_KEY_ID, FAKE_ZAI_KEY_SECRET } from './fixtures/fake-zai-key.ts';

describe('redact', () => {
  test('masks an unregistered Z.AI key wherever it stands in a line', () => {
    const out = redact(`Z.AI said: key ${FAKE_ZAI_KEY} is not valid`);
    expect(out).not.toContain(FAKE_ZAI_KEY_ID);
    expect(out).not.toContain(FAKE_ZAI_KEY_SECRET);
    expect(out).toBe('Z.AI said: key *** is not valid');
  });

  test('masks an unregistered Z.AI key inside a JSON body', () => {
    const out = redact(JSON.stringify({ error: { message: `bad token ${FAKE_ZAI_KEY}` } }));
    expect(out).not.toContain(FAKE_ZAI_KEY_SECRET);
  });

  test('masks Google access and refresh tokens and bearer values', () => {
    const out = redact('token ya29.FAKE-access_0123 refresh 1//0gFAKErefresh0123456789 header Bearer FAKEbearer0123');
    expect(out).not.toContain('FAKE');
  });

  test('masks the user and password of a URL (a proxy or base URL with credentials), keeping the host', () => {
    const password = ['FAKE', 'url', 'password', '0123'].join('-');
    for (const mask of [redact, maskSecrets]) {
      const out = mask(`connection to http://user:${password}@127.0.0.1:9/api failed; see https://example.com/a@b`);
      expect(out).toBe('connection to http://***@127.0.0.1:9/api failed; see https://example.com/a@b');
    }
  });

  test('masks a key=value secret up to its end, keeping the punctuation of the sentence around it', () => {
    const out = redact('Google refused the refresh token (invalid_grant: refresh_token=FAKEvalue0123); log in again');
    expect(out).toBe('Google refused the refresh token (invalid_grant: refresh_token=***); log in again');
    // Masked once already (the OAuth layer masks what it sent): left as it is.
    expect(redact('(invalid_grant: refresh_token=***); log in again')).toBe('(invalid_grant: refresh_token=***); log in again');
  });

  test('a quoted Authorization header reads as one masked bearer token, not two masks', () => {
    expect(redact('upstream said: authorization: Bearer FAKEtoken0123, retry')).toBe('upstream said: authorization: Bearer ***, retry');
    expect(redact('upstream said: authorization: Basic RkFLRXVzZXI6RkFLRXBhc3M=')).not.toContain('RkFLRXVzZXI6RkFLRXBhc3M');
  });

  test('leaves a request line with no secret as it was', () => {
    const line = 'req_abc glm-4.6 -> glm-4.6 acct=acc_a9d0e410 200 18ms in=23 out=30 msg_20260000000001d61d69310a1d3ec3';
    expect(redact(line)).toBe(line);
  });
});

describe('registerSecret', () => {
  test('forgets a short-lived secret once it has expired, so the list does not grow for ever', () => {
    // A server refreshes every Google access token hourly: months of them must not pile up, each
    // one scanned for on every log line.
    const before = registeredSecretCount();
    let now = 1_000_000;
    for (let i = 0; i < 500; i++) {
      registerSecret(`fake-access-token-${i}-abcdef`, now + 3_600_000, now);
      now += 3_600_000;
    }
    expect(registeredSecretCount() - before).toBeLessThanOrEqual(3);
    expect(redact('sent fake-access-token-499-abcdef')).toBe('sent ***');
  });

  test('keeps a secret without an end (keys, refresh tokens) for the life of the process', () => {
    registerSecret('fake-long-lived-key-0123');
    registerSecret('fake-other-token-abcdef', 10, 0);
    registerSecret('fake-third-token-abcdef', 10_000_000, 5_000_000);
    expect(redact('fake-long-lived-key-0123')).toBe('***');
  });
});

describe('a JSON log line with fields', () => {
  test('is written, masked, even when masking cut a field value at a quote', () => {
    const writes: string[] = [];
    const realWrite = process.stderr.write;
    process.stderr.write = ((chunk: string | Uint8Array) => {
      writes.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    try {
      configureLog({ format: 'json' });
      expect(() => log.warn('upstream said', { body: 'bad apiKey=FAKEsecret"tail' })).not.toThrow();
    } finally {
      process.stderr.write = realWrite;
      configureLog({ format: 'pretty' });
    }
    const line = writes.join('');
    expect(line).toContain('upstream said');
    expect(line).not.toContain('FAKEsecret');
    expect(() => JSON.parse(line)).not.toThrow();
  });
});
