// Opens the one database file: private permissions, WAL, a busy timeout, and numbered migrations.
import { constants as sqlite, Database } from 'bun:sqlite';
import { accessSync, chmodSync, closeSync, constants, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readlinkSync, readSync, statfsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

export class StoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}

// Each entry moves the schema one version up; never edit a released entry, append a new one.
// A server of the previous version may still be running on the file when a newer CLI migrates it
// (an upgrade before the service restarts), and it does not look again: keep steps additive (new
// tables, columns with defaults), never drop or rename what an older version reads or writes.
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE accounts (
     id            TEXT PRIMARY KEY,
     provider      TEXT NOT NULL,
     label         TEXT NOT NULL UNIQUE,
     email         TEXT,
     status        TEXT NOT NULL DEFAULT 'active',
     status_reason TEXT,
     verify_url    TEXT,
     credentials   TEXT NOT NULL,
     meta          TEXT NOT NULL DEFAULT '{}',
     created_at    INTEGER NOT NULL,
     updated_at    INTEGER NOT NULL,
     last_used_at  INTEGER
   );
   CREATE UNIQUE INDEX accounts_provider_email ON accounts(provider, email) WHERE email IS NOT NULL;
   CREATE TABLE model_limits (
     account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
     model      TEXT NOT NULL,
     kind       TEXT NOT NULL,
     reset_at   INTEGER NOT NULL,
     reason     TEXT,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (account_id, model)
   );
   CREATE TABLE quotas (
     account_id         TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
     model              TEXT NOT NULL,
     window             TEXT NOT NULL DEFAULT '',
     remaining_fraction REAL,
     reset_at           INTEGER,
     fetched_at         INTEGER NOT NULL,
     PRIMARY KEY (account_id, model, window)
   );
   CREATE TABLE usage (
     id                    INTEGER PRIMARY KEY,
     ts                    INTEGER NOT NULL,
     request_id            TEXT NOT NULL,
     account_id            TEXT,
     provider              TEXT,
     client_model          TEXT NOT NULL,
     upstream_model        TEXT,
     status                INTEGER NOT NULL,
     latency_ms            INTEGER NOT NULL,
     input_tokens          INTEGER NOT NULL DEFAULT 0,
     output_tokens         INTEGER NOT NULL DEFAULT 0,
     cache_read_tokens     INTEGER NOT NULL DEFAULT 0,
     cache_creation_tokens INTEGER NOT NULL DEFAULT 0,
     stream                INTEGER NOT NULL DEFAULT 0,
     fallback_from         TEXT,
     failovers             INTEGER NOT NULL DEFAULT 0,
     error_type            TEXT
   );
   CREATE INDEX usage_ts ON usage(ts);
   CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
  // Which account each conversation is on, so a restart does not move it off its prompt cache.
  `CREATE TABLE session_bindings (
     family     TEXT NOT NULL,
     session    TEXT NOT NULL,
     account_id TEXT NOT NULL,
     bound_at   INTEGER NOT NULL,
     PRIMARY KEY (family, session)
   );
   CREATE INDEX session_bindings_at ON session_bindings(bound_at);`,
  // Bindings only side requests made (a session title): a restart must not take them for a main
  // request's, which side requests may never move. Old rows are a main request's (the safe side).
  `ALTER TABLE session_bindings ADD COLUMN side INTEGER NOT NULL DEFAULT 0;`,
  // Hashes of the thinking signatures a provider streamed, so that after a restart it still knows
  // its own thinking from another provider's in a conversation that moved (gateway/foreign-thinking.ts).
  `CREATE TABLE issued_signatures (
     provider  TEXT NOT NULL,
     hash      INTEGER NOT NULL,
     issued_at INTEGER NOT NULL,
     PRIMARY KEY (provider, hash)
   ) WITHOUT ROWID;
   CREATE INDEX issued_signatures_at ON issued_signatures(provider, issued_at);`,
  // The thought signature of each recent Gemini function call, which Gemini wants back on the call
  // (Claude Code drops it from the tool_use): after a restart, a tool loop then keeps its reasoning.
  `CREATE TABLE call_signatures (
     tool_use_id TEXT PRIMARY KEY,
     signature   TEXT,
     minted      INTEGER NOT NULL DEFAULT 0,
     issued_at   INTEGER NOT NULL
   );
   CREATE INDEX call_signatures_at ON call_signatures(issued_at);`,
  // The thought signature of each recent picture a Gemini image model drew, keyed by a hash of the
  // picture (never the picture): a picture that goes back unsigned may be refused, as an unsigned
  // call is, so a restart would otherwise put every conversation that drew one at risk.
  `CREATE TABLE image_signatures (
     hash      INTEGER PRIMARY KEY,
     signature TEXT NOT NULL,
     issued_at INTEGER NOT NULL
   );
   CREATE INDEX image_signatures_at ON image_signatures(issued_at);`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

