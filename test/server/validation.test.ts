// The bad-request table: each body gets the status, error type and a message naming the problem.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { AUTH, body, KEY, post, read, startHarness, testConfig, type Harness } from './stubs.ts';

let h: Harness;
beforeAll(() => {
  h = startHarness();
});
afterAll(() => h.stop());

const user = (content: unknown) => ({ role: 'user', content });
const assistant = (content: unknown) => ({ role: 'assistant', content });
const withMessages = (...messages: unknown[]) => body({ messages });

interface Case {
  name: string;
  payload: unknown;
  status?: number;
  type?: string;
  message: string | RegExp;
  headers?: Record<string, string>;
}

const CASES: Case[] = [
  { name: 'malformed JSON', payload: '{"model": "x",', message: /^request body is not valid JSON: / },
  { name: 'a JSON array', payload: '[1,2]', message: 'request body must be a JSON object, got an array' },
  { name: 'a JSON string', payload: '"hello"', message: /must be a JSON object/ },
  { name: 'an empty body', payload: '', message: /request body is empty/ },
  { name: 'missing model', payload: { max_tokens: 1, messages: [user('hi')] }, message: 'model: field required' },
  { name: 'missing messages', payload: { model: 'm', max_tokens: 1 }, message: 'messages: field required' },
  { name: 'missing max_tokens', payload: { model: 'm', messages: [user('hi')] }, message: 'max_tokens: field required' },
  { name: 'model is a number', payload: body({ model: 42 }), message: 'model: expected a string, got 42' },
  { name: 'empty model', payload: body({ model: '' }), message: 'model: must not be empty' },
  // 0 is a cache pre-warm (served locally, server/messages.test.ts); below it Anthropic refuses.
  { name: 'negative max_tokens', payload: body({ max_tokens: -5 }), message: 'max_tokens: must be >= 0, got -5' },
  { name: 'fractional max_tokens', payload: body({ max_tokens: 1.5 }), message: 'max_tokens: expected an integer, got 1.5' },
  { name: 'max_tokens as a string', payload: body({ max_tokens: '100' }), message: 'max_tokens: expected an integer, got "100"' },
  { name: 'max_tokens overflowing to Infinity', payload: '{"model":"m","max_tokens":1e400,"messages":[{"role":"user","content":"x"}]}', message: /^max_tokens: expected an integer/ },
  { name: 'absurdly large max_tokens', payload: body({ max_tokens: 1e20 }), message: /^max_tokens: must be <= 2147483647/ },
  { name: 'messages is an object', payload: body({ messages: { role: 'user' } }), message: 'messages: expected an array, got an object' },
  { name: 'empty messages', payload: body({ messages: [] }), message: 'messages: at least one message is required' },
  { name: 'a message that is a string', payload: withMessages('hi'), message: 'messages.0: expected an object, got "hi"' },
  { name: 'unknown role', payload: withMessages({ role: 'bot', content: 'x' }), message: 'messages.0.role: unknown role "bot" (expected "user", "assistant" or "system")' },
  {
    name: 'unknown role beyond ASCII, quoted as the client wrote it',
    payload: withMessages({ role: 'robôt — 🤖', content: 'x' }),
    message: 'messages.0.role: unknown role "robôt — 🤖" (expected "user", "assistant" or "system")',
  },
  { name: 'missing content', payload: withMessages({ role: 'user' }), message: 'messages.0.content: field required' },
  { name: 'content is a number', payload: withMessages(user(5)), message: 'messages.0.content: expected a string or an array, got 5' },
  {
    name: 'unknown block type',
    payload: withMessages(user('a'), assistant('b'), user([{ type: 'foo' }])),
    message: 'messages.2.content.0.type: unknown block type "foo"',
  },
  { name: 'block without type', payload: withMessages(user([{ text: 'x' }])), message: 'messages.0.content.0.type: field required' },
  { name: 'text block with a numeric text', payload: withMessages(user([{ type: 'text', text: 7 }])), message: 'messages.0.content.0.text: expected a string, got 7' },
  {
    name: 'image without data',
    payload: withMessages(user([{ type: 'image', source: { type: 'base64', media_type: 'image/png' } }])),
    message: 'messages.0.content.0.source.data: field required',
  },
  {
    name: 'tool_use with an empty id',
    payload: withMessages(user('a'), assistant([{ type: 'tool_use', id: '', name: 'Bash', input: {} }])),
    message: 'messages.1.content.0.id: must not be empty',
  },
  {
    name: 'tool_result without a matching tool_use',
    payload: withMessages(
      user('a'),
      assistant([{ type: 'tool_use', id: 'toolu_1', name: 'Bash', input: {} }]),
      user([{ type: 'tool_result', tool_use_id: 'toolu_2', content: 'ok' }]),
    ),
    message: /^messages\.2\.content\.0\.tool_use_id: tool_result "toolu_2" has no matching tool_use in the previous assistant message/,
  },
  {
    name: 'tool_result with no assistant turn before it',
    payload: withMessages(user([{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'ok' }])),
    message: /^messages\.0\.content\.0\.tool_use_id: tool_result "toolu_1" has no preceding assistant message/,
  },
  {
    name: 'tool_result answering a tool_use of an older turn',
    payload: withMessages(
      user('a'),
      assistant([{ type: 'tool_use', id: 'toolu_1', name: 'Bash', input: {} }]),
      user([{ type: 'tool_result', tool_use_id: 'toolu_1' }]),
      assistant('done'),
      user([{ type: 'tool_result', tool_use_id: 'toolu_1' }]),
    ),
    message: /^messages\.4\.content\.0\.tool_use_id/,
  },
  { name: 'system is a number', payload: body({ system: 3 }), message: 'system: expected a string or an array, got 3' },
  { name: 'system block of another type', payload: body({ system: [{ type: 'image', text: 'x' }] }), message: 'system.0.type: expected "text", got "image"' },
  { name: 'tool without a name', payload: body({ tools: [{ description: 'x' }] }), message: 'tools.0.name: field required' },
  { name: 'unknown tool_choice type', payload: body({ tool_choice: { type: 'sometimes' } }), message: 'tool_choice.type: invalid value "sometimes" (expected "auto", "any", "tool" or "none")' },
  // The API refuses it too; the proxy used to force "any" tool instead of the one the client meant.
  { name: 'tool_choice "tool" without a name', payload: body({ tool_choice: { type: 'tool' } }), message: 'tool_choice.name: field required when type is "tool"' },
  { name: 'tool_choice "tool" with an empty name', payload: body({ tool_choice: { type: 'tool', name: '' } }), message: 'tool_choice.name: field required when type is "tool"' },
  { name: 'thinking enabled without a budget', payload: body({ thinking: { type: 'enabled' } }), message: 'thinking.budget_tokens: field required' },
  { name: 'unknown thinking type', payload: body({ thinking: { type: 'deep' } }), message: 'thinking.type: unknown type "deep"' },
  { name: 'temperature as a string', payload: body({ temperature: 'hot' }), message: 'temperature: expected a number, got "hot"' },
  { name: 'stream as a string', payload: body({ stream: 'yes' }), message: 'stream: expected a boolean, got "yes"' },
  { name: 'stop_sequences with a number', payload: body({ stop_sequences: ['a', 1] }), message: 'stop_sequences.1: expected a string, got 1' },
  {
    name: 'image_config with an aspect ratio no image model draws',
    payload: body({ image_config: { aspect_ratio: '7:3' } }),
    message: 'image_config.aspect_ratio: invalid value "7:3" (expected "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9" or "21:9")',
  },
  { name: 'image_config with an unknown size', payload: body({ image_config: { image_size: 512 } }), message: 'image_config.image_size: invalid value 512 (expected "1K", "2K" or "4K")' },
  { name: 'metadata.user_id as a number', payload: body({ metadata: { user_id: 1 } }), message: 'metadata.user_id: expected a string or null, got 1' },
  {
    name: 'a text/plain content type',
    payload: body(),
    headers: { 'x-api-key': KEY, 'content-type': 'text/plain' },
    message: 'content-type must be application/json, got "text/plain"',
  },
  {
    name: 'a form content type',
    payload: 'a=b',
    headers: { 'x-api-key': KEY, 'content-type': 'application/x-www-form-urlencoded' },
    message: /^content-type must be application\/json/,
  },
  {
    name: 'non-UTF-8 bytes',
    payload: new Uint8Array([0x7b, 0x22, 0x6d, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
    message: 'request body is not valid UTF-8',
  },
];

describe('bad requests to /v1/messages', () => {
  test('the table has at least 25 cases', () => expect(CASES.length).toBeGreaterThanOrEqual(25));
  for (const c of CASES) {
    test(`${c.name} -> ${c.status ?? 400} ${c.type ?? 'invalid_request_error'}`, async () => {
      const r = await post(h, '/v1/messages', c.payload, c.headers ?? AUTH);
      expect(r.status).toBe(c.status ?? 400);
      const j = await read(r);
      expect(j.type).toBe('error');
      expect(j.error.type).toBe(c.type ?? 'invalid_request_error');
      if (typeof c.message === 'string') expect(j.error.message).toBe(c.message);
      else expect(j.error.message).toMatch(c.message);
      expect(j.request_id).toBe(r.headers.get('request-id'));
    });
  }
  test('no bad request ever reaches the gateway', () => expect(h.calls.length).toBe(0));
});

describe('message threads (server-held conversations) are refused the way the SDK falls back from', () => {
  // The SDK's tool runner sends thread:create, then only the new turn with thread:continue; on
  // thread_unsupported_request it resends the whole conversation without thread.
  for (const thread of [{ type: 'create' }, { type: 'continue', previous_message_id: 'msg_x' }]) {
    test(`thread ${thread.type} -> 400 with error.details.error_code thread_unsupported_request`, async () => {
      const before = h.calls.length;
      const r = await post(h, '/v1/messages?beta=true', body({ thread }));
      expect(r.status).toBe(400);
      const j = await read(r);
      expect(j.error).toMatchObject({ type: 'invalid_request_error', details: { error_code: 'thread_unsupported_request' } });
      expect(j.error.message).toMatch(/^thread: /);
      expect(h.calls.length).toBe(before);
    });
  }
  test('thread: null is no thread', async () => {
    expect((await post(h, '/v1/messages', body({ thread: null }))).status).toBe(200);
  });
});

describe('good requests Claude Code sends are accepted', () => {
  test('system role messages, empty text blocks, thinking echoes, cache_control and unknown fields pass', async () => {
    const r = await post(
      h,
      '/v1/messages?beta=true',
      body({
        system: [{ type: 'text', text: 'sys', cache_control: { type: 'ephemeral' } }],
        thinking: { type: 'adaptive' },
        output_config: { effort: 'high' },
        context_management: { edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] },
        metadata: { user_id: '{"device_id":"x"}' },
        messages: [
          user([{ type: 'text', text: '' }, { type: 'text', text: 'Run echo', cache_control: { type: 'ephemeral' } }]),
          { role: 'system', content: 'Available agent types' },
          assistant([
            { type: 'thinking', thinking: 'hmm', signature: '' },
            { type: 'text', text: 'I will run a command.' },
            { type: 'tool_use', id: 'toolu_1', name: 'Bash', input: { command: 'echo' } },
            { type: 'tool_use', id: 'toolu_2', name: 'Read', input: {} },
          ]),
          user([
            { type: 'tool_result', tool_use_id: 'toolu_2', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBOR' } }] },
            { tool_use_id: 'toolu_1', type: 'tool_result', content: 'hello', is_error: false, cache_control: { type: 'ephemeral' } },
          ]),
        ],
      }),
    );
    expect(r.status).toBe(200);
    await r.text();
  });
  // Anthropic merges consecutive same-role messages, so a result may answer any message of the run.
  test.each([
    ['a tool_use followed by a second assistant message', [
      user('go'),
      assistant([{ type: 'tool_use', id: 'toolu_1', name: 'Bash', input: {} }]),
      assistant([{ type: 'text', text: 'Running it.' }]),
      user([{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'ok' }]),
    ]],
    ['tool_use blocks split over two assistant messages with a system message between', [
      user('go'),
      assistant([{ type: 'tool_use', id: 'toolu_1', name: 'Bash', input: {} }]),
      { role: 'system', content: 'note' },
      assistant([{ type: 'tool_use', id: 'toolu_2', name: 'Read', input: {} }]),
      user([{ type: 'tool_result', tool_use_id: 'toolu_2', content: 'x' }]),
      user([{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'ok' }]),
    ]],
  ])('consecutive assistant messages count as one turn: %s', async (_n, messages) => {
    const r = await post(h, '/v1/messages', withMessages(...messages));
    expect(r.status).toBe(200);
    await r.text();
  });
  test('a result still cannot answer an assistant turn before the last user message', async () => {
    const r = await post(
      h,
      '/v1/messages',
      withMessages(
        user('go'),
        assistant([{ type: 'tool_use', id: 'toolu_1', name: 'Bash', input: {} }]),
        user([{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'ok' }]),
        assistant('done'),
        assistant('really'),
        user([{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'again' }]),
      ),
    );
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(/^messages\.5\.content\.0\.tool_use_id: .* \(messages\.3-4\)$/);
  });
  test('a literal U+FFFD (valid UTF-8, e.g. a tool result read from a mis-encoded file) is accepted and passed on intact', async () => {
    const before = h.calls.length;
    const text = 'caf\uFFFD \u00e9 \u2014 \u{1F600}';
    const r = await post(h, '/v1/messages', body({ messages: [user([{ type: 'text', text }])], [`k\uFFFD`]: 1 }));
    expect(r.status).toBe(200);
    await r.text();
    expect(h.calls.length).toBe(before + 1);
    // The gateway gets the text as a byte string: its UTF-8, one character per byte.
    expect((h.calls[before]!.body.messages[0]!.content as Array<{ text: string }>)[0]!.text).toBe(Buffer.from(text).toString('latin1'));
    expect(Object.hasOwn(h.calls[before]!.body, Buffer.from('k\uFFFD').toString('latin1'))).toBe(true);
  });
  test('invalid UTF-8 deep inside an otherwise good body is refused, not replaced', async () => {
    const good = new TextEncoder().encode(JSON.stringify(body({ messages: [user('AB')] })));
    const at = good.indexOf(0x41); // the "A" of "AB"
    const bad = new Uint8Array(good);
    bad[at] = 0xc3; // a lead byte followed by "B": not UTF-8
    const r = await post(h, '/v1/messages', bad);
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: { message: string } }).error.message).toBe('request body is not valid UTF-8');
  });
  test('count_tokens quotes a bad token of its text body as it is', async () => {
    const r = await post(h, '/v1/messages/count_tokens', '{"model":"m","messages": é}');
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: { message: string } }).error.message).toBe("request body is not valid JSON: JSON Parse error: Unrecognized token 'é'");
  });
  test('a missing content-type is tolerated', async () => {
    const r = await post(h, '/v1/messages', body(), { 'x-api-key': KEY });
    expect(r.status).toBe(200);
    await r.text();
  });
});

