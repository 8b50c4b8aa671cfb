// The bench's arithmetic (scripts/bench-stats.ts): the target verdicts in docs/benchmarks.md rest on
// these numbers, and the sliced runs sum several runs into one.
import { expect, test } from 'bun:test';
import { pct, type RawRun, type Sample, summarize, wavesOf } from '../../scripts/bench-stats.ts';

const sample = (start: number, ttfb: number, total: number): Sample => ({ start, ttfb, total });

function run(samples: Sample[], elapsedMs: number, extra: Partial<RawRun> = {}): RawRun {
  return { samples, errors: 0, lost: 0, elapsedMs, ...extra };
}

test('a percentile is a value that was measured, rounding the rank up', () => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  expect(pct(xs, 50)).toBe(50);
  expect(pct(xs, 99)).toBe(99);
  expect(pct([1, 2, 3], 50)).toBe(2);
  expect(pct([7], 99)).toBe(7);
  expect(pct([], 50)).toBeNaN();
});

test('slices sum to requests over their summed time, not the mean of their rates', () => {
  // 100 requests in 1 s and 300 in 1 s: 200 req/s. The mean of 100 and 300 would agree here, so
  // give the slices different lengths: 100 in 1 s and 100 in 0.25 s is 160 req/s, not 250.
  const a = run(Array.from({ length: 100 }, (_, i) => sample(i, 1, 2)), 1000);
  const b = run(Array.from({ length: 100 }, (_, i) => sample(2000 + i, 1, 2)), 250);
  const r = summarize([a, b]);
  expect(r.requests).toBe(200);
  expect(r.elapsedMs).toBe(1250);
  expect(r.rps).toBeCloseTo(160, 6);
});

test('percentiles of sliced runs are taken over every sample of every slice', () => {
  const fast = run(Array.from({ length: 98 }, (_, i) => sample(i, 1, 10)), 1000);
  const slow = run([sample(5000, 40, 90), sample(5001, 50, 100)], 1000);
  const r = summarize([fast, slow]);
  expect(r.latency).toEqual({ p50: 10, p99: 90 });
  expect(r.ttfb).toEqual({ p50: 1, p99: 40 });
});

test('proxy CPU per request counts the ticks of every slice over every request', () => {
  // 100 ticks of user and 50 of kernel time over 300 requests: 1.5 s of CPU, 5 ms per request.
  const a = run(Array.from({ length: 100 }, (_, i) => sample(i, 1, 2)), 1000, { ticks: [40, 10] });
  const b = run(Array.from({ length: 200 }, (_, i) => sample(5000 + i, 1, 2)), 1000, { ticks: [60, 40] });
  const r = summarize([a, b]);
  expect(r.cpuMsPerReq).toBeCloseTo(5, 9);
  expect(r.sysMsPerReq).toBeCloseTo(50 / 30, 9);
});

test('CPU by thread sums each name over the slices, a thread seen in one slice only included', () => {
  // 200 requests: main 30 + 50 ticks = 0.8 s = 4 ms per request; the JIT 10 ticks = 0.5 ms per request.
  const a = run(Array.from({ length: 100 }, (_, i) => sample(i, 1, 2)), 1000, { threadTicks: { main: 30, 'JIT Worklist': 10 } });
  const b = run(Array.from({ length: 100 }, (_, i) => sample(5000 + i, 1, 2)), 1000, { threadTicks: { main: 50 } });
  const r = summarize([a, b]);
  expect(r.threadMsPerReq!.main).toBeCloseTo(4, 9);
  expect(r.threadMsPerReq!['JIT Worklist']).toBeCloseTo(0.5, 9);
});

test("the bench's own CPU per request counts every slice over every request", () => {
  const a = run(Array.from({ length: 100 }, (_, i) => sample(i, 1, 2)), 1000, { benchCpuUs: 50_000 });
  const b = run(Array.from({ length: 150 }, (_, i) => sample(5000 + i, 1, 2)), 1000, { benchCpuUs: 200_000 });
  expect(summarize([a, b]).benchCpuMsPerReq).toBeCloseTo(1, 9);
});

test('a side measured without its CPU (the floor) reports none', () => {
  const r = summarize([run([sample(0, 1, 2)], 10)]);
  expect(r.cpuMsPerReq).toBeUndefined();
  expect(r.sysMsPerReq).toBeUndefined();
  expect(r.threadMsPerReq).toBeUndefined();
});

test('errors and lost streams add up across slices, and the first error is kept', () => {
  const r = summarize([
    run([sample(0, 1, 2)], 10, { errors: 1, firstError: 'HTTP 500: first' }),
    run([sample(100, 1, 2)], 10, { lost: 2, firstError: 'lost: second' }),
  ]);
  expect([r.errors, r.lost, r.firstError]).toEqual([1, 2, 'HTTP 500: first']);
});

test('requests started within 50 ms of the previous one form one wave', () => {
  const samples = [sample(0, 10, 500), sample(1, 30, 520), sample(40, 5, 505), sample(600, 3, 503), sample(620, 4, 504)];
  expect(wavesOf(samples)).toEqual([
    { n: 3, spanMs: 40, ttfb: { p50: 10, max: 30 }, total: { p50: 505, max: 520 }, body: { p50: 490, max: 500 } },
    { n: 2, spanMs: 20, ttfb: { p50: 3, max: 4 }, total: { p50: 503, max: 504 }, body: { p50: 500, max: 500 } },
  ]);
});
