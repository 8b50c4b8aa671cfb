// A fast fake Cloud Code upstream for benchmarks and load tests: Google OAuth token endpoint,
// userinfo, v1internal:loadCodeAssist / onboardUser / fetchAvailableModels /
// retrieveUserQuotaSummary, and :streamGenerateContent?alt=sse / :generateContent speaking the wire
// of protocol/antigravity.md §2.6, §3.1, §6, §11.1. Unlike test/fakes/google.ts it records nothing
// and pre-encodes every answer, so it costs as little CPU per request as possible: it is the
// "physical floor" the proxy is measured against.
//
// The answer is picked by a marker anywhere in the request body (the proxy passes user text on):
//   BENCH_STREAM_50   50 text chunks, 10 ms apart
//   BENCH_THINKING    a Claude thinking stream: thought deltas, signature part, then text (10 ms apart)
//   BENCH_BIG_90KB    the small answer (marks the 90 KB request)
//   anything else     a small answer in one write
// The SSE chunks are modelled on fixtures/antigravity/agy_cli_1.2.0/stream_turn8_claude_thinking.resp.sse.
//
// Standalone: `bun test/fakes/bench-upstream.ts [port]` prints the URLs and the env for `mcp`.

export type BenchWorkload = 'small' | 'big' | 'stream50' | 'thinking';

export interface BenchUpstreamOptions {
  port?: number;
  /** Refresh tokens the token endpoint accepts. Default [BENCH_REFRESH_TOKEN]. */
  refreshTokens?: string[];
  /** Delay between streamed chunks, ms (default 10). */
  chunkDelayMs?: number;
}

export interface BenchUpstream {
  /** Base URL of the Cloud Code surface (ANTIGRAVITY_ENDPOINTS). */
  url: string;
  tokenUrl: string;
  userinfoUrl: string;
  authUrl: string;
  port: number;
  /** Streams whose body is still being written (a client that went away must bring this back to 0). */
  openStreams(): number;
  /** Generation requests answered so far. */
  generated(): number;
  /** The last generation request per workload (path + raw body), kept so the floor can replay exactly what the proxy sent. */
  lastRequest(w: BenchWorkload): { path: string; body: string } | undefined;
  /** A valid access token, for hitting the upstream directly. */
  accessToken(): Promise<string>;
  /** The environment that points `mcp` at this upstream. */
  env(): Record<string, string>;
  stop(): Promise<void>;
}

export const BENCH_REFRESH_TOKEN = '1//bench-refresh-token-0123456789abcdef';
export const BENCH_PROJECT = 'bench-project-4mnnp';
export const BENCH_EMAIL = 'bench@example.com';
export const STREAM50_MARKER = 'BENCH_STREAM_50';
export const THINKING_MARKER = 'BENCH_THINKING';
/** Marks the 90 KB request (answered like the small one; tracked apart so its floor replays it). */
export const BIG_MARKER = 'BENCH_BIG_90KB';

const enc = new TextEncoder();
const SSE_HEADERS = { 'content-type': 'text/event-stream', 'x-cloudaicompanion-trace-id': 'be924ae74ef1e3f2' };
const JSON_HEADERS = { 'content-type': 'application/json; charset=UTF-8' };

/** A signature in Claude's double-base64 "R-form" (≥ 50 chars, §6.3). */
const SIGNATURE = `RW9Z${'Q0NwUUJDQkVRQWhnQ0trRE9qbGZyRVZRclExL1FTbFU0aStnYlpEUFk1NnJtU0s1VGhIaXVWOEFC'.repeat(4)}`;

