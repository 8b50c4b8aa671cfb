// The real Claude Code CLI, headless, through `mcp serve` in front of the fake Google with two accounts
// (protocol reference §1.10): what one user's sessions do across turns. Every request of one session,
// over several turns and tool calls, stays on one account while a second session goes to the other;
// a prompt Google finds too long reaches Claude Code in the form it parses ("Prompt is too long"); a
// PNG read with the Read tool, or attached to the prompt, reaches the model as a picture;
// --fallback-model takes over after 529s; --include-partial-messages streams well-formed deltas; a
// sub-agent on the other model family runs its own tool loop inside the parent's; and a GLM session on
// Z.AI resumed on an Antigravity model sends Google none of Z.AI's signatures.
// Each test is well under 60 s (short runs of the CLI against local fakes; the fallback one ~20 s,
// for Claude Code honours the 529s' retry-after before it switches).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type FakeGoogle, type RecordedGoogleRequest, startFakeGoogle } from '../fakes/google.ts';
import { solidPng } from '../fakes/png.ts';
import { type FakeZai, startFakeZai } from '../fakes/zai.ts';
import {
  CHILD_PROCESS_HOOK_MS,
  addGoogleAccounts,
  type ClaudeRun,
  cleanupTempDirs,
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

const PROXY_KEY = 'proxy-key-e2e-claude-sessions-FAKE-0123';
const EMAILS = ['cc-session-one@example.com', 'cc-session-two@example.com'] as const;
const MODEL = 'gemini-3-flash';
let google: FakeGoogle;
let server: ServeHandle;
let serveEnv: Record<string, string>;

beforeAll(async () => {
  google = startFakeGoogle({ strictSignatures: true });
  for (const [i, email] of EMAILS.entries()) google.setAccount(email, { projectId: `fake-project-sessions-${i}` });
  const env = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ...googleEnv(google) });
  await addGoogleAccounts(env, google, EMAILS);
  serveEnv = env;
  server = await startServe({ env });
}, CHILD_PROCESS_HOOK_MS);

afterAll(async () => {
  await server?.stop();
  await google?.stop();
  cleanupTempDirs();
}, CHILD_PROCESS_HOOK_MS);

function turn(opts: { home: string; cwd: string; prompt: string; resume?: string; model?: string; allowedTools?: string[]; extraArgs?: string[]; via?: ServeHandle; maxRetries?: number; input?: object[]; extraEnv?: Record<string, string> }): Promise<ClaudeRun> {
  const { via, ...rest } = opts;
  return runClaude({ model: MODEL, maxRetries: 1, ...rest, baseUrl: (via ?? server).url, apiKey: PROXY_KEY, persist: true, timeoutMs: 50_000 });
}

function diag(run: ClaudeRun): () => string {
  return () => `claude exit ${run.code}\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-2000)}\n${server.output().slice(-3000)}`;
}

/** The marker ran in Bash, came back to the model, and is in the final answer. */
function expectToolLoop(run: ClaudeRun, marker: string): void {
  const bash = run.toolUses.find((t) => t.name === 'Bash');
  expect(bash, diag(run)()).toBeDefined();
  expect(run.toolResults.find((r) => r.toolUseId === bash!.id)?.text, diag(run)()).toContain(marker);
  expect(run.result?.is_error, diag(run)()).toBe(false);
  expect(String(run.result?.result)).toContain(`FINAL_ANSWER: tool said ${marker}`);
}

const generations = () => google.generations().filter((g) => g.rpc.toLowerCase().includes('generatecontent'));
const emailsOf = (gens: RecordedGoogleRequest[]) => new Set(gens.map((g) => g.email));