const BUSY_TIMEOUT_MS = 5000;

/**
 * Brings the schema up to date in one BEGIN IMMEDIATE transaction: all pending steps or none. The
 * version is read under that write lock, since another process opening the same file (`serve` and
 * `accounts add` started together) may have migrated it since any earlier look. Foreign keys are
 * off meanwhile (the pragma is a no-op inside a transaction, so it is set around it): a step that
 * rebuilds a table the SQLite way (create, copy, drop, rename) would otherwise cascade the drop
 * into the rows that point at it; foreign_key_check then refuses a step that broke a reference.
 */
export function migrate(db: Database, migrations: readonly string[] = MIGRATIONS, opts: { allowNewer?: boolean } = {}): void {
  const fk = (db.query('PRAGMA foreign_keys').get() as { foreign_keys: number }).foreign_keys;
  db.exec('PRAGMA foreign_keys = OFF');
  try {
    immediate(db, () => {
      const current = (db.query('PRAGMA user_version').get() as { user_version: number }).user_version;
      if (current > migrations.length) {
        if (opts.allowNewer) return;
        throw newerSchema(db.filename, current, migrations.length);
      }
      if (current === migrations.length) return;
      // Rows already pointing at nothing (an account deleted in sqlite3's shell, which has foreign
      // keys off, leaves its limits) are the file's, not the migration's: refusing them would keep
      // that file from ever being brought up to date.
      const before = danglingRows(db);
      for (let v = current; v < migrations.length; v++) db.exec(migrations[v]!);
      const broken = danglingRows(db) - before;
      if (broken > 0) throw new StoreError(`migration to schema ${migrations.length} left ${broken} row(s) pointing at nothing; nothing was changed`);
      db.exec(`PRAGMA user_version = ${migrations.length}`);
    });
  } finally {
    db.exec(`PRAGMA foreign_keys = ${fk ? 'ON' : 'OFF'}`);
  }
}

/**
 * A newer mcp's file whose last changes are still in its -wal (that mcp was killed) is refused before
 * anything opens it to write: closing the last connection that may write folds the -wal into the
 * file (a checkpoint). A read-only look does not; it is kept to that case since it leaves the -wal
 * and -shm files it finds or makes (one that may write removes them). Any other newer file is
 * refused after a writable open, before WAL mode is set; what stops the look is left to that open.
 */
function refuseNewerSchema(path: string): void {
  if (!existsSync(path) || !sideFileInUse(`${path}-wal`)) return;
  let version = 0;
  let probe: Database | null = null;
  try {
    probe = new Database(path, { readonly: true });
    version = schemaVersion(probe);
  } catch {
    return;
  } finally {
    probe?.close();
  }
  if (version > SCHEMA_VERSION) throw newerSchema(path, version, SCHEMA_VERSION);
}

function danglingRows(db: Database): number {
  return db.query('PRAGMA foreign_key_check').all().length;
}

function newerSchema(path: string, found: number, known: number): StoreError {
  return new StoreError(
    `database ${path} was written by a newer mcp (schema ${found}, this one understands ${known}): run that newer mcp (upgrade this one); \`mcp backup\` still copies it as it is`,
  );
}

/**
 * For commands that only read (`accounts list`, `usage`, `backup`, `import --dry-run`): the
 * database as openDatabase opens it (created, brought up to date), or, when this process may not
 * write it (a read-only mount, a file another user owns), opened read-only as it is, without
 * migrations: a schema older than this mcp reads is refused, saying what can bring it up to date.
 * `anySchema`: any version will do, none is refused (a plain copy needs none it understands).
 */
