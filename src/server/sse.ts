// AsyncIterable<AnthropicEvent> -> text/event-stream Response. Named events exactly as Anthropic
// sends them; a ping whenever the upstream has been silent for the ping interval (Claude Code
// drops a stream after 180 s without a byte); a failure after the 200 becomes `event: error`;
// a client that goes away aborts the upstream at once.
import { ApiError } from '../anthropic/errors.ts';
import { errorTypeOf, trackUsage, type UsageTotals } from '../anthropic/collect.ts';
import type { AnthropicEvent } from '../anthropic/events.ts';

const encoder = new TextEncoder();
const PING_BYTES = encoder.encode('event: ping\ndata: {"type":"ping"}\n\n');

/** One SSE frame: `event: <type>\ndata: <json>\n\n`. */
export function sseFrame(ev: { type: string }): Uint8Array {
  return encoder.encode(`event: ${ev.type}\ndata: ${JSON.stringify(ev)}\n\n`);
}

export interface StreamOutcome {
  /** Set when the stream ended with an error event (the upstream's or ours). */
  errorType: string | null;
  /** The client went away before the end. */
  clientClosed: boolean;
}

export interface SseOptions {
  pingIntervalMs: number;
  /** Response headers besides the SSE ones (request-id, x-proxy-*). */
  headers: Record<string, string>;
  /** Aborted when the client disconnects; it is the signal the upstream call listens to. */
  abort: AbortController;
  /** Usage totals updated as events pass (message_start, message_delta). */
  usage: UsageTotals;
  /** Called exactly once when the stream is over, however it ended. */
  onEnd(outcome: StreamOutcome): void;
  /** After this long the stream is ended with a timeout_error event and the upstream aborted (WRITE_TIMEOUT_SEC). */
  deadlineMs?: number;
  deadlineMessage?: string;
}

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
} as const;

export function sseResponse(events: AsyncIterable<AnthropicEvent>, opts: SseOptions): Response {
  const it = events[Symbol.asyncIterator]();
  const { abort, usage, pingIntervalMs } = opts;
  let ended = false;
  let lastWrite = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let ctrl: ReadableStreamDefaultController<Uint8Array> | undefined;

  const end = (outcome: StreamOutcome): void => {
    if (ended) return;
    ended = true;
    if (timer) clearTimeout(timer);
    if (deadline) clearTimeout(deadline);
    opts.onEnd(outcome);
  };

  const write = (bytes: Uint8Array): void => {
    lastWrite = performance.now();
    ctrl!.enqueue(bytes);
  };

  // One timer per stream, re-armed for the remaining silence; writes only stamp the time.
  const armPing = (delay: number): void => {
    timer = setTimeout(() => {
      if (ended) return;
      const silent = performance.now() - lastWrite;
      if (silent >= pingIntervalMs - 5) {
        try {
          write(PING_BYTES);
        } catch {
          return; // the stream is already closed
        }
        armPing(pingIntervalMs);
      } else armPing(pingIntervalMs - silent);
    }, delay);
  };

  const clientGone = (): void => {
    if (ended) return;
    abort.abort();
    // Do not await: a pending next() may only settle once the abort reaches the upstream.
    it.return?.()?.catch?.(() => {});
    end({ errorType: null, clientClosed: true });
  };

  const fail = (err: unknown): void => {
    const type = err instanceof ApiError ? err.type : 'api_error';
    const message = err instanceof ApiError ? err.message : 'upstream stream failed';
    try {
      write(sseFrame({ type: 'error', error: { type, message } } as AnthropicEvent));
      ctrl!.close();
    } catch {
      // already closed
    }
    end({ errorType: type, clientClosed: false });
  };

  let deadline: ReturnType<typeof setTimeout> | undefined;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      ctrl = c;
      armPing(pingIntervalMs);
      if (opts.deadlineMs !== undefined) {
        deadline = setTimeout(() => {
          if (ended) return;
          // The error frame first, then the abort (whose listener sees the stream already ended).
          fail(new ApiError('timeout_error', opts.deadlineMessage ?? 'the answer took too long'));
          abort.abort();
          it.return?.()?.catch?.(() => {});
        }, Math.max(0, opts.deadlineMs));
      }
      if (abort.signal.aborted) clientGone();
      else abort.signal.addEventListener('abort', clientGone, { once: true });
    },
    async pull(c) {
      if (ended) return;
      let r: IteratorResult<AnthropicEvent>;
      try {
        r = await it.next();
      } catch (err) {
        if (ended || abort.signal.aborted) return clientGone();
        return fail(err);
      }
      if (ended) return;
      if (r.done) {
        c.close();
        return end({ errorType: null, clientClosed: false });
      }
      const ev = r.value;
      trackUsage(usage, ev);
      if (ev.type === 'error') {
        // An error event from the upstream ends the stream, with a type the SDK knows.
        const e = (ev as { error?: { type?: unknown; message?: unknown } }).error ?? {};
        const type = errorTypeOf(e.type);
        write(sseFrame({ type: 'error', error: { type, message: String(e.message ?? 'upstream error') } } as AnthropicEvent));
        c.close();
        it.return?.()?.catch?.(() => {});
        return end({ errorType: type, clientClosed: false });
      }
      write(sseFrame(ev));
    },
    cancel() {
      clientGone();
    },
  });

  return new Response(body, { status: 200, headers: { ...SSE_HEADERS, ...opts.headers } });
}
