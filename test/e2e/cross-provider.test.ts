// One conversation served by both providers of a mixed pool, as a /model switch (or a fallback)
// makes it: Claude on Google thinks and calls a tool, GLM on Z.AI takes the same history and calls
// a tool of its own, then Claude on Google again. Every turn must succeed, and neither upstream may
// receive thinking the other one signed (anthropic-claude-code-zai.md §2.5, §3.7 item 4). The real
// server and providers run in process, against the fakes (Google checks signatures strictly).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type Config, loadConfig } from '../../src/config.ts';
import { listAccounts, updateAccount, upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';
import { type FakeGoogle, startFakeGoogle } from '../fakes/google.ts';
import { solidPng } from '../fakes/png.ts';
import { type FakeZai, startFakeZai } from '../fakes/zai.ts';
import { cleanupTempDirs, googleEnv, tempDir, zaiEnv } from './helpers.ts';
import { type InProcessServer, serveInProcess } from './in-process.ts';

const PROXY_KEY = ['proxy', 'key', 'FAKE', 'xprov', '0123456789'].join('-');
const ZAI_KEY = ['zai', 'FAKE', 'xprov', 'key', '000001'].join('-');
const EMAIL = 'xprov@example.com';
const CLAUDE = 'claude-opus-4-6-thinking';
const GEMINI = 'gemini-3-flash';
const GLM = 'glm-5.1';

let zai: FakeZai;
let google: FakeGoogle;
let server: InProcessServer;
let config: Config;

beforeAll(async () => {
  zai = startFakeZai({ keys: [ZAI_KEY] });
  google = startFakeGoogle({ strictSignatures: true });
  const dir = tempDir('mcp-xprov-');
  config = loadConfig({ PROXY_API_KEY: PROXY_KEY, MCP_DATA_DIR: dir, ...zaiEnv(zai), ...googleEnv(google) });
  const db = openDatabase(config.dbPath);
  upsertAccount(db, { provider: 'zai', label: 'z', credentials: { kind: 'api_key', apiKey: ZAI_KEY } }, Date.now());
  upsertAccount(db, { provider: 'antigravity', email: EMAIL, label: 'g', credentials: { kind: 'oauth', refreshToken: google.refreshTokenFor(EMAIL) } }, Date.now() + 1);
  db.close();
  server = await serveInProcess(config, openDatabase(config.dbPath));
});
afterAll(async () => {
  await server?.stop();
  await zai?.stop();
  await google?.stop();
  cleanupTempDirs();
});

type Block = { type: string; [k: string]: unknown };
type Msg = { role: 'user' | 'assistant'; content: string | Block[] };

const TOOLS = [{ name: 'Bash', description: 'Run a shell command', input_schema: { type: 'object', properties: { command: { type: 'string' } }, required: ['command'] } }];

async function turn(model: string, messages: Msg[]): Promise<{ status: number; upstream: string | null; content: Block[]; raw: string }> {
  const res = await fetch(`${server.url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': PROXY_KEY, 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({
      model,
      max_tokens: 8192,
      thinking: { type: 'enabled', budget_tokens: 4096 },
      tools: TOOLS,
      messages,
      metadata: { user_id: JSON.stringify({ device_id: 'dev', account_uuid: '', session_id: 'xprov-journey' }) },
    }),
  });
  const raw = await res.text();
  const body = JSON.parse(raw) as { content?: Block[] };
  return { status: res.status, upstream: res.headers.get('x-proxy-upstream-model'), content: body.content ?? [], raw };
}

function signaturesOf(content: Block[]): string[] {
  return content.filter((b) => b.type === 'thinking' && typeof b.signature === 'string' && b.signature).map((b) => b.signature as string);
}

function toolResultFor(content: Block[], output: string): Block[] {
  return content.filter((b) => b.type === 'tool_use').map((b) => ({ type: 'tool_result', tool_use_id: b.id, content: output }));
}

/** A restart empties every provider's memory of the signatures it issued. */
async function restart(): Promise<void> {
  await server.stop();
  server = await serveInProcess(config, openDatabase(config.dbPath));
}

describe('a conversation that moves Google -> Z.AI -> Google with thinking and tools', () => {
  test.each([
    ['Claude', CLAUDE, false],
    ['Gemini', GEMINI, false],
    ['Claude, the proxy restarting at each switch', CLAUDE, true],
    ['Gemini, the proxy restarting at each switch', GEMINI, true],
  ] as const)('%s: every turn is served, and no upstream receives the other provider’s signed thinking', async (_n, GOOGLE_MODEL, restarts) => {
    const history: Msg[] = [{ role: 'user', content: 'hello' }];
    const googleSigs: string[] = [];
    const zaiSigs: string[] = [];

    // 0. A plain answer: Gemini signs its thinking only when no call follows.
    const t0 = await turn(GOOGLE_MODEL, history);
    expect(t0.status, t0.raw).toBe(200);
    googleSigs.push(...signaturesOf(t0.content));
    history.push({ role: 'assistant', content: t0.content }, { role: 'user', content: 'Please run the command: echo one' });

    // 1. The model on Google thinks and calls Bash.
    const t1 = await turn(GOOGLE_MODEL, history);
    expect(t1.status, t1.raw).toBe(200);
    expect(t1.content.some((b) => b.type === 'tool_use')).toBe(true);
    googleSigs.push(...signaturesOf(t1.content));
    expect(googleSigs.length).toBeGreaterThan(0);
    history.push({ role: 'assistant', content: t1.content }, { role: 'user', content: toolResultFor(t1.content, 'one') });

    // 2. The user switches to GLM in the middle of the tool loop: Z.AI answers the result.
    if (restarts) await restart();
    const zaiFrom = zai.messages().length;
    const t2 = await turn(GLM, history);
    expect(t2.status, t2.raw).toBe(200);
    expect(t2.content.find((b) => b.type === 'text')?.text).toContain('FINAL_ANSWER: tool said one');
    zaiSigs.push(...signaturesOf(t2.content));
    history.push({ role: 'assistant', content: t2.content }, { role: 'user', content: 'Now run the command: echo two' });

    // 3. GLM calls a tool of its own; a restart before it leaves GLM its own thinking of turn 2.
    if (restarts) await restart();
    const t3From = zai.messages().length;
    const t3 = await turn(GLM, history);
    expect(t3.status, t3.raw).toBe(200);
    const t2Sigs = signaturesOf(t2.content);
    expect(t2Sigs.length).toBeGreaterThan(0);
    for (const s of t2Sigs) expect(JSON.stringify(zai.messages().slice(t3From).map((r) => r.body))).toContain(s);
    expect(t3.content.some((b) => b.type === 'tool_use')).toBe(true);
    zaiSigs.push(...signaturesOf(t3.content));
    expect(zaiSigs.length).toBeGreaterThan(0);
    history.push({ role: 'assistant', content: t3.content }, { role: 'user', content: toolResultFor(t3.content, 'two') });

    // 4. Back on Claude (Google) to answer GLM's tool call.
    if (restarts) await restart();
    const googleFrom = google.generations().length;
    const t4 = await turn(GOOGLE_MODEL, history);
    expect(t4.status, t4.raw).toBe(200);
    expect(t4.content.some((b) => b.type === 'text')).toBe(true);

    // What Z.AI received holds none of Google's signatures; what Google received, none of Z.AI's.
    const sentToZai = JSON.stringify(zai.messages().slice(zaiFrom).map((r) => r.body));
    for (const s of googleSigs) expect(sentToZai).not.toContain(s);
    const sentToGoogle = JSON.stringify(google.generations().slice(googleFrom).map((r) => r.body));
    for (const s of zaiSigs) expect(sentToGoogle).not.toContain(s);
    // GLM's call and its result reached Claude (its turn closed by the tool-loop recovery, §7.8).
    expect(sentToGoogle).toContain('echo two');
    // The model's own thinking from turn 0 still goes back to it: a restart keeps Claude's signature
    // by its shape, and Gemini's by its hash in the store.
    expect(sentToGoogle).toContain(googleSigs[0]!);
  });
});

describe("Claude Code's history shapes survive the moves between providers", () => {
  test('system messages, cache_control on a tool result and a picture in a tool result reach both upstreams in their form', async () => {
    const png = Buffer.from(solidPng(8, 8)).toString('base64');
    const history: Msg[] = [{ role: 'user', content: 'Please run the command: echo pic' }];
    const t1 = await turn(CLAUDE, history);
    expect(t1.status, t1.raw).toBe(200);
    const use = t1.content.find((b) => b.type === 'tool_use')!;
    history.push(
      { role: 'assistant', content: t1.content },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: use.id, content: [{ type: 'text', text: 'pic' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } }], cache_control: { type: 'ephemeral' } },
        ],
      },
    );
    (history as unknown[]).push({ role: 'system', content: 'REMINDER-FROM-SYSTEM' });
    const zaiFrom = zai.messages().length;
    const t2 = await turn(GLM, history);
    expect(t2.status, t2.raw).toBe(200);
    const toZai = zai.messages().slice(zaiFrom).at(-1)!.body as { messages: Array<{ role: string; content: unknown }> };
    expect(toZai.messages.every((m) => m.role !== 'system')).toBe(true);
    expect(JSON.stringify(toZai)).toContain('REMINDER-FROM-SYSTEM');
    expect(JSON.stringify(toZai)).toContain(png);
    history.push({ role: 'assistant', content: t2.content }, { role: 'user', content: 'thanks' });

    const googleFrom = google.generations().length;
    const t3 = await turn(CLAUDE, history);
    expect(t3.status, t3.raw).toBe(200);
    const toGoogle = JSON.stringify(google.generations().slice(googleFrom).map((r) => r.body));
    expect(toGoogle).not.toContain('cache_control');
    expect(toGoogle).toContain('REMINDER-FROM-SYSTEM');
    expect(toGoogle).toContain(png);
  });
});

describe('a conversation whose first provider was taken out of the pool', () => {
  test('Claude thinking from Google still never reaches Z.AI after every Google account is disabled', async () => {
    const history: Msg[] = [{ role: 'user', content: 'hello' }];
    const t1 = await turn(CLAUDE, history);
    expect(t1.status, t1.raw).toBe(200);
    const sigs = signaturesOf(t1.content);
    expect(sigs.length).toBeGreaterThan(0);
    history.push({ role: 'assistant', content: t1.content }, { role: 'user', content: 'and now?' });

    const db = openDatabase(config.dbPath);
    const google = listAccounts(db).find((a) => a.provider === 'antigravity')!;
    try {
      updateAccount(db, google.id, { status: 'disabled' });
      await Bun.sleep(60); // the pool looks at the store at most every 25 ms
      const zaiFrom = zai.messages().length;
      const t2 = await turn(GLM, history);
      expect(t2.status, t2.raw).toBe(200);
      const sentToZai = JSON.stringify(zai.messages().slice(zaiFrom).map((r) => r.body));
      for (const s of sigs) expect(sentToZai).not.toContain(s);
    } finally {
      updateAccount(db, google.id, { status: 'active' });
      db.close();
    }
  });
});

describe('a fallback to the other provider (FALLBACK_MAP)', () => {
  test('Claude exhausted on Google is served by GLM, which gets none of the Claude thinking of earlier turns', async () => {
    const dir = tempDir('mcp-xprov-fb-');
    const fbConfig = loadConfig({
      PROXY_API_KEY: PROXY_KEY,
      MCP_DATA_DIR: dir,
      ENABLE_FALLBACK: 'true',
      FALLBACK_MAP: JSON.stringify({ [CLAUDE]: GLM }),
      ...zaiEnv(zai),
      ...googleEnv(google),
    });
    const db = openDatabase(fbConfig.dbPath);
    upsertAccount(db, { provider: 'zai', label: 'z', credentials: { kind: 'api_key', apiKey: ZAI_KEY } }, Date.now());
    upsertAccount(db, { provider: 'antigravity', email: EMAIL, label: 'g', credentials: { kind: 'oauth', refreshToken: google.refreshTokenFor(EMAIL) } }, Date.now() + 1);
    const fb = await serveInProcess(fbConfig, db);
    const main = server;
    server = fb; // turn() talks to `server`
    try {
      const history: Msg[] = [{ role: 'user', content: 'hello' }];
      const t1 = await turn(CLAUDE, history);
      expect(t1.status, t1.raw).toBe(200);
      const sigs = signaturesOf(t1.content);
      expect(sigs.length).toBeGreaterThan(0);
      history.push({ role: 'assistant', content: t1.content }, { role: 'user', content: 'Please run the command: echo fb' });

      google.setMode({ kind: 'quota_exhausted' }, { model: CLAUDE });
      const zaiFrom = zai.messages().length;
      const t2 = await turn(CLAUDE, history);
      expect(t2.status, t2.raw).toBe(200);
      expect(t2.upstream).toBe(GLM);
      expect(t2.content.some((b) => b.type === 'tool_use')).toBe(true);
      const sentToZai = JSON.stringify(zai.messages().slice(zaiFrom).map((r) => r.body));
      expect(sentToZai).toContain('echo fb');
      for (const s of sigs) expect(sentToZai).not.toContain(s);
    } finally {
      google.clearModes();
      server = main;
      await fb.stop();
    }
  });
});
