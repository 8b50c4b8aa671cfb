// The real Claude Code CLI, headless (protocol reference §1.10), through `mcp serve` in front of the
// strict fake Google (two accounts) and the fake Z.AI, in turns the other Claude Code files do not
// drive: answers with several tool calls at once on each family, one session that moves Gemini ->
// Claude -> GLM -> (restart) -> Gemini with those calls in its history, a tool call whose input is
// large, the usage Claude Code reports in its stream-json result, upstreams that go silent past
// UPSTREAM_IDLE_TIMEOUT_SEC before and after their first byte, and a model out of quota on every
// account (counted upstream calls). Each test is a few short runs.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type FakeGoogle, type RecordedGoogleRequest, startFakeGoogle } from '../fakes/google.ts';
import { type FakeZai, startFakeZai } from '../fakes/zai.ts';
import {
  CHILD_PROCESS_HOOK_MS,
  addGoogleAccounts,
  type ClaudeRun,
  cleanupTempDirs,
  type Env,
  googleEnv,
  mcpEnv,
  randomMarker,
  runClaude,
  runMcp,
  type ServeHandle,
  startServe,
  tempDir,
  zaiEnv,
} from './helpers.ts';

const PROXY_KEY = ['proxy', 'key', 'e2e', 'cc', 'turns', 'FAKE', '0123'].join('-');
const ZAI_KEY = ['zai', 'key', 'FAKE', 'cc', 'turns', '0123456789'].join('-');
const EMAILS = ['cc-turns-one@example.com', 'cc-turns-two@example.com'] as const;
const SENTINEL = 'skip_thought_signature_validator';
let google: FakeGoogle;
let zai: FakeZai;
let server: ServeHandle;
let serveEnv: Env;

beforeAll(async () => {
  google = startFakeGoogle({ strictSignatures: true });
  for (const [i, email] of EMAILS.entries()) google.setAccount(email, { projectId: `fake-project-turns-${i}` });
  zai = startFakeZai({ keys: [ZAI_KEY] });
  serveEnv = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ...googleEnv(google), ...zaiEnv(zai) });
  await addGoogleAccounts(serveEnv, google, EMAILS);
  const added = await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', ZAI_KEY], { env: serveEnv });
  expect(added.code, added.stderr).toBe(0);
  server = await startServe({ env: serveEnv });
}, CHILD_PROCESS_HOOK_MS);

afterAll(async () => {
  await server?.stop();
  await google?.stop();
  await zai?.stop();
  cleanupTempDirs();
}, CHILD_PROCESS_HOOK_MS);

type Part = Record<string, unknown>;

/** `mcp serve` on the two Google accounts with a data dir of its own: the limits it learns stay in it. */
async function googleOnlyServe(extra: Env = {}): Promise<ServeHandle> {
  const env = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ...extra, ...googleEnv(google) });
  await addGoogleAccounts(env, google, EMAILS);
  return startServe({ env });
}

async function stopServe(s: ServeHandle | undefined): Promise<void> {
  google.clearModes();
  await s?.stop();
}

function turn(opts: { home: string; cwd: string; prompt: string; model: string; resume?: string; via?: ServeHandle; maxRetries?: number }): Promise<ClaudeRun> {
  const { via, ...rest } = opts;
  return runClaude({ maxRetries: 1, ...rest, baseUrl: (via ?? server).url, apiKey: PROXY_KEY, persist: true, timeoutMs: 50_000 });
}

function diag(run: ClaudeRun, via: ServeHandle = server): () => string {
  return () => `claude exit ${run.code}\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-1500)}\n--- mcp ---\n${via.output().slice(-3000)}`;
}

const generations = () => google.generations().filter((g) => g.rpc.toLowerCase().includes('generatecontent'));
const modelOf = (g: RecordedGoogleRequest) => String((g.body as { model?: string }).model);
const requestOf = (g: RecordedGoogleRequest) => ((g.body as { request?: Record<string, unknown> }).request ?? {}) as { contents?: Array<{ role?: string; parts?: Part[] }> };
const refused = (modes: string[]) => modes.filter((m) => m !== 'ok');

