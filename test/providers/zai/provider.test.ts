import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test';
import type { AnthropicEvent } from '../../../src/anthropic/events.ts';
import type { MessagesRequest } from '../../../src/anthropic/schema.ts';
import { loadConfig } from '../../../src/config.ts';
import { UpstreamError, type SendContext } from '../../../src/providers/provider.ts';
import { closeHttp1Pools, http1IdleCount } from '../../../src/providers/http1.ts';
import { createZaiProvider } from '../../../src/providers/zai/index.ts';
import { KNOWN_ZAI_MODELS } from '../../../src/providers/zai/models.ts';
import type { Account, AccountPatch } from '../../../src/store/accounts.ts';
import { defaultFakeQuota, startFakeZai, type FakeZaiMode } from '../../fakes/zai.ts';
import firstTurn from '../../fixtures/zai/first-turn.json';
import toolTurn from '../../fixtures/zai/tool-turn.json';
import { assertValidSequence } from './invariants.ts';
import { sendAll, sendFailure, textOf } from '../send.ts';

const KEY = 'zk-good-key-0123456789';
const OTHER = 'zk-other-key-0123456789';
const fake = startFakeZai({ keys: [KEY, OTHER] });
afterAll(() => fake.stop());

const configFor = (client: 'native' | 'fetch') =>
  loadConfig(
    { ZAI_BASE_URL: fake.url, ZAI_QUOTA_URL: fake.quotaUrl, UPSTREAM_IDLE_TIMEOUT_SEC: '1', UPSTREAM_HTTP_CLIENT: client },
    {},
    { requireApiKey: false },
  );
const patches: Array<[string, AccountPatch]> = [];
let clock = Date.now();
const providerFor = (client: 'native' | 'fetch') =>
  createZaiProvider(configFor(client), { updateAccount: (id, p) => void patches.push([id, p]), now: () => clock });
const providers = { native: providerFor('native'), fetch: providerFor('fetch') };
// Every test below runs once per HTTP client (upstream-call.ts).
let provider = providers.native;

function account(apiKey = KEY, meta: Record<string, unknown> = {}): Account {
  return {
    id: `zai-${apiKey.slice(3, 8)}`,
    provider: 'zai',
    label: 'test',
    email: null,
    status: 'active',
    statusReason: null,
    verifyUrl: null,
    credentials: { kind: 'api_key', apiKey },
    meta,
    createdAt: 0,
    updatedAt: 0,
    lastUsedAt: null,
  };
}

function ctx(over: Partial<SendContext> = {}): SendContext {
  return {
    account: account(),
    model: 'glm-4.6',
    clientModel: 'claude-sonnet-zai',
    sessionKey: 'session-abc',
    requestId: 'req_1',
    signal: new AbortController().signal,
    headers: firstTurn.headers,
    ...over,
  };
}

const simple = (text: string, extra: Partial<MessagesRequest> = {}): MessagesRequest => ({
  model: 'claude-sonnet-zai',
  max_tokens: 1024,
  messages: [{ role: 'user', content: text }],
  ...extra,
});

const collect = (req: MessagesRequest, c: SendContext = ctx()) => sendAll(provider, req, c);
const failure = (req: MessagesRequest, c: SendContext = ctx()) => sendFailure(provider, req, c);

function toolInput(events: AnthropicEvent[]): unknown {
  return JSON.parse(
    events.map((e) => (e.type === 'content_block_delta' && e.delta.type === 'input_json_delta' ? (e.delta as { partial_json: string }).partial_json : '')).join(''),
  );
}

beforeEach(() => {
  fake.clearModes();
  fake.requests.length = 0;
});

