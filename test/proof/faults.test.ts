// Upstream faults through the real program: `mcp serve` as a child with two accounts in front of a
// fake upstream that injects one fault at a time. For each, what the client sees (protocol
// anthropic-claude-code-zai.md §1.6: a transparent failover, or a clean Anthropic error / `error`
// event Claude Code handles) and what the pool records (GET /account-limits, /health with the key).
// No fault may crash the server or leave a stream open (mcp_active_streams back to 0).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type FakeGoogle, type FakeGoogleMode, startFakeGoogle } from '../fakes/google.ts';
import { type FakeZai, type FakeZaiMode, startFakeZai } from '../fakes/zai.ts';
import { cleanupTempDirs, type Env, googleEnv, mcpEnv, runMcp, type ServeHandle, startServe, tempDir, waitFor, zaiEnv } from '../e2e/helpers.ts';

const PROXY_KEY = 'proxy-key-proof-faults-0123456789';
const HOUR = 3_600_000;
const AUTH = { 'x-api-key': PROXY_KEY, 'content-type': 'application/json' };

interface LimitView {
  model: string;
  kind: string;
  resetInSec: number;
}
interface AccountView {
  id: string;
  label: string;
  state: string;
  status: string;
  reason: string | null;
  limits: LimitView[];
}

interface Rig {
  server: ServeHandle;
  /** label -> account id */
  ids: Record<string, string>;
  accounts(): Promise<AccountView[]>;
  account(label: string): Promise<AccountView>;
}

/** A fresh data dir, the accounts added by the CLI, and `mcp serve` on it; stopped after fn. */
/** `settled`: true once the server's start-up quota round is over, so a fault set by the test cannot land in it. */
async function withRig(env: Env, add: string[][], fn: (rig: Rig) => Promise<void>, settled?: () => boolean): Promise<void> {
  for (const args of add) {
    const r = await runMcp(['accounts', 'add', ...args], { env });
    if (r.code !== 0) throw new Error(`accounts add failed: ${r.stdout}${r.stderr}`);
  }
  const server = await startServe({ env });
  if (settled) await waitFor(settled, 10_000, 'the start-up quota round');
  const accounts = async (): Promise<AccountView[]> => {
    const res = await fetch(`${server.url}/account-limits`, { headers: { 'x-api-key': PROXY_KEY } });
    return ((await res.json()) as { accounts: AccountView[] }).accounts;
  };
  const ids: Record<string, string> = {};
  for (const a of await accounts()) ids[a.label] = a.id;
  try {
    await fn({
      server,
      ids,
      accounts,
      async account(label) {
        return (await accounts()).find((a) => a.label === label)!;
      },
    });
    // Whatever happened, the server is up, healthy to ask, and holds no stream open.
    expect(server.proc.exitCode).toBeNull();
    const health = await fetch(`${server.url}/health`, { headers: { 'x-api-key': PROXY_KEY } });
    expect(health.status).toBe(200);
    expect(((await health.json()) as { accountDetails?: unknown[] }).accountDetails?.length).toBe(add.length);
    await waitFor(
      async () => !/^mcp_active_streams(\{\})? [1-9]/m.test(await (await fetch(`${server.url}/metrics`, { headers: { 'x-api-key': PROXY_KEY } })).text()),
      3000,
      'mcp_active_streams back to 0',
    );
    expect(server.output()).not.toMatch(/unexpected server error|Unhandled|\n\s+at .*\.ts:\d+/);
  } finally {
    await server.stop();
  }
}

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  /** SSE event names in order (streams only). */
  events: string[];
  /** Parsed `error` of an error envelope or error event. */
  error: { type: string; message: string } | null;
}

async function ask(url: string, model: string, stream: boolean): Promise<Reply> {
  const res = await fetch(`${url}/v1/messages`, {
    method: 'POST',
    headers: AUTH,
    body: JSON.stringify({ model, max_tokens: 64, stream, messages: [{ role: 'user', content: 'hi' }] }),
  });
  const text = await res.text();
  const events = [...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]!);
  let error: Reply['error'] = null;
  if (res.status !== 200) error = (JSON.parse(text) as { error: Reply['error'] }).error;
  else if (events.includes('error')) {
    const line = text.split('\n').find((l) => l.startsWith('data: ') && l.includes('"type":"error"'));
    error = (JSON.parse(line!.slice(6)) as { error: Reply['error'] }).error;
  }
  return { status: res.status, headers: res.headers, text, events, error };
}

