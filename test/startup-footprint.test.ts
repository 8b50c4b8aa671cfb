// What `mcp serve` loads at start counts toward its idle RSS (target < 60 MB, docs/benchmarks.md):
// modules only a CLI prompt or another package entry needs must stay out of the start-up path.
import { expect, test } from 'bun:test';
import { join } from 'node:path';

const MAIN = join(import.meta.dir, '..', 'src', 'main.ts');

test("the program's bundle leaves out consola's default reporters and a top-level readline, which cost idle memory", async () => {
  const built = await Bun.build({ entrypoints: [MAIN], target: 'bun' });
  expect(built.success).toBe(true);
  const text = await built.outputs[0]!.text();
  const unwanted = {
    // consola's main entry builds its own instance with these reporters at load; consola/core does not.
    "consola's reporters": /class (Fancy|Basic)Reporter/,
    // A static import of a Node built-in is hoisted to the top of the bundle and loaded by every command.
    'a top-level readline import': /^import .* from ["'](node:)?readline["'];?$/m,
  };
  const found = Object.entries(unwanted).filter(([, re]) => re.test(text)).map(([what]) => what);
  expect(found).toEqual([]);
  expect(text).toContain('createConsola');
});