export function openForReading(path: string, opts: { anySchema?: boolean } = {}): Database {
  // Nothing there yet: an empty database in memory answers (no accounts, no requests) without
  // making the data directory or the file, which, made by the wrong user (root, before the
  // service's own user), would lock the server out of it. What the open would refuse (a file
  // where the directory should be, a dangling link) it still reports.
  if (!existsSync(path) && danglingLink(path) === null && kindOf(nearestExisting(dirname(path))) === 'dir') return emptyDatabase();
  // Not this process's to write: read as it is, touching nothing (not even the modes openDatabase
  // makes owner-only, which would give the owner of a file made read-only the right to write it).
  if (existsSync(path) && accessHint(path, true) !== null) return openReadOnly(path, opts);
  try {
    return openDatabase(path, { allowNewerSchema: opts.anySchema });
  } catch (err) {
    // Refused a write the permissions did not forbid (a file system mounted read-only, a file
    // marked immutable); anything else (damaged, another program's file) is reported as it is.
    if (!existsSync(path) || !isReadonlyError((err as Error).cause)) throw err;
    return openReadOnly(path, opts);
  }
}

function nearestExisting(p: string): string {
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  return p;
}

function emptyDatabase(): Database {
  const db = new Database(':memory:');
  migrate(db);
  db.exec('PRAGMA foreign_keys = ON');
  return db;
}

