import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { ApiError } from '../../src/anthropic/errors.ts';
import { blockDelta, blockStart, messageStart, type AnthropicEvent } from '../../src/anthropic/events.ts';
import { renderMetrics } from '../../src/metrics.ts';
import { observeRequest } from '../../src/request-metrics.ts';
import { AUTH, body, dispatchSteps, KEY, post, startHarness, testConfig, textEvents, toolUseEvents, until, read, type Harness } from './stubs.ts';
import type { Dispatched, DispatchRequest } from '../../src/gateway/types.ts';

let h: Harness;
beforeAll(() => {
  h = startHarness(testConfig({ PING_INTERVAL_SEC: '1' }));
});
afterAll(() => h.stop());

function frame(ev: AnthropicEvent | { type: string }): string {
  return `event: ${ev.type}\ndata: ${JSON.stringify(ev)}\n\n`;
}

describe('streaming', () => {
  test('writes each event with exact SSE framing and the proxy headers', async () => {
    const events = toolUseEvents();
    h.dispatch = dispatchSteps(events, { fallbackFrom: 'claude-asked', failovers: 2 });
    const r = await post(h, '/v1/messages?beta=true', body({ stream: true }));
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(r.headers.get('cache-control')).toBe('no-cache');
    expect(r.headers.get('x-accel-buffering')).toBe('no');
    expect(r.headers.get('x-proxy-account')).toBe('acct-1');
    expect(r.headers.get('x-proxy-upstream-model')).toBe('upstream-model-x');
    expect(r.headers.get('x-proxy-fallback-from')).toBe('claude-asked');
    const rid = r.headers.get('request-id')!;
    expect(rid).toMatch(/^req_/);
    expect(await r.text()).toBe(events.map(frame).join(''));
    await until(() => h.records.some((x) => x.requestId === rid));
    const rec = h.records.find((x) => x.requestId === rid)!;
    expect(rec).toMatchObject({
      status: 200,
      stream: true,
      clientModel: 'claude-test-1',
      upstreamModel: 'upstream-model-x',
      accountId: 'acct-1',
      provider: 'stub',
      inputTokens: 120,
      outputTokens: 30,
      cacheReadTokens: 7,
      cacheCreationTokens: 3,
      fallbackFrom: 'claude-asked',
      failovers: 2,
      errorType: null,
    });
  });

  test('model names beyond Latin-1 in the proxy headers are sent as UTF-8 bytes, not a 500', async () => {
    // Z.AI serves any claude-* name, and a MODEL_MAP alias may be any text: both end up in headers.
    for (const stream of [true, false]) {
      h.dispatch = dispatchSteps(textEvents(), { upstreamModel: 'claude-模型', fallbackFrom: '快速' });
      const r = await post(h, '/v1/messages', body({ stream }));
      expect(r.status).toBe(200);
      const utf8 = (s: string | null) => (s === null ? null : Buffer.from(s, 'latin1').toString('utf8'));
      expect(utf8(r.headers.get('x-proxy-upstream-model'))).toBe('claude-模型');
      expect(utf8(r.headers.get('x-proxy-fallback-from'))).toBe('快速');
      await r.text();
    }
  });

  test('a model name with control characters (CR LF, NUL) gives escaped proxy headers and the answer, not a 500 or a header of its own', async () => {
    // The upstream model is whatever the client named when Z.AI passes it through, or a MODEL_MAP value.
    for (const stream of [true, false]) {
      h.dispatch = dispatchSteps(textEvents(), { upstreamModel: 'glm-5\r\nx-evil: 1', fallbackFrom: 'a\u0000b\u007f' });
      const r = await post(h, '/v1/messages', body({ stream }));
      expect(r.status).toBe(200);
      expect(r.headers.get('x-evil')).toBeNull();
      expect(r.headers.get('x-proxy-upstream-model')).toBe('glm-5\\r\\nx-evil: 1');
      expect(r.headers.get('x-proxy-fallback-from')).toBe('a\\u0000b\\u007f');
      expect(await r.text()).toContain('Hello!');
    }
  });

  test('no x-proxy-fallback-from header without a fallback', async () => {
    h.dispatch = dispatchSteps(textEvents());
    const r = await post(h, '/v1/messages', body({ stream: true }));
    expect(r.headers.get('x-proxy-fallback-from')).toBeNull();
    await r.text();
  });

  test('a dispatch that fails before the first event is a real HTTP error with retry-after', async () => {
    h.dispatch = async () => {
      throw new ApiError('rate_limit_error', 'all accounts are limited', { headers: { 'retry-after': '7' } });
    };
    const r = await post(h, '/v1/messages', body({ stream: true }));
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toBe('7');
    expect(r.headers.get('content-type')).toContain('application/json');
    const j = await read(r);
    expect(j).toMatchObject({ type: 'error', error: { type: 'rate_limit_error', message: 'all accounts are limited' } });
    expect(j.request_id).toBe(r.headers.get('request-id'));
    await until(() => h.records.some((x) => x.requestId === j.request_id));
    expect(h.records.find((x) => x.requestId === j.request_id)).toMatchObject({ status: 429, errorType: 'rate_limit_error' });
  });

  test('a request the upstream refused is put down to the account and model that answered, with the fallback and failovers on the way, in the record and the log', async () => {
    h.dispatch = async (req) => {
      req.onAttempt?.({ accountId: 'acct-first', provider: 'zai', upstreamModel: 'glm-4.7', fallbackFrom: 'glm-5.1', failovers: 0, failoverReasons: [] });
      req.onAttempt?.({ accountId: 'acct-last', provider: 'zai', upstreamModel: 'glm-4.7', fallbackFrom: 'glm-5.1', failovers: 1, failoverReasons: ['first:transient'] });
      throw new ApiError('invalid_request_error', 'prompt is too long');
    };
    const r = await post(h, '/v1/messages', body({ stream: true }));
    expect(r.status).toBe(400);
    const j = await read(r);
    await until(() => h.records.some((x) => x.requestId === j.request_id));
    expect(h.records.find((x) => x.requestId === j.request_id)).toMatchObject({
      status: 400,
      accountId: 'acct-last',
      provider: 'zai',
      upstreamModel: 'glm-4.7',
      fallbackFrom: 'glm-5.1',
      failovers: 1,
      failoverReasons: ['first:transient'],
    });
  });

  test('the 200 is sent only once dispatch resolved', async () => {
    let resolveDispatch!: () => void;
    const gate = new Promise<void>((r) => (resolveDispatch = r));
    h.dispatch = async (req) => {
      await gate;
      return dispatchSteps(textEvents())(req);
    };
    let answered = false;
    const pending = post(h, '/v1/messages', body({ stream: true })).then((r) => {
      answered = true;
      return r;
    });
    await Bun.sleep(150);
    expect(answered).toBe(false);
    resolveDispatch();
    const r = await pending;
    expect(r.status).toBe(200);
    await r.text();
  });

  test('a ping is written while the upstream is silent', async () => {
    const evs = textEvents();
    h.dispatch = dispatchSteps([evs[0]!, { wait: 1300 }, ...evs.slice(1)]);
    const r = await post(h, '/v1/messages', body({ stream: true }));
    const text = await r.text();
    expect(text).toBe(frame(evs[0]!) + 'event: ping\ndata: {"type":"ping"}\n\n' + evs.slice(1).map(frame).join(''));
  });

  test('an error after the 200 becomes an error event and the stream ends', async () => {
    const evs = textEvents();
    h.dispatch = dispatchSteps([evs[0]!, evs[1]!, evs[2]!, { throw: new ApiError('overloaded_error', 'Overloaded') }, evs[3]!]);
    const r = await post(h, '/v1/messages', body({ stream: true }));
    expect(r.status).toBe(200);
    const text = await r.text();
    expect(text).toBe(
      [evs[0]!, evs[1]!, evs[2]!].map(frame).join('') +
        frame({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } as AnthropicEvent),
    );
    const rid = r.headers.get('request-id')!;
    await until(() => h.records.some((x) => x.requestId === rid));
    expect(h.records.find((x) => x.requestId === rid)).toMatchObject({ status: 200, errorType: 'overloaded_error' });
  });

  test('an unexpected exception mid-stream is an api_error event without details', async () => {
    const evs = textEvents();
    h.dispatch = dispatchSteps([evs[0]!, { throw: new Error('secret internal detail') }]);
    const text = await (await post(h, '/v1/messages', body({ stream: true }))).text();
    expect(text).toEndWith(frame({ type: 'error', error: { type: 'api_error', message: 'upstream stream failed' } } as AnthropicEvent));
    expect(text).not.toContain('secret internal detail');
  });

  test('an upstream error event with an unknown type is sent as api_error and ends the stream', async () => {
    const evs = textEvents();
    h.dispatch = dispatchSteps([evs[0]!, { type: 'error', error: { type: 'weird_error', message: 'x' } } as AnthropicEvent, evs[1]!]);
    const text = await (await post(h, '/v1/messages', body({ stream: true }))).text();
    expect(text).toBe(frame(evs[0]!) + frame({ type: 'error', error: { type: 'api_error', message: 'x' } } as AnthropicEvent));
  });

  test('a client disconnect aborts the signal given to dispatch at once', async () => {
    const evs = textEvents();
    h.dispatch = dispatchSteps([evs[0]!, { wait: 10_000 }, ...evs.slice(1)]);
    const client = new AbortController();
    const before = h.calls.length;
    const r2 = await fetch(`${h.base}/v1/messages`, {
      method: 'POST',
      headers: AUTH,
      body: JSON.stringify(body({ stream: true })),
      signal: client.signal,
    });
    const reader = r2.body!.getReader();
    await reader.read(); // message_start arrived
    const sig = h.calls[h.calls.length - 1]!.signal;
    expect(h.calls.length).toBeGreaterThan(before);
    expect(sig.aborted).toBe(false);
    const t0 = performance.now();
    client.abort();
    await until(() => sig.aborted, 1000);
    expect(performance.now() - t0).toBeLessThan(100);
    const rid = r2.headers.get('request-id')!;
    await until(() => h.records.some((x) => x.requestId === rid));
    expect(h.records.find((x) => x.requestId === rid)).toMatchObject({ status: 499, errorType: 'client_closed' });
  });

  test('a client that leaves mid-stream is recorded with its input tokens and an estimate of the output it was sent', async () => {
    const evs = textEvents();
    const text = 'word '.repeat(80); // 400 ASCII characters: about 100 tokens
    h.dispatch = dispatchSteps([evs[0]!, evs[1]!, blockDelta(0, { type: 'text_delta', text }), { wait: 10_000 }, ...evs.slice(3)]);
    const client = new AbortController();
    const r = await fetch(`${h.base}/v1/messages`, { method: 'POST', headers: AUTH, body: JSON.stringify(body({ stream: true })), signal: client.signal });
    const reader = r.body!.getReader();
    let seen = '';
    while (!seen.includes('text_delta')) seen += new TextDecoder().decode((await reader.read()).value);
    client.abort();
    const rid = r.headers.get('request-id')!;
    await until(() => h.records.some((x) => x.requestId === rid));
    expect(h.records.find((x) => x.requestId === rid)).toMatchObject({ status: 499, inputTokens: 10, outputTokens: 100 });
  });

  test('an upstream failure mid-stream is recorded with an estimate of the output sent before it', async () => {
    const evs = textEvents();
    h.dispatch = dispatchSteps([evs[0]!, evs[1]!, blockDelta(0, { type: 'text_delta', text: 'abcd'.repeat(20) }), { throw: new ApiError('overloaded_error', 'Overloaded') }]);
    const r = await post(h, '/v1/messages', body({ stream: true }));
    await r.text();
    const rid = r.headers.get('request-id')!;
    await until(() => h.records.some((x) => x.requestId === rid));
    expect(h.records.find((x) => x.requestId === rid)).toMatchObject({ status: 200, errorType: 'overloaded_error', inputTokens: 10, outputTokens: 20 });
  });

  test('a client disconnect while waiting for the first event aborts dispatch', async () => {
    let seen: AbortSignal | null = null;
    h.dispatch = (req) => {
      seen = req.signal;
      return new Promise((_, reject) => req.signal.addEventListener('abort', () => reject(new ApiError('api_error', 'aborted'))));
    };
    const client = new AbortController();
    const p = fetch(`${h.base}/v1/messages`, {
      method: 'POST',
      headers: AUTH,
      body: JSON.stringify(body({ stream: true })),
      signal: client.signal,
    }).catch(() => null);
    await until(() => seen !== null);
    client.abort();
    await until(() => seen!.aborted, 1000);
    await p;
  });
});

