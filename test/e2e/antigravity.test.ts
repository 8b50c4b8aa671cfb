// Antigravity end to end: Google accounts added by the real CLI (`--refresh-token`, `--no-browser`
// with the redirect or the bare code pasted on stdin, the browser flow's local callback) against
// the fake Google, then `mcp serve` in front of it, driven by the official Anthropic SDK on a
// Gemini model and on a Claude thinking model.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { listAccounts } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';
import { type FakeGoogle, startFakeGoogle } from '../fakes/google.ts';
import { CHILD_PROCESS_HOOK_MS, cleanupTempDirs, type Env, googleEnv, mcpEnv, runMcp, type ServeHandle, spawnMcp, startServe, tempDir } from './helpers.ts';
import { escapedJson } from '../fixtures/escaped-json.ts';

const PROXY_KEY = 'proxy-key-e2e-antigravity-0123456789';
const TOKEN_EMAIL = 'token-user@example.com';
const BROWSER_EMAIL = 'pasted-user@example.com';
const CALLBACK_EMAIL = 'callback-user@example.com';
let google: FakeGoogle;
let dataDir: string;
let env: Env;
let server: ServeHandle | undefined;

interface ListedAccount {
  id: string;
  label: string;
  provider: string;
  email: string | null;
  status: string;
}

function storedAccounts() {
  const db = openDatabase(join(dataDir, 'proxy.db'), { readonly: true });
  try {
    return listAccounts(db);
  } finally {
    db.close();
  }
}

beforeAll(() => {
  google = startFakeGoogle({ loginEmail: BROWSER_EMAIL, strictSignatures: true });
  google.setAccount(TOKEN_EMAIL, { projectId: 'fake-project-token' });
  google.setAccount(BROWSER_EMAIL, { projectId: 'fake-project-pasted' });
  dataDir = tempDir();
  env = mcpEnv(dataDir, { PROXY_API_KEY: PROXY_KEY, ...googleEnv(google) });
});

afterAll(async () => {
  await server?.stop();
  await google?.stop();
  cleanupTempDirs();
}, CHILD_PROCESS_HOOK_MS);

