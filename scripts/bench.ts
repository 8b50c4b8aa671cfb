// `bun run bench [--quick] [--no-build] [--accounts N] [--only <workload>] [--waves] [--cold]`: what the proxy adds, measured against the
// physical floor in one run. A fast fake Cloud Code upstream (test/fakes/bench-upstream.ts) and
// the load generator live in this process, pinned to one core; the compiled proxy (dist/mcp) runs
// pinned to the other. Each workload is run against the upstream directly (the floor: the very
// Google request the proxy sent for it, replayed) and through the proxy (Anthropic Messages), and
// the table shows each figure with its ratio to the floor and the issue-6 target verdicts. Results
// go to .bench/results-<timestamp>.json and .bench/latest.json.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENGINE_HINTS } from '../src/engine-hints.ts';
import { type RawRun, type RunResult, type Sample, summarize } from './bench-stats.ts';
import {
  BENCH_REFRESH_TOKEN,
  type BenchUpstream,
  type BenchWorkload,
  BIG_MARKER,
  STREAM50_MARKER,
  startBenchUpstream,
  THINKING_MARKER,
} from '../test/fakes/bench-upstream.ts';

const ROOT = join(import.meta.dir, '..');
const argv = new Set(process.argv.slice(2));
const QUICK = argv.has('--quick');
const BUILD = !argv.has('--no-build');
const ACCOUNTS = Number(process.argv[process.argv.indexOf('--accounts') + 1]) || 1;
/** --profile: run the proxy from source under `bun --cpu-prof` and write .bench/prof/*.md (hot spots). */
const PROFILE = argv.has('--profile');
/** --source: run the proxy from source (bun src/main.ts) instead of dist/mcp; for quick experiments. */
const SOURCE = argv.has('--source') || PROFILE;
/** --only <substring>: measure only the workloads whose name contains it (e.g. "small c=64"). */
const ONLY = argv.has('--only') ? process.argv[process.argv.indexOf('--only') + 1]! : null;
/** --cold: no priming requests right before each measured phase (see `measure`). */
const COLD = argv.has('--cold');
/** --waves: for the concurrent stream workloads, print TTFB, total and body time per wave of requests started together. */
const WAVES = argv.has('--waves');
/** --threads: print the proxy's CPU per request by thread after each workload (the JSON always has it). */
const THREADS = argv.has('--threads');
/** --sequential: each timed workload in one floor run then one proxy run, as before the slices (for comparison). */
const SEQUENTIAL = argv.has('--sequential');
const SLICES = QUICK ? 3 : 5;
const MODEL = process.env.BENCH_MODEL ?? 'claude-sonnet-4-6';
const PROXY_KEY = 'bench-proxy-key-0123456789abcdef';

// ---------------------------------------------------------------------------------------------
// Machine: pin this process (upstream + load generator) to the last core, the proxy to core 0.

function hasTaskset(): boolean {
  return Bun.spawnSync(['sh', '-c', 'command -v taskset'], { stdout: 'ignore', stderr: 'ignore' }).exitCode === 0;
}
const CORES = availableParallelism();
const PIN = CORES >= 2 && hasTaskset();
const PROXY_CORE = 0;
const LOAD_CORE = CORES - 1;
if (PIN) Bun.spawnSync(['taskset', '-a', '-p', '-c', String(LOAD_CORE), String(process.pid)], { stdout: 'ignore', stderr: 'ignore' });

// ---------------------------------------------------------------------------------------------
// /proc readings of the proxy.

/** [utime, stime] in clock ticks (fields 14 and 15 of /proc/<pid>/stat). */
function cpuSplit(pid: number): [number, number] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [Number(fields[11]), Number(fields[12])];
}

/**
 * utime + stime clock ticks by thread name (/proc/<pid>/task/<tid>/stat): the main thread is named
 * after the executable; JavaScriptCore's JIT compiler and collector helpers, Bun's HTTP client and
 * its thread pool have names of their own. Threads of one name are summed; one that ended is gone.
 */
function threadTicks(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    const name = tid === String(pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out[name] = (out[name] ?? 0) + Number(fields[11]) + Number(fields[12]);
  }
  return out;
}

/** What each thread name spent between two readings. */
function threadDelta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, t] of Object.entries(after)) out[name] = t - (before[name] ?? 0);
  return out;
}

