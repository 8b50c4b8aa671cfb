// Shared by the in-process CLI tests: run `mcp <argv>` with its output captured, and give each
// test a fresh private data directory (MCP_DATA_DIR) that is restored and removed afterwards.
import { afterAll, afterEach, beforeEach } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli/main.ts';
import { captureIo } from '../../src/cli/output.ts';

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

export async function runCaptured(argv: string[]): Promise<CliRun> {
  let out = '';
  let err = '';
  const restore = captureIo(
    (s) => {
      out += s;
    },
    (s) => {
      err += s;
    },
  );
  try {
    return { code: await runCli(argv), out, err };
  } finally {
    restore();
  }
}

/** Registers hooks giving every test its own MCP_DATA_DIR; returns a getter for the current one. */
export function useTempDataDir(prefix: string): () => string {
  const dirs: string[] = [];
  const saved = process.env.MCP_DATA_DIR;
  let current = '';
  beforeEach(() => {
    current = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(current);
    process.env.MCP_DATA_DIR = current;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.MCP_DATA_DIR;
    else process.env.MCP_DATA_DIR = saved;
  });
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  return () => current;
}
