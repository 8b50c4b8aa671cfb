import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSseDecoder, type SseEvent } from '../../../src/providers/zai/sse.ts';

const fixture = readFileSync(join(import.meta.dir, '../../fixtures/zai/tool-use-crlf.sse'), 'utf8');

function decodeInPieces(text: string, size: number): SseEvent[] {
  const d = createSseDecoder();
  const out: SseEvent[] = [];
  for (let i = 0; i < text.length; i += size) out.push(...d.push(text.slice(i, i + size)));
  out.push(...d.end());
  return out;
}

describe('createSseDecoder', () => {
  test('decodes named events with LF line ends', () => {
    const d = createSseDecoder();
    expect(d.push('event: ping\ndata: {"type":"ping"}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n')).toEqual([
      { event: 'ping', data: '{"type":"ping"}' },
      { event: 'message_stop', data: '{"type":"message_stop"}' },
    ]);
  });

  test('decodes the CRLF fixture the same whatever the chunk size, ignoring garbage and comments', () => {
    const whole = decodeInPieces(fixture, fixture.length);
    expect(whole.map((e) => e.event)).toEqual([
      'message_start',
      'ping',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    for (const e of whole) expect(JSON.parse(e.data).type).toBe(e.event);
    for (const size of [1, 2, 3, 7, 64, 1000]) expect(decodeInPieces(fixture, size)).toEqual(whole);
  });

  test('keeps the event name when a CRLF is split between chunks', () => {
    const d = createSseDecoder();
    const out = [...d.push('event: ping\r'), ...d.push('\ndata: {"type":"ping"}\r'), ...d.push('\n\r'), ...d.push('\n')];
    expect(out).toEqual([{ event: 'ping', data: '{"type":"ping"}' }]);
  });

  test('accepts bare CR line ends', () => {
    expect(createSseDecoder().push('event: a\rdata: 1\r\r')).toEqual([{ event: 'a', data: '1' }]);
  });

  test('joins multi-line data with newlines', () => {
    expect(createSseDecoder().push('data: a\ndata: b\n\n')).toEqual([{ event: null, data: 'a\nb' }]);
  });

  test('reports data-only events without an event name', () => {
    expect(createSseDecoder().push('data: {"type":"ping"}\n\n')).toEqual([{ event: null, data: '{"type":"ping"}' }]);
  });

  test('skips events without data and lines without a colon', () => {
    expect(createSseDecoder().push('event: lonely\n\nnot sse at all\n\n: comment\n\n')).toEqual([]);
  });

  test('flushes a last event that had no blank line after it at end()', () => {
    const d = createSseDecoder();
    expect(d.push('event: message_stop\ndata: {"type":"message_stop"}')).toEqual([]);
    expect(d.end()).toEqual([{ event: 'message_stop', data: '{"type":"message_stop"}' }]);
  });
});
