import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test';
import { openCall, openGenerateStream, pickError, postJson, type CloudCodeOptions } from '../../../src/providers/antigravity/client.ts';
import { refreshAccessToken } from '../../../src/providers/antigravity/oauth.ts';
import { closeHttp1Pools, http1IdleCount } from '../../../src/providers/http1.ts';
import { UpstreamError } from '../../../src/providers/provider.ts';
import { startFakeGoogle } from '../../fakes/google.ts';

const fake = startFakeGoogle();
afterAll(() => fake.stop());
const cfg = { clientId: 'cid', clientSecret: 'csecret', authUrl: fake.authUrl, tokenUrl: fake.tokenUrl, userinfoUrl: fake.userinfoUrl };
const BASE: CloudCodeOptions = { endpoints: fake.endpoints, userAgent: 'antigravity/hub/2.9.1 darwin/arm64', now: Date.now };
/** The options of the block running; the stream blocks run once per HTTP client. */
let cc: CloudCodeOptions = BASE;
let token = '';

beforeEach(async () => {
  fake.clearModes();
  fake.requests.length = 0;
  token = (await refreshAccessToken(cfg, fake.refreshTokenFor('client@example.com'))).accessToken;
});

const envelope = (model: string, text = 'hi', thinking = false) =>
  JSON.stringify({
    project: 'aicode-consumers',
    model,
    userAgent: 'antigravity',
    requestType: 'agent',
    requestId: 'agent-1',
    request: {
      contents: [{ role: 'user', parts: [{ text }] }],
      generationConfig: thinking ? { thinkingConfig: { includeThoughts: true, thinkingBudget: 1024 } } : {},
    },
  });

async function chunksOf(model: string, opts: { idle?: number; signal?: AbortSignal; thinking?: boolean } = {}): Promise<unknown[]> {
  const s = await openGenerateStream({ ...cc, idleTimeoutMs: opts.idle ?? 2000 }, envelope(model, 'hi', opts.thinking), token, opts.signal ?? new AbortController().signal);
  const out: unknown[] = [];
  for await (const c of s.chunks) out.push(c);
  return out;
}

async function streamFailure(model: string, idle = 2000): Promise<{ error: UpstreamError; got: number }> {
  let got = 0;
  try {
    const s = await openGenerateStream({ ...cc, idleTimeoutMs: idle }, envelope(model), token, new AbortController().signal);
    for await (const _ of s.chunks) got++;
  } catch (e) {
    if (e instanceof UpstreamError) return { error: e, got };
    throw e;
  }
  throw new Error('expected a failure');
}

