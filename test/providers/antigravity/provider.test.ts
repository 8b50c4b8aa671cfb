import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeEach, describe, expect, test } from 'bun:test';
import type { AnthropicEvent } from '../../../src/anthropic/events.ts';
import type { MessagesRequest } from '../../../src/anthropic/schema.ts';
import { loadConfig } from '../../../src/config.ts';
import { createAntigravityProvider, sessionIdFor } from '../../../src/providers/antigravity/index.ts';
import { refreshAccessToken } from '../../../src/providers/antigravity/oauth.ts';
import { UpstreamError, type SendContext } from '../../../src/providers/provider.ts';
import { providerDepsFor } from '../../../src/gateway/index.ts';
import { type Account, type AccountPatch, findAccount, updateAccount, upsertAccount } from '../../../src/store/accounts.ts';
import { defaultFakeModels, startFakeGoogle, type FakeGoogleMode } from '../../fakes/google.ts';
import { cleanupDbs, tempDb } from '../../gateway/helpers.ts';
import { sendAll, sendFailure, textOf } from '../send.ts';
import withTools from '../../fixtures/antigravity/structured-output-with-tools.json';

const fake = startFakeGoogle();
afterAll(() => fake.stop());

const config = loadConfig(
  {
    ANTIGRAVITY_ENDPOINTS: fake.endpoints.join(','),
    GOOGLE_OAUTH_TOKEN_URL: fake.tokenUrl,
    GOOGLE_OAUTH_AUTH_URL: fake.authUrl,
    GOOGLE_USERINFO_URL: fake.userinfoUrl,
    UPSTREAM_IDLE_TIMEOUT_SEC: '1',
  },
  {},
  { requireApiKey: false },
);
let patches: Array<[string, AccountPatch]> = [];
const deps = { updateAccount: (id: string, p: AccountPatch) => void patches.push([id, p]), now: () => Date.now() };
let provider = createAntigravityProvider(config, deps, { emptyBackoffMs: 5, onboard: { pollDelayMs: 5 } });

function account(email = 'prov@example.com', meta: Record<string, unknown> = { projectId: 'aicode-consumers' }): Account {
  return {
    id: `acc_${email.replace(/\W/g, '_')}`,
    provider: 'antigravity',
    label: email,
    email,
    status: 'active',
    statusReason: null,
    verifyUrl: null,
    credentials: { kind: 'oauth', refreshToken: fake.refreshTokenFor(email) },
    meta,
    createdAt: 0,
    updatedAt: 0,
    lastUsedAt: null,
  };
}

const ACC = account();

function ctx(over: Partial<SendContext> = {}): SendContext {
  return {
    account: ACC,
    model: 'claude-sonnet-4-6',
    clientModel: 'claude-sonnet-4-5',
    sessionKey: 'session-abc',
    requestId: 'req_1',
    signal: new AbortController().signal,
    headers: {},
    ...over,
  };
}

const simple = (text: string, extra: Partial<MessagesRequest> = {}): MessagesRequest =>
  ({ model: 'claude-sonnet-4-5', max_tokens: 4096, messages: [{ role: 'user', content: text }], ...extra }) as MessagesRequest;

const collect = (req: MessagesRequest, c: SendContext = ctx()) => sendAll(provider, req, c);
const failure = (req: MessagesRequest, c: SendContext = ctx()) => sendFailure(provider, req, c);

beforeEach(() => {
  fake.clearModes();
  fake.requests.length = 0;
  patches = [];
});

/** Runs the provider's events through the official SDK's strict stream accumulator. */
async function viaSdk(model: string, req: Record<string, unknown>) {
  const relay = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(r) {
      const body = (await r.json()) as MessagesRequest;
      const events: AnthropicEvent[] = [];
      for await (const e of provider.send(body, ctx({ model, clientModel: String(body.model) }))) events.push(e);
      const sse = events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join('');
      return new Response(sse, { headers: { 'content-type': 'text/event-stream' } });
    },
  });
  try {
    const client = new Anthropic({ baseURL: `http://127.0.0.1:${relay.port}`, apiKey: 'x', maxRetries: 0 });
    return await client.messages.stream(req as never).finalMessage();
  } finally {
    await relay.stop(true);
  }
}