describe('Claude Code sessions on a pool of two Google accounts', () => {
  test('every request of a session (two turns, each a tool loop) stays on one account; a second session uses the other', async () => {
    const home = tempDir('mcp-claude-home-');
    const cwd = tempDir('mcp-claude-cwd-');
    const before = generations().length;
    const m1 = randomMarker();
    const t1 = await turn({ home, cwd, prompt: `run exactly: echo ${m1}` });
    expectToolLoop(t1, m1);
    const sessionId = String(t1.events[0]?.session_id ?? '');
    expect(sessionId).not.toBe('');
    const m2 = randomMarker();
    const t2 = await turn({ home, cwd, prompt: `run exactly: echo ${m2}`, resume: sessionId });
    expectToolLoop(t2, m2);
    const first = generations().slice(before);
    expect(first.length).toBeGreaterThanOrEqual(4);
    const firstAccounts = emailsOf(first);
    expect([...firstAccounts], diag(t2)()).toHaveLength(1);

    // Another session, while the first is idle: the least recently used account takes it, and keeps it.
    const before2 = generations().length;
    const home2 = tempDir('mcp-claude-home-');
    const cwd2 = tempDir('mcp-claude-cwd-');
    const m3 = randomMarker();
    const s2 = await turn({ home: home2, cwd: cwd2, prompt: `run exactly: echo ${m3}` });
    expectToolLoop(s2, m3);
    const second = generations().slice(before2);
    expect(second.length).toBeGreaterThanOrEqual(2);
    const secondAccounts = emailsOf(second);
    expect([...secondAccounts], diag(s2)()).toHaveLength(1);
    expect([...secondAccounts][0]).not.toBe([...firstAccounts][0]);
    expect([...first, ...second].map((g) => g.mode).filter((m) => m !== 'ok')).toEqual([]);
  }, 55_000);
});

describe('Claude Code with a prompt longer than the model takes', () => {
  afterAll(() => google.clearModes());

  test('Google\'s "input token count exceeds the maximum" reaches Claude Code as its parsed "Prompt is too long"', async () => {
    const home = tempDir('mcp-claude-home-');
    const cwd = tempDir('mcp-claude-cwd-');
    const m1 = randomMarker();
    const t1 = await turn({ home, cwd, prompt: `run exactly: echo ${m1}` });
    expectToolLoop(t1, m1);
    const sessionId = String(t1.events[0]?.session_id ?? '');
    // What a normal request weighs, so the limit sits above it and below the long prompt.
    const normal = Math.ceil(JSON.stringify((generations().at(-1)!.body as { request?: unknown }).request).length / 4);
    const limit = normal + 5_000;
    google.setMode({ kind: 'prompt_too_long', maxTokens: limit });

    const before = generations().length;
    // ~25k tokens of pasted log (an argument stays under Linux's 128 KiB limit for one argv string).
    const long = `summarise this log:\n${'2026-12-04T10:00:00Z INFO worker heartbeat ok\n'.repeat(2_200)}`;
    const t2 = await turn({ home, cwd, prompt: long, resume: sessionId });
    expect(t2.result?.is_error, diag(t2)()).toBe(true);
    // Claude Code recognised the limit (it names it as the reason it stopped, and tried compacting
    // first): what it does only for its own "prompt is too long" wording, not for Google's.
    expect(t2.result?.terminal_reason, diag(t2)()).toBe('prompt_too_long');
    expect(t2.result?.api_error_status).toBe(400);
    expect(String(t2.result?.result)).toMatch(/^Prompt is too long/);
    // A 400 is final for mcp: each refused request was sent once, to the session's account only.
    const window = generations().slice(before);
    const refused = window.filter((g) => g.mode === 'prompt_too_long');
    expect(refused.length, diag(t2)()).toBeGreaterThanOrEqual(1);
    expect(emailsOf(window).size).toBe(1);
  }, 55_000);
});

describe('Claude Code reads a picture with its Read tool', () => {
  for (const [name, model, upstream] of [
    ['a Gemini model', 'gemini-3-flash', 'gemini-3-flash'],
    ['a Claude thinking model (opus)', 'opus', 'claude-opus-4-6-thinking'],
  ] as const) {
    test(`${name}: the PNG goes back to the model as an image beside the Read result, and the loop completes`, async () => {
      const home = tempDir('mcp-claude-home-');
      const cwd = tempDir('mcp-claude-cwd-');
      const file = join(cwd, 'screenshot.png');
      writeFileSync(file, solidPng(64, 48, [10, 160, 90]));
      const before = generations().length;
      const run = await turn({ home, cwd, prompt: `read the file: ${file}`, model, allowedTools: ['Read'] });
      const read = run.toolUses.find((t) => t.name === 'Read');
      expect(read, diag(run)()).toBeDefined();
      expect(read!.input.file_path).toBe(file);
      expect(run.result?.is_error, diag(run)()).toBe(false);
      // The model was shown the picture itself, not a note that one was attached somewhere.
      expect(String(run.result?.result), diag(run)()).toMatch(/SAW_IMAGE image\/png \d+ bytes/);
      const gens = generations().slice(before);
      expect(gens.map((g) => g.body as { model?: string }).every((b) => b.model === upstream)).toBe(true);
      expect(gens.map((g) => g.mode).filter((m) => m !== 'ok')).toEqual([]);

      // The next turn replays the picture in its history, and the strict fake takes it.
      const marker = randomMarker();
      const next = await turn({ home, cwd, prompt: `run exactly: echo ${marker}`, model, resume: String(run.events[0]?.session_id) });
      expectToolLoop(next, marker);
      expect(JSON.stringify(generations().at(-1)!.body)).toContain('"inlineData"');
    }, 55_000);
  }
});