// Both ways of reaching Cloud Code (UPSTREAM_HTTP_CLIENT): our http1.ts and Bun's fetch.
for (const httpClient of ['native', 'fetch'] as const) {
  describe(`${httpClient} client`, () => {
    beforeAll(() => {
      closeHttp1Pools();
      cc = { ...BASE, httpClient };
    });
    afterAll(() => {
      closeHttp1Pools();
      cc = BASE;
    });

    test(`the stream goes through ${httpClient === 'native' ? 'http1.ts (its pool keeps the connection)' : 'fetch (http1.ts pools stay empty)'}`, async () => {
      await chunksOf('claude-sonnet-4-6');
      if (httpClient === 'native') expect(http1IdleCount()).toBeGreaterThan(0);
      else expect(http1IdleCount()).toBe(0);
    });

    describe('streamed generation', () => {
      test('the request carries the wire headers and goes to the first endpoint with alt=sse', async () => {
        await chunksOf('claude-sonnet-4-6');
        const r = fake.generations()[0]!;
        expect(r.endpoint).toBe('daily');
        expect(r.query).toBe('?alt=sse');
        expect(r.headers.authorization).toBe(`Bearer ${token}`);
        expect(r.headers['user-agent']).toBe('antigravity/hub/2.9.1 darwin/arm64');
        expect(r.headers['content-type']).toBe('application/json');
        expect(r.headers.accept).toBe('text/event-stream');
      });

      test('each data line becomes one parsed chunk in the {response, traceId} wrapper', async () => {
        const chunks = (await chunksOf('claude-sonnet-4-6', { thinking: true })) as Array<{ response: { candidates?: Array<{ content: { parts?: unknown[] } }> } }>;
        expect(chunks.length).toBeGreaterThan(4);
        expect(chunks[0]!.response.candidates![0]!.content.parts).toEqual([{ text: '' }]);
        const sig = chunks.find((c) => JSON.stringify(c).includes('thoughtSignature'));
        expect(sig).toBeDefined();
      });

      test('GPT-OSS streams end with a usage-only chunk', async () => {
        const chunks = (await chunksOf('gpt-oss-120b-medium')) as Array<{ response: Record<string, unknown> }>;
        const last = chunks[chunks.length - 1]!.response;
        expect(last.candidates).toBeUndefined();
        expect(last.usageMetadata).toBeDefined();
      });

      test('a malformed data line is skipped and the rest still arrives', async () => {
        fake.setMode({ kind: 'malformed_data', afterChunks: 1 }, { times: 1 });
        const good = (await chunksOf('claude-sonnet-4-6')).length;
        expect(good).toBeGreaterThan(2);
      });

      test('403, 404, 429 and 5xx on daily move on to prod', async () => {
        for (const kind of ['validation_required', 'not_found', 'quota_exhausted', 'http500', 'html502', 'capacity'] as const) {
          fake.requests.length = 0;
          fake.setMode({ kind }, { endpoint: 'daily', times: 1 });
          const chunks = await chunksOf('gemini-3-flash');
          expect(chunks.length).toBeGreaterThan(0);
          expect(fake.generations().map((r) => r.endpoint)).toEqual(['daily', 'prod']);
        }
      });

      test('a connection refused on the first endpoint moves on', async () => {
        const s = await openGenerateStream(
          { ...cc, endpoints: ['http://127.0.0.1:1', ...fake.endpoints], idleTimeoutMs: 2000 },
          envelope('gemini-3-flash'),
          token,
          new AbortController().signal,
        );
        let n = 0;
        for await (const _ of s.chunks) n++;
        expect(n).toBeGreaterThan(0);
      });

      test('400 and 401 stop the walk at the first endpoint', async () => {
        fake.setMode({ kind: 'signature_error' });
        expect((await streamFailure('claude-sonnet-4-6')).error.kind).toBe('bad_request');
        fake.clearModes();
        fake.setMode({ kind: 'unauthorized' });
        expect((await streamFailure('claude-sonnet-4-6')).error.kind).toBe('auth');
        expect(fake.generations().every((r) => r.endpoint === 'daily')).toBe(true);
      });

      test('when every endpoint limits, the soonest reset is reported', async () => {
        fake.setMode({ kind: 'quota_exhausted', resetMs: 3 * 3_600_000 }, { endpoint: 'daily' });
        fake.setMode({ kind: 'quota_exhausted', resetMs: 3_600_000 }, { endpoint: 'prod' });
        const { error } = await streamFailure('claude-sonnet-4-6');
        expect(error.kind).toBe('quota_exhausted');
        expect(error.resetAt! - Date.now()).toBeLessThan(3_700_000);
        expect(error.resetAt! - Date.now()).toBeGreaterThan(3_500_000);
      });

      test('a stall before the first byte is abandoned after the idle timeout', async () => {
        fake.setMode({ kind: 'stall_before_first_byte', ms: 3000 });
        const t0 = Date.now();
        const { error, got } = await streamFailure('claude-sonnet-4-6', 300);
        expect(error.kind).toBe('transient');
        expect(error.code).toBe('IDLE_TIMEOUT');
        expect(got).toBe(0);
        expect(Date.now() - t0).toBeLessThan(2000);
      });

      test('a stall mid-stream is abandoned after the idle timeout', async () => {
        fake.setMode({ kind: 'stall_mid_stream', ms: 3000, afterChunks: 2 });
        const { error, got } = await streamFailure('claude-sonnet-4-6', 300);
        expect(error.kind).toBe('transient');
        expect(error.message).toContain('mid-stream');
        expect(got).toBe(2);
      });

      test('a consumer that pauses longer than the idle timeout is not taken for an upstream stall', async () => {
        // The watchdog measures the upstream's silence, so time spent waiting on a slow client does not count.
        fake.setMode({ kind: 'slow_chunks', chunks: 6, delayMs: 100 });
        const all = await chunksOf('claude-sonnet-4-6');
        const s = await openGenerateStream({ ...cc, idleTimeoutMs: 300 }, envelope('claude-sonnet-4-6'), token, new AbortController().signal);
        const got: unknown[] = [];
        for await (const c of s.chunks) {
          if (got.length === 0) await Bun.sleep(700);
          got.push(c);
        }
        expect(got.length).toBe(all.length);
      });

      test('a reset mid-stream is a transient failure after the chunks already read', async () => {
        fake.setMode({ kind: 'reset_mid_stream', afterChunks: 2 });
        const { error, got } = await streamFailure('claude-sonnet-4-6');
        expect(error.kind).toBe('transient');
        expect(got).toBe(2);
      });

      test('a reset before the first byte is a transient failure', async () => {
        fake.setMode({ kind: 'reset_before_first_byte' });
        const { error, got } = await streamFailure('claude-sonnet-4-6');
        expect(error.kind).toBe('transient');
        expect(got).toBe(0);
      });

      test('an empty 200 body yields no chunks', async () => {
        fake.setMode({ kind: 'empty_response' });
        expect(await chunksOf('claude-sonnet-4-6')).toEqual([]);
      });

      test('the client signal aborts the upstream fetch at once', async () => {
        fake.setMode({ kind: 'stall_before_first_byte', ms: 5000 });
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 100);
        const t0 = Date.now();
        let err: unknown;
        try {
          await chunksOf('claude-sonnet-4-6', { signal: ac.signal });
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(UpstreamError);
        expect((err as UpstreamError).message).toContain('aborted');
        expect(Date.now() - t0).toBeLessThan(1000);
        await Bun.sleep(50);
        expect(fake.generations()[0]!.aborted).toBe(true);
      });
    });

    /** Serves `bytes` as an SSE answer, `step` bytes per write, pausing every `pauseEvery` writes; reads every chunk off it. */
    async function chunksServed(bytes: Uint8Array, step: number, pauseEvery = 1): Promise<Array<{ response: { n: number; sig?: string } }>> {
      const server = Bun.serve({
        port: 0,
        hostname: '127.0.0.1',
        fetch: () =>
          new Response(
            new ReadableStream({
              async start(c) {
                for (let i = 0, k = 0; i < bytes.length; i += step, k++) {
                  c.enqueue(bytes.slice(i, i + step));
                  if (k % pauseEvery === 0) await Bun.sleep(step > 100 ? 1 : 0);
                }
                c.close();
              },
            }),
            { headers: { 'content-type': 'text/event-stream' } },
          ),
      });
      try {
        const s = await openGenerateStream({ ...cc, endpoints: [`http://127.0.0.1:${server.port}`], idleTimeoutMs: 2000 }, '{}', 't', new AbortController().signal);
        const got: Array<{ response: { n: number; sig?: string } }> = [];
        for await (const c of s.chunks) got.push(c as { response: { n: number; sig?: string } });
        return got;
      } finally {
        await server.stop(true);
      }
    }

    describe('SSE framing', () => {
      test('lines split across many small reads, CRLF ends and a last line without newline are all read', async () => {
        const long = 'R'.repeat(20_000);
        const text = `data: {"response":{"n":1,"sig":"${long}"}}\r\n\r\n: comment\n\ndata: {"response":{"n":2}}\n\ndata: {"response":{"n":3}}`;
        const got = await chunksServed(new TextEncoder().encode(text), 997, 10);
        expect(got.map((c) => c.response.n)).toEqual([1, 2, 3]);
        expect(got[0]!.response.sig!.length).toBe(20_000);
      });

      // SSE lets one event's data span several data: lines (joined by newlines); a JSON split that way
      // is one chunk, not two malformed lines dropped. A broken line still does not swallow the next.
      test('an event whose JSON spans several data lines is one chunk; a broken line is still skipped alone', async () => {
        const text = 'data: {"response":\r\ndata:  {"n":1}}\r\n\r\ndata: {"resp\n\ndata: {"response":{"n":2}}\n\ndata: {"response":\ndata: {"n":3}}';
        for (const step of [1000, 3]) {
          const got = (await chunksServed(new TextEncoder().encode(text), step)).map((c) => c.response.n);
          expect({ step, got }).toEqual({ step, got: [1, 2, 3] });
        }
      });

      const events = [1, 2, 3].map((n) => `data: {"response":{"n":${n}}}`);
      test.each([
        ['LF', '\n'],
        ['CR', '\r'],
        ['CRLF', '\r\n'],
      ])('events separated by %s are all read once, whatever the size of the reads', async (_name, eol) => {
        const bytes = new TextEncoder().encode(events.join(eol + eol) + eol + eol);
        for (const step of [1000, 5, 1]) {
          const got = (await chunksServed(bytes, step)).map((c) => c.response.n);
          expect({ step, got }).toEqual({ step, got: [1, 2, 3] });
        }
      });
    });
  });
}

