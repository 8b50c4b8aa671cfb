// Drives the real program from the outside: `mcp` as a child process (source or the built binary),
// `mcp serve` waited on until /health answers, and the real Claude Code CLI run headless against it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROOT = join(import.meta.dir, '..', '..');
/** How to run mcp from source. */
export const MCP_FROM_SOURCE: readonly string[] = [process.execPath, 'run', join(ROOT, 'src', 'main.ts')];
export const CLAUDE_BIN = join(ROOT, 'node_modules', '.bin', 'claude');
/**
 * For a hook that starts or stops mcp processes (`accounts add`, `serve`): bun gives hooks 5 s whatever
 * bunfig says, and on a busy 2-core machine each start takes a second or more. The helpers' own
 * limits (startServe, runMcp) stay the ones that fail, with the program's output.
 */
export const CHILD_PROCESS_HOOK_MS = 60_000;

const tempDirs: string[] = [];

/** A fresh private directory, removed by cleanupTempDirs(). */
export function tempDir(prefix = 'mcp-e2e-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export function cleanupTempDirs(): void {
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export type Env = Record<string, string>;

/**
 * A clean environment for mcp: nothing from the developer's shell leaks in (no real PROXY_API_KEY,
 * no real data dir), the data dir is private to the test.
 */
export function mcpEnv(dataDir: string, extra: Env = {}): Env {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dataDir,
    MCP_DATA_DIR: dataDir,
    NO_COLOR: '1',
    ...extra,
  };
}

/** Environment pointing mcp's upstreams at fakes. */
export function zaiEnv(fake: { url: string; quotaUrl: string }): Env {
  return { ZAI_BASE_URL: fake.url, ZAI_QUOTA_URL: fake.quotaUrl };
}