describe('Claude Code --fallback-model when the model is overloaded everywhere', () => {
  let quick: ServeHandle;
  beforeAll(async () => {
    // No waiting inside mcp: each overloaded request is a 529 at once, as Claude Code counts them.
    const env = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, MAX_WAIT_SEC: '0', ...googleEnv(google) });
    await addGoogleAccounts(env, google, EMAILS);
    quick = await startServe({ env });
  }, CHILD_PROCESS_HOOK_MS);
  afterAll(async () => {
    google.clearModes();
    await quick?.stop();
  }, CHILD_PROCESS_HOOK_MS);

  test('after the 529s Claude Code switches to the fallback model, which mcp serves, and the tool loop completes', async () => {
    google.setMode({ kind: 'capacity' }, { model: 'claude-opus-4-6-thinking' });
    const before = generations().length;
    const marker = randomMarker();
    const run = await turn({
      home: tempDir('mcp-claude-home-'),
      cwd: tempDir('mcp-claude-cwd-'),
      prompt: `run exactly: echo ${marker}`,
      model: 'opus',
      extraArgs: ['--fallback-model', 'gemini-3-flash'],
      via: quick,
      maxRetries: 5,
    });
    const d = () => `${diag(run)()}\n${quick.output().slice(-3000)}`;
    expect(run.result?.is_error, d()).toBe(false);
    expect(String(run.result?.result), d()).toContain(`FINAL_ANSWER: tool said ${marker}`);
    // Claude Code saw 529s (retryable overloaded, not a fatal error) before it switched.
    const retries = run.events.filter((e) => e.subtype === 'api_retry');
    expect(retries.length, d()).toBeGreaterThanOrEqual(1);
    expect(retries.every((e) => e.error_status === 529)).toBe(true);
    // Upstream: the overloaded model was only refused; the fallback served the whole tool loop.
    const gens = generations().slice(before);
    const byModel = (m: string) => gens.filter((g) => (g.body as { model?: string }).model === m);
    expect(byModel('claude-opus-4-6-thinking').map((g) => g.mode).filter((m) => m !== 'capacity'), d()).toEqual([]);
    expect(byModel('gemini-3-flash').length).toBeGreaterThanOrEqual(2);
    expect(byModel('gemini-3-flash').map((g) => g.mode).filter((m) => m !== 'ok')).toEqual([]);
  }, 55_000);
});

describe('Claude Code with a picture attached to the prompt (stream-json input)', () => {
  for (const [name, model] of [
    ['a Gemini model', 'gemini-3-flash'],
    ['a Claude thinking model (opus)', 'opus'],
  ] as const) {
    test(`${name} gets the picture's own bytes`, async () => {
      const png = solidPng(40, 30, [200, 30, 30]);
      const run = await turn({
        home: tempDir('mcp-claude-home-'),
        cwd: tempDir('mcp-claude-cwd-'),
        prompt: '',
        model,
        input: [
          {
            type: 'user',
            message: {
              role: 'user',
              content: [
                { type: 'text', text: 'describe the picture' },
                { type: 'image', source: { type: 'base64', media_type: 'image/png', data: Buffer.from(png).toString('base64') } },
              ],
            },
          },
        ],
      });
      expect(run.result?.is_error, diag(run)()).toBe(false);
      expect(String(run.result?.result), diag(run)()).toBe(`PICTURE: SAW_IMAGE image/png ${png.length} bytes`);
    }, 30_000);
  }
});

