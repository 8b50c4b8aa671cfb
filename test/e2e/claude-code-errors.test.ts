// The real Claude Code CLI, headless, against every kind of failure `mcp serve` answers with, the
// fake Z.AI making the upstream fail (protocol reference §1.6, §2.9): what Claude Code does with
// each (retries or stops, the message it shows) must be what a user wants, and a session that met a
// failure must go on with --resume. Fast on purpose: short waits (MAX_WAIT_SEC, cool-downs,
// Claude Code's retry count) keep every case to a few seconds.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type FakeZai, type FakeZaiMode, startFakeZai } from '../fakes/zai.ts';
import {
  CHILD_PROCESS_HOOK_MS,
  type ClaudeEvent,
  type ClaudeRun,
  cleanupTempDirs,
  type Env,
  mcpEnv,
  randomMarker,
  runClaude,
  runMcp,
  type ServeHandle,
  startServe,
  tempDir,
  zaiEnv,
} from './helpers.ts';

const PROXY_KEY = 'proxy-key-e2e-cc-errors-0123456789';
const ZAI_KEY = 'zai-test-key-cc-errors-0123456789';
let zai: FakeZai;
/** For the failures that leave no mark on the pool; one key. */
let shared: ServeHandle;
const servers: ServeHandle[] = [];

