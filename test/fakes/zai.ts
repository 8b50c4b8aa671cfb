// A fake Z.AI (api.z.ai) on 127.0.0.1, speaking its real wire format: the Anthropic-compatible
// Messages endpoint (named-event SSE as in protocol §1.8, or JSON when stream is false), the model
// list and the coding-plan quota endpoint (§3.3). It rejects what real Z.AI rejects (role:"system"
// messages with FastAPI's 422, non-object tool input with its 500, bad keys with the native 1002
// body), answers a scripted Bash tool loop so the real Claude Code CLI can finish a turn against
// it, and can be switched into every failure the provider must classify. Built to be fast: it is
// also the floor the benchmarks measure the proxy against.
import { type FrameStreamOptions, frameStream } from './frame-stream.ts';

export type FakeZaiCode =
  | '1002'
  | '1113'
  | '1211'
  | '1214'
  | '1220'
  | '1302'
  | '1303'
  | '1304'
  | '1305'
  | '1308'
  | '1309'
  | '1310'
  | '1311'
  | '1313'
  | '1316'
  | '500';

export type FakeZaiMode =
  /** Normal scripted answers. */
  | { kind: 'ok' }
  /** A Z.AI business error with its real status and body shape; resetAt (ms) feeds "reset at" texts. */
  | { kind: 'error'; code: FakeZaiCode; resetAt?: number }
  /** A bare 429 (no business code), optionally with retry-after seconds. */
  | { kind: 'http429'; retryAfter?: number }
  /** A 502 HTML page from the load balancer. */
  | { kind: 'html502' }
  /** The socket closes before any byte of the response. */
  | { kind: 'reset_before_first_byte' }
  /** The socket closes after `afterEvents` SSE events (default 3). */
  | { kind: 'reset_mid_stream'; afterEvents?: number }
  /** Nothing at all for `ms` before the response headers. */
  | { kind: 'stall_before_first_byte'; ms: number }
  /** Silence for `ms` after `afterEvents` events (default 2), then the rest. */
  | { kind: 'stall_mid_stream'; ms: number; afterEvents?: number }
  /** A data line that is not JSON after `afterEvents` events (default 0 = first line). */
  | { kind: 'malformed_data'; afterEvents?: number }
  /** The stream ends cleanly after message_delta, without message_stop. */
  | { kind: 'no_message_stop' }
  /** OpenAI's end marker `data: [DONE]` in place of message_stop, after message_delta. */
  | { kind: 'done_marker' }
  /** The stream ends cleanly in the middle of a content block (no message_delta, no message_stop). */
  | { kind: 'truncated' }
  /** 200 text/event-stream with an empty body. */
  | { kind: 'empty_response' }
  /**
   * An `event: error` after `afterEvents` events (default 0), typed like Anthropic's, with a Z.AI code;
   * `native` sends Z.AI's own `data: {"error":{code,message}}` instead, with no event name or type
   * (the shape of its other surfaces' stream errors).
   */
  | { kind: 'sse_error'; afterEvents?: number; errorType?: string; code?: string; message?: string; native?: boolean }
  /** The reply's text split into `chunks` deltas written `delayMs` apart (benchmarks, ping tests). */
  | { kind: 'slow_chunks'; chunks: number; delayMs: number }
  /** Tolerance: each event written as its own chunk, split mid-line, with CRLF ends and garbage lines. */
  | { kind: 'awkward_framing' }
  /** glm-5.1's habit: tool_use input streamed as an array. */
  | { kind: 'tool_input_array' }
  /** Replies to a streaming request with a JSON Message body. */
  | { kind: 'json_for_stream' }
  /**
   * An error (default 401, code 1000) whose message quotes the key and the Authorization header the
   * request came with, as some real upstreams and proxies do.
   */
  | { kind: 'echo_key'; status?: number; code?: string };

export interface FakeQuotaWindow {
  /** 3 = hours, 6 = weeks. */
  unit: number;
  number: number;
  /** Window allowance (tokens). */
  usage: number;
  /** Used so far. */
  currentValue: number;
  /** Epoch ms; omitted from the answer when undefined (as Z.AI does for unused windows). */
  nextResetTime?: number;
}

