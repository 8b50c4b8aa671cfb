// Z.AI end to end: `mcp serve` as a child process in front of the fake Z.AI, driven by the official
// Anthropic SDK, and a key added by the CLI while the server runs.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import Anthropic from '@anthropic-ai/sdk';
import { type FakeZai, startFakeZai } from '../fakes/zai.ts';
import { CHILD_PROCESS_HOOK_MS, cleanupTempDirs, mcpEnv, runMcp, type ServeHandle, startServe, tempDir, waitFor, zaiEnv } from './helpers.ts';
import { escapedJson } from '../fixtures/escaped-json.ts';

const PROXY_KEY = 'proxy-key-e2e-zai-0123456789';
const ZAI_KEY = 'zai-test-key-e2e-0123456789';
let zai: FakeZai;
let server: ServeHandle;
let client: Anthropic;

beforeAll(async () => {
  zai = startFakeZai({ keys: [ZAI_KEY] });
  const env = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, PING_INTERVAL_SEC: '1', ...zaiEnv(zai) });
  const add = await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', ZAI_KEY, '--label', 'glm'], { env });
  expect(add.code).toBe(0);
  server = await startServe({ env });
  client = new Anthropic({ baseURL: server.url, apiKey: PROXY_KEY, maxRetries: 0 });
}, CHILD_PROCESS_HOOK_MS);

afterAll(async () => {
  await server?.stop();
  await zai?.stop();
  cleanupTempDirs();
}, CHILD_PROCESS_HOOK_MS);