describe('JSON RPCs', () => {
  test('postJson returns the parsed answer', async () => {
    const body = await postJson(cc, 'loadCodeAssist', { metadata: { ideType: 'ANTIGRAVITY' } }, token);
    expect(body.cloudaicompanionProject).toBe('aicode-consumers');
  });

  test('a bad token is an auth failure without the token in the message', async () => {
    const bad = ['ya29', 'FAKE-not-a-real-token-123'].join('.');
    let err: unknown;
    try {
      await openCall(cc, 'loadCodeAssist', '{}', bad, new AbortController().signal, false);
    } catch (e) {
      err = e;
    }
    expect((err as UpstreamError).kind).toBe('auth');
    expect((err as UpstreamError).message).not.toContain(bad);
  });
});

describe('the fake itself', () => {
  test('generateContent answers one merged response', async () => {
    const body = await postJson(cc, 'generateContent', JSON.parse(envelope('claude-sonnet-4-6', 'hi', true)), token);
    const parts = (body.response as { candidates: Array<{ content: { parts: Array<Record<string, unknown>> } }> }).candidates[0]!.content.parts;
    expect(parts[0]!.thought).toBe(true);
    expect(typeof parts[0]!.thoughtSignature).toBe('string');
    expect(parts[1]!.text).toBe('Hello from the fake Antigravity.');
  });

  test('record:false keeps nothing but still counts', async () => {
    const quiet = startFakeGoogle({ record: false });
    try {
      const t = (await refreshAccessToken({ ...cfg, tokenUrl: quiet.tokenUrl }, quiet.refreshTokenFor('q@example.com'))).accessToken;
      await postJson({ ...cc, endpoints: quiet.endpoints }, 'loadCodeAssist', {}, t);
      expect(quiet.requests.length).toBe(0);
      expect(quiet.stats.refreshes).toBe(1);
    } finally {
      await quiet.stop();
    }
  });
});

describe('pickError', () => {
  test('prefers a limit over a transient failure and the soonest of two limits', () => {
    const t = new UpstreamError('transient', 'x');
    const a = new UpstreamError('quota_exhausted', 'a', { resetAt: 500 });
    const b = new UpstreamError('rate_limited', 'b', { resetAt: 100 });
    expect(pickError([t, a])).toBe(a);
    expect(pickError([a, b, t])).toBe(b);
    expect(pickError([t])).toBe(t);
  });
});