describe('non-streaming', () => {
  test('a client gone before its whole answer could be sent is recorded as gone (499), with the answer\'s tokens', async () => {
    h.dispatch = async (req) => {
      // The upstream finished just as the client left: the answer is whole, and nobody takes it.
      await new Promise((r) => (req.signal.aborted ? r(null) : req.signal.addEventListener('abort', r, { once: true })));
      return dispatchSteps(textEvents())({ ...req, signal: new AbortController().signal });
    };
    const client = new AbortController();
    const before = h.records.length;
    const p = fetch(`${h.base}/v1/messages`, { method: 'POST', headers: AUTH, body: JSON.stringify(body()), signal: client.signal }).catch(() => null);
    await until(() => h.calls.length > 0 && h.calls.at(-1)!.body.stream !== true && h.records.length === before);
    await Bun.sleep(50);
    client.abort();
    await p;
    await until(() => h.records.length > before);
    expect(h.records.at(-1)).toMatchObject({ status: 499, errorType: 'client_closed', inputTokens: 10, outputTokens: 5 });
  });

  test('a client disconnect while collecting aborts the signal given to dispatch', async () => {
    const evs = textEvents();
    h.dispatch = dispatchSteps([evs[0]!, { wait: 10_000 }, ...evs.slice(1)]);
    const before = h.calls.length;
    const client = new AbortController();
    const p = fetch(`${h.base}/v1/messages`, {
      method: 'POST',
      headers: AUTH,
      body: JSON.stringify(body()),
      signal: client.signal,
    }).catch(() => null);
    await until(() => h.calls.length > before);
    const sig = h.calls[h.calls.length - 1]!.signal;
    await Bun.sleep(20);
    const t0 = performance.now();
    client.abort();
    await until(() => sig.aborted, 1000);
    expect(performance.now() - t0).toBeLessThan(100);
    await p;
    const rid = h.calls[h.calls.length - 1]!.requestId;
    await until(() => h.records.some((x) => x.requestId === rid));
    expect(h.records.find((x) => x.requestId === rid)).toMatchObject({ status: 499, errorType: 'client_closed', stream: false });
  });

  test('collects the same events into one Message with the proxy headers', async () => {
    h.dispatch = dispatchSteps(toolUseEvents(), { fallbackFrom: 'claude-asked' });
    const r = await post(h, '/v1/messages?beta=true', body());
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('application/json');
    expect(r.headers.get('x-proxy-account')).toBe('acct-1');
    expect(r.headers.get('x-proxy-upstream-model')).toBe('upstream-model-x');
    expect(r.headers.get('x-proxy-fallback-from')).toBe('claude-asked');
    const m = await read(r);
    expect(m).toMatchObject({
      id: 'msg_test1',
      type: 'message',
      role: 'assistant',
      stop_reason: 'tool_use',
      content: [
        { type: 'thinking', thinking: 'Let me think step by step.', signature: 'c2lnbmF0dXJl' },
        { type: 'text', text: 'I will run a command.' },
        { type: 'tool_use', id: 'toolu_abc', name: 'Bash', input: { command: 'echo hi' } },
      ],
      usage: { input_tokens: 120, output_tokens: 30 },
    });
    const rid = r.headers.get('request-id')!;
    await until(() => h.records.some((x) => x.requestId === rid));
    expect(h.records.find((x) => x.requestId === rid)).toMatchObject({ status: 200, stream: false, inputTokens: 120, outputTokens: 30 });
  });

  test('an error event in a non-streaming answer becomes the HTTP error', async () => {
    const evs = textEvents();
    h.dispatch = dispatchSteps([evs[0]!, { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } as AnthropicEvent]);
    const r = await post(h, '/v1/messages', body());
    expect(r.status).toBe(529);
    expect((await read(r)).error.type).toBe('overloaded_error');
  });

  test('dispatch gets the body with unknown fields, the request id and lower-case headers without the client key', async () => {
    h.dispatch = dispatchSteps(textEvents());
    const r = await post(h, '/v1/messages', body({ context_management: { edits: [] } }), {
      ...AUTH,
      'Anthropic-Beta': 'a,b',
      'X-Claude-Code-Session-Id': 'sess-1',
    });
    await r.text();
    const call = h.calls[h.calls.length - 1]!;
    expect(call.body.context_management).toEqual({ edits: [] });
    expect(call.requestId).toBe(r.headers.get('request-id')!);
    expect(call.headers['anthropic-beta']).toBe('a,b');
    expect(call.headers['x-claude-code-session-id']).toBe('sess-1');
    expect(call.headers['x-api-key']).toBeUndefined();
    expect(JSON.stringify(call.headers)).not.toContain(KEY);
  });

  test('a bad request reports a record with its status once', async () => {
    const before = h.records.length;
    const r = await post(h, '/v1/messages', { model: 'x' });
    expect(r.status).toBe(400);
    await until(() => h.records.length === before + 1);
    expect(h.records[h.records.length - 1]).toMatchObject({ status: 400, errorType: 'invalid_request_error' });
  });

  test('an unexpected exception in dispatch is a generic 500 api_error', async () => {
    h.dispatch = async () => {
      throw new Error('db exploded at /secret/path');
    };
    const r = await post(h, '/v1/messages', body());
    expect(r.status).toBe(500);
    const j = await read(r);
    expect(j.error).toEqual({ type: 'api_error', message: 'Internal server error' });
  });
});

