// `mcp backup`'s copy: consistent while another connection writes, owner-only from the start,
// never a partial file under the name asked for; and reading accounts back out of a copy.
import { Database } from 'bun:sqlite';
import { afterAll, describe, expect, test } from 'bun:test';
import { chmodSync, closeSync, copyFileSync, existsSync, lstatSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listAccounts, upsertAccount } from '../../src/store/accounts.ts';
import { accountsInBackup, backupDatabase, backupDir, isSqliteFile } from '../../src/store/backup.ts';
import { integrityCheck, openDatabase, SCHEMA_VERSION } from '../../src/store/db.ts';

const dir = mkdtempSync(join(tmpdir(), 'mcp-backup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function freshDb(name: string): Database {
  const db = openDatabase(join(dir, name, 'proxy.db'));
  upsertAccount(db, { provider: 'zai', label: 'z1', credentials: { kind: 'api_key', apiKey: 'zai-key-0123456789abcdef' } });
  upsertAccount(db, {
    provider: 'antigravity',
    email: 'alice@example.com',
    credentials: { kind: 'oauth', refreshToken: 'fake-refresh-alice-0123456789' },
    meta: { projectId: 'p-1', maxConcurrent: 2 },
  });
  return db;
}

describe('backupDatabase', () => {
  test('a target it cannot create is refused naming that target, never the temporary file (whose cleanup fails there too)', () => {
    const db = freshDb('through-a-file');
    writeFileSync(join(dir, 'plain-file'), '');
    const target = join(dir, 'plain-file', 'copy.db');
    try {
      let message = '';
      try {
        backupDatabase(db, target);
      } catch (err) {
        message = `${(err as Error).name}: ${(err as Error).message}`;
      }
      expect(message).toStartWith(`StoreError: cannot write the backup ${target}: `);
      expect(message).not.toContain('.partial');
    } finally {
      db.close();
    }
  });

  test('copies every account, passes its integrity check, and is owner-only', () => {
    const db = freshDb('a');
    const target = join(dir, 'a.db');
    const r = backupDatabase(db, target);
    expect(r).toEqual({ path: target, bytes: statSync(target).size, accounts: 2 });
    if (process.platform !== 'win32') expect(statSync(target).mode & 0o777).toBe(0o600);
    const copy = new Database(target, { readonly: true });
    expect(integrityCheck(copy)).toBe('ok');
    expect(listAccounts(copy)).toEqual(listAccounts(db));
    copy.close();
    db.close();
  });

  test('a file or symlink already under the temporary name is neither written through nor trusted for its mode', () => {
    if (process.platform === 'win32') return;
    const db = freshDb('planted');
    const victim = join(dir, 'planted-victim.txt');
    writeFileSync(victim, 'precious');
    const viaLink = join(dir, 'planted-link.db');
    symlinkSync(victim, `${viaLink}.partial-${process.pid}`);
    backupDatabase(db, viaLink);
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect(lstatSync(viaLink).isSymbolicLink()).toBe(false);
    expect(statSync(viaLink).mode & 0o777).toBe(0o600);
    // A leftover readable by all: the copy of the credentials must not inherit its mode.
    const open = join(dir, 'planted-open.db');
    writeFileSync(`${open}.partial-${process.pid}`, '');
    chmodSync(`${open}.partial-${process.pid}`, 0o644);
    backupDatabase(db, open);
    expect(statSync(open).mode & 0o777).toBe(0o600);
    db.close();
  });

  test('a snapshot taken while another connection keeps writing is whole and consistent', async () => {
    const db = freshDb('b');
    const writer = openDatabase(join(dir, 'b', 'proxy.db'));
    let stop = false;
    let n = 0;
    const writing = (async () => {
      while (!stop) {
        upsertAccount(writer, { provider: 'zai', credentials: { kind: 'api_key', apiKey: `zai-key-busy-${n++}-0123456789` } });
        await Bun.sleep(0);
      }
    })();
    const copies: number[] = [];
    const committed: number[] = [];
    for (let i = 0; i < 5; i++) {
      await Bun.sleep(2);
      // The writer cannot run during this synchronous call: the copy holds exactly what was committed.
      committed.push(2 + n);
      copies.push(backupDatabase(db, join(dir, `b-${i}.db`)).accounts);
    }
    stop = true;
    await writing;
    writer.close();
    db.close();
    expect(n).toBeGreaterThan(0);
    for (let i = 0; i < 5; i++) {
      const copy = new Database(join(dir, `b-${i}.db`), { readonly: true });
      expect(integrityCheck(copy)).toBe('ok');
      expect(listAccounts(copy)).toHaveLength(copies[i]!);
      copy.close();
    }
    // Each copy holds every account committed before it, the latest ones still in the WAL included.
    expect(copies).toEqual(committed);
    expect(new Set(copies).size).toBeGreaterThan(1);
  });

  test('an existing file is kept unless replacing is asked for', () => {
    const db = freshDb('c');
    const target = join(dir, 'c.db');
    writeFileSync(target, 'precious');
    expect(() => backupDatabase(db, target)).toThrow(`${target} already exists (--force replaces it)`);
    expect(Bun.file(target).size).toBe(8);
    expect(backupDatabase(db, target, { overwrite: true }).accounts).toBe(2);
    expect(isSqliteFile(target)).toBe(true);
    db.close();
  });

  test('the database itself (or its WAL) is never the target, even with --force', () => {
    const db = freshDb('g');
    const live = join(dir, 'g', 'proxy.db');
    for (const target of [live, `${live}-wal`, join(dir, 'g', '..', 'g', 'proxy.db')]) {
      expect(() => backupDatabase(db, target, { overwrite: true })).toThrow('is the database itself: name another file');
    }
    expect(listAccounts(db)).toHaveLength(2);
    db.close();
  });

  test('a backup that cannot be written is one clear error and leaves no partial file behind', () => {
    const db = freshDb('d');
    const target = join(dir, 'no-such-dir', 'd.db');
    expect(() => backupDatabase(db, target)).toThrow(/^cannot write the backup .*no-such-dir\/d\.db: /);
    expect(existsSync(join(dir, 'no-such-dir'))).toBe(false);
    // Into a directory that exists, a failure after the copy was made removes the copy.
    const before = readdirSync(dir).length;
    db.close();
    expect(() => backupDatabase(db, join(dir, 'closed.db'))).toThrow(/^cannot write the backup /);
    expect(readdirSync(dir).length).toBe(before);
  });
});

describe('backupDir', () => {
  test('is made owner-only, and clears the temporary files of backups killed midway once they are an hour old', () => {
    const data = join(dir, 'data-h');
    const backups = backupDir(data);
    if (process.platform !== 'win32') expect(statSync(backups).mode & 0o777).toBe(0o700);
    writeFileSync(join(backups, 'proxy-20261202-161500.db.partial-4242'), 'torn');
    writeFileSync(join(backups, 'proxy-20261202-161500.db'), 'kept');
    const inAnHour = Date.now() + 3_601_000;
    backupDir(data, Date.now());
    expect(readdirSync(backups).sort()).toEqual(['proxy-20261202-161500.db', 'proxy-20261202-161500.db.partial-4242']);
    backupDir(data, inAnHour);
    expect(readdirSync(backups)).toEqual(['proxy-20261202-161500.db']);
  });
});

describe('accountsInBackup', () => {
  test('reads the accounts of an mcp database without changing it', () => {
    const db = freshDb('e');
    const target = join(dir, 'e.db');
    backupDatabase(db, target);
    const before = statSync(target).mtimeMs;
    expect(accountsInBackup(target).map((a) => a.label).sort()).toEqual(['alice@example.com', 'z1']);
    expect(statSync(target).mtimeMs).toBe(before);
    db.close();
  });

  test.each([
    ['an SQLite file that is not an mcp database', (p: string) => new Database(p, { create: true }).exec('CREATE TABLE t (x)'), /is an SQLite database but not one of mcp's/],
    [
      'a database from a newer mcp',
      (p: string) => {
        const db = openDatabase(p);
        db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
        db.close();
      },
      /comes from a newer mcp .*upgrade mcp/,
    ],
  ])('%s is refused with a reason', (name, make, message) => {
    const p = join(dir, `${name.length}-${Math.random().toString(36).slice(2)}.db`);
    make(p);
    expect(() => accountsInBackup(p)).toThrow(message);
  });

  test('a damaged copy is refused, even when the accounts table itself still reads', () => {
    // Restoring from a damaged file would bring back whatever happens to read: refuse it whole.
    const db = freshDb('damaged');
    const target = join(dir, 'damaged.db');
    backupDatabase(db, target);
    db.close();
    const probe = new Database(target, { readonly: true });
    const pageSize = (probe.query('PRAGMA page_size').get() as { page_size: number }).page_size;
    const { rootpage } = probe.query("SELECT rootpage FROM sqlite_master WHERE name = 'accounts_provider_email'").get() as { rootpage: number };
    probe.close();
    const fd = openSync(target, 'r+');
    writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, (rootpage - 1) * pageSize);
    closeSync(fd);
    expect(() => accountsInBackup(target)).toThrow(new RegExp(`^${target} is damaged \\(`));
  });

  describe('a proxy.db in a directory this user may not write (a read-only mount, another user\'s data directory)', () => {
    // SQLite needs a -shm file beside a WAL database, even to read it. Root writes anything, so as
    // root the reading runs as nobody (setpriv); as anyone else, permissions come from one's own files.
    const root = process.getuid?.() === 0;
    const fixture = join(import.meta.dir, '..', 'fixtures', 'read-backup.ts');
    const readAs = (path: string): string => {
      const bin = root ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath] : [process.execPath];
      const r = Bun.spawnSync([...bin, fixture, path], { stdout: 'pipe', stderr: 'pipe' });
      return r.stdout.toString().trim() || r.stderr.toString().trim();
    };
    const lockDown = (d: string) => {
      for (const f of readdirSync(d)) chmodSync(join(d, f), 0o444);
      chmodSync(d, 0o555);
    };

    test.skipIf(process.platform === 'win32')('copied alone (still marked WAL) is read', () => {
      const db = freshDb('ro-copy');
      db.close();
      const d = mkdtempSync(join(dir, 'ro-copy-'));
      chmodSync(dir, 0o755);
      copyFileSync(join(dir, 'ro-copy', 'proxy.db'), join(d, 'proxy.db'));
      lockDown(d);
      try {
        expect(readAs(join(d, 'proxy.db'))).toBe('alice@example.com,z1');
      } finally {
        chmodSync(d, 0o755);
      }
    });

    test.skipIf(process.platform === 'win32')('copied with the WAL that holds its latest commits (cp proxy.db* while serving), those are read too', () => {
      const live = join(dir, 'ro-live');
      const db = freshDb('ro-live');
      db.exec('PRAGMA wal_autocheckpoint = 0');
      upsertAccount(db, { provider: 'zai', label: 'in-wal', credentials: { kind: 'api_key', apiKey: 'zai-key-FAKE-only-in-the-wal' } });
      const d = mkdtempSync(join(dir, 'ro-live-'));
      chmodSync(dir, 0o755);
      for (const f of ['proxy.db', 'proxy.db-wal']) copyFileSync(join(live, f), join(d, f));
      db.close();
      lockDown(d);
      try {
        expect(readAs(join(d, 'proxy.db'))).toBe('alice@example.com,in-wal,z1');
      } finally {
        chmodSync(d, 0o755);
      }
    });
  });

  test('only SQLite files are taken for databases', () => {
    const json = join(dir, 'accounts.json');
    writeFileSync(json, '{"accounts":[]}');
    expect(isSqliteFile(json)).toBe(false);
    expect(isSqliteFile(join(dir, 'missing.db'))).toBe(false);
  });
});