export interface FakeQuota {
  level?: string;
  windows: FakeQuotaWindow[];
  /** Monthly MCP tool-call window (TIME_LIMIT), ignored by the provider. */
  timeLimit?: boolean;
}

/**
 * The quota endpoint's failure: Z.AI's `{code, msg, success:false}`, on HTTP 200 unless `httpStatus`
 * says otherwise (§3.3: 401/403 for a key it does not take); `html` sends a page instead, as a CDN in
 * front of it does.
 */
export interface FakeQuotaFailure {
  success: false;
  msg: string;
  code?: number;
  httpStatus?: number;
  html?: boolean;
}

export interface FakeZaiOptions {
  /** Keys accepted as Bearer or x-api-key. Default ['zai-test-key']. */
  keys?: string[];
  /** Models the fake knows; others get 1211. claude-* ids are always accepted (Z.AI maps them). */
  models?: string[];
  quota?: FakeQuota;
  /** Text of the plain (non-tool) reply. */
  replyText?: string;
  /** Keep a record of every request (default true); benchmarks turn it off to stay flat in memory. */
  record?: boolean;
  /**
   * Stream thinking without a signature_delta (Claude Code then echoes `signature: ""`): whether real
   * Z.AI signs its thinking is not known (protocol Part 3), so the provider must work either way.
   */
  unsignedThinking?: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  /** Parsed JSON body (undefined for GETs, the raw text when not JSON). */
  body: unknown;
  /** The key the request authenticated with, or null. */
  key: string | null;
  /** Set when the client closed the connection before the response finished. */
  aborted: boolean;
  /** Set once a streamed answer has ended (finished, cut or cancelled); other answers start out ended. */
  ended: boolean;
  /** The mode that answered it. */
  mode: FakeZaiMode['kind'];
}

export interface FakeZai {
  /** Base URL of the Anthropic-compatible surface (like https://api.z.ai/api/anthropic). */
  url: string;
  /** The quota endpoint (like https://api.z.ai/api/monitor/usage/quota/limit). */
  quotaUrl: string;
  port: number;
  requests: RecordedRequest[];
  /**
   * Switches Messages answers. `key` limits it to one API key; `times` makes it one-shot (or n-shot):
   * when used up, earlier rules apply again. Key rules win over global ones; newest first.
   */
  setMode(mode: FakeZaiMode, opts?: { key?: string; times?: number }): void;
  /** Back to normal answers for everyone. */
  clearModes(): void;
  /**
   * Replaces the quota answer; `{ success: false, msg }` gives Z.AI's failure shape. With `key`,
   * only that key's answer (key answers win over the shared one).
   */
  setQuota(q: FakeQuota | FakeQuotaFailure, opts?: { key?: string }): void;
  /** Messages requests only (the most common assertion target). */
  messages(): RecordedRequest[];
  stop(): Promise<void>;
}

const DEFAULT_KEYS = ['zai-test-key'];
const DEFAULT_MODELS = ['glm-4.5', 'glm-4.5-air', 'glm-4.6', 'glm-4.7', 'glm-5', 'glm-5-turbo', 'glm-5.1'];
const HOUR = 3_600_000;
const enc = new TextEncoder();

const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' };
const JSON_HEADERS = { 'content-type': 'application/json' };

let seq = 0;
function hex(n: number): string {
  let s = '';
  while (s.length < n) s += Math.floor(Math.random() * 0xffffffff).toString(16).padStart(8, '0');
  return s.slice(0, n);
}
function zaiRequestId(): string {
  return `2026${String(++seq).padStart(10, '0')}${hex(16)}`;
}

/** "2026-08-31 18:19:41" in China time (UTC+8), as Z.AI writes reset times. */
function chinaTime(ms: number): string {
  return new Date(ms + 8 * HOUR).toISOString().slice(0, 19).replace('T', ' ');
}

