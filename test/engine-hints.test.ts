// `mcp serve` re-executes itself once with hints to JavaScriptCore (src/engine-hints.ts).
import { expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENGINE_HINTS, engineHintPlan, type ProcessFacts } from '../src/engine-hints.ts';

const facts = (over: Partial<ProcessFacts> = {}): ProcessFacts => ({
  argv: ['/usr/bin/bun', '/home/u/mcp/src/main.ts', 'serve', '--port', '8080'],
  execArgv: [],
  execPath: '/usr/bin/bun',
  env: { HOME: '/home/u', PROXY_API_KEY: 'k' },
  platform: 'linux',
  ...over,
});

test('the hints: a 136 MiB heap sizing, slower heap growth from 0.82 of it, and no FTL tier', () => {
  expect(ENGINE_HINTS).toEqual({ BUN_JSC_forceRAMSize: '142606336', BUN_JSC_mediumHeapRAMFraction: '0.82', BUN_JSC_useFTLJIT: 'false' });
});

test('from source: the same script, bun flags and arguments, with the hints added to the environment', () => {
  const plan = engineHintPlan(facts({ execArgv: ['--smol'] }));
  expect(plan).toEqual({
    file: '/usr/bin/bun',
    args: ['/usr/bin/bun', '--smol', '/home/u/mcp/src/main.ts', 'serve', '--port', '8080'],
    env: { HOME: '/home/u', PROXY_API_KEY: 'k', ...ENGINE_HINTS },
  });
});

test('a compiled binary re-executes itself, not the virtual entry path Bun shows in argv[1]', () => {
  const plan = engineHintPlan(facts({ argv: ['bun', '/$bunfs/root/mcp', 'serve'], execPath: '/opt/mcp/mcp' }));
  expect(plan?.file).toBe('/opt/mcp/mcp');
  expect(plan?.args).toEqual(['/opt/mcp/mcp', 'serve']);
});

test('a hint the user set is kept, and the others are still added', () => {
  const plan = engineHintPlan(facts({ env: { BUN_JSC_useFTLJIT: 'true' } }));
  expect(plan?.env).toEqual({ BUN_JSC_useFTLJIT: 'true', BUN_JSC_forceRAMSize: '142606336', BUN_JSC_mediumHeapRAMFraction: '0.82' });
  expect(engineHintPlan(facts({ env: { BUN_JSC_forceRAMSize: '0' } }))?.env).toEqual({
    BUN_JSC_forceRAMSize: '0',
    BUN_JSC_mediumHeapRAMFraction: '0.82',
    BUN_JSC_useFTLJIT: 'false',
  });
});

test.each([
  ['another command', facts({ argv: ['/usr/bin/bun', 'main.ts', 'accounts', 'list'] })],
  ['no command', facts({ argv: ['/usr/bin/bun', 'main.ts'] })],
  [
    'every hint already set (by the user, or by the re-execution itself)',
    facts({ env: { BUN_JSC_forceRAMSize: '536870912', BUN_JSC_mediumHeapRAMFraction: '0.9', BUN_JSC_useFTLJIT: 'true' } }),
  ],
  ['every hint set to the engine default', facts({ env: { BUN_JSC_forceRAMSize: '0', BUN_JSC_mediumHeapRAMFraction: '0.9', BUN_JSC_useFTLJIT: 'true' } })],
  ['Windows (no execve)', facts({ platform: 'win32' })],
  ['a run under the CPU profiler (its signal would kill the re-executed process)', facts({ execArgv: ['--cpu-prof', '--cpu-prof-dir=/tmp/p'] })],
])('no re-execution for %s', (_name, f) => expect(engineHintPlan(f)).toBeNull());

test('a refused re-execution prints nothing, and later warnings are printed again', async () => {
  // In a child: a successful execve would replace the test runner. A file of no executable format
  // makes execve fail with ENOEXEC, as an aarch64 binary does under qemu-user.
  const dir = mkdtempSync(join(tmpdir(), 'mcp-exec-'));
  const file = join(dir, 'not-a-program');
  writeFileSync(file, 'plain text, no shebang\n', { mode: 0o755 });
  const script = [
    `import { execQuietly } from ${JSON.stringify(`${import.meta.dir}/../src/engine-hints.ts`)};`,
    `execQuietly({ file: ${JSON.stringify(file)}, args: ['x'], env: {} });`,
    `setTimeout(() => process.emitWarning('a later warning'), 20);`,
  ].join('\n');
  const p = Bun.spawn([process.execPath, '-e', script], { stdout: 'pipe', stderr: 'pipe' });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  expect(code).toBe(0);
  expect(out).toBe('');
  expect(err).not.toContain('execve');
  expect(err).toContain('a later warning');
  rmSync(dir, { recursive: true, force: true });
});
