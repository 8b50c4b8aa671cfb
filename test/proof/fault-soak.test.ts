// A seeded, randomized fault soak of failover, limits and stream handling: the real server and
// providers in process, four Google accounts on the fake Google and three Z.AI keys on the fake
// Z.AI. Before each request one fault from the fakes' switches is put on the next upstream call
// (a 429 with each reset hint, capacity, 5xx, an HTML 502, resets before and during the stream, a
// short stall, a malformed data line, no final event, an empty answer, the token endpoint down or
// refusing the grant). Requests mix streaming and not, Claude, Gemini and GLM, conversations that
// come back with their session and history, and clients that leave mid-stream. After each request
// and at the end, what Claude Code relies on (anthropic-claude-code-zai.md §1.6, Part 2.9) and
// what the pool must have recorded is checked. Then the same faults twenty requests at a time, on
// more accounts, with the fallback map on and now and then every account of a provider limited.
// A failure names its seed: SOAK_SEED=<seed> replays it (the sequential part exactly; the concurrent
// part up to the order the requests reach the fakes). SOAK_REQUESTS, SOAK_BATCHES, SOAK_CONCURRENCY
// and SOAK_CAP (MAX_CONCURRENT_PER_ACCOUNT) make it longer or harder; SOAK_VERBOSE=1 traces.
// Found so far: the fake Z.AI marked every fast-path stream as never ended (test/fakes/zai.ts).