/** A complete Anthropic stream: starts with message_start, ends with message_stop, no error. */
function expectCompleteStream(r: Reply): void {
  expect(r.status).toBe(200);
  expect(r.events[0]).toBe('message_start');
  expect(r.events.at(-1)).toBe('message_stop');
  expect(r.events).not.toContain('error');
}

/** A streamed request both fakes answer with a Bash call alone ("without a word": no text before it). */
async function askForCallAlone(url: string, model: string): Promise<Reply> {
  const res = await fetch(`${url}/v1/messages`, {
    method: 'POST',
    headers: AUTH,
    body: JSON.stringify({
      model,
      max_tokens: 256,
      stream: true,
      tools: [{ name: 'Bash', input_schema: { type: 'object', properties: { command: { type: 'string' } } } }],
      messages: [{ role: 'user', content: 'Without a word, run exactly this command: echo HELD' }],
    }),
  });
  const text = await res.text();
  const events = [...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]!);
  return { status: res.status, headers: res.headers, text, events, error: null };
}

/** One complete stream (a single message_start, no error) that carries the whole call. */
function expectWholeCall(r: Reply): void {
  expectCompleteStream(r);
  expect(r.events.filter((e) => e === 'message_start')).toHaveLength(1);
  expect(r.text).toContain('"type":"tool_use"');
  expect(r.text).toContain('echo HELD');
}

/** A stream that started and then ended with one clean `error` event (no message_stop after it). */
function expectErrorEvent(r: Reply, type: string): void {
  expect(r.status).toBe(200);
  expect(r.events[0]).toBe('message_start');
  expect(r.events.at(-1)).toBe('error');
  expect(r.events).not.toContain('message_stop');
  expect(r.error?.type).toBe(type);
  expect(r.error?.message.length).toBeGreaterThan(0);
}

// ---------------------------------------------------------------------------------------------
// Z.AI: two API keys.

const ZA = 'zai-key-faults-aaaa-0123456789';
const ZB = 'zai-key-faults-bbbb-0123456789';
let zai: FakeZai;
let zaiRigEnv: Env;

beforeAll(() => {
  zai = startFakeZai({ keys: [ZA, ZB] });
});

afterAll(async () => {
  await zai?.stop();
  cleanupTempDirs();
});

function zaiRig(fn: (rig: Rig) => Promise<void>): Promise<void> {
  zai.clearModes();
  zai.requests.length = 0;
  zaiRigEnv = mcpEnv(tempDir('mcp-proof-faults-'), {
    PROXY_API_KEY: PROXY_KEY,
    ...zaiEnv(zai),
    UPSTREAM_IDLE_TIMEOUT_SEC: '1',
    MAX_WAIT_SEC: '5',
    QUOTA_POLL_INTERVAL_SEC: '3600',
  });
  return withRig(
    zaiRigEnv,
    [
      ['--provider', 'zai', '--api-key', ZA, '--label', 'a'],
      ['--provider', 'zai', '--api-key', ZB, '--label', 'b'],
    ],
    fn,
  );
}

/** Which label the key of the n-th upstream Messages call belongs to. */
function labelOfCall(n: number): string {
  const key = zai.messages()[n]?.key;
  return key === ZA ? 'a' : key === ZB ? 'b' : '?';
}

interface FailoverCase {
  name: string;
  mode: FakeZaiMode;
  stream: boolean;
  /** What the pool records for the account that failed (null: nothing, it was a one-off). */
  limit: { kind: string; model: '*' | 'glm-4.6'; resetSec: [number, number] } | null;
  /**
   * The native client sends once more, on a fresh connection, when a reused one dies before any
   * byte (http1.ts): the fault then stays on account a for every call, and a may see two.
   */
  resent?: true;
}