/** Every call ran, in one answer, and each output went back to the model and into its final answer. */
function expectParallelLoop(run: ClaudeRun, markers: string[]): void {
  const d = diag(run);
  const bash = run.toolUses.filter((t) => t.name === 'Bash');
  expect(bash.map((t) => String(t.input.command)), d()).toEqual(markers.map((m) => `echo ${m}`));
  for (const [i, m] of markers.entries()) {
    expect(run.toolResults.find((r) => r.toolUseId === bash[i]!.id)?.text, d()).toBe(m);
  }
  expect(run.result?.is_error, d()).toBe(false);
  for (const m of markers) expect(String(run.result?.result), d()).toContain(m);
}

describe('Claude Code with several tool calls in one answer', () => {
  test('Gemini, Claude and GLM each answer with three parallel calls in one session, moved between them and over a restart; the strict fake takes every replay', async () => {
    const home = tempDir('mcp-claude-home-');
    const cwd = tempDir('mcp-claude-cwd-');
    let session: string | undefined;
    /** Gemini's own signatures on the first call of each parallel batch it made, in order. */
    const geminiBatchSignatures: string[] = [];
    for (const step of ['gemini-3-flash', 'opus', 'glm-4.6', 'restart', 'gemini-3-flash'] as const) {
      if (step === 'restart') {
        expect(await server.stop()).toBe(0);
        server = await startServe({ env: serveEnv });
        continue;
      }
      const m = randomMarker();
      const markers = [`${m}-a`, `${m}-b`, `${m}-c`];
      const before = generations().length;
      const beforeZai = zai.messages().length;
      const run = await turn({ home, cwd, model: step, prompt: `run in parallel: ${markers.map((x) => `echo ${x}`).join(' ;; ')}`, resume: session });
      session ??= String(run.events[0]?.session_id);
      expectParallelLoop(run, markers);
      const gens = generations().slice(before);
      expect(refused(gens.map((g) => g.mode)), diag(run)()).toEqual([]);
      expect(refused(zai.messages().slice(beforeZai).map((r) => r.mode))).toEqual([]);
      if (step !== 'gemini-3-flash') continue;
      // The request that carries the three results replays the batch as Gemini signed it: its own
      // signature on the first call only (Gemini signs no other), never the sentinel in its place.
      const answer = gens.find((g) => (g.issuedSignatures?.length ?? 0) > 0 && !(requestOf(g).contents?.at(-1)?.parts ?? []).some((p) => p.functionResponse));
      expect(answer, diag(run)()).toBeDefined();
      geminiBatchSignatures.push(answer!.issuedSignatures![0]!);
      const last = gens.at(-1)!;
      const calls = (requestOf(last).contents ?? []).flatMap((c) => c.parts ?? []).filter((p) => p.functionCall);
      const batch = calls.slice(-3);
      expect(batch.map((p) => (p.functionCall as { args?: { command?: string } }).args?.command)).toEqual(markers.map((x) => `echo ${x}`));
      expect(batch.map((p) => p.thoughtSignature ?? null), JSON.stringify(batch)).toEqual([geminiBatchSignatures.at(-1)!, null, null]);
    }
    // After the restart, the first Gemini batch (three turns back, other families in between) went
    // back with the signature Gemini gave it, read from the store, not the sentinel.
    const lastTurn = generations().at(-1)!;
    const firstBatch = (requestOf(lastTurn).contents ?? []).flatMap((c) => c.parts ?? []).filter((p) => p.functionCall).slice(0, 3);
    expect(firstBatch.map((p) => p.thoughtSignature ?? null)).toEqual([geminiBatchSignatures[0]!, null, null]);
    expect(JSON.stringify(requestOf(lastTurn))).not.toContain('zai-sig-');
  }, 60_000);
});