describe('mcp accounts add --provider antigravity', () => {
  test('--refresh-token stores the account with its e-mail and project; adding it again updates it', async () => {
    const refreshToken = google.refreshTokenFor(TOKEN_EMAIL);
    const first = await runMcp(['accounts', 'add', '--provider', 'antigravity', '--refresh-token', refreshToken], { env });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`added \\S+ .*antigravity ${TOKEN_EMAIL}`));
    expect(`${first.stdout}${first.stderr}`).not.toContain(refreshToken);

    let stored = storedAccounts().filter((a) => a.email === TOKEN_EMAIL);
    expect(stored).toHaveLength(1);
    expect(stored[0]!.provider).toBe('antigravity');
    expect(stored[0]!.meta.projectId).toBe('fake-project-token');
    expect(stored[0]!.credentials).toMatchObject({ kind: 'oauth', refreshToken });
    const id = stored[0]!.id;

    const again = await runMcp(['accounts', 'add', '--provider', 'antigravity', '--refresh-token', refreshToken], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`updated ${id}`);
    stored = storedAccounts().filter((a) => a.email === TOKEN_EMAIL);
    expect(stored.map((a) => a.id)).toEqual([id]);
  });

  test('--refresh-token - reads the token from stdin, keeping it off the command line', async () => {
    const refreshToken = google.refreshTokenFor(TOKEN_EMAIL);
    const r = await runMcp(['accounts', 'add', '--provider', 'antigravity', '--refresh-token', '-'], { env, stdin: `${refreshToken}\n` });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`updated \\S+ .*antigravity ${TOKEN_EMAIL}`));
    expect(`${r.stdout}${r.stderr}`).not.toContain(refreshToken);
  });

  test('--no-browser prints the consent URL, takes the pasted redirect URL and stores the account', async () => {
    const add = spawnMcp(['accounts', 'add', '--provider', 'antigravity', '--no-browser'], { env });
    const m = await add.waitForOutput(/(http:\/\/127\.0\.0\.1:\d+\/o\/oauth2\/v2\/auth\?\S+)/);
    const authUrl = new URL(m[1]!);
    expect(authUrl.searchParams.get('code_challenge_method')).toBe('S256');
    // The user's browser: the fake consent page redirects to redirect_uri with code and state.
    const consent = await fetch(authUrl, { redirect: 'manual' });
    expect(consent.status).toBe(302);
    const redirected = consent.headers.get('location')!;
    expect(new URL(redirected).searchParams.get('state')).toBe(authUrl.searchParams.get('state'));
    add.write(`${redirected}\n`);
    const code = await add.finish();
    expect(code, `${add.stdout()}${add.stderr()}`).toBe(0);
    expect(add.stdout()).toMatch(new RegExp(`added \\S+ .*antigravity ${BROWSER_EMAIL}`));
    expect(google.stats.codeExchanges).toBe(1);

    const stored = storedAccounts().filter((a) => a.email === BROWSER_EMAIL);
    expect(stored).toHaveLength(1);
    expect(stored[0]!.meta.projectId).toBe('fake-project-pasted');
  });

  test('--no-browser also takes the bare code; the same e-mail again updates its account', async () => {
    google.setLoginEmail(TOKEN_EMAIL);
    const id = storedAccounts().find((a) => a.email === TOKEN_EMAIL)!.id;
    const add = spawnMcp(['accounts', 'add', '--provider', 'antigravity', '--no-browser'], { env });
    const m = await add.waitForOutput(/(http:\/\/127\.0\.0\.1:\d+\/o\/oauth2\/v2\/auth\?\S+)/);
    const consent = await fetch(m[1]!, { redirect: 'manual' });
    const code = new URL(consent.headers.get('location')!).searchParams.get('code')!;
    add.write(`${code}\n`);
    expect(await add.finish(), `${add.stdout()}${add.stderr()}`).toBe(0);
    expect(add.stdout()).toContain(`updated ${id}`);
    expect(storedAccounts().filter((a) => a.email === TOKEN_EMAIL).map((a) => a.id)).toEqual([id]);
    google.setLoginEmail(BROWSER_EMAIL);
  });

  test('the browser flow: the consent redirect reaches the local callback and the account lands', async () => {
    google.setLoginEmail(CALLBACK_EMAIL);
    const add = spawnMcp(['accounts', 'add', '--provider', 'antigravity', '--callback-port', '0'], { env });
    try {
      const m = await add.waitForOutput(/(http:\/\/127\.0\.0\.1:\d+\/o\/oauth2\/v2\/auth\?\S+)/);
      // The browser follows the fake's redirect to the callback server mcp is running.
      const page = await fetch(m[1]!);
      expect(page.status, await page.clone().text()).toBe(200);
      expect(await page.text()).toContain('Signed in');
      expect(await add.finish(), `${add.stdout()}${add.stderr()}`).toBe(0);
      expect(add.stdout()).toMatch(new RegExp(`added \\S+ .*antigravity ${CALLBACK_EMAIL}`));
    } finally {
      add.proc.kill();
      google.setLoginEmail(BROWSER_EMAIL);
    }
  });

  test('the browser flow with the browser on another machine: the address it landed on, pasted on stdin, logs in', async () => {
    google.setLoginEmail(CALLBACK_EMAIL);
    const add = spawnMcp(['accounts', 'add', '--provider', 'antigravity', '--callback-port', '0'], { env });
    try {
      const m = await add.waitForOutput(/(http:\/\/127\.0\.0\.1:\d+\/o\/oauth2\/v2\/auth\?\S+)/);
      await add.waitForOutput(/paste that whole address here/);
      // The remote browser lands on its own localhost, which is not where mcp listens.
      const consent = await fetch(m[1]!, { redirect: 'manual' });
      add.write(`${consent.headers.get('location')!}\n`);
      expect(await add.finish(), `${add.stdout()}${add.stderr()}`).toBe(0);
      expect(add.stdout()).toMatch(new RegExp(`updated \\S+ .*antigravity ${CALLBACK_EMAIL}`));
    } finally {
      add.proc.kill();
      google.setLoginEmail(BROWSER_EMAIL);
    }
  });

  test('accounts list --json and accounts verify show every added account', async () => {
    const list = await runMcp(['accounts', 'list', '--json'], { env });
    expect(list.code, list.stderr).toBe(0);
    const views = JSON.parse(list.stdout) as ListedAccount[];
    expect(views.map((v) => [v.provider, v.email, v.status]).sort()).toEqual([
      ['antigravity', CALLBACK_EMAIL, 'active'],
      ['antigravity', BROWSER_EMAIL, 'active'],
      ['antigravity', TOKEN_EMAIL, 'active'],
    ]);
    const verify = await runMcp(['accounts', 'verify'], { env });
    expect(verify.code, `${verify.stdout}${verify.stderr}`).toBe(0);
    for (const v of views) expect(verify.stdout).toMatch(new RegExp(`ok\\s+${v.id}\\s`));
  });
});

