// The bench's arithmetic, kept apart from scripts/bench.ts (which pins its own process to a core
// when loaded) so that it can be tested: percentiles, waves, and one result from several runs.

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
export const CLK_TCK = 100;

export interface Sample {
  /** When the request was sent (performance.now()). */
  start: number;
  ttfb: number;
  total: number;
}

export interface RunResult {
  requests: number;
  errors: number;
  lost: number;
  elapsedMs: number;
  rps: number;
  latency: { p50: number; p99: number };
  ttfb: { p50: number; p99: number };
  /** Requests started within 50 ms of each other, in order (a closed loop at high concurrency starts in waves). */
  waves: {
    n: number;
    spanMs: number;
    ttfb: { p50: number; max: number };
    total: { p50: number; max: number };
    /** From the first byte to the last (total - TTFB): what the stream itself took, its start left out. */
    body: { p50: number; max: number };
  }[];
  cpuMsPerReq?: number;
  /** The kernel's share of cpuMsPerReq (syscalls: sockets, writes). */
  sysMsPerReq?: number;
  /** cpuMsPerReq by the proxy's thread names (main, JIT compiler, collector helpers, ...). */
  threadMsPerReq?: Record<string, number>;
  /**
   * The bench process's own CPU per request (the fake upstream and the load generator): the same
   * work per request on either side, so it grows with the host's slow spells, not with the proxy.
   */
  benchCpuMsPerReq?: number;
  firstError?: string;
}

export function pct(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export /** What one run of a load loop saw, before it is summed up (several slices make one result). */
interface RawRun {
  samples: Sample[];
  errors: number;
  lost: number;
  elapsedMs: number;
  /** The proxy's [utime, stime] clock ticks spent during the run. */
  ticks?: [number, number];
  /** The same ticks (utime + stime) by thread name. */
  threadTicks?: Record<string, number>;
  /** The bench process's own CPU (user + system) during the run, µs. */
  benchCpuUs?: number;
  firstError?: string;
}

/** One result from one or more runs: requests over the summed time, percentiles over all samples. */
export function summarize(runs: RawRun[]): RunResult {
  const samples = runs.flatMap((r) => r.samples);
  const elapsedMs = runs.reduce((a, r) => a + r.elapsedMs, 0);
  const totals = samples.map((s) => s.total).sort((a, b) => a - b);
  const ttfbs = samples.map((s) => s.ttfb).sort((a, b) => a - b);
  const r: RunResult = {
    requests: samples.length,
    errors: runs.reduce((a, x) => a + x.errors, 0),
    lost: runs.reduce((a, x) => a + x.lost, 0),
    elapsedMs: Math.round(elapsedMs),
    rps: samples.length / (elapsedMs / 1000),
    latency: { p50: pct(totals, 50), p99: pct(totals, 99) },
    ttfb: { p50: pct(ttfbs, 50), p99: pct(ttfbs, 99) },
    waves: wavesOf(samples),
    firstError: runs.find((x) => x.firstError)?.firstError,
  };
  if (runs.every((x) => x.ticks) && samples.length) {
    const u = runs.reduce((a, x) => a + x.ticks![0], 0);
    const s = runs.reduce((a, x) => a + x.ticks![1], 0);
    r.cpuMsPerReq = ((u + s) * 1000) / CLK_TCK / samples.length;
    r.sysMsPerReq = (s * 1000) / CLK_TCK / samples.length;
  }
  if (runs.every((x) => x.benchCpuUs !== undefined) && samples.length) {
    r.benchCpuMsPerReq = runs.reduce((a, x) => a + x.benchCpuUs!, 0) / 1000 / samples.length;
  }
  if (runs.every((x) => x.threadTicks) && samples.length) {
    const by: Record<string, number> = {};
    for (const x of runs) for (const [name, t] of Object.entries(x.threadTicks!)) by[name] = (by[name] ?? 0) + t;
    r.threadMsPerReq = Object.fromEntries(Object.entries(by).map(([name, t]) => [name, (t * 1000) / CLK_TCK / samples.length]));
  }
  return r;
}

export function wavesOf(samples: Sample[]): RunResult['waves'] {
  const byStart = [...samples].sort((a, b) => a.start - b.start);
  const groups: Sample[][] = [];
  for (const s of byStart) {
    const g = groups.at(-1);
    if (g && s.start - g.at(-1)!.start <= 50) g.push(s);
    else groups.push([s]);
  }
  return groups.map((g) => {
    const t = g.map((s) => s.ttfb).sort((a, b) => a - b);
    const tot = g.map((s) => s.total).sort((a, b) => a - b);
    const body = g.map((s) => s.total - s.ttfb).sort((a, b) => a - b);
    return {
      n: g.length,
      spanMs: g.at(-1)!.start - g[0]!.start,
      ttfb: { p50: pct(t, 50), max: t.at(-1)! },
      total: { p50: pct(tot, 50), max: tot.at(-1)! },
      body: { p50: pct(body, 50), max: body.at(-1)! },
    };
  });
}