for (const httpClient of ['native', 'fetch'] as const) {
describe(`${httpClient} client`, () => {
  beforeAll(() => {
    closeHttp1Pools();
    provider = providers[httpClient];
  });
  afterAll(() => closeHttp1Pools());

  test(`the stream goes through ${httpClient === 'native' ? 'http1.ts (its pool keeps the connection)' : 'fetch (http1.ts pools stay empty)'}`, async () => {
    assertValidSequence(await collect(simple('hi')));
    if (httpClient === 'native') expect(http1IdleCount()).toBeGreaterThan(0);
    else expect(http1IdleCount()).toBe(0);
  });

  describe('send', () => {
    test('streams a valid event sequence with the client model name', async () => {
      const events = await collect(simple('Say hello'));
      assertValidSequence(events);
      expect((events[0] as { message: { model: string } }).message.model).toBe('claude-sonnet-zai');
      expect(textOf(events)).toBe('Hello from the fake Z.AI.');
    });

    test('ZAI_STRIP_BETAS keeps the anthropic-beta header from Z.AI', async () => {
      const cfg = loadConfig(
        { ZAI_BASE_URL: fake.url, ZAI_QUOTA_URL: fake.quotaUrl, UPSTREAM_HTTP_CLIENT: httpClient, ZAI_STRIP_BETAS: 'true' },
        {},
        { requireApiKey: false },
      );
      const stripping = createZaiProvider(cfg, { updateAccount: () => {}, now: () => clock });
      assertValidSequence(await sendAll(stripping, simple('hi'), ctx()));
      const [rec] = fake.messages();
      expect(rec!.headers).not.toHaveProperty('anthropic-beta');
      expect(rec!.headers['user-agent']).toBe('claude-cli/2.1.197 (external, sdk-cli)');
    });

    test("sends the key, Claude Code's headers and a streaming body to Z.AI", async () => {
      await collect(simple('Say hello', { stream: false }));
      const [rec] = fake.messages();
      expect(rec!.headers.authorization).toBe(`Bearer ${KEY}`);
      expect(rec!.headers['x-api-key']).toBe(KEY);
      expect(rec!.headers['user-agent']).toBe('claude-cli/2.1.197 (external, sdk-cli)');
      expect(rec!.headers['anthropic-beta']).toBe(firstTurn.headers['anthropic-beta']);
      expect(rec!.headers['x-app']).toBe('cli');
      expect(rec!.headers['x-claude-code-session-id']).toBe(firstTurn.headers['x-claude-code-session-id']);
      expect(rec!.headers).not.toHaveProperty('x-session-id');
      expect(rec!.headers.accept).toBe('text/event-stream');
      expect(rec!.body).toMatchObject({ model: 'glm-4.6', stream: true });
    });

    test('a model name beyond ASCII goes upstream as UTF-8 and comes back to the client as text, not as its bytes', async () => {
      // The body is byte strings (anthropic/byte-strings.ts); the model names in ctx are text.
      const events = await collect(simple('hi'), ctx({ model: 'claude-sönnet—4', clientModel: 'claude-sönnet—zai' }));
      expect((events[0] as { message: { model: string } }).message.model).toBe('claude-sönnet—zai');
      expect(fake.messages()[0]!.body).toMatchObject({ model: 'claude-sönnet—4' });
    });

    test("Claude Code's first turn is accepted (the fake answers 422 to role:system) and asks for Bash", async () => {
      const raw = await fetch(`${fake.url}/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify(firstTurn.body),
      });
      expect(raw.status).toBe(422); // unfolded, as real Z.AI does

      const events = await collect(firstTurn.body as unknown as MessagesRequest);
      assertValidSequence(events);
      expect(toolInput(events)).toEqual({ command: 'echo ZAI-FIXTURE-1', description: 'Print a marker string' });
      const sent = fake.messages().at(-1)!.body as Record<string, unknown>;
      expect(sent).not.toHaveProperty('context_management');
      expect(sent).not.toHaveProperty('output_config');
      expect(sent.thinking).toEqual({ type: 'enabled', budget_tokens: 31999 });
      // Thinking was enabled, so the fake thought first; the block reaches the client signed.
      expect(events.some((e) => e.type === 'content_block_start' && e.content_block.type === 'thinking')).toBe(true);
    });

    test('knows the thinking signatures it streamed, and no other (the gateway keeps them from other providers)', async () => {
      const events = await collect(firstTurn.body as unknown as MessagesRequest);
      const signed = events.flatMap((e) => (e.type === 'content_block_delta' && e.delta.type === 'signature_delta' ? [String(e.delta.signature)] : []));
      expect(signed.length).toBeGreaterThan(0);
      for (const s of signed) expect(provider.issuedThinking?.(s)).toBe(true);
      expect(provider.issuedThinking?.(['zai', 'sig', 'FAKE', 'never', 'streamed'].join('-'))).toBe(false);
    });

    test('the tool turn with an array tool input, empty text and unsigned thinking is accepted', async () => {
      const events = await collect(toolTurn.body as unknown as MessagesRequest);
      assertValidSequence(events);
      expect(textOf(events)).toBe('FINAL_ANSWER: tool said ZAI-FIXTURE-1');
    });

    // A conversation begun on Anthropic carries redacted_thinking: Anthropic-encrypted reasoning
    // Z.AI never issues and cannot read. It must not reach Z.AI, and its turn must still pair up.
    test('redacted_thinking from another provider never reaches Z.AI; the tool loop around it still completes', async () => {
      const redacted = { type: 'redacted_thinking', data: ['FAKE', 'redacted', 'x'.repeat(60)].join('-') };
      const bash = { name: 'Bash', input_schema: { type: 'object', properties: { command: { type: 'string' } } } };
      const req = simple('', {
        tools: [bash],
        messages: [
          { role: 'user', content: 'Run echo hi' },
          { role: 'assistant', content: [redacted, { type: 'text', text: 'Running it.' }, { type: 'tool_use', id: 'toolu_01RED', name: 'Bash', input: { command: 'echo hi' } }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01RED', content: 'hi' }] },
          { role: 'assistant', content: [redacted] },
          { role: 'user', content: 'Go on' },
        ],
      } as Partial<MessagesRequest>);
      const events = await collect(req);
      assertValidSequence(events);
      expect(textOf(events)).toBe('FINAL_ANSWER: tool said hi');
      const sent = fake.messages().at(-1)!.body as { messages: Array<{ role: string; content: unknown }> };
      expect(JSON.stringify(sent)).not.toContain('redacted');
      // The turn that only held redacted thinking is gone; its neighbours merge, alternation holds.
      expect(sent.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
      expect(sent.messages[1]!.content).toEqual([{ type: 'text', text: 'Running it.' }, { type: 'tool_use', id: 'toolu_01RED', name: 'Bash', input: { command: 'echo hi' } }]);
    });

    // The provider yields an opening call as it comes and fails when the stream is cut inside it; the
    // gateway holds the call back, so the cut fails over (test/gateway/head-hold.test.ts, test/proof/faults.test.ts).
    test('a stream cut inside a tool call that opens the answer fails (transient) after yielding what came of the call', async () => {
      const bash = { name: 'Bash', input_schema: { type: 'object', properties: { command: { type: 'string' } } } };
      const req = simple('Without a word, run exactly this command: echo HELD', { tools: [bash] } as Partial<MessagesRequest>);
      const whole = await collect(req);
      assertValidSequence(whole);
      expect(whole[1]).toMatchObject({ type: 'content_block_start', index: 0, content_block: { type: 'tool_use', name: 'Bash' } });
      expect(toolInput(whole)).toEqual({ command: 'echo HELD', description: 'Print a marker string' });
      // message_start, ping, the call's start, an empty delta, then the first piece of its input.
      fake.setMode({ kind: 'reset_mid_stream', afterEvents: 5 }, { times: 1 });
      const { error, yielded } = await failure(req);
      expect(error.kind).toBe('transient');
      // message_start, the call's start and the first piece of its input (the ping and the blank delta fall away).
      expect(yielded).toBe(3);
    });

    test('repairs tool input Z.AI streams as an array', async () => {
      fake.setMode({ kind: 'tool_input_array' });
      const events = await collect(simple('Use the Bash tool to run exactly this command: echo X', { tools: [{ name: 'Bash', input_schema: { type: 'object' } }] }));
      assertValidSequence(events);
      expect(toolInput(events)).toEqual({ command: 'echo X', description: 'Print a marker string' });
    });

    test('tolerates CRLF, garbage lines, comments and events split across chunks', async () => {
      fake.setMode({ kind: 'awkward_framing' });
      const events = await collect(simple('hi'));
      assertValidSequence(events);
      expect(textOf(events)).toBe('Hello from the fake Z.AI.');
    });

    test('synthesises message_stop when Z.AI ends cleanly after message_delta', async () => {
      fake.setMode({ kind: 'no_message_stop' });
      assertValidSequence(await collect(simple('hi')));
    });

    // The seed proxy drops `[DONE]` (protocol 3.6): an OpenAI-style end marker must not turn a
    // finished answer into a malformed-stream failure.
    test('takes a data: [DONE] end marker after message_delta as the end of a good answer', async () => {
      fake.setMode({ kind: 'done_marker' });
      const events = await collect(simple('hi'));
      assertValidSequence(events);
      expect(textOf(events)).toBe('Hello from the fake Z.AI.');
    });

    test('turns a JSON answer to a streaming request into events', async () => {
      fake.setMode({ kind: 'json_for_stream' });
      const events = await collect(simple('hi'));
      assertValidSequence(events);
      expect(textOf(events)).toBe('Hello from the fake Z.AI.');
    });

    test('yields events as they arrive, not after the whole answer', async () => {
      fake.setMode({ kind: 'slow_chunks', chunks: 4, delayMs: 150 });
      const t0 = performance.now();
      let firstAt = 0;
      for await (const e of provider.send(simple('hi'), ctx())) if (!firstAt && e.type === 'message_start') firstAt = performance.now() - t0;
      const total = performance.now() - t0;
      expect(firstAt).toBeLessThan(total - 300);
    });

    const faults: Array<[string, FakeZaiMode, string, { code?: string; resetAt?: 'set' | null; scope?: string }?]> = [
      ['1302 concurrency', { kind: 'error', code: '1302' }, 'rate_limited', { code: '1302', resetAt: 'set', scope: 'account' }],
      ['1303 frequency', { kind: 'error', code: '1303' }, 'rate_limited', { code: '1303', resetAt: 'set' }],
      ['1304 daily', { kind: 'error', code: '1304' }, 'quota_exhausted', { code: '1304', resetAt: 'set' }],
      ['1305 as HTTP 529', { kind: 'error', code: '1305' }, 'capacity', { code: '1305' }],
      ['1308 five-hour quota', { kind: 'error', code: '1308' }, 'quota_exhausted', { code: '1308', resetAt: 'set', scope: 'account' }],
      ['1310 weekly quota', { kind: 'error', code: '1310' }, 'quota_exhausted', { code: '1310', resetAt: 'set', scope: 'account' }],
      ['1113 balance', { kind: 'error', code: '1113' }, 'invalid_account', { code: '1113' }],
      ['1309 plan expired', { kind: 'error', code: '1309' }, 'invalid_account', { code: '1309' }],
      ['1313 fair use', { kind: 'error', code: '1313' }, 'invalid_account', { code: '1313' }],
      ['1220 no access to the model: only that model rests', { kind: 'error', code: '1220' }, 'no_access', { code: '1220', resetAt: 'set', scope: 'model' }],
      ['1311 (a 429) plan without the model: only that model rests, no throttle', { kind: 'error', code: '1311' }, 'no_access', { code: '1311', resetAt: 'set', scope: 'model' }],
      ['1316 (a 429) five-hour window spent: the key rests until its reset', { kind: 'error', code: '1316' }, 'quota_exhausted', { code: '1316', resetAt: 'set', scope: 'account' }],
      ['1211 unknown model', { kind: 'error', code: '1211' }, 'not_found', { code: '1211' }],
      ['1214 invalid input', { kind: 'error', code: '1214' }, 'bad_request', { code: '1214' }],
      ['500 internal', { kind: 'error', code: '500' }, 'transient', { code: '500' }],
      ['plain 429 with retry-after', { kind: 'http429', retryAfter: 3 }, 'rate_limited', { resetAt: 'set' }],
      ['plain 429 without retry-after', { kind: 'http429' }, 'rate_limited', { resetAt: null }],
      ['HTML 502', { kind: 'html502' }, 'transient'],
      ['connection reset before the first byte', { kind: 'reset_before_first_byte' }, 'transient'],
      ['connection reset mid-stream', { kind: 'reset_mid_stream', afterEvents: 4 }, 'transient'],
      ['malformed first data line', { kind: 'malformed_data' }, 'transient'],
      ['malformed data line mid-stream', { kind: 'malformed_data', afterEvents: 4 }, 'transient'],
      ['stream ends mid-content', { kind: 'truncated' }, 'transient'],
      ['empty response', { kind: 'empty_response' }, 'transient'],
      ['overloaded error event first', { kind: 'sse_error' }, 'capacity', { code: '1305' }],
      ['quota error event after content', { kind: 'sse_error', afterEvents: 4, errorType: 'rate_limit_error', code: '1308', message: '[1308][Usage limit reached for 5 hour. Your limit will reset at 2030-01-01 08:00:00][x]' }, 'quota_exhausted', { resetAt: 'set' }],
      // The key refused after the 200: 'auth' (the gateway marks the key, the client hears api_error).
      ['key refused in-stream after content (authentication_error, 1002)', { kind: 'sse_error', afterEvents: 4, errorType: 'authentication_error', code: '1002', message: '[1002][Authorization Token is invalid][x]' }, 'auth', { code: '1002', scope: 'account' }],
      ['permission_error in-stream without a code', { kind: 'sse_error', afterEvents: 4, errorType: 'permission_error', code: '', message: 'forbidden' }, 'auth', { scope: 'account' }],
      // Z.AI's native error shape in the stream (no event name, no type): its code still decides.
      ['native-shape quota error in the stream after content', { kind: 'sse_error', afterEvents: 4, native: true, code: '1308', message: '[1308][Usage limit reached for 5 hour. Your limit will reset at 2030-01-01 08:00:00][x]' }, 'quota_exhausted', { code: '1308', resetAt: 'set', scope: 'account' }],
      ['native-shape error as the first event', { kind: 'sse_error', native: true, code: '1302', message: 'High concurrency usage of this API' }, 'rate_limited', { code: '1302', scope: 'account' }],
      ['silence before the first byte', { kind: 'stall_before_first_byte', ms: 1600 }, 'transient'],
      ['silence mid-stream', { kind: 'stall_mid_stream', ms: 1600, afterEvents: 3 }, 'transient'],
    ];
    for (const [name, mode, kind, want] of faults) {
      test(`${name} -> ${kind}`, async () => {
        // The native client resends once when a reused connection dies before any byte (http1.ts).
        fake.setMode(mode, { times: mode.kind === 'reset_before_first_byte' ? 2 : 1 });
        const { error } = await failure(simple('hi'));
        expect(error.kind).toBe(kind as UpstreamError['kind']);
        if (want?.code) expect(error.code).toBe(want.code);
        if (want?.resetAt === 'set') expect(error.resetAt).toBeGreaterThan(clock);
        if (want?.resetAt === null) expect(error.resetAt).toBeNull();
        if (want?.scope) expect(error.scope).toBe(want.scope as 'account' | 'model');
        expect(error.message).not.toContain(KEY);
      });
    }

    test('the 1308 reset time is read as China time', async () => {
      const reset = Date.UTC(2030, 0, 1, 0, 0, 0);
      fake.setMode({ kind: 'error', code: '1308', resetAt: reset }, { times: 1 });
      expect((await failure(simple('hi'))).error.resetAt).toBe(reset);
    });

    test('a failure after content has been yielded still throws', async () => {
      fake.setMode({ kind: 'reset_mid_stream', afterEvents: 4 });
      const { yielded } = await failure(simple('hi'));
      expect(yielded).toBeGreaterThan(0);
    });

    test('a silent upstream is abandoned with a message saying so, and the fake sees the close', async () => {
      fake.setMode({ kind: 'stall_before_first_byte', ms: 3000 });
      const { error } = await failure(simple('hi'));
      expect(error.message).toContain('sent nothing');
      await Bun.sleep(50);
      expect(fake.messages()[0]!.aborted).toBe(true);
    });

    test('a consumer that pauses longer than the idle timeout is not taken for a silent upstream', async () => {
      // The watchdog (1 s here) measures the upstream's silence, not time spent waiting on a slow client.
      fake.setMode({ kind: 'slow_chunks', chunks: 25, delayMs: 100 });
      const events: AnthropicEvent[] = [];
      for await (const e of provider.send(simple('hi'), ctx())) {
        if (events.length === 1) await Bun.sleep(1600);
        events.push(e);
      }
      assertValidSequence(events);
    });

    test('a wrong key is an auth failure, without the key in the message', async () => {
      const bad = 'zk-wrong-key-9876543210';
      const { error } = await failure(simple('hi'), ctx({ account: account(bad) }));
      expect(error.kind).toBe('auth');
      expect(error.code).toBe('1002');
      expect(error.message).not.toContain(bad);
    });

    test('one-shot faults clear themselves; per-key faults touch only that key', async () => {
      fake.setMode({ kind: 'error', code: '1302' }, { times: 1 });
      expect((await failure(simple('hi'))).error.kind).toBe('rate_limited');
      assertValidSequence(await collect(simple('hi')));
      fake.setMode({ kind: 'error', code: '1308' }, { key: OTHER });
      assertValidSequence(await collect(simple('hi')));
      expect((await failure(simple('hi'), ctx({ account: account(OTHER) }))).error.kind).toBe('quota_exhausted');
    });

    test('aborting the request stops the upstream call', async () => {
      fake.setMode({ kind: 'slow_chunks', chunks: 20, delayMs: 100 });
      const ac = new AbortController();
      let seen = 0;
      const { error } = await (async () => {
        try {
          for await (const _ of provider.send(simple('hi'), ctx({ signal: ac.signal }))) if (++seen === 3) ac.abort();
        } catch (e) {
          return { error: e as UpstreamError };
        }
        throw new Error('expected abort');
      })();
      expect(error).toBeInstanceOf(UpstreamError);
      expect(error.message).toContain('aborted');
      await Bun.sleep(150);
      expect(fake.messages()[0]!.aborted).toBe(true);
    });

    test('a consumer that stops reading releases the upstream connection', async () => {
      fake.setMode({ kind: 'slow_chunks', chunks: 20, delayMs: 100 });
      for await (const e of provider.send(simple('hi'), ctx())) if (e.type === 'content_block_start') break;
      await Bun.sleep(150);
      expect(fake.messages()[0]!.aborted).toBe(true);
    });

    test('the official SDK accumulates the stream into a message', async () => {
      // A tiny Anthropic-shaped server that writes the provider's events as SSE.
      const relay = Bun.serve({
        port: 0,
        hostname: '127.0.0.1',
        async fetch(req) {
          const body = (await req.json()) as MessagesRequest;
          const events: AnthropicEvent[] = [];
          for await (const e of provider.send(body, ctx())) events.push(e);
          const sse = events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join('');
          return new Response(sse, { headers: { 'content-type': 'text/event-stream' } });
        },
      });
      try {
        const client = new Anthropic({ baseURL: `http://127.0.0.1:${relay.port}`, apiKey: 'x', maxRetries: 0 });
        const msg = await client.messages
          .stream({
            model: 'claude-sonnet-zai',
            max_tokens: 1024,
            thinking: { type: 'enabled', budget_tokens: 1000 },
            tools: [{ name: 'Bash', input_schema: { type: 'object' } }],
            messages: [{ role: 'user', content: 'Use the Bash tool to run exactly this command: echo SDK-OK' }],
          })
          .finalMessage();
        expect(msg.model).toBe('claude-sonnet-zai');
        expect(msg.stop_reason).toBe('tool_use');
        expect(msg.content.map((b) => b.type)).toEqual(['thinking', 'text', 'tool_use']);
        const tool = msg.content[2] as { input: unknown };
        expect(tool.input).toEqual({ command: 'echo SDK-OK', description: 'Print a marker string' });
        expect(typeof msg.usage.output_tokens).toBe('number');
      } finally {
        await relay.stop(true);
      }
    });
  });

  describe('quota, verify, models', () => {
    test('quota reports every token window for all models and remembers the plan', async () => {
      fake.setQuota(defaultFakeQuota());
      patches.length = 0;
      const q = await provider.quota(account());
      expect(q.map((w) => w.window)).toEqual(['5h', 'weekly']);
      expect(q[0]!.model).toBe('*');
      expect(q[0]!.remainingFraction).toBeCloseTo(0.97, 5);
      expect(q[0]!.resetAt).toBeGreaterThan(Date.now());
      expect(fake.requests.at(-1)!.headers.authorization).toBe(`Bearer ${KEY}`);
      expect(patches).toEqual([['zai-good-', { meta: { plan: 'pro' } }]]);
      await provider.quota(account(KEY, { plan: 'pro' }));
      expect(patches).toHaveLength(1);
    });

    // §3.3: level is only there for a coding-plan key; a reading without it (the plan expired or was
    // cancelled) must not leave /account-limits and the dashboard naming the old plan.
    test('a reading without a plan level forgets the plan remembered before', async () => {
      fake.setQuota({ windows: [] });
      patches.length = 0;
      try {
        await provider.quota(account(KEY, { plan: 'pro' }));
        expect(patches).toEqual([['zai-good-', { meta: { plan: null } }]]);
        await provider.quota(account(KEY, {}));
        await provider.quota(account(KEY, { plan: null }));
        expect(patches).toHaveLength(1);
      } finally {
        fake.setQuota(defaultFakeQuota());
      }
    });

    test('a key without a coding plan fails quota as an invalid account', async () => {
      fake.setQuota({ success: false, msg: 'No active GLM Coding Plan for this account', code: 500 });
      try {
        await provider.quota(account());
        throw new Error('no throw');
      } catch (e) {
        expect((e as UpstreamError).kind).toBe('invalid_account');
      } finally {
        fake.setQuota(defaultFakeQuota());
      }
    });

    // §3.3: 401 and 403 from the quota endpoint both mean a key it does not take. As 'auth' the poller
    // leaves the key be (a request finds out for sure); as invalid_account, as a 403 was read, one CDN
    // page refusing the proxy's address took every Z.AI key out of the pool at the next round.
    test('a 403 from the quota endpoint is an auth failure like its 401, not an invalid account', async () => {
      try {
        const failure = () =>
          provider.quota(account()).then(
            () => null,
            (err: unknown) => err as UpstreamError,
          );
        fake.setQuota({ success: false, msg: 'token expired or incorrect', code: 403, httpStatus: 403 });
        expect((await failure())?.kind).toBe('auth');
        // A firewall's page in front of Z.AI says nothing of the key at all.
        fake.setQuota({ success: false, msg: 'Forbidden', httpStatus: 403, html: true });
        expect((await failure())?.kind).toBe('transient');
      } finally {
        fake.setQuota(defaultFakeQuota());
      }
    });

    test('a 403 from the quota endpoint with an account code (locked, fair use) is still an invalid account', async () => {
      fake.setQuota({ success: false, msg: 'account locked', code: 1112, httpStatus: 403 });
      try {
        const e = await provider.quota(account()).then(
          () => null,
          (err: unknown) => err as UpstreamError,
        );
        expect(e?.kind).toBe('invalid_account');
      } finally {
        fake.setQuota(defaultFakeQuota());
      }
    });

    test('verify says the plan and what is left', async () => {
      fake.setQuota({ level: 'pro', windows: [{ unit: 3, number: 5, usage: 100, currentValue: 3, nextResetTime: Date.now() + 3_600_000 }] });
      expect(await provider.verify(account())).toEqual({ ok: true, detail: 'ok: pro plan, 5h window 97% left' });
    });

    test('verify never shows the key, even when the quota answer echoes it', async () => {
      fake.setQuota({ success: false, msg: `Authorization token ${KEY} is invalid`, code: 401 });
      try {
        const r = await provider.verify(account());
        expect(r.ok).toBe(false);
        expect(r.detail).not.toContain(KEY);
      } finally {
        fake.setQuota(defaultFakeQuota());
      }
    });

    test('verify reports a bad key without throwing', async () => {
      const r = await provider.verify(account('zk-bad-key-000000000'));
      expect(r.ok).toBe(false);
      expect(r.detail).toStartWith('auth:');
      expect(r.detail).not.toContain('zk-bad-key-000000000');
    });

    test('models come from the listing plus the known catalogue, cached for ten minutes', async () => {
      const first = await provider.models(account());
      expect(first.map((m) => m.id)).toContain('glm-4.7');
      expect(first.find((m) => m.id === 'glm-4.6')).toMatchObject({ family: 'glm', contextWindow: 200 * 1024 });
      const calls = fake.requests.filter((r) => r.path === '/v1/models').length;
      expect(calls).toBe(1);
      clock += 5 * 60_000;
      await provider.models(account());
      expect(fake.requests.filter((r) => r.path === '/v1/models').length).toBe(1);
      clock += 6 * 60_000;
      await provider.models(account());
      expect(fake.requests.filter((r) => r.path === '/v1/models').length).toBe(2);
    });

    test('a failed listing falls back to the known models', async () => {
      const p = createZaiProvider(configFor(httpClient), { updateAccount: () => {}, now: () => Date.now() });
      const models = await p.models(account('zk-bad-key-000000000'));
      expect(models.map((m) => m.id)).toEqual(KNOWN_ZAI_MODELS.map((m) => m.id));
    });

    test('a listing that fails after a good one keeps the good one (not the bare known list), and is asked again next time', async () => {
      let t = Date.now();
      const p = createZaiProvider(configFor(httpClient), { updateAccount: () => {}, now: () => t });
      const good = await p.models(account());
      // The fake's listing spells display names its own way: the mark of a listed model.
      expect(good.find((m) => m.id === 'glm-4.5-air')!.displayName).toBe('GLM-4.5-AIR');
      t += 11 * 60_000;
      const before = fake.requests.filter((r) => r.path === '/v1/models').length;
      const afterFailure = await p.models(account('zk-bad-key-000000000'));
      expect(afterFailure).toEqual(good);
      await p.models(account());
      expect(fake.requests.filter((r) => r.path === '/v1/models').length).toBe(before + 2);
    });

    test('refresh is a no-op for API keys', async () => {
      await provider.refresh(account());
      expect(fake.requests).toHaveLength(0);
    });
  });
});
}

