// ANTIGRAVITY_AI_CREDITS through `mcp serve`: two Google accounts whose Claude quota is out, one of
// them with Google One AI credits (antigravity.md §13.3). The pool, the provider and the fake together:
// the account without credits is limited as before, the request lands on the one with credits, and
// later requests of the same quota group go on credits without a 429 first.
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type FakeGoogle, startFakeGoogle } from '../fakes/google.ts';
import { CHILD_PROCESS_HOOK_MS, addGoogleAccounts, cleanupTempDirs, googleEnv, mcpEnv, runMcp, type ServeHandle, startServe, tempDir } from './helpers.ts';

const KEY = 'proxy-key-e2e-credits-0123456789';
const RICH = 'rich@example.com';
const POOR = 'poor@example.com';
let google: FakeGoogle;
let server: ServeHandle;
let env: Record<string, string>;

beforeAll(async () => {
  google = startFakeGoogle();
  google.setAccount(RICH, { aiCredits: 3 });
  google.setAccount(POOR, { aiCredits: 0 });
  // Both accounts' Claude + GPT quota is out (fetchAvailableModels shows it, and generation says so).
  google.setQuota({ 'claude-sonnet-4-6': { resetTime: new Date(Date.now() + 3_600_000).toISOString() } });
  google.setMode({ kind: 'quota_exhausted', resetMs: 3_600_000 }, { model: 'claude-sonnet-4-6' });
  env = mcpEnv(tempDir(), { PROXY_API_KEY: KEY, ANTIGRAVITY_AI_CREDITS: 'true', ...googleEnv(google) });
  await addGoogleAccounts(env, google, [POOR, RICH]);
  server = await startServe({ env });
}, CHILD_PROCESS_HOOK_MS);

afterAll(async () => {
  await server?.stop();
  await google?.stop();
  cleanupTempDirs();
}, CHILD_PROCESS_HOOK_MS);

describe('ANTIGRAVITY_AI_CREDITS=true, every Claude quota out', () => {
  test('the request is served on the credits of the account that has some; the other is limited as before', async () => {
    const client = new Anthropic({ baseURL: server.url, apiKey: KEY, maxRetries: 0 });
    // First the account without credits alone: its quota answer stands, and it is limited as before.
    expect((await runMcp(['accounts', 'disable', RICH], { env })).code).toBe(0);
    const alone = google.generations().length;
    const refused = await client.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'Hi.' }] }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(Anthropic.RateLimitError);
    // Each try goes to both Cloud Code endpoints: first without credits, then on them.
    expect(google.generations().slice(alone).map((g) => [g.email, g.endpoint, (g.body as { enabledCreditTypes?: string[] }).enabledCreditTypes])).toEqual([
      [POOR, 'daily', undefined],
      [POOR, 'prod', undefined],
      [POOR, 'daily', ['GOOGLE_ONE_AI']],
      [POOR, 'prod', ['GOOGLE_ONE_AI']],
    ]);
    expect((await runMcp(['accounts', 'enable', RICH], { env })).code).toBe(0);

    const before = google.generations().length;
    const { data, response } = await client.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'Say hello.' }] }).withResponse();
    expect(data.stop_reason).toBe('end_turn');
    const gens = google.generations().slice(before);
    const served = gens.filter((g) => g.mode === 'ok');
    expect(served.map((g) => [g.email, (g.body as { enabledCreditTypes?: string[] }).enabledCreditTypes])).toEqual([[RICH, ['GOOGLE_ONE_AI']]]);
    expect(response.headers.get('x-proxy-account')).toBeTruthy();
    // The account without credits carries the quota limit; the one on credits does not.
    const limits = (await (await fetch(`${server.url}/account-limits`, { headers: { 'x-api-key': KEY } })).json()) as { accounts: Array<{ email: string; limits: unknown[] }> };
    const byEmail = Object.fromEntries(limits.accounts.map((a) => [a.email, a.limits.length]));
    expect(byEmail[RICH]).toBe(0);
    expect(byEmail[POOR]).toBeGreaterThan(0);

    // The next request spends credits at once: no 429 first.
    const next = google.generations().length;
    await client.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'Again.' }] });
    expect(google.generations().slice(next).map((g) => [g.email, g.mode])).toEqual([[RICH, 'ok']]);
  });

  test('once the credits run out, the quota answer reaches the client as a 429 with the reset', async () => {
    google.setAccount(RICH, { aiCredits: 0 });
    const client = new Anthropic({ baseURL: server.url, apiKey: KEY, maxRetries: 0 });
    const err = await client.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'Once more.' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    expect(Number((err as InstanceType<typeof Anthropic.RateLimitError>).headers?.get('retry-after'))).toBeGreaterThan(3000);
  });
});