/** `mcp serve` with a fresh data dir and the one key: a failure that marks the key stays in its own server. */
async function serve(extra: Env = {}): Promise<ServeHandle> {
  const env = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ...zaiEnv(zai), MAX_WAIT_SEC: '2', PING_INTERVAL_SEC: '1', ...extra });
  expect((await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', ZAI_KEY], { env })).code).toBe(0);
  const s = await startServe({ env });
  servers.push(s);
  return s;
}

beforeAll(async () => {
  zai = startFakeZai({ keys: [ZAI_KEY] });
  // WRITE_TIMEOUT_SEC only bites a client that says it waits less (API_TIMEOUT_MS); Claude Code's default is 600 s.
  shared = await serve({ WRITE_TIMEOUT_SEC: '2' });
}, CHILD_PROCESS_HOOK_MS);

afterAll(async () => {
  for (const s of servers) await s.stop();
  await zai?.stop();
  cleanupTempDirs();
}, CHILD_PROCESS_HOOK_MS);

interface Turn {
  run: ClaudeRun;
  marker: string;
  /** Messages requests the fake got during the turn. */
  upstream: number;
  /** Claude Code's own retries (its api_retry events). */
  retries: Array<{ status: number | null; error: string; delayMs: number }>;
  diag(): string;
}

/** One headless turn whose session is kept (same HOME and cwd) so that a later turn can --resume it. */
async function turn(
  via: ServeHandle,
  opts: { home?: string; cwd?: string; resume?: string; apiKey?: string; model?: string; maxRetries?: number; env?: Env } = {},
): Promise<Turn & { home: string; cwd: string; sessionId: string }> {
  const home = opts.home ?? tempDir('mcp-cc-err-home-');
  const cwd = opts.cwd ?? tempDir('mcp-cc-err-cwd-');
  const marker = randomMarker();
  const before = zai.messages().length;
  const run = await runClaude({
    baseUrl: via.url,
    apiKey: opts.apiKey ?? PROXY_KEY,
    prompt: `run exactly: echo ${marker}`,
    model: opts.model ?? 'glm-4.6',
    home,
    cwd,
    persist: true,
    resume: opts.resume,
    maxRetries: opts.maxRetries ?? 3,
    extraEnv: opts.env,
    timeoutMs: 45_000,
  });
  const retries = run.events
    .filter((e: ClaudeEvent) => e.type === 'system' && e.subtype === 'api_retry')
    .map((e) => ({ status: typeof e.error_status === 'number' ? e.error_status : null, error: String(e.error), delayMs: Number(e.retry_delay_ms) }));
  const sessionId = String(run.events.find((e) => e.type === 'system')?.session_id ?? '');
  const diag = () =>
    `claude exit ${run.code}; retries ${JSON.stringify(retries)}\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-1500)}\n--- mcp ---\n${via.output().slice(-2500)}`;
  return { run, marker, upstream: zai.messages().length - before, retries, diag, home, cwd, sessionId };
}

/** The turn ran its tool and finished well: the marker went through Bash and back into the answer. */
function expectToolLoop(t: Turn): void {
  const bash = t.run.toolUses.find((u) => u.name === 'Bash');
  expect(bash, t.diag()).toBeDefined();
  expect(String(bash!.input.command)).toContain(t.marker);
  expect(t.run.toolResults.find((r) => r.toolUseId === bash!.id)?.text, t.diag()).toContain(t.marker);
  expect(t.run.result?.is_error, t.diag()).toBe(false);
  expect(String(t.run.result?.result), t.diag()).toContain(`FINAL_ANSWER: tool said ${t.marker}`);
  expect(t.run.code, t.diag()).toBe(0);
}

/** The turn failed for good, at once: exit 1, the status in the result, not one retry. */
function expectFatal(t: Turn, status: number): string {
  expect(t.run.result?.is_error, t.diag()).toBe(true);
  expect(t.run.result?.api_error_status, t.diag()).toBe(status);
  expect(t.retries, t.diag()).toEqual([]);
  expect(t.run.code, t.diag()).toBe(1);
  return String(t.run.result?.result);
}

/** A later turn of the same session goes on as if nothing had happened: the conversation is not broken. */
async function expectResumes(via: ServeHandle, first: { home: string; cwd: string; sessionId: string }): Promise<void> {
  expect(first.sessionId).not.toBe('');
  const next = await turn(via, { home: first.home, cwd: first.cwd, resume: first.sessionId, maxRetries: 0 });
  expectToolLoop(next);
  expect(next.retries, next.diag()).toEqual([]);
}

function failOnce(mode: FakeZaiMode, times = 1): void {
  zai.clearModes();
  zai.setMode(mode, { times });
}

describe('Claude Code meets a failure mcp answers with', () => {
  test('a wrong proxy key: Claude Code stops at once with "Invalid API key" instead of retrying for minutes', async () => {
    const t = await turn(shared, { apiKey: 'proxy-key-e2e-cc-errors-WRONG-000000' });
    expect(expectFatal(t, 401)).toContain('Invalid API key');
    expect(t.upstream).toBe(0);
  }, 30_000);

  test('400 invalid_request_error: fatal at once with the upstream reason, and the session resumes', async () => {
    failOnce({ kind: 'error', code: '1214' });
    const t = await turn(shared);
    expect(expectFatal(t, 400)).toContain('Input cannot be empty');
    expect(t.upstream).toBe(1);
    await expectResumes(shared, t);
  }, 60_000);

  test('404 for a model the upstream does not have: Claude Code says to pick another model', async () => {
    const t = await turn(shared, { model: 'glm-no-such-model' });
    expect(expectFatal(t, 404)).toContain('There\'s an issue with the selected model (glm-no-such-model)');
  }, 30_000);

  test('no usable account (503, x-should-retry false): fatal at once with the account\'s reason, no talk of logging in; a resumed turn is told so without an upstream call', async () => {
    const s = await serve();
    failOnce({ kind: 'error', code: '1313' });
    const t = await turn(s);
    const msg = expectFatal(t, 503);
    expect(msg).toContain('No usable zai account');
    expect(msg).toContain('1313');
    expect(msg).not.toMatch(/authenticate|\/login/i);
    expect(t.upstream).toBe(1);
    const again = await turn(s, { home: t.home, cwd: t.cwd, resume: t.sessionId });
    expect(expectFatal(again, 503)).toContain('No usable zai account');
    expect(again.upstream).toBe(0);
  }, 60_000);

  test("a model the key's plan lacks (Z.AI 1220): Claude Code says to pick another model, not to log in", async () => {
    const s = await serve();
    failOnce({ kind: 'error', code: '1220' });
    const t = await turn(s, { model: 'glm-5' });
    const msg = expectFatal(t, 404);
    expect(msg).toContain("There's an issue with the selected model (glm-5)");
    expect(msg).not.toMatch(/authenticate|\/login/i);
    expect(t.upstream).toBe(1);
  }, 60_000);

  test('429 final (5-hour quota, x-should-retry false): Claude Code stops at once and shows the reset time; no upstream call on the next turn', async () => {
    const s = await serve();
    failOnce({ kind: 'error', code: '1308' });
    const t = await turn(s);
    const msg = expectFatal(t, 429);
    expect(msg).toContain('Request rejected (429)');
    expect(msg).toMatch(/Quota will reset after \dh/);
    expect(t.upstream).toBe(1);
    const again = await turn(s, { home: t.home, cwd: t.cwd, resume: t.sessionId });
    expect(expectFatal(again, 429)).toContain('Quota will reset after');
    expect(again.upstream).toBe(0);
  }, 60_000);

  test('429 with a short retry-after: Claude Code waits it out and the turn completes', async () => {
    const s = await serve();
    failOnce({ kind: 'http429', retryAfter: 1 }, 2);
    const t = await turn(s);
    expectToolLoop(t);
    expect(t.retries.length, t.diag()).toBeGreaterThanOrEqual(1);
    for (const r of t.retries) {
      expect(r.status).toBe(429);
      expect(r.delayMs).toBeLessThan(3_000); // retry-after 1, or Claude Code's own backoff when that is longer
    }
  }, 60_000);

  test('529 overloaded: Claude Code retries after the retry-after and the turn completes', async () => {
    const s = await serve();
    failOnce({ kind: 'error', code: '1305' });
    const t = await turn(s);
    expectToolLoop(t);
    expect(t.retries.map((r) => r.status), t.diag()).toEqual([529]);
    // The account's cool-down after a capacity error, as retry-after.
    expect(t.retries[0]!.delayMs).toBe(10_000);
  }, 60_000);

  // MAX_WAIT_SEC=0: the cool-down is not waited out inside mcp, Claude Code gets to see it.
  test('5xx: retried by Claude Code; an account resting after repeated failures is a retryable 503, never a "rate limit"', async () => {
    const s = await serve({ MAX_WAIT_SEC: '0', DEFAULT_COOLDOWN_SEC: '1' });
    failOnce({ kind: 'html502' }, 3);
    const t = await turn(s, { maxRetries: 6 });
    expectToolLoop(t);
    const statuses = t.retries.map((r) => r.status);
    expect(statuses, t.diag()).not.toContain(429);
    expect(statuses, t.diag()).toContain(502);
    // The rest: a 503 whose retry-after (the 1 s cool-down) Claude Code honours, or its own backoff when that is longer.
    const rest = t.retries.filter((r) => r.status === 503);
    expect(rest.length, t.diag()).toBeGreaterThanOrEqual(1);
    for (const r of rest) expect(r.delayMs).toBeLessThan(5_000);
    expect(s.output()).toMatch(/ 503 \d+ms stream .*error=api_error/);
  }, 60_000);
});

describe('Claude Code meets a stream that fails after the 200', () => {
  test('an error event mid-stream: Claude Code sends the turn again, it completes, and the session resumes', async () => {
    failOnce({ kind: 'sse_error', afterEvents: 3, errorType: 'api_error', code: '500' });
    const t = await turn(shared);
    expectToolLoop(t);
    expect(t.upstream).toBe(3); // the failed call, its repetition, the turn after the tool
    expect(shared.output()).toMatch(/ 200 \d+ms stream .*error=api_error/);
    await expectResumes(shared, t);
  }, 60_000);

  test.each([
    ['the upstream connection reset', { kind: 'reset_mid_stream', afterEvents: 3 } as FakeZaiMode],
    ['the upstream stream ending inside a content block', { kind: 'truncated' } as FakeZaiMode],
  ])('a stream cut without message_stop (%s) ends with an error event, never as a whole answer: Claude Code repeats the turn, and the session resumes', async (_name, mode) => {
    failOnce(mode);
    const t = await turn(shared);
    expectToolLoop(t);
    expect(t.upstream, t.diag()).toBe(3);
    await expectResumes(shared, t);
  }, 60_000);

  // Claude Code 2.1.197 repeats a turn whose stream failed between blocks, not one that failed inside a
  // tool_use block (cut or error event alike): that turn is lost, but it must say why and leave the session whole.
  test('an error event inside a tool_use block: Claude Code fails the turn with the upstream reason, and the session resumes', async () => {
    failOnce({ kind: 'sse_error', afterEvents: 8, errorType: 'api_error', code: '500', message: '[500][FAKE upstream failure mid tool call][req]' });
    const t = await turn(shared);
    expect(t.run.result?.is_error, t.diag()).toBe(true);
    expect(String(t.run.result?.result)).toContain('Upstream failed: [500] FAKE upstream failure mid tool call');
    expect(t.run.toolUses, t.diag()).toEqual([]); // the half-streamed tool call never ran
    expect(t.upstream).toBe(1);
    await expectResumes(shared, t);
  }, 60_000);

  test('WRITE_TIMEOUT_SEC mid-stream: the timeout_error event makes Claude Code repeat the turn, and it completes', async () => {
    failOnce({ kind: 'stall_mid_stream', ms: 8_000, afterEvents: 3 });
    // API_TIMEOUT_MS=1000 is sent as x-stainless-timeout: 1, below WRITE_TIMEOUT_SEC (2 s), which then holds.
    const t = await turn(shared, { env: { API_TIMEOUT_MS: '1000' } });
    expectToolLoop(t);
    expect(t.upstream).toBe(3);
    expect(shared.output()).toMatch(/ 200 2\d{3}ms stream .*error=timeout_error/);
  }, 60_000);
});