describe('happy paths', () => {
  test('Claude: the envelope carries project, model, session and the stream is a full message', async () => {
    const events = await collect(simple('hello'));
    expect(events[0]!.type).toBe('message_start');
    expect((events[0] as { message: { model: string } }).message.model).toBe('claude-sonnet-4-5');
    expect(events.at(-1)!.type).toBe('message_stop');
    expect(textOf(events)).toBe('Hello from the fake Antigravity.');
    const r = fake.generations()[0]!;
    const body = r.body as { project: string; model: string; request: { sessionId: string }; requestId: string; userAgent: string };
    expect(body.project).toBe('aicode-consumers');
    expect(body.model).toBe('claude-sonnet-4-6');
    expect(body.userAgent).toBe('antigravity');
    expect(body.requestId).toStartWith('agent-');
    expect(body.request.sessionId).toBe(sessionIdFor(ACC.id, 'session-abc'));
    expect(r.headers['user-agent']).toBe(config.antigravity.userAgent);
  });

  test('the session id is stable per conversation and differs between conversations', () => {
    expect(sessionIdFor('a', 's1')).toBe(sessionIdFor('a', 's1'));
    expect(sessionIdFor('a', 's1')).not.toBe(sessionIdFor('a', 's2'));
    expect(sessionIdFor('a', 's1')).toMatch(/^-?\d+$/);
  });

  const toolTurn = {
    model: 'claude-via-proxy',
    max_tokens: 8000,
    thinking: { type: 'enabled', budget_tokens: 2000 },
    tools: [{ name: 'Bash', description: 'Run a command', input_schema: { type: 'object', properties: { command: { type: 'string' } }, required: ['command'] } }],
    messages: [{ role: 'user', content: 'Use the Bash tool to run exactly this command: echo SDK-OK' }],
  };

  test('Claude thinking + tool call accumulates in the SDK with a signed thinking block', async () => {
    const msg = await viaSdk('claude-opus-4-6-thinking', toolTurn);
    expect(msg.model).toBe('claude-via-proxy');
    expect(msg.stop_reason).toBe('tool_use');
    expect(msg.content.map((b) => b.type)).toEqual(['thinking', 'text', 'tool_use']);
    expect((msg.content[0] as { signature: string }).signature.length).toBeGreaterThan(50);
    expect((msg.content[2] as { input: unknown }).input).toEqual({ command: 'echo SDK-OK', description: 'Print a marker string' });
  });

  test('Gemini thinking + tool call accumulates in the SDK', async () => {
    const msg = await viaSdk('gemini-3.8-flash-high', toolTurn);
    expect(msg.stop_reason).toBe('tool_use');
    expect(msg.content.map((b) => b.type)).toEqual(['thinking', 'text', 'tool_use']);
    expect((msg.content[2] as { name: string }).name).toBe('Bash');
  });

  test('GPT-OSS text answer accumulates in the SDK with usage from the last chunk', async () => {
    const msg = await viaSdk('gpt-oss-120b-medium', { model: 'gpt-oss', max_tokens: 1000, messages: [{ role: 'user', content: 'hi' }] });
    expect(msg.stop_reason).toBe('end_turn');
    expect(msg.content.map((b) => b.type)).toEqual(['text']);
    expect(msg.usage.output_tokens).toBeGreaterThan(0);
  });

  // GPT-OSS reasons whatever it is told: a client that did not ask for thinking must not get a
  // thinking block first (Anthropic never sends one then; `content[0].text` would be undefined).
  test('GPT-OSS reasoning reaches the client only when it asked for thinking', async () => {
    const asked = await viaSdk('gpt-oss-120b-medium', { model: 'gpt-oss', max_tokens: 1000, thinking: { type: 'adaptive' }, messages: [{ role: 'user', content: 'hi' }] } as never);
    expect(asked.content.map((b) => b.type)).toEqual(['thinking', 'text']);
    const off = await viaSdk('gpt-oss-120b-medium', { model: 'gpt-oss', max_tokens: 1000, thinking: { type: 'disabled' }, messages: [{ role: 'user', content: 'hi' }] } as never);
    expect(off.content.map((b) => b.type)).toEqual(['text']);
  });

  test('the tool loop closes: a tool result gets the final answer', async () => {
    const first = await viaSdk('claude-sonnet-4-6', { ...toolTurn, thinking: undefined });
    const tool = first.content.find((b) => b.type === 'tool_use') as { id: string };
    const second = await viaSdk('claude-sonnet-4-6', {
      ...toolTurn,
      thinking: undefined,
      messages: [
        ...toolTurn.messages,
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: tool.id, content: 'SDK-OK' }] },
      ],
    });
    expect(second.content.map((b) => (b.type === 'text' ? b.text : '')).join('')).toContain('FINAL_ANSWER: tool said SDK-OK');
  });

  // A conversation that called its tools on Z.AI (or any client with its own ids) moves to Claude on
  // Google, which refuses a tool id outside Anthropic's pattern (the fake does too).
  test('Claude: a tool loop whose ids came from elsewhere is accepted, and the answer closes it', async () => {
    const id = 'call_9b2.e41:GLM';
    const second = await viaSdk('claude-sonnet-4-6', {
      ...toolTurn,
      thinking: undefined,
      messages: [
        ...toolTurn.messages,
        { role: 'assistant', content: [{ type: 'tool_use', id, name: 'Bash', input: { command: 'echo SDK-OK' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: id, content: 'SDK-OK' }] },
      ],
    });
    expect(second.content.map((b) => (b.type === 'text' ? b.text : '')).join('')).toContain('FINAL_ANSWER: tool said SDK-OK');
    const sent = fake.generations().at(-1)!.body as { request: { contents: Array<{ parts: Array<Record<string, { id?: string }>> }> } };
    const call = sent.request.contents[1]!.parts[0]!.functionCall!;
    expect(call.id).toMatch(/^[a-zA-Z0-9_-]+$/);
    expect(sent.request.contents[2]!.parts[0]!.functionResponse!.id).toBe(call.id!);
  });

  test('a missing project is discovered once and persisted on the account', async () => {
    fake.setAccount('noproj@example.com', { projectId: null, onboardPolls: 1, onboardProject: 'cogent-snow-4mnnp' });
    const a = account('noproj@example.com', {});
    await collect(simple('hi'), ctx({ account: a }));
    await collect(simple('hi again'), ctx({ account: a }));
    expect(fake.requests.filter((r) => r.rpc === 'loadCodeAssist').length).toBe(1);
    expect((fake.generations()[0]!.body as { project: string }).project).toBe('cogent-snow-4mnnp');
    expect(patches.some(([id, p]) => id === a.id && p.meta?.projectId === 'cogent-snow-4mnnp')).toBe(true);
  });
});

describe('requests Google cannot be sent', () => {
  test('an image given by file_id is a clean bad_request before any event or upstream call', async () => {
    const req = simple('x', { messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'file', file_id: 'file_FAKE01' } }] }] as never });
    const { error, yielded } = await failure(req);
    expect([error.kind, yielded]).toEqual(['bad_request', 0]);
    expect(error.message).toContain('file_id');
    expect(fake.generations()).toEqual([]);
  });
});

describe('endpoint fallback and faults', () => {
  test('a capacity error on daily is answered by prod', async () => {
    fake.setMode({ kind: 'capacity' }, { endpoint: 'daily' });
    const events = await collect(simple('hi'));
    expect(events.at(-1)!.type).toBe('message_stop');
    expect(fake.generations().map((r) => r.endpoint)).toEqual(['daily', 'prod']);
  });

  const cases: Array<[string, FakeGoogleMode, string, number | null]> = [
    ['quota, full hints', { kind: 'quota_exhausted', hint: 'full', resetMs: 7_200_000 }, 'quota_exhausted', 7_200_000],
    ['quota, RetryInfo only', { kind: 'quota_exhausted', hint: 'retry_info', resetMs: 3_600_000 }, 'quota_exhausted', 3_600_000],
    ['quota, quotaResetDelay only', { kind: 'quota_exhausted', hint: 'quota_reset_delay', resetMs: 3_600_000 }, 'quota_exhausted', 3_600_000],
    ['quota, quotaResetTimeStamp only', { kind: 'quota_exhausted', hint: 'quota_reset_timestamp', resetMs: 3_600_000 }, 'quota_exhausted', 3_600_000],
    ['quota, message text only', { kind: 'quota_exhausted', hint: 'message', resetMs: 3_723_000 }, 'quota_exhausted', 3_723_000],
    ['plain 429 without hints', { kind: 'quota_exhausted', hint: 'none' }, 'rate_limited', null],
    ['RATE_LIMIT_EXCEEDED', { kind: 'rate_limited', resetMs: 2000 }, 'rate_limited', 2000],
    ['503 capacity', { kind: 'capacity' }, 'capacity', null],
    ['500', { kind: 'http500' }, 'transient', null],
    ['HTML 502', { kind: 'html502' }, 'transient', null],
    ['403 VALIDATION_REQUIRED', { kind: 'validation_required' }, 'invalid_account', null],
    ['403 ToS ban', { kind: 'tos_banned' }, 'invalid_account', null],
    ['400 signature', { kind: 'signature_error' }, 'bad_request', null],
    ['404', { kind: 'not_found' }, 'not_found', null],
    ['reset before first byte', { kind: 'reset_before_first_byte' }, 'transient', null],
  ];
  for (const [name, mode, kind, resetIn] of cases) {
    test(`${name} -> ${kind}`, async () => {
      fake.setMode(mode);
      const t0 = Date.now();
      const { error, yielded } = await failure(simple('hi'));
      expect(error.kind).toBe(kind as UpstreamError['kind']);
      expect(yielded).toBe(0);
      if (resetIn === null) {
        if (kind !== 'capacity' && kind !== 'rate_limited') expect(error.resetAt).toBeNull();
      } else {
        expect(error.resetAt! - t0).toBeGreaterThan(resetIn - 2000);
        expect(error.resetAt! - t0).toBeLessThan(resetIn + 2000);
      }
    });
  }

  test('VALIDATION_REQUIRED carries the verify link', async () => {
    fake.setMode({ kind: 'validation_required' });
    const { error } = await failure(simple('hi'));
    expect(error.verifyUrl).toStartWith('https://accounts.google.com/');
  });

  test('a reset mid-stream fails after the events already sent', async () => {
    fake.setMode({ kind: 'reset_mid_stream', afterChunks: 3 });
    const { error, yielded } = await failure(simple('hi', { thinking: { type: 'enabled', budget_tokens: 1024 } } as Partial<MessagesRequest>));
    expect(error.kind).toBe('transient');
    expect(yielded).toBeGreaterThan(0);
  });

  test('a stall before the first byte is abandoned as transient with nothing sent', async () => {
    fake.setMode({ kind: 'stall_before_first_byte', ms: 4000 });
    const t0 = Date.now();
    const { error, yielded } = await failure(simple('hi'));
    expect(error.kind).toBe('transient');
    expect(yielded).toBe(0);
    expect(Date.now() - t0).toBeLessThan(2500);
  });

  test('a stall mid-stream throws after the first events', async () => {
    fake.setMode({ kind: 'stall_mid_stream', ms: 4000, afterChunks: 2 });
    const { error, yielded } = await failure(simple('hi', { thinking: { type: 'enabled', budget_tokens: 1024 } } as Partial<MessagesRequest>));
    expect(error.kind).toBe('transient');
    expect(yielded).toBeGreaterThan(0);
  });

  test('a malformed data line is skipped', async () => {
    fake.setMode({ kind: 'malformed_data', afterChunks: 1 });
    const events = await collect(simple('hi'));
    expect(events.at(-1)!.type).toBe('message_stop');
  });

  test('a stream cut short without a finish reason throws after the first events (an error event, not a quiet end_turn)', async () => {
    fake.setMode({ kind: 'no_finish' });
    const { error, yielded } = await failure(simple('hi'));
    expect(error.kind).toBe('transient');
    expect(error.code).toBe('TRUNCATED_STREAM');
    expect(yielded).toBeGreaterThan(0);
  });
});