function chunk(parts: unknown[], usage: { p: number; c: number }, finish?: string): Uint8Array {
  const cand: Record<string, unknown> = { content: { role: 'model', parts } };
  if (finish) cand.finishReason = finish;
  const response = {
    candidates: [cand],
    usageMetadata: { promptTokenCount: usage.p, candidatesTokenCount: usage.c, totalTokenCount: usage.p + usage.c },
    modelVersion: 'claude-sonnet-4-6',
    responseId: 'req_vrtx_011CevqWoZSwtcdY3TTy75DK',
  };
  return enc.encode(`data: ${JSON.stringify({ response, traceId: 'be924ae74ef1e3f2', metadata: {} })}\n\n`);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** Pre-encoded answers: built once, written as is. */
function buildAnswers() {
  const small = [
    chunk([{ text: 'Hello' }], { p: 42, c: 1 }),
    chunk([{ text: ' from the bench upstream.' }], { p: 42, c: 8 }, 'STOP'),
  ];
  const stream50: Uint8Array[] = [];
  for (let i = 0; i < 50; i++) stream50.push(chunk([{ text: `chunk ${i} ` }], { p: 42, c: i + 1 }, i === 49 ? 'STOP' : undefined));
  const thinking: Uint8Array[] = [chunk([{ text: '' }], { p: 18431, c: 1 })];
  for (let i = 0; i < 8; i++) thinking.push(chunk([{ thought: true, text: `step ${i} ` }], { p: 18431, c: 1 }));
  thinking.push(chunk([{ thought: true, text: '', thoughtSignature: SIGNATURE }], { p: 18431, c: 1 }));
  for (let i = 0; i < 20; i++) thinking.push(chunk([{ text: `word${i} ` }], { p: 18431, c: i + 2 }));
  thinking.push(chunk([{ text: '' }], { p: 18431, c: 48 }, 'STOP'));
  // Unary (generateContent) bodies: the same content as one object.
  const unary = enc.encode(
    JSON.stringify({
      response: {
        candidates: [{ content: { role: 'model', parts: [{ text: 'Hello from the bench upstream.' }] }, finishReason: 'STOP' }],
        usageMetadata: { promptTokenCount: 42, candidatesTokenCount: 8, totalTokenCount: 50 },
        modelVersion: 'claude-sonnet-4-6',
        responseId: 'req_vrtx_bench',
      },
      traceId: 'be924ae74ef1e3f2',
      metadata: {},
    }),
  );
  return { small: concat(small), stream50, thinking, unary };
}

function modelsBody(): string {
  const reset = new Date(Date.now() + 5 * 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');
  const m = (displayName: string, extra: Record<string, unknown> = {}) => ({
    displayName,
    supportsImages: true,
    supportsThinking: true,
    thinkingBudget: -1,
    recommended: true,
    maxTokens: 200000,
    maxOutputTokens: 64000,
    quotaInfo: { remainingFraction: 0.9, resetTime: reset },
    ...extra,
  });
  return JSON.stringify({
    models: {
      'claude-sonnet-4-6': m('Claude Sonnet 4.6', { thinkingBudget: 1024 }),
      'claude-opus-4-6-thinking': m('Claude Opus 4.6 (Thinking)', { thinkingBudget: 32000 }),
      'gemini-3-flash': m('Gemini 3 Flash', { maxTokens: 1048576, maxOutputTokens: 65536 }),
      'gemini-3.1-pro-low': m('Gemini 3.1 Pro (Low)', { maxTokens: 1048576, maxOutputTokens: 65535 }),
    },
    defaultAgentModelId: 'gemini-3-flash',
  });
}

export function startBenchUpstream(opts: BenchUpstreamOptions = {}): BenchUpstream {
  const refreshTokens = new Set(opts.refreshTokens ?? [BENCH_REFRESH_TOKEN]);
  const delay = opts.chunkDelayMs ?? 10;
  const answers = buildAnswers();
  const models = modelsBody();
  const tokens = new Set<string>();
  const last: Partial<Record<BenchWorkload, { path: string; body: string }>> = {};
  let open = 0;
  let generated = 0;
  let tokenSeq = 0;

  const json = (status: number, body: string) => new Response(body, { status, headers: JSON_HEADERS });
  const googleError = (status: number, statusText: string, message: string) =>
    json(status, JSON.stringify({ error: { code: status, message, status: statusText } }));

  /** Writes `chunks` `delay` ms apart (first at once); counts itself open until done or cancelled. */
  function paced(chunks: Uint8Array[]): Response {
    open++;
    let i = 0;
    let closed = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = () => {
      if (!closed) {
        closed = true;
        open--;
      }
    };
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        const step = () => {
          if (closed) return;
          try {
            c.enqueue(chunks[i++]!);
            if (i >= chunks.length) {
              done();
              c.close();
              return;
            }
          } catch {
            done();
            return;
          }
          timer = setTimeout(step, delay);
        };
        step();
      },
      cancel() {
        clearTimeout(timer);
        done();
      },
    });
    return new Response(stream, { headers: SSE_HEADERS });
  }

  function authorized(req: Request): boolean {
    const h = req.headers.get('authorization');
    return h !== null && h.startsWith('Bearer ') && tokens.has(h.slice(7));
  }

  async function token(req: Request): Promise<Response> {
    const form = new URLSearchParams(await req.text());
    if (form.get('grant_type') !== 'refresh_token' || !refreshTokens.has(form.get('refresh_token') ?? '')) {
      return json(400, JSON.stringify({ error: 'invalid_grant', error_description: 'Token has been expired or revoked.' }));
    }
    const access = `ya29.bench-${++tokenSeq}-${Math.random().toString(36).slice(2)}`;
    tokens.add(access);
    return json(
      200,
      JSON.stringify({
        access_token: access,
        expires_in: 3600,
        scope: 'https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/userinfo.email',
        token_type: 'Bearer',
      }),
    );
  }

  async function generate(req: Request, path: string, streaming: boolean): Promise<Response> {
    const body = await req.text();
    generated++;
    const w: BenchWorkload = body.includes(STREAM50_MARKER)
      ? 'stream50'
      : body.includes(THINKING_MARKER)
        ? 'thinking'
        : body.includes(BIG_MARKER)
          ? 'big'
          : 'small';
    last[w] = { path, body };
    if (!streaming) return new Response(answers.unary, { headers: JSON_HEADERS });
    if (w === 'stream50') return paced(answers.stream50);
    if (w === 'thinking') return paced(answers.thinking);
    return new Response(answers.small, { headers: SSE_HEADERS });
  }

  const server = Bun.serve({
    port: opts.port ?? 0,
    hostname: '127.0.0.1',
    idleTimeout: 0,
    async fetch(req) {
      const url = req.url;
      const start = url.indexOf('/', url.indexOf('//') + 2);
      const q = url.indexOf('?', start);
      const path = q < 0 ? url.slice(start) : url.slice(start, q);
      if (req.method === 'POST' && path === '/token') return token(req);
      if (path === '/oauth2/v1/userinfo') {
        if (!authorized(req)) return googleError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.');
        return json(200, JSON.stringify({ id: '1234567890', email: BENCH_EMAIL, verified_email: true, name: 'Bench User' }));
      }
      if (req.method !== 'POST' || !path.startsWith('/v1internal:')) return googleError(404, 'NOT_FOUND', 'Requested entity was not found.');
      if (!authorized(req)) return googleError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.');
      switch (path) {
        case '/v1internal:streamGenerateContent':
          return generate(req, `${path}?alt=sse`, true);
        case '/v1internal:generateContent':
          return generate(req, path, false);
        case '/v1internal:loadCodeAssist':
          await req.arrayBuffer();
          return json(
            200,
            JSON.stringify({
              currentTier: { id: 'free-tier', name: 'Antigravity' },
              allowedTiers: [{ id: 'free-tier', name: 'Antigravity', isDefault: true }],
              cloudaicompanionProject: BENCH_PROJECT,
              gcpManaged: false,
              paidTier: { id: 'g1-pro-tier', name: 'Google AI Pro' },
            }),
          );
        case '/v1internal:onboardUser':
          await req.arrayBuffer();
          return json(200, JSON.stringify({ done: true, response: { cloudaicompanionProject: { id: BENCH_PROJECT } } }));
        case '/v1internal:fetchAvailableModels':
          await req.arrayBuffer();
          return json(200, models);
        case '/v1internal:retrieveUserQuotaSummary':
          await req.arrayBuffer();
          return json(200, JSON.stringify({ groups: [] }));
        default:
          return googleError(404, 'NOT_FOUND', 'Requested entity was not found.');
      }
    },
  });

  const port = server.port as number;
  const base = `http://127.0.0.1:${port}`;
  return {
    url: base,
    tokenUrl: `${base}/token`,
    userinfoUrl: `${base}/oauth2/v1/userinfo`,
    authUrl: `${base}/o/oauth2/v2/auth`,
    port,
    openStreams: () => open,
    generated: () => generated,
    lastRequest: (w) => last[w],
    async accessToken() {
      const res = await fetch(`${base}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `grant_type=refresh_token&refresh_token=${encodeURIComponent([...refreshTokens][0]!)}`,
      });
      return ((await res.json()) as { access_token: string }).access_token;
    },
    env() {
      return {
        GOOGLE_OAUTH_TOKEN_URL: `${base}/token`,
        GOOGLE_OAUTH_AUTH_URL: `${base}/o/oauth2/v2/auth`,
        GOOGLE_USERINFO_URL: `${base}/oauth2/v1/userinfo`,
        ANTIGRAVITY_ENDPOINTS: base,
      };
    },
    async stop() {
      await server.stop(true);
    },
  };
}

if (import.meta.main) {
  const up = startBenchUpstream({ port: Number(process.argv[2] ?? 0) });
  console.log(`bench upstream on ${up.url}`);
  for (const [k, v] of Object.entries(up.env())) console.log(`export ${k}=${v}`);
  console.log(`refresh token: ${BENCH_REFRESH_TOKEN}`);
}
