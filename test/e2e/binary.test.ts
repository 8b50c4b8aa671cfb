// The shipped artefact: `bun run build` makes one executable that knows its version and commit and
// serves /health (issue 5: the host binary is smoke-tested in CI).
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pkg from '../../package.json' with { type: 'json' };
import { ENGINE_HINTS } from '../../src/engine-hints.ts';
import { cleanupTempDirs, mcpEnv, ROOT, runMcp, startServe, tempDir } from './helpers.ts';

let bin = '';

beforeAll(async () => {
  bin = join(tempDir('mcp-build-'), 'mcp');
  const build = Bun.spawn([process.execPath, 'run', 'scripts/build.ts', bin], {
    cwd: ROOT,
    env: { ...process.env, MCP_COMMIT: 'e2e1234' },
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [out, err, code] = await Promise.all([new Response(build.stdout).text(), new Response(build.stderr).text(), build.exited]);
  if (code !== 0) throw new Error(`build failed (${code}):\n${out}\n${err}`);
}, 120_000);

afterAll(() => cleanupTempDirs());

test('the built binary prints the version and the baked-in commit', async () => {
  const r = await runMcp(['--version'], { env: mcpEnv(tempDir()), bin: [bin] });
  expect(r.code).toBe(0);
  expect(r.stdout).toBe(`mcp ${pkg.version} (e2e1234)\n`);
});

/** The process's environment as the kernel sees it (Linux), so a re-execution shows. */
function environOf(pid: number): string[] | null {
  if (process.platform !== 'linux') return null;
  return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
}

test('the built binary serves /health and stops on SIGTERM', async () => {
  const server = await startServe({ env: mcpEnv(tempDir(), { PROXY_API_KEY: 'proxy-key-binary-0123' }), bin: [bin] });
  try {
    const res = await fetch(`${server.url}/health`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as Record<string, unknown>).status).toBeDefined();
    // It re-executed itself (same pid, the one we spawned) with the engine hints.
    const environ = environOf(server.proc.pid);
    if (environ) for (const [k, v] of Object.entries(ENGINE_HINTS)) expect(environ).toContain(`${k}=${v}`);
  } finally {
    expect(await server.stop()).toBe(0);
  }
});

test('a hint set in the environment is kept as it is (0 turns it off) and the other is still added', async () => {
  const server = await startServe({ env: mcpEnv(tempDir(), { PROXY_API_KEY: 'proxy-key-binary-0123', BUN_JSC_forceRAMSize: '0' }), bin: [bin] });
  try {
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    const environ = environOf(server.proc.pid);
    if (environ) {
      expect(environ.filter((e) => e.startsWith('BUN_JSC_forceRAMSize='))).toEqual(['BUN_JSC_forceRAMSize=0']);
      expect(environ).toContain(`BUN_JSC_useFTLJIT=${ENGINE_HINTS.BUN_JSC_useFTLJIT}`);
    }
  } finally {
    expect(await server.stop()).toBe(0);
  }
});