const FAILOVER: FailoverCase[] = [
  { name: '429 1308 (5-hour quota, reset time in the text)', mode: { kind: 'error', code: '1308', resetAt: Date.now() + 2 * HOUR }, stream: false, limit: { kind: 'quota_exhausted', model: '*', resetSec: [7000, 7300] } },
  { name: '429 1310 (weekly quota, reset time in the text)', mode: { kind: 'error', code: '1310', resetAt: Date.now() + 72 * HOUR }, stream: true, limit: { kind: 'quota_exhausted', model: '*', resetSec: [72 * 3600 - 300, 72 * 3600 + 60] } },
  { name: '429 with retry-after: 30', mode: { kind: 'http429', retryAfter: 30 }, stream: false, limit: { kind: 'rate_limited', model: 'glm-4.6', resetSec: [25, 31] } },
  { name: '429 with no reset hint (default cool-down)', mode: { kind: 'http429' }, stream: true, limit: { kind: 'rate_limited', model: 'glm-4.6', resetSec: [30, 61] } },
  { name: '429 1302 (concurrency)', mode: { kind: 'error', code: '1302' }, stream: false, limit: { kind: 'rate_limited', model: '*', resetSec: [1, 61] } },
  { name: '529 1305 (capacity)', mode: { kind: 'error', code: '1305' }, stream: true, limit: { kind: 'capacity', model: 'glm-4.6', resetSec: [1, 61] } },
  { name: '500', mode: { kind: 'error', code: '500' }, stream: false, limit: null },
  { name: 'HTML 502 page', mode: { kind: 'html502' }, stream: true, limit: null },
  { name: 'connection reset before the first byte', mode: { kind: 'reset_before_first_byte' }, stream: true, limit: null, resent: true },
  { name: 'empty response', mode: { kind: 'empty_response' }, stream: true, limit: null },
  { name: 'stall before the first byte, longer than the upstream idle timeout', mode: { kind: 'stall_before_first_byte', ms: 4000 }, stream: true, limit: null },
  { name: 'malformed first data line', mode: { kind: 'malformed_data' }, stream: true, limit: null },
  { name: 'error event before any content (overloaded)', mode: { kind: 'sse_error' }, stream: true, limit: { kind: 'capacity', model: 'glm-4.6', resetSec: [1, 61] } },
];

describe('Z.AI: a fault on the first account is absorbed by failing over to the second', () => {
  for (const c of FAILOVER) {
    test(`${c.name}: the client gets a normal answer, the pool records ${c.limit ? c.limit.kind : 'nothing lasting'}`, async () => {
      await zaiRig(async (rig) => {
        zai.setMode(c.mode, c.resent ? { key: ZA } : { times: 1 });
        const r = await ask(rig.server.url, 'glm-4.6', c.stream);
        if (c.stream) expectCompleteStream(r);
        else {
          expect(r.status).toBe(200);
          expect(JSON.parse(r.text).type).toBe('message');
        }
        const calls = zai.messages().length;
        if (c.resent) expect([2, 3]).toContain(calls);
        else expect(calls).toBe(2);
        const failed = labelOfCall(0);
        const served = labelOfCall(calls - 1);
        if (c.resent) expect(failed).toBe('a');
        expect(served).not.toBe(failed);
        expect(r.headers.get('x-proxy-account')).toBe(rig.ids[served]!);
        const acc = await rig.account(failed);
        expect(acc.status).toBe('active');
        if (c.limit) {
          const l = acc.limits.find((x) => x.model === c.limit!.model);
          expect(l?.kind).toBe(c.limit.kind);
          expect(l!.resetInSec).toBeGreaterThanOrEqual(c.limit.resetSec[0]);
          expect(l!.resetInSec).toBeLessThanOrEqual(c.limit.resetSec[1]);
          expect(acc.state).toMatch(/limited/);
        } else {
          expect(acc.limits).toEqual([]);
          expect(acc.state).toBe('ok');
        }
        expect((await rig.account(served)).state).toBe('ok');
      });
    });
  }
});

