import { describe, expect, test } from 'bun:test';
import type { AnthropicEvent } from '../../../src/anthropic/events.ts';
import { UpstreamError } from '../../../src/providers/provider.ts';
import { createStreamRepair, messageToEvents } from '../../../src/providers/zai/stream.ts';
import { assertValidSequence } from './invariants.ts';

type Raw = Record<string, unknown>;
const start = (usage?: unknown): Raw => ({
  type: 'message_start',
  message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'glm-4.6', content: [], stop_reason: null, stop_sequence: null, ...(usage === undefined ? {} : { usage }) },
});
const bStart = (index: number, content_block: Raw): Raw => ({ type: 'content_block_start', index, content_block });
const bDelta = (index: number, delta: Raw): Raw => ({ type: 'content_block_delta', index, delta });
const bStop = (index: number): Raw => ({ type: 'content_block_stop', index });
const mDelta = (stop_reason: string | null, usage?: unknown): Raw => ({ type: 'message_delta', delta: { stop_reason, stop_sequence: null }, ...(usage === undefined ? {} : { usage }) });
const STOP: Raw = { type: 'message_stop' };

function run(events: Raw[], finish = true, model = 'claude-opus-4-6'): AnthropicEvent[] {
  const r = createStreamRepair(model);
  const out: AnthropicEvent[] = [];
  for (const e of events) out.push(...r.accept(e));
  if (finish) out.push(...r.finish());
  return out;
}

function caught(fn: () => unknown): UpstreamError {
  try {
    fn();
  } catch (e) {
    if (e instanceof UpstreamError) return e;
    throw e;
  }
  throw new Error('expected an UpstreamError');
}