type Block =
  | { type: 'thinking'; thinking: string; signature: string }
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> };

interface Reply {
  blocks: Block[];
  stop: 'end_turn' | 'tool_use';
  inputTokens: number;
  outputTokens: number;
}

type Msg = { role: string; content: string | Array<Record<string, unknown>> };

function textOf(content: Msg['content']): string {
  if (typeof content === 'string') return content;
  return content.map((b) => (b.type === 'text' && typeof b.text === 'string' ? b.text : '')).join('\n');
}

function toolResultText(b: Record<string, unknown>): string {
  const c = b.content;
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) return c.map((x) => (x && typeof x === 'object' && typeof x.text === 'string' ? x.text : '')).join('');
  return '';
}

const COMMAND_AFTER_COLON = /(?:command|exactly):\s*`?([^`\n]+?)`?\s*(?:\n|$)/i;
const ASKS_TO_RUN = /\b(run|execute)\b/i;
/** "Run in parallel: a ;; b": one call per command, in one answer. */
const RUN_IN_PARALLEL = /run in parallel:\s*([^\n]+)/i;
const TITLE_REQUEST = /<session>[\s\S]*title/i;
/** "Without a word, run …": the call opens the answer, no text before it (GLM does this with thinking off). */
const NO_PREAMBLE = /\bwithout a word\b/i;

/** The scripted conversation: Bash when asked to run something, the tool's output after it, text otherwise. */
function script(body: Record<string, unknown>, rawLength: number, replyText: string, unsignedThinking = false): Reply {
  const messages = (Array.isArray(body.messages) ? body.messages : []) as Msg[];
  const last = messages[messages.length - 1];
  const tools = Array.isArray(body.tools) ? (body.tools as Array<{ name?: string }>) : [];
  const thinking = (body.thinking as { type?: string } | undefined)?.type === 'enabled';
  const blocks: Block[] = [];
  if (thinking) {
    // Unsigned, each answer thinks its own words, so that a test can tell one answer's from another's.
    const text = unsignedThinking ? `Let me think about this request step by step (${hex(8)}).` : 'Let me think about this request step by step.';
    blocks.push({ type: 'thinking', thinking: text, signature: unsignedThinking ? '' : `zai-sig-${hex(24)}` });
  }
  let stop: Reply['stop'] = 'end_turn';
  const results = last && typeof last.content !== 'string' ? last.content.filter((b) => b.type === 'tool_result') : [];
  const userText = last ? textOf(last.content) : '';
  if (results.length) {
    blocks.push({ type: 'text', text: `FINAL_ANSWER: tool said ${results.map(toolResultText).join(' ').trim()}` });
  } else if (tools.some((t) => t.name === 'Bash') && RUN_IN_PARALLEL.test(userText)) {
    // GLM calls tools in parallel, one tool_use block each.
    blocks.push({ type: 'text', text: 'I will run them together.' });
    for (const command of RUN_IN_PARALLEL.exec(userText)![1]!.split(';;')) {
      blocks.push({ type: 'tool_use', id: `toolu_${hex(24)}`, name: 'Bash', input: { command: command.trim() } });
    }
    stop = 'tool_use';
  } else if (tools.some((t) => t.name === 'Bash') && (COMMAND_AFTER_COLON.test(userText) || ASKS_TO_RUN.test(userText))) {
    const command = COMMAND_AFTER_COLON.exec(userText)?.[1]?.trim() || 'echo hello-from-fake-tool';
    if (!NO_PREAMBLE.test(userText)) blocks.push({ type: 'text', text: 'I will run a command.' });
    blocks.push({ type: 'tool_use', id: `toolu_${hex(24)}`, name: 'Bash', input: { command, description: 'Print a marker string' } });
    stop = 'tool_use';
  } else if (TITLE_REQUEST.test(userText)) {
    blocks.push({ type: 'text', text: '{"title":"Fake Z.AI session"}' });
  } else {
    blocks.push({ type: 'text', text: replyText });
  }
  return { blocks, stop, inputTokens: Math.max(1, Math.round(rawLength / 4)), outputTokens: 30 };
}

/** Garbage line, CRLF endings, and the frame split in the middle of its data line. */
async function awkwardWrite(c: ReadableStreamDefaultController<Uint8Array>, f: string): Promise<void> {
  const crlf = `: keep-alive comment\r\nthis is not sse\r\n${f.replace(/\n/g, '\r\n')}`;
  const cut = Math.floor(crlf.length / 2);
  c.enqueue(enc.encode(crlf.slice(0, cut)));
  await Bun.sleep(1);
  c.enqueue(enc.encode(crlf.slice(cut)));
}

function frame(data: Record<string, unknown>): string {
  return `event: ${data.type as string}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** The reply as SSE frames, in Anthropic's order; `textChunks` splits each text into that many deltas. */
