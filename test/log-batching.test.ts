// Request log lines are gathered and written together; anything else keeps the order and goes out at once.
import { afterEach, beforeEach, expect, test } from 'bun:test';
import { join } from 'node:path';
import { configureLog, log, logLineFast } from '../src/log.ts';

let writes: string[] = [];
let realWrite: typeof process.stderr.write;

beforeEach(() => {
  writes = [];
  realWrite = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    writes.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  configureLog({ format: 'pretty' });
});

afterEach(async () => {
  await Bun.sleep(80); // let anything gathered go out before the real stderr is back
  process.stderr.write = realWrite;
});

test('request lines are gathered into one write within about 50 ms, none lost', async () => {
  for (let i = 0; i < 20; i++) logLineFast('info', `req_${i} model -> model acct=a 200 1ms`);
  expect(writes).toEqual([]);
  await Bun.sleep(80);
  expect(writes).toHaveLength(1);
  const lines = writes[0]!.trimEnd().split('\n');
  expect(lines).toHaveLength(20);
  expect(lines.map((l) => l.split(' ')[1])).toEqual(Array.from({ length: 20 }, (_, i) => `req_${i}`));
});

test('a warning writes the gathered lines first, then itself, so the order holds', () => {
  logLineFast('info', 'req_a ok');
  logLineFast('info', 'req_b ok');
  log.warn('upstream trouble');
  logLineFast('warn', 'req_c failed');
  const text = writes.join('');
  expect(text.indexOf('req_a')).toBeLessThan(text.indexOf('req_b'));
  expect(text.indexOf('req_b')).toBeLessThan(text.indexOf('upstream trouble'));
  expect(text.indexOf('upstream trouble')).toBeLessThan(text.indexOf('req_c'));
});

test('lines gathered when the process exits are still written', async () => {
  const script = join(import.meta.dir, 'fixtures', 'log-then-exit.ts');
  const p = Bun.spawn([process.execPath, script], { stdout: 'pipe', stderr: 'pipe' });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  expect(code).toBe(0);
  expect(err.trimEnd().split('\n').map((l) => l.split(' ')[1])).toEqual(['req_1', 'req_2', 'req_3']);
});

test('a line logged many times in a row is written each time and at once, so none is held back and lost at exit', async () => {
  const script = join(import.meta.dir, 'fixtures', 'repeat-then-exit.ts');
  const p = Bun.spawn([process.execPath, script], { stdout: 'pipe', stderr: 'pipe' });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  expect(code).toBe(0);
  expect(err.trimEnd().split('\n').map((l) => l.slice(l.indexOf(' ') + 1))).toEqual(Array(8).fill('[warn] the same warning'));
});
