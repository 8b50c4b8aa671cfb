// Soak: what months of `mcp serve` do to its memory, in minutes. The proxy runs in this process (so
// its structures can be counted, src/diagnostics.ts) in front of the fake Google in a child process
// (so the fake's own bookkeeping stays out of the numbers). Clients send, without pause:
//   - two-turn tool conversations (a tool call with thought signatures, then its result) under a
//     new session id each, with a tool name that must be sanitized (tool-naming cache), streaming or not;
//   - requests for made-up model names (404 upstream: client errors, metrics labels);
//   - conversations with a 1 KB session id.
// Access tokens live 5 s past the refresh margin (the fake's expires_in), so every account gets a new
// one every few seconds (per-token connection pools, the secrets registry); every 20 s the fake
// revokes them all (401s, rejected tokens). The quota poller runs every 5 s. Every SAMPLE_SEC the
// script collects garbage and prints RSS, heap and the tracked structure sizes.
//
//   bun run scripts/soak.ts [seconds=180] [clients=16] 2>/dev/null
// Not a CI test: it runs for minutes and prints numbers for a person to read.
import { heapStats } from 'bun:jsc';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ACCOUNTS = 6;

if (process.argv[2] === '--fake') {
  const { startFakeGoogle } = await import('../test/fakes/google.ts');
  const fake = startFakeGoogle({ record: false, expiresIn: 305 });
  const tokens = Array.from({ length: ACCOUNTS }, (_, i) => fake.refreshTokenFor(`soak${i}@example.com`));
  console.log(JSON.stringify({ endpoints: fake.endpoints, tokenUrl: fake.tokenUrl, authUrl: fake.authUrl, userinfoUrl: fake.userinfoUrl, tokens }));
  for await (const line of console) if (line.trim() === 'expire') fake.expireAccessTokens();
  process.exit(0);
}

const DURATION_SEC = Number(process.argv[2] ?? 180);
const CLIENTS = Number(process.argv[3] ?? 16);
const SAMPLE_SEC = 15;
const PROXY_KEY = 'FAKE-soak-proxy-key-0123456789';

const child = Bun.spawn(['bun', 'run', import.meta.path, '--fake'], { stdin: 'pipe', stdout: 'pipe', stderr: 'inherit' });
const reader = child.stdout.getReader();
let first = '';
while (!first.includes('\n')) {
  const { value, done } = await reader.read();
  if (done) throw new Error('the fake Google did not start');
  first += new TextDecoder().decode(value);
}
const fake = JSON.parse(first.split('\n')[0]!) as { endpoints: string[]; tokenUrl: string; authUrl: string; userinfoUrl: string; tokens: string[] };

const { loadConfig } = await import('../src/config.ts');
const { configureLog } = await import('../src/log.ts');
const { openDatabase } = await import('../src/store/db.ts');
const { upsertAccount } = await import('../src/store/accounts.ts');
const { assembleServer } = await import('../src/cli/serve.ts');
const { trackedSizes } = await import('../src/diagnostics.ts');

const dir = mkdtempSync(join(tmpdir(), 'mcp-soak-'));
const config = loadConfig({
  PROXY_API_KEY: PROXY_KEY,
  MCP_DATA_DIR: dir,
  PORT: '0',
  BIND_ADDRESS: '127.0.0.1',
  QUOTA_POLL_INTERVAL_SEC: '5',
  GOOGLE_OAUTH_TOKEN_URL: fake.tokenUrl,
  GOOGLE_OAUTH_AUTH_URL: fake.authUrl,
  GOOGLE_USERINFO_URL: fake.userinfoUrl,
  ANTIGRAVITY_ENDPOINTS: fake.endpoints.join(','),
});
configureLog({ debug: false });
const db = openDatabase(config.dbPath);
fake.tokens.forEach((refreshToken, i) =>
  upsertAccount(db, { provider: 'antigravity', label: `soak${i}`, email: `soak${i}@example.com`, credentials: { kind: 'oauth', refreshToken } }),
);
const { routing, recorder, app, startServer } = await assembleServer(db, config);
const server = startServer(config, app);
await routing.start();
const base = `http://127.0.0.1:${server.port}`;