describe('Claude Code with a large tool call', () => {
  test('a 9 KB Bash command reaches Claude Code whole from each family, and its 9 KB output goes back', async () => {
    // Random letters, so that nothing compresses or repeats; Claude Code's Bash parser refuses much longer commands.
    const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
    const bytes = crypto.getRandomValues(new Uint8Array(9_000));
    const big = Array.from(bytes, (b) => letters[b % letters.length]).join('');
    for (const model of ['gemini-3-flash', 'opus', 'glm-4.6']) {
      const marker = `${randomMarker()}-${big}`;
      const run = await turn({ home: tempDir('mcp-claude-home-'), cwd: tempDir('mcp-claude-cwd-'), model, prompt: `run exactly: echo ${marker}` });
      const bash = run.toolUses.find((t) => t.name === 'Bash');
      expect(String(bash?.input.command), diag(run)()).toBe(`echo ${marker}`);
      expect(run.toolResults.find((r) => r.toolUseId === bash!.id)?.text).toBe(marker);
      expect(run.result?.is_error, diag(run)()).toBe(false);
      expect(String(run.result?.result)).toBe(`FINAL_ANSWER: tool said ${marker}`);
    }
  }, 60_000);
});

describe("Claude Code's stream-json result", () => {
  test('its usage adds up what Google reported for each request: uncached input, cached input (Gemini), nothing made up for Claude', async () => {
    for (const [model, caches] of [
      ['gemini-3-flash', true],
      ['opus', false],
    ] as const) {
      const before = generations().length;
      const marker = randomMarker();
      const run = await turn({ home: tempDir('mcp-claude-home-'), cwd: tempDir('mcp-claude-cwd-'), model, prompt: `run exactly: echo ${marker}` });
      expect(run.result?.is_error, diag(run)()).toBe(false);
      const gens = generations().slice(before);
      expect(gens.length).toBe(2);
      // What the fake reported: promptTokenCount a quarter of the request's length; Gemini said half
      // of a long prompt was cached (cachedContentTokenCount), Claude said nothing of a cache.
      const prompts = gens.map((g) => Math.max(1, Math.round(JSON.stringify(requestOf(g)).length / 4)));
      const cached = prompts.map((p) => (caches && p > 2000 ? Math.floor(p / 2) : 0));
      const usage = run.result?.usage as { input_tokens: number; cache_read_input_tokens: number; cache_creation_input_tokens: number; output_tokens: number };
      expect(usage.cache_read_input_tokens, diag(run)()).toBe(cached.reduce((a, b) => a + b, 0));
      expect(usage.input_tokens).toBe(prompts.reduce((a, b) => a + b, 0) - usage.cache_read_input_tokens);
      expect(usage.cache_creation_input_tokens).toBe(0);
      // Thinking counts as output (40 a thinking answer in the fake), with the text and the call.
      expect(usage.output_tokens).toBeGreaterThanOrEqual(2 * 40);
      expect(usage.output_tokens).toBeLessThan(400);
    }
  }, 60_000);
});

