// `mcp serve` re-executes itself once with hints to JavaScriptCore (src/engine-hints.ts).
import { expect, test } from 'bun:test';
import { ENGINE_HINTS, engineHintPlan, type ProcessFacts } from '../src/engine-hints.ts';

const facts = (over: Partial<ProcessFacts> = {}): ProcessFacts => ({
  argv: ['/usr/bin/bun', '/home/u/mcp/src/main.ts', 'serve', '--port', '8080'],
  execArgv: [],
  execPath: '/usr/bin/bun',
  env: { HOME: '/home/u', PROXY_API_KEY: 'k' },
  platform: 'linux',
  ...over,
});

test('the hints: a 320 MiB heap sizing and no FTL tier', () => {
  expect(ENGINE_HINTS).toEqual({ BUN_JSC_forceRAMSize: '335544320', BUN_JSC_useFTLJIT: 'false' });
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

test('a hint the user set is kept, and the other one is still added', () => {
  const plan = engineHintPlan(facts({ env: { BUN_JSC_useFTLJIT: 'true' } }));
  expect(plan?.env).toEqual({ BUN_JSC_useFTLJIT: 'true', BUN_JSC_forceRAMSize: '335544320' });
  expect(engineHintPlan(facts({ env: { BUN_JSC_forceRAMSize: '0' } }))?.env).toEqual({ BUN_JSC_forceRAMSize: '0', BUN_JSC_useFTLJIT: 'false' });
});

test.each([
  ['another command', facts({ argv: ['/usr/bin/bun', 'main.ts', 'accounts', 'list'] })],
  ['no command', facts({ argv: ['/usr/bin/bun', 'main.ts'] })],
  ['every hint already set (by the user, or by the re-execution itself)', facts({ env: { BUN_JSC_forceRAMSize: '536870912', BUN_JSC_useFTLJIT: 'true' } })],
  ['every hint set to off', facts({ env: { BUN_JSC_forceRAMSize: '0', BUN_JSC_useFTLJIT: 'true' } })],
  ['Windows (no execve)', facts({ platform: 'win32' })],
])('no re-execution for %s', (_name, f) => expect(engineHintPlan(f)).toBeNull());