describe('official SDK', () => {
  function client() {
    return new Anthropic({ apiKey: KEY, baseURL: h.base, maxRetries: 0 });
  }

  test('messages.stream(...).finalMessage() accepts the streamed answer', async () => {
    h.dispatch = dispatchSteps(toolUseEvents());
    const stream = client().messages.stream({
      model: 'claude-test-1',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'run echo' }],
    });
    const m = await stream.finalMessage();
    expect(m.content).toEqual([
      { type: 'thinking', thinking: 'Let me think step by step.', signature: 'c2lnbmF0dXJl' },
      { type: 'text', text: 'I will run a command.' },
      { type: 'tool_use', id: 'toolu_abc', name: 'Bash', input: { command: 'echo hi' } },
    ] as any);
    expect(m.stop_reason).toBe('tool_use');
    expect(m.usage.output_tokens).toBe(30);
  });

  test('messages.create(...) accepts the collected answer', async () => {
    h.dispatch = dispatchSteps(toolUseEvents());
    const m = await client().messages.create({
      model: 'claude-test-1',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'run echo' }],
    });
    expect(m.content.map((b) => b.type)).toEqual(['thinking', 'text', 'tool_use']);
    expect((m.content[2] as any).input).toEqual({ command: 'echo hi' });
  });

  test('the beta client (?beta=true) streams too', async () => {
    h.dispatch = dispatchSteps(textEvents('beta ok'));
    const m = await client().beta.messages.stream({
      model: 'claude-test-1',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'hi' }],
    }).finalMessage();
    expect((m.content[0] as any).text).toBe('beta ok');
  });

  test('an HTTP 429 surfaces as the SDK RateLimitError', async () => {
    h.dispatch = async () => {
      throw new ApiError('rate_limit_error', 'slow down', { headers: { 'retry-after': '3' } });
    };
    const err = await client()
      .messages.create({ model: 'claude-test-1', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] })
      .catch((e) => e);
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    expect(err.headers.get('retry-after')).toBe('3');
  });

  test('a mid-stream error event surfaces as an SDK APIError', async () => {
    h.dispatch = dispatchSteps([
      messageStart('m', { input_tokens: 1, output_tokens: 1 }),
      blockStart(0, { type: 'text', text: '' }),
      blockDelta(0, { type: 'text_delta', text: 'partial' }),
      { throw: new ApiError('overloaded_error', 'Overloaded') },
    ]);
    const err = await client()
      .messages.stream({ model: 'claude-test-1', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] })
      .finalMessage()
      .catch((e) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect(String(err.message)).toContain('Overloaded');
  });

  // The SDK's max_tokens doc: "Set to 0 to populate the prompt cache without generating a response."
  test('max_tokens 0 (a prompt-cache pre-warm) is answered here with no content, streamed or not, and never reaches an upstream', async () => {
    const before = h.calls.length;
    const params = { model: 'claude-test-1', max_tokens: 0, system: 'You are a careful reviewer. '.repeat(40), messages: [{ role: 'user' as const, content: 'warm' }] };
    const m = await client().messages.create(params);
    expect(m.content).toEqual([]);
    expect(m.stop_reason).toBe('max_tokens');
    expect(m.model).toBe('claude-test-1');
    expect(m.usage.output_tokens).toBe(0);
    expect(m.usage.input_tokens).toBeGreaterThan(100);
    const streamed = await client().messages.stream(params).finalMessage();
    expect(streamed.content).toEqual([]);
    expect(streamed.stop_reason).toBe('max_tokens');
    expect(h.calls.length).toBe(before);
  });

  test('count_tokens answers through the SDK', async () => {
    const r = await client().messages.countTokens({ model: 'claude-test-1', messages: [{ role: 'user', content: 'hello there' }] });
    expect(r.input_tokens).toBeGreaterThan(0);
  });
});

