// `mcp serve` runs with a hint to JavaScriptCore's garbage collector: BUN_JSC_forceRAMSize makes it
// size the heap as if the machine had 320 MiB, so the heap grows 2x per collection only while its
// footprint is under 80 MB, then 1.5x, instead of 2x always. Under a burst of large Claude Code
// turns that keeps the peak near 105-115 MB instead of ~150 MB, for a few percent more CPU on large
// requests (docs/benchmarks.md, "Memory"). It is a hint, not a limit. JavaScriptCore reads it once,
// before any JavaScript runs, so the process re-executes itself once (same pid, execve) with it set.
// A value already in the environment wins; 0 means JavaScriptCore's own sizing by the machine's RAM.

export const HEAP_HINT_VAR = 'BUN_JSC_forceRAMSize';
export const HEAP_HINT_BYTES = 320 * 1024 * 1024;

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
 * The command line and environment to re-execute `mcp serve` with the heap hint, or null when no
 * re-execution is wanted: another command, the variable already set (by the user, or by the
 * re-execution itself), or Windows (no execve).
 */
export function heapHintPlan(p: ProcessFacts): ExecPlan | null {
  if (p.argv[2] !== 'serve' || p.platform === 'win32' || p.env[HEAP_HINT_VAR] !== undefined) return null;
  const env = { ...p.env, [HEAP_HINT_VAR]: String(HEAP_HINT_BYTES) };
  // Compiled: argv is ["bun", "/$bunfs/root/mcp", ...]; from source: [bun, main.ts, ...] with bun's own flags in execArgv.
  const args = isCompiled(p.argv[1]) ? [p.execPath, ...p.argv.slice(2)] : [p.execPath, ...p.execArgv, ...p.argv.slice(1)];
  return { file: p.execPath, args, env };
}

/** Re-executes the process per `heapHintPlan`; returns only when it did not (then the server runs without the hint). */
export function applyHeapHint(): void {
  const plan = heapHintPlan({
    argv: process.argv,
    execArgv: process.execArgv,
    execPath: process.execPath,
    env: process.env,
    platform: process.platform,
  });
  const execve = (process as { execve?: (file: string, args: string[], env: Record<string, string | undefined>) => never }).execve;
  if (!plan || typeof execve !== 'function') return;
  try {
    execve.call(process, plan.file, plan.args, plan.env);
  } catch {
    // execve refused (a sandbox, a deleted binary): the server still works, with the default heap sizing.
  }
}
