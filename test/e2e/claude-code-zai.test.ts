// The real Claude Code CLI, headless, runs a tool-use loop through `mcp serve` against the fake Z.AI
// (protocol reference §1.10): the marker printed by the tool must come back through the proxy.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { type FakeZai, startFakeZai } from '../fakes/zai.ts';
import {
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
let zai: FakeZai;
let server: ServeHandle;
/** The same, with the key capped at one request at a time (any call Claude Code makes alongside must wait, not fail). */
let capped: ServeHandle;

async function serveWith(extra: Record<string, string>): Promise<ServeHandle> {
  const env = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ...zaiEnv(zai), ...extra });
  expect((await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', ZAI_KEY], { env })).code).toBe(0);
  return startServe({ env });
}

beforeAll(async () => {
  zai = startFakeZai({ keys: [ZAI_KEY] });
  server = await serveWith({});
  capped = await serveWith({ MAX_CONCURRENT_PER_ACCOUNT: '1' });
});

afterAll(async () => {
  await server?.stop();
  await capped?.stop();
  await zai?.stop();
  cleanupTempDirs();
});

test('Claude Code completes a Bash tool loop through the proxy on glm-4.6', () => toolLoop(server), 120_000);

test('the same loop with MAX_CONCURRENT_PER_ACCOUNT=1 on the only key completes, with no error status logged', () => toolLoop(capped), 120_000);

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