describe('Claude Code when the upstream goes silent past UPSTREAM_IDLE_TIMEOUT_SEC', () => {
  let quiet: ServeHandle;
  beforeAll(async () => {
    quiet = await googleOnlyServe({ UPSTREAM_IDLE_TIMEOUT_SEC: '2', PING_INTERVAL_SEC: '1' });
  }, CHILD_PROCESS_HOOK_MS);
  afterAll(() => stopServe(quiet), CHILD_PROCESS_HOOK_MS);

  async function silentTurn(mode: Parameters<FakeGoogle['setMode']>[0], model: string, upstream: string) {
    google.clearModes();
    google.setMode(mode, { model: upstream, times: 1 });
    const home = tempDir('mcp-claude-home-');
    const cwd = tempDir('mcp-claude-cwd-');
    const before = generations().length;
    const marker = randomMarker();
    const run = await turn({ home, cwd, model, prompt: `run exactly: echo ${marker}`, via: quiet, maxRetries: 2 });
    return { run, marker, home, cwd, gens: generations().slice(before), d: diag(run, quiet) };
  }

  test('silent before the first byte: the other account answers, and Claude Code never sees a failure', async () => {
    const t = await silentTurn({ kind: 'stall_before_first_byte', ms: 6_000 }, 'gemini-3-flash', 'gemini-3-flash');
    expect(t.run.result?.is_error, t.d()).toBe(false);
    expect(String(t.run.result?.result)).toBe(`FINAL_ANSWER: tool said ${t.marker}`);
    expect(t.run.events.filter((e) => e.subtype === 'api_retry'), t.d()).toEqual([]);
    expect(t.gens[0]!.mode).toBe('stall_before_first_byte');
    expect(t.gens[0]!.aborted).toBe(true);
    expect(t.gens[1]!.email).not.toBe(t.gens[0]!.email);
    expect(t.gens.length).toBe(3);
  }, 30_000);

  test('silent after the thinking: Claude Code repeats the request (its non-streaming fallback) and the loop completes', async () => {
    // Gemini's two thought chunks, then silence: the error event comes before any visible block.
    const t = await silentTurn({ kind: 'stall_mid_stream', ms: 6_000, afterChunks: 2 }, 'gemini-3-flash', 'gemini-3-flash');
    expect(t.run.result?.is_error, t.d()).toBe(false);
    expect(String(t.run.result?.result)).toBe(`FINAL_ANSWER: tool said ${t.marker}`);
    expect(t.gens.map((g) => g.mode)).toEqual(['stall_mid_stream', 'ok', 'ok']);
    expect(t.gens[0]!.aborted).toBe(true);
    expect(quiet.output()).toMatch(/sent nothing for 2s mid-stream/);
  }, 30_000);

  test('silent in the middle of the text: the turn fails with the reason in words, and the session resumes', async () => {
    // Claude: the empty opener, three thought chunks, the signature, the first piece of text, then silence.
    const t = await silentTurn({ kind: 'stall_mid_stream', ms: 6_000, afterChunks: 6 }, 'opus', 'claude-opus-4-6-thinking');
    expect(t.run.result?.is_error, t.d()).toBe(true);
    expect(String(t.run.result?.result), t.d()).toBe('API Error: Upstream failed: Antigravity sent nothing for 2s mid-stream');
    expect(t.run.toolUses).toEqual([]);
    expect(t.gens.length).toBe(1);
    const marker = randomMarker();
    const next = await turn({ home: t.home, cwd: t.cwd, model: 'opus', prompt: `run exactly: echo ${marker}`, via: quiet, resume: String(t.run.events[0]?.session_id) });
    expect(next.result?.is_error, diag(next, quiet)()).toBe(false);
    expect(String(next.result?.result)).toBe(`FINAL_ANSWER: tool said ${marker}`);
  }, 40_000);
});

describe('Claude Code when every account is out of quota for the model', () => {
  let spent: ServeHandle;
  beforeAll(async () => {
    spent = await googleOnlyServe();
  }, CHILD_PROCESS_HOOK_MS);
  afterAll(() => stopServe(spent), CHILD_PROCESS_HOOK_MS);

  test('it stops at once with the reset time, not one retry; Google is asked once per account and endpoint, and not at all on the next turn', async () => {
    google.clearModes();
    google.setMode({ kind: 'quota_exhausted', resetMs: 3_600_000 }, { model: 'gemini-3-flash' });
    const home = tempDir('mcp-claude-home-');
    const cwd = tempDir('mcp-claude-cwd-');
    const before = generations().length;
    const run = await turn({ home, cwd, model: 'gemini-3-flash', prompt: `run exactly: echo ${randomMarker()}`, via: spent, maxRetries: 3 });
    const d = diag(run, spent);
    expect(run.result?.is_error, d()).toBe(true);
    expect(run.result?.api_error_status).toBe(429);
    expect(String(run.result?.result)).toMatch(/^API Error: Request rejected \(429\) · RESOURCE_EXHAUSTED: Rate limited on gemini-3-flash\. Quota will reset after (59m\d+s|1h0m0s)/);
    expect(run.events.filter((e) => e.subtype === 'api_retry'), d()).toEqual([]);
    const asked = generations().slice(before);
    expect(asked.map((g) => `${g.email} ${g.endpoint}`).sort()).toEqual(EMAILS.flatMap((e) => [`${e} daily`, `${e} prod`]).sort());

    const again = await turn({ home, cwd, model: 'gemini-3-flash', prompt: `run exactly: echo ${randomMarker()}`, via: spent, resume: String(run.events[0]?.session_id), maxRetries: 3 });
    expect(again.result?.is_error, diag(again, spent)()).toBe(true);
    expect(String(again.result?.result)).toContain('Quota will reset after');
    expect(again.events.filter((e) => e.subtype === 'api_retry')).toEqual([]);
    expect(generations().length - before).toBe(asked.length);
  }, 40_000);
});