describe('body size', () => {
  test('a body over the limit is 413 request_too_large', async () => {
    const small = startHarness(testConfig({}, { bodyLimitBytes: 2000 }));
    try {
      const r = await post(small, '/v1/messages', body({ messages: [user('x'.repeat(5000))] }));
      expect(r.status).toBe(413);
      expect((await read(r)).error.type).toBe('request_too_large');
      // Chunked upload, no content-length: the bytes actually read are counted.
      const chunks = [new TextEncoder().encode('{"model":"m","pad":"'), new TextEncoder().encode('y'.repeat(3000)), new TextEncoder().encode('"}')];
      const stream = new ReadableStream<Uint8Array>({
        pull(c) {
          const next = chunks.shift();
          if (next) c.enqueue(next);
          else c.close();
        },
      });
      const r2 = await fetch(`${small.base}/v1/messages/count_tokens`, { method: 'POST', headers: AUTH, body: stream });
      expect(r2.status).toBe(413);
      expect((await read(r2)).error.type).toBe('request_too_large');
      expect(small.calls.length).toBe(0);
    } finally {
      small.stop();
    }
  });
  test('a declared content-length over 50 MB is refused before reading', async () => {
    const port = Number(new URL(h.base).port);
    const reply = await new Promise<string>((resolve, reject) => {
      let data = '';
      Bun.connect({
        hostname: '127.0.0.1',
        port,
        socket: {
          open(s) {
            s.write(
              `POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: ${KEY}\r\ncontent-type: application/json\r\ncontent-length: ${60 * 1024 * 1024}\r\n\r\n{`,
            );
          },
          data(s, d) {
            data += d.toString();
            if (data.includes('\r\n\r\n') && data.includes('}')) {
              s.end();
              resolve(data);
            }
          },
          error: (_s, e) => reject(e),
          close: () => resolve(data),
        },
      }).catch(reject);
    });
    expect(reply).toStartWith('HTTP/1.1 413');
    expect(reply).toContain('"request_too_large"');
  });
});