const statuses: Record<string, number> = {};
let requests = 0;
const count = (s: number | string): void => {
  statuses[s] = (statuses[s] ?? 0) + 1;
  requests++;
};

const TOOLS = [
  { name: 'Bash', description: 'Run a shell command', input_schema: { type: 'object', properties: { command: { type: 'string' } }, required: ['command'] } },
  { name: 'mcp__soak.lookup', description: 'A tool whose name Google refuses as is', input_schema: { type: 'object', properties: { q: { type: 'string' } } } },
];
const MODELS = ['claude-opus-4-6-thinking', 'claude-sonnet-4-6', 'gemini-3-flash', 'gemini-3-pro-high'];

async function post(body: Record<string, unknown>, session: string): Promise<{ status: number; json: Record<string, unknown> | null }> {
  const res = await fetch(`${base}/v1/messages`, {
    method: 'POST',
    headers: { 'x-api-key': PROXY_KEY, 'content-type': 'application/json', 'x-claude-code-session-id': session },
    body: JSON.stringify(body),
  });
  if (body.stream) {
    await res.text();
    return { status: res.status, json: null };
  }
  const json = (await res.json().catch(() => null)) as Record<string, unknown> | null;
  if (res.status !== 200 && process.env.SOAK_DEBUG) console.log(res.status, JSON.stringify(json));
  return { status: res.status, json };
}

async function conversation(n: number): Promise<void> {
  const session = n % 10 === 0 ? `${crypto.randomUUID()}-${'x'.repeat(1024)}` : crypto.randomUUID();
  const model = MODELS[n % MODELS.length]!;
  const thinking = model.includes('thinking') || model.startsWith('gemini') ? { type: 'enabled', budget_tokens: 2048 } : undefined;
  const first = [{ role: 'user', content: `Please run: echo soak-${n}` }];
  const r1 = await post({ model, max_tokens: 4096, tools: TOOLS, messages: first, ...(thinking ? { thinking } : {}) }, session);
  count(r1.status);
  const content = (r1.json?.content ?? []) as Array<Record<string, unknown>>;
  const call = content.find((b) => b.type === 'tool_use');
  if (!call) return;
  const second = [...first, { role: 'assistant', content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: `soak-${n}` }] }];
  const r2 = await post({ model, max_tokens: 4096, tools: TOOLS, messages: second, stream: n % 2 === 0, ...(thinking ? { thinking } : {}) }, session);
  count(r2.status);
}

async function madeUpModel(n: number): Promise<void> {
  const r = await post({ model: `gemini-soak-${n}`, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }, crypto.randomUUID());
  count(r.status);
}

function mb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

function sample(label: string): void {
  Bun.gc(true);
  const h = heapStats();
  const types = h.objectTypeCounts as Record<string, number>;
  const sizes = Object.entries(trackedSizes())
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  console.log(
    `${label.padStart(6)} req=${requests} rss=${mb(process.memoryUsage().rss)}MB heap=${mb(h.heapSize)}MB objects=${h.objectCount} ` +
      `AbortSignal=${types.AbortSignal ?? 0} Promise=${types.Promise ?? 0} Map=${types.Map ?? 0} Set=${types.Set ?? 0} | ${sizes}`,
  );
}

sample('start');
const t0 = performance.now();
const end = t0 + DURATION_SEC * 1000;
let seq = 0;
const sampler = setInterval(() => sample(`${Math.round((performance.now() - t0) / 1000)}s`), SAMPLE_SEC * 1000);
const expirer = setInterval(() => child.stdin.write('expire\n'), 20_000);
await Promise.all(
  Array.from({ length: CLIENTS }, async () => {
    while (performance.now() < end) {
      const n = seq++;
      try {
        await (n % 5 === 4 ? madeUpModel(n) : conversation(n));
      } catch (err) {
        count(`client: ${(err as Error).message}`);
      }
    }
  }),
);
clearInterval(sampler);
clearInterval(expirer);
sample('end');
// Idle: what the structures hold once the traffic stops (TTLs are hours; this shows what is freed at once).
await Bun.sleep(5_000);
sample('idle');
console.log('statuses:', JSON.stringify(statuses));

await routing.stop();
recorder.stop();
server.stop(true);
db.close();
child.kill();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