describe('retries before the first byte', () => {
  test('an empty answer is retried and the retry answers', async () => {
    fake.setMode({ kind: 'empty_response' }, { times: 2 });
    const events = await collect(simple('hi'));
    expect(events.at(-1)!.type).toBe('message_stop');
    expect(fake.generations().length).toBe(3);
  });

  test('empty answers beyond the retries fail as EMPTY_RESPONSE', async () => {
    fake.setMode({ kind: 'empty_candidates' });
    const { error, yielded } = await failure(simple('hi'));
    expect(error.code).toBe('EMPTY_RESPONSE');
    expect(error.kind).toBe('transient');
    expect(yielded).toBe(0);
    expect(fake.generations().length).toBe(3);
  });

  // A filter's verdict is the same on every try and every account: asking again only costs the pool.
  for (const mode of [{ kind: 'blocked_answer' }, { kind: 'blocked_answer', finishReason: 'RECITATION' }, { kind: 'blocked_prompt' }] as FakeGoogleMode[]) {
    test(`a blocked answer (${JSON.stringify(mode)}) is one upstream call and a finished refusal, not an error`, async () => {
      fake.setMode(mode);
      const msg = await viaSdk('gemini-3.8-flash-high', simple('something the filter stops'));
      expect(msg.stop_reason).toBe('refusal' as never);
      expect(msg.content).toEqual([]);
      expect(fake.generations().length).toBe(1);
    });
  }

  test('MAX_TOKENS with no parts is one upstream call and a finished max_tokens message counting the thoughts', async () => {
    fake.setMode({ kind: 'thinking_exhausted' });
    const msg = await viaSdk('gemini-3.8-flash-high', simple('think hard'));
    expect(msg.stop_reason).toBe('max_tokens');
    expect(msg.usage.output_tokens).toBe(64);
    expect(fake.generations().length).toBe(1);
  });

  test('an expired access token: 401, one refresh, one retry, success', async () => {
    const a = account('expiring@example.com');
    await collect(simple('warm'), ctx({ account: a }));
    const before = fake.stats.refreshes;
    fake.expireAccessTokens();
    const events = await collect(simple('hi'), ctx({ account: a }));
    expect(events.at(-1)!.type).toBe('message_stop');
    expect(fake.stats.refreshes - before).toBe(1);
  });

  test('a stored token refused during project discovery is refreshed once and the send succeeds', async () => {
    const a = account('stale-discovery@example.com', {});
    a.credentials = { kind: 'oauth', refreshToken: fake.refreshTokenFor('stale-discovery@example.com'), accessToken: 'ya29.unknown-to-google', expiresAt: Date.now() + 3_000_000 };
    const before = fake.stats.refreshes;
    const events = await collect(simple('hi'), ctx({ account: a }));
    expect(events.at(-1)!.type).toBe('message_stop');
    expect(fake.stats.refreshes - before).toBe(1);
  });

  // §3.3: a 401 from generation clears the token and the project; the retry discovers it again.
  test('a 401 drops the cached project too: the retry re-discovers it with the fresh token', async () => {
    const email = 'moved-401@example.com';
    fake.setAccount(email, { projectId: 'old-project' });
    const a = account(email, {});
    await collect(simple('warm'), ctx({ account: a }));
    fake.setAccount(email, { projectId: 'new-project' });
    fake.expireAccessTokens();
    const loadsBefore = fake.requests.filter((r) => r.rpc === 'loadCodeAssist').length;
    const events = await collect(simple('hi'), ctx({ account: a }));
    expect(events.at(-1)!.type).toBe('message_stop');
    expect(fake.requests.filter((r) => r.rpc === 'loadCodeAssist').length - loadsBefore).toBe(1);
    expect((fake.generations().at(-1)!.body as { project: string }).project).toBe('new-project');
  });

  // §9.2: a 403 about the project ("generateChat denied", "no valid license") means "fix discovery".
  test('a 403 denying the cached project drops it: discovery runs again and the send succeeds on the new project', async () => {
    const email = 'moved-403@example.com';
    fake.setAccount(email, { projectId: 'new-project' });
    const a = account(email, { projectId: 'stale-project' });
    fake.setMode({ kind: 'project_denied', project: 'stale-project' });
    const events = await collect(simple('hi'), ctx({ account: a }));
    expect(events.at(-1)!.type).toBe('message_stop');
    expect(fake.requests.filter((r) => r.rpc === 'loadCodeAssist').length).toBe(1);
    expect((fake.generations().at(-1)!.body as { project: string }).project).toBe('new-project');
    expect(patches.some(([id, p]) => id === a.id && p.meta?.projectId === 'new-project')).toBe(true);
    // The next send uses the new project straight away, though the account record still says the stale one.
    await collect(simple('again'), ctx({ account: a }));
    expect(fake.requests.filter((r) => r.rpc === 'loadCodeAssist').length).toBe(1);
    expect((fake.generations().at(-1)!.body as { project: string }).project).toBe('new-project');
  });

  test('a burst of sends refused on the stale project discovers the new one once, not once per late 403', async () => {
    const email = 'moved-burst@example.com';
    fake.setAccount(email, { projectId: 'new-project' });
    const a = account(email, { projectId: 'stale-project' });
    // One host, so each one-shot 403 below answers one send.
    const p = createAntigravityProvider({ ...config, antigravity: { ...config.antigravity, endpoints: [fake.endpoints[0]!] } }, deps);
    // All sent on the stale project; the 403s come back spread out, most after the first re-discovery is over.
    for (let i = 5; i >= 0; i--) fake.setMode({ kind: 'project_denied', project: 'stale-project', delayMs: i * 30 }, { times: 1 });
    const all = await Promise.all(Array.from({ length: 6 }, (_, i) => sendAll(p, simple(`hi ${i}`), ctx({ account: a }))));
    expect(all.every((e) => e.at(-1)!.type === 'message_stop')).toBe(true);
    expect(fake.requests.filter((r) => r.rpc === 'loadCodeAssist').length).toBe(1);
  });

  test('a 403 on the project that persists after re-discovery fails once, as transient, without looping', async () => {
    const email = 'denied-403@example.com';
    fake.setAccount(email, { projectId: 'denied-project' });
    const a = account(email, { projectId: 'denied-project' });
    fake.setMode({ kind: 'project_denied' });
    const { error, yielded } = await failure(simple('hi'), ctx({ account: a }));
    expect(error.kind).toBe('transient');
    expect(error.code).toBe('PROJECT_DENIED');
    expect(yielded).toBe(0);
    expect(fake.requests.filter((r) => r.rpc === 'loadCodeAssist').length).toBe(1);
  });

  test('a 401 that persists after the refresh is reported as auth (only one retry)', async () => {
    fake.setMode({ kind: 'unauthorized' });
    const before = fake.stats.refreshes;
    const { error } = await failure(simple('hi'));
    expect(error.kind).toBe('auth');
    expect(fake.generations().length).toBe(2);
    expect(fake.stats.refreshes - before).toBe(1);
  });

  test('ten concurrent sends on a cold account refresh exactly once', async () => {
    provider = createAntigravityProvider(config, deps, { emptyBackoffMs: 5 });
    const a = account('cold@example.com');
    const before = fake.stats.refreshes;
    fake.setMode({ kind: 'token_slow', ms: 100 }, { times: 1 });
    const all = await Promise.all(Array.from({ length: 10 }, () => collect(simple('hi'), ctx({ account: a }))));
    expect(all.every((e) => e.at(-1)!.type === 'message_stop')).toBe(true);
    expect(fake.stats.refreshes - before).toBe(1);
  });

  test('an invalid_grant refresh marks the account invalid', async () => {
    const p = createAntigravityProvider(config, deps);
    fake.setMode({ kind: 'token_invalid_grant' });
    const a = account('gone@example.com');
    let err: unknown;
    try {
      for await (const _ of p.send(simple('hi'), ctx({ account: a }))) void 0;
    } catch (e) {
      err = e;
    }
    expect((err as UpstreamError).kind).toBe('invalid_account');
    expect((err as UpstreamError).message).toContain('invalid_grant');
  });

  test('an invalid_grant never overwrites a disabled the user set after the account was read', async () => {
    const { db } = tempDb();
    const email = 'disabled-meanwhile@example.com';
    const { account: read } = upsertAccount(db, { provider: 'antigravity', email, credentials: { kind: 'oauth', refreshToken: fake.refreshTokenFor(email) } });
    updateAccount(db, read.id, { status: 'disabled', statusReason: 'disabled by user' }); // `mcp accounts disable`
    const p = createAntigravityProvider(config, providerDepsFor(db, () => Date.now()));
    fake.setMode({ kind: 'token_invalid_grant' });
    await p.refresh(read).catch(() => {});
    expect(findAccount(db, read.id)!.status).toBe('disabled');
    db.close();
    cleanupDbs();
  });

  test('the client abort stops the upstream call at once', async () => {
    fake.setMode({ kind: 'stall_before_first_byte', ms: 4000 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const t0 = Date.now();
    const { error } = await failure(simple('hi'), ctx({ signal: ac.signal }));
    expect(error.kind).toBe('transient');
    expect(Date.now() - t0).toBeLessThan(800);
    await Bun.sleep(50);
    expect(fake.generations()[0]!.aborted).toBe(true);
  });

  test('a consumer that stops reading releases the upstream connection', async () => {
    fake.setMode({ kind: 'slow_chunks', chunks: 20, delayMs: 100 });
    for await (const e of provider.send(simple('hi'), ctx())) if (e.type === 'content_block_start') break;
    await Bun.sleep(150);
    expect(fake.generations()[0]!.aborted).toBe(true);
  });
});

describe('models, quota, verify, refresh', () => {
  test('models come from fetchAvailableModels, internal ids hidden, cached per account', async () => {
    const a = account('models@example.com');
    const models = await provider.models(a);
    const ids = models.map((m) => m.id);
    expect(ids).toContain('claude-opus-4-6-thinking');
    expect(ids).toContain('gpt-oss-120b-medium');
    expect(ids.some((id) => id.startsWith('chat_') || id.startsWith('tab_'))).toBe(false);
    expect(ids).not.toContain('gemini-3.1-pro-high');
    const opus = models.find((m) => m.id === 'claude-opus-4-6-thinking')!;
    expect(opus).toMatchObject({ family: 'claude', contextWindow: 200000, maxOutputTokens: 64000, thinking: true });
    await provider.models(a);
    const calls = fake.requests.filter((r) => r.rpc === 'fetchAvailableModels');
    expect(calls.length).toBe(1);
    expect(calls[0]!.body).toEqual({ project: 'aicode-consumers' });
  });

  test('quota reports each model of this account', async () => {
    fake.setQuota({ 'claude-sonnet-4-6': { resetTime: '2030-01-01T00:00:00Z' }, 'gemini-3-flash': { remainingFraction: 0.4, resetTime: '2030-01-01T05:00:00Z' } }, { email: 'quota@example.com' });
    const q = await provider.quota(account('quota@example.com'));
    const by = Object.fromEntries(q.filter((x) => !x.window).map((x) => [x.model, x]));
    expect(by['claude-sonnet-4-6']).toEqual({ model: 'claude-sonnet-4-6', remainingFraction: 0, resetAt: Date.parse('2030-01-01T00:00:00Z') });
    expect(by['gemini-3-flash']!.remainingFraction).toBe(0.4);
    const other = Object.fromEntries((await provider.quota(account('other@example.com'))).filter((x) => !x.window).map((x) => [x.model, x]));
    expect(other['claude-sonnet-4-6']!.remainingFraction).toBe(1);
  });

  test("quota adds each group's 5-hour and weekly windows (retrieveUserQuotaSummary) to every model of the group", async () => {
    fake.setQuotaWindows({ 'claude+gpt': { weekly: { remainingFraction: 0.03, resetTime: '2030-01-03T00:00:00Z' } }, gemini: { '5h': { remainingFraction: 0 } } }, { email: 'windows@example.com' });
    const before = fake.requests.length;
    const q = await provider.quota(account('windows@example.com'));
    expect(fake.requests.slice(before).find((r) => r.rpc === 'retrieveUserQuotaSummary')!.body).toEqual({ project: 'aicode-consumers' });
    const of = (model: string) => q.filter((x) => x.model === model).map((x) => [x.window ?? '', x.remainingFraction]);
    expect(of('claude-sonnet-4-6')).toEqual([
      ['', 1],
      ['weekly', 0.03],
      ['5h', 1],
    ]);
    expect(of('gpt-oss-120b-medium')).toContainEqual(['weekly', 0.03]);
    expect(of('gemini-3-flash')).toContainEqual(['5h', 0]);
    expect(q.find((x) => x.model === 'claude-sonnet-4-6' && x.window === 'weekly')!.resetAt).toBe(Date.parse('2030-01-03T00:00:00Z'));
  });

  test('a backend without the summary call: the per-model quota stands alone', async () => {
    fake.setQuotaWindows(null, { email: 'old-backend@example.com' });
    const q = await provider.quota(account('old-backend@example.com'));
    expect(q.length).toBeGreaterThan(0);
    expect(q.every((x) => x.window === undefined)).toBe(true);
  });

  test('verify is a loadCodeAssist that reports project and tier', async () => {
    const v = await provider.verify(account('verify@example.com'));
    expect(v.ok).toBe(true);
    expect(v.detail).toContain('aicode-consumers');
    expect(v.detail).toContain('pro');
  });

  test('verify reports a revoked account without throwing', async () => {
    const p = createAntigravityProvider(config, deps);
    fake.setMode({ kind: 'token_invalid_grant' });
    const v = await p.verify(account('verify-bad@example.com'));
    expect(v.ok).toBe(false);
    expect(v.detail).toContain('invalid_account');
  });

  test('verify checks the refresh token, not only an access token still valid for the hour', async () => {
    const p = createAntigravityProvider(config, deps);
    const a = account('verify-revoked-rt@example.com');
    const rt = (a.credentials as { refreshToken: string }).refreshToken;
    const t = await refreshAccessToken(config.antigravity, rt);
    a.status = 'invalid';
    a.credentials = { kind: 'oauth', refreshToken: rt, accessToken: t.accessToken, expiresAt: t.expiresAt };
    // Google refuses the refresh token (revoked), while the access token it minted still works.
    fake.setMode({ kind: 'token_invalid_grant' });
    const v = await p.verify(a);
    expect(v.ok).toBe(false);
    expect(v.detail).toContain('invalid_grant');
  });

  test('verify fails an account loadCodeAssist lists as needing verification, with the link, so `accounts verify` does not put it back', async () => {
    const p = createAntigravityProvider(config, deps);
    fake.setAccount('verify-tier@example.com', {
      projectId: null,
      paidTierId: null,
      ineligibleTiers: [
        { reasonCode: 'VALIDATION_REQUIRED', reasonMessage: 'Verify your account to continue.', tierId: 'free-tier', validationUrl: 'https://accounts.google.com/FAKE-verify?v=2' },
      ],
    });
    const v = await p.verify(account('verify-tier@example.com'));
    expect(v.ok).toBe(false);
    expect(v.detail).toContain('invalid_account');
    expect(v.detail).toContain('https://accounts.google.com/FAKE-verify?v=2');
  });

  test("verify of an account Google gives no project says Google's reason instead of a bare 'none yet'", async () => {
    const p = createAntigravityProvider(config, deps);
    fake.setAccount('verify-ineligible@example.com', {
      projectId: null,
      paidTierId: null,
      ineligibleTiers: [{ reasonCode: 'UNSUPPORTED_LOCATION', reasonMessage: 'Not available in your country.', tierId: 'free-tier' }],
    });
    const v = await p.verify(account('verify-ineligible@example.com'));
    expect(v.detail).toContain('UNSUPPORTED_LOCATION: Not available in your country.');
  });

  test('verify records a tier that changed under the same project (an upgrade to Pro)', async () => {
    const p = createAntigravityProvider(config, deps);
    const a = account('upgraded@example.com', { projectId: 'aicode-consumers', tier: 'free', tierId: 'free-tier' });
    const v = await p.verify(a);
    expect(v.ok).toBe(true);
    const meta = patches.filter(([id, x]) => id === a.id && x.meta).at(-1)?.[1].meta;
    expect(meta).toMatchObject({ projectId: 'aicode-consumers', tier: 'pro', tierId: 'g1-pro-tier' });
  });

  test('refresh() forces a new token', async () => {
    const a = account('refresh@example.com');
    await provider.models(a);
    const before = fake.stats.refreshes;
    await provider.refresh(a);
    expect(fake.stats.refreshes - before).toBe(1);
  });
});

describe('ANTIGRAVITY_THINKING_REPLAY', () => {
  const signature = btoa('E'.repeat(120));
  const history = simple('', {
    messages: [
      { role: 'user', content: 'q' },
      { role: 'assistant', content: [{ type: 'thinking', thinking: 'because', signature }, { type: 'text', text: 'answer' }] },
      { role: 'user', content: 'more' },
    ],
    thinking: { type: 'enabled', budget_tokens: 2048 },
  } as Partial<MessagesRequest>);
  const replayed = (): unknown => (fake.generations().at(-1)!.body as { request: { contents: Array<{ parts: unknown }> } }).request.contents[1]!.parts;

  test('inline by default: the signature rides on the thought part', async () => {
    await collect(history, ctx({ model: 'claude-opus-4-6-thinking' }));
    expect(replayed()).toEqual([
      { text: 'because', thought: true, thoughtSignature: signature },
      { text: 'answer' },
    ]);
  });

  test("'split' (the official client's shape) puts it on the part after the thought", async () => {
    const splitConfig = loadConfig(
      {
        ANTIGRAVITY_ENDPOINTS: fake.endpoints.join(','),
        GOOGLE_OAUTH_TOKEN_URL: fake.tokenUrl,
        GOOGLE_USERINFO_URL: fake.userinfoUrl,
        ANTIGRAVITY_THINKING_REPLAY: 'split',
      },
      {},
      { requireApiKey: false },
    );
    const p = createAntigravityProvider(splitConfig, deps);
    for await (const _ of p.send(history, ctx({ model: 'claude-opus-4-6-thinking' })));
    expect(replayed()).toEqual([
      { text: 'because', thought: true },
      { text: 'answer', thoughtSignature: signature },
    ]);
  });

  test('any other value is refused at start, naming the variable', () => {
    expect(() => loadConfig({ ANTIGRAVITY_THINKING_REPLAY: 'sideways' }, {}, { requireApiKey: false })).toThrow(/ANTIGRAVITY_THINKING_REPLAY/);
  });
});

describe('output cap from the catalog', () => {
  test("a model's maxOutputTokens in the catalog caps the generation, below the family default", async () => {
    const models = defaultFakeModels();
    models['claude-sonnet-4-6'] = { ...models['claude-sonnet-4-6'], maxOutputTokens: 16384 };
    fake.setModels(models);
    try {
      const a = account('cap@example.com');
      await provider.models(a);
      await collect(simple('hi', { max_tokens: 32000, thinking: { type: 'adaptive' } }), ctx({ account: a }));
      const sent = fake.requests.findLast((r) => r.rpc === 'streamGenerateContent')!.body as { request: { generationConfig: Record<string, unknown> } };
      expect(sent.request.generationConfig.maxOutputTokens).toBe(16384);
      expect(sent.request.generationConfig.thinkingConfig).toEqual({ includeThoughts: true, thinkingBudget: 16383 });
    } finally {
      fake.setModels(defaultFakeModels());
    }
  });

  test("a Gemini tier id thinks with the catalog's budget for it when the client names no budget or effort", async () => {
    const models = defaultFakeModels();
    models['gemini-3.8-flash-low'] = { ...models['gemini-3.8-flash-low'], thinkingBudget: 1500 };
    fake.setModels(models);
    try {
      const a = account('tier@example.com');
      await provider.models(a);
      await collect(simple('hi', { max_tokens: 32000, thinking: { type: 'adaptive' } }), ctx({ account: a, model: 'gemini-3.8-flash-low' }));
      const sent = fake.requests.findLast((r) => r.rpc === 'streamGenerateContent')!.body as { request: { generationConfig: Record<string, unknown> } };
      expect(sent.request.generationConfig.thinkingConfig).toEqual({ includeThoughts: true, thinkingBudget: 1500 });
    } finally {
      fake.setModels(defaultFakeModels());
    }
  });
});

describe('shared quota groups', () => {
  test('an exhausted Claude quota names the account\'s other Claude and GPT models, never a Gemini one', async () => {
    await provider.models(ACC);
    fake.setMode({ kind: 'quota_exhausted', hint: 'full', resetMs: 3_600_000 });
    const { error } = await failure(simple('hi'), ctx({ model: 'claude-opus-4-6-thinking' }));
    expect(error.kind).toBe('quota_exhausted');
    expect(error.sharedWith).toContain('claude-sonnet-4-6');
    expect(error.sharedWith).not.toContain('claude-opus-4-6-thinking');
    expect(error.sharedWith.some((id) => id.startsWith('gemini'))).toBe(false);
  });

  test('an exhausted Gemini quota names the other Gemini text models, not the image model (metered apart, §11.3)', async () => {
    await provider.models(ACC);
    fake.setMode({ kind: 'quota_exhausted', hint: 'full', resetMs: 3_600_000 });
    const { error } = await failure(simple('hi'), ctx({ model: 'gemini-3-flash' }));
    expect(error.kind).toBe('quota_exhausted');
    expect(error.sharedWith.length).toBeGreaterThan(0);
    expect(error.sharedWith.every((id) => id.startsWith('gemini'))).toBe(true);
    expect(error.sharedWith).not.toContain('gemini-3.1-flash-image');
  });

  test('an exhausted image-model quota names no Gemini text model', async () => {
    await provider.models(ACC);
    fake.setMode({ kind: 'quota_exhausted', hint: 'full', resetMs: 3_600_000 });
    const { error } = await failure(simple('draw a cat'), ctx({ model: 'gemini-3.1-flash-image' }));
    expect(error.kind).toBe('quota_exhausted');
    expect(error.sharedWith).toEqual([]);
  });

  test('a short rate limit stays on its own model', async () => {
    await provider.models(ACC);
    fake.setMode({ kind: 'rate_limited', resetMs: 2000 });
    const { error } = await failure(simple('hi'), ctx({ model: 'claude-opus-4-6-thinking' }));
    expect(error.kind).toBe('rate_limited');
    expect(error.sharedWith).toEqual([]);
  });
});

describe('web search (Anthropic web_search tool, Google Search grounding)', () => {
  const searchReq = (extra: Record<string, unknown> = {}) => ({
    model: 'claude-opus-4-6',
    max_tokens: 32000,
    stream: true,
    system: [{ type: 'text', text: 'You are an assistant for performing a web search tool use' }],
    messages: [{ role: 'user', content: 'Perform a web search for the query: bun 1.4 release notes' }],
    tools: [{ type: 'web_search_20250305', name: 'web_search', max_uses: 8, ...extra }],
    tool_choice: { type: 'tool', name: 'web_search' },
  });

  test('the search goes to Google as a grounded web_search request, not as a chat turn', async () => {
    await collect(searchReq() as MessagesRequest, ctx({ model: 'gemini-3.1-flash-lite' }));
    const sent = fake.requests.find((r) => r.rpc === 'streamGenerateContent')!.body as Record<string, unknown>;
    expect(sent).toEqual({
      project: 'aicode-consumers',
      model: 'gemini-3.1-flash-lite',
      userAgent: 'antigravity',
      requestType: 'web_search',
      request: {
        contents: [{ role: 'user', parts: [{ text: 'Perform a web search for the query: bun 1.4 release notes' }] }],
        systemInstruction: { role: 'user', parts: [{ text: expect.stringMatching(/^You are a search engine bot\./) }] },
        tools: [{ googleSearch: {} }],
        generationConfig: { candidateCount: 1 },
      },
    });
  });

  test('the answer is what Claude Code reads: server_tool_use with the query, the hits, then the text', async () => {
    const msg = await viaSdk('gemini-3.1-flash-lite', searchReq());
    expect(msg.model).toBe('claude-opus-4-6');
    expect(msg.stop_reason).toBe('end_turn');
    expect(msg.content.map((b) => b.type)).toEqual(['server_tool_use', 'web_search_tool_result', 'text']);
    const use = msg.content[0] as { id: string; name: string; input: unknown };
    expect(use.name).toBe('web_search');
    expect(use.id).toMatch(/^srvtoolu_[0-9a-f]{24}$/);
    expect(use.input).toEqual({ query: 'bun 1.4 release notes' });
    const result = msg.content[1] as { tool_use_id: string; content: Array<{ type: string; title: string; url: string }> };
    expect(result.tool_use_id).toBe(use.id);
    expect(result.content.map((r) => [r.type, r.title])).toEqual([
      ['web_search_result', 'example.com'],
      ['web_search_result', 'docs.example.org'],
      ['web_search_result', 'blocked.example.net'],
    ]);
    // Google's redirects are followed to the pages; one that fails stays a redirect link.
    expect(result.content.map((r) => r.url.replace(/FAKE2blocked\.example\.net-[0-9a-f]+-broken$/, 'FAKE2…'))).toEqual([
      'https://example.com/fake-search-page',
      'https://docs.example.org/fake-search-page',
      `${new URL(fake.url).origin}/grounding-api-redirect/FAKE2…`,
    ]);
    expect((msg.content[2] as { text: string }).text).toBe('FAKE_SEARCH_RESULT for "bun 1.4 release notes": 3 sites say so.');
    expect(msg.usage).toMatchObject({ input_tokens: 20, output_tokens: 30, server_tool_use: { web_search_requests: 1 } });
  });

  test('blocked and allowed domains are asked for in the prompt and enforced on the hits', async () => {
    const blocked = await viaSdk('gemini-3.1-flash-lite', searchReq({ blocked_domains: ['blocked.example.net'] }));
    expect((blocked.content[1] as { content: Array<{ title: string }> }).content.map((r) => r.title)).toEqual(['example.com', 'docs.example.org']);
    const sys = (fake.requests.findLast((r) => r.rpc === 'streamGenerateContent')!.body as { request: { systemInstruction: { parts: Array<{ text: string }> } } }).request.systemInstruction.parts[0]!.text;
    expect(sys).toContain('Never use results from these sites: blocked.example.net.');
    const allowed = await viaSdk('gemini-3.1-flash-lite', searchReq({ allowed_domains: ['example.org'] }));
    expect((allowed.content[1] as { content: Array<{ title: string }> }).content.map((r) => r.title)).toEqual(['docs.example.org']);
  });

  test('a search with nothing to search for is a bad_request before any upstream call', async () => {
    const req = { ...searchReq(), messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } }] }] };
    const { error, yielded } = await failure(req as MessagesRequest, ctx({ model: 'gemini-3.1-flash-lite' }));
    expect([error.kind, yielded]).toEqual(['bad_request', 0]);
    expect(error.message).toContain('no text to search for');
    expect(fake.requests.filter((r) => r.rpc === 'streamGenerateContent')).toEqual([]);
  });

  test('a search the model cannot run is a clean bad_request before any event', async () => {
    const { error, yielded } = await failure(searchReq() as MessagesRequest, ctx({ model: 'claude-sonnet-4-6' }));
    expect(yielded).toBe(0);
    expect(error.kind).toBe('bad_request');
    expect(error.message).toContain('Search grounding is not supported');
  });

  test('web search beside other tools is not intercepted: the other tools are served as usual', async () => {
    const req = { ...searchReq(), tools: [...searchReq().tools, { name: 'Bash', description: 'run', input_schema: { type: 'object', properties: {} } }], tool_choice: undefined };
    await collect(req as MessagesRequest, ctx({ model: 'claude-sonnet-4-6' }));
    const sent = fake.requests.find((r) => r.rpc === 'streamGenerateContent')!.body as { requestType: string; request: { tools: unknown[] } };
    expect(sent.requestType).toBe('agent');
    expect(JSON.stringify(sent.request.tools)).toContain('"name":"Bash"');
    expect(JSON.stringify(sent.request.tools)).not.toContain('googleSearch');
  });
});

