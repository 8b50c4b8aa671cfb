// The real Claude Code CLI, headless, runs a tool-use loop through `mcp serve` against the fake Z.AI
// (protocol reference §1.10): the marker printed by the tool must come back through the proxy.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { type FakeZai, startFakeZai } from '../fakes/zai.ts';
import {
  CHILD_PROCESS_HOOK_MS,
  cleanupTempDirs,
  mcpEnv,
  randomMarker,
  runClaude,
  runMcp,
  type ServeHandle,
  startServe,
  tempDir,
  zaiEnv,
} from './helpers.ts';

const PROXY_KEY = 'proxy-key-e2e-claude-0123456789';
const ZAI_KEY = 'zai-test-key-claude-0123456789';
const ZAI_KEY_2 = 'zai-test-key-claude-second-987654';
let zai: FakeZai;
let server: ServeHandle;
/** Two keys, so a request can move to the other one. */
let pair: ServeHandle;
/** The same, with the key capped at one request at a time (any call Claude Code makes alongside must wait, not fail). */
let capped: ServeHandle;

async function serveWith(extra: Record<string, string>, keys = [ZAI_KEY]): Promise<ServeHandle> {
  const env = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ...zaiEnv(zai), ...extra });
  for (const key of keys) expect((await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', key], { env })).code).toBe(0);
  return startServe({ env });
}

beforeAll(async () => {
  zai = startFakeZai({ keys: [ZAI_KEY, ZAI_KEY_2] });
  server = await serveWith({});
  capped = await serveWith({ MAX_CONCURRENT_PER_ACCOUNT: '1' });
  pair = await serveWith({}, [ZAI_KEY, ZAI_KEY_2]);
}, CHILD_PROCESS_HOOK_MS);

afterAll(async () => {
  await server?.stop();
  await capped?.stop();
  await pair?.stop();
  await zai?.stop();
  cleanupTempDirs();
}, CHILD_PROCESS_HOOK_MS);

test('Claude Code completes a Bash tool loop through the proxy on glm-4.6', () => toolLoop(server), 120_000);

test('the same loop with MAX_CONCURRENT_PER_ACCOUNT=1 on the only key completes, with no error status logged', () => toolLoop(capped), 120_000);

// Z.AI sends message_start alone; the proxy holds it until something follows, so an error right
// after it moves to the other key instead of reaching Claude Code as an error event (which it
// would answer by sending the whole request again, §1.6).
test('an overloaded error right after Z.AI\'s message_start moves to the other key inside the proxy; Claude Code never sees it', async () => {
  zai.setMode({ kind: 'sse_error', afterEvents: 1, errorType: 'overloaded_error', code: '1305' }, { times: 1 });
  try {
    await toolLoop(pair);
    expect(zai.requests.filter((r) => r.mode === 'sse_error')).toHaveLength(1);
    expect(new Set(zai.messages().map((r) => r.key))).toEqual(new Set([ZAI_KEY, ZAI_KEY_2]));
    // Every request Claude Code made ended well; the one that met the fault says it failed over.
    expect(pair.output()).not.toContain('error=');
    expect(pair.output()).toMatch(/ 200 \d+ms stream .* failovers=1 \(/);
  } finally {
    zai.clearModes();
  }
}, 120_000);

async function toolLoop(server: ServeHandle): Promise<void> {
  zai.requests.length = 0;
  const marker = randomMarker();
  const run = await runClaude({
    baseUrl: server.url,
    apiKey: PROXY_KEY,
    prompt: `run exactly: echo ${marker}`,
    model: 'glm-4.6',
  });
  const diagnostics = `claude exit ${run.code}\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-2000)}\n${server.output().slice(-3000)}`;
  expect(run.events[0]?.type, diagnostics).toBe('system');
  const bash = run.toolUses.find((t) => t.name === 'Bash');
  expect(bash, diagnostics).toBeDefined();
  expect(String(bash!.input.command)).toContain(marker);
  const result = run.toolResults.find((r) => r.toolUseId === bash!.id);
  expect(result?.isError, diagnostics).toBe(false);
  expect(result?.text).toContain(marker);
  expect(run.result?.is_error, diagnostics).toBe(false);
  expect(Number(run.result?.num_turns)).toBeGreaterThanOrEqual(2);
  // The tool result really travelled back upstream through the proxy.
  const followUp = zai.messages();
  expect(JSON.stringify(followUp.map((r) => r.body))).toContain(marker);
  expect(server.output(), diagnostics).not.toMatch(/ 5\d\d \d+ms/);
}