function sseFrames(reply: Reply, model: string, opts: { textChunks?: number; toolInputArray?: boolean } = {}): string[] {
  const f: string[] = [];
  f.push(
    frame({
      type: 'message_start',
      message: {
        id: `msg_${zaiRequestId()}`,
        type: 'message',
        role: 'assistant',
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: reply.inputTokens, output_tokens: 0, cache_read_input_tokens: 0 },
      },
    }),
  );
  f.push(frame({ type: 'ping' }));
  reply.blocks.forEach((b, index) => {
    if (b.type === 'thinking') {
      f.push(frame({ type: 'content_block_start', index, content_block: { type: 'thinking', thinking: '', signature: '' } }));
      f.push(frame({ type: 'content_block_delta', index, delta: { type: 'thinking_delta', thinking: b.thinking } }));
      if (b.signature) f.push(frame({ type: 'content_block_delta', index, delta: { type: 'signature_delta', signature: b.signature } }));
    } else if (b.type === 'text') {
      f.push(frame({ type: 'content_block_start', index, content_block: { type: 'text', text: '' } }));
      const n = Math.max(1, opts.textChunks ?? 2);
      const size = Math.ceil(b.text.length / n);
      for (let i = 0; i < n; i++) {
        const piece = b.text.slice(i * size, (i + 1) * size);
        if (piece || i === 0) f.push(frame({ type: 'content_block_delta', index, delta: { type: 'text_delta', text: piece || ' ' } }));
      }
    } else {
      f.push(frame({ type: 'content_block_start', index, content_block: { type: 'tool_use', id: b.id, name: b.name, input: {} } }));
      const json = JSON.stringify(opts.toolInputArray ? [b.input] : b.input);
      const cut = Math.min(json.length, 12);
      f.push(frame({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: '' } }));
      f.push(frame({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: json.slice(0, cut) } }));
      f.push(frame({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: json.slice(cut) } }));
    }
    f.push(frame({ type: 'content_block_stop', index }));
  });
  f.push(
    frame({
      type: 'message_delta',
      delta: { stop_reason: reply.stop, stop_sequence: null },
      usage: { input_tokens: reply.inputTokens, output_tokens: reply.outputTokens, cache_read_input_tokens: 0 },
    }),
  );
  f.push(frame({ type: 'message_stop' }));
  return f;
}

function messageJson(reply: Reply, model: string): Record<string, unknown> {
  return {
    id: `msg_${zaiRequestId()}`,
    type: 'message',
    role: 'assistant',
    model,
    content: reply.blocks,
    stop_reason: reply.stop,
    stop_sequence: null,
    usage: { input_tokens: reply.inputTokens, output_tokens: reply.outputTokens, cache_read_input_tokens: 0 },
  };
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });
}

/** Z.AI's Anthropic-surface envelope: "[code][text][request id]" inside error.message. */
function envelope(status: number, type: string, code: string, text: string, withTop = true): Response {
  const error = { type, code, message: `[${code}][${text}][${zaiRequestId()}]` };
  return json(status, withTop ? { type: 'error', error } : { error });
}

/** Z.AI's native envelope, used for auth and model errors. */
function native(status: number, code: string, message: string): Response {
  return json(status, { error: { code, message }, request_id: zaiRequestId() });
}

