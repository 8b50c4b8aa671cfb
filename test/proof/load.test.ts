// Load: 500 concurrent streams through `mcp serve` (a child process) in front of the fast fake
// Cloud Code upstream, for LOAD_DURATION_SEC (8 s inside `bun test`; `bun run proof:load` runs the
// full 30 s). A fifth of the clients walk away mid-stream. Asserts: zero errors, every upstream
// stream closed once its client went away (the fake's open-stream count back to 0), and no memory
// growth: the proxy's RSS after a second load round is not above the first round's.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDatabase } from '../../src/store/db.ts';
import { upsertAccount } from '../../src/store/accounts.ts';
import { BENCH_REFRESH_TOKEN, type BenchUpstream, STREAM50_MARKER, startBenchUpstream } from '../fakes/bench-upstream.ts';
import { CHILD_PROCESS_HOOK_MS, cleanupTempDirs, mcpEnv, runMcp, type ServeHandle, startServe, tempDir, waitFor } from '../e2e/helpers.ts';

const DURATION_SEC = Number(process.env.LOAD_DURATION_SEC ?? 8);
const CLIENTS = Number(process.env.LOAD_CLIENTS ?? 500);
/** Share of streams the client abandons midway. */
const ABORT_SHARE = 0.2;
const PROXY_KEY = 'proxy-key-proof-load-0123456789';
/** 50 chunks 40 ms apart: each stream lasts ~2 s, so 500 stay open at once with little CPU. */
const CHUNK_DELAY_MS = 40;

let up: BenchUpstream;
let server: ServeHandle;

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) / 1024;
}

beforeAll(async () => {
  up = startBenchUpstream({ chunkDelayMs: CHUNK_DELAY_MS });
  const dir = tempDir('mcp-proof-load-');
  const env = mcpEnv(dir, { PROXY_API_KEY: PROXY_KEY, QUOTA_POLL_INTERVAL_SEC: '86400', ...up.env() });
  const add = await runMcp(['accounts', 'add', '--provider', 'antigravity', '--refresh-token', BENCH_REFRESH_TOKEN, '--label', 'load'], { env });
  if (add.code !== 0) {
    // A tree without the Google login path yet: store the account as the login would have.
    expect(add.stderr + add.stdout).toContain('google-login');
    const db = openDatabase(join(dir, 'proxy.db'));
    upsertAccount(db, { provider: 'antigravity', label: 'load', email: 'bench@example.com', credentials: { kind: 'oauth', refreshToken: BENCH_REFRESH_TOKEN } });
    db.close();
  }
  server = await startServe({ env });
}, 30_000);

afterAll(async () => {
  await server?.stop();
  await up?.stop();
  cleanupTempDirs();
}, CHILD_PROCESS_HOOK_MS);

const BODY = JSON.stringify({
  model: 'claude-sonnet-4-6',
  max_tokens: 1024,
  stream: true,
  messages: [{ role: 'user', content: `Count to fifty. ${STREAM50_MARKER}` }],
});

interface Tally {
  completed: number;
  aborted: number;
  errors: string[];
}

/** One stream: read to the end (must end with message_stop), or abandon it after `abortAfterMs`. */
async function oneStream(t: Tally, abortAfterMs: number | null): Promise<void> {
  const ac = new AbortController();
  const timer = abortAfterMs === null ? null : setTimeout(() => ac.abort(), abortAfterMs);
  try {
    const res = await fetch(`${server.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': PROXY_KEY, 'content-type': 'application/json' },
      body: BODY,
      signal: ac.signal,
    });
    if (res.status !== 200) {
      t.errors.push(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
      return;
    }
    const dec = new TextDecoder();
    let tail = '';
    for await (const chunk of res.body!) tail = (tail + dec.decode(chunk, { stream: true })).slice(-400);
    if (!tail.includes('event: message_stop')) t.errors.push(`stream ended without message_stop: …${tail.slice(-200)}`);
    else t.completed++;
  } catch (err) {
    if (ac.signal.aborted) t.aborted++;
    else t.errors.push(`client error: ${(err as Error).message}`);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** CLIENTS loops of streams for `seconds`. */
async function round(seconds: number): Promise<Tally> {
  const t: Tally = { completed: 0, aborted: 0, errors: [] };
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, i) => {
      // Spread the starts over the first second so the upstream sees a ramp, not one burst.
      await Bun.sleep((i * 1000) / CLIENTS);
      while (performance.now() < end) {
        const abort = Math.random() < ABORT_SHARE ? 100 + Math.random() * 1500 : null;
        await oneStream(t, abort);
      }
    }),
  );
  return t;
}

/** Waits for the upstream to see every stream closed, then the lowest RSS over 3 s (the heap shrinks when the GC gets to it). */
async function settle(): Promise<number> {
  await waitFor(() => up.openStreams() === 0, 10_000, "the fake upstream's open streams back to 0");
  let low = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 12; i++) {
    await Bun.sleep(250);
    low = Math.min(low, rssMb(server.proc.pid));
  }
  return low;
}

describe(`${CLIENTS} concurrent streams for ${DURATION_SEC} s through mcp serve`, () => {
  test(
    'zero errors, every abandoned stream closed upstream, no memory growth between rounds',
    async () => {
      // Warm-up: token, project, JIT.
      const warm = await round(1);
      expect(warm.errors).toEqual([]);
      const base = await settle();

      const first = await round(DURATION_SEC / 2);
      const afterFirst = await settle();
      const second = await round(DURATION_SEC / 2);
      const afterSecond = await settle();

      const errors = [...first.errors, ...second.errors];
      console.log(
        `load: ${first.completed + second.completed} streams completed, ${first.aborted + second.aborted} abandoned, ${errors.length} errors; ` +
          `RSS ${base.toFixed(1)} MB idle, ${afterFirst.toFixed(1)} MB after round 1, ${afterSecond.toFixed(1)} MB after round 2`,
      );
      expect(errors.slice(0, 5)).toEqual([]);
      // Enough work was done to mean something: most clients finished several streams.
      expect(first.completed + second.completed).toBeGreaterThan((CLIENTS * DURATION_SEC) / 8);
      expect(first.aborted + second.aborted).toBeGreaterThan(0);
      // The proxy closed every upstream stream whose client left (settle() waited for 0), and holds none itself.
      const metrics = await (await fetch(`${server.url}/metrics`, { headers: { 'x-api-key': PROXY_KEY } })).text();
      expect(metrics).not.toMatch(/^mcp_active_streams(\{\})? [1-9]/m);
      // No growth: a second identical round leaves the process no bigger than before it (15% + 10 MB of slack for
      // when the collector runs; a leak of even 5 KB per stream would be ~10 MB per round here).
      expect(afterSecond).toBeLessThan(Math.max(base, afterFirst) * 1.15 + 10);
      expect(server.proc.exitCode).toBeNull();
    },
    (DURATION_SEC + 60) * 1000,
  );
});