describe('Z.AI: a fault after the stream started ends it with one clean error event', () => {
  const cases: Array<{ name: string; mode: FakeZaiMode; type: string }> = [
    { name: 'connection reset mid-stream', mode: { kind: 'reset_mid_stream', afterEvents: 4 }, type: 'api_error' },
    { name: 'stall mid-stream longer than the upstream idle timeout', mode: { kind: 'stall_mid_stream', ms: 4000, afterEvents: 4 }, type: 'api_error' },
    { name: 'malformed data line mid-stream', mode: { kind: 'malformed_data', afterEvents: 4 }, type: 'api_error' },
    { name: 'stream cut inside a content block (no final events)', mode: { kind: 'truncated' }, type: 'api_error' },
    { name: 'overloaded error event after content', mode: { kind: 'sse_error', afterEvents: 4 }, type: 'overloaded_error' },
  ];
  for (const c of cases) {
    test(`${c.name} -> ${c.type} event, no second upstream call, server fine`, async () => {
      await zaiRig(async (rig) => {
        zai.setMode(c.mode, { times: 1 });
        const t0 = performance.now();
        const r = await ask(rig.server.url, 'glm-4.6', true);
        expectErrorEvent(r, c.type);
        // The stall is cut by the idle timeout (1 s), not by the fake resuming (4 s).
        expect(performance.now() - t0).toBeLessThan(3500);
        expect(zai.messages().length).toBe(1);
        // The next request is served normally.
        expectCompleteStream(await ask(rig.server.url, 'glm-4.6', true));
      });
    });
  }

  for (const c of cases) {
    // Overloaded is the upstream's capacity: the account rests briefly, as before a first byte.
    const rests = c.type === 'overloaded_error';
    test(`${c.name}, client not streaming -> a normal answer from a second call${rests ? ', the first account rests briefly' : ', nothing recorded'}`, async () => {
      await zaiRig(async (rig) => {
        zai.setMode(c.mode, { times: 1 });
        const r = await ask(rig.server.url, 'glm-4.6', false);
        expect(r.status).toBe(200);
        expect(JSON.parse(r.text)).toMatchObject({ type: 'message', stop_reason: 'end_turn' });
        expect(zai.messages().length).toBe(2);
        const accs = await rig.accounts();
        expect(accs.every((a) => a.status === 'active')).toBe(true);
        const limits = accs.flatMap((a) => a.limits.map((l) => l.kind));
        expect(limits).toEqual(rests ? ['capacity'] : []);
      });
    });
  }

  test('a stream with no message_stop is completed by the proxy (Claude Code accepts it either way)', async () => {
    await zaiRig(async (rig) => {
      zai.setMode({ kind: 'no_message_stop' }, { times: 1 });
      expectCompleteStream(await ask(rig.server.url, 'glm-4.6', true));
      const accs = await rig.accounts();
      expect(accs.every((a) => a.state === 'ok')).toBe(true);
    });
  });
});

describe('Z.AI: a fault right after message_start, before any content, fails over', () => {
  // Claude Code treats an error after the first event as fatal, so the proxy holds message_start back
  // until something follows it: a failure in between is one the client never saw.
  for (const c of [
    { name: 'an overloaded error event right after message_start', mode: { kind: 'sse_error', afterEvents: 1, errorType: 'overloaded_error', code: '1305' } as FakeZaiMode },
    { name: 'a connection reset right after message_start', mode: { kind: 'reset_mid_stream', afterEvents: 1 } as FakeZaiMode },
  ]) {
    test(`${c.name}, streaming -> a complete stream from a second call`, async () => {
      await zaiRig(async (rig) => {
        zai.setMode(c.mode, { times: 1 });
        const r = await ask(rig.server.url, 'glm-4.6', true);
        expectCompleteStream(r);
        expect(r.events.filter((e) => e === 'message_start')).toHaveLength(1);
        expect(zai.messages().length).toBe(2);
      });
    });
  }
});

describe('Z.AI: a fault inside a tool call that opens the answer fails over', () => {
  // With thinking off (sub-agents, side requests) GLM often answers with the call alone. The call is
  // held back until whole, so a cut inside it is one the client never saw: another key answers.
  test('a connection reset inside the opening tool call, streaming -> one complete stream with the call, from a second call', async () => {
    await zaiRig(async (rig) => {
      // message_start, ping, the call's start, an empty delta, then the first piece of its input.
      zai.setMode({ kind: 'reset_mid_stream', afterEvents: 5 }, { times: 1 });
      expectWholeCall(await askForCallAlone(rig.server.url, 'glm-4.6'));
      expect(zai.messages().length).toBe(2);
    });
  });
});

