// sseResponse on its own: how a stream ends, whatever the report of its end does.
import { expect, test } from 'bun:test';
import { emptyUsage } from '../../src/anthropic/collect.ts';
import { blockDelta, blockStart, type AnthropicEvent } from '../../src/anthropic/events.ts';
import { ApiError } from '../../src/anthropic/errors.ts';
import { log } from '../../src/log.ts';
import { sseResponse, type StreamOutcome } from '../../src/server/sse.ts';
import { textEvents } from './stubs.ts';
import { listenerSpy } from '../fixtures/listener-spy.ts';

async function* from(events: AnthropicEvent[], thenThrow?: Error): AsyncGenerator<AnthropicEvent> {
  for (const e of events) yield e;
  if (thenThrow) throw thenThrow;
}

test('a report of the end that throws still closes the response, however the stream ended', async () => {
  const saved = [...log.options.reporters];
  log.setReporters([{ log: () => {} }]);
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch(req) {
      const evs = textEvents();
      const source = req.url.endsWith('/fail') ? from(evs.slice(0, 2), new Error('boom')) : from(evs);
      return sseResponse(source, {
        pingIntervalMs: 15_000,
        headers: {},
        abort: new AbortController(),
        usage: emptyUsage(),
        onEnd: () => {
          throw new Error('the report failed');
        },
      });
    },
  });
  try {
    for (const path of ['/ok', '/fail']) {
      const text = await Promise.race([
        fetch(`http://127.0.0.1:${server.port}${path}`).then((r) => r.text()),
        Bun.sleep(2000).then(() => 'still open after 2 s'),
      ]);
      expect(text).toContain(path === '/ok' ? 'event: message_stop' : 'event: error');
    }
  } finally {
    server.stop(true);
    log.setReporters(saved);
  }
});

test('the usage of a stream cut before message_delta is estimated from the output it carried', async () => {
  const usage = emptyUsage();
  let ended = false;
  const evs = textEvents();
  const res = sseResponse(from([evs[0]!, blockStart(0, { type: 'text', text: '' }), blockDelta(0, { type: 'text_delta', text: 'x'.repeat(41) })], new Error('cut')), {
    pingIntervalMs: 15_000,
    headers: {},
    abort: new AbortController(),
    usage,
    onEnd: () => void (ended = true),
  });
  await res.text();
  expect(ended).toBe(true);
  expect(usage.inputTokens).toBe(10);
  expect(usage.outputTokens).toBe(11);
});

test('a stream cancelled before its response began says so, and one that was read says it began', async () => {
  const outcomes: StreamOutcome[] = [];
  const make = (): Response =>
    sseResponse(from(textEvents()), {
      pingIntervalMs: 15_000,
      headers: {},
      abort: new AbortController(),
      usage: emptyUsage(),
      onEnd: (o) => void outcomes.push(o),
    });
  // Left before the server began the response: nothing was pulled, no 200 reached anyone.
  await make().body!.cancel();
  await make().text();
  expect(outcomes).toEqual([
    { errorType: null, clientClosed: true, began: false },
    { errorType: null, clientClosed: false, began: true },
  ]);
});

/** An upstream that sends its first events, then waits for the abort. */
async function* hangs(events: AnthropicEvent[], signal: AbortSignal): AsyncGenerator<AnthropicEvent> {
  for (const e of events) yield e;
  await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
}

test('the server stop ends a running stream with an error event of its own and aborts the upstream; a stream that ended leaves no listener behind', async () => {
  const stop = new AbortController();
  const sig = stop.signal;
  const listening = listenerSpy(sig);
  const open = (source: (abort: AbortController) => AsyncIterable<AnthropicEvent>, ends: StreamOutcome[]) => {
    const abort = new AbortController();
    const res = sseResponse(source(abort), {
      pingIntervalMs: 15_000,
      headers: {},
      abort,
      usage: emptyUsage(),
      stop: sig,
      stopError: () => new ApiError('overloaded_error', 'stopping, send it again'),
      onEnd: (o) => void ends.push(o),
    });
    return { abort, res };
  };
  const finished: StreamOutcome[] = [];
  await open(() => from(textEvents()), finished).res.text();
  expect(finished).toHaveLength(1);
  expect(listening.size()).toBe(0);

  const cut: StreamOutcome[] = [];
  const running = open((a) => hangs(textEvents().slice(0, 2), a.signal), cut);
  const text = running.res.text();
  await Bun.sleep(0);
  stop.abort();
  const body = await Promise.race([text, Bun.sleep(2000).then(() => 'still open after 2 s')]);
  expect(body.trimEnd().split('\n\n').at(-1)).toBe(
    'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"stopping, send it again"}}',
  );
  expect(running.abort.signal.aborted).toBe(true);
  expect(cut).toEqual([{ errorType: 'overloaded_error', clientClosed: false, began: true }]);
  expect(listening.size()).toBe(0);
});