function memKb(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const get = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rss: get('VmRSS'), hwm: get('VmHWM') };
}

// ---------------------------------------------------------------------------------------------
// The 90 KB request: 16 tools, 59 messages, shaped like a Claude Code turn deep into a session
// (modelled on the captures in fixtures/claude-code: system blocks, long tool descriptions with
// JSON schemas, alternating tool_use / tool_result turns). As in the captures, most of its text is
// in strings that hold a character beyond Latin-1 ("—", "→"): 73-79 % of the characters there,
// ~70 % here. Such strings are UTF-16 inside the engine, and stringifying them is several times
// slower: the proxy's turn costs 0.15-0.25 ms more than with the all-ASCII body this bench used
// until session 11 (docs/benchmarks.md, "Real turns are not ASCII").

const LOREM =
  'The quick brown fox jumps over the lazy dog while the compiler checks every branch of the parser and the tests run in parallel across the workers. ';

function text(n: number, seed: number): string {
  let s = '';
  while (s.length < n) s += `${LOREM.slice(seed % 40)}${LOREM.slice(0, seed % 40)}`;
  return s.slice(0, n);
}

/** `text` with a dash and an arrow in it, as Claude Code's prompt and tool texts have. */
function wideText(n: number, seed: number): string {
  const s = text(n - 6, seed);
  return `${s.slice(0, 40)} — ${s.slice(40)} → `;
}

export function bigRequest(targetBytes = 90 * 1024): Record<string, unknown> {
  const tools = Array.from({ length: 16 }, (_, i) => ({
    name: ['Agent', 'Bash', 'Edit', 'Glob', 'Grep', 'NotebookEdit', 'Read', 'Skill', 'TaskCreate', 'TaskGet', 'TaskList', 'TaskUpdate', 'TodoWrite', 'WebFetch', 'WebSearch', 'Write'][i]!,
    description: wideText(1500, i),
    input_schema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      additionalProperties: false,
      required: ['command'],
      properties: {
        command: { type: 'string', description: text(200, i + 3) },
        timeout: { type: 'number', description: 'Optional timeout in milliseconds (max 600000)' },
        description: { type: 'string', description: text(120, i + 5) },
        options: {
          type: 'object',
          properties: {
            mode: { type: 'string', enum: ['fast', 'safe', 'verbose'] },
            paths: { type: 'array', items: { type: 'string' }, minItems: 1 },
          },
        },
      },
    },
  }));
  const messages: Array<Record<string, unknown>> = [
    { role: 'user', content: [{ type: 'text', text: `<system-reminder>${text(1200, 1)}</system-reminder>` }, { type: 'text', text: 'Fix the failing test in src/parser.ts' }] },
  ];
  for (let t = 0; t < 29; t++) {
    const id = `toolu_bench_${String(t).padStart(4, '0')}`;
    messages.push({
      role: 'assistant',
      content: [
        { type: 'text', text: `Step ${t}: ${text(80, t)}` },
        { type: 'tool_use', id, name: 'Bash', input: { command: `grep -rn "parse" src/ | head -${t + 5}`, description: 'Search the parser' } },
      ],
    });
    messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: id, content: 'RESULT' }] });
  }
  (messages[messages.length - 1]!.content as Array<Record<string, unknown>>).push({ type: 'text', text: `Go on. ${BIG_MARKER}` });
  const body: Record<string, unknown> = {
    model: MODEL,
    max_tokens: 32000,
    stream: true,
    system: [
      { type: 'text', text: 'x-anthropic-billing-header: cc_version=2.1.197; cc_entrypoint=sdk-cli' },
      { type: 'text', text: "You are Claude Code, Anthropic's official CLI for Claude.", cache_control: { type: 'ephemeral' } },
      { type: 'text', text: wideText(12000, 7), cache_control: { type: 'ephemeral' } },
    ],
    tools,
    messages,
    metadata: { user_id: '{"device_id":"bench","session_id":"d331dcf0-f4e5-47fc-b3b9-4b68a03c5e84"}' },
  };
  // Pad the tool results evenly to reach the target size.
  const base = JSON.stringify(body).length;
  const per = Math.max(0, Math.floor((targetBytes - base) / 29));
  let k = 0;
  for (const m of messages) {
    const c = m.content as Array<Record<string, unknown>>;
    // Two results in three hold a wide character too (file contents, command output).
    if (c[0]?.type === 'tool_result') c[0].content = k % 3 === 2 ? text(per, k++) : wideText(per, k++);
  }
  return body;
}

