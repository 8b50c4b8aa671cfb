// `mcp serve` runs with three hints to JavaScriptCore, set in the environment because the engine reads
// its options once, before any JavaScript runs; so the process re-executes itself once (same pid,
// execve) with them set. A value already in the environment wins (docs/benchmarks.md, "Memory").
//
// - BUN_JSC_forceRAMSize: size the heap as if the machine had 136 MiB, so it collects sooner
//   (at 22-30 MB of heap instead of 32-46 MB under 90 KB turns, as the collector logs it), and
//   sooner still once the process nears ~110 MB. Under a burst of large Claude Code turns that
//   keeps the peak near 112-120 MB (320 MiB: 116-127; the engine's own sizing: ~150), for a few
//   percent more CPU on large requests; 128 MiB held it at 111-113 MB but cost the 90 KB turn
//   ~25 % more CPU, and 132 MiB (110-112 MB) let the last first byte of 100 streams started
//   together come up to 41 ms after their start instead of 20-26. A hint, not a limit; 0 means
//   the engine's own sizing.
// - BUN_JSC_mediumHeapRAMFraction=0.82: past 0.82 x that RAM (111.5 MiB) of footprint the heap
//   grows by 1.24x between collections instead of 1.5x (the engine starts that at 0.9 x, 122 MiB).
//   Under 0.8 x (108.8 MiB) it still doubles, so a burst of streams starts as fast as before,
//   while a burst of large turns peaks at 113-117 MB instead of 113-120 (nine full benchmark
//   runs against sixteen; in four alternating pairs the same CPU and stream latencies).
// - BUN_JSC_useFTLJIT=false: stop tiering at the DFG JIT. The FTL tier compiled for ~2 s of CPU
//   in the first seconds of the benchmark, on a thread that competes with requests on a small machine,
//   and its compilations made the tallest memory peaks; it makes the translation ~10 % faster once
//   warm, ~10 µs of a 90 KB turn's ~500. `true` brings it back.

export const ENGINE_HINTS: Readonly<Record<string, string>> = {
  BUN_JSC_forceRAMSize: String(136 * 1024 * 1024),
  BUN_JSC_mediumHeapRAMFraction: '0.82',
  BUN_JSC_useFTLJIT: 'false',
};

export interface ExecPlan {
  file: string;
  args: string[];
  env: Record<string, string | undefined>;
}

export interface ProcessFacts {
  argv: string[];
  execArgv: string[];
  execPath: string;
  env: Record<string, string | undefined>;
  platform: string;
}

/** Compiled executables see their own entry under Bun's virtual file system. */
function isCompiled(entry: string | undefined): boolean {
  return !!entry && (entry.startsWith('/$bunfs/') || entry.startsWith('B:/~BUN/') || entry.startsWith('B:\\~BUN\\'));
}

/**
 * The command line and environment to re-execute `mcp serve` with the hints, or null when no
 * re-execution is wanted: another command, every hint already set (by the user, or by the
 * re-execution itself), Windows (no execve), or a run under Bun's CPU profiler.
 */
export function engineHintPlan(p: ProcessFacts): ExecPlan | null {
  if (p.argv[2] !== 'serve' || p.platform === 'win32') return null;
  // Bun's sampling profiler signals the main thread (SIGPWR) from its own thread: one that lands
  // after execve, before the new image installs a handler, kills the process.
  if (p.execArgv.some((a) => a.startsWith('--cpu-prof'))) return null;
  const missing = Object.keys(ENGINE_HINTS).filter((k) => p.env[k] === undefined);
  if (!missing.length) return null;
  const env = { ...p.env };
  for (const k of missing) env[k] = ENGINE_HINTS[k];
  // Compiled: argv is ["bun", "/$bunfs/root/mcp", ...]; from source: [bun, main.ts, ...] with bun's own flags in execArgv.
  const args = isCompiled(p.argv[1]) ? [p.execPath, ...p.argv.slice(2)] : [p.execPath, ...p.execArgv, ...p.argv.slice(1)];
  return { file: p.execPath, args, env };
}

/** Re-executes the process per `engineHintPlan`; returns only when it did not (then the server runs without the hints). */
export function applyEngineHints(): void {
  const plan = engineHintPlan({
    argv: process.argv,
    execArgv: process.execArgv,
    execPath: process.execPath,
    env: process.env,
    platform: process.platform,
  });
  if (plan) execQuietly(plan);
}

/**
 * execve(2) with `plan`; returns only when it was refused (a sandbox, a deleted binary, a binary
 * run under qemu-user): the server then still works, with the engine's defaults. Bun queues an
 * ExperimentalWarning for every execve call, printed on the next tick by the process's 'warning'
 * listener: when the call fails, that line would be the server's first output (and not JSON with
 * LOG_FORMAT=json), so the listener is set aside until the tick is over.
 */
export function execQuietly(plan: ExecPlan): void {
  const execve = (process as { execve?: (file: string, args: string[], env: Record<string, string | undefined>) => never }).execve;
  if (typeof execve !== 'function') return;
  const printers = process.listeners('warning');
  process.removeAllListeners('warning');
  try {
    execve.call(process, plan.file, plan.args, plan.env);
  } catch {
    // refused: go on without the hints
  } finally {
    setImmediate(() => {
      for (const l of printers) process.on('warning', l);
    });
  }
}