export function googleEnv(fake: { url: string; tokenUrl: string; authUrl: string; userinfoUrl: string; endpoints?: string[]; versionUrl?: string }): Env {
  return {
    // The updater manifest too: a test must never reach for the real one.
    ANTIGRAVITY_VERSION_URL: fake.versionUrl ?? 'off',
    GOOGLE_OAUTH_TOKEN_URL: fake.tokenUrl,
    GOOGLE_OAUTH_AUTH_URL: fake.authUrl,
    GOOGLE_USERINFO_URL: fake.userinfoUrl,
    ANTIGRAVITY_ENDPOINTS: (fake.endpoints?.length ? fake.endpoints : [fake.url]).join(','),
  };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `mcp <args>` to completion. stdin is a pipe (never a TTY), given text or closed at once. */
export async function runMcp(
  args: readonly string[],
  opts: { env: Env; stdin?: string; bin?: readonly string[]; timeoutMs?: number },
): Promise<RunResult> {
  const proc = Bun.spawn([...(opts.bin ?? MCP_FROM_SOURCE), ...args], {
    cwd: ROOT,
    env: opts.env,
    stdin: opts.stdin === undefined ? 'ignore' : new TextEncoder().encode(opts.stdin),
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const timer = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Adds Google accounts with `mcp accounts add` and the fake's refresh tokens; throws with mcp's stderr when one fails. */
export async function addGoogleAccounts(env: Env, google: { refreshTokenFor(email: string): string }, emails: readonly string[]): Promise<void> {
  for (const email of emails) {
    const r = await runMcp(['accounts', 'add', '--provider', 'antigravity', '--refresh-token', google.refreshTokenFor(email)], { env });
    if (r.code !== 0) throw new Error(`mcp accounts add (${email}) exited with ${r.code}: ${r.stderr}`);
  }
}

export interface McpProcess {
  proc: Bun.Subprocess<'pipe', 'pipe', 'pipe'>;
  /** stdout and stderr so far, each. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of re in stdout+stderr (throws after timeoutMs or at exit). */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Writes to stdin (e.g. a pasted redirect URL followed by a newline). */
  write(text: string): void;
  /** Closes stdin and resolves with the exit code. */
  finish(timeoutMs?: number): Promise<number>;
}

/** Runs `mcp <args>` with a stdin pipe the test writes to while watching the output (prompts). */
export function spawnMcp(args: readonly string[], opts: { env: Env; bin?: readonly string[] }): McpProcess {
  const proc = Bun.spawn([...(opts.bin ?? MCP_FROM_SOURCE), ...args], {
    cwd: ROOT,
    env: opts.env,
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const out = { text: '' };
  const err = { text: '' };
  const wakers = new Set<() => void>();
  const wake = () => {
    for (const w of wakers) w();
  };
  drain(proc.stdout, out, wake);
  drain(proc.stderr, err, wake);
  return {
    proc,
    stdout: () => out.text,
    stderr: () => err.text,
    async waitForOutput(re, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = re.exec(out.text + err.text);
        if (m) return m;
        if (proc.exitCode !== null) throw new Error(`mcp exited (${proc.exitCode}) before printing ${re}:\n${out.text}${err.text}`);
        if (Date.now() > deadline) throw new Error(`mcp did not print ${re} in time:\n${out.text}${err.text}`);
        await new Promise<void>((r) => {
          const w = () => {
            wakers.delete(w);
            r();
          };
          wakers.add(w);
          setTimeout(w, 50);
        });
      }
    },
    write(text) {
      proc.stdin.write(text);
      proc.stdin.flush();
    },
    async finish(timeoutMs = 30_000) {
      try {
        proc.stdin.end();
      } catch {
        // already closed
      }
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const code = await proc.exited;
      clearTimeout(timer);
      return code;
    },
  };
}

export interface ServeHandle {
  url: string;
  port: number;
  proc: Bun.Subprocess<'ignore', 'pipe', 'pipe'>;
  /** Everything the server printed so far (stdout then stderr). */
  output(): string;
  /** Sends the signal (SIGTERM by default) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number>;
}

function drain(stream: ReadableStream<Uint8Array>, sink: { text: string }, onChunk: () => void): void {
  const decoder = new TextDecoder();
  void (async () => {
    for await (const chunk of stream) {
      sink.text += decoder.decode(chunk, { stream: true });
      onChunk();
    }
  })().catch(() => {});
}

const LISTENING = /mcp listening on http:\/\/[^\s:]+:(\d+)/;

/**
 * Starts `mcp serve` (PORT=0 unless given: the server reports the port it got), waits for the
 * "listening" line and a 200 from /health. Throws with the server's output if it does not come up.
 */
export async function startServe(opts: {
  env: Env;
  args?: readonly string[];
  bin?: readonly string[];
  timeoutMs?: number;
}): Promise<ServeHandle> {
  const env: Env = { PORT: '0', BIND_ADDRESS: '127.0.0.1', ...opts.env };
  const proc = Bun.spawn([...(opts.bin ?? MCP_FROM_SOURCE), 'serve', ...(opts.args ?? [])], {
    cwd: ROOT,
    env,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const out = { text: '' };
  const err = { text: '' };
  const output = () => `${out.text}${err.text}`;
  let wake: () => void = () => {};
  drain(proc.stdout, out, () => wake());
  drain(proc.stderr, err, () => wake());

  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let port = 0;
  while (!port) {
    const m = LISTENING.exec(out.text);
    if (m) {
      port = Number(m[1]);
      break;
    }
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`mcp serve exited (${proc.exitCode ?? proc.signalCode}) before listening:\n${output()}`);
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`mcp serve did not report listening in time:\n${output()}`);
    }
    await new Promise<void>((r) => {
      wake = r;
      setTimeout(r, 50);
    });
  }
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok) break;
    } catch {
      // not accepting yet
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`mcp serve /health never answered 200:\n${output()}`);
    }
    await Bun.sleep(50);
  }
  return {
    url,
    port,
    proc,
    output,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const killer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      const code = await proc.exited;
      clearTimeout(killer);
      return code;
    },
  };
}

/** Polls until check() returns a truthy value or the time is up (then throws). */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs: number, what: string): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await Bun.sleep(50);
  }
}

// ---- Claude Code, headless (protocol reference §1.10) ----

export interface ClaudeEvent {
  type: string;
  subtype?: string;
  message?: { content?: Array<Record<string, unknown>> };
  [k: string]: unknown;
}

export interface ClaudeRun {
  code: number;
  events: ClaudeEvent[];
  /** The final {"type":"result"} line. */
  result: ClaudeEvent | undefined;
  /** assistant tool_use blocks, in order. */
  toolUses: Array<{ id: string; name: string; input: Record<string, unknown> }>;
  /** user tool_result blocks, with their text joined. */
  toolResults: Array<{ toolUseId: string; isError: boolean; text: string }>;
  stdout: string;
  stderr: string;
}