describe('mcp serve with the added Google accounts, through the official SDK', () => {
  let client: Anthropic;
  let accountIds: Set<string>;

  beforeAll(async () => {
    server = await startServe({ env });
    client = new Anthropic({ baseURL: server.url, apiKey: PROXY_KEY, maxRetries: 0 });
    accountIds = new Set(storedAccounts().map((a) => a.id));
  }, CHILD_PROCESS_HOOK_MS);

  const cases = [
    { name: 'a Gemini model', model: 'gemini-3-flash', upstream: 'gemini-3-flash', thinking: undefined },
    { name: 'a Claude thinking model (opus)', model: 'opus', upstream: 'claude-opus-4-6-thinking', thinking: { type: 'enabled' as const, budget_tokens: 2048 } },
  ];

  for (const c of cases) {
    test(`non-streaming on ${c.name}: a whole message with the proxy headers`, async () => {
      const { data, response } = await client.messages
        .create({
          model: c.model,
          max_tokens: 4096,
          ...(c.thinking ? { thinking: c.thinking } : {}),
          messages: [{ role: 'user', content: 'Say hello.' }],
        })
        .withResponse();
      expect(data.type).toBe('message');
      expect(data.stop_reason).toBe('end_turn');
      const text = data.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
      expect(text).toContain('Hello from the fake Antigravity.');
      if (c.thinking) {
        const thinking = data.content.find((b) => b.type === 'thinking');
        expect(thinking?.type === 'thinking' && thinking.signature.length > 0).toBe(true);
      }
      expect(accountIds.has(response.headers.get('x-proxy-account') ?? '')).toBe(true);
      expect(response.headers.get('x-proxy-upstream-model')).toBe(c.upstream);
      expect((google.generations().at(-1)!.body as { model?: string }).model).toBe(c.upstream);
    });

    test(`streaming on ${c.name}: the SDK accumulator builds the final message, with the proxy headers`, async () => {
      const stream = client.messages.stream({
        model: c.model,
        max_tokens: 4096,
        ...(c.thinking ? { thinking: c.thinking } : {}),
        messages: [{ role: 'user', content: 'Say hello.' }],
      });
      const { response } = await stream.withResponse();
      const message = await stream.finalMessage();
      expect(response.headers.get('content-type')).toContain('text/event-stream');
      expect(message.stop_reason).toBe('end_turn');
      const text = message.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
      expect(text).toContain('Hello from the fake Antigravity.');
      if (c.thinking) {
        const thinking = message.content.find((b) => b.type === 'thinking');
        expect(thinking?.type === 'thinking' && thinking.thinking.length > 0 && thinking.signature.length > 0).toBe(true);
      }
      expect(message.usage.output_tokens).toBeGreaterThan(0);
      expect(accountIds.has(response.headers.get('x-proxy-account') ?? '')).toBe(true);
      expect(response.headers.get('x-proxy-upstream-model')).toBe(c.upstream);
    });
  }

  test('Google turning the client version away: the client still gets the answer, and mcp goes on as the version the manifest names', async () => {
    google.setClientVersions({ min: '3.0.0', latest: '3.1.4' });
    try {
      const before = google.generations().length;
      const msg = await client.messages.create({ model: 'gemini-3-flash', max_tokens: 256, messages: [{ role: 'user', content: 'Say hello.' }] });
      const text = msg.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
      expect(text).toContain('Hello from the fake Antigravity.');
      const agents = google.generations().slice(before).map((r) => r.headers['user-agent']);
      expect(agents).toEqual(['antigravity/hub/2.9.1 darwin/arm64', 'antigravity/hub/3.1.4 darwin/arm64']);
      expect(storedAccounts().every((a) => a.status === 'active')).toBe(true);
    } finally {
      google.setClientVersions({ min: null });
    }
  });

  test("Anthropic's web search tool, non-streaming: the server collects the search blocks and the usage counts the search", async () => {
    const { data, response } = await client.messages
      .create({
        model: 'claude-sonnet-4-5',
        max_tokens: 1024,
        messages: [{ role: 'user', content: 'What is new in Bun 1.4?' }],
        tools: [{ type: 'web_search_20250305', name: 'web_search', max_uses: 3, blocked_domains: ['blocked.example.net'] }],
      })
      .withResponse();
    expect(response.headers.get('x-proxy-upstream-model')).toBe('gemini-3.1-flash-lite');
    expect(data.model).toBe('claude-sonnet-4-5');
    expect(data.content.map((b) => b.type)).toEqual(['server_tool_use', 'web_search_tool_result', 'text']);
    const hits = data.content[1]!.type === 'web_search_tool_result' && Array.isArray(data.content[1]!.content) ? data.content[1]!.content : [];
    expect(hits.map((h) => h.title)).toEqual(['example.com', 'docs.example.org']);
    expect(data.usage.server_tool_use?.web_search_requests).toBe(1);
    const sent = google.generations().at(-1)!.body as { model: string; requestType: string };
    expect([sent.model, sent.requestType]).toEqual(['gemini-3.1-flash-lite', 'web_search']);
  });

  test('text beyond ASCII reaches Google as the client wrote it, raw or \\u-escaped (as Python json.dumps sends it)', async () => {
    const text = 'Réponds — vite → 中文 🤖 voilà';
    const body = {
      model: 'gemini-3-flash',
      max_tokens: 100,
      system: `Système : ${text}`,
      tools: [{ name: 'Outil', description: `Décrit ${text}`, input_schema: { type: 'object', properties: { 'clé': { type: 'string', description: text } } } }],
      messages: [{ role: 'user', content: text }],
    };
    for (const json of [JSON.stringify(body), escapedJson(body)]) {
      const res = await fetch(`${server!.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': PROXY_KEY, 'content-type': 'application/json' }, body: json });
      expect(res.status).toBe(200);
      await res.text();
      const sent = google.generations().at(-1)!.body as Record<string, any>;
      expect(sent.request.contents[0].parts[0].text).toBe(text);
      expect(sent.request.systemInstruction.parts[0].text).toBe(`Système : ${text}`);
      const decl = sent.request.tools[0].functionDeclarations[0];
      expect([decl.description, decl.parameters.properties['clé'].description]).toEqual([`Décrit ${text}`, text]);
    }
  });

  test('a refused request names the non-ASCII value it quotes as the client wrote it', async () => {
    const res = await fetch(`${server!.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': PROXY_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gemini-3-flash', max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'hologramme—é', text: 'x' }] }] }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe('messages.0.content.0.type: unknown block type "hologramme—é"');
  });

  test("a web search for a non-ASCII query: Google gets the query, the client gets it back as text", async () => {
    const query = 'météo à Zürich — demain 🌦';
    const data = await client.messages.create({
      model: 'claude-sonnet-4-6',
      max_tokens: 1024,
      messages: [{ role: 'user', content: `Perform a web search for the query: ${query}` }],
      tools: [{ type: 'web_search_20250305', name: 'web_search' }],
    });
    const sent = google.generations().at(-1)!.body as Record<string, any>;
    expect(sent.request.contents[0].parts[0].text).toBe(`Perform a web search for the query: ${query}`);
    const use = data.content[0]!;
    expect(use.type === 'server_tool_use' ? use.input : null).toEqual({ query });
    expect(data.content.filter((b) => b.type === 'text').map((b) => b.text).join('')).toContain(`FAKE_SEARCH_RESULT for "${query}"`);
  });

  test('a rate-limited search model on one account: the search moves to another account, and the limit is kept for that model only', async () => {
    const search = { model: 'opus', max_tokens: 1024, messages: [{ role: 'user' as const, content: 'Perform a web search for the query: failover' }], tools: [{ type: 'web_search_20250305' as const, name: 'web_search' as const }] };
    // The first account the pool picks answers 429 on both Cloud Code endpoints (the provider tries the second).
    google.setMode({ kind: 'rate_limited', resetMs: 120_000 }, { model: 'gemini-3.1-flash-lite', times: 2 });
    const before = google.generations().length;
    try {
      const { data, response } = await client.messages.create(search).withResponse();
      expect(data.content.map((b) => b.type)).toEqual(['server_tool_use', 'web_search_tool_result', 'text']);
      const calls = google.generations().slice(before);
      expect(calls.map((g) => [g.endpoint, g.mode])).toEqual([['daily', 'rate_limited'], ['prod', 'rate_limited'], ['daily', 'ok']]);
      expect(calls[1]!.email).toBe(calls[0]!.email);
      expect(calls[2]!.email).not.toBe(calls[0]!.email);
      const served = storedAccounts().find((a) => a.id === response.headers.get('x-proxy-account'));
      expect(served?.email).toBe(calls[2]!.email!);
      const limits = (await (await fetch(`${server!.url}/account-limits`, { headers: { 'x-api-key': PROXY_KEY } })).json()) as { accounts: Array<{ email: string; limits: Array<{ model: string }> }> };
      const limited = limits.accounts.filter((a) => a.limits.length > 0);
      expect(limited.map((a) => [a.email, a.limits.map((l) => l.model)])).toEqual([[calls[0]!.email!, ['gemini-3.1-flash-lite']]]);
      // Chat on the same accounts is not affected.
      const chat = await client.messages.create({ model: 'opus', max_tokens: 100, messages: [{ role: 'user', content: 'Say hello.' }] });
      expect(chat.stop_reason).toBe('end_turn');
    } finally {
      google.clearModes();
    }
  });
});