function errorResponse(code: FakeZaiCode, now: number, resetAt?: number): Response {
  switch (code) {
    case '1002':
      return native(401, '1002', 'Authorization Token is invalid, please check your API key.');
    case '1113':
      return native(429, '1113', 'Insufficient balance or no resource package. Please recharge.');
    case '1211':
      return native(400, '1211', 'Unknown Model, please check the model code.');
    case '1214':
      return envelope(400, 'invalid_request_error', '1214', 'Input cannot be empty');
    case '1220':
      // A plan without the model (glm-5 on Lite). Status and envelope by analogy with 1313.
      return envelope(403, 'permission_error', '1220', 'You do not have permission to access glm-5');
    case '1302':
      return envelope(429, 'rate_limit_error', '1302', 'High concurrency usage of this API, please reduce concurrency or contact customer service to increase limits');
    case '1303':
      return envelope(429, 'rate_limit_error', '1303', 'High frequency usage of this API, please reduce frequency or contact customer service to increase limits');
    case '1304':
      return envelope(429, 'rate_limit_error', '1304', 'The daily call limit has been reached');
    case '1305':
      return envelope(529, 'overloaded_error', '1305', 'The service may be temporarily overloaded, please try again later');
    case '1308':
      return envelope(429, 'rate_limit_error', '1308', `Usage limit reached for 5 hour. Your limit will reset at ${chinaTime(resetAt ?? now + 2 * HOUR)}`);
    case '1309':
      return envelope(429, 'rate_limit_error', '1309', 'Your GLM Coding Plan package has expired, please renew to restore access');
    case '1310':
      // Seen without the top-level "type" key (§3.5).
      return envelope(429, 'rate_limit_error', '1310', `Weekly/Monthly Limit Exhausted. Your limit will reset at ${chinaTime(resetAt ?? now + 72 * HOUR)}`, false);
    // 1311 and 1316 as Z.AI's api-code table lists them (docs.z.ai/api-reference/api-code): both 429.
    case '1311':
      return envelope(429, 'rate_limit_error', '1311', 'Your current subscription plan does not yet include access to GLM-5');
    case '1316':
      return envelope(429, 'rate_limit_error', '1316', `Usage limit reached for the past 5 hours. Insufficient balance for extra usage. Resets at ${chinaTime(resetAt ?? now + 2 * HOUR)}.`);
    case '1313':
      return envelope(403, 'permission_error', '1313', 'Your account has been restricted for violating the fair use policy');
    case '500':
      return envelope(500, 'api_error', '500', 'Internal Error');
  }
}

/** An error quoting the credentials the request came with (the `echo_key` mode). */
function echoKey(req: Request, mode: Extract<FakeZaiMode, { kind: 'echo_key' }>): Response {
  const auth = req.headers.get('authorization') ?? '(none)';
  const xkey = req.headers.get('x-api-key') ?? '(none)';
  return native(mode.status ?? 401, mode.code ?? '1000', `Authentication failed; authorization: ${auth}, x-api-key: ${xkey}`);
}

