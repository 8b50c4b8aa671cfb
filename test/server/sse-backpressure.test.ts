// The SSE writer waits for a client that stops reading (nothing piles up in memory), and a client
// that leaves while stalled still ends the stream and closes the upstream iterator.
import { afterAll, expect, test } from 'bun:test';
import { connect } from 'node:net';
import type { AnthropicEvent } from '../../src/anthropic/events.ts';
import { emptyUsage } from '../../src/anthropic/collect.ts';
import { sseResponse, type StreamOutcome } from '../../src/server/sse.ts';

const BIG = 'x'.repeat(64 * 1024);
let produced = 0;
let upstreamClosed = false;
let outcome: StreamOutcome | null = null;

async function* events(): AsyncGenerator<AnthropicEvent> {
  try {
    for (let i = 0; i < 5000; i++) {
      produced++;
      yield { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: BIG } } as AnthropicEvent;
    }
  } finally {
    upstreamClosed = true;
  }
}

const server = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  fetch(req) {
    const abort = new AbortController();
    req.signal.addEventListener('abort', () => abort.abort(), { once: true });
    return sseResponse(events(), { pingIntervalMs: 15_000, headers: {}, abort, usage: emptyUsage(), onEnd: (o) => (outcome = o) });
  },
});
afterAll(() => server.stop(true));

test('a client that stops reading holds the stream back; leaving then ends it and closes the upstream', async () => {
  const client = connect(server.port!, '127.0.0.1', () => {
    client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    client.pause(); // reads nothing from here on
  });
  await Bun.sleep(400);
  // 5 000 events of 64 KB are 320 MB; only what fits in the socket buffers may have been taken.
  expect(produced).toBeGreaterThan(0);
  expect(produced).toBeLessThan(500);
  expect(outcome).toBeNull();
  client.destroy();
  for (let i = 0; i < 50 && !upstreamClosed; i++) await Bun.sleep(20);
  expect(outcome).toEqual({ errorType: null, clientClosed: true, began: true });
  expect(upstreamClosed).toBe(true);
});
