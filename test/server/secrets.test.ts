// Whatever an upstream's error says reaches the client as an Anthropic error message: a token or key
// it quotes (an access token in a proxy's error page, a key echoed back) must not go with it.
import { afterEach, describe, expect, test } from 'bun:test';
import { ApiError } from '../../src/anthropic/errors.ts';
import { blockDelta, blockStart, messageStart } from '../../src/anthropic/events.ts';
import { registerSecret } from '../../src/log.ts';
import { body, dispatchSteps, post, startHarness, type Harness } from './stubs.ts';

// Built from parts so no token-shaped literal sits in the source.
const ACCESS_TOKEN = ['ya29', 'FAKE-access-token-for-tests', 'x'.repeat(20)].join('.');
const ACCOUNT_KEY = ['FAKE', 'account', 'key', '0123456789abcdef'].join('-');

let h: Harness | null = null;
afterEach(() => {
  h?.stop();
  h = null;
});

describe('upstream error messages sent to the client', () => {
  test('an error answer does not quote a registered secret or a token-shaped string', async () => {
    registerSecret(ACCOUNT_KEY);
    h = startHarness();
    h.dispatch = async () => {
      throw new ApiError('api_error', `Upstream rejected the account's credentials: key ${ACCOUNT_KEY} and token ${ACCESS_TOKEN} refused`, { status: 503 });
    };
    const r = await post(h, '/v1/messages', body());
    const text = await r.text();
    expect(r.status).toBe(503);
    expect(text).toContain("Upstream rejected the account's credentials");
    expect(text).not.toContain(ACCOUNT_KEY);
    expect(text).not.toContain(ACCESS_TOKEN);
  });

  test('an error event that ends a stream does not quote a registered secret', async () => {
    registerSecret(ACCOUNT_KEY);
    h = startHarness();
    h.dispatch = dispatchSteps([
      messageStart('claude-test-1', { input_tokens: 1, output_tokens: 1 }, 'msg_s1'),
      blockStart(0, { type: 'text', text: '' }),
      blockDelta(0, { type: 'text_delta', text: 'hi' }),
      { type: 'error', error: { type: 'api_error', message: `upstream said: invalid key ${ACCOUNT_KEY}` } } as never,
    ]);
    const text = await (await post(h, '/v1/messages', body({ stream: true }))).text();
    expect(text).toContain('event: error');
    expect(text).toContain('upstream said: invalid key');
    expect(text).not.toContain(ACCOUNT_KEY);
  });

  test('a stream that fails after the 200 does not quote a token in its error event', async () => {
    h = startHarness();
    h.dispatch = dispatchSteps([
      messageStart('claude-test-1', { input_tokens: 1, output_tokens: 1 }, 'msg_s2'),
      { throw: new ApiError('api_error', `connection reset: Authorization: Bearer ${ACCESS_TOKEN}`) },
    ]);
    const text = await (await post(h, '/v1/messages', body({ stream: true }))).text();
    expect(text).toContain('event: error');
    expect(text).not.toContain(ACCESS_TOKEN);
  });

  test("the proxy's own error messages keep their words (no key=value guess masks them)", async () => {
    h = startHarness();
    const r = await post(h, '/v1/messages', body(), { 'content-type': 'application/json' });
    expect(r.status).toBe(401);
    expect(((await r.json()) as { error: { message: string } }).error.message).toBe('missing x-api-key or Authorization: Bearer header');
  });
});