describe('AI credits (ANTIGRAVITY_AI_CREDITS, antigravity.md §13.3)', () => {
  const withCredits = (on: boolean) =>
    createAntigravityProvider(
      loadConfig({ ANTIGRAVITY_ENDPOINTS: fake.endpoints[0]!, GOOGLE_OAUTH_TOKEN_URL: fake.tokenUrl, GOOGLE_USERINFO_URL: fake.userinfoUrl, ANTIGRAVITY_AI_CREDITS: on ? 'true' : 'false' }, {}, { requireApiKey: false }),
      deps,
      { emptyBackoffMs: 5 },
    );
  const generations = () => fake.requests.filter((r) => r.rpc === 'streamGenerateContent');
  const spent = (r: { body: unknown }) => (r.body as { enabledCreditTypes?: string[] }).enabledCreditTypes;

  test('off (the default): an exhausted quota is reported, no credits are spent', async () => {
    expect(config.antigravity.aiCredits).toBe(false);
    const acc = account('credits-off@example.com');
    fake.setAccount(acc.email!, { aiCredits: 5 });
    fake.setMode({ kind: 'quota_exhausted' }, { email: acc.email! });
    const { error } = await sendFailure(withCredits(false), simple('hi'), ctx({ account: acc }));
    expect(error.kind).toBe('quota_exhausted');
    expect(generations().map(spent)).toEqual([undefined]);
  });

  test('on: the exhausted request is sent again on credits, and later ones go on credits at once', async () => {
    const acc = account('credits-on@example.com');
    fake.setAccount(acc.email!, { aiCredits: 5 });
    fake.setMode({ kind: 'quota_exhausted', resetMs: 3_600_000 }, { email: acc.email! });
    const p = withCredits(true);
    expect(textOf(await sendAll(p, simple('hi'), ctx({ account: acc })))).toBe('Hello from the fake Antigravity.');
    expect(generations().map((g) => [spent(g), g.mode])).toEqual([[undefined, 'quota_exhausted'], [['GOOGLE_ONE_AI'], 'ok']]);
    // The quota group's other models too (Claude and GPT-OSS share it), without the 429 first.
    await sendAll(p, simple('again'), ctx({ account: acc, model: 'claude-opus-4-6-thinking' }));
    expect(generations().slice(2).map(spent)).toEqual([['GOOGLE_ONE_AI']]);
    // Gemini is another quota: no credits unless it runs out too.
    fake.clearModes();
    await sendAll(p, simple('gemini'), ctx({ account: acc, model: 'gemini-3-flash' }));
    expect(generations().slice(3).map(spent)).toEqual([undefined]);
  });

  test('on, without credits: the quota answer stands, and the account is not asked for credits again soon', async () => {
    const acc = account('credits-none@example.com');
    fake.setMode({ kind: 'quota_exhausted', resetMs: 3_600_000 }, { email: acc.email! });
    const p = withCredits(true);
    const first = await sendFailure(p, simple('hi'), ctx({ account: acc }));
    expect([first.error.kind, first.yielded]).toEqual(['quota_exhausted', 0]);
    // The reset is the quota's, not the credit refusal's, and the shared group is named.
    expect(first.error.code).toBe('QUOTA_EXHAUSTED');
    expect(first.error.resetAt).toBeGreaterThan(Date.now() + 3_000_000);
    expect(generations().map(spent)).toEqual([undefined, ['GOOGLE_ONE_AI']]);
    await sendFailure(p, simple('again'), ctx({ account: acc }));
    expect(generations().slice(2).map(spent)).toEqual([undefined]);
  });
});