describe('Claude Code streaming partial messages (--include-partial-messages)', () => {
  test('the deltas it gets add up to the text and the tool input of each answer, in Anthropic\'s event order', async () => {
    const marker = randomMarker();
    const run = await turn({
      home: tempDir('mcp-claude-home-'),
      cwd: tempDir('mcp-claude-cwd-'),
      prompt: `run exactly: echo ${marker}`,
      model: 'opus',
      extraArgs: ['--include-partial-messages'],
    });
    expectToolLoop(run, marker);
    type Ev = { type: string; index?: number; delta?: Record<string, string>; content_block?: { type: string } };
    const streamed = run.events.filter((e) => e.type === 'stream_event').map((e) => e.event as Ev);
    // Two answers (the call, then the final text), each message_start … message_stop.
    const starts = streamed.flatMap((e, i) => (e.type === 'message_start' ? [i] : []));
    expect(starts.length, diag(run)()).toBe(2);
    for (const [n, from] of starts.entries()) {
      const one = streamed.slice(from, starts[n + 1] ?? streamed.length);
      expect(one.at(-1)?.type).toBe('message_stop');
      expect(one.filter((e) => e.type === 'message_delta')).toHaveLength(1);
      // Every block opens before its deltas and closes after them.
      const open = new Set<number>();
      for (const e of one) {
        if (e.type === 'content_block_start') open.add(e.index!);
        if (e.type === 'content_block_delta') expect(open.has(e.index!)).toBe(true);
        if (e.type === 'content_block_stop') open.delete(e.index!);
      }
      expect(open.size).toBe(0);
      expect(one.some((e) => e.content_block?.type === 'thinking')).toBe(true);
    }
    const joined = (kind: string, field: string) =>
      streamed.filter((e) => e.delta?.type === kind).map((e) => e.delta![field]).join('');
    const tool = JSON.parse(joined('input_json_delta', 'partial_json')) as { command?: string };
    expect(tool.command).toContain(marker);
    expect(joined('text_delta', 'text')).toContain(`FINAL_ANSWER: tool said ${marker}`);
  }, 30_000);
});

describe('Claude Code delegating to a sub-agent on another model family', () => {
  for (const [main, mainUpstream, sub, subUpstream] of [
    ['opus', 'claude-opus-4-6-thinking', 'gemini-3-flash', 'gemini-3-flash'],
    ['gemini-3-flash', 'gemini-3-flash', 'claude-sonnet-4-6', 'claude-sonnet-4-6'],
  ] as const) {
    test(`${main} hands a Bash task to a ${sub} sub-agent; both loops complete, each model on one account, and the parent's next turn replays its history`, async () => {
      const home = tempDir('mcp-claude-home-');
      const cwd = tempDir('mcp-claude-cwd-');
      const marker = randomMarker();
      const before = generations().length;
      const run = await turn({
        home,
        cwd,
        prompt: `use a sub-agent to: run exactly: echo ${marker}`,
        model: main,
        allowedTools: ['Task', 'Agent', 'Bash(echo:*)'],
        extraEnv: { CLAUDE_CODE_SUBAGENT_MODEL: sub },
      });
      const d = diag(run);
      expect(run.toolUses.some((t) => t.name === 'Task' || t.name === 'Agent'), d()).toBe(true);
      expect(run.result?.is_error, d()).toBe(false);
      // The sub-agent's answer (its own Bash loop) came back to the parent as the Task result.
      expect(String(run.result?.result), d()).toContain(`FINAL_ANSWER: tool said FINAL_ANSWER: tool said ${marker}`);
      const gens = generations().slice(before);
      const models = new Set(gens.map((g) => (g.body as { model?: string }).model));
      expect([...models].sort(), d()).toEqual([mainUpstream, subUpstream].sort());
      // Each model's requests stay on one account (the two families are separate quota groups,
      // so the sub-agent may be placed on another account than its parent).
      for (const m of models) expect(emailsOf(gens.filter((g) => (g.body as { model?: string }).model === m)).size, d()).toBe(1);
      expect(gens.map((g) => g.mode).filter((m) => m !== 'ok'), d()).toEqual([]);

      const next = randomMarker();
      const t2 = await turn({ home, cwd, prompt: `run exactly: echo ${next}`, model: main, resume: String(run.events[0]?.session_id) });
      expectToolLoop(t2, next);
    }, 55_000);
  }
});

