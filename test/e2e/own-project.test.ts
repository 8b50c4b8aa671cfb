// A Google account whose tier needs a Cloud project of the user's own (Workspace, paid Gemini Code
// Assist: standard-tier, protocol §3.1), end to end: added with `--project`, served by a running
// `mcp serve`, and moved to another project with `mcp accounts set --project` while it runs.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type FakeGoogle, startFakeGoogle } from '../fakes/google.ts';
import { CHILD_PROCESS_HOOK_MS, cleanupTempDirs, type Env, googleEnv, mcpEnv, runMcp, type ServeHandle, startServe, tempDir } from './helpers.ts';

const PROXY_KEY = 'proxy-key-e2e-own-project-0123456789';
const EMAIL = 'workspace-user@example.com';
let google: FakeGoogle;
let env: Env;
let server: ServeHandle | undefined;

beforeAll(() => {
  google = startFakeGoogle();
  google.setAccount(EMAIL, { projectId: null, paidTierId: null, userProject: 'acme-first-proj' });
  env = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ...googleEnv(google) });
});

afterAll(async () => {
  await server?.stop();
  await google?.stop();
  cleanupTempDirs();
}, CHILD_PROCESS_HOOK_MS);

async function ask(): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${server!.url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': PROXY_KEY, 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ model: 'gemini-3-flash', max_tokens: 256, messages: [{ role: 'user', content: 'Say hello.' }] }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const projectsSince = (n: number) => google.generations().slice(n).map((g) => (g.body as { project?: string }).project);

describe('an account with its own Google Cloud project, on a running server', () => {
  test('the project it is added with serves; a change with `accounts set --project` applies to the next request, no restart', async () => {
    const add = await runMcp(['accounts', 'add', '--provider', 'antigravity', '--refresh-token', google.refreshTokenFor(EMAIL), '--label', 'work', '--project', 'acme-first-proj'], { env });
    expect(add.code, add.stderr).toBe(0);
    server = await startServe({ env });

    const first = await ask();
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(projectsSince(0)).toEqual(['acme-first-proj']);

    // The user moves the account to another project (Google now serves it only there).
    google.setAccount(EMAIL, { userProject: 'acme-second-proj' });
    const set = await runMcp(['accounts', 'set', 'work', '--project', 'acme-second-proj'], { env });
    expect(set.code, set.stderr).toBe(0);
    await Bun.sleep(700); // the running server notices store changes within ~0.5 s
    const before = google.generations().length;
    const second = await ask();
    expect(second.status, JSON.stringify(second.body)).toBe(200);
    // Straight to the new project: not a 403 round on the project found under the old setting.
    expect(projectsSince(before)).toEqual(['acme-second-proj']);
  }, 60_000);

  test('cleared with `--project default`, the next request is a clear error naming the command, not a 500', async () => {
    const set = await runMcp(['accounts', 'set', 'work', '--project', 'default'], { env });
    expect(set.code, set.stderr).toBe(0);
    await Bun.sleep(700);
    const before = google.generations().length;
    const r = await ask();
    expect(r.status).toBe(503);
    expect(r.body.type).toBe('error');
    expect((r.body.error as { message: string }).message).toContain('mcp accounts set work --project');
    expect(google.generations().length).toBe(before);
  }, 60_000);
});