// Claude Code parses a session title (output_config.format json_schema) as JSON. Z.AI drops
// output_config and is asked in words; GLM answering in a Markdown fence would lose the title.
describe('structured output from a GLM that fences its JSON', () => {
  const FENCED = '```json\n{"title":"Fenced title"}\n```';
  const fenced = startFakeZai({ keys: [KEY], replyText: FENCED });
  afterAll(() => fenced.stop());
  const p = createZaiProvider(
    loadConfig({ ZAI_BASE_URL: fenced.url, ZAI_QUOTA_URL: fenced.quotaUrl, UPSTREAM_IDLE_TIMEOUT_SEC: '1' }, {}, { requireApiKey: false }),
    { updateAccount: () => {}, now: () => clock },
  );
  const format = { type: 'json_schema', schema: { type: 'object', properties: { title: { type: 'string' } }, required: ['title'] } };

  test('a json_schema request gets the JSON without its fence, in a valid sequence', async () => {
    const events = await sendAll(p, simple('Name this session', { output_config: { format } }), ctx());
    assertValidSequence(events);
    expect(JSON.parse(textOf(events))).toEqual({ title: 'Fenced title' });
  });

  test('an ordinary request keeps the text as GLM wrote it', async () => {
    expect(textOf(await sendAll(p, simple('Name this session'), ctx()))).toBe(FENCED);
  });
});
