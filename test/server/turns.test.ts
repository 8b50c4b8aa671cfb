import { describe, expect, test } from 'bun:test';
import type { Dispatched } from '../../src/gateway/types.ts';
import { handleMessages, type RequestRecord } from '../../src/server/messages.ts';
import { createTurns, type Turns } from '../../src/server/turns.ts';
import { KEY, testConfig, textEvents } from './stubs.ts';

/** A defer the test drives: `tick()` runs what was deferred before it, like one turn of the loop. */
function manualLoop() {
  let pending: Array<() => void> = [];
  return {
    defer: (fn: () => void) => void pending.push(fn),
    tick: async () => {
      const run = pending;
      pending = [];
      for (const fn of run) fn();
      await Promise.resolve();
    },
  };
}

describe('turns', () => {
  test('a lone request starts at once, and again on the next loop turn', async () => {
    const loop = manualLoop();
    const turns = createTurns(1, loop.defer);
    expect(turns.take()).toBeUndefined();
    await loop.tick();
    expect(turns.take()).toBeUndefined();
    expect(turns.waiting()).toBe(0);
  });

  test('with one start per turn, the starts of a burst go one per loop turn, in arrival order', async () => {
    const loop = manualLoop();
    const turns = createTurns(1, loop.defer);
    const started: number[] = [];
    expect(turns.take()).toBeUndefined();
    started.push(0);
    for (const i of [1, 2, 3]) void turns.take()!.then(() => started.push(i));
    expect(turns.waiting()).toBe(3);
    await loop.tick();
    expect(started).toEqual([0, 1]);
    await loop.tick();
    expect(started).toEqual([0, 1, 2]);
    await loop.tick();
    expect(started).toEqual([0, 1, 2, 3]);
    await loop.tick();
    // Drained: the next arrival goes at once.
    expect(turns.take()).toBeUndefined();
  });

  test('up to perTurn starts go at once in a loop turn; the rest wait, and later arrivals queue behind them', async () => {
    const loop = manualLoop();
    const turns = createTurns(3, loop.defer);
    const started: number[] = [];
    for (let i = 0; i < 8; i++) {
      const t = turns.take();
      if (t) void t.then(() => started.push(i));
      else started.push(i);
    }
    expect(started).toEqual([0, 1, 2]);
    await loop.tick();
    expect(started).toEqual([0, 1, 2, 3, 4, 5]);
    // An arrival while others wait goes behind them, even with room left in the turn.
    void turns.take()!.then(() => started.push(8));
    await loop.tick();
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    await loop.tick();
    await loop.tick();
    expect(turns.waiting()).toBe(0);
    expect(turns.take()).toBeUndefined();
  });

  test('between two starts of a burst the event loop reads the sockets (the first stream is answered before the burst ends)', async () => {
    // A loopback echo stands in for the upstream; each start holds the thread ~2 ms, like a big request.
    const server = Bun.listen({
      hostname: '127.0.0.1',
      port: 0,
      socket: { data: (s, d) => void s.write(d) },
    });
    const order: string[] = [];
    let answered!: () => void;
    const gotAnswer = new Promise<void>((r) => (answered = r));
    const client = await Bun.connect({
      hostname: '127.0.0.1',
      port: server.port,
      socket: {
        data: () => {
          order.push('answer');
          answered();
        },
      },
    });
    // 4 starts per turn; the echo comes back in two loop turns (the server reads, then the client).
    const turns = createTurns(4);
    const busy = (ms: number) => {
      const end = performance.now() + ms;
      while (performance.now() < end);
    };
    const starts: Promise<void>[] = [];
    for (let i = 0; i < 30; i++) {
      const start = (): void => {
        order.push(`start ${i}`);
        if (i === 0) client.write('first request');
        busy(2);
      };
      const t = turns.take();
      starts.push(t ? t.then(start) : Promise.resolve(start()));
    }
    await Promise.all([...starts, gotAnswer]);
    client.end();
    server.stop(true);
    const at = order.indexOf('answer');
    // Without turns all 30 starts (60 ms) would run before the answer is read.
    expect(at).toBeGreaterThan(1);
    expect(at).toBeLessThanOrEqual(16);
  });
});

describe('handleMessages with turns', () => {
  test('a request whose client left while it waited for its turn asks nothing upstream and is recorded as 499', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const turns: Turns = { take: () => gate, waiting: () => 1 };
    let dispatched = 0;
    const records: RequestRecord[] = [];
    const deps = {
      config: testConfig(),
      gateway: {
        dispatch: async (): Promise<Dispatched> => {
          dispatched++;
          async function* events() {
            yield* textEvents();
          }
          return { events: events(), accountId: 'a', provider: 'stub', upstreamModel: 'm', fallbackFrom: null, failovers: 0 };
        },
        listModels: () => [],
        getModel: () => undefined,
        imageModel: () => null,
        drawsImages: () => null,
      },
      done: (r: RequestRecord) => void records.push(r),
      turns,
    };
    const client = new AbortController();
    const req = new Request('http://127.0.0.1/v1/messages', {
      method: 'POST',
      headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-test-1', max_tokens: 16, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
      signal: client.signal,
    });
    const pending = handleMessages(deps, req, 'req_turns', null);
    client.abort();
    release();
    await pending;
    expect(dispatched).toBe(0);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ status: 499, errorType: 'client_closed' });

    // The same deps serve a client that stayed.
    const ok = await handleMessages(
      deps,
      new Request('http://127.0.0.1/v1/messages', {
        method: 'POST',
        headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'claude-test-1', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }),
      }),
      'req_turns_2',
      null,
    );
    expect(ok.status).toBe(200);
    expect(dispatched).toBe(1);
  });
});