describe("the account's own Google Cloud project (meta.userProject, `mcp accounts set --project`)", () => {
  const projectOf = (i: number) => (fake.generations()[i]!.body as { project: string }).project;

  test('a Workspace account generates under its own project, found once and stored with the setting it was found under', async () => {
    fake.setAccount('own-send@example.com', { projectId: null, paidTierId: null, userProject: 'acme-send-proj' });
    const a = account('own-send@example.com', { userProject: 'acme-send-proj' });
    await collect(simple('hi'), ctx({ account: a }));
    await collect(simple('again'), ctx({ account: a }));
    expect(projectOf(0)).toBe('acme-send-proj');
    expect(projectOf(1)).toBe('acme-send-proj');
    expect(fake.requests.filter((r) => r.rpc === 'loadCodeAssist').length).toBe(1);
    expect(patches.find(([id, p]) => id === a.id && p.meta?.projectId)?.[1].meta).toMatchObject({ projectId: 'acme-send-proj', projectFor: 'acme-send-proj' });
  });

  test('without the setting, a tier that needs it fails as an invalid account naming the command with its label', async () => {
    fake.setAccount('own-unset@example.com', { projectId: null, paidTierId: null, userProject: 'acme-unset-proj' });
    const a = { ...account('own-unset@example.com', {}), label: 'work' };
    const { error: err } = await failure(simple('hi'), ctx({ account: a }));
    expect(err.kind).toBe('invalid_account');
    expect(err.code).toBe('PROJECT_REQUIRED');
    expect(err.message).toContain('mcp accounts set work --project');
    expect(fake.generations().length).toBe(0);
  });

  test('a changed setting drops the project found before (memory and stored), and the next request finds it again under the new one', async () => {
    const a = account('own-change@example.com');
    await collect(simple('hi'), ctx({ account: a }));
    expect(projectOf(0)).toBe('aicode-consumers');
    // The account turns out to need its own project; the user sets it; the pool reloads the account.
    fake.setAccount('own-change@example.com', { projectId: null, paidTierId: null, userProject: 'acme-change-proj' });
    const changed = { ...a, meta: { ...a.meta, userProject: 'acme-change-proj' } };
    await collect(simple('after the change'), ctx({ account: changed }));
    expect(projectOf(1)).toBe('acme-change-proj');
    expect(fake.requests.filter((r) => r.rpc === 'loadCodeAssist').at(-1)!.body).toEqual({ metadata: { ideType: 'ANTIGRAVITY', duetProject: 'acme-change-proj' } });
    // Cleared again: not the project found under the old setting.
    const cleared = { ...a, meta: { projectId: 'acme-change-proj', projectFor: 'acme-change-proj', userProject: null } };
    const { error: err } = await failure(simple('cleared'), ctx({ account: cleared }));
    expect(err.code).toBe('PROJECT_REQUIRED');
  });

  test('verify fails a tier that needs its own project without one, and passes (naming it) once set', async () => {
    const p = createAntigravityProvider(config, deps);
    fake.setAccount('own-verify@example.com', { projectId: null, paidTierId: null, userProject: 'acme-verify-proj' });
    const bare = { ...account('own-verify@example.com', {}), label: 'ws' };
    const before = await p.verify(bare);
    expect(before.ok).toBe(false);
    expect(before.detail).toContain('mcp accounts set ws --project');
    const after = await p.verify({ ...bare, meta: { userProject: 'acme-verify-proj' } });
    expect(after.ok).toBe(true);
    expect(after.detail).toContain('acme-verify-proj');
    expect(fake.requests.filter((r) => r.rpc === 'loadCodeAssist').at(-1)!.body).toEqual({ metadata: { ideType: 'ANTIGRAVITY', duetProject: 'acme-verify-proj' } });
  });

  test('verify passes a tier that needs its own project when a project is already known for it (imported from another proxy)', async () => {
    const p = createAntigravityProvider(config, deps);
    fake.setAccount('own-imported@example.com', { projectId: null, paidTierId: null, userProject: 'acme-imported-proj' });
    const v = await p.verify(account('own-imported@example.com', { projectId: 'acme-imported-proj', importedFrom: 'accounts.json' }));
    expect(v.ok, v.detail).toBe(true);
    expect(v.detail).toContain('acme-imported-proj');
  });
});