describe('count_tokens', () => {
  test('grows with content and never calls the gateway', async () => {
    const before = h.calls.length;
    const small = await read(post(h, '/v1/messages/count_tokens?beta=true', { model: 'm', messages: [{ role: 'user', content: 'foo' }] }));
    const big = await read(
      post(h, '/v1/messages/count_tokens', {
        model: 'm',
        system: 'You are helpful. '.repeat(50),
        messages: [{ role: 'user', content: 'foo '.repeat(500) }],
        tools: [{ name: 'Bash', description: 'Run a command', input_schema: { type: 'object', properties: { command: { type: 'string' } } } }],
      }),
    );
    expect(small.input_tokens).toBeGreaterThan(0);
    expect(big.input_tokens).toBeGreaterThan(small.input_tokens + 500);
    expect(h.calls.length).toBe(before);
  });

  test('bad bodies are 4xx, never 5xx', async () => {
    for (const b of ['{', '[]', '{"model":"m"}', JSON.stringify({ model: 'm', messages: [{ role: 'x', content: 'a' }] })]) {
      const r = await post(h, '/v1/messages/count_tokens', b);
      expect(r.status).toBe(400);
    }
  });
});

describe('a shutdown that cuts the connections still open', () => {
  const count = () => {
    const line = renderMetrics()
      .split('\n')
      .find((l) => l.startsWith('mcp_stream_errors_total{') && l.includes('provider="stub"') && l.includes('type="server_stopped"'));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  };

  test('a stream cut after its 200 is recorded as server_stopped and counts as a stream that broke; one cut before its 200 does not', async () => {
    const cut = startHarness(testConfig(), { cutting: () => true });
    try {
      const before = count();
      const evs = textEvents();
      cut.dispatch = dispatchSteps([evs[0]!, { wait: 10_000 }, ...evs.slice(1)]);
      // From the request's side the server cutting its connection looks like the client leaving.
      const client = new AbortController();
      const r = await fetch(`${cut.base}/v1/messages`, { method: 'POST', headers: AUTH, body: JSON.stringify(body({ stream: true })), signal: client.signal });
      await r.body!.getReader().read(); // message_start: the 200 went out
      client.abort();
      await until(() => cut.records.length === 1);
      expect(cut.records[0]).toMatchObject({ status: 503, errorType: 'server_stopped', stream: true, sent200: true });
      // The server wires every record to the metrics (serve.ts onRequestDone).
      observeRequest(cut.records[0]!);
      expect(count()).toBe(before + 1);

      // Still waiting for its first event: no 200 was sent, nothing broke for the client.
      let seen: AbortSignal | null = null;
      cut.dispatch = (req) => {
        seen = req.signal;
        return new Promise((_, reject) => req.signal.addEventListener('abort', () => reject(new ApiError('api_error', 'aborted'))));
      };
      const early = new AbortController();
      const p = fetch(`${cut.base}/v1/messages`, { method: 'POST', headers: AUTH, body: JSON.stringify(body({ stream: true })), signal: early.signal }).catch(() => null);
      await until(() => seen !== null);
      early.abort();
      await until(() => cut.records.length === 2);
      await p;
      expect(cut.records[1]).toMatchObject({ status: 503, errorType: 'server_stopped', stream: true });
      expect(cut.records[1]!.sent200).toBeUndefined();
      observeRequest(cut.records[1]!);
      expect(count()).toBe(before + 1);
    } finally {
      cut.stop();
    }
  });
});

