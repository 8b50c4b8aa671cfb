#!/usr/bin/env bun
// Entry point: hands argv to the CLI and exits with its code once output is flushed.

// citty decides on colours when it loads; plain text when the output is not a terminal.
if (!process.stdout.isTTY && process.env.NO_COLOR === undefined) process.env.NO_COLOR = '1';

// `serve` first re-executes itself once with hints to the JavaScript engine (src/engine-hints.ts).
if (process.argv[2] === 'serve') (await import('./engine-hints.ts')).applyEngineHints();

// Output that could not be written (a full disk behind `> file`) is a failure, not exit 0 with
// nothing written. A reader that left (`| head`) is not: the rest was not wanted.
let outputError: (Error & { code?: string }) | null = null;
process.stdout.on('error', (err: Error & { code?: string }) => {
  if (err.code !== 'EPIPE') outputError ??= err;
});

const { runCli } = await import('./cli/main.ts');
let code = await runCli(process.argv.slice(2));
await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
// A failed write is reported on a later turn of the event loop than the flush above.
await new Promise((resolve) => setImmediate(resolve));
if (outputError) {
  process.stderr.write(`mcp: cannot write the output: ${(outputError as Error).message.split('\n')[0]}\n`);
  code ||= 1;
}
process.exit(code);

export {};