// Claude and GPT-OSS behind Google take no response schema: they are asked for JSON in words, and
// Claude Code parses the answer to a json_schema request (a session title) as plain JSON.
describe('structured output answered in a Markdown fence', () => {
  const FENCED = '```json\n{"title":"Fenced title"}\n```';
  const fenced = startFakeGoogle({ replyText: FENCED });
  afterAll(() => fenced.stop());
  const p = createAntigravityProvider(
    loadConfig(
      {
        ANTIGRAVITY_ENDPOINTS: fenced.endpoints.join(','),
        GOOGLE_OAUTH_TOKEN_URL: fenced.tokenUrl,
        GOOGLE_OAUTH_AUTH_URL: fenced.authUrl,
        GOOGLE_USERINFO_URL: fenced.userinfoUrl,
        UPSTREAM_IDLE_TIMEOUT_SEC: '1',
      },
      {},
      { requireApiKey: false },
    ),
    deps,
  );
  const acc: Account = { ...account('fenced@example.com'), credentials: { kind: 'oauth', refreshToken: fenced.refreshTokenFor('fenced@example.com') } };
  const format = { type: 'json_schema', schema: { type: 'object', properties: { title: { type: 'string' } }, required: ['title'] } };

  test('Claude: a json_schema request gets the JSON without its fence', async () => {
    const events = await sendAll(p, simple('Name this session', { output_config: { format } }), ctx({ account: acc }));
    expect(JSON.parse(textOf(events))).toEqual({ title: 'Fenced title' });
    expect(events.at(-1)?.type).toBe('message_stop');
  });

  test('an ordinary request keeps the text as the model wrote it', async () => {
    expect(textOf(await sendAll(p, simple('Name this session'), ctx({ account: acc })))).toBe(FENCED);
  });

  // Gemini 2.x refuses a response schema beside function declarations; Anthropic takes both.
  test('Gemini 2.5 with tools: a json_schema request is answered (asked in words), not refused by Google, and its fence removed', async () => {
    fenced.setModels({ ...defaultFakeModels(), 'gemini-2.5-flash': { displayName: 'Gemini 2.5 Flash', supportsThinking: true, maxOutputTokens: 65536 } });
    const events = await sendAll(p, withTools.request as unknown as MessagesRequest, ctx({ account: acc, model: 'gemini-2.5-flash' }));
    expect(JSON.parse(textOf(events))).toEqual({ title: 'Fenced title' });
    const sent = fenced.generations().at(-1)!.body as { request: { generationConfig: Record<string, unknown>; tools: unknown[] } };
    expect(sent.request.tools).toHaveLength(1);
    expect(sent.request.generationConfig.responseMimeType).toBeUndefined();
  });
});
