// The database holds refresh tokens and API keys: its files are owner-only from their first byte,
// not from a chmod after SQLite has made them (in a data directory others can read, a process that
// opened the file in between could read whatever is written to it later).
import { afterAll, expect, mock, test } from 'bun:test';
import * as sqlite from 'bun:sqlite';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'mcp-db-modes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// What each database file looked like when SQLite was asked to open it.
const seen: Array<{ path: string; mode: number | null }> = [];
const Real = sqlite.Database;
// Behaves as the real one in every other way.
class Spy extends Real {
  constructor(...args: ConstructorParameters<typeof Real>) {
    const path = args[0];
    if (typeof path === 'string' && path.startsWith(dir)) seen.push({ path, mode: existsSync(path) ? statSync(path).mode & 0o777 : null });
    super(...args);
  }
}
const original = { ...sqlite };
mock.module('bun:sqlite', () => ({ ...sqlite, Database: Spy }));
// Bun keeps a mocked module for the test files run after this one: given back as it was.
afterAll(() => void mock.module('bun:sqlite', () => original));
const { openDatabase } = await import('../../src/store/db.ts');


test.skipIf(process.platform === 'win32')('a new database file exists owner-only before SQLite opens it, whatever the umask', () => {
  // A data directory the user made readable by all (MCP_DATA_DIR=/srv/mcp, 0755).
  const data = join(dir, 'open-dir');
  mkdirSync(data, { mode: 0o755 });
  chmodSync(data, 0o755);
  const path = join(data, 'proxy.db');
  const old = process.umask(0o022);
  try {
    openDatabase(path).close();
  } finally {
    process.umask(old);
  }
  expect(seen.find((s) => s.path === path)).toEqual({ path, mode: 0o600 });
  expect(statSync(path).mode & 0o777).toBe(0o600);
});

test.skipIf(process.platform === 'win32')('an existing database readable by all is made owner-only before SQLite writes its WAL', () => {
  const path = join(dir, 'loose.db');
  openDatabase(path).close();
  chmodSync(path, 0o644);
  openDatabase(path).close();
  expect(seen.filter((s) => s.path === path).at(-1)).toEqual({ path, mode: 0o600 });
});
