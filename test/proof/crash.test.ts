// Crash safety: `mcp serve` is killed with SIGKILL, round after round, while streams are in flight,
// the pool is writing rate limits, and `mcp accounts` edits run beside it (one of them killed too).
// After every kill the database must pass PRAGMA integrity_check, every account whose edit was
// acknowledged must be there, and the restarted server must keep the limits last committed.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { Database } from 'bun:sqlite';
import { join } from 'node:path';
import { type FakeZai, startFakeZai } from '../fakes/zai.ts';
import {
  CHILD_PROCESS_HOOK_MS,
  cleanupTempDirs,
  type Env,
  MCP_FROM_SOURCE,
  mcpEnv,
  ROOT,
  runMcp,
  type ServeHandle,
  startServe,
  tempDir,
  waitFor,
  zaiEnv,
} from '../e2e/helpers.ts';

const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 8);
const PROXY_KEY = 'proxy-key-proof-crash-0123456789';
const KEYS = Array.from({ length: 4 + 2 * ROUNDS }, (_, i) => `zai-key-crash-${String(i).padStart(3, '0')}-abcdef`);
const HOUR = 3_600_000;

let zai: FakeZai;
let dataDir: string;
let env: Env;

interface Row {
  id: string;
  label: string;
  status: string;
  credentials: string;
}
interface LimitRow {
  account_id: string;
  model: string;
  kind: string;
  reset_at: number;
}

function inspect(): { integrity: string; accounts: Row[]; limits: LimitRow[] } {
  const db = new Database(join(dataDir, 'proxy.db'), { readonly: true });
  try {
    const integrity = Object.values(db.query('PRAGMA integrity_check').get() as Record<string, string>)[0]!;
    const accounts = db.query('SELECT id, label, status, credentials FROM accounts ORDER BY label').all() as Row[];
    const limits = db.query('SELECT account_id, model, kind, reset_at FROM model_limits ORDER BY account_id, model').all() as LimitRow[];
    return { integrity, accounts, limits };
  } finally {
    db.close();
  }
}

async function addAccount(key: string, label: string): Promise<boolean> {
  const r = await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', key, '--label', label], { env });
  return r.code === 0;
}

/** A streamed request that stays open (slow chunks), read until the server dies under it; true when it was cut. */
async function streamUntilCut(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': PROXY_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'glm-4.6', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    const text = await res.text();
    return !text.includes('message_stop');
  } catch {
    return true; // the kill cut it: expected
  }
}

beforeAll(async () => {
  zai = startFakeZai({ keys: KEYS, record: false });
  dataDir = tempDir('mcp-proof-crash-');
  env = mcpEnv(dataDir, { PROXY_API_KEY: PROXY_KEY, ...zaiEnv(zai), QUOTA_POLL_INTERVAL_SEC: '3600' });
  expect(await addAccount(KEYS[0]!, 'base-0')).toBe(true);
  expect(await addAccount(KEYS[1]!, 'base-1')).toBe(true);
}, CHILD_PROCESS_HOOK_MS);

afterAll(async () => {
  await zai?.stop();
  cleanupTempDirs();
});

describe('SIGKILL while requests and account edits are in flight', () => {
  test(
    `${ROUNDS} kill/restart rounds: integrity ok, no acknowledged account lost, limits as last committed`,
    async () => {
      const acknowledged = new Set<string>(['base-0', 'base-1']);
      let committed: LimitRow[] = [];
      let limitsSeen = 0;
      let server: ServeHandle | null = null;
      try {
        for (let round = 0; round < ROUNDS; round++) {
          server = await startServe({ env });
          const url = server.url;

          // The limits committed before the kill survive the restart, and the server reports them.
          const now = Date.now();
          const live = committed.filter((l) => l.reset_at > now + 60_000);
          const current = inspect().limits;
          for (const l of live) {
            const after = current.find((x) => x.account_id === l.account_id && x.model === l.model);
            expect(after?.reset_at).toBe(l.reset_at);
            expect(after?.kind).toBe(l.kind);
          }
          if (live.length) {
            const limits = await (await fetch(`${url}/account-limits`, { headers: { 'x-api-key': PROXY_KEY } })).text();
            for (const l of live) expect(limits).toContain(l.account_id);
            limitsSeen++;
          }

          // The base-0 key hits its 5-hour quota in this round, so the pool writes a limit while we kill it.
          zai.setMode({ kind: 'error', code: '1308', resetAt: Date.now() + (round + 2) * HOUR }, { key: KEYS[0]!, times: 1 });
          zai.setMode({ kind: 'slow_chunks', chunks: 40, delayMs: 25 });

          const inFlight: Promise<boolean>[] = [];
          for (let i = 0; i < 12; i++) inFlight.push(streamUntilCut(url));

          // An edit that completes (must survive), and one that is itself killed mid-way (may or may not land).
          const label = `round-${round}`;
          const edit = addAccount(KEYS[2 + 2 * round]!, label).then((ok) => ok && acknowledged.add(label));
          const doomed = Bun.spawn(
            [...MCP_FROM_SOURCE, 'accounts', 'add', '--provider', 'zai', '--api-key', KEYS[3 + 2 * round]!, '--label', `doomed-${round}`],
            { cwd: ROOT, env, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' },
          );
          const toggle = runMcp(['accounts', round % 2 ? 'enable' : 'disable', 'base-1'], { env });

          await Bun.sleep(50 + Math.floor(Math.random() * 250));
          doomed.kill('SIGKILL');
          server.proc.kill('SIGKILL');
          await server.proc.exited;
          server = null;
          const [, , , ...cut] = await Promise.all([edit, toggle, doomed.exited, ...inFlight]);
          zai.clearModes();
          // The kill really landed mid-request.
          expect(cut.some(Boolean)).toBe(true);

          const state = inspect();
          expect(state.integrity).toBe('ok');
          const labels = new Set(state.accounts.map((a) => a.label));
          for (const l of acknowledged) expect(labels.has(l)).toBe(true);
          // A half-written account never appears: every row has whole, parseable credentials.
          for (const a of state.accounts) {
            expect(() => JSON.parse(a.credentials)).not.toThrow();
            expect(['active', 'disabled', 'invalid']).toContain(a.status);
          }
          committed = state.limits;
        }
      } finally {
        if (server) await server.stop('SIGKILL');
      }

      // The pool did write limits during the rounds, so the check above was not vacuous.
      expect(limitsSeen).toBeGreaterThan(0);

      // One last clean start: the server comes up on what the kills left, serves, and sees every account.
      const last = await startServe({ env });
      try {
        const res = await fetch(`${last.url}/v1/messages`, {
          method: 'POST',
          headers: { 'x-api-key': PROXY_KEY, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'glm-4.6', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }),
        });
        expect(res.status).toBe(200);
        await res.text();
        const n = Number(/\((\d+) accounts?\)/.exec(last.output())?.[1]);
        expect(n).toBe(inspect().accounts.length);
        expect(n).toBeGreaterThanOrEqual(acknowledged.size);
        expect(acknowledged.size).toBeGreaterThan(2 + ROUNDS / 2);
      } finally {
        await last.stop();
      }
      await waitFor(() => inspect().integrity === 'ok', 5_000, 'a clean database after a graceful stop');
    },
    180_000,
  );
});
