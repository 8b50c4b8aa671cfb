// What the smoke scripts (docker-smoke.ts, binary-smoke.ts) share: numbered PASS/FAIL steps, a check
// that throws, a free loopback port and a bounded wait.

let failures = 0;

/** Runs one step and prints PASS or FAIL with its detail; a failure is counted, not thrown. */
export async function step(name: string, fn: () => Promise<string | void> | string | void): Promise<void> {
  try {
    const detail = await fn();
    console.log(`PASS  ${name}${detail ? `: ${detail}` : ''}`);
  } catch (err) {
    failures++;
    console.log(`FAIL  ${name}: ${(err as Error).message}`);
  }
}

/** How many steps failed so far (the scripts' exit code). */
export function failedSteps(): number {
  return failures;
}

export function expect(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

export function freePort(): number {
  const s = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response() });
  const port = s.port!;
  s.stop(true);
  return port;
}

export async function waitFor(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms / 1000} s`);
    await Bun.sleep(250);
  }
}
