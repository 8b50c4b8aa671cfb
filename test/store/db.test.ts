// Opening the database file: owner-only modes where the platform has them, and never a refusal
// because a mode could not be tightened (Windows answered EBUSY on the open -shm file).
import { afterAll, describe, expect, test } from 'bun:test';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Database } from 'bun:sqlite';
import { isDiskFull, openDatabase, tightenModes } from '../../src/store/db.ts';

const dir = mkdtempSync(join(tmpdir(), 'mcp-db-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const path = join(dir, 'proxy.db');
openDatabase(path).close();

test('the database and its WAL files are made owner-only', () => {
  const seen: Array<[string, number]> = [];
  tightenModes(path, 'linux', (f, mode) => void seen.push([f, mode]));
  expect(seen.map(([f, m]) => [f.slice(dir.length + 1), m])).toContainEqual(['proxy.db', 0o600]);
  expect(statSync(path).mode & 0o777).toBe(0o600);
});

test('a data directory mcp makes (and any missing parent) is owner-only', () => {
  const nested = join(dir, 'made', 'by', 'mcp');
  openDatabase(join(nested, 'proxy.db')).close();
  for (const d of [join(dir, 'made'), join(dir, 'made', 'by'), nested]) expect(statSync(d).mode & 0o777).toBe(0o700);
});

test('a file whose mode cannot be changed (another owner, EBUSY) is left as it is, without an error', () => {
  const refuse = () => {
    throw Object.assign(new Error('EBUSY: resource busy or locked, chmod'), { code: 'EBUSY' });
  };
  expect(() => tightenModes(path, 'linux', refuse)).not.toThrow();
});

test('Windows has no such modes: nothing is changed there', () => {
  const seen: string[] = [];
  tightenModes(path, 'win32', (f) => void seen.push(f));
  expect(seen).toEqual([]);
});

test('a database that is not one names the newest copy to go back to, when there is one', () => {
  const data = mkdtempSync(join(tmpdir(), 'mcp-db-corrupt-'));
  try {
    const db = join(data, 'proxy.db');
    writeFileSync(db, Buffer.alloc(8192, 0x5a));
    expect(() => openDatabase(db)).toThrow(`database ${db} is not usable: file is not a database; there is no copy of it in ${join(data, 'backups')}: move it aside`);
    mkdirSync(join(data, 'backups'));
    writeFileSync(join(data, 'backups', 'proxy-20261201-100000.db'), 'older');
    utimesSync(join(data, 'backups', 'proxy-20261201-100000.db'), new Date('2026-12-01T10:00:00Z'), new Date('2026-12-01T10:00:00Z'));
    writeFileSync(join(data, 'backups', 'before-remove-20261202-090000.db'), 'newer');
    writeFileSync(join(data, 'backups', 'notes.txt'), 'not a copy');
    expect(() => openDatabase(db)).toThrow(`; the newest copy of it is ${join(data, 'backups', 'before-remove-20261202-090000.db')} (README, Backups: how to put it back)`);
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});

describe('a database this user may read but not write is refused at open, not at the first write', () => {
  // SQLite quietly opens such a file read-only. Root writes anything, so as root the opening runs
  // as nobody (setpriv); as anyone else, permissions are taken from one's own files.
  const root = process.getuid?.() === 0;
  const uid = root ? 65534 : (process.getuid?.() ?? -1);
  const fixture = join(import.meta.dir, '..', 'fixtures', 'open-db.ts');
  function openAs(path: string): string {
    const bin = root ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath] : [process.execPath];
    const r = Bun.spawnSync([...bin, fixture, path], { stdout: 'pipe', stderr: 'pipe' });
    return r.stdout.toString().trim() || r.stderr.toString().trim();
  }
  function fresh(): { data: string; db: string } {
    const data = mkdtempSync(join(tmpdir(), 'mcp-db-ro-'));
    const db = join(data, 'proxy.db');
    openDatabase(db).close();
    return { data, db };
  }

  test('a read-only proxy.db (0444) names the file, the uid and its owner', () => {
    const { data, db } = fresh();
    try {
      chmodSync(data, 0o777);
      chmodSync(db, 0o444);
      expect(openAs(db)).toBe(
        `StoreError: cannot write database ${db}: attempt to write a readonly database (${db} is not writable by uid ${uid}, owned by uid ${statSync(db).uid}: change its owner or permissions)`,
      );
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });

  test('a read-only data directory (0555) names the directory, the uid and its owner', () => {
    const { data, db } = fresh();
    try {
      chmodSync(db, 0o666);
      chmodSync(data, 0o555);
      expect(openAs(db)).toBe(
        `StoreError: cannot write database ${db}: attempt to write a readonly database (the directory ${data} is not writable by uid ${uid}, owned by uid ${statSync(data).uid}: change its owner or permissions, or point MCP_DATA_DIR elsewhere)`,
      );
    } finally {
      chmodSync(data, 0o700);
      rmSync(data, { recursive: true, force: true });
    }
  });

  test('a writable one is opened and written', () => {
    const { data, db } = fresh();
    try {
      chmodSync(data, 0o777);
      chmodSync(db, 0o666);
      expect(openAs(db)).toBe('written');
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });
});

describe('a data directory or database path of the wrong kind is named as such', () => {
  test('MCP_DATA_DIR pointing at a file', () => {
    const data = mkdtempSync(join(tmpdir(), 'mcp-db-kind-'));
    try {
      const file = join(data, 'not-a-dir');
      writeFileSync(file, 'x');
      expect(() => openDatabase(join(file, 'proxy.db'))).toThrow(
        new Error(`cannot open database ${join(file, 'proxy.db')}: ${file} is a file, not a directory (point MCP_DATA_DIR at a directory)`),
      );
      expect(() => openDatabase(join(file, 'sub', 'proxy.db'))).toThrow(
        new Error(`cannot create data directory ${join(file, 'sub')}: ${file} is a file, not a directory (point MCP_DATA_DIR at a directory)`),
      );
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });

  test('proxy.db being a directory', () => {
    const data = mkdtempSync(join(tmpdir(), 'mcp-db-kind-'));
    try {
      mkdirSync(join(data, 'proxy.db'));
      expect(() => openDatabase(join(data, 'proxy.db'))).toThrow(
        new Error(`cannot open database ${join(data, 'proxy.db')}: it is a directory, not a file (move it away, or point MCP_DATA_DIR elsewhere)`),
      );
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });
});

test("the CLI's connection commits through a power cut (synchronous FULL); the server's stays NORMAL for speed", () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-durable-'));
  try {
    const cli = openDatabase(join(dir, 'proxy.db'), { durable: true });
    const server = openDatabase(join(dir, 'proxy.db'));
    expect((cli.query('PRAGMA synchronous').get() as { synchronous: number }).synchronous).toBe(2);
    expect((server.query('PRAGMA synchronous').get() as { synchronous: number }).synchronous).toBe(1);
    cli.close();
    server.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('a database another process keeps locked', () => {
  // Held past busy_timeout (5 s), e.g. a stuck process or a `sqlite3` shell left in a transaction.
  // The file is fine: pointing the operator at a backup to put back would lose their latest data.
  test('is named as locked, with no advice to restore a copy', () => {
    const d = join(dir, 'locked');
    mkdirSync(join(d, 'backups'), { recursive: true });
    const p = join(d, 'proxy.db');
    openDatabase(p).close();
    writeFileSync(join(d, 'backups', 'proxy-20260101-000000.db'), 'a copy');
    const holder = new Database(p);
    holder.exec('BEGIN IMMEDIATE');
    holder.exec('PRAGMA user_version = user_version');
    try {
      let message = '';
      try {
        openDatabase(p).close();
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toContain(`database ${p} is locked by another process`);
      expect(message).not.toContain('newest copy');
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
  }, 20_000);
});

const fixture = join(import.meta.dir, '..', 'fixtures', 'open-db.ts');

/** Whether `mount` works here in a mount namespace of its own (root and unshare: this machine and CI). */
function canMountInOwnNamespace(mount: string): boolean {
  return (
    process.platform === 'linux' &&
    process.getuid?.() === 0 &&
    Bun.spawnSync(['unshare', '-m', 'sh', '-c', mount], { stdout: 'ignore', stderr: 'ignore' }).exitCode === 0
  );
}

describe('a full disk is named as such, not as a damaged database', () => {
  // A small tmpfs filled to the last block, in a mount namespace of its own (so nothing is left
  // mounted): needs root and unshare, as this machine and CI have; skipped elsewhere.
  const canMount = canMountInOwnNamespace('mount -t tmpfs -o size=64k tmpfs /mnt');
  function onFullDisk(script: (dir: string) => string): string {
    const mnt = mkdtempSync(join(tmpdir(), 'mcp-db-full-'));
    try {
      const q = (s: string) => `'${s}'`;
      const open = `${q(process.execPath)} ${q(fixture)} ${q(join(mnt, 'data', 'proxy.db'))}`;
      const sh = [
        `mount -t tmpfs -o size=256k tmpfs ${q(mnt)}`,
        script(mnt).replaceAll('OPEN', open),
        `dd if=/dev/zero of=${q(join(mnt, 'fill'))} bs=4k count=1000 2>/dev/null || true`,
        open,
      ].join(' && ');
      const r = Bun.spawnSync(['unshare', '-m', 'sh', '-c', sh], { stdout: 'pipe', stderr: 'pipe' });
      return (r.stdout.toString().trim().split('\n').at(-1) ?? '') || r.stderr.toString().trim();
    } finally {
      rmSync(mnt, { recursive: true, force: true });
    }
  }

  test.skipIf(!canMount)('an existing database on a full disk says the disk is full, and points at no copy to restore', () => {
    const line = onFullDisk((mnt) => `OPEN >/dev/null && mkdir -p '${mnt}/data/backups' && echo copy > '${mnt}/data/backups/proxy-20261201-100000.db'`);
    expect(line).toStartWith('StoreError: cannot write database ');
    expect(line).toContain('the disk holding');
    expect(line).toContain('is full');
    expect(line).not.toContain('not usable');
    expect(line).not.toContain('newest copy');
  });

  test.skipIf(!canMount)('a new database on a full disk says the same', () => {
    const line = onFullDisk(() => 'true');
    expect(line).toStartWith('StoreError: cannot ');
    expect(line).toContain('is full');
    expect(line).not.toContain('not usable');
  });
});

test('a disk I/O error is put down to a full disk only when no space is left (anywhere else it may be damage)', () => {
  const ioerr = Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_SHMSIZE' });
  expect(isDiskFull(ioerr, 0)).toBe(true);
  expect(isDiskFull(ioerr, 4096)).toBe(false);
  expect(isDiskFull(ioerr, null)).toBe(false);
  expect(isDiskFull(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }), null)).toBe(true);
  expect(isDiskFull(new Error('no code'), 0)).toBe(false);
});

describe('a data directory on a read-only mount (docker run --read-only without the /data volume)', () => {
  // A bind mount made read-only in a mount namespace of its own: needs root and unshare, as this
  // machine and CI have; skipped elsewhere. Root's own permissions cannot show it, only the mount.
  const canMount = canMountInOwnNamespace('mount --bind -o ro /tmp /tmp');

  test.skipIf(!canMount)('an existing database there says the mount is read-only, not only "unable to open database file"', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-db-ro-'));
    try {
      const path = join(dir, 'proxy.db');
      openDatabase(path).close();
      const q = (s: string) => `'${s}'`;
      const sh = `mount --bind -o ro ${q(dir)} ${q(dir)} && ${q(process.execPath)} ${q(fixture)} ${q(path)}`;
      const r = Bun.spawnSync(['unshare', '-m', 'sh', '-c', sh], { stdout: 'pipe', stderr: 'pipe' });
      const line = r.stdout.toString().trim() || r.stderr.toString().trim();
      expect(line).toStartWith(`StoreError: cannot open database ${path}: `);
      expect(line).toContain(`the file system holding ${dir} is mounted read-only`);
      // Neither owner nor mode is the trouble there: advice to change them would send the user astray.
      expect(line).not.toContain('change its owner');
      expect(line).not.toContain('not usable');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
