// `mcp backup <dir>`: a directory named as the target gets a fresh proxy-<UTC time>.db inside it,
// as `cp file dir/` would, rather than "already exists (--force replaces it)" and a --force that fails.
import { describe, expect, test } from 'bun:test';
import { existsSync, lstatSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Database } from 'bun:sqlite';
import { upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase, SCHEMA_VERSION } from '../../src/store/db.ts';
import { runCaptured, useTempDataDir } from './run-cli.ts';

const dataDir = useTempDataDir('mcp-backup-cli-');

/** The database a server or `mcp accounts add` would have made: backup copies one, never makes it. */
function makeDatabase(): void {
  openDatabase(join(dataDir(), 'proxy.db')).close();
}

describe('mcp backup into a directory', () => {
  test('writes a fresh proxy-<UTC time>.db inside it, owner-only', async () => {
    makeDatabase();
    const target = join(dataDir(), 'elsewhere');
    mkdirSync(target);
    const r = await runCaptured(['backup', target]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const files = readdirSync(target);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^proxy-\d{8}-\d{6}\.db$/);
    expect(statSync(join(target, files[0]!)).mode & 0o777).toBe(0o600);
    expect(r.out).toContain(join(target, files[0]!));
  });

  test('a second backup into it the same second gets its own name', async () => {
    makeDatabase();
    const target = join(dataDir(), 'elsewhere');
    mkdirSync(target);
    expect((await runCaptured(['backup', target])).code).toBe(0);
    expect((await runCaptured(['backup', target])).code).toBe(0);
    expect(readdirSync(target)).toHaveLength(2);
  });
});

describe('two backups at once (a script removing accounts in parallel, two cron jobs)', () => {
  test('each keeps its own copy: neither is renamed over the other', async () => {
    // A database big enough that each copy takes a while, so the two overlap.
    const db = openDatabase(join(dataDir(), 'proxy.db'));
    db.exec('CREATE TABLE ballast (b BLOB)');
    const q = db.query('INSERT INTO ballast VALUES (randomblob(65536))');
    for (let i = 0; i < 600; i++) q.run();
    db.close();
    const target = join(dataDir(), 'copies');
    mkdirSync(target);
    // Started just after a second begins, so both name their copy in the same second.
    while (Date.now() % 1000 > 20) Bun.sleepSync(1);
    const main = join(import.meta.dir, '..', '..', 'src', 'main.ts');
    const env = { ...process.env, MCP_DATA_DIR: dataDir() };
    const runs = [0, 1].map(() => Bun.spawn([process.execPath, main, 'backup', target], { env, stdout: 'pipe', stderr: 'pipe' }));
    const results = await Promise.all(runs.map(async (p) => ({ code: await p.exited, err: await new Response(p.stderr).text() })));
    expect(results).toEqual([
      { code: 0, err: '' },
      { code: 0, err: '' },
    ]);
    const files = readdirSync(target);
    expect(files).toHaveLength(2);
    expect(new Set(files.map((f) => statSync(join(target, f)).ino)).size).toBe(2);
  }, 30_000);
});

describe('a database written by a newer mcp (after a downgrade)', () => {
  function fromTheFuture(): string {
    const path = join(dataDir(), 'proxy.db');
    const db = openDatabase(path);
    upsertAccount(db, { provider: 'zai', label: 'kept', credentials: { kind: 'api_key', apiKey: ['FAKE', 'zai', 'future'].join('-') } });
    db.exec('CREATE TABLE from_the_future (x)');
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    return path;
  }

  test('can still be backed up: the copy is the file as it is, newer schema and all', async () => {
    fromTheFuture();
    const target = join(dataDir(), 'copy.db');
    const r = await runCaptured(['backup', target]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain('backed up 1 account to');
    // This mcp would refuse to import the copy: the line says which one brings the accounts back.
    expect(r.out).toContain(`\`mcp accounts import ${target}\` run by an mcp that understands schema ${SCHEMA_VERSION + 1} (this one understands ${SCHEMA_VERSION}) brings the accounts back`);
    const copy = new Database(target, { readonly: true });
    expect((copy.query('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(SCHEMA_VERSION + 1);
    expect(copy.query("SELECT name FROM sqlite_master WHERE name = 'from_the_future'").get()).toBeTruthy();
    copy.close();
  });

  test('other commands refuse it in one line that names the way out: the newer mcp, or `mcp backup`', async () => {
    const path = fromTheFuture();
    const r = await runCaptured(['accounts', 'list']);
    expect(r.code).toBe(1);
    expect(r.err.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.err).toContain(`database ${path} was written by a newer mcp (schema ${SCHEMA_VERSION + 1}, this one understands ${SCHEMA_VERSION})`);
    expect(r.err).toContain('`mcp backup`');
    // Refused without a change: still the newer schema.
    const after = new Database(path, { readonly: true });
    expect((after.query('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(SCHEMA_VERSION + 1);
    after.close();
  });
});

describe('mcp backup where there is nothing to copy, or nowhere to put it', () => {
  test('no database in the data directory is an error naming it, and creates none (no empty copy reported as a backup)', async () => {
    const r = await runCaptured(['backup']);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toBe(`mcp: no database at ${join(dataDir(), 'proxy.db')}, so nothing to back up (is MCP_DATA_DIR right? \`mcp serve\` or \`mcp accounts add\` creates it)\n`);
    expect(existsSync(join(dataDir(), 'proxy.db'))).toBe(false);
    expect(existsSync(join(dataDir(), 'backups'))).toBe(false);
  });

  test('a data directory that is missing altogether says the same, not an ENOENT from mkdir', async () => {
    process.env.MCP_DATA_DIR = join(dataDir(), 'not-there');
    const r = await runCaptured(['backup']);
    expect(r.code).toBe(1);
    expect(r.err).toStartWith(`mcp: no database at ${join(dataDir(), 'not-there', 'proxy.db')}`);
    expect(r.err).not.toContain('ENOENT');
  });

  test('a target whose directory is a file says so, not ENOTDIR about a temporary file', async () => {
    makeDatabase();
    const file = join(dataDir(), 'notes.txt');
    writeFileSync(file, '');
    const r = await runCaptured(['backup', join(file, 'copy.db')]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`mcp: cannot write the backup ${join(file, 'copy.db')}: ${file} is a file, not a directory\n`);
  });

  test('a backups/ that cannot be made is one line naming it and how to write elsewhere', async () => {
    makeDatabase();
    // A file where the directory should be: mkdir fails whatever the user (root included).
    writeFileSync(join(dataDir(), 'backups'), '');
    const r = await runCaptured(['backup']);
    expect(r.code).toBe(1);
    expect(r.err.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.err).toStartWith(`mcp: cannot write the backup into ${join(dataDir(), 'backups')}: ${join(dataDir(), 'backups')} is a file, not a directory`);
    expect(r.err).toContain('`mcp backup <file|dir>`');
  });
});

describe('mcp backup --force over something that is not a file', () => {
  // Renamed over /dev/null as root, the copy replaced the device with a regular file of every key.
  test('a named pipe (as a device would be) is refused and left in place', async () => {
    makeDatabase();
    const target = join(dataDir(), 'pipe');
    expect(Bun.spawnSync(['mkfifo', target]).exitCode).toBe(0);
    const r = await runCaptured(['backup', target, '--force']);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`mcp: ${target} is a named pipe, not a file: name a file to write the copy to\n`);
    expect(lstatSync(target).isFIFO()).toBe(true);
    expect(readdirSync(dataDir()).filter((f) => f.includes('.partial-'))).toEqual([]);
  });
});