/** What real Z.AI refuses before generating anything; null when the body is acceptable. */
function validate(body: Record<string, unknown>, models: Set<string>): Response | null {
  const model = typeof body.model === 'string' ? body.model : '';
  if (!models.has(model.toLowerCase()) && !model.startsWith('claude-')) return errorResponse('1211', Date.now());
  const messages = Array.isArray(body.messages) ? (body.messages as Msg[]) : [];
  // §3.4 item 5: not in the system prompt either.
  const system = body.system;
  if (system === '' || (Array.isArray(system) && system.some((b: Record<string, unknown>) => b?.type === 'text' && b.text === ''))) return errorResponse('1214', Date.now());
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    if (m.role !== 'user' && m.role !== 'assistant') {
      return json(422, {
        detail: [
          {
            type: 'literal_error',
            loc: ['body', 'messages', i, 'role'],
            msg: "Input should be 'user' or 'assistant'",
            input: m.role,
            ctx: { expected: "'user' or 'assistant'" },
          },
        ],
      });
    }
    if (typeof m.content === 'string') {
      if (m.content === '') return errorResponse('1214', Date.now());
      continue;
    }
    for (const b of m.content) {
      if (b.type === 'text' && b.text === '') return errorResponse('1214', Date.now());
      // §3.4 item 5: no empty text anywhere, tool results included.
      if (b.type === 'tool_result' && Array.isArray(b.content) && b.content.some((c: Record<string, unknown>) => c?.type === 'text' && c.text === '')) {
        return errorResponse('1214', Date.now());
      }
      if (b.type === 'tool_use' && (typeof b.input !== 'object' || b.input === null || Array.isArray(b.input))) {
        return json(500, {
          type: 'error',
          error: { type: 'api_error', code: '500', message: `[500]['ClaudeContentBlockToolResult' object has no attribute 'id'][${zaiRequestId()}]` },
        });
      }
    }
  }
  return null;
}

interface Rule {
  mode: FakeZaiMode;
  key: string | null;
  left: number;
}

function quotaBody(q: FakeQuota): Record<string, unknown> {
  const limits: Record<string, unknown>[] = q.windows.map((w) => {
    const remaining = Math.max(0, w.usage - w.currentValue);
    const l: Record<string, unknown> = {
      type: 'TOKENS_LIMIT',
      unit: w.unit,
      number: w.number,
      usage: w.usage,
      currentValue: w.currentValue,
      remaining,
      percentage: Math.min(100, Math.round((w.currentValue / w.usage) * 100)),
    };
    if (w.nextResetTime !== undefined) l.nextResetTime = w.nextResetTime;
    return l;
  });
  if (q.timeLimit) {
    limits.push({
      type: 'TIME_LIMIT',
      unit: 5,
      number: 1,
      usage: 1000,
      currentValue: 250,
      remaining: 750,
      percentage: 25,
      nextResetTime: Date.now() + 20 * 24 * HOUR,
      usageDetails: [{ modelCode: 'search-prime', usage: 12 }],
    });
  }
  const data: Record<string, unknown> = { limits };
  if (q.level) data.level = q.level;
  return { code: 200, msg: 'Operation successful', data, success: true };
}

export function defaultFakeQuota(now = Date.now()): FakeQuota {
  return {
    level: 'pro',
    windows: [
      { unit: 3, number: 5, usage: 200_000_000, currentValue: 6_000_000, nextResetTime: now + 3 * HOUR },
      { unit: 6, number: 1, usage: 2_000_000_000, currentValue: 400_000_000, nextResetTime: now + 5 * 24 * HOUR },
    ],
    timeLimit: true,
  };
}

