// Start-up runs with a reluctant JIT; serve puts the normal policy back before any request.
import { afterEach, expect, test } from 'bun:test';
import { normalJitPolicy, startupJitPolicy } from '../src/jit-policy.ts';

const unsafe = Bun.unsafe as unknown as { setJITPolicy: (scale: number) => void };
const real = unsafe.setJITPolicy;
afterEach(() => {
  unsafe.setJITPolicy = real;
  real(1);
});

test('start-up scales the tier-up thresholds by 100, and normal puts them back to 1', () => {
  const calls: number[] = [];
  unsafe.setJITPolicy = (s) => void calls.push(s);
  startupJitPolicy();
  normalJitPolicy();
  expect(calls).toEqual([100, 1]);
});

test('serve restores the normal policy as soon as it listens, before any request can run', async () => {
  const src = await Bun.file(new URL('../src/cli/serve.ts', import.meta.url)).text();
  const restore = src.indexOf('normalJitPolicy();');
  expect(restore).toBeGreaterThan(src.indexOf('app.listen('));
  expect(restore).toBeLessThan(src.indexOf('await routing.start()'));
});