describe('Z.AI: when every account fails, the client gets the right Anthropic error', () => {
  test('both keys out of 5-hour quota -> 429 rate_limit_error with retry-after and x-should-retry: false; both limited', async () => {
    await zaiRig(async (rig) => {
      zai.setMode({ kind: 'error', code: '1308', resetAt: Date.now() + 2 * HOUR });
      const r = await ask(rig.server.url, 'glm-4.6', true);
      expect(r.status).toBe(429);
      expect(r.error?.type).toBe('rate_limit_error');
      expect(r.error?.message).toMatch(/reset/i);
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(7000);
      expect(r.headers.get('x-should-retry')).toBe('false');
      expect(r.headers.get('request-id')).toMatch(/^req_/);
      for (const a of await rig.accounts()) expect(a.limits[0]?.kind).toBe('quota_exhausted');
      // A second request does not touch the upstream again: the pool knows.
      const before = zai.messages().length;
      expect((await ask(rig.server.url, 'glm-4.6', false)).status).toBe(429);
      expect(zai.messages().length).toBe(before);
    });
  });

  test('500 on both -> 502 api_error (retryable), nobody limited', async () => {
    await zaiRig(async (rig) => {
      zai.setMode({ kind: 'error', code: '500' });
      const r = await ask(rig.server.url, 'glm-4.6', false);
      expect(r.status).toBe(502);
      expect(r.error?.type).toBe('api_error');
      expect(r.headers.get('x-should-retry')).not.toBe('false');
      for (const a of await rig.accounts()) expect(a.state).toBe('ok');
    });
  });

  test('capacity on both -> 529 overloaded_error (Claude Code retries it)', async () => {
    await zaiRig(async (rig) => {
      zai.setMode({ kind: 'error', code: '1305' });
      const r = await ask(rig.server.url, 'glm-4.6', true);
      expect(r.status).toBe(529);
      expect(r.error?.type).toBe('overloaded_error');
      expect(r.headers.get('x-should-retry')).not.toBe('false');
    });
  });

  test('both keys revoked (1002) -> 503 api_error, x-should-retry: false, both marked invalid with the reason', async () => {
    await zaiRig(async (rig) => {
      zai.setMode({ kind: 'error', code: '1002' });
      const r = await ask(rig.server.url, 'glm-4.6', false);
      expect(r.status).toBe(503);
      expect(r.error?.type).toBe('api_error');
      expect(r.headers.get('x-should-retry')).toBe('false');
      for (const a of await rig.accounts()) {
        expect(a.status).toBe('invalid');
        expect(a.reason).toContain('1002');
        expect(a.reason).not.toContain(ZA);
        expect(a.reason).not.toContain(ZB);
      }
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Antigravity: two Google accounts (two endpoints each, daily and prod, as the real backend).

const EA = 'alice.faults@example.com';
const EB = 'bob.faults@example.com';
const CLAUDE = 'claude-sonnet-4-6';
let google: FakeGoogle;

beforeAll(() => {
  google = startFakeGoogle({ record: true });
});

afterAll(async () => {
  await google?.stop();
});

function googleRig(fn: (rig: Rig) => Promise<void>): Promise<void> {
  google.clearModes();
  google.requests.length = 0;
  const env = mcpEnv(tempDir('mcp-proof-gfaults-'), {
    PROXY_API_KEY: PROXY_KEY,
    ...googleEnv(google),
    UPSTREAM_IDLE_TIMEOUT_SEC: '1',
    MAX_WAIT_SEC: '5',
    QUOTA_POLL_INTERVAL_SEC: '3600',
  });
  return withRig(
    env,
    [
      ['--provider', 'antigravity', '--refresh-token', google.refreshTokenFor(EA), '--label', 'a'],
      ['--provider', 'antigravity', '--refresh-token', google.refreshTokenFor(EB), '--label', 'b'],
    ],
    fn,
    // Its last call per account, once at `accounts add` and once at start. A token fault set while it
    // still ran was spent on the poll (an account marked invalid by it, then served by the request).
    () => [EA, EB].every((e) => google.requests.filter((q) => q.email === e && q.rpc === 'retrieveUserQuotaSummary').length >= 2),
  );
}

/** Emails of the generation calls, in order. */
function generationEmails(): Array<string | null> {
  return google.generations().map((r) => r.email);
}

interface GoogleFailover {
  name: string;
  mode: FakeGoogleMode;
  stream: boolean;
  limit: { kind: string; resetSec: [number, number] } | null;
}

const Q = 3 * HOUR;
const GOOGLE_FAILOVER: GoogleFailover[] = [
  { name: '429 QUOTA_EXHAUSTED with every reset hint', mode: { kind: 'quota_exhausted', hint: 'full', resetMs: Q }, stream: false, limit: { kind: 'quota_exhausted', resetSec: [10_700, 10_800] } },
  { name: '429 QUOTA_EXHAUSTED with RetryInfo only', mode: { kind: 'quota_exhausted', hint: 'retry_info', resetMs: Q }, stream: true, limit: { kind: 'quota_exhausted', resetSec: [10_700, 10_800] } },
  { name: '429 QUOTA_EXHAUSTED with quotaResetDelay only', mode: { kind: 'quota_exhausted', hint: 'quota_reset_delay', resetMs: Q }, stream: false, limit: { kind: 'quota_exhausted', resetSec: [10_700, 10_800] } },
  { name: '429 QUOTA_EXHAUSTED with quotaResetTimeStamp only', mode: { kind: 'quota_exhausted', hint: 'quota_reset_timestamp', resetMs: Q }, stream: true, limit: { kind: 'quota_exhausted', resetSec: [10_700, 10_801] } },
  { name: '429 QUOTA_EXHAUSTED with the delay only in the message', mode: { kind: 'quota_exhausted', hint: 'message', resetMs: Q }, stream: false, limit: { kind: 'quota_exhausted', resetSec: [10_700, 10_801] } },
  { name: '429 RESOURCE_EXHAUSTED with no hint at all (short cool-down, not hours)', mode: { kind: 'quota_exhausted', hint: 'none' }, stream: true, limit: { kind: 'rate_limited', resetSec: [1, 61] } },
  { name: '429 RATE_LIMIT_EXCEEDED (short delay)', mode: { kind: 'rate_limited' }, stream: false, limit: { kind: 'rate_limited', resetSec: [0, 5] } },
  { name: '503 MODEL_CAPACITY_EXHAUSTED', mode: { kind: 'capacity' }, stream: true, limit: { kind: 'capacity', resetSec: [1, 61] } },
  { name: '500 on both endpoints', mode: { kind: 'http500' }, stream: false, limit: null },
  { name: 'HTML 502 on both endpoints', mode: { kind: 'html502' }, stream: true, limit: null },
  { name: 'connection reset before the first byte', mode: { kind: 'reset_before_first_byte' }, stream: true, limit: null },
  { name: 'stall before the first byte, longer than the upstream idle timeout', mode: { kind: 'stall_before_first_byte', ms: 4000 }, stream: true, limit: null },
  { name: 'empty response (retried, then another account)', mode: { kind: 'empty_response' }, stream: true, limit: null },
  // A client that is not streaming has seen nothing yet when the stream breaks: that is before its first byte too.
  { name: 'connection reset mid-stream, client not streaming', mode: { kind: 'reset_mid_stream' }, stream: false, limit: null },
  { name: 'stall mid-stream longer than the upstream idle timeout, client not streaming', mode: { kind: 'stall_mid_stream', ms: 4000 }, stream: false, limit: null },
];

describe('Antigravity: a fault on the first account is absorbed by failing over to the second', () => {
  for (const c of GOOGLE_FAILOVER) {
    test(`${c.name}: the client gets a normal answer, the pool records ${c.limit ? c.limit.kind : 'nothing lasting'}`, async () => {
      await googleRig(async (rig) => {
        google.setMode(c.mode, { email: EA });
        const r = await ask(rig.server.url, CLAUDE, c.stream);
        if (c.stream) expectCompleteStream(r);
        else {
          expect(r.status).toBe(200);
          expect(JSON.parse(r.text).type).toBe('message');
        }
        const emails = generationEmails();
        expect(emails[0]).toBe(EA);
        expect(emails.at(-1)).toBe(EB);
        expect(r.headers.get('x-proxy-account')).toBe(rig.ids.b!);
        const a = await rig.account('a');
        expect(a.status).toBe('active');
        if (c.limit) {
          const l = a.limits.find((x) => x.model === CLAUDE || x.model === '*');
          expect(l?.kind).toBe(c.limit.kind);
          expect(l!.resetInSec).toBeGreaterThanOrEqual(c.limit.resetSec[0]);
          expect(l!.resetInSec).toBeLessThanOrEqual(c.limit.resetSec[1]);
        } else expect(a.limits).toEqual([]);
        expect((await rig.account('b')).state).toBe('ok');
      });
    });
  }
});

describe('Antigravity: faults inside a started stream', () => {
  test('connection reset mid-stream -> one api_error event, no second call', async () => {
    await googleRig(async (rig) => {
      google.setMode({ kind: 'reset_mid_stream' }, { times: 1 });
      expectErrorEvent(await ask(rig.server.url, CLAUDE, true), 'api_error');
      expect(google.generations().length).toBe(1);
      expectCompleteStream(await ask(rig.server.url, CLAUDE, true));
    });
  });

  test('stall mid-stream longer than the upstream idle timeout -> api_error event after ~1 s, not 4 s', async () => {
    await googleRig(async (rig) => {
      google.setMode({ kind: 'stall_mid_stream', ms: 4000 }, { times: 1 });
      const t0 = performance.now();
      expectErrorEvent(await ask(rig.server.url, CLAUDE, true), 'api_error');
      expect(performance.now() - t0).toBeLessThan(3500);
    });
  });

  test('a malformed data line is skipped and the stream completes', async () => {
    await googleRig(async (rig) => {
      google.setMode({ kind: 'malformed_data' }, { times: 1 });
      const r = await ask(rig.server.url, CLAUDE, true);
      expectCompleteStream(r);
      expect(r.text).toContain('text_delta');
    });
  });

  test('a stream cut short with no finish chunk -> one api_error event, not a quiet end_turn', async () => {
    await googleRig(async (rig) => {
      google.setMode({ kind: 'no_finish' }, { times: 1 });
      const r = await ask(rig.server.url, CLAUDE, true);
      expectErrorEvent(r, 'api_error');
      expect(r.events).not.toContain('message_delta');
      expect(google.generations().length).toBe(1);
    });
  });
});

describe('Antigravity: a fault right after a tool call that opens the answer fails over', () => {
  // Without thinking, Claude often answers with the call alone. The call is held until the answer
  // says more (its finish), so a cut right after it is one the client never saw: another account answers.
  for (const mode of [{ kind: 'reset_mid_stream', afterChunks: 2 }, { kind: 'no_finish' }] as FakeGoogleMode[]) {
    test(`${mode.kind} after the opening call, streaming -> one complete stream with the call, from the second account`, async () => {
      await googleRig(async (rig) => {
        google.setMode(mode, { email: EA });
        expectWholeCall(await askForCallAlone(rig.server.url, CLAUDE));
        expect(generationEmails()).toEqual([EA, EB]);
      });
    });
  }
});

describe('Antigravity: the token endpoint', () => {
  test('down (connection dropped) while one account refreshes: the other serves, nobody is marked invalid', async () => {
    await googleRig(async (rig) => {
      google.expireAccessTokens();
      google.setMode({ kind: 'token_down' }, { times: 1 });
      expectCompleteStream(await ask(rig.server.url, CLAUDE, true));
      for (const a of await rig.accounts()) expect(a.status).toBe('active');
    });
  });

  test('invalid_grant for one account: it is marked invalid with the reason, the other serves', async () => {
    await googleRig(async (rig) => {
      google.expireAccessTokens();
      google.setMode({ kind: 'token_invalid_grant' }, { times: 1 });
      const r = await ask(rig.server.url, CLAUDE, false);
      expect(r.status).toBe(200);
      const accs = await rig.accounts();
      const invalid = accs.filter((a) => a.status === 'invalid');
      expect(invalid.length).toBe(1);
      expect(invalid[0]!.reason).toContain('invalid_grant');
      expect(r.headers.get('x-proxy-account')).not.toBe(invalid[0]!.id);
      for (const e of [EA, EB]) expect(invalid[0]!.reason).not.toContain(google.refreshTokenFor(e));
    });
  });

  test('down for every account -> 502 api_error (retryable), accounts stay active', async () => {
    await googleRig(async (rig) => {
      google.expireAccessTokens();
      google.setMode({ kind: 'token_down' });
      const r = await ask(rig.server.url, CLAUDE, true);
      expect(r.status).toBe(502);
      expect(r.error?.type).toBe('api_error');
      expect(r.headers.get('x-should-retry')).not.toBe('false');
      for (const a of await rig.accounts()) expect(a.status).toBe('active');
    });
  });

  test('invalid_grant for every account -> 503 api_error, x-should-retry: false, both invalid', async () => {
    await googleRig(async (rig) => {
      google.expireAccessTokens();
      google.setMode({ kind: 'token_invalid_grant' });
      const r = await ask(rig.server.url, CLAUDE, false);
      expect(r.status).toBe(503);
      expect(r.error?.type).toBe('api_error');
      expect(r.headers.get('x-should-retry')).toBe('false');
      for (const a of await rig.accounts()) expect(a.status).toBe('invalid');
      const health = (await (await fetch(`${rig.server.url}/health`)).json()) as { status: string };
      expect(health.status).toBe('unavailable');
    });
  });
});