export function startFakeZai(opts: FakeZaiOptions = {}): FakeZai {
  const keys = new Set(opts.keys ?? DEFAULT_KEYS);
  const models = new Set((opts.models ?? DEFAULT_MODELS).map((m) => m.toLowerCase()));
  const replyText = opts.replyText ?? 'Hello from the fake Z.AI.';
  const record = opts.record ?? true;
  let quota: FakeQuota | FakeQuotaFailure = opts.quota ?? defaultFakeQuota();
  const keyQuotas = new Map<string, FakeQuota | FakeQuotaFailure>();
  let rules: Rule[] = [];
  const requests: RecordedRequest[] = [];

  function pickMode(key: string | null): FakeZaiMode {
    let chosen: Rule | undefined;
    for (let i = rules.length - 1; i >= 0; i--) {
      const r = rules[i]!;
      if (r.left === 0) continue;
      if (r.key !== null && r.key === key) {
        chosen = r;
        break;
      }
      if (r.key === null && !chosen) chosen = r;
    }
    if (!chosen) return { kind: 'ok' };
    if (chosen.left > 0) chosen.left--;
    if (chosen.left === 0) rules = rules.filter((r) => r !== chosen);
    return chosen.mode;
  }

  function authKey(req: Request): string | null {
    const auth = req.headers.get('authorization');
    const bearer = auth && /^bearer\s+/i.test(auth) ? auth.replace(/^bearer\s+/i, '').trim() : null;
    if (bearer && keys.has(bearer)) return bearer;
    const xkey = req.headers.get('x-api-key');
    if (xkey && keys.has(xkey)) return xkey;
    return null;
  }

  /** An SSE body from frames, with the mode's faults and delays applied; marks the record aborted on cancel. */
  function sseStream(frames: string[], mode: FakeZaiMode, rec: RecordedRequest, slowDelay = 0): Response {
    let fault: FrameStreamOptions['fault'];
    if (mode.kind === 'reset_mid_stream') fault = { at: mode.afterEvents ?? 3, what: { kind: 'reset' } };
    else if (mode.kind === 'stall_mid_stream') fault = { at: mode.afterEvents ?? 2, what: { kind: 'stall', ms: mode.ms } };
    else if (mode.kind === 'malformed_data') {
      const text = 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_del\n\n';
      fault = { at: mode.afterEvents ?? 0, what: { kind: 'insert', text } };
    } else if (mode.kind === 'sse_error') {
      const code = mode.code ?? '1305';
      const type = mode.errorType ?? 'overloaded_error';
      const message = mode.message ?? `[${code}][The service may be temporarily overloaded, please try again later][${zaiRequestId()}]`;
      const text = mode.native ? `data: ${JSON.stringify({ error: { code, message } })}\n\n` : frame({ type: 'error', error: { type, code, message } });
      fault = { at: mode.afterEvents ?? 0, what: { kind: 'insert', text, thenClose: true } };
    }
    // Before the stream is made: the fast path ends it (onEnd) inside the constructor.
    rec.ended = false;
    const body = frameStream(frames, {
      fault,
      delayMs: slowDelay,
      write: mode.kind === 'awkward_framing' ? awkwardWrite : undefined,
      onCancel: () => (rec.aborted = true),
      onEnd: () => (rec.ended = true),
    });
    return new Response(body, { headers: SSE_HEADERS });
  }

  /** A global echo_key rule, which answers a key the fake does not know too (a key with a typo). */
  function echoRule(): Extract<FakeZaiMode, { kind: 'echo_key' }> | null {
    const r = rules.findLast((x) => x.key === null && x.left !== 0 && x.mode.kind === 'echo_key');
    return r ? (r.mode as Extract<FakeZaiMode, { kind: 'echo_key' }>) : null;
  }

  async function handleMessages(req: Request, rec: RecordedRequest, raw: string): Promise<Response> {
    if (!rec.key) {
      const echo = echoRule();
      return echo ? echoKey(req, echo) : errorResponse('1002', Date.now());
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      return envelope(400, 'invalid_request_error', '1210', 'Invalid JSON body');
    }
    const invalid = validate(body, models);
    if (invalid) return invalid;
    const mode = pickMode(rec.key);
    rec.mode = mode.kind;
    const now = Date.now();
    switch (mode.kind) {
      case 'error':
        return errorResponse(mode.code, now, mode.resetAt);
      case 'http429':
        return json(
          429,
          { type: 'error', error: { type: 'rate_limit_error', message: 'Rate limit exceeded' } },
          mode.retryAfter === undefined ? {} : { 'retry-after': String(mode.retryAfter) },
        );
      case 'echo_key':
        return echoKey(req, mode);
      case 'html502':
        return new Response('<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>', {
          status: 502,
          headers: { 'content-type': 'text/html' },
        });
      case 'reset_before_first_byte':
        return new Response(new ReadableStream({ start: (c) => c.error() }), { headers: SSE_HEADERS });
      case 'stall_before_first_byte':
        await Promise.race([Bun.sleep(mode.ms), new Promise((r) => req.signal.addEventListener('abort', r, { once: true }))]);
        if (req.signal.aborted) {
          rec.aborted = true;
          return new Response(null, { status: 499 });
        }
        break;
      case 'empty_response':
        return new Response('', { headers: SSE_HEADERS });
      default:
        break;
    }
    const model = String(body.model);
    const slow = mode.kind === 'slow_chunks' ? mode : null;
    const reply = script(body, raw.length, replyText, opts.unsignedThinking);
    if (body.stream !== true || mode.kind === 'json_for_stream') return json(200, messageJson(reply, model));
    let frames = sseFrames(reply, model, { textChunks: slow?.chunks, toolInputArray: mode.kind === 'tool_input_array' });
    if (mode.kind === 'no_message_stop') frames = frames.slice(0, -1);
    if (mode.kind === 'done_marker') frames = [...frames.slice(0, -1), 'data: [DONE]\n\n'];
    if (mode.kind === 'truncated') frames = frames.slice(0, frames.findIndex((f) => f.startsWith('event: content_block_delta')) + 1);
    return sseStream(frames, mode, rec, slow?.delayMs ?? 0);
  }

  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    idleTimeout: 0,
    async fetch(req) {
      const u = new URL(req.url);
      // The Anthropic surface lives under /api/anthropic; accept bare /v1/... as well.
      const path = u.pathname.startsWith('/api/anthropic/') ? u.pathname.slice('/api/anthropic'.length) : u.pathname;
      const headers: Record<string, string> = {};
      req.headers.forEach((v, k) => {
        headers[k] = v;
      });
      const raw = req.method === 'POST' ? await req.text() : '';
      let body: unknown;
      if (raw) {
        try {
          body = JSON.parse(raw);
        } catch {
          body = raw;
        }
      }
      const rec: RecordedRequest = {
        method: req.method,
        path,
        query: u.search,
        headers,
        body,
        key: authKey(req),
        aborted: false,
        ended: true,
        mode: 'ok',
      };
      if (record) requests.push(rec);
      if (req.method === 'POST' && path === '/v1/messages') return handleMessages(req, rec, raw);
      if (req.method === 'GET' && path === '/v1/models') {
        if (!rec.key) return errorResponse('1002', Date.now());
        const data = [...models].map((id) => ({ id, type: 'model', display_name: id.toUpperCase(), created_at: '2025-09-30T00:00:00Z' }));
        return json(200, { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data[data.length - 1]?.id ?? null });
      }
      if (req.method === 'GET' && path === '/api/monitor/usage/quota/limit') {
        if (!rec.key) {
          const echo = echoRule();
          if (echo) return json(echo.status ?? 401, { code: echo.status ?? 401, msg: `token incorrect: ${req.headers.get('authorization') ?? '(none)'}`, success: false });
          return json(401, { code: 401, msg: 'token expired or incorrect', success: false });
        }
        const q = keyQuotas.get(rec.key) ?? quota;
        if ('success' in q) {
          if (q.html) return new Response(`<html><body><h1>${q.httpStatus ?? 200} ${q.msg}</h1></body></html>`, { status: q.httpStatus ?? 200, headers: { 'content-type': 'text/html' } });
          return json(q.httpStatus ?? 200, { code: q.code ?? 500, msg: q.msg, success: false });
        }
        return json(200, quotaBody(q));
      }
      if (req.method === 'HEAD') return new Response(null, { status: 200 });
      return native(404, '1222', 'API does not exist');
    },
  });

  const port = server.port as number;
  return {
    url: `http://127.0.0.1:${port}/api/anthropic`,
    quotaUrl: `http://127.0.0.1:${port}/api/monitor/usage/quota/limit`,
    port,
    requests,
    setMode(mode, o = {}) {
      if (mode.kind === 'ok' && o.key === undefined && o.times === undefined) {
        rules = [];
        return;
      }
      rules.push({ mode, key: o.key ?? null, left: o.times ?? -1 });
    },
    clearModes() {
      rules = [];
    },
    setQuota(q, o = {}) {
      if (o.key !== undefined) keyQuotas.set(o.key, q);
      else quota = q;
    },
    messages() {
      return requests.filter((r) => r.path === '/v1/messages');
    },
    async stop() {
      await server.stop(true);
    },
  };
}
