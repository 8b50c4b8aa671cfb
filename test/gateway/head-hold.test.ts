// The head of a streamed answer is held back before anything reaches the client, so a failure in it
// fails over instead of reaching Claude Code as an `error` event after content (protocol §1.6):
// message_start until something follows, and a tool call that opens the answer until it is whole
// and one more event follows (or the stream ends), up to HELD_TOOL_INPUT_MAX of input.
import { afterEach, describe, expect, test } from 'bun:test';
import { ApiError } from '../../src/anthropic/errors.ts';
import { blockDelta, blockStart, blockStop, MESSAGE_STOP, messageDelta, messageStart, PING, type AnthropicEvent } from '../../src/anthropic/events.ts';
import { HELD_TOOL_INPUT_MAX } from '../../src/gateway/head-hold.ts';
import type { Dispatched } from '../../src/gateway/types.ts';
import { UpstreamError } from '../../src/providers/provider.ts';
import { cleanupDbs, dispatchReq, drain, readToFailure, request, rig } from './helpers.ts';

afterEach(cleanupDbs);

const MODEL = 'glm-4.7';
const start = messageStart(MODEL, { input_tokens: 10, output_tokens: 1 });
const call = blockStart(0, { type: 'tool_use', id: 'toolu_01HOLD', name: 'Bash', input: {} });
const piece = (json: string) => blockDelta(0, { type: 'input_json_delta', partial_json: json });
const stop = blockStop(0);
const final = messageDelta('tool_use', { output_tokens: 5 });
const callAnswer = (): AnthropicEvent[] => [start, call, piece('{"command":"ls"}'), stop, final, MESSAGE_STOP];
const types = (evs: AnthropicEvent[]) => evs.map((e) => e.type);

/** An upstream answer the test writes event by event, to see when the gateway lets its head go. */
function liveAnswer() {
  const queue: Array<() => IteratorResult<AnthropicEvent>> = [];
  let wake: (() => void) | null = null;
  let ended = false;
  const put = (step: () => IteratorResult<AnthropicEvent>): void => {
    queue.push(step);
    wake?.();
    wake = null;
  };
  const iterable: AsyncIterable<AnthropicEvent> = {
    [Symbol.asyncIterator]: () => ({
      async next() {
        while (queue.length === 0 && !ended) await new Promise<void>((r) => (wake = r));
        return queue.length ? queue.shift()!() : { done: true, value: undefined };
      },
      async return() {
        return { done: true, value: undefined };
      },
    }),
  };
  return {
    iterable,
    send(...evs: AnthropicEvent[]): void {
      for (const ev of evs) put(() => ({ done: false, value: ev }));
    },
    end(): void {
      put(() => {
        ended = true;
        return { done: true, value: undefined };
      });
    },
  };
}

/** A one-account gateway whose upstream is the live answer, and the dispatch of one streamed request. */
function dispatchLive() {
  const r = rig({ labels: ['a'] });
  const live = liveAnswer();
  r.zai.send = () => live.iterable;
  let handed: Dispatched | null = null;
  const dispatched = r.routing.gateway.dispatch(dispatchReq(request(MODEL))).then((d) => (handed = d));
  return {
    live,
    dispatched,
    /** Whether dispatch has handed the stream on, once the events written so far were read. */
    async handedOn(): Promise<boolean> {
      await Bun.sleep(5);
      return handed !== null;
    },
  };
}

/** The first `n` events of a handed-on stream. */
async function firstOf(d: Dispatched, n: number): Promise<AnthropicEvent[]> {
  const it = d.events[Symbol.asyncIterator]();
  const out: AnthropicEvent[] = [];
  while (out.length < n) out.push((await it.next()).value as AnthropicEvent);
  return out;
}

