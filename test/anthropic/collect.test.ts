import { describe, expect, test } from 'bun:test';
import { collectMessage, emptyUsage, errorTypeOf, trackUsage } from '../../src/anthropic/collect.ts';
import { ApiError } from '../../src/anthropic/errors.ts';
import {
  blockDelta,
  blockStart,
  blockStop,
  MESSAGE_STOP,
  messageDelta,
  messageStart,
  PING,
  type AnthropicEvent,
} from '../../src/anthropic/events.ts';

async function* from(events: AnthropicEvent[], thenThrow?: Error): AsyncGenerator<AnthropicEvent> {
  for (const e of events) yield e;
  if (thenThrow) throw thenThrow;
}

const start = messageStart('claude-x', { input_tokens: 50, output_tokens: 1, cache_read_input_tokens: 4 }, 'msg_1');

describe('collectMessage', () => {
  test('follows the SDK accumulator: text appends, thinking appends, signature replaces, tool input parsed at stop', async () => {
    const m = await collectMessage(
      from([
        start,
        PING,
        blockStart(0, { type: 'thinking', thinking: '', signature: '' }),
        blockDelta(0, { type: 'thinking_delta', thinking: 'a' }),
        blockDelta(0, { type: 'signature_delta', signature: 'first' }),
        blockDelta(0, { type: 'thinking_delta', thinking: 'b' }),
        blockDelta(0, { type: 'signature_delta', signature: 'second' }),
        blockStop(0),
        blockStart(1, { type: 'text', text: '' }),
        blockDelta(1, { type: 'text_delta', text: 'Hel' }),
        blockDelta(1, { type: 'text_delta', text: 'lo' }),
        blockStop(1),
        blockStart(2, { type: 'tool_use', id: 'toolu_1', name: 'Bash', input: {} }),
        blockDelta(2, { type: 'input_json_delta', partial_json: '' }),
        blockDelta(2, { type: 'input_json_delta', partial_json: '{"a":[1,' }),
        blockDelta(2, { type: 'input_json_delta', partial_json: '2]}' }),
        blockStop(2),
        messageDelta('tool_use', { output_tokens: 42 }),
        MESSAGE_STOP,
      ]),
    );
    expect(m).toEqual({
      id: 'msg_1',
      type: 'message',
      role: 'assistant',
      model: 'claude-x',
      content: [
        { type: 'thinking', thinking: 'ab', signature: 'second' },
        { type: 'text', text: 'Hello' },
        { type: 'tool_use', id: 'toolu_1', name: 'Bash', input: { a: [1, 2] } },
      ],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: { input_tokens: 50, output_tokens: 42, cache_read_input_tokens: 4 },
    });
  });

  test('an empty tool input buffer becomes {}', async () => {
    const m = await collectMessage(
      from([start, blockStart(0, { type: 'tool_use', id: 't', name: 'X', input: {} }), blockStop(0), MESSAGE_STOP]),
    );
    expect((m.content[0] as any).input).toEqual({});
  });

  test('tool input is parsed even when the stream ends without content_block_stop', async () => {
    const m = await collectMessage(
      from([
        start,
        blockStart(0, { type: 'tool_use', id: 't', name: 'X', input: {} }),
        blockDelta(0, { type: 'input_json_delta', partial_json: '{"k":1}' }),
      ]),
    );
    expect((m.content[0] as any).input).toEqual({ k: 1 });
  });

  test('invalid tool input JSON is an api_error', async () => {
    const err = await collectMessage(
      from([
        start,
        blockStart(0, { type: 'tool_use', id: 't', name: 'X', input: {} }),
        blockDelta(0, { type: 'input_json_delta', partial_json: '{"k":' }),
        blockStop(0),
      ]),
    ).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.type).toBe('api_error');
    // The upstream's fault, not the proxy's: a 502 (retryable), never a 500.
    expect(err.status).toBe(502);
  });

  test('an answer with no message_start, or a stream that throws, is a 502 api_error', async () => {
    for (const events of [from([blockStart(0, { type: 'text', text: '' })]), from([start], new Error('socket hang up'))]) {
      const err = await collectMessage(events).catch((e) => e);
      expect(err).toBeInstanceOf(ApiError);
      expect(err.type).toBe('api_error');
      expect(err.status).toBe(502);
    }
  });

  test('tool input cut by max_tokens is kept as far as it is whole, as the SDK shows it streamed, not refused', async () => {
    const cut = (partial: string) =>
      collectMessage(
        from([
          start,
          blockStart(0, { type: 'tool_use', id: 't', name: 'Bash', input: {} }),
          blockDelta(0, { type: 'input_json_delta', partial_json: partial }),
          blockStop(0),
          messageDelta('max_tokens', { output_tokens: 100 }),
          MESSAGE_STOP,
        ]),
      );
    expect((await cut('{"command":"ls -la","description":"Lis')).content[0]).toMatchObject({ input: { command: 'ls -la', description: 'Lis' } });
    expect((await cut('{"command":"ls","opts":{"a":[1,2')).content[0]).toMatchObject({ input: { command: 'ls', opts: { a: [1, 2] } } });
    expect((await cut('{"command":"ls","timeo')).content[0]).toMatchObject({ input: { command: 'ls' } });
    expect((await cut('{"command":')).content[0]).toMatchObject({ input: {} });
    expect((await cut('{"s":"a\\"b\\u00')).content[0]).toMatchObject({ input: {} });
    const m = await cut('{"n":12,"flag":tr');
    expect(m.content[0]).toMatchObject({ input: { n: 12 } });
    expect(m.stop_reason).toBe('max_tokens');
  });

  test('message_delta overwrites usage totals (never adds) and keeps stop_sequence', async () => {
    const m = await collectMessage(
      from([
        start,
        messageDelta('stop_sequence', { output_tokens: 10, input_tokens: 60, cache_creation_input_tokens: 9 }, '###'),
        messageDelta('stop_sequence', { output_tokens: 12 }, '###'),
        MESSAGE_STOP,
      ]),
    );
    expect(m.usage).toEqual({ input_tokens: 60, output_tokens: 12, cache_read_input_tokens: 4, cache_creation_input_tokens: 9 });
    expect(m.stop_reason).toBe('stop_sequence');
    expect(m.stop_sequence).toBe('###');
  });

  test('a delta that does not match its block type is dropped', async () => {
    const m = await collectMessage(
      from([
        start,
        blockStart(0, { type: 'text', text: '' }),
        blockDelta(0, { type: 'thinking_delta', thinking: 'nope' }),
        blockDelta(0, { type: 'text_delta', text: 'yes' }),
        blockDelta(5, { type: 'text_delta', text: 'no block 5' }),
        blockStop(0),
        MESSAGE_STOP,
      ]),
    );
    expect(m.content).toEqual([{ type: 'text', text: 'yes' }]);
  });

  test('citations_delta appends to the text block citations', async () => {
    const m = await collectMessage(
      from([
        start,
        blockStart(0, { type: 'text', text: '', citations: null }),
        blockDelta(0, { type: 'citations_delta', citation: { cited_text: 'c1' } }),
        blockDelta(0, { type: 'citations_delta', citation: { cited_text: 'c2' } }),
        MESSAGE_STOP,
      ]),
    );
    expect((m.content[0] as any).citations).toEqual([{ cited_text: 'c1' }, { cited_text: 'c2' }]);
  });

  test('events after message_stop are not read', async () => {
    let readAfterStop = false;
    async function* gen(): AsyncGenerator<AnthropicEvent> {
      yield start;
      yield MESSAGE_STOP;
      readAfterStop = true;
      yield blockStart(0, { type: 'text', text: 'late' });
    }
    const m = await collectMessage(gen());
    expect(m.content).toEqual([]);
    expect(readAfterStop).toBe(false);
  });

  test('an error event becomes an ApiError of its type and status', async () => {
    const err = await collectMessage(
      from([start, { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }]),
    ).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.type).toBe('overloaded_error');
    expect(err.status).toBe(529);
    expect(err.message).toBe('Overloaded');
  });

  test('a thrown ApiError passes through; anything else becomes a generic api_error', async () => {
    const a = await collectMessage(from([start], new ApiError('rate_limit_error', 'limited'))).catch((e) => e);
    expect(a.type).toBe('rate_limit_error');
    const b = await collectMessage(from([start], new Error('socket secret detail'))).catch((e) => e);
    expect(b).toBeInstanceOf(ApiError);
    expect(b.type).toBe('api_error');
    expect(b.message).not.toContain('secret');
  });

  test('a stream without message_start is an api_error', async () => {
    const err = await collectMessage(from([PING])).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.message).toContain('without sending a message');
  });

  test('a second message_start before message_stop is an api_error', async () => {
    const err = await collectMessage(from([start, start])).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.message).toContain('message_start');
  });

  test('the message_start snapshot is not mutated', async () => {
    const s = messageStart('m', { input_tokens: 1, output_tokens: 1 });
    await collectMessage(from([s, blockStart(0, { type: 'text', text: '' }), messageDelta('end_turn', { output_tokens: 9 }), MESSAGE_STOP]));
    expect(s.message.content).toEqual([]);
    expect(s.message.usage.output_tokens).toBe(1);
  });
});

describe('trackUsage', () => {
  test('message_start sets, message_delta overwrites present fields', () => {
    const u = emptyUsage();
    trackUsage(u, messageStart('m', { input_tokens: 10, output_tokens: 1, cache_read_input_tokens: 5, cache_creation_input_tokens: 2 }));
    trackUsage(u, blockStart(0, { type: 'text', text: '' }));
    trackUsage(u, messageDelta('end_turn', { output_tokens: 20 }));
    expect(u).toEqual({ inputTokens: 10, outputTokens: 20, cacheReadTokens: 5, cacheCreationTokens: 2 });
    trackUsage(u, messageDelta('end_turn', { output_tokens: 25, input_tokens: 11 }));
    expect(u).toEqual({ inputTokens: 11, outputTokens: 25, cacheReadTokens: 5, cacheCreationTokens: 2 });
  });
});

describe('errorTypeOf', () => {
  test('keeps known Anthropic types and maps others to api_error', () => {
    expect(errorTypeOf('overloaded_error')).toBe('overloaded_error');
    expect(errorTypeOf('weird')).toBe('api_error');
    expect(errorTypeOf(undefined)).toBe('api_error');
  });
});
