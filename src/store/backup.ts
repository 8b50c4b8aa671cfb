// A copy of the whole database that can be taken while the server runs, and the accounts read
// back out of one. The copy holds refresh tokens and API keys: it is owner-only from its first byte.
import { Database } from 'bun:sqlite';
import { closeSync, copyFileSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Account, listAccounts } from './accounts.ts';
import { backupsPath, integrityCheck, SCHEMA_VERSION, sqliteHeader, StoreError } from './db.ts';

export interface BackupResult {
  path: string;
  bytes: number;
  accounts: number;
}

/**
 * Writes a consistent snapshot of `db` to `target` (VACUUM INTO reads one transaction's view, so
 * a server writing meanwhile is fine). The copy is made under a temporary name created 0600,
 * checked, then renamed into place: a failed or interrupted backup never leaves a partial file
 * under the name asked for, and an existing file is only replaced with `overwrite`.
 */
export function backupDatabase(db: Database, target: string, opts: { overwrite?: boolean } = {}): BackupResult {
  // Renamed over the live file (or its WAL), the copy would pull the database out from under the server.
  const live = resolve(db.filename);
  if ([live, `${live}-wal`, `${live}-shm`].includes(resolve(target))) throw new StoreError(`${target} is the database itself: name another file`);
  // --force renames the copy over what has the name: over /dev/null (root, `> /dev/null` habits)
  // that put a regular file holding every key where the device was, for every program on the machine.
  const kind = kindOfExisting(target);
  if (kind) throw new StoreError(`${target} is ${kind}, not a file: name a file to write the copy to`);
  if (existsSync(target) && !opts.overwrite) throw new BackupExistsError(target);
  const tmp = `${target}.partial-${process.pid}`;
  try {
    // SQLite takes an empty existing file as the target and keeps its mode. Whatever already has the
    // name goes first and the file is made new (O_EXCL): a symlink planted there (a shared directory)
    // is not written through, and a leftover readable by all does not lend the copy its mode.
    rmSync(tmp, { force: true });
    closeSync(openSync(tmp, 'wx', 0o600));
    db.query('VACUUM INTO ?').run(tmp);
    const copy = new Database(tmp, { readonly: true });
    let accounts: number;
    try {
      const ok = integrityCheck(copy);
      if (ok !== 'ok') throw new StoreError(`the copy failed its integrity check: ${ok}`);
      accounts = (copy.query('SELECT count(*) AS n FROM accounts').get() as { n: number }).n;
    } finally {
      copy.close();
    }
    if (opts.overwrite) renameSync(tmp, target);
    else placeNew(tmp, target);
    return { path: target, bytes: statSync(target).size, accounts };
  } catch (err) {
    // Cleanup must not hide the failure: where the first rm failed (a path through a file) so does this one.
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing was made there
    }
    if (err instanceof StoreError) throw err;
    // The temporary name is ours, not the user's: the system's message names the file asked for.
    throw new StoreError(`cannot write the backup ${target}: ${(err as Error).message.split(tmp).join(target)}`, { cause: err });
  }
}

/** What is at `path` when it is neither a regular file nor a symbolic link (replacing a link leaves its target alone); null otherwise. */
function kindOfExisting(path: string): string | null {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch {
    return null;
  }
  if (st.isFile() || st.isSymbolicLink()) return null;
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a named pipe';
  if (st.isSocket()) return 'a socket';
  return st.isDirectory() ? 'a directory' : 'not a regular file';
}

export class BackupExistsError extends StoreError {
  constructor(target: string) {
    super(`${target} already exists (--force replaces it)`);
  }
}

/**
 * Puts the finished copy under its name only if no file has that name: another backup may have
 * taken it since the look before the copy (two at once, the same second), and a rename would
 * replace that one without a word. A hard link fails instead; where the file system has none,
 * the rename it is.
 */
function placeNew(tmp: string, target: string): void {
  try {
    linkSync(tmp, target);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'EEXIST') throw new BackupExistsError(target);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
    renameSync(tmp, target);
    return;
  }
  rmSync(tmp, { force: true });
}

/**
 * A backup into `dir` under a fresh `<prefix>-<UTC time>.db` name (freshBackupPath); when another
 * backup takes that name meanwhile, under the next one.
 */
export function backupToFresh(db: Database, dir: string, prefix: string, now: Date): BackupResult {
  for (let tries = 1; ; tries++) {
    try {
      return backupDatabase(db, freshBackupPath(dir, prefix, now));
    } catch (err) {
      if (!(err instanceof BackupExistsError) || tries >= 10) throw err;
    }
  }
}