describe('Claude Code switching providers mid-session in a mixed pool (Z.AI GLM and Antigravity)', () => {
  const ZAI_KEY = ['zai', 'key', 'FAKE', 'sessions', '0123456789'].join('-');
  let zai: FakeZai;
  let mixed: ServeHandle;
  beforeAll(async () => {
    zai = startFakeZai({ keys: [ZAI_KEY] });
    const env = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ...googleEnv(google), ...zaiEnv(zai) });
    await addGoogleAccounts(env, google, [EMAILS[0]]);
    const added = await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', ZAI_KEY], { env });
    expect(added.code, added.stderr).toBe(0);
    mixed = await startServe({ env });
  }, CHILD_PROCESS_HOOK_MS);
  afterAll(async () => {
    await mixed?.stop();
    await zai?.stop();
  }, CHILD_PROCESS_HOOK_MS);

  for (const [from, to, upstream] of [
    ['glm-4.6', 'opus', 'claude-opus-4-6-thinking'],
    ['glm-4.6', 'gemini-3-flash', 'gemini-3-flash'],
  ] as const) {
    test(`a ${from} session with a tool loop, resumed on ${to}: Z.AI's thinking signatures never reach Google, and the loop completes`, async () => {
      const home = tempDir('mcp-claude-home-');
      const cwd = tempDir('mcp-claude-cwd-');
      const m1 = randomMarker();
      const t1 = await turn({ home, cwd, prompt: `run exactly: echo ${m1}`, model: from, via: mixed });
      expectToolLoop(t1, m1);
      // The history to replay holds Z.AI's own signed thinking (so the check below means something).
      const zaiSigned = t1.events.flatMap((e) => (e.type === 'assistant' ? (e.message?.content ?? []) : [])).filter((b) => b.type === 'thinking');
      expect(zaiSigned.some((b) => String(b.signature).startsWith('zai-sig-')), diag(t1)()).toBe(true);
      const before = generations().length;
      const m2 = randomMarker();
      const t2 = await turn({ home, cwd, prompt: `run exactly: echo ${m2}`, model: to, via: mixed, resume: String(t1.events[0]?.session_id) });
      expectToolLoop(t2, m2);
      const gens = generations().slice(before);
      expect(gens.every((g) => (g.body as { model?: string }).model === upstream)).toBe(true);
      expect(JSON.stringify(gens[0]!.body)).toContain(m1);
      expect(JSON.stringify(gens.map((g) => g.body))).not.toContain('zai-sig-');
      expect(gens.map((g) => g.mode).filter((m) => m !== 'ok')).toEqual([]);
    }, 55_000);
  }
});

describe('Claude Code resuming a session after mcp serve restarted', () => {
  test('the resumed opus session goes back to the account it was on (not the least recently used one), and its signed thinking replays', async () => {
    const home = tempDir('mcp-claude-home-');
    const cwd = tempDir('mcp-claude-cwd-');
    const before = generations().length;
    const m1 = randomMarker();
    const t1 = await turn({ home, cwd, prompt: `run exactly: echo ${m1}`, model: 'opus' });
    expectToolLoop(t1, m1);
    const first = emailsOf(generations().slice(before));
    expect(first.size, diag(t1)()).toBe(1);

    // The account that served last is now the most recently used: a new conversation would go elsewhere.
    expect(await server.stop()).toBe(0);
    server = await startServe({ env: serveEnv });
    const before2 = generations().length;
    const m2 = randomMarker();
    const t2 = await turn({ home, cwd, prompt: `run exactly: echo ${m2}`, model: 'opus', resume: String(t1.events[0]?.session_id) });
    expectToolLoop(t2, m2);
    const second = generations().slice(before2);
    expect([...emailsOf(second)], diag(t2)()).toEqual([...first]);
    // The first turn's signed thinking went back to Google (strictSignatures rejects a bad one).
    expect(JSON.stringify(second[0]!.body)).toContain('thoughtSignature');
    expect(second.map((g) => g.mode).filter((m) => m !== 'ok')).toEqual([]);
  }, 55_000);
});

describe('Claude Code forking a session (--resume … --fork-session)', () => {
  test('the fork, a new session id over the same history, is served by the account that holds that history, though it was used last', async () => {
    const home = tempDir('mcp-claude-home-');
    const cwd = tempDir('mcp-claude-cwd-');
    const before = generations().length;
    const m1 = randomMarker();
    const t1 = await turn({ home, cwd, prompt: `run exactly: echo ${m1}`, model: 'opus' });
    expectToolLoop(t1, m1);
    const first = emailsOf(generations().slice(before));
    expect(first.size, diag(t1)()).toBe(1);

    const before2 = generations().length;
    const m2 = randomMarker();
    const fork = await turn({ home, cwd, prompt: `run exactly: echo ${m2}`, model: 'opus', resume: String(t1.events[0]?.session_id), extraArgs: ['--fork-session'] });
    expectToolLoop(fork, m2);
    expect(String(fork.events[0]?.session_id)).not.toBe(String(t1.events[0]?.session_id));
    const second = generations().slice(before2);
    expect([...emailsOf(second)], diag(fork)()).toEqual([...first]);
    expect(second.map((g) => g.mode).filter((m) => m !== 'ok')).toEqual([]);
  }, 55_000);
});