// ---------------------------------------------------------------------------------------------
// Load generation.

type OneRequest = () => Promise<Sample>;

interface LoadOptions {
  concurrency: number;
  count?: number;
  durationMs?: number;
  cpuPid?: number;
}

/** Runs `concurrency` loops of `one` until `count` requests were started or `durationMs` passed. */
async function loadRaw(one: OneRequest, opts: LoadOptions): Promise<RawRun> {
  const samples: Sample[] = [];
  let started = 0;
  let errors = 0;
  let lost = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const deadline = opts.durationMs ? t0 + opts.durationMs : Number.POSITIVE_INFINITY;
  const cpu0: [number, number] = opts.cpuPid ? cpuSplit(opts.cpuPid) : [0, 0];
  const threads0 = opts.cpuPid ? threadTicks(opts.cpuPid) : {};
  const self0 = process.cpuUsage();
  const worker = async () => {
    for (;;) {
      if (opts.count !== undefined && started >= opts.count) return;
      if (performance.now() >= deadline) return;
      started++;
      try {
        samples.push(await one());
      } catch (err) {
        const msg = (err as Error).message ?? String(err);
        if (msg.startsWith('lost:')) lost++;
        else errors++;
        firstError ??= msg;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const elapsedMs = performance.now() - t0;
  const self = process.cpuUsage(self0);
  let ticks: [number, number] | undefined;
  let threads: Record<string, number> | undefined;
  if (opts.cpuPid) {
    const [u, s] = cpuSplit(opts.cpuPid);
    ticks = [u - cpu0[0], s - cpu0[1]];
    threads = threadDelta(threads0, threadTicks(opts.cpuPid));
  }
  return { samples, errors, lost, elapsedMs, ticks, threadTicks: threads, benchCpuUs: self.user + self.system, firstError };
}

async function load(one: OneRequest, opts: LoadOptions): Promise<RunResult> {
  return summarize([await loadRaw(one, opts)]);
}

/** POSTs and reads the whole body; TTFB = first body chunk. `done` must be found in the tail, else the stream was lost. */
function requester(url: string, headers: Record<string, string>, body: string, done: string): OneRequest {
  return async () => {
    const t0 = performance.now();
    const res = await fetch(url, { method: 'POST', headers, body });
    if (res.status !== 200) {
      const t = await res.text();
      throw new Error(`HTTP ${res.status}: ${t.slice(0, 200)}`);
    }
    const reader = res.body!.getReader();
    let ttfb = 0;
    let tail = '';
    const dec = new TextDecoder();
    for (;;) {
      const { done: end, value } = await reader.read();
      if (end) break;
      if (!ttfb) ttfb = performance.now() - t0;
      tail = (tail + dec.decode(value, { stream: true })).slice(-600);
    }
    const total = performance.now() - t0;
    if (!tail.includes(done)) throw new Error(`lost: stream ended without ${done}: …${tail.slice(-120)}`);
    return { start: t0, ttfb: ttfb || total, total };
  };
}

// ---------------------------------------------------------------------------------------------
// The proxy.

interface Proxy {
  url: string;
  pid: number;
  logPath: string;
  stop(): Promise<void>;
}

async function run(cmd: string[], env: Record<string, string>): Promise<{ code: number; out: string }> {
  const p = Bun.spawn(cmd, { cwd: ROOT, env, stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' });
  const [o, e, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out: o + e };
}

/** The proxy child, so a failing run does not leave it behind. */
let running: Bun.Subprocess | null = null;

async function startProxy(bin: string, env: Record<string, string>, dir: string): Promise<Proxy> {
  const logPath = join(dir, 'serve.log');
  const serve = PROFILE
    ? [process.execPath, '--cpu-prof', '--cpu-prof-md', '--cpu-prof-interval=250', `--cpu-prof-dir=${join(ROOT, '.bench', 'prof')}`, join(ROOT, 'src', 'main.ts'), 'serve']
    : SOURCE
      ? [process.execPath, join(ROOT, 'src', 'main.ts'), 'serve']
      : [bin, 'serve'];
  const cmd = PIN ? ['taskset', '-c', String(PROXY_CORE), ...serve] : serve;
  // The server's log goes to files (written by the kernel, not read by this process).
  const proc = Bun.spawn(cmd, {
    cwd: ROOT,
    env: { ...env, PORT: '0', BIND_ADDRESS: '127.0.0.1' },
    stdout: Bun.file(logPath),
    stderr: Bun.file(join(dir, 'serve.err.log')),
    stdin: 'ignore',
  });
  running = proc;
  const deadline = Date.now() + 20_000;
  let port = 0;
  while (!port) {
    await Bun.sleep(50);
    const log = existsSync(logPath) ? readFileSync(logPath, 'utf8') : '';
    const m = /listening on http:\/\/[^\s:]+:(\d+)/.exec(log);
    if (m) port = Number(m[1]);
    if (proc.exitCode !== null) throw new Error(`mcp serve exited (${proc.exitCode}):\n${log}`);
    if (Date.now() > deadline) throw new Error(`mcp serve did not start:\n${log}`);
  }
  const url = `http://127.0.0.1:${port}`;
  while ((await fetch(`${url}/health`).catch(() => null))?.status !== 200) {
    if (Date.now() > deadline) throw new Error('mcp serve /health never answered');
    await Bun.sleep(50);
  }
  return {
    url,
    pid: proc.pid,
    logPath,
    async stop() {
      proc.kill(PROFILE ? 'SIGINT' : 'SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await proc.exited;
      clearTimeout(t);
    },
  };
}

// ---------------------------------------------------------------------------------------------

interface Row {
  workload: string;
  floor: RunResult;
  proxy: RunResult;
  /** Proxy VmRSS / VmHWM (MB) right after the workload. */
  rssMb: number;
  hwmMb: number;
}

/** A difference to the floor: "+2.5 ms", "−3.1 ms". */
function signedMs(d: number): string {
  return `${d < 0 ? '−' : '+'}${fmt(Math.abs(d))} ms`;
}

function fmt(n: number | undefined, digits = 1): string {
  if (n === undefined || Number.isNaN(n)) return '-';
  return n >= 100 ? n.toFixed(0) : n.toFixed(digits);
}

async function main(): Promise<void> {
  const started = new Date();
  const bin = join(ROOT, 'dist', 'mcp');
  if (!SOURCE && (BUILD || !existsSync(bin))) {
    const b = await run([process.execPath, 'run', 'build'], process.env as Record<string, string>);
    if (b.code !== 0) throw new Error(`build failed:\n${b.out}`);
  }
  const version = (await run([bin, '--version'], { PATH: process.env.PATH ?? '' })).out.trim().replace(/^mcp\s+/, '');

  const tokens = Array.from({ length: ACCOUNTS }, (_, i) => (i === 0 ? BENCH_REFRESH_TOKEN : `${BENCH_REFRESH_TOKEN}-${i}`));
  const up: BenchUpstream = startBenchUpstream({ refreshTokens: tokens });
  const dir = mkdtempSync(join(tmpdir(), 'mcp-bench-'));
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    MCP_DATA_DIR: dir,
    PROXY_API_KEY: PROXY_KEY,
    NO_COLOR: '1',
    QUOTA_POLL_INTERVAL_SEC: '86400',
    ...up.env(),
    // Under the profiler the proxy does not re-execute itself with its engine hints: they are given here.
    ...(PROFILE ? ENGINE_HINTS : {}),
    // Experiments: extra environment for the proxy, e.g. BENCH_PROXY_ENV="BUN_JSC_forceRAMSize=150000000".
    ...Object.fromEntries((process.env.BENCH_PROXY_ENV ?? '').split(/\s+/).filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
  };
  for (const [i, t] of tokens.entries()) {
    const a = await run([bin, 'accounts', 'add', '--provider', 'antigravity', '--refresh-token', t, '--label', `bench-${i}`], env);
    if (a.code === 0) continue;
    // A build without the Google login path: put the account in the store directly (what the login would have saved).
    if (!/google-login/.test(a.out)) throw new Error(`accounts add failed:\n${a.out}`);
    console.log('note: this build cannot add a Google account by refresh token; writing it to the store directly');
    const { openDatabase } = await import('../src/store/db.ts');
    const { upsertAccount } = await import('../src/store/accounts.ts');
    const db = openDatabase(join(dir, 'proxy.db'));
    upsertAccount(db, { provider: 'antigravity', label: `bench-${i}`, email: `bench${i}@example.com`, credentials: { kind: 'oauth', refreshToken: t } });
    db.close();
  }

  const proxy = await startProxy(bin, env, dir);
  await Bun.sleep(1000);
  const idleKb = memKb(proxy.pid).rss;
  if (ONLY) console.log(`proxy idle RSS ${fmt(idleKb / 1024)} MB`);

  const P = { 'x-api-key': PROXY_KEY, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' };
  const msgs = (text: string) => [{ role: 'user', content: text }];
  const bodies = {
    small: JSON.stringify({ model: MODEL, max_tokens: 1024, messages: msgs('Say hello.') }),
    big: JSON.stringify(bigRequest()),
    stream50: JSON.stringify({ model: MODEL, max_tokens: 1024, stream: true, messages: msgs(`Count to fifty. ${STREAM50_MARKER}`) }),
    thinking: JSON.stringify({
      model: MODEL,
      max_tokens: 16000,
      stream: true,
      thinking: { type: 'enabled', budget_tokens: 8000 },
      messages: msgs(`What is 120 / 1.5? ${THINKING_MARKER}`),
    }),
  };
  const viaProxy = {
    small: requester(`${proxy.url}/v1/messages`, P, bodies.small, '"stop_reason"'),
    big: requester(`${proxy.url}/v1/messages`, P, bodies.big, 'message_stop'),
    stream50: requester(`${proxy.url}/v1/messages`, P, bodies.stream50, 'message_stop'),
    thinking: requester(`${proxy.url}/v1/messages`, P, bodies.thinking, 'message_stop'),
  };

  // Warm-up: connection pools, the proxy's token/project caches, and the JIT. Each workload first
  // runs gently (alone, or 20 streams at a time), then at its measured concurrency, long enough for
  // JavaScriptCore to finish tiering its hot code up: with the short warm-up this used to be,
  // BUN_JSC_reportCompileTimes=1 showed the JIT worker (pinned to the proxy's core like every proxy
  // thread) compiling for ~20% of that core during the first measured seconds, which is start-up
  // cost, not what the proxy adds. The gentle step is where most of that compiling happens; a cold
  // process thrown straight into 16 concurrent 90 KB turns peaks ~5-10 MB higher (docs/benchmarks.md,
  // "Memory"). Also captures the exact upstream request of each workload for the floor.
  process.stdout.write('warming up… ');
  const warmMs = QUICK ? 1000 : 3000;
  // The proxy's RSS and peak after each step, in the JSON (`warmup`): the run's peak is usually set here.
  const warmup: { step: string; rssMb: number; hwmMb: number }[] = [];
  const step = async (name: string, run: Promise<RunResult>): Promise<RunResult> => {
    const r = await run;
    const m = memKb(proxy.pid);
    warmup.push({ step: name, rssMb: m.rss / 1024, hwmMb: m.hwm / 1024 });
    return r;
  };
  await step('small c=1', load(viaProxy.small, { concurrency: 1, durationMs: warmMs / 2 }));
  const w1 = await step('small c=64', load(viaProxy.small, { concurrency: 64, durationMs: warmMs }));
  await step('90KB c=1', load(viaProxy.big, { concurrency: 1, durationMs: warmMs / 2 }));
  const w2 = await step('90KB c=16', load(viaProxy.big, { concurrency: 16, durationMs: warmMs }));
  await step('stream50 c=20', load(viaProxy.stream50, { concurrency: 20, count: 20 }));
  const w3 = await step('stream50 c=100', load(viaProxy.stream50, { concurrency: 100, count: QUICK ? 100 : 200 }));
  await step('thinking c=20', load(viaProxy.thinking, { concurrency: 20, count: 20 }));
  const w4 = await step('thinking c=100', load(viaProxy.thinking, { concurrency: 100, count: QUICK ? 100 : 200 }));
  for (const [name, w] of [['small', w1], ['90KB', w2], ['stream', w3], ['thinking', w4]] as const) {
    if (w.errors || w.lost) throw new Error(`warm-up ${name} failed (${w.errors} errors, ${w.lost} lost): ${w.firstError}\n${readFileSync(proxy.logPath, 'utf8').slice(-2000)}`);
  }
  console.log('done');
  if (ONLY) console.log(`warm-up RSS/peak (MB): ${warmup.map((w) => `${w.step} ${fmt(w.rssMb)}/${fmt(w.hwmMb)}`).join(', ')}`);

  const token = await up.accessToken();
  const G = { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'user-agent': 'antigravity/hub/2.9.1 darwin/arm64' };
  const floorOf = (w: BenchWorkload): OneRequest => {
    const last = up.lastRequest(w);
    if (!last) throw new Error(`the proxy never sent a ${w} request upstream`);
    return requester(`${up.url}${last.path}`, G, last.body, 'finishReason');
  };
  const floor = {
    small: floorOf('small'),
    big: floorOf('big'),
    stream50: floorOf('stream50'),
    thinking: floorOf('thinking'),
  };

  const dur = QUICK ? 1500 : 5000;
  const rows: Row[] = [];
  const measure = async (workload: string, f: OneRequest, p: OneRequest, opts: { concurrency: number; count?: number; durationMs?: number }) => {
    if (ONLY && !workload.includes(ONLY)) return;
    process.stdout.write(`${workload}… `);
    // Each side has just sat idle while the other was measured (the proxy for the whole floor run),
    // and on a shared host an idle core comes back with cold caches: the first 100-stream burst then
    // took the proxy's main thread 21-45 ms of CPU instead of 16-24 (docs/benchmarks.md, Streams).
    // So each side first serves 50 small requests, unmeasured; --cold skips that.
    // A timed workload alternates the two sides in slices (five of 1 s each in a full run): this
    // host's speed for kernel- and memory-bound work swings by up to 2x from one second to the
    // next, so a floor measured in one 5 s window and the proxy in the next could each catch a
    // different spell; alternating gives both sides the same mix (docs/benchmarks.md, "Slices", "The host").
    // Counted workloads (the streams) run whole, once per side: their waves are the workload.
    const slices = opts.durationMs && !SEQUENTIAL ? SLICES : 1;
    const sliceOpts = opts.durationMs ? { ...opts, durationMs: opts.durationMs / slices } : opts;
    const flRuns: RawRun[] = [];
    const pxRuns: RawRun[] = [];
    for (let i = 0; i < slices; i++) {
      if (i) await Bun.sleep(200);
      if (!COLD) await load(floor.small, { concurrency: 1, count: 50 });
      flRuns.push(await loadRaw(f, sliceOpts));
      await Bun.sleep(200);
      if (!COLD) await load(viaProxy.small, { concurrency: 1, count: 50 });
      pxRuns.push(await loadRaw(p, { ...sliceOpts, cpuPid: proxy.pid }));
    }
    const fl = summarize(flRuns);
    const px = summarize(pxRuns);
    const m = memKb(proxy.pid);
    rows.push({ workload, floor: fl, proxy: px, rssMb: m.rss / 1024, hwmMb: m.hwm / 1024 });
    console.log(
      `floor ${fmt(fl.rps)} req/s, proxy ${fmt(px.rps)} req/s, RSS ${fmt(m.rss / 1024)} MB (peak ${fmt(m.hwm / 1024)})` +
        `${px.errors || px.lost ? ` (${px.errors} errors, ${px.lost} lost: ${px.firstError})` : ''}`,
    );
    if (WAVES && opts.concurrency >= 100) {
      for (const [name, r] of [['floor', fl], ['proxy', px]] as const) {
        for (const [i, w] of r.waves.entries()) {
          console.log(
            `  ${name} wave ${i + 1}: ${w.n} started within ${fmt(w.spanMs)} ms · TTFB p50 ${fmt(w.ttfb.p50)} max ${fmt(w.ttfb.max)} · total p50 ${fmt(w.total.p50)} max ${fmt(w.total.max)} · body p50 ${fmt(w.body.p50)} max ${fmt(w.body.max)} ms`,
          );
        }
      }
    }
    if (THREADS && px.threadMsPerReq) {
      const busy = Object.entries(px.threadMsPerReq).filter(([, ms]) => ms > 0).sort((a, b) => b[1] - a[1]);
      console.log(`  proxy CPU by thread (ms/req): ${busy.map(([name, ms]) => `${name} ${fmt(ms, 3)}`).join(', ') || '-'}`);
      console.log(`  upstream + load generator CPU (ms/req): ${fmt(fl.benchCpuMsPerReq, 3)} floor side, ${fmt(px.benchCpuMsPerReq, 3)} proxy side`);
    }
    await Bun.sleep(200);
  };

  await measure('small c=1', floor.small, viaProxy.small, { concurrency: 1, durationMs: dur });
  await measure('small c=16', floor.small, viaProxy.small, { concurrency: 16, durationMs: dur });
  await measure('small c=64', floor.small, viaProxy.small, { concurrency: 64, durationMs: dur });
  await measure('90KB c=16', floor.big, viaProxy.big, { concurrency: 16, durationMs: dur });
  await measure('stream50 c=1', floor.stream50, viaProxy.stream50, { concurrency: 1, count: QUICK ? 4 : 12 });
  await measure('stream50 c=100', floor.stream50, viaProxy.stream50, { concurrency: 100, count: QUICK ? 100 : 300 });
  await measure('thinking c=100', floor.thinking, viaProxy.thinking, { concurrency: 100, count: QUICK ? 100 : 300 });

  await Bun.sleep(2000);
  const mem = memKb(proxy.pid);
  await proxy.stop();
  await up.stop();

  if (ONLY || PROFILE) {
    for (const r of rows) {
      console.log(
        `${r.workload}: floor ${fmt(r.floor.rps)} req/s, proxy ${fmt(r.proxy.rps)} req/s, CPU ${fmt(r.proxy.cpuMsPerReq, 3)} ms/req (kernel ${fmt(r.proxy.sysMsPerReq, 3)}), TTFB p50 ${fmt(r.floor.ttfb.p50, 1)}/${fmt(r.proxy.ttfb.p50, 1)} ms, total p99 ${fmt(r.floor.latency.p99, 1)}/${fmt(r.proxy.latency.p99, 1)} ms, RSS ${fmt(r.rssMb)} MB (peak so far ${fmt(r.hwmMb)})`,
      );
    }
    if (PROFILE) console.log(`profile: ${join(ROOT, '.bench', 'prof')}`);
    rmSync(dir, { recursive: true, force: true });
    return;
  }

  // ---- Verdicts ----
  const get = (w: string) => rows.find((r) => r.workload === w)!;
  const c64 = get('small c=64');
  const big = get('90KB c=16');
  const s100 = get('stream50 c=100');
  const t100 = get('thinking c=100');
  const targets = [
    { name: 'small c=64 req/s >= 30% of floor', value: c64.proxy.rps / c64.floor.rps, ok: c64.proxy.rps / c64.floor.rps >= 0.3, show: `${fmt((100 * c64.proxy.rps) / c64.floor.rps)}%` },
    { name: 'small c=64 p99 < 5x floor', value: c64.proxy.latency.p99 / c64.floor.latency.p99, ok: c64.proxy.latency.p99 < 5 * c64.floor.latency.p99, show: `${fmt(c64.proxy.latency.p99 / c64.floor.latency.p99, 2)}x` },
    { name: '90KB c=16 req/s >= 20% of floor', value: big.proxy.rps / big.floor.rps, ok: big.proxy.rps / big.floor.rps >= 0.2, show: `${fmt((100 * big.proxy.rps) / big.floor.rps)}%` },
    { name: '100 streams TTFB p50 <= floor + 5 ms', value: s100.proxy.ttfb.p50 - s100.floor.ttfb.p50, ok: s100.proxy.ttfb.p50 - s100.floor.ttfb.p50 <= 5, show: signedMs(s100.proxy.ttfb.p50 - s100.floor.ttfb.p50) },
    { name: '100 streams total p99 <= floor + 15 ms', value: s100.proxy.latency.p99 - s100.floor.latency.p99, ok: s100.proxy.latency.p99 - s100.floor.latency.p99 <= 15, show: signedMs(s100.proxy.latency.p99 - s100.floor.latency.p99) },
    { name: 'no stream lost (stream50 + thinking c=100)', value: s100.proxy.lost + s100.proxy.errors + t100.proxy.lost + t100.proxy.errors, ok: s100.proxy.lost + s100.proxy.errors + t100.proxy.lost + t100.proxy.errors === 0, show: `${s100.proxy.lost + s100.proxy.errors + t100.proxy.lost + t100.proxy.errors} lost` },
    { name: 'peak RSS < 120 MB', value: mem.hwm / 1024, ok: mem.hwm / 1024 < 120, show: `${fmt(mem.hwm / 1024)} MB` },
    { name: 'idle RSS < 60 MB', value: idleKb / 1024, ok: idleKb / 1024 < 60, show: `${fmt(idleKb / 1024)} MB` },
  ];

  // ---- Table ----
  const lines: string[] = [];
  lines.push('');
  lines.push(`mcp ${version} · ${CORES} cores · ${PIN ? `proxy pinned to core ${PROXY_CORE}, upstream + load generator to core ${LOAD_CORE}` : 'NOT pinned (taskset missing or one core)'} · ${QUICK ? 'quick' : 'full'} run${COLD ? ' (cold: no priming)' : ''}${SEQUENTIAL ? ' (sequential)' : ` (timed workloads in ${SLICES} alternating slices)`} · ${ACCOUNTS} account(s) · model ${MODEL}`);
  lines.push('');
  const head = ['workload', 'req/s floor', 'req/s proxy', 'ratio', 'p50 floor', 'p50 proxy', 'p99 floor', 'p99 proxy', 'TTFB p50 f/p', 'TTFB p99 f/p', 'proxy CPU ms/req', 'err/lost'];
  const table: string[][] = [head];
  for (const r of rows) {
    table.push([
      r.workload,
      fmt(r.floor.rps),
      fmt(r.proxy.rps),
      `${fmt((100 * r.proxy.rps) / r.floor.rps)}%`,
      fmt(r.floor.latency.p50),
      `${fmt(r.proxy.latency.p50)} (${fmt(r.proxy.latency.p50 / r.floor.latency.p50, 2)}x)`,
      fmt(r.floor.latency.p99),
      `${fmt(r.proxy.latency.p99)} (${fmt(r.proxy.latency.p99 / r.floor.latency.p99, 2)}x)`,
      `${fmt(r.floor.ttfb.p50)}/${fmt(r.proxy.ttfb.p50)}`,
      `${fmt(r.floor.ttfb.p99)}/${fmt(r.proxy.ttfb.p99)}`,
      fmt(r.proxy.cpuMsPerReq, 2),
      `${r.proxy.errors}/${r.proxy.lost}`,
    ]);
  }
  const widths = head.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  for (const row of table) lines.push(row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
  lines.push('(latencies in ms)');
  lines.push(`proxy RSS: idle ${fmt(idleKb / 1024)} MB, peak ${fmt(mem.hwm / 1024)} MB, after the run ${fmt(mem.rss / 1024)} MB`);
  lines.push('');
  for (const t of targets) lines.push(`${t.ok ? 'PASS' : 'FAIL'}  ${t.name}: ${t.show}`);
  const failed = targets.filter((t) => !t.ok).length;
  lines.push('');
  lines.push(failed ? `${failed} target(s) missed` : 'all targets met');
  console.log(lines.join('\n'));

  const result = {
    startedAt: started.toISOString(),
    version,
    machine: { cores: CORES, pinned: PIN, proxyCore: PIN ? PROXY_CORE : null, loadCore: PIN ? LOAD_CORE : null },
    quick: QUICK,
    accounts: ACCOUNTS,
    model: MODEL,
    proxyEnv: process.env.BENCH_PROXY_ENV ?? '',
    primed: !COLD,
    slices: SEQUENTIAL ? 1 : SLICES,
    workloads: rows,
    memory: { idleMb: idleKb / 1024, peakMb: mem.hwm / 1024, afterMb: mem.rss / 1024 },
    warmup,
    targets: targets.map(({ name, value, ok }) => ({ name, value, ok })),
  };
  const out = join(ROOT, '.bench');
  mkdirSync(out, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  writeFileSync(join(out, `results-${stamp}.json`), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(out, 'latest.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log(`results: .bench/results-${stamp}.json (and .bench/latest.json)`);
  rmSync(dir, { recursive: true, force: true });
  process.exit(failed ? 1 : 0);
}

if (import.meta.main) {
  main().catch((err) => {
    running?.kill('SIGKILL');
    console.error(`bench failed: ${(err as Error).stack ?? err}`);
    process.exit(2);
  });
}
