// What the CLI does with files in the data directory that are not what it expects: another
// program's SQLite database where proxy.db should be is refused and left exactly as it was, and a
// damaged one says what to do even when there is no copy to go back to.
import { describe, expect, test } from 'bun:test';
import { Database } from 'bun:sqlite';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCaptured, useTempDataDir } from './run-cli.ts';

const dataDirOf = useTempDataDir('mcp-cli-foreign-');

function foreignDatabase(sql: string): { path: string; bytes: Buffer } {
  const path = join(dataDirOf(), 'proxy.db');
  const db = new Database(path, { create: true });
  db.exec(sql);
  db.close();
  return { path, bytes: readFileSync(path) };
}

describe("another program's SQLite database where proxy.db should be", () => {
  for (const [what, sql] of [
    ['one that keeps no schema version', "CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT); INSERT INTO moz_places (url) VALUES ('https://example.com/');"],
    ['one with a schema version of its own', "CREATE TABLE accounts (name TEXT); INSERT INTO accounts VALUES ('bob'); PRAGMA user_version = 3;"],
  ] as const) {
    test(`${what} is refused by name and not written to`, async () => {
      const { path, bytes } = foreignDatabase(sql);
      for (const argv of [['accounts', 'list'], ['usage'], ['accounts', 'remove', 'bob']]) {
        const r = await runCaptured(argv);
        expect(r.code).toBe(1);
        expect(r.err).toContain(`${path} is another program's SQLite database, not mcp's`);
        expect(r.err).toContain('MCP_DATA_DIR');
        expect(r.err.trim().split('\n')).toHaveLength(1);
        expect(readFileSync(path).equals(bytes)).toBe(true);
      }
    });
  }

  test("an empty file or mcp's own database is still opened", async () => {
    writeFileSync(join(dataDirOf(), 'proxy.db'), '');
    expect((await runCaptured(['accounts', 'list'])).code).toBe(0);
    expect((await runCaptured(['accounts', 'list'])).code).toBe(0);
  });
});

test('a damaged proxy.db with no copy in backups/ says what to do, and is left as it is', async () => {
  const path = join(dataDirOf(), 'proxy.db');
  const bytes = randomBytes(64 * 1024);
  writeFileSync(path, bytes);
  const r = await runCaptured(['accounts', 'list']);
  expect(r.code).toBe(1);
  expect(r.err).toBe(
    `mcp: database ${path} is not usable: file is not a database; there is no copy of it in ${join(dataDirOf(), 'backups')}: move it aside to start with an empty database (the accounts then need adding again), or put back a copy you keep elsewhere\n`,
  );
  expect(readFileSync(path).equals(bytes)).toBe(true);
});

describe('what SQLite only calls "unable to open database file"', () => {
  test('proxy.db a symbolic link to nothing (a disk not mounted) names the link and where it points', async () => {
    const path = join(dataDirOf(), 'proxy.db');
    symlinkSync('/nonexistent-mount/proxy.db', path);
    const r = await runCaptured(['accounts', 'list']);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `mcp: cannot open database ${path}: it is a symbolic link to /nonexistent-mount/proxy.db, which does not exist (a disk not mounted?): make it reachable, or remove the link\n`,
    );
  });

  test('a directory where SQLite keeps its -wal file is named', async () => {
    const path = join(dataDirOf(), 'proxy.db');
    writeFileSync(path, '');
    mkdirSync(`${path}-wal`);
    const r = await runCaptured(['accounts', 'list']);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`mcp: cannot open database ${path}: ${path}-wal is a directory, where SQLite keeps a file of its own (move it away)\n`);
  });
});
