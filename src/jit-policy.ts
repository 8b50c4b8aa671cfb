// Start-up code runs once: compiling it with JavaScriptCore's optimizing tiers wastes CPU and
// touches ~3 MB of compiler code that an idle server then keeps resident (idle RSS 58-60 MB ->
// ~54-57 MB). So the process starts with the JIT 100x more reluctant to tier up, and `serve` puts
// the normal policy back once it is listening, before any request runs (Bun.unsafe.setJITPolicy).

const STARTUP_SCALE = 100;

type WithJitPolicy = { unsafe?: { setJITPolicy?: (scale: number) => void } };

function setPolicy(scale: number): void {
  const set = (Bun as unknown as WithJitPolicy).unsafe?.setJITPolicy;
  if (typeof set === 'function') set(scale);
}

/** Called first thing: run-once start-up code stays in the interpreter and baseline JIT. */
export function startupJitPolicy(): void {
  setPolicy(STARTUP_SCALE);
}

/** Called once the server is ready for requests: the hot path gets the optimizing tiers again. */
export function normalJitPolicy(): void {
  setPolicy(1);
}
