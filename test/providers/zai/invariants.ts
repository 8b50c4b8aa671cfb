// The stream invariants of protocol §2.8 (what the SDK accumulator and Claude Code rely on),
// checked on a finished list of events. Shared by the Z.AI stream and provider tests.
import { expect } from 'bun:test';
import type { AnthropicEvent } from '../../../src/anthropic/events.ts';

/** The §2.8 invariants, checked on a finished event list. */
export function assertValidSequence(events: AnthropicEvent[]): void {
  expect(events[0]?.type).toBe('message_start');
  const ms = events[0] as Extract<AnthropicEvent, { type: 'message_start' }>;
  expect(ms.message.usage.input_tokens).toBeNumber();
  expect(ms.message.usage.output_tokens).toBeNumber();
  expect(ms.message.content).toEqual([]);
  expect(events[events.length - 1]?.type).toBe('message_stop');
  let next = 0;
  let open: number | null = null;
  let hasText = false;
  let sawDelta = false;
  for (const e of events.slice(1, -1)) {
    expect(e.type).not.toBe('message_start');
    if (e.type === 'content_block_start') {
      expect(open).toBeNull();
      expect(e.index).toBe(next++);
      open = e.index;
      hasText = e.content_block.type !== 'text';
    } else if (e.type === 'content_block_delta') {
      expect(e.index).toBe(open!);
      if (e.delta.type === 'text_delta' && (e.delta as { text: string }).text) hasText = true;
    } else if (e.type === 'content_block_stop') {
      expect(e.index).toBe(open!);
      expect(hasText).toBe(true); // no empty text blocks
      open = null;
    } else if (e.type === 'message_delta') {
      expect(open).toBeNull();
      expect(e.usage.output_tokens).toBeNumber();
      expect(e.delta.stop_reason).not.toBeNull();
      sawDelta = true;
    }
  }
  expect(open).toBeNull();
  expect(sawDelta).toBe(true);
}

