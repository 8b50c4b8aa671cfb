#!/usr/bin/env bun
// Entry point: hands argv to the CLI and exits with its code once output is flushed.

// citty decides on colours when it loads; plain text when the output is not a terminal.
if (!process.stdout.isTTY && process.env.NO_COLOR === undefined) process.env.NO_COLOR = '1';

// `serve` first re-executes itself once with hints to the JavaScript engine (src/engine-hints.ts).
if (process.argv[2] === 'serve') (await import('./engine-hints.ts')).applyEngineHints();

const { runCli } = await import('./cli/main.ts');
const code = await runCli(process.argv.slice(2));
await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
process.exit(code);

export {};
