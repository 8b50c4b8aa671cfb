// What the CLI does with files in the data directory that are not what it expects: another
// program's SQLite database where proxy.db should be is refused and left exactly as it was, and a
// damaged one says what to do even when there is no copy to go back to.
import { describe, expect, test } from 'bun:test';
import { Database } from 'bun:sqlite';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCaptured, useTempDataDir } from './run-cli.ts';
import { upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';

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

// The README's restore is: stop the server, put the copy in place, delete proxy.db-wal and -shm.
// Forgetting the last step after a crash replayed the old WAL onto the copy: a damaged database.
test('a backup put back beside the WAL of the database it replaced is refused, and left undamaged', async () => {
  const path = join(dataDirOf(), 'proxy.db');
  const live = openDatabase(path);
  upsertAccount(live, { provider: 'zai', label: 'before', credentials: { kind: 'api_key', apiKey: `FAKE-${'0'.repeat(24)}` } });
  const copy = join(dataDirOf(), 'copy.db');
  live.query('VACUUM INTO ?').run(copy);
  live.exec('PRAGMA wal_autocheckpoint = 0');
  for (let i = 0; i < 20; i++) upsertAccount(live, { provider: 'zai', label: `later-${i}`, credentials: { kind: 'api_key', apiKey: `FAKE-${String(i).padStart(24, '0')}` } });
  // What a server killed now leaves behind: its WAL, with pages the copy does not have.
  const wal = readFileSync(`${path}-wal`);
  live.close();
  writeFileSync(`${path}-wal`, wal);
  copyFileSync(copy, path);
  const bytes = readFileSync(path);

  const r = await runCaptured(['accounts', 'list']);
  expect(r.code).toBe(1);
  expect(r.err).toBe(
    `mcp: cannot open database ${path}: ${path}-wal beside it belongs to another copy of the database (was proxy.db put back from a backup?); replayed onto this one it would damage it: delete ${path}-wal and ${path}-shm, then try again (README, Backups)\n`,
  );
  expect(readFileSync(path).equals(bytes)).toBe(true);

  rmSync(`${path}-wal`);
  rmSync(`${path}-shm`, { force: true });
  const after = await runCaptured(['accounts', 'list']);
  expect(after.code).toBe(0);
  expect(after.out).toContain('before');
});