/**
 * Where backups go by default: `backups/` in the data directory, owner-only. Made if missing; the
 * temporary file of a backup killed midway (an hour old or more) is cleared away.
 */
export function backupDir(dataDir: string, now = Date.now()): string {
  const dir = backupsPath(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const f of readdirSync(dir)) {
    if (!/\.partial-\d+$/.test(f)) continue;
    const p = join(dir, f);
    if (now - statSync(p).mtimeMs >= 3_600_000) rmSync(p, { force: true });
  }
  return dir;
}

/**
 * `<dir>/<prefix>-20261202-161500.db` (UTC, sortable); `-2`, `-3`… when one of that second
 * exists, so a copy is never replaced by the next one.
 */
export function freshBackupPath(dir: string, prefix: string, now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  let path = join(dir, `${prefix}-${stamp}.db`);
  for (let n = 2; existsSync(path); n++) path = join(dir, `${prefix}-${stamp}-${n}.db`);
  return path;
}

/** Removes all but the newest `keep` files named `<prefix>-*.db` in `dir`; others are not touched. */
export function pruneBackups(dir: string, prefix: string, keep: number): string[] {
  const mine = readdirSync(dir)
    .filter((f) => f.startsWith(`${prefix}-`) && f.endsWith('.db'))
    .map((f) => ({ path: join(dir, f), at: statSync(join(dir, f)).mtimeMs }))
    .sort((a, b) => b.at - a.at || b.path.localeCompare(a.path));
  const gone = mine.slice(keep).map((f) => f.path);
  for (const p of gone) rmSync(p, { force: true });
  return gone;
}

/** Whether the file at `path` is an SQLite database (by its first bytes). */
export function isSqliteFile(path: string): boolean {
  return sqliteHeader(path) !== null;
}

/**
 * The accounts in an mcp database file (a backup, or another machine's proxy.db), read-only. A file
 * that fails quick_check is refused whole: what still reads of a damaged copy is no restore.
 */
export function accountsInBackup(path: string): Account[] {
  try {
    return readAccounts(path, path);
  } catch (err) {
    if (!needsWritableDirectory(err)) throw err;
    // A WAL database wants its -shm beside it, even to be read: where this user may not write
    // (a read-only mount, another user's data directory), a private copy is read instead.
    const tmp = mkdtempSync(join(tmpdir(), 'mcp-import-'));
    try {
      const copy = join(tmp, 'proxy.db');
      try {
        copyFileSync(path, copy);
        if (existsSync(`${path}-wal`)) copyFileSync(`${path}-wal`, `${copy}-wal`);
      } catch {
        throw err;
      }
      return readAccounts(copy, path);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
}

/** SQLite could not make the -shm (or -wal) file it needs beside the database. */
function needsWritableDirectory(err: unknown): boolean {
  const code = String(((err as { cause?: { code?: unknown } } | null)?.cause ?? {}).code ?? '');
  return code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN');
}

/** The accounts of the database at `path`; messages name `shown` (the file the user gave). */
function readAccounts(path: string, shown: string): Account[] {
  let db: Database;
  try {
    db = new Database(path, { readonly: true });
  } catch (err) {
    throw new StoreError(`cannot open ${shown}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const version = (db.query('PRAGMA user_version').get() as { user_version: number }).user_version;
    const hasAccounts = db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'accounts'").get();
    if (version < 1 || !hasAccounts) throw new StoreError(`${shown} is an SQLite database but not one of mcp's`);
    if (version > SCHEMA_VERSION) {
      throw new StoreError(`${shown} comes from a newer mcp (schema ${version}, this one understands ${SCHEMA_VERSION}); upgrade mcp`);
    }
    const problems = db.query('PRAGMA quick_check').values() as string[][];
    if (problems.length !== 1 || problems[0]![0] !== 'ok') {
      const more = problems.length > 1 ? ` and ${problems.length - 1} more` : '';
      throw new StoreError(`${shown} is damaged (${problems[0]?.[0] ?? 'no answer'}${more}); nothing was imported from it`);
    }
    return listAccounts(db);
  } catch (err) {
    if (err instanceof StoreError) throw err;
    throw new StoreError(`${shown} is not a usable mcp database: ${(err as Error).message}`, { cause: err });
  } finally {
    db.close();
  }
}
