// Upstreams (and proxies before them) that quote the credentials they were sent, a base URL with a
// user and password, a custom OAuth client secret, debug logging: whatever the real program prints
// or answers (log, client errors, /health, /account-limits, /metrics, the dashboard, the CLI and its
// --json forms) holds no secret, nor any 16 characters of one, raw, URL-encoded or JSON-escaped.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { type FakeGoogle, startFakeGoogle } from '../fakes/google.ts';
import { type FakeZai, startFakeZai } from '../fakes/zai.ts';
import { FAKE_ZAI_KEY_ID } from '../fixtures/fake-zai-key.ts';
import { CHILD_PROCESS_HOOK_MS, cleanupTempDirs, type Env, googleEnv, mcpEnv, runMcp, startServe, tempDir } from './helpers.ts';

// Built from parts and marked FAKE: no literal here looks like a credential.
const ZAI_KEY = `${FAKE_ZAI_KEY_ID}.${['FAKE', 'echoed', 'zai', 'secret'].join('')}`;
const PROXY_KEY = ['FAKE', 'proxy', 'key', 'echo', 'sweep', '0123'].join('-');
const CLIENT_SECRET = ['FAKE', 'GOCSPX', 'client', 'secret', 'sweep'].join('-');
const URL_PASSWORD = ['FAKE', 'url', 'password', 'sweep', '0123'].join('-');
const EMAIL = 'echo@example.com';

let zai: FakeZai;
let google: FakeGoogle;
let env: Env;
const said: string[] = [];

beforeAll(async () => {
  zai = startFakeZai({ keys: [ZAI_KEY] });
  google = startFakeGoogle();
  const withPassword = (url: string) => url.replace('http://', `http://user:${URL_PASSWORD}@`);
  env = mcpEnv(tempDir('mcp-echo-'), {
    ...googleEnv(google),
    ZAI_BASE_URL: withPassword(zai.url),
    ZAI_QUOTA_URL: withPassword(zai.quotaUrl),
    GOOGLE_CLIENT_SECRET: CLIENT_SECRET,
    PROXY_API_KEY: PROXY_KEY,
    DEBUG: '1',
    MAX_WAIT_SEC: '1',
  });
  for (const [args, stdin] of [
    [['accounts', 'add', '--provider', 'zai', '--api-key', '-', '--label', 'z'], ZAI_KEY],
    [['accounts', 'add', '--provider', 'antigravity', '--refresh-token', '-'], google.refreshTokenFor(EMAIL)],
  ] as const) {
    const r = await runMcp(args, { env, stdin });
    said.push(r.stdout, r.stderr);
    if (r.code !== 0) throw new Error(`mcp ${args.join(' ')} exited with ${r.code}: ${r.stderr}`);
  }
}, CHILD_PROCESS_HOOK_MS);

afterAll(async () => {
  await zai?.stop();
  await google?.stop();
  cleanupTempDirs();
});

/** Every secret the run used, and every way it could be written. */
function secrets(): string[] {
  const out = new Set([ZAI_KEY, PROXY_KEY, CLIENT_SECRET, URL_PASSWORD, google.refreshTokenFor(EMAIL)]);
  for (const r of google.requests) if (r.token) out.add(r.token);
  return [...out].flatMap((s) => [s, encodeURIComponent(s), JSON.stringify(s).slice(1, -1)]);
}

function leaks(text: string): string[] {
  const found: string[] = [];
  for (const s of secrets()) {
    for (let i = 0; i + 16 <= s.length; i++) {
      const piece = s.slice(i, i + 16);
      if (text.includes(piece)) {
        const at = text.indexOf(piece);
        found.push(`${piece} in …${text.slice(Math.max(0, at - 120), at + 40)}…`);
        break;
      }
    }
  }
  return found;
}

test(
  'no secret reaches the log, a client, an ops endpoint or the CLI when upstreams quote the credentials they were sent',
  async () => {
    const server = await startServe({ env });
    const headers = { 'content-type': 'application/json', 'x-api-key': PROXY_KEY, 'anthropic-version': '2023-06-01' };
    const ask = async (model: string, stream = false) => {
      const r = await fetch(`${server.url}/v1/messages`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ model, max_tokens: 20, stream, messages: [{ role: 'user', content: 'hi' }] }),
      });
      said.push(await r.text());
    };
    const get = async (path: string) => said.push(await (await fetch(`${server.url}${path}`, { headers })).text());
    try {
      await ask('glm-4.6');
      await ask('gemini-3-flash', true);
      // Z.AI refusing the key in words that quote it: the key is marked invalid with those words.
      zai.setMode({ kind: 'echo_key' }, { times: 1 });
      await ask('glm-4.6');
      // Cloud Code quoting the access token, on a generation and on a quota reading.
      google.setMode({ kind: 'echo_token', status: 403 }, { times: 2 });
      await ask('gemini-3-flash');
      // The token endpoint quoting the form (refresh token, client secret) when the token is renewed.
      google.setMode({ kind: 'token_echo' });
      google.expireAccessTokens();
      await ask('claude-sonnet-4-6', true);
      said.push(await (await fetch(`${server.url}/refresh-token`, { method: 'POST', headers })).text());
      for (const path of ['/health', '/account-limits', '/account-limits?format=table', '/metrics', '/dashboard']) await get(path);
    } finally {
      google.clearModes();
      zai.clearModes();
      await server.stop();
      said.push(server.output());
    }
    for (const args of [['accounts', 'list'], ['accounts', 'list', '--json'], ['accounts', 'verify'], ['usage', '--json', '--by', 'model']]) {
      const r = await runMcp(args, { env });
      said.push(r.stdout, r.stderr);
    }
    const all = said.join('\n');
    // The run did meet what it is about: the invalid reasons quote the upstreams' words, masked.
    expect(all).toContain('Authentication failed');
    expect(all).toContain('Bad request: client_id=');
    expect(leaks(all)).toEqual([]);
  },
  CHILD_PROCESS_HOOK_MS,
);
