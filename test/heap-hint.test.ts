// `mcp serve` re-executes itself once with the garbage-collector hint (src/heap-hint.ts).
import { expect, test } from 'bun:test';
import { HEAP_HINT_BYTES, HEAP_HINT_VAR, heapHintPlan, type ProcessFacts } from '../src/heap-hint.ts';

const facts = (over: Partial<ProcessFacts> = {}): ProcessFacts => ({
  argv: ['/usr/bin/bun', '/home/u/mcp/src/main.ts', 'serve', '--port', '8080'],
  execArgv: [],
  execPath: '/usr/bin/bun',
  env: { HOME: '/home/u', PROXY_API_KEY: 'k' },
  platform: 'linux',
  ...over,
});

test('from source: the same script, bun flags and arguments, with the hint added to the environment', () => {
  const plan = heapHintPlan(facts({ execArgv: ['--smol'] }));
  expect(plan).toEqual({
    file: '/usr/bin/bun',
    args: ['/usr/bin/bun', '--smol', '/home/u/mcp/src/main.ts', 'serve', '--port', '8080'],
    env: { HOME: '/home/u', PROXY_API_KEY: 'k', [HEAP_HINT_VAR]: String(HEAP_HINT_BYTES) },
  });
});

test('a compiled binary re-executes itself, not the virtual entry path Bun shows in argv[1]', () => {
  const plan = heapHintPlan(facts({ argv: ['bun', '/$bunfs/root/mcp', 'serve'], execPath: '/opt/mcp/mcp' }));
  expect(plan?.file).toBe('/opt/mcp/mcp');
  expect(plan?.args).toEqual(['/opt/mcp/mcp', 'serve']);
});

test.each([
  ['another command', facts({ argv: ['/usr/bin/bun', 'main.ts', 'accounts', 'list'] })],
  ['no command', facts({ argv: ['/usr/bin/bun', 'main.ts'] })],
  ['the hint already set by the user', facts({ env: { [HEAP_HINT_VAR]: '536870912' } })],
  ['the hint set to 0 (opt out)', facts({ env: { [HEAP_HINT_VAR]: '0' } })],
  ['Windows (no execve)', facts({ platform: 'win32' })],
])('no re-execution for %s', (_name, f) => expect(heapHintPlan(f)).toBeNull());