describe('mcp serve in front of Z.AI', () => {
  test('says it is listening with the number of accounts', () => {
    expect(server.output()).toMatch(/mcp listening on http:\/\/127\.0\.0\.1:\d+ \(1 account\)/);
  });

  test('non-streaming: a whole message, with the proxy headers', async () => {
    const { data, response } = await client.messages
      .create({ model: 'glm-4.6', max_tokens: 256, messages: [{ role: 'user', content: 'Say hello.' }] })
      .withResponse();
    expect(data.type).toBe('message');
    expect(data.role).toBe('assistant');
    expect(data.content.some((b) => b.type === 'text' && b.text.length > 0)).toBe(true);
    expect(response.headers.get('x-proxy-account')).toBeTruthy();
    expect(response.headers.get('x-proxy-upstream-model')).toBe('glm-4.6');
    const upstream = zai.requests.at(-1)!;
    expect(upstream.key).toBe(ZAI_KEY);
    // With one proxy key the request line names none (key=N is for several).
    const id = response.headers.get('request-id')!;
    const line = await waitFor(() => server.output().split('\n').find((l) => l.includes(`${id} glm-4.6`)), 3000, 'the request line');
    expect(line).toMatch(/ cache_w=\d+$/);
  });

  test('streaming: the SDK accumulates a final message, with the proxy headers', async () => {
    const stream = client.messages.stream({
      model: 'glm-4.6',
      max_tokens: 256,
      messages: [{ role: 'user', content: 'Say hello.' }],
    });
    const { response } = await stream.withResponse();
    const message = await stream.finalMessage();
    expect(message.stop_reason).toBe('end_turn');
    expect(message.content.some((b) => b.type === 'text' && b.text.length > 0)).toBe(true);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    expect(response.headers.get('x-proxy-account')).toBeTruthy();
    expect(response.headers.get('x-proxy-upstream-model')).toBe('glm-4.6');
  });

  test('text beyond ASCII reaches Z.AI as the client wrote it, raw or \\u-escaped (as Python json.dumps sends it)', async () => {
    const text = 'Réponds — vite → 中文 🤖 voilà';
    const body = {
      model: 'glm-4.6',
      max_tokens: 100,
      system: `Système : ${text}`,
      messages: [{ role: 'user', content: [{ type: 'text', text }] }],
      metadata: { user_id: 'utilisateur-é' },
    };
    for (const json of [JSON.stringify(body), escapedJson(body)]) {
      const res = await fetch(`${server.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': PROXY_KEY, 'content-type': 'application/json' }, body: json });
      expect(res.status).toBe(200);
      await res.text();
      const sent = zai.messages().at(-1)!.body as Record<string, any>;
      expect([sent.system, sent.messages[0].content[0].text, sent.metadata.user_id]).toEqual([`Système : ${text}`, text, 'utilisateur-é']);
    }
  });

  // Protocol 3.7: Claude Code calls /v1/messages?beta=true (Part 1.3), and Z.AI, which is said to treat
  // Claude Code's traffic specially, is called the same way; a plain call stays plain.
  test('the beta surface the client called (?beta=true) is the one Z.AI is called on', async () => {
    const call = (query: string) =>
      fetch(`${server.url}/v1/messages${query}`, {
        method: 'POST',
        headers: { 'x-api-key': PROXY_KEY, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
        body: JSON.stringify({ model: 'glm-4.6', max_tokens: 256, messages: [{ role: 'user', content: 'Say hello.' }] }),
      });
    expect((await call('?beta=true')).status).toBe(200);
    expect(zai.messages().at(-1)!.query).toBe('?beta=true');
    expect((await call('')).status).toBe(200);
    expect(zai.messages().at(-1)!.query).toBe('');
  });

  test('a wrong proxy key is refused with the Anthropic error envelope', async () => {
    const bad = new Anthropic({ baseURL: server.url, apiKey: 'not-the-key', maxRetries: 0 });
    const err = await bad.messages
      .create({ model: 'glm-4.6', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
  });
});

describe('accounts change while the server runs', () => {
  test('an account added by the CLI to an empty pool is served within 2 s', async () => {
    const otherKey = 'zai-test-key-added-later-000000';
    const fake = startFakeZai({ keys: [otherKey] });
    const env = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ...zaiEnv(fake) });
    const empty = await startServe({ env });
    try {
      expect(empty.output()).toContain('(0 accounts)');
      expect(empty.output()).toContain('mcp accounts add');
      // Advice to type a key on the command line would put it in the shell history.
      expect(empty.output()).not.toContain('--api-key KEY');
      const c = new Anthropic({ baseURL: empty.url, apiKey: PROXY_KEY, maxRetries: 0 });
      const ask = () => c.messages.create({ model: 'glm-4.6', max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] });
      const before = await ask().catch((e: unknown) => e);
      expect(before).toBeInstanceOf(Anthropic.APIError);

      const add = await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', otherKey], { env });
      expect(add.code).toBe(0);
      const added = Date.now();
      const message = await waitFor(() => ask().catch(() => null), 2_000, 'the new account to serve');
      expect(message.type).toBe('message');
      expect(Date.now() - added).toBeLessThanOrEqual(2_000);
      expect(fake.requests.some((r) => r.key === otherKey)).toBe(true);
    } finally {
      await empty.stop();
      await fake.stop();
    }
  });

  test('SIGTERM stops the server cleanly (exit 0)', async () => {
    const fake = startFakeZai();
    const s = await startServe({ env: mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ...zaiEnv(fake) }) });
    try {
      expect(await s.stop('SIGTERM')).toBe(0);
    } finally {
      await fake.stop();
    }
  });
});

describe('what the client hears when Z.AI refuses a key or a model', () => {
  test('the key refused mid-stream: the client gets an api_error event, never authentication_error; one refusal does not lose the key, one that lasts marks it invalid', async () => {
    const key = 'zai-test-key-refused-mid-stream-0';
    const fake = startFakeZai({ keys: [key] });
    const env = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ...zaiEnv(fake) });
    expect((await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', key, '--label', 'refused'], { env })).code).toBe(0);
    const s = await startServe({ env });
    try {
      fake.setMode({ kind: 'sse_error', afterEvents: 4, errorType: 'authentication_error', code: '1002', message: '[1002][Authorization Token is invalid][x]' }, { times: 1 });
      const c = new Anthropic({ baseURL: s.url, apiKey: PROXY_KEY, maxRetries: 0 });
      const err = await c.messages
        .stream({ model: 'glm-4.6', max_tokens: 64, messages: [{ role: 'user', content: 'Say hello.' }] })
        .finalMessage()
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Anthropic.APIError);
      expect((err as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'api_error' } });
      const account = async () => {
        const res = await fetch(`${s.url}/account-limits`, { headers: { 'x-api-key': PROXY_KEY } });
        return ((await res.json()) as { accounts: Array<{ status: string; reason: string | null }> }).accounts[0]!;
      };
      // One refusal after the answer started may be a hiccup: the key stays, and the next request is served.
      expect((await account()).status).toBe('active');
      expect((await c.messages.create({ model: 'glm-4.6', max_tokens: 64, messages: [{ role: 'user', content: 'Again.' }] })).type).toBe('message');
      // A refusal that lasts (before the answer, again after the retry) marks the key invalid.
      fake.setMode({ kind: 'error', code: '1002' });
      await c.messages.create({ model: 'glm-4.6', max_tokens: 64, messages: [{ role: 'user', content: 'Once more.' }] }).catch(() => {});
      const acc = await account();
      expect(acc.status).toBe('invalid');
      expect(acc.reason).toContain('1002');
      expect(acc.reason).not.toContain(key);
    } finally {
      await s.stop();
      await fake.stop();
    }
  });

  test('1220 on one key for glm-5: the request moves to the other key; the first stays active, limited on glm-5 only', async () => {
    const [lite, max] = ['zai-test-key-lite-plan-00000000', 'zai-test-key-max-plan-000000000'];
    const fake = startFakeZai({ keys: [lite, max] });
    const env = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ...zaiEnv(fake) });
    for (const [k, label] of [[lite, 'lite'], [max, 'max']] as const) {
      expect((await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', k, '--label', label], { env })).code).toBe(0);
    }
    const s = await startServe({ env });
    try {
      fake.setMode({ kind: 'error', code: '1220' }, { key: lite });
      const c = new Anthropic({ baseURL: s.url, apiKey: PROXY_KEY, maxRetries: 0 });
      const ask = (model: string, text: string) => c.messages.create({ model, max_tokens: 32, messages: [{ role: 'user', content: text }] });
      // New conversations until one lands on the lite key first: every answer still comes (from max).
      for (let i = 0; i < 8 && !fake.messages().some((r) => r.key === lite); i++) expect((await ask('glm-5', `hi ${i}`)).type).toBe('message');
      expect(fake.messages().filter((r) => r.key === lite && r.mode === 'error')).toHaveLength(1);
      // Known now: glm-5 never goes to the lite key again.
      for (let i = 0; i < 3; i++) expect((await ask('glm-5', `again ${i}`)).type).toBe('message');
      expect(fake.messages().filter((r) => r.key === lite)).toHaveLength(1);
      const res = await fetch(`${s.url}/account-limits`, { headers: { 'x-api-key': PROXY_KEY } });
      const accs = ((await res.json()) as { accounts: Array<{ label: string; status: string; limits: Array<{ model: string; kind: string }> }> }).accounts;
      const a = accs.find((x) => x.label === 'lite')!;
      expect(a.status).toBe('active');
      expect(a.limits.map((l) => [l.model, l.kind])).toEqual([['glm-5', 'no_access']]);
    } finally {
      await s.stop();
      await fake.stop();
    }
  });
});
