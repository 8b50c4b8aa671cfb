import { describe, expect, test } from 'bun:test';
import { blockDelta, blockStart, blockStop, messageDelta, messageStart, MESSAGE_STOP, type AnthropicEvent } from '../../src/anthropic/events.ts';
import { createJsonTextUnfence, unfenceJson } from '../../src/anthropic/structured-output.ts';

const usage = { input_tokens: 1, output_tokens: 0 };

/** A streamed answer whose one text block arrives in `pieces`, after a thinking block. */
function answer(pieces: string[]): AnthropicEvent[] {
  return [
    messageStart('m', usage),
    blockStart(0, { type: 'thinking', thinking: '', signature: '' }),
    blockDelta(0, { type: 'thinking_delta', thinking: 'a title' }),
    blockStop(0),
    blockStart(1, { type: 'text', text: '' }),
    ...pieces.map((text) => blockDelta(1, { type: 'text_delta', text })),
    blockStop(1),
    messageDelta('end_turn', { output_tokens: 3 }),
    MESSAGE_STOP,
  ];
}

function textOf(events: AnthropicEvent[]): string {
  return events.map((e) => (e.type === 'content_block_delta' && e.delta.type === 'text_delta' ? (e.delta as { text: string }).text : '')).join('');
}

describe('unfenceJson', () => {
  test('removes a code fence around the whole answer, with or without a language', () => {
    expect(unfenceJson('```json\n{"title":"Fix login"}\n```')).toBe('{"title":"Fix login"}');
    expect(unfenceJson('\n```\n{"title":"x"}\n```\n')).toBe('{"title":"x"}');
  });

  test('leaves plain JSON, prose and text that only contains a fence as they are', () => {
    for (const t of ['{"title":"x"}', 'Here it is:\n```json\n{}\n```', '```json\n\n```']) expect(unfenceJson(t)).toBe(t);
  });
});

// Claude Code parses a session title answer as JSON; an upstream only asked for JSON in words
// sometimes wraps it in a Markdown fence, and the title is lost.
describe('createJsonTextUnfence', () => {
  test('a fenced JSON answer split over deltas reaches the client as plain JSON, in a valid sequence', () => {
    const u = createJsonTextUnfence();
    const src = answer(['```js', 'on\n{"title":', '"Fix login"}\n`', '``']);
    const out = src.flatMap((e) => u.feed([e]));
    expect(textOf(out)).toBe('{"title":"Fix login"}');
    expect(out.map((e) => e.type)).toEqual([
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(out.filter((e) => e.type === 'content_block_delta').map((e) => (e as { index: number }).index)).toEqual([0, 1]);
  });

  test('an unfenced answer passes unchanged, batched or not', () => {
    const src = answer(['{"title":', '"x"}']);
    expect(textOf(createJsonTextUnfence().feed(src))).toBe('{"title":"x"}');
  });

  test('text in the block shell is kept once, not twice', () => {
    const out = createJsonTextUnfence().feed([blockStart(0, { type: 'text', text: '```\n{"a":1}' }), blockDelta(0, { type: 'text_delta', text: '\n```' }), blockStop(0)]);
    expect(textOf(out)).toBe('{"a":1}');
    expect((out[0] as { content_block: { text: string } }).content_block.text).toBe('');
  });
});