import { afterAll, beforeAll, expect, test } from 'bun:test';
import type { Database } from 'bun:sqlite';
import { Stream } from '@anthropic-ai/sdk/core/streaming';
import { MessageStream } from '@anthropic-ai/sdk/lib/MessageStream';
import { loadConfig } from '../../src/config.ts';
import { quotaGroupOf } from '../../src/providers/antigravity/models.ts';
import { type Account, listAccounts, upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';
import { ALL_MODELS, listLimits, type ModelLimit } from '../../src/store/limits.ts';
import { type FakeGoogle, type FakeGoogleMode, type RecordedGoogleRequest, startFakeGoogle } from '../fakes/google.ts';
import { type FakeZai, type FakeZaiMode, type RecordedRequest, startFakeZai } from '../fakes/zai.ts';
import { cleanupTempDirs, googleEnv, tempDir, zaiEnv } from '../e2e/helpers.ts';
import { type InProcessServer, serveInProcess } from '../e2e/in-process.ts';

const SEED = Number(process.env.SOAK_SEED ?? 20261205);
const REQUESTS = Number(process.env.SOAK_REQUESTS ?? 110);
const PROXY_KEY = ['proxy', 'key', 'FAKE', 'soak', '0123456789'].join('-');
const ZAI_KEYS = ['a', 'b', 'c'].map((x) => ['zai', 'FAKE', 'soak', x.repeat(4), '0123456789'].join('-'));
const EMAILS = ['s1@example.com', 's2@example.com', 's3@example.com', 's4@example.com'];
const MORE_EMAILS = ['c1@example.com', 'c2@example.com', 'c3@example.com', 'c4@example.com', 'c5@example.com', 'c6@example.com'];
const MORE_ZAI_KEYS = ['d', 'e', 'f', 'g'].map((x) => ['zai', 'FAKE', 'soak', x.repeat(4), '0123456789'].join('-'));
const MODELS = ['claude-sonnet-4-6', 'claude-opus-4-6-thinking', 'gemini-3-flash', 'gemini-pro-agent', 'glm-4.6', 'glm-5.1'];
const TOOLS = [{ name: 'Bash', description: 'Run a shell command', input_schema: { type: 'object', properties: { command: { type: 'string' } }, required: ['command'] } }];
// The client's own list (protocol Part 2.9, the SDK's ErrorType), not the proxy's: checked against, not borrowed.
const ERROR_TYPES = new Set(
  'invalid_request_error authentication_error billing_error permission_error not_found_error request_too_large rate_limit_error api_error timeout_error overloaded_error'.split(' '),
);

/** mulberry32: small, seeded, the same sequence on every machine. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let google: FakeGoogle;
let zai: FakeZai;
let server: InProcessServer;
let accounts: Account[];
let dbPath = '';

/** A fresh data dir with these accounts, and the server on it (replaces the globals the checks read). */
async function startRig(emails: readonly string[], keys: readonly string[], env: Record<string, string> = {}): Promise<void> {
  reader?.close();
  reader = null;
  await server?.stop();
  const config = loadConfig({
    PROXY_API_KEY: PROXY_KEY,
    MCP_DATA_DIR: tempDir('mcp-fault-soak-'),
    ...zaiEnv(zai),
    ...googleEnv(google),
    UPSTREAM_IDLE_TIMEOUT_SEC: '1',
    MAX_WAIT_SEC: '2',
    DEFAULT_COOLDOWN_SEC: '5',
    QUOTA_POLL_INTERVAL_SEC: '3600',
    ...env,
  });
  dbPath = config.dbPath;
  const db = openDatabase(config.dbPath);
  emails.forEach((email, i) =>
    upsertAccount(db, { provider: 'antigravity', email, label: `g${i + 1}`, credentials: { kind: 'oauth', refreshToken: google.refreshTokenFor(email) } }, Date.now() + i),
  );
  keys.forEach((apiKey, i) => upsertAccount(db, { provider: 'zai', label: `z${i + 1}`, credentials: { kind: 'api_key', apiKey } }, Date.now() + 100 + i));
  accounts = listAccounts(db);
  server = await serveInProcess(config, db);
  allCalls.length = 0;
  tokenFaulted.clear();
}

beforeAll(() => {
  google = startFakeGoogle();
  zai = startFakeZai({ keys: [...ZAI_KEYS, ...MORE_ZAI_KEYS] });
});

afterAll(async () => {
  reader?.close();
  await server?.stop();
  await google?.stop();
  await zai?.stop();
  cleanupTempDirs();
});

// ---- who the fakes answered, and how ----------------------------------------------------------

/** Access tokens seen with an email: a fault answers whatever the token, so a stale one still names its account. */
const tokenEmail = new Map<string, string>();

interface Call {
  provider: 'antigravity' | 'zai';
  accountId: string | null;
  model: string;
  /** The fault the fake answered with ('ok' for a normal answer). */
  mode: string;
  /** The mode in full (reset hints). */
  detail: FakeGoogleMode | FakeZaiMode | null;
  rec: RecordedGoogleRequest | RecordedRequest;
}

function accountOfEmail(email: string | null): string | null {
  return email ? (accounts.find((a) => a.email === email)?.id ?? null) : null;
}
function accountOfKey(key: string | null): string | null {
  return accounts.find((a) => a.credentials.kind === 'api_key' && a.credentials.apiKey === key)?.id ?? null;
}

/** The modes set for the next call, in the order the fakes took them (one-shot rules). */
const pendingGoogle: FakeGoogleMode[] = [];
const pendingZai: FakeZaiMode[] = [];

function callsSince(g: number, z: number): Call[] {
  for (const r of google.requests) if (r.token && r.email) tokenEmail.set(r.token, r.email);
  const out: Call[] = [];
  for (const r of google.requests.slice(g)) {
    if (r.rpc !== 'streamGenerateContent' && r.rpc !== 'generateContent') continue;
    const email = r.email ?? (r.token ? (tokenEmail.get(r.token) ?? null) : null);
    const body = r.body as { model?: string };
    // An access token the fake no longer knows is answered with a 401 (the soak expires them all before a token fault).
    const mode = r.mode === 'ok' && r.email === null ? 'stale_token' : r.mode;
    out.push({ provider: 'antigravity', accountId: accountOfEmail(email), model: String(body.model), mode, detail: null, rec: r });
  }
  for (const r of zai.requests.slice(z)) {
    if (r.path !== '/v1/messages') continue;
    out.push({ provider: 'zai', accountId: accountOfKey(r.key), model: String((r.body as { model?: string }).model), mode: r.mode, detail: null, rec: r });
  }
  return out;
}

// ---- the faults --------------------------------------------------------------------------------

type Fault =
  | { on: 'antigravity'; mode: FakeGoogleMode; token?: 'down' | 'invalid_grant' | 'http500' }
  | { on: 'zai'; mode: FakeZaiMode };

/** Faults that may come after the answer began (then only an error event can tell the client). */
const MID_STREAM = new Set(['reset_mid_stream', 'stall_mid_stream', 'malformed_data', 'no_finish', 'no_message_stop', 'truncated', 'sse_error', 'slow_chunks']);

const HINTS = ['full', 'retry_info', 'quota_reset_delay', 'quota_reset_timestamp', 'message', 'none'] as const;

function googleFault(r: () => number, pick: <T>(xs: readonly T[]) => T): Fault {
  const resetMs = 3000 + Math.floor(r() * 4000);
  const modes: FakeGoogleMode[] = [
    { kind: 'quota_exhausted', hint: pick(HINTS), resetMs },
    { kind: 'rate_limited', resetMs },
    { kind: 'capacity' },
    { kind: 'http500' },
    { kind: 'html502' },
    { kind: 'reset_before_first_byte' },
    { kind: 'reset_mid_stream', afterChunks: 1 + Math.floor(r() * 3) },
    { kind: 'stall_mid_stream', ms: 200 + Math.floor(r() * 300), afterChunks: 1 },
    { kind: 'stall_before_first_byte', ms: 200 + Math.floor(r() * 300) },
    { kind: 'malformed_data', afterChunks: Math.floor(r() * 3) },
    { kind: 'no_finish' },
    { kind: 'empty_response' },
  ];
  const x = r();
  if (x < 0.06) return { on: 'antigravity', mode: { kind: 'ok' }, token: pick(['down', 'invalid_grant', 'http500'] as const) };
  return { on: 'antigravity', mode: pick(modes) };
}

function zaiFault(r: () => number, pick: <T>(xs: readonly T[]) => T): Fault {
  const modes: FakeZaiMode[] = [
    { kind: 'http429', retryAfter: 3 + Math.floor(r() * 4) },
    { kind: 'http429' },
    { kind: 'error', code: '1302' },
    { kind: 'error', code: '1308', resetAt: Date.now() + 4000 + Math.floor(r() * 3000) },
    { kind: 'error', code: '1305' },
    { kind: 'error', code: '500' },
    { kind: 'html502' },
    { kind: 'reset_before_first_byte' },
    { kind: 'reset_mid_stream', afterEvents: 2 + Math.floor(r() * 4) },
    { kind: 'stall_mid_stream', ms: 200 + Math.floor(r() * 300) },
    { kind: 'stall_before_first_byte', ms: 200 + Math.floor(r() * 300) },
    { kind: 'malformed_data', afterEvents: Math.floor(r() * 4) },
    { kind: 'no_message_stop' },
    { kind: 'truncated' },
    { kind: 'empty_response' },
    { kind: 'sse_error', afterEvents: Math.floor(r() * 3) },
    // Z.AI's limits also come as an error event, before or after the answer began.
    { kind: 'sse_error', afterEvents: Math.floor(r() * 4), errorType: 'rate_limit_error', code: '1302', message: '[1302][High concurrency usage of this API][FAKE]' },
    { kind: 'sse_error', afterEvents: Math.floor(r() * 4), native: true, code: '1305' },
  ];
  return { on: 'zai', mode: pick(modes) };
}

function providerOf(model: string): 'antigravity' | 'zai' {
  return model.startsWith('glm') ? 'zai' : 'antigravity';
}

// ---- one request ---------------------------------------------------------------------------------

interface Conversation {
  session: string;
  model: string;
  history: Array<{ role: 'user' | 'assistant'; content: string }>;
  /** The account that served its last request, when that request met no fault (then it is home). */
  home: string | null;
}

interface Outcome {
  status: number;
  headers: Headers;
  text: string;
  /** Anthropic error type from the envelope or the error event, null on success. */
  error: string | null;
  /** The final message's text, on success. */
  answer: string | null;
  aborted: boolean;
}

async function send(body: Record<string, unknown>, abortAfterDelta: boolean, abortAfterMs: number | null): Promise<Outcome> {
  const ctrl = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  if (abortAfterMs !== null) timer = setTimeout(() => ctrl.abort(), abortAfterMs);
  let res: Response;
  try {
    res = await fetch(`${server.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': PROXY_KEY, 'anthropic-version': '2023-06-01' },
      body: JSON.stringify(body),
      signal: ctrl.signal,
    });
  } catch (err) {
    clearTimeout(timer);
    if (ctrl.signal.aborted) return { status: 0, headers: new Headers(), text: '', error: null, answer: null, aborted: true };
    throw err;
  }
  let text = '';
  let aborted = false;
  try {
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
      if (abortAfterDelta && text.includes('event: content_block_delta')) {
        ctrl.abort();
        aborted = true;
        break;
      }
    }
  } catch (err) {
    if (!ctrl.signal.aborted) throw err;
    aborted = true;
  }
  clearTimeout(timer);
  return { status: res.status, headers: res.headers, text, error: null, answer: null, aborted };
}

/** Checks the client's side of one answer; fills in error and answer. */
async function checkAnswer(o: Outcome, stream: boolean, where: string): Promise<void> {
  expect(o.status, `${where}: never a 500`).not.toBe(500);
  if (o.status !== 200) {
    let body: { type?: unknown; error?: { type?: unknown; message?: unknown } };
    try {
      body = JSON.parse(o.text);
    } catch {
      throw new Error(`${where}: a ${o.status} that is not JSON: ${o.text.slice(0, 200)}`);
    }
    expect(body.type, `${where}: the Anthropic error envelope`).toBe('error');
    expect(ERROR_TYPES.has(String(body.error?.type)), `${where}: a known error type (${body.error?.type})`).toBe(true);
    expect(typeof body.error?.message === 'string' && body.error.message.length > 0, `${where}: an error message`).toBe(true);
    expect(o.text, `${where}: no stack trace`).not.toMatch(/\n\s+at .*\.ts:\d+/);
    if (o.status === 429) expect(Number(o.headers.get('retry-after')), `${where}: a 429 carries retry-after`).toBeGreaterThan(0);
    // A final answer (Claude Code gives up at once) only for a wait longer than MAX_WAIT_SEC (2).
    if (o.headers.get('x-should-retry') === 'false' && o.status === 429) {
      expect(Number(o.headers.get('retry-after')), `${where}: a final 429 for a wait the proxy would have sat out: ${o.text}`).toBeGreaterThan(2);
    }
    o.error = String(body.error?.type);
    return;
  }
  if (!stream) {
    const m = JSON.parse(o.text) as { type?: string; content?: Array<{ type: string; text?: string }> };
    expect(m.type, `${where}: a message`).toBe('message');
    o.answer = (m.content ?? []).map((b) => b.text ?? '').join('');
    return;
  }
  expect([...o.text.matchAll(/^event: message_start$/gm)].length, `${where}: one message_start`).toBeLessThanOrEqual(1);
  // A streamed 200: the SDK's accumulator reads it to the end, or it ends with one proper error event.
  const sse = Stream.fromSSEResponse(new Response(o.text, { headers: { 'content-type': 'text/event-stream' } }), new AbortController());
  try {
    const msg = await MessageStream.fromReadableStream(sse.toReadableStream()).finalMessage();
    o.answer = msg.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
  } catch (err) {
    const events = [...o.text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]!);
    const type = (err as { type?: unknown; error?: { error?: { type?: unknown } } }).error?.error?.type;
    if (events.at(-1) !== 'error' || !ERROR_TYPES.has(String(type))) {
      throw new Error(`${where}: a 200 stream the SDK cannot read (${(err as Error).message}), events ${events.join(',')}`);
    }
    expect(events.filter((e) => e === 'error'), `${where}: one error event`).toHaveLength(1);
    o.error = String(type);
  }
}

// ---- the pool's side -----------------------------------------------------------------------------

interface Expected {
  /** Rate and quota limits the fakes answered, per account and model, with when they end. */
  limits: Array<{ accountId: string; model: string; until: number; scope: 'model' | 'account' }>;
  /** Accounts whose refresh the token endpoint refused with invalid_grant. */
  invalid: Set<string>;
}

function codeOf(c: Call): string {
  return (c.detail as { code?: string } | null)?.code ?? '';
}

function isRateFault(c: Call): boolean {
  return c.mode === 'quota_exhausted' || c.mode === 'rate_limited' || c.mode === 'http429' || ((c.mode === 'error' || c.mode === 'sse_error') && ['1302', '1308'].includes(codeOf(c)));
}

/** Whether the limit on `model` can come from a fault on `faulted` (the same model, or Google's shared quota). */
function sameQuota(provider: string, model: string, faulted: string): boolean {
  if (model.toLowerCase() === faulted.toLowerCase()) return true;
  return provider === 'antigravity' && quotaGroupOf(model) === quotaGroupOf(faulted);
}

/** Every call the fakes answered so far, with the mode each was set for. */
const allCalls: Call[] = [];
/** Accounts whose refresh the token endpoint failed at some point (a transient failure of theirs). */
const tokenFaulted = new Set<string>();

function explains(l: ModelLimit, provider: string): boolean {
  if (l.kind === 'transient' && tokenFaulted.has(l.accountId)) return true;
  return allCalls.some((c) => {
    if (c.accountId !== l.accountId || c.mode === 'ok' || c.mode === 'slow_chunks') return false;
    // Z.AI's 5-hour quota (1308) and its concurrency cap (1302) are the whole key's.
    if (l.model === ALL_MODELS) return (c.mode === 'error' || c.mode === 'sse_error') && ['1302', '1308'].includes(codeOf(c));
    if (!sameQuota(provider, l.model, c.model)) return false;
    if (l.kind === 'rate_limited' || l.kind === 'quota_exhausted') return isRateFault(c);
    if (l.kind === 'capacity') return c.mode === 'capacity' || (c.mode === 'sse_error' && codeOf(c) !== '1302') || (c.mode === 'error' && codeOf(c) === '1305');
    if (l.kind === 'transient') return !isRateFault(c);
    return false;
  });
}

function poolLimits(): ModelLimit[] {
  const t = Date.now();
  return server.routing.pool.state().flatMap((s) => s.limits.filter((l) => l.resetAt > t));
}

async function checkPool(expected: Expected, where: string): Promise<void> {
  // The pool takes in what happened as the answer ends; the quota round after a 429 runs on its own.
  const deadline = Date.now() + 1500;
  for (;;) {
    const problems: string[] = [];
    const t = Date.now();
    const limits = poolLimits();
    for (const l of limits) {
      const provider = accounts.find((a) => a.id === l.accountId)!.provider;
      if (!explains(l, provider)) problems.push(`limit nobody answered: ${l.accountId} ${l.model} ${l.kind} (${l.reason})`);
    }
    for (const e of expected.limits) {
      if (e.until < t + 300) continue; // ended, or ends while we look
      const model = e.scope === 'account' ? ALL_MODELS : e.model;
      const found = limits.find((l) => l.accountId === e.accountId && (l.model === model || l.model === ALL_MODELS) && l.resetAt >= e.until - 1500);
      if (!found) problems.push(`no limit for the 429 on ${e.accountId} ${model} until ${new Date(e.until).toISOString()}`);
    }
    // The store holds what the pool routes by (limits in force).
    const stored = listLimits(dbOf()).filter((l) => l.resetAt > t);
    for (const l of limits) {
      if (!stored.some((s) => s.accountId === l.accountId && s.model === l.model && s.resetAt === l.resetAt)) problems.push(`limit not stored: ${l.accountId} ${l.model}`);
    }
    const invalid = new Set(server.routing.pool.accounts().filter((a) => a.status === 'invalid').map((a) => a.id));
    for (const id of invalid) if (!expected.invalid.has(id)) problems.push(`marked invalid without an invalid_grant: ${id}`);
    for (const id of expected.invalid) if (!invalid.has(id)) problems.push(`invalid_grant not marked: ${id}`);
    if (!problems.length) return;
    if (Date.now() > deadline) throw new Error(`${where}: ${problems.join('; ')}`);
    await Bun.sleep(50);
  }
}

let reader: Database | null = null;
/** A second connection to the store, as the CLI reads it. */
function dbOf(): Database {
  reader ??= openDatabase(dbPath);
  return reader;
}

/** SOAK_VERBOSE=1: one line per request that failed or was slow, with the calls it made and the limits after it. */
function trace(where: string, o: Outcome, calls: Call[], ms: number): void {
  if (!process.env.SOAK_VERBOSE || (!o.error && ms < 400)) return;
  const label = (id: string | null) => accounts.find((a) => a.id === id)?.label ?? '-';
  const made = calls.map((c) => `${label(c.accountId)}:${c.model}:${c.mode}`).join(',');
  const limits = poolLimits().map((l) => `${label(l.accountId)}:${l.model}:${l.kind}:${Math.round((l.resetAt - Date.now()) / 1000)}s`);
  console.log(`SOAK ${where} -> ${o.status} ${o.error ?? ''} in ${ms} ms, served by ${label(o.headers.get('x-proxy-account'))}; calls ${made}; limits ${limits.join(',')}; ${JSON.stringify(o.text.slice(-300))}`);
}

/** At the end: nothing in flight, no stream open, every upstream stream over, and a clean request served. */
async function checkEnd(): Promise<void> {
  const deadline = Date.now() + 3000;
  const busy = () => server.routing.pool.state().filter((s) => s.inFlight > 0).map((s) => `${s.account.label}:${s.inFlight}`);
  const open = () => [...google.generations(), ...zai.messages()].filter((m) => m.ended === false).map((m) => `${m.mode}${m.aborted ? ' (aborted)' : ''}`);
  while ((busy().length || open().length) && Date.now() < deadline) await Bun.sleep(25);
  expect(busy(), 'leases still held at the end').toEqual([]);
  expect(open(), 'upstream streams left open').toEqual([]);
  const metrics = await (await fetch(`${server.url}/metrics`, { headers: { 'x-api-key': PROXY_KEY } })).text();
  expect(metrics).not.toMatch(/^mcp_active_streams(\{\})? [1-9]/m);
  // And the server still serves a clean request on each provider.
  // Once the last limits the faults set have run out (seconds): a clean request then meets none.
  const until = Date.now() + 10_000;
  while (poolLimits().length && Date.now() < until) await Bun.sleep(100);
  for (const model of ['claude-sonnet-4-6', 'gemini-3-flash', 'glm-4.6']) {
    const o = await send({ model, max_tokens: 64, messages: [{ role: 'user', content: 'a clean request' }] }, false, null);
    await checkAnswer(o, false, `the clean request at the end (${model})`);
    expect(o.status, `the clean request at the end (${model}): ${o.text.slice(0, 300)}`).toBe(200);
  }
}

test(`a randomized fault soak (seed ${SEED}, replay with SOAK_SEED=${SEED}) keeps every answer an Anthropic one, the pool's state true and conversations on their accounts`, async () => {
  await startRig(EMAILS, ZAI_KEYS);
  const r = rng(SEED);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const conversations: Conversation[] = Array.from({ length: 10 }, (_, i) => ({ session: `soak-${SEED}-${i}`, model: MODELS[i % MODELS.length]!, history: [], home: null }));
  const expected: Expected = { limits: [], invalid: new Set() };
  const started = performance.now();
  const tally: Record<string, number> = {};

  for (let n = 0; n < REQUESTS; n++) {
    const conv = r() < 0.4 ? pick(conversations) : null;
    const model = conv?.model ?? pick(MODELS);
    const provider = providerOf(model);
    const stream = r() < 0.65;
    const abort = stream && r() < 0.1 ? 'mid_stream' : r() < 0.04 ? 'while_waiting' : !stream && r() < 0.06 ? 'before_the_whole_answer' : null;
    let fault: Fault | null = r() < 0.7 ? (provider === 'zai' ? zaiFault(r, pick) : googleFault(r, pick)) : null;
    // Now and then every account of the provider answers a one-second 429 at once: the request waits for the reset.
    const everyAccount = !fault && r() < 0.1;
    if (abort === 'mid_stream' || abort === 'before_the_whole_answer') fault = provider === 'zai' ? { on: 'zai', mode: { kind: 'slow_chunks', chunks: 12, delayMs: 60 } } : { on: 'antigravity', mode: { kind: 'slow_chunks', chunks: 12, delayMs: 60 } };
    if (abort === 'while_waiting') fault = provider === 'zai' ? { on: 'zai', mode: { kind: 'stall_before_first_byte', ms: 3000 } } : { on: 'antigravity', mode: { kind: 'stall_before_first_byte', ms: 3000 } };
    const where = `seed ${SEED} request #${n} (${model}, ${stream ? 'stream' : 'json'}${conv ? `, session ${conv.session}` : ''}, fault ${fault ? JSON.stringify(fault) : everyAccount ? 'a 1 s 429 on every account' : 'none'}${abort ? `, client leaves ${abort}` : ''})`;

    // Accounts that cannot serve the model as the request begins (a limit on it, or on the whole account).
    const limitedAtStart = new Set(
      poolLimits()
        .filter((l) => (l.model === ALL_MODELS || l.model.toLowerCase() === model) && accounts.find((a) => a.id === l.accountId)!.provider === provider)
        .map((l) => l.accountId),
    );
    const startedInvalid = new Set(server.routing.pool.accounts().filter((a) => a.status !== 'active').map((a) => a.id));
    const g0 = google.requests.length;
    const z0 = zai.requests.length;
    if (everyAccount) {
      for (const a of accounts) {
        if (a.provider !== provider) continue;
        if (a.provider === 'zai') zai.setMode({ kind: 'http429', retryAfter: 1 }, { key: (a.credentials as { apiKey: string }).apiKey, times: 1 });
        else google.setMode({ kind: 'rate_limited', resetMs: 1000 }, { email: a.email!, times: 2 });
      }
    }
    if (fault?.on === 'antigravity') {
      if ('token' in fault && fault.token) {
        google.expireAccessTokens();
        google.setMode({ kind: fault.token === 'down' ? 'token_down' : fault.token === 'invalid_grant' ? 'token_invalid_grant' : 'token_http500' }, { times: 1 });
      } else {
        // Twice for an answer before the stream (half the time): both endpoints of one account fail
        // (the walk, client.ts), so the account fails over and the pool must record it.
        const early = !['reset_mid_stream', 'stall_mid_stream', 'malformed_data', 'no_finish', 'slow_chunks'].includes(fault.mode.kind);
        google.setMode(fault.mode, { times: early && r() < 0.5 ? 2 : 1 });
      }
    } else if (fault?.on === 'zai') zai.setMode(fault.mode, { times: 1 });

    const messages = conv ? [...conv.history, { role: 'user' as const, content: `turn ${conv.history.length / 2 + 1} of ${conv.session}` }] : [{ role: 'user' as const, content: `one-off ${n}` }];
    const body: Record<string, unknown> = { model, max_tokens: 256, stream, messages };
    if (conv) {
      body.metadata = { user_id: JSON.stringify({ device_id: 'soak', account_uuid: '', session_id: conv.session }) };
      body.tools = TOOLS;
    }
    const sentAt = Date.now();
    const o = await send(body, abort === 'mid_stream', abort === 'while_waiting' || abort === 'before_the_whole_answer' ? 300 : null);
    const leftAt = Date.now();
    if (!o.aborted) await checkAnswer(o, stream, where);
    // One fault with two accounts free for the model to move to is absorbed: the client sees an answer.
    // Only a fault after the answer began may end a stream with an error event.
    const free = accounts.filter((a) => a.provider === provider && !limitedAtStart.has(a.id) && !startedInvalid.has(a.id)).length;
    const late = fault !== null && MID_STREAM.has(fault.mode.kind);
    if (!o.aborted && (everyAccount ? limitedAtStart.size === 0 && startedInvalid.size === 0 : free >= 2 && !(stream && late))) {
      expect(`${o.status} ${o.error ?? ''}`, `${where}: one fault with ${free} accounts free was not absorbed: ${o.text.slice(-300)}`).toBe('200 ');
    }

    // A rule no call took (the request failed before any upstream call) must not land on the next request.
    google.clearModes();
    zai.clearModes();
    const calls = callsSince(g0, z0);
    // The fault went to the first call of this request: its full mode, for the limit checks.
    if (fault && !('token' in fault && fault.token)) for (const c of calls) if (c.mode === fault.mode.kind) c.detail = fault.mode;
    allCalls.push(...calls);
    for (const [i, c] of calls.entries()) {
      if (!c.accountId || !isRateFault(c)) continue;
      // Google's other endpoint served the same account after the 429 (client.ts's walk): no limit then.
      if (calls.slice(i + 1).some((x) => x.accountId === c.accountId && x.mode === 'ok')) continue;
      const d = c.detail as { resetMs?: number; retryAfter?: number; resetAt?: number; hint?: string; code?: string; kind: string } | null;
      const t = Date.now();
      // Only hints the fake spells precisely enough to expect a reset from.
      let until: number | null = null;
      if (d?.kind === 'quota_exhausted' && d.hint !== 'none' && d.resetMs) until = t + d.resetMs - 2000;
      if (d?.kind === 'rate_limited' && d.resetMs) until = t + d.resetMs - 2000;
      if (d?.kind === 'http429' && d.retryAfter) until = t + d.retryAfter * 1000 - 2000;
      // No hint at all: DEFAULT_COOLDOWN_SEC (5).
      if ((d?.kind === 'http429' && !d.retryAfter) || (d?.kind === 'quota_exhausted' && d.hint === 'none')) until = t + 5000 - 2000;
      if (d?.kind === 'error' && d.code === '1308' && d.resetAt) until = d.resetAt - 2000;
      if (until !== null) expected.limits.push({ accountId: c.accountId, model: c.model, until, scope: d?.code === '1308' ? 'account' : 'model' });
    }
    // Refreshes the token endpoint failed, by account: an attempt can die there, before any generation
    // call; the one refused with invalid_grant, and only it, is invalid.
    const tokenFailed = new Set<string>();
    for (const t of google.requests.slice(g0)) {
      if (t.rpc !== 'token' || t.mode === 'ok') continue;
      const refresh = new URLSearchParams(String(t.body)).get('refresh_token');
      const id = accountOfEmail([...EMAILS, ...MORE_EMAILS].find((e) => google.refreshTokenFor(e) === refresh) ?? null);
      if (!id) continue;
      tokenFailed.add(id);
      tokenFaulted.add(id);
      if (t.mode === 'token_invalid_grant') expected.invalid.add(id);
    }
    const key = `${fault ? (fault.on === 'antigravity' && 'token' in fault && fault.token ? `token_${fault.token}` : fault.mode.kind) : everyAccount ? 'every_account' : 'none'}:${o.aborted ? 'aborted' : o.status === 200 ? (o.error ? `200+${o.error}` : '200') : `${o.status}/${o.error}`}`;
    tally[key] = (tally[key] ?? 0) + 1;
    trace(where, o, calls, Date.now() - sentAt);

    // A client that left: no upstream call of its request is still open.
    if (o.aborted) {
      // At once, not when the upstream idle timeout (1 s) would have cut a stalled call anyway.
      const open = () => callsSince(g0, z0).filter((c) => c.rec.ended === false || (c.mode === 'stall_before_first_byte' && !c.rec.aborted));
      while (open().length && Date.now() < leftAt + 600) await Bun.sleep(20);
      expect(open().map((c) => `${c.provider} ${c.model} ${c.mode}`), `${where}: upstream calls left open after the client left`).toEqual([]);
    }

    await checkPool(expected, where);
    // An invalid account, once checked, comes back (its login is fine): the soak keeps its pool.
    for (const id of expected.invalid) server.routing.pool.reactivate(id);
    expected.invalid.clear();

    // Sticky sessions: a conversation starts on its account (home) again while that account is not
    // limited for the model. Home is known from a clean request when no account was limited for the
    // model: then nothing overflowed (select.ts), and the account that served holds the binding.
    if (conv) {
      const first = calls[0];
      if (conv.home && first && !o.aborted && !limitedAtStart.has(conv.home) && !startedInvalid.has(conv.home) && !tokenFailed.has(conv.home)) {
        expect(first.accountId, `${where}: the conversation left its account ${conv.home}`).toBe(conv.home);
      }
      const clean = calls.length > 0 && calls.every((c) => c.mode === 'ok') && o.status === 200 && !o.error && !o.aborted;
      if (clean && limitedAtStart.size === 0) conv.home = o.headers.get('x-proxy-account');
      else conv.home = null;
      if (o.answer !== null && !o.aborted) conv.history.push(messages.at(-1)!, { role: 'assistant', content: o.answer || '(empty)' });
    }
  }

  await checkEnd();
  console.log(`fault soak seed ${SEED}: ${REQUESTS} requests in ${Math.round(performance.now() - started)} ms`);
  console.log(Object.entries(tally).sort().map(([k, v]) => `  ${k}: ${v}`).join('\n'));
}, 120_000);

const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY ?? 20);
const BATCHES = Number(process.env.SOAK_BATCHES ?? 8);

test(`the same faults ${CONCURRENCY} requests at a time, on more accounts with the fallback map on, sometimes every account of a provider limited at once (seed ${SEED})`, async () => {
  await startRig(MORE_EMAILS, MORE_ZAI_KEYS, { ENABLE_FALLBACK: 'true', ...(process.env.SOAK_CAP ? { MAX_CONCURRENT_PER_ACCOUNT: process.env.SOAK_CAP } : {}) });
  const r = rng(SEED + 1);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const tally: Record<string, number> = {};
  const started = performance.now();
  for (let b = 0; b < BATCHES; b++) {
    const g0 = google.requests.length;
    const z0 = zai.requests.length;
    // The faults, each on one account (the fakes' filters), so a call's fault names its account.
    const set: Array<{ accountId: string; mode: FakeGoogleMode | FakeZaiMode }> = [];
    const everyOne = r() < 0.3 ? pick(['antigravity', 'zai'] as const) : null;
    for (const a of accounts) {
      if (a.provider === everyOne) {
        const mode: FakeGoogleMode | FakeZaiMode = a.provider === 'zai' ? { kind: 'http429', retryAfter: 3 } : { kind: 'quota_exhausted', hint: 'full', resetMs: 3000 };
        if (a.provider === 'zai') zai.setMode(mode as FakeZaiMode, { key: (a.credentials as { apiKey: string }).apiKey, times: 1 });
        else google.setMode(mode as FakeGoogleMode, { email: a.email!, times: 2 });
        set.push({ accountId: a.id, mode });
        continue;
      }
      if (r() < 0.5) continue;
      const f = a.provider === 'zai' ? zaiFault(r, pick) : googleFault(r, pick);
      if ('token' in f && f.token) continue; // tokens are not per account
      if (r() < 0.2) f.mode = { kind: 'slow_chunks', chunks: 10, delayMs: 40 };
      if (f.on === 'zai') zai.setMode(f.mode, { key: (a.credentials as { apiKey: string }).apiKey, times: 1 });
      else google.setMode(f.mode, { email: a.email!, times: r() < 0.5 ? 2 : 1 });
      set.push({ accountId: a.id, mode: f.mode });
    }
    const jobs = Array.from({ length: CONCURRENCY }, async (_, j) => {
      const model = everyOne && r() < 0.6 ? pick(MODELS.filter((m) => providerOf(m) === everyOne)) : pick(MODELS);
      const stream = r() < 0.65;
      const leaves = stream && r() < 0.15;
      const where = `seed ${SEED} batch ${b} request ${j} (${model}, ${stream ? 'stream' : 'json'}${leaves ? ', client leaves' : ''}${everyOne ? `, every ${everyOne} account limited` : ''})`;
      const o = await send({ model, max_tokens: 256, stream, messages: [{ role: 'user', content: `batch ${b} request ${j}` }] }, leaves, null);
      if (!o.aborted) await checkAnswer(o, stream, where);
      const key = `${everyOne ? `every ${everyOne}` : 'mixed'}:${o.aborted ? 'aborted' : o.status === 200 ? (o.error ? `200+${o.error}` : '200') : `${o.status}/${o.error}`}`;
      tally[key] = (tally[key] ?? 0) + 1;
      trace(where, o, [], 0);
    });
    await Promise.all(jobs);
    google.clearModes();
    zai.clearModes();
    const calls = callsSince(g0, z0);
    for (const c of calls) c.detail = set.find((s) => s.accountId === c.accountId && s.mode.kind === c.mode)?.mode ?? null;
    allCalls.push(...calls);
    const expected: Expected = { limits: [], invalid: new Set() };
    for (const [i, c] of calls.entries()) {
      if (!c.accountId || !isRateFault(c)) continue;
      if (calls.slice(i + 1).some((x) => x.accountId === c.accountId && x.mode === 'ok')) continue;
      const d = c.detail as { resetMs?: number; retryAfter?: number; hint?: string; kind: string } | null;
      const t = Date.now();
      let until: number | null = null;
      if ((d?.kind === 'quota_exhausted' && d.hint !== 'none') || d?.kind === 'rate_limited') until = t + (d.resetMs ?? 0) - 2500;
      if (d?.kind === 'http429' && d.retryAfter) until = t + d.retryAfter * 1000 - 2500;
      if (until !== null) expected.limits.push({ accountId: c.accountId, model: c.model, until, scope: 'model' });
    }
    await checkPool(expected, `seed ${SEED} batch ${b}`);
  }
  await checkEnd();
  console.log(`fault soak seed ${SEED}, ${CONCURRENCY} at a time: ${BATCHES * CONCURRENCY} requests in ${Math.round(performance.now() - started)} ms`);
  console.log(Object.entries(tally).sort().map(([k, v]) => `  ${k}: ${v}`).join('\n'));
}, 120_000);