describe('createStreamRepair', () => {
  test('passes a well-formed stream through, rewriting the model and dropping pings', () => {
    const out = run([
      start({ input_tokens: 10, output_tokens: 1 }),
      { type: 'ping' },
      bStart(0, { type: 'text', text: '' }),
      bDelta(0, { type: 'text_delta', text: 'hi' }),
      bStop(0),
      mDelta('end_turn', { output_tokens: 3 }),
      STOP,
    ]);
    assertValidSequence(out);
    expect(out.map((e) => e.type)).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    expect((out[0] as { message: { model: string; usage: unknown } }).message.model).toBe('claude-opus-4-6');
    expect((out[0] as { message: { usage: unknown } }).message.usage).toEqual({ input_tokens: 10, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
  });

  test('adds the usage objects Z.AI left out', () => {
    const out = run([start(), bStart(0, { type: 'text', text: '' }), bDelta(0, { type: 'text_delta', text: 'x' }), bStop(0), mDelta('end_turn'), STOP]);
    assertValidSequence(out);
    expect((out[0] as { message: { usage: unknown } }).message.usage).toEqual({ input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
    expect((out[4] as { usage: unknown }).usage).toEqual({ output_tokens: 0 });
  });

  // Z.AI's message_start always says 0 tokens in (zai-org/GLM-5#139); the real counts come only in
  // message_delta, where the SDK and Claude Code take them: they must reach the client there.
  test('the input and cache counts Z.AI gives only in message_delta are passed on in it', () => {
    const out = run([
      start({ input_tokens: 0, output_tokens: 0 }),
      bStart(0, { type: 'text', text: '' }),
      bDelta(0, { type: 'text_delta', text: 'x' }),
      bStop(0),
      mDelta('end_turn', { input_tokens: 14, output_tokens: 3, cache_read_input_tokens: 2048 }),
      STOP,
    ]);
    assertValidSequence(out);
    expect(out.find((e) => e.type === 'message_delta')!.usage).toEqual({ input_tokens: 14, output_tokens: 3, cache_read_input_tokens: 2048 });
  });

  test('removes empty text blocks and renumbers the blocks after them', () => {
    const out = run([
      start({}),
      bStart(0, { type: 'text', text: '' }),
      bDelta(0, { type: 'text_delta', text: '' }),
      bStop(0),
      bStart(1, { type: 'tool_use', id: 't', name: 'Bash', input: {} }),
      bDelta(1, { type: 'input_json_delta', partial_json: '{"a":1}' }),
      bStop(1),
      mDelta('tool_use', { output_tokens: 2 }),
      STOP,
    ]);
    assertValidSequence(out);
    expect(out[1]).toEqual({ type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 't', name: 'Bash', input: {} } });
  });

  test('repairs tool input streamed as an array into an object', () => {
    const out = run([
      start({}),
      bStart(0, { type: 'tool_use', id: 't', name: 'Bash', input: {} }),
      bDelta(0, { type: 'input_json_delta', partial_json: '' }),
      bDelta(0, { type: 'input_json_delta', partial_json: '[{"command":' }),
      bDelta(0, { type: 'input_json_delta', partial_json: '"ls"}]' }),
      bStop(0),
      mDelta('tool_use', { output_tokens: 2 }),
      STOP,
    ]);
    assertValidSequence(out);
    const json = out.filter((e) => e.type === 'content_block_delta').map((e) => (e as { delta: { partial_json: string } }).delta.partial_json).join('');
    expect(JSON.parse(json)).toEqual({ command: 'ls' });
  });

  test('streams object tool input without waiting for the block to end (a call after other content)', () => {
    const r = createStreamRepair('m');
    r.accept(start({}));
    r.accept(bStart(0, { type: 'text', text: '' }));
    r.accept(bDelta(0, { type: 'text_delta', text: 'Running it.' }));
    r.accept(bStart(1, { type: 'tool_use', id: 't', name: 'Bash', input: {} }));
    expect(r.accept(bDelta(1, { type: 'input_json_delta', partial_json: ' ' }))).toEqual([]);
    expect(r.accept(bDelta(1, { type: 'input_json_delta', partial_json: '{"com' }))).toEqual([
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: ' {"com' } },
    ]);
    expect(r.accept(bDelta(1, { type: 'input_json_delta', partial_json: 'mand":"ls"}' }))).toHaveLength(1);
  });

  // Repaired as it comes, like any other block: holding it until it is whole (so a cut inside it fails
  // over) is the gateway's (src/gateway/head-hold.ts, test/gateway/head-hold.test.ts).
  describe('a tool call that opens the answer', () => {
    const call = (id = 't') => bStart(0, { type: 'tool_use', id, name: 'Bash', input: {} });
    const piece = (json: string) => bDelta(0, { type: 'input_json_delta', partial_json: json });

    test('comes out as it comes: its start at once, its input piece by piece, then its stop', () => {
      const r = createStreamRepair('m');
      expect(r.accept(start({})).map((e) => e.type)).toEqual(['message_start']);
      expect(r.accept(call()).map((e) => e.type)).toEqual(['content_block_start']);
      expect(jsonOf(r.accept(piece('{"command":')))).toBe('{"command":');
      expect(jsonOf(r.accept(piece('"ls"}')))).toBe('"ls"}');
      expect(r.accept(bStop(0)).map((e) => e.type)).toEqual(['content_block_stop']);
    });

    test('left open, it is closed before message_delta', () => {
      const r = createStreamRepair('m');
      r.accept(start({}));
      r.accept(call());
      r.accept(piece('{"command":"ls"}'));
      const out = [...r.accept(mDelta('tool_use', { output_tokens: 3 })), ...r.accept(STOP)];
      expect(out.map((e) => e.type)).toEqual(['content_block_stop', 'message_delta', 'message_stop']);
    });

    test('a stream cut inside it fails (transient) after what came of it, so the gateway, holding it, can fail over', () => {
      const r = createStreamRepair('m');
      const out = [...r.accept(start({})), ...r.accept(call()), ...r.accept(piece('{"command":"l'))];
      expect(out.map((e) => e.type)).toEqual(['message_start', 'content_block_start', 'content_block_delta']);
      expect(caught(() => r.finish()).kind).toBe('transient');
    });
  });

  const jsonOf = (out: AnthropicEvent[]) =>
    out.filter((e) => e.type === 'content_block_delta').map((e) => (e as { delta: { partial_json: string } }).delta.partial_json).join('');

  test('repairs a non-object input given in content_block_start', () => {
    const out = run([start({}), bStart(0, { type: 'tool_use', id: 't', name: 'X', input: [{ a: 1 }] }), bStop(0), mDelta('tool_use', { output_tokens: 1 }), STOP]);
    expect((out[1] as { content_block: unknown }).content_block).toEqual({ type: 'tool_use', id: 't', name: 'X', input: {} });
    expect(JSON.parse(jsonOf(out))).toEqual({ a: 1 });
  });

  // Claude Code rebuilds tool input from the deltas alone (its start shell's input is reset): input
  // given whole in content_block_start, with no delta, would reach the tool as {}.
  test('tool input given whole in content_block_start is sent as a delta, the shell input empty', () => {
    const out = run([start({}), bStart(0, { type: 'tool_use', id: 't', name: 'Bash', input: { command: 'ls' } }), bStop(0), mDelta('tool_use', { output_tokens: 1 }), STOP]);
    assertValidSequence(out);
    expect((out[1] as { content_block: unknown }).content_block).toEqual({ type: 'tool_use', id: 't', name: 'Bash', input: {} });
    expect(JSON.parse(jsonOf(out))).toEqual({ command: 'ls' });
  });

  // The same for text and thinking: Claude Code resets text, thinking and signature at the start.
  test('text and thinking given in content_block_start are sent as deltas, the shells empty', () => {
    const out = run([
      start({}),
      bStart(0, { type: 'thinking', thinking: 'hm', signature: 'sig' }),
      bStop(0),
      bStart(1, { type: 'text', text: 'Hello' }),
      bDelta(1, { type: 'text_delta', text: ' world' }),
      bStop(1),
      mDelta('end_turn', { output_tokens: 1 }),
      STOP,
    ]);
    assertValidSequence(out);
    expect(out.slice(1, -2)).toEqual([
      { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'hm' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'sig' } },
      { type: 'content_block_stop', index: 0 },
      { type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } },
      { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'Hello' } },
      { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: ' world' } },
      { type: 'content_block_stop', index: 1 },
    ]);
  });

  test('when deltas follow a start that had input, the deltas alone make the input (no duplicate)', () => {
    const out = run([
      start({}),
      bStart(0, { type: 'tool_use', id: 't', name: 'Bash', input: { command: 'ls' } }),
      bDelta(0, { type: 'input_json_delta', partial_json: '{"command":"ls"}' }),
      bStop(0),
      mDelta('tool_use', { output_tokens: 1 }),
      STOP,
    ]);
    expect(JSON.parse(jsonOf(out))).toEqual({ command: 'ls' });
  });

  // Claude Code answers a call by its id; an id-less tool_use comes back next turn as history the
  // proxy's own validation refuses (400), ending the session.
  test('a tool call Z.AI sent without an id gets one, so its tool_result can answer it', () => {
    const out = run([
      start({}),
      bStart(0, { type: 'tool_use', name: 'Bash', input: {} }),
      bDelta(0, { type: 'input_json_delta', partial_json: '{"command":"ls"}' }),
      bStop(0),
      bStart(1, { type: 'tool_use', id: '', name: 'Read', input: {} }),
      bStop(1),
      mDelta('tool_use', { output_tokens: 1 }),
      STOP,
    ]);
    assertValidSequence(out);
    const ids = out.flatMap((e) => (e.type === 'content_block_start' ? [(e.content_block as { id?: unknown }).id] : []));
    expect(ids).toHaveLength(2);
    for (const id of ids) expect(id).toMatch(/^toolu_[A-Za-z0-9_-]+$/);
    expect(ids[0]).not.toBe(ids[1]);
  });

  test('closes a block left open when the next one starts', () => {
    const out = run([
      start({}),
      bStart(0, { type: 'thinking', thinking: '', signature: '' }),
      bDelta(0, { type: 'thinking_delta', thinking: 'hm' }),
      bStart(1, { type: 'text', text: '' }),
      bDelta(1, { type: 'text_delta', text: 'ok' }),
      bStop(1),
      mDelta('end_turn', { output_tokens: 1 }),
      STOP,
    ]);
    assertValidSequence(out);
  });

  test('maps OpenAI-style and missing stop reasons', () => {
    const out = run([start({}), bStart(0, { type: 'text', text: '' }), bDelta(0, { type: 'text_delta', text: 'x' }), bStop(0), mDelta('length', { output_tokens: 1 }), STOP]);
    expect((out[4] as { delta: { stop_reason: string } }).delta.stop_reason).toBe('max_tokens');
    const tool = run([start({}), bStart(0, { type: 'tool_use', id: 't', name: 'X', input: {} }), bStop(0), mDelta(null, { output_tokens: 1 }), STOP]);
    expect((tool[3] as { delta: { stop_reason: string } }).delta.stop_reason).toBe('tool_use');
  });

  // SDK tool runners loop only on stop_reason tool_use; a turn that called a tool but says it ended
  // (end_turn, or OpenAI's stop) would leave the call unanswered. max_tokens stays: the input was cut.
  test('a turn with a tool call that says end_turn or stop reports tool_use', () => {
    for (const said of ['end_turn', 'stop']) {
      const out = run([start({}), bStart(0, { type: 'tool_use', id: 't', name: 'X', input: {} }), bStop(0), mDelta(said, { output_tokens: 1 }), STOP]);
      expect((out[3] as { delta: { stop_reason: string } }).delta.stop_reason).toBe('tool_use');
    }
    const cut = run([start({}), bStart(0, { type: 'tool_use', id: 't', name: 'X', input: {} }), bStop(0), mDelta('max_tokens', { output_tokens: 1 }), STOP]);
    expect((cut[3] as { delta: { stop_reason: string } }).delta.stop_reason).toBe('max_tokens');
  });

  // Claude Code throws ("Content block is not a text block", …) on a delta of another block's kind.
  test('drops a delta that does not fit the open block, keeping the ones that do', () => {
    const out = run([
      start({}),
      bStart(0, { type: 'thinking', thinking: '', signature: '' }),
      bDelta(0, { type: 'thinking_delta', thinking: 'hmm' }),
      bDelta(0, { type: 'text_delta', text: 'stray' }),
      bDelta(0, { type: 'signature_delta', signature: 'sig' }),
      bStop(0),
      bStart(1, { type: 'text', text: '' }),
      bDelta(1, { type: 'text_delta', text: 'hi' }),
      bDelta(1, { type: 'signature_delta', signature: 'x' }),
      bDelta(1, { type: 'input_json_delta', partial_json: '{}' }),
      bStop(1),
      bStart(2, { type: 'tool_use', id: 't', name: 'X', input: {} }),
      bDelta(2, { type: 'text_delta', text: 'no' }),
      bDelta(2, { type: 'input_json_delta', partial_json: '{"a":1}' }),
      bStop(2),
      mDelta('tool_use', { output_tokens: 1 }),
      STOP,
    ]);
    assertValidSequence(out);
    const deltas = out.filter((e) => e.type === 'content_block_delta').map((e) => [(e as { index: number }).index, (e as { delta: { type: string } }).delta.type]);
    expect(deltas).toEqual([[0, 'thinking_delta'], [0, 'signature_delta'], [1, 'text_delta'], [2, 'input_json_delta']]);
  });

  // GLM's finish reason for an inference failure: the answer was cut, not finished.
  test('a network_error stop reason is a transient failure, not a clean end_turn', () => {
    const r = createStreamRepair('m');
    r.accept(start({}));
    r.accept(bStart(0, { type: 'text', text: '' }));
    r.accept(bDelta(0, { type: 'text_delta', text: 'partial' }));
    const e = caught(() => r.accept(mDelta('network_error', { output_tokens: 1 })));
    expect(e.kind).toBe('transient');
    expect(e.message).toContain('network_error');
  });

  test('adds a message_delta when Z.AI stops without one', () => {
    const out = run([start({}), bStart(0, { type: 'text', text: '' }), bDelta(0, { type: 'text_delta', text: 'x' }), bStop(0), STOP]);
    assertValidSequence(out);
  });

  test('synthesises message_stop when the stream ends cleanly after message_delta', () => {
    const out = run([start({}), bStart(0, { type: 'text', text: '' }), bDelta(0, { type: 'text_delta', text: 'x' }), bStop(0), mDelta('end_turn', { output_tokens: 1 })]);
    assertValidSequence(out);
  });

  test('a stream that ends mid-content is an early end, not a success', () => {
    const r = createStreamRepair('m');
    r.accept(start({}));
    r.accept(bStart(0, { type: 'text', text: '' }));
    r.accept(bDelta(0, { type: 'text_delta', text: 'x' }));
    const e = caught(() => r.finish());
    expect(e.kind).toBe('transient');
    expect(e.message).toContain('ended early');
  });

  test('an empty stream is a transient failure', () => {
    expect(caught(() => createStreamRepair('m').finish()).kind).toBe('transient');
  });

  test('content before message_start is refused', () => {
    expect(caught(() => createStreamRepair('m').accept(bStart(0, { type: 'text', text: '' }))).kind).toBe('transient');
  });

  test('a second message_start is refused', () => {
    const r = createStreamRepair('m');
    r.accept(start({}));
    expect(caught(() => r.accept(start({}))).kind).toBe('transient');
  });

  test('ignores deltas for blocks that were never started and events after message_stop', () => {
    const out = run([start({}), bDelta(5, { type: 'text_delta', text: 'stray' }), bStart(0, { type: 'text', text: '' }), bDelta(0, { type: 'text_delta', text: 'x' }), bStop(0), mDelta('end_turn', { output_tokens: 1 }), STOP, start({})]);
    assertValidSequence(out);
    expect(out).toHaveLength(6);
  });
});