describe('the head of a streamed answer held back by the gateway', () => {
  test('message_start and pings are held until content follows them', async () => {
    const g = dispatchLive();
    g.live.send(start, PING);
    expect(await g.handedOn()).toBe(false);
    g.live.send(blockStart(0, { type: 'text', text: '' }));
    expect(await g.handedOn()).toBe(true);
  });

  test('an answer that opens with a tool call is held until the call stops and one more event follows', async () => {
    const g = dispatchLive();
    g.live.send(start, call, piece('{"command":'), piece('"ls"}'));
    expect(await g.handedOn()).toBe(false);
    g.live.send(stop);
    expect(await g.handedOn()).toBe(false);
    g.live.send(final);
    expect(await g.handedOn()).toBe(true);
    g.live.send(MESSAGE_STOP);
    g.live.end();
    const events = await drain(await g.dispatched);
    expect(types(events)).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
  });

  test('an opening tool call with nothing after its stop is held until the stream ends', async () => {
    const g = dispatchLive();
    g.live.send(start, call, piece('{"command":"ls"}'), stop);
    expect(await g.handedOn()).toBe(false);
    g.live.end();
    expect(await g.handedOn()).toBe(true);
    expect(types(await drain(await g.dispatched))).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop']);
  });

  test(`an opening tool call whose input passes ${HELD_TOOL_INPUT_MAX} characters is let go at its next piece, and streams from there (the client waits without a byte meanwhile)`, async () => {
    const g = dispatchLive();
    g.live.send(start, call, piece(`{"content":"${'x'.repeat(HELD_TOOL_INPUT_MAX / 2)}`), piece('y'.repeat(HELD_TOOL_INPUT_MAX / 2)));
    expect(await g.handedOn()).toBe(false);
    g.live.send(piece('z'));
    expect(await g.handedOn()).toBe(true);
    const d = await g.dispatched;
    expect(types(await firstOf(d, 5))).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_delta']);
    g.live.send(piece('"}'), stop, final, MESSAGE_STOP);
    g.live.end();
    expect(types(await drain(d))).toEqual(['content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
  });

  test(`an opening tool call that arrives whole in one piece (as Antigravity's do) is held until something follows it, even past ${HELD_TOOL_INPUT_MAX} characters`, async () => {
    const g = dispatchLive();
    g.live.send(start, call, piece(`{"content":"${'x'.repeat(HELD_TOOL_INPUT_MAX * 2)}"}`));
    expect(await g.handedOn()).toBe(false);
    g.live.send(stop);
    expect(await g.handedOn()).toBe(false);
    g.live.send(final);
    expect(await g.handedOn()).toBe(true);
  });

  for (const [first, block] of [
    ['text', { type: 'text', text: '' }],
    ['thinking', { type: 'thinking', thinking: '', signature: '' }],
  ] as const) {
    test(`an answer that opens with ${first} is handed on at its first block, not held`, async () => {
      const g = dispatchLive();
      g.live.send(start, blockStart(0, block));
      expect(await g.handedOn()).toBe(true);
    });
  }
});

describe('a failure while an opening tool call is held fails over', () => {
  const cut = () => new UpstreamError('transient', 'connection reset by the upstream');
  const cases: Array<[string, (a: AnthropicEvent[]) => { events: AnthropicEvent[]; error?: UpstreamError; after?: number }]> = [
    ['a cut inside the call', (a) => ({ events: a, error: cut(), after: 3 })],
    ['a cut right after the call stops', (a) => ({ events: a, error: cut(), after: 4 })],
    ['an error event right after the call stops', (a) => ({ events: [...a.slice(0, 4), { type: 'error', error: { type: 'overloaded_error', message: 'busy' } }] })],
  ];
  for (const [name, answerOfA] of cases) {
    test(`${name}: another account answers, and the client sees one clean answer`, async () => {
      const r = rig({ labels: ['a', 'b'] });
      r.zai.answer = (c) => (c.label === 'a' ? answerOfA(callAnswer()) : { events: callAnswer() });
      const d = await r.routing.gateway.dispatch(dispatchReq(request(MODEL)));
      expect(d.accountId).toBe(r.accounts[1]!.id);
      expect(d.failovers).toBe(1);
      expect(types(await drain(d))).toEqual(types(callAnswer()));
    });
  }

  test('a cut after the call was let go ends the stream with an error the client sees after the call', async () => {
    const r = rig({ labels: ['a', 'b'] });
    r.zai.answer = () => ({ events: callAnswer(), error: cut(), after: 5 });
    const d = await r.routing.gateway.dispatch(dispatchReq(request(MODEL)));
    expect(d.accountId).toBe(r.accounts[0]!.id);
    const { seen, thrown } = await readToFailure(d);
    expect(seen).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta']);
    expect(thrown).toBeInstanceOf(ApiError);
  });
});