export function randomMarker(): string {
  return `MARK-${crypto.getRandomValues(new Uint32Array(1))[0]!.toString(36)}`;
}

/** Parses Claude Code's stream-json transcript. */
export function parseClaudeTranscript(stdout: string): Omit<ClaudeRun, 'code' | 'stdout' | 'stderr'> {
  const events: ClaudeEvent[] = [];
  for (const line of stdout.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('{')) continue;
    try {
      events.push(JSON.parse(t) as ClaudeEvent);
    } catch {
      // a partial line at a kill; ignore
    }
  }
  const toolUses: ClaudeRun['toolUses'] = [];
  const toolResults: ClaudeRun['toolResults'] = [];
  for (const ev of events) {
    for (const block of ev.message?.content ?? []) {
      if (ev.type === 'assistant' && block.type === 'tool_use') {
        toolUses.push({ id: String(block.id), name: String(block.name), input: (block.input ?? {}) as Record<string, unknown> });
      }
      if (ev.type === 'user' && block.type === 'tool_result') {
        const c = block.content;
        const text = typeof c === 'string' ? c : Array.isArray(c) ? c.map((p: { text?: string }) => p.text ?? '').join('') : '';
        toolResults.push({ toolUseId: String(block.tool_use_id), isError: block.is_error === true, text });
      }
    }
  }
  return { events, result: events.findLast((e) => e.type === 'result'), toolUses, toolResults };
}

/**
 * Runs `claude -p` headless with a clean environment against baseUrl; a fresh HOME and cwd unless
 * given. Without `resume`/`persist` the session is not kept. Claude Code refuses
 * --dangerously-skip-permissions as root, so the tool is allowed by name.
 */
export async function runClaude(opts: {
  baseUrl: string;
  apiKey: string;
  prompt: string;
  model: string;
  extraEnv?: Env;
  timeoutMs?: number;
  home?: string;
  cwd?: string;
  /** Keep the session on disk so a later run can --resume it. */
  persist?: boolean;
  resume?: string;
  maxTurns?: number;
  maxRetries?: number;
  /** Tools allowed without asking (default: `Bash(echo:*)`). */
  allowedTools?: string[];
  /** More CLI flags (e.g. `--fallback-model <id>`). */
  extraArgs?: string[];
  /**
   * User messages as stream-json lines on stdin (`--input-format stream-json`), e.g. with an image
   * block; `prompt` is then not passed.
   */
  input?: object[];
}): Promise<ClaudeRun> {
  const home = opts.home ?? tempDir('mcp-claude-home-');
  const cwd = opts.cwd ?? tempDir('mcp-claude-cwd-');
  const env: Env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    ANTHROPIC_BASE_URL: opts.baseUrl,
    ANTHROPIC_API_KEY: opts.apiKey,
    DISABLE_TELEMETRY: '1',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_ERROR_REPORTING: '1',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    CLAUDE_CODE_MAX_RETRIES: String(opts.maxRetries ?? 3),
    ...opts.extraEnv,
  };
  const proc = Bun.spawn(
    [
      CLAUDE_BIN,
      '-p',
      ...(opts.input ? ['--input-format', 'stream-json'] : [opts.prompt]),
      '--output-format',
      'stream-json',
      '--verbose',
      '--allowedTools',
      ...(opts.allowedTools ?? ['Bash(echo:*)']),
      '--max-turns',
      String(opts.maxTurns ?? 6),
      ...(opts.persist ? [] : ['--no-session-persistence']),
      '--model',
      opts.model,
      ...(opts.resume ? ['--resume', opts.resume] : []),
      ...(opts.extraArgs ?? []),
    ],
    {
      cwd,
      env,
      // A real pipe, written and closed: Claude Code reads nothing from Bun's in-memory stdin.
      stdin: opts.input ? 'pipe' : 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
    },
  );
  if (opts.input && proc.stdin && typeof proc.stdin !== 'number') {
    proc.stdin.write(opts.input.map((m) => `${JSON.stringify(m)}\n`).join(''));
    await proc.stdin.end();
  }
  const timer = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 90_000);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  return { code, stdout, stderr, ...parseClaudeTranscript(stdout) };
}