function openReadOnly(path: string, opts: { anySchema?: boolean }): Database {
  let db: Database | null = null;
  try {
    try {
      db = new Database(path, { readonly: true });
      db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
      schemaVersion(db);
    } catch (err) {
      db?.close();
      db = null;
      // A WAL database needs its -shm beside it, which a reader may create but not here (SQLite
      // says CANTOPEN, or READONLY_DIRECTORY). With no -wal either, no process has it open to write
      // (a writer keeps both) and every change is in the file itself: read it as unchanging, the
      // one way SQLite reads it without a -shm.
      const code = String((err as { code?: unknown }).code ?? '');
      if (!code.startsWith('SQLITE_CANTOPEN') && !code.startsWith('SQLITE_READONLY')) throw err;
      if (sideFileInUse(`${path}-wal`)) {
        // Left by a process that stopped without folding it in: only a writer can (SQLite does on open).
        throw new StoreError(
          `cannot read database ${path}: its latest changes are still in ${path}-wal, which only a process that may write the data directory can read (${accessHint(path, true) ?? 'read-only'}): run \`mcp serve\`, or any mcp command, once where it can`,
          { cause: err },
        );
      }
      db = new Database(`file:${uriPath(path)}?immutable=1`, sqlite.SQLITE_OPEN_READONLY | sqlite.SQLITE_OPEN_URI);
    }
    assertOurs(db, path);
    const version = schemaVersion(db);
    if (version > SCHEMA_VERSION && !opts.anySchema) throw newerSchema(path, version, SCHEMA_VERSION);
    if (version < SCHEMA_VERSION && !opts.anySchema) {
      const why = accessHint(path, true) ?? 'the file or its file system is read-only';
      throw new StoreError(
        `database ${path} has schema ${version}, older than this mcp reads (${SCHEMA_VERSION}), and cannot be brought up to date here (${why}): run \`mcp serve\`, or any mcp command, once where it can write the data directory`,
      );
    }
    db.exec('PRAGMA foreign_keys = ON');
    return db;
  } catch (err) {
    db?.close();
    if (err instanceof StoreError) throw err;
    // Not even readable (a file another user keeps to itself): that, not the write, is the news.
    const unreadable = accessHint(path, false);
    if (unreadable) throw new StoreError(`cannot read database ${path}: ${(err as Error).message} (${unreadable})`, { cause: err });
    throw databaseFailure(path, err) ?? new StoreError(`cannot read database ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** The schema version the file says it has (PRAGMA user_version). */
export function schemaVersion(db: Database): number {
  return (db.query('PRAGMA user_version').get() as { user_version: number }).user_version;
}

/** Whether the side file at `p` is there with something in it (an empty -wal holds no change). */
function sideFileInUse(p: string): boolean {
  try {
    return statSync(p).size > 0;
  } catch {
    return false;
  }
}

/** `path` as the path of an SQLite `file:` URI: the characters a URI gives a meaning escaped. */
function uriPath(path: string): string {
  const p = process.platform === 'win32' ? `/${path.replace(/\\/g, '/')}` : path;
  return p.replace(/[%?#]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * Opens (creating if needed) the database at `path`. Throws StoreError with a readable message.
 * `check` reads every page first (PRAGMA quick_check, a second or so per few hundred MB): for the
 * server, so a damaged file is reported with its path and the newest copy, not at a first query.
 * `durable` makes each commit survive a power cut, not only a crash (synchronous FULL): for the CLI,
 * whose few writes are accounts a user was just told are stored; the server's stay NORMAL.
 * `allowNewerSchema` opens a file a newer mcp wrote as it is (no migration, no refusal): for
 * `mcp backup`, whose plain copy needs no schema it understands, the way out after a downgrade.
 */
export function openDatabase(
  path: string,
  opts: { readonly?: boolean; check?: boolean; durable?: boolean; allowNewerSchema?: boolean } = {},
): Database {
  const dir = dirname(path);
  try {
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    let parent = dirname(dir);
    while (!existsSync(parent) && dirname(parent) !== parent) parent = dirname(parent);
    if (kindOf(parent) === 'other') throw new StoreError(`cannot create data directory ${dir}: ${notADirectory(parent)}`, { cause: err });
    const hint = accessHint(join(parent, 'x'), true);
    throw new StoreError(`cannot create data directory ${dir}: ${(err as Error).message}${hint ? ` (${hint})` : ''}`, { cause: err });
  }
  // SQLite says only "unable to open database file" for these, and the access hint would mislead.
  if (kindOf(dir) === 'other') throw new StoreError(`cannot open database ${path}: ${notADirectory(dir)}`);
  if (kindOf(path) === 'dir') throw new StoreError(`cannot open database ${path}: it is a directory, not a file (move it away, or point MCP_DATA_DIR elsewhere)`);
  // SQLite says only "unable to open database file" for these too.
  for (const side of [`${path}-wal`, `${path}-shm`]) {
    if (kindOf(side) === 'dir') throw new StoreError(`cannot open database ${path}: ${side} is a directory, where SQLite keeps a file of its own (move it away)`);
  }
  const link = danglingLink(path);
  if (link !== null) {
    throw new StoreError(`cannot open database ${path}: it is a symbolic link to ${link}, which does not exist (a disk not mounted?): make it reachable, or remove the link`);
  }
  if (!opts.readonly) refuseStaleWal(path);
  if (!opts.readonly && !opts.allowNewerSchema) refuseNewerSchema(path);
  // Owner-only before SQLite writes a byte (its -wal and -shm take the file's mode): a file it made
  // itself would be 0644 until the chmod below, and a process that opened it meanwhile could read
  // the credentials written to it later.
  if (!opts.readonly) {
    createPrivate(path);
    tightenModes(path);
  }
  let db: Database;
  try {
    db = new Database(path, opts.readonly ? { readonly: true } : { create: true, readwrite: true });
  } catch (err) {
    const hint = accessHint(path, !opts.readonly);
    throw new StoreError(`cannot open database ${path}: ${(err as Error).message}${hint ? ` (${hint})` : ''}`, { cause: err });
  }
  try {
    db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    if (!opts.readonly) {
      // Before WAL mode is set, which would already write to the file.
      assertOurs(db, path);
      // A newer mcp's file is refused before WAL mode too: a copy `mcp backup` made (rollback
      // mode) and put back would otherwise have its header rewritten by the binary it refuses.
      const version = schemaVersion(db);
      if (version > SCHEMA_VERSION && !opts.allowNewerSchema) throw newerSchema(path, version, SCHEMA_VERSION);
      enableWal(db);
      db.exec(`PRAGMA synchronous = ${opts.durable ? 'FULL' : 'NORMAL'}`);
      // SQLite never shrinks the WAL file while connections stay open: one big write (a backlog
      // of usage rows pruned at once) would leave it that size until the server restarts.
      db.exec('PRAGMA journal_size_limit = 8388608');
    }
    db.exec('PRAGMA foreign_keys = ON');
    if (opts.check) quickCheck(db);
    if (!opts.readonly) assertWritable(db);
    if (!opts.readonly) migrate(db, MIGRATIONS, { allowNewer: opts.allowNewerSchema });
    if (!opts.readonly) tightenModes(path);
  } catch (err) {
    db.close();
    if (err instanceof StoreError) throw err;
    throw databaseFailure(path, err) ?? new StoreError(`database ${path} is not usable: ${(err as Error).message}${restoreHint(dirname(path))}`, { cause: err });
  }
  return db;
}

/**
 * A failure of the database at `path` in words an operator can act on, at open or later (the CLI
 * reads a damaged page only when a command gets to it): read-only, full, locked, or damaged with
 * the newest copy to go back to. Null for anything else (a constraint, a bug): report it as it is.
 */
export function databaseFailure(path: string, err: unknown): StoreError | null {
  const message = (err as Error | null)?.message ?? String(err);
  if (isReadonlyError(err)) {
    const hint = accessHint(path, true) ?? 'the file or its file system is read-only';
    return new StoreError(`cannot write database ${path}: ${message} (${hint})`, { cause: err });
  }
  // Nor is full: SQLite may say only "disk I/O error" (the -shm file could not grow).
  if (isDiskFull(err, freeBytes(dirname(path)))) {
    return new StoreError(`cannot write database ${path}: the disk holding ${dirname(path)} is full (${message}); free some space and try again`, {
      cause: err,
    });
  }
  // Locked is not damaged: the restore hint would have the operator replace a good file.
  if (isBusyError(err)) {
    return new StoreError(
      `database ${path} is locked by another process (still busy after ${BUSY_TIMEOUT_MS / 1000} s); try again, or stop whatever holds it open in a transaction`,
      { cause: err },
    );
  }
  const code = String((err as { code?: unknown } | null)?.code ?? '');
  // The file opened, but its -wal or -shm could not be made (a read-only mount, a directory
  // another user owns): SQLite says only "unable to open database file".
  if (code.startsWith('SQLITE_CANTOPEN')) {
    const hint = accessHint(path, true);
    if (hint) return new StoreError(`cannot open database ${path}: ${message} (${hint})`, { cause: err });
  }
  if (code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB')) {
    return new StoreError(`database ${path} is not usable: ${message}${restoreHint(dirname(path))}`, { cause: err });
  }
  return null;
}

/**
 * Switching a new file to WAL needs it alone, and there SQLite answers SQLITE_BUSY at once rather
 * than wait out busy_timeout (waiting while holding its read lock could deadlock). Another process
 * making the same new file (serve and `accounts add` started together) is waited for here instead.
 */
function enableWal(db: Database): void {
  const deadline = performance.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      db.exec('PRAGMA journal_mode = WAL');
      return;
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'SQLITE_BUSY' || performance.now() >= deadline) throw err;
      Bun.sleepSync(20);
    }
  }
}

/**
 * SQLite opens a file it may not write read-only without a word, and the first write (a request's
 * usage row, a refreshed token) would fail much later. A header write rolled back finds out now.
 */
function assertWritable(db: Database): void {
  const { user_version } = db.query('PRAGMA user_version').get() as { user_version: number };
  db.exec('BEGIN IMMEDIATE');
  try {
    db.exec(`PRAGMA user_version = ${user_version}`);
  } finally {
    db.exec('ROLLBACK');
  }
}

/**
 * Another program's SQLite file where proxy.db should be (a wrong MCP_DATA_DIR, a name taken): mcp
 * must neither add its tables to it nor fail later on a column it lacks. Ours has no table at
 * version 0 (the first migration sets the version in its own transaction) and its accounts table
 * from version 1 on.
 */
function assertOurs(db: Database, path: string): void {
  const { user_version } = db.query('PRAGMA user_version').get() as { user_version: number };
  const tables = (db.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").values() as string[][]).map(
    (r) => r[0]!,
  );
  if (user_version === 0 && tables.length === 0) return;
  if (user_version > 0) {
    const columns = new Set((db.query("SELECT name FROM pragma_table_info('accounts')").values() as string[][]).map((r) => r[0]));
    if (['id', 'provider', 'label', 'credentials'].every((c) => columns.has(c))) return;
  }
  const shown = tables.length > 3 ? `${tables.slice(0, 3).join(', ')} and ${tables.length - 3} more` : tables.join(', ');
  throw new StoreError(
    `${path} is another program's SQLite database, not mcp's (its tables: ${shown || 'none'}); nothing was written to it: point MCP_DATA_DIR at another directory, or move the file away`,
  );
}

function quickCheck(db: Database): void {
  const rows = db.query('PRAGMA quick_check').all() as Array<{ quick_check: string }>;
  if (rows.length === 1 && rows[0]!.quick_check === 'ok') return;
  const first = rows[0]?.quick_check ?? 'no answer';
  throw new Error(`database disk image is malformed (${first}${rows.length > 1 ? ` and ${rows.length - 1} more` : ''})`);
}

/**
 * A lock another process holds a moment (the CLI writing) is routine for a writer that waits only
 * briefly and tries again; one that has lasted this long is worth a warning and a word in /health.
 * Shared by the pool, the providers' account writes and the usage recorder.
 */
export const LOCK_WARN_AFTER_MS = 5_000;

export function isBusyError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/** Whether a call failed because the database was closed (bun:sqlite says so with a RangeError). */
export function isClosedError(err: unknown): boolean {
  return err instanceof RangeError && /closed database/i.test(err.message);
}

/**
 * Whether a failed write was a full disk. SQLite says so (SQLITE_FULL) for its own files, but a
 * -shm file that cannot grow is only "disk I/O error": then no space left where it lives decides.
 */
export function isDiskFull(err: unknown, free: number | null): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return code.startsWith('SQLITE_FULL') || (code.startsWith('SQLITE_IOERR') && free === 0);
}

/** Bytes this user may still write in the file system holding `dir`; null when it cannot be told. */
function freeBytes(dir: string): number | null {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

function isReadonlyError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  return Boolean(e && ((typeof e.code === 'string' && e.code.startsWith('SQLITE_READONLY')) || /readonly database/.test(String(e.message))));
}

/** What is at `p`, when it can be looked at (a path this user may not search is neither). */
function kindOf(p: string): 'dir' | 'other' | null {
  try {
    return statSync(p).isDirectory() ? 'dir' : 'other';
  } catch {
    return null;
  }
}

/**
 * A -wal file beside a database that is not in WAL mode is another file's: the database was
 * replaced (a backup put back, which `mcp backup` writes in rollback mode) after a server died with
 * its WAL still there. Switching to WAL would replay that file's pages onto this one and damage it
 * beyond repair, so nothing is opened.
 */
function refuseStaleWal(path: string): void {
  const wal = `${path}-wal`;
  try {
    if (statSync(wal).size === 0) return;
  } catch {
    return;
  }
  const header = sqliteHeader(path);
  // Bytes 18 and 19 of the header: 2 in WAL mode, 1 in rollback mode.
  if (!header || header[18] !== 1 || header[19] !== 1) return;
  throw new StoreError(
    `cannot open database ${path}: ${wal} beside it belongs to another copy of the database (was proxy.db put back from a backup?); replayed onto this one it would damage it: delete ${wal} and ${path}-shm, then try again (README, Backups)`,
  );
}

const SQLITE_MAGIC = 'SQLite format 3\0';

/** The first 20 bytes of the file at `path` when it is an SQLite database; null otherwise (or unreadable). */
export function sqliteHeader(path: string): Buffer | null {
  let fd: number | null = null;
  try {
    fd = openSync(path, 'r');
    const head = Buffer.alloc(20);
    return readSync(fd, head, 0, 20, 0) === 20 && head.toString('latin1', 0, 16) === SQLITE_MAGIC ? head : null;
  } catch {
    return null;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/** Where the symbolic link at `p` points when that is nowhere; null for anything else. */
function danglingLink(p: string): string | null {
  try {
    if (!lstatSync(p).isSymbolicLink() || existsSync(p)) return null;
    return readlinkSync(p);
  } catch {
    return null;
  }
}

function notADirectory(p: string): string {
  return `${p} is a file, not a directory (point MCP_DATA_DIR at a directory)`;
}

/** The directory copies of the database go to by default (`mcp backup`, removals). */
export function backupsPath(dataDir: string): string {
  return join(dataDir, 'backups');
}

/** Where the newest copy of the database is, when there is one to go back to (`mcp backup`, or a removal's). */
function restoreHint(dataDir: string): string {
  const dir = backupsPath(dataDir);
  let newest: { path: string; at: number } | null = null;
  try {
    for (const f of readdirSync(dir)) {
      if (!f.endsWith('.db')) continue;
      const at = statSync(join(dir, f)).mtimeMs;
      if (!newest || at > newest.at) newest = { path: join(dir, f), at };
    }
  } catch {
    // no backups/ directory: no copy either
  }
  if (newest) return `; the newest copy of it is ${newest.path} (README, Backups: how to put it back)`;
  // Aside, not deleted: a damaged file may still give up its accounts (sqlite3's .recover).
  return `; there is no copy of it in ${dir}: move it aside to start with an empty database (the accounts then need adding again), or put back a copy you keep elsewhere`;
}

/** Makes `path` an empty owner-only file when there is none (O_EXCL: nothing there is followed). */
function createPrivate(path: string): void {
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch {
    // already there (tightened next), or not creatable: SQLite's open says why
  }
}

/**
 * Owner-only database files where modes exist. Windows has no such modes (and refuses to touch the
 * open -shm file: EBUSY), and nowhere is a file we cannot tighten a reason to refuse the database.
 */
export function tightenModes(path: string, platform: string = process.platform, chmod: (f: string, mode: number) => void = chmodSync): void {
  if (platform === 'win32') return;
  for (const f of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      if (existsSync(f)) chmod(f, 0o600);
    } catch {
      // best effort
    }
  }
}

function readOnlyMount(dir: string): string {
  return `the file system holding ${dir} is mounted read-only: give the data directory a writable one (in Docker, a volume on /data), or point MCP_DATA_DIR elsewhere`;
}

/**
 * Why this process may not open `path`, in words a person can act on, or null when the permissions
 * look fine. SQLite only says "unable to open database file"; the usual cause is a data directory
 * owned by another user (a container run with `--user`, a directory made by root).
 */
export function accessHint(path: string, write: boolean): string | null {
  const uid = typeof process.getuid === 'function' ? process.getuid() : null;
  const who = uid === null ? 'this user' : `uid ${uid}`;
  const mode = constants.R_OK | (write ? constants.W_OK : 0);
  const owner = (p: string): string => {
    try {
      return `, owned by uid ${statSync(p).uid}`;
    } catch {
      return '';
    }
  };
  const dir = dirname(path);
  try {
    accessSync(dir, mode | constants.X_OK);
  } catch (err) {
    // No owner or mode helps there (a `docker run --read-only` without the /data volume).
    if ((err as { code?: string }).code === 'EROFS') return readOnlyMount(dir);
    return `the directory ${dir} is not ${write ? 'writable' : 'readable'} by ${who}${owner(dir)}: change its owner or permissions, or point MCP_DATA_DIR elsewhere`;
  }
  if (!existsSync(path)) return null;
  try {
    accessSync(path, mode);
  } catch (err) {
    if ((err as { code?: string }).code === 'EROFS') return readOnlyMount(dir);
    return `${path} is not ${write ? 'writable' : 'readable'} by ${who}${owner(path)}: change its owner or permissions`;
  }
  return null;
}

/** How long a write made on the server's thread waits for another process's lock before giving up. */
export const BRIEF_WAIT_MS = 50;

/**
 * Runs fn with busy_timeout cut to `ms`. The server is one thread: a write waiting out the full
 * timeout on a lock another process holds (a shell left in a transaction) would freeze every
 * request and stream with it. Callers keep what failed and write it later.
 */
export function briefly<T>(db: Database, fn: () => T, ms = BRIEF_WAIT_MS): T {
  const prev = (db.query('PRAGMA busy_timeout').get() as { timeout: number }).timeout;
  if (prev <= ms) return fn();
  db.exec(`PRAGMA busy_timeout = ${ms}`);
  try {
    return fn();
  } finally {
    db.exec(`PRAGMA busy_timeout = ${prev}`);
  }
}

/** Runs fn in a BEGIN IMMEDIATE transaction (read-modify-write without lost updates). */
export function immediate<T>(db: Database, fn: () => T): T {
  return db.transaction(fn).immediate();
}

/** Changes whenever another connection (e.g. the CLI) commits; cheap enough to poll each second. */
export function dataVersion(db: Database): number {
  return (db.query('PRAGMA data_version').get() as { data_version: number }).data_version;
}

export function integrityCheck(db: Database): string {
  return (db.query('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check;
}

export function getSetting(db: Database, key: string): string | null {
  const row = db.query('SELECT value FROM settings WHERE key = ?').get(key) as { value: string } | null;
  return row?.value ?? null;
}

export function setSetting(db: Database, key: string, value: string): void {
  db.query('INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(
    key,
    value,
  );
}

/** Every setting whose key starts with `prefix`. */
export function settingsWithPrefix(db: Database, prefix: string): Array<{ key: string; value: string }> {
  // substr, not LIKE: a prefix may hold `_` or `%`.
  return db.query('SELECT key, value FROM settings WHERE substr(key, 1, ?) = ? ORDER BY key').all(prefix.length, prefix) as Array<{ key: string; value: string }>;
}

export function deleteSetting(db: Database, key: string): void {
  db.query('DELETE FROM settings WHERE key = ?').run(key);
}