describe('messageToEvents', () => {
  test('a complete Message becomes a valid event sequence', () => {
    const msg = {
      id: 'msg_x',
      type: 'message',
      role: 'assistant',
      model: 'glm-4.6',
      content: [
        { type: 'thinking', thinking: 't', signature: 's' },
        { type: 'text', text: 'hello' },
        { type: 'tool_use', id: 'toolu_1', name: 'Bash', input: { command: 'ls' } },
      ],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: { input_tokens: 5, output_tokens: 7 },
    };
    const out = run(messageToEvents(msg), true, 'glm-4.6');
    assertValidSequence(out);
    expect(out.filter((e) => e.type === 'content_block_start')).toHaveLength(3);
  });
});

describe('disable_parallel_tool_use', () => {
  const twoCalls = [
    start({ input_tokens: 5 }),
    bStart(0, { type: 'text', text: '' }),
    bDelta(0, { type: 'text_delta', text: 'Running both.' }),
    bStop(0),
    bStart(1, { type: 'tool_use', id: 'toolu_a', name: 'Bash', input: {} }),
    bDelta(1, { type: 'input_json_delta', partial_json: '{"command":"ls"}' }),
    bStop(1),
    bStart(2, { type: 'tool_use', id: 'toolu_b', name: 'Bash', input: {} }),
    bDelta(2, { type: 'input_json_delta', partial_json: '{"command":"pwd"}' }),
    bStop(2),
    bStart(3, { type: 'text', text: '' }),
    bDelta(3, { type: 'text_delta', text: 'Done.' }),
    bStop(3),
    mDelta('tool_use', { output_tokens: 9 }),
    STOP,
  ];
  const starts = (out: AnthropicEvent[]) => out.flatMap((e) => (e.type === 'content_block_start' ? [[e.index, (e.content_block as Raw).id ?? e.content_block.type]] : []));

  test('set: only the first call is passed on, and the blocks after it keep contiguous indexes', () => {
    const r = createStreamRepair('glm-4.6', { singleToolCall: true });
    const out = twoCalls.flatMap((e) => r.accept(e));
    assertValidSequence(out);
    expect(starts(out)).toEqual([
      [0, 'text'],
      [1, 'toolu_a'],
      [2, 'text'],
    ]);
    expect(JSON.stringify(out)).not.toContain('pwd');
  });

  test('unset: GLM parallel calls are all passed on', () => {
    const out = run(twoCalls, false);
    expect(starts(out).map(([, id]) => id)).toEqual(['text', 'toolu_a', 'toolu_b', 'text']);
  });
});