describe('the end of the shutdown grace', () => {
  const stalled = (seen: AbortSignal[]) => (req: DispatchRequest): Promise<Dispatched> => {
    seen.push(req.signal);
    return new Promise((_, reject) => req.signal.addEventListener('abort', () => reject(new ApiError('api_error', 'aborted'))));
  };

  /**
   * Sends `payload` to `path` on a harness told of the stop, waits until `started()` says the request
   * is under way, stops, and gives the answer's status and error type (the harness is stopped after).
   */
  async function answerAtStop(
    path: string,
    payload: unknown,
    arrange: (h: Harness) => () => boolean,
    check: (h: Harness) => Promise<void> = async () => {},
  ): Promise<{ status: number; type: string; message: string }> {
    const stop = new AbortController();
    const h = startHarness(testConfig(), { stopping: stop.signal, cutting: () => stop.signal.aborted });
    try {
      const started = arrange(h);
      const res = post(h, path, payload);
      await until(started);
      stop.abort();
      const r = await res;
      const j = (await r.json()) as { error: { type: string; message: string } };
      await check(h);
      return { status: r.status, type: j.error.type, message: j.error.message };
    } finally {
      h.stop();
    }
  }
  const stoppedRecord = async (h: Harness) => {
    await until(() => h.records.length === 1);
    expect(h.records[0]).toMatchObject({ status: 503, errorType: 'server_stopped' });
  };

  // The connections were cut: a request waiting for its answer (a limit to reset, a slot, a long
  // non-streaming answer) saw a reset socket, not the error envelope every failure is meant to be.
  test('a request not yet answered gets a retryable 529 in the envelope, recorded as server_stopped, and its upstream call is stopped', async () => {
    const seen: AbortSignal[] = [];
    const answer = await answerAtStop('/v1/messages', body(), (h) => ((h.dispatch = stalled(seen)), () => seen.length === 1), stoppedRecord);
    expect(answer).toMatchObject({ status: 529, type: 'overloaded_error' });
    expect(answer.message).toContain('SHUTDOWN_GRACE_SEC');
    expect(seen[0]!.aborted).toBe(true);
  });

  test('a picture still being drawn gets the same error', async () => {
    const seen: AbortSignal[] = [];
    const answer = await answerAtStop('/v1/images/generations', { prompt: 'a lighthouse' }, (h) => ((h.dispatch = stalled(seen)), () => seen.length === 1), stoppedRecord);
    expect(answer).toMatchObject({ status: 529, type: 'overloaded_error' });
  });

  test('a /refresh-token still waiting on the upstream gets the same error', async () => {
    const answer = await answerAtStop('/refresh-token', {}, (h) => ((h.refreshGate = new Promise(() => {})), () => h.refreshCalls.length === 1));
    expect(answer).toMatchObject({ status: 529, type: 'overloaded_error' });
  });

  test('a stream already under way ends with an overloaded_error event, recorded as server_stopped', async () => {
    const stop = new AbortController();
    const h = startHarness(testConfig(), { stopping: stop.signal });
    try {
      const evs = textEvents();
      h.dispatch = dispatchSteps([evs[0]!, evs[1]!, { wait: 10_000 }, ...evs.slice(2)]);
      const r = await post(h, '/v1/messages', body({ stream: true }));
      const reader = r.body!.getReader();
      await reader.read();
      stop.abort();
      let text = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      expect(text).toContain('event: error\ndata: {"type":"error","error":{"type":"overloaded_error"');
      await until(() => h.records.length === 1);
      expect(h.records[0]).toMatchObject({ status: 503, errorType: 'server_stopped', stream: true, sent200: true });
    } finally {
      h.stop();
    }
  });
});
