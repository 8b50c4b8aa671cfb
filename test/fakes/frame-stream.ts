// The body both fake upstreams stream: pre-built SSE frames, with at most one fault injected before a
// given frame (a reset, a stall, or extra bytes), an optional delay between frames, and a way to
// know the client went away. Shared so the two fakes break streams the same way.
const enc = new TextEncoder();

export type FrameFault =
  /** The connection breaks (after a moment, so what was written reaches the client first). */
  | { kind: 'reset' }
  /** Nothing for this long, then the rest. */
  | { kind: 'stall'; ms: number }
  /** These bytes go out first; with `thenClose` the stream ends right after them. */
  | { kind: 'insert'; text: string; thenClose?: boolean };

export interface FrameStreamOptions {
  /** The fault and the index of the frame it comes before. */
  fault?: { at: number; what: FrameFault };
  /** Delay before every frame after the first. */
  delayMs?: number;
  /** Writes one frame (default: as is); for fakes that mangle framing. */
  write?: (c: ReadableStreamDefaultController<Uint8Array>, frame: string) => Promise<void>;
  onCancel(): void;
  /** The stream ended from this side: closed, cut by a fault, or cancelled. */
  onEnd?(): void;
}

export function frameStream(frames: readonly string[], o: FrameStreamOptions): ReadableStream<Uint8Array> {
  const delay = o.delayMs ?? 0;
  if (!o.fault && !delay && !o.write) {
    // Fast path (benchmarks): the whole answer in one write.
    const bytes = enc.encode(frames.join(''));
    return new ReadableStream({
      start(c) {
        c.enqueue(bytes);
        c.close();
        o.onEnd?.();
      },
      cancel: o.onCancel,
    });
  }
  let i = 0;
  let faulted = false;
  let cancelled = false;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (cancelled) return;
      if (o.fault && i === o.fault.at && !faulted) {
        faulted = true;
        const f = o.fault.what;
        if (f.kind === 'reset') {
          await Bun.sleep(20);
          o.onEnd?.();
          return c.error();
        }
        if (f.kind === 'stall') await Bun.sleep(f.ms);
        if (f.kind === 'insert') {
          c.enqueue(enc.encode(f.text));
          if (f.thenClose) {
            c.close();
            o.onEnd?.();
          }
          return;
        }
        if (cancelled) return;
      }
      const frame = frames[i++];
      if (frame === undefined) {
        c.close();
        return o.onEnd?.();
      }
      if (o.write) return o.write(c, frame);
      if (delay && i > 1) await Bun.sleep(delay);
      if (!cancelled) c.enqueue(enc.encode(frame));
    },
    cancel() {
      cancelled = true;
      o.onCancel();
      o.onEnd?.();
    },
  });
}
