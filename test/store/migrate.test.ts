// Schema migrations: an older file is brought up to date with everything in it kept, a newer one is
// refused untouched, a migration that fails changes nothing, and two processes opening a fresh
// file together (serve and `accounts add`) do not both run the same migration.
import { Database } from 'bun:sqlite';
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findAccount, listAccounts } from '../../src/store/accounts.ts';
import { migrate, openDatabase, SCHEMA_VERSION } from '../../src/store/db.ts';
import { loadBindings, saveBindings } from '../../src/store/bindings.ts';
import { listLimits, listQuotas } from '../../src/store/limits.ts';
// Schema 1 and step 2 as released, written out in the fixture builder, not taken from the migration
// list: the tests keep describing the files on people's disks whatever that list becomes.
import { V1, V2 } from '../fixtures/upgrade/build.ts';
import { loadCallSignatures, loadImageSignatures, loadIssued, saveCallSignatures, saveImageSignatures, saveIssued } from '../../src/store/signatures.ts';

const dir = mkdtempSync(join(tmpdir(), 'mcp-migrate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const freshPath = () => join(dir, `proxy-${++n}.db`);

/** A version-1 file with one Google account, its limit and quota, by hand (no mcp code involved). */
function v1File(): string {
  const path = freshPath();
  const db = new Database(path, { create: true });
  db.exec(V1);
  db.exec(`INSERT INTO accounts VALUES ('acc_0000abcd', 'antigravity', 'work', 'erin@example.com', 'active', NULL, NULL,
    '{"kind":"oauth","refreshToken":"FAKE-refresh-v1"}', '{"projectId":"p-1"}', 1000, 1000, NULL)`);
  db.exec(`INSERT INTO model_limits VALUES ('acc_0000abcd', '*', 'quota_exhausted', 9999999999999, 'weekly', 1000)`);
  db.exec(`INSERT INTO quotas VALUES ('acc_0000abcd', 'claude', '', 0.25, NULL, 1000)`);
  db.exec(`INSERT INTO settings VALUES ('legacy_import:/x', '{}')`);
  db.exec('PRAGMA user_version = 1');
  db.close();
  return path;
}

function schemaOf(db: Database): string[] {
  return (db.query("SELECT type || ' ' || name || ' ' || tbl_name FROM sqlite_master ORDER BY name").values() as string[][]).map((r) => r[0]!);
}

describe('opening an older file', () => {
  test('a version-1 file opens with its account, limit, quota and settings, at the current version', () => {
    const db = openDatabase(v1File());
    try {
      expect((db.query('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(SCHEMA_VERSION);
      expect(findAccount(db, 'work')).toMatchObject({ id: 'acc_0000abcd', email: 'erin@example.com', credentials: { refreshToken: 'FAKE-refresh-v1' }, meta: { projectId: 'p-1' } });
      expect(listLimits(db)).toEqual([{ accountId: 'acc_0000abcd', model: '*', kind: 'quota_exhausted', resetAt: 9999999999999, reason: 'weekly', updatedAt: 1000 }]);
      expect(listQuotas(db)).toHaveLength(1);
      const fresh = openDatabase(freshPath());
      expect(schemaOf(db)).toEqual(schemaOf(fresh));
      fresh.close();
    } finally {
      db.close();
    }
  });
});


describe('opening a file of schema 2 (before side bindings and issued signatures)', () => {
  test('its bindings come back as a main request\'s, the new tables start empty, and a second open changes nothing', () => {
    const path = v1File();
    const raw = new Database(path);
    raw.exec(V2);
    raw.exec(`INSERT INTO session_bindings VALUES ('google:claude', 'sess-1', 'acc_0000abcd', 5000)`);
    raw.exec('PRAGMA user_version = 2');
    raw.close();

    const db = openDatabase(path);
    try {
      expect((db.query('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(SCHEMA_VERSION);
      expect(loadBindings(db, 0, 10)).toEqual([{ family: 'google:claude', session: 'sess-1', accountId: 'acc_0000abcd', boundAt: 5000 }]);
      expect(loadIssued(db, 'zai', 0, 10)).toEqual([]);
      expect(loadCallSignatures(db, 0, 10)).toEqual([]);
      saveIssued(db, 'zai', [{ hash: 42, issuedAt: 6000 }], 0, 10);
      saveCallSignatures(db, [{ toolUseId: 'call_1', signature: null, minted: true, issuedAt: 6000 }], 0, 10);
      saveBindings(db, [{ family: 'google:claude', session: 'sess-2', accountId: 'acc_0000abcd', boundAt: 6000, side: true }], 0, 10);
    } finally {
      db.close();
    }

    // Written by this mcp, opened again by it: no step runs twice, every row is there.
    const again = openDatabase(path);
    try {
      expect((again.query('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(SCHEMA_VERSION);
      expect(loadBindings(again, 0, 10).map((b) => [b.session, b.side === true])).toEqual([
        ['sess-1', false],
        ['sess-2', true],
      ]);
      expect(loadIssued(again, 'zai', 0, 10)).toEqual([42]);
      expect(loadCallSignatures(again, 0, 10)).toEqual([{ toolUseId: 'call_1', signature: null, minted: true }]);
      const fresh = openDatabase(freshPath());
      expect(schemaOf(again)).toEqual(schemaOf(fresh));
      fresh.close();
    } finally {
      again.close();
    }
  });
});

describe('opening a file of schema 5 (before image signatures)', () => {
  test('its call signatures are kept, the image signatures table starts empty and takes writes, and the schema is a fresh file\'s', () => {
    // Schema 5 is this schema without step 6 (one new table): made so, then marked 5.
    const path = freshPath();
    const raw = openDatabase(path);
    raw.exec('DROP TABLE image_signatures');
    raw.exec('PRAGMA user_version = 5');
    saveCallSignatures(raw, [{ toolUseId: 'call_5', signature: 'FAKE-call-sig', minted: false, issuedAt: 5000 }], 0, 10);
    raw.close();

    const db = openDatabase(path);
    try {
      expect((db.query('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(SCHEMA_VERSION);
      expect(loadCallSignatures(db, 0, 10)).toEqual([{ toolUseId: 'call_5', signature: 'FAKE-call-sig', minted: false }]);
      expect(loadImageSignatures(db, 0, 10)).toEqual([]);
      saveImageSignatures(db, [{ hash: 77, signature: 'FAKE-picture-sig', issuedAt: 6000 }], 0, 10);
      expect(loadImageSignatures(db, 0, 10)).toEqual([{ hash: 77, signature: 'FAKE-picture-sig' }]);
      const fresh = openDatabase(freshPath());
      expect(schemaOf(db)).toEqual(schemaOf(fresh));
      fresh.close();
    } finally {
      db.close();
    }
  });
});

describe('a file from a newer mcp', () => {
  test('is refused with one clear line naming the file, and left as it was', () => {
    const path = v1File();
    const raw = new Database(path);
    raw.exec('CREATE TABLE from_the_future (x)');
    raw.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 5}`);
    raw.close();
    expect(() => openDatabase(path)).toThrow(
      new Error(`database ${path} was written by a newer mcp (schema ${SCHEMA_VERSION + 5}, this one understands ${SCHEMA_VERSION}): run that newer mcp (upgrade this one); \`mcp backup\` still copies it as it is`),
    );
    const after = new Database(path, { readonly: true });
    expect((after.query('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(SCHEMA_VERSION + 5);
    expect(listAccounts(after).map((a) => a.id)).toEqual(['acc_0000abcd']);
    expect(schemaOf(after)).toContain('table from_the_future from_the_future');
    after.close();
  });
});

describe('a migration that fails halfway', () => {
  test('changes nothing: the version stays, the statements before the failing one are undone', () => {
    const db = new Database(v1File());
    const broken = `CREATE TABLE half (x); ALTER TABLE accounts ADD COLUMN note TEXT; INSERT INTO no_such_table VALUES (1);`;
    expect(() => migrate(db, [V1, broken])).toThrow(/no_such_table/);
    expect((db.query('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(1);
    expect(schemaOf(db)).not.toContain('table half half');
    expect((db.query('PRAGMA table_info(accounts)').all() as Array<{ name: string }>).map((c) => c.name)).not.toContain('note');
    expect(listAccounts(db)).toHaveLength(1);
    db.close();
  });

  test('a later migration that rebuilds the accounts table keeps the limits and quotas that point at it', () => {
    // The SQLite way to change a column: make a new table, copy, drop the old, rename. With foreign
    // keys on, the drop would cascade into model_limits and quotas.
    const db = openDatabase(v1File());
    const table = V1.slice(0, V1.indexOf(';')).replace('CREATE TABLE accounts', 'CREATE TABLE accounts_new');
    const rebuild = `${table}; INSERT INTO accounts_new SELECT * FROM accounts; DROP TABLE accounts;
      ALTER TABLE accounts_new RENAME TO accounts;
      CREATE UNIQUE INDEX accounts_provider_email ON accounts(provider, email) WHERE email IS NOT NULL;`;
    // The file is at the current version: the steps before the rebuild are done, whatever they are.
    migrate(db, [...Array<string>(SCHEMA_VERSION).fill(V1), rebuild]);
    expect((db.query('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(SCHEMA_VERSION + 1);
    expect(listLimits(db)).toHaveLength(1);
    expect(listQuotas(db)).toHaveLength(1);
    expect((db.query('PRAGMA foreign_keys').get() as { foreign_keys: number }).foreign_keys).toBe(1);
    db.close();
  });
});

describe('two processes opening a fresh file at once', () => {
  test('the one that finds the schema already made by the other runs nothing again', () => {
    // Deterministic stand-in for `mcp serve` and `mcp accounts add` starting together: right after
    // this connection has looked at the version, the other one tries to migrate the same file. If
    // the look was outside the write lock, the other succeeds and this one then runs migration 1 on
    // a file that has it ("table accounts already exists").
    const path = freshPath();
    const mine = new Database(path, { create: true });
    mine.exec('PRAGMA journal_mode = WAL');
    const other = new Database(path);
    other.exec('PRAGMA busy_timeout = 0');
    let otherRan: string | null = null;
    const realQuery = mine.query.bind(mine);
    (mine as { query: unknown }).query = (sql: string) => {
      const st = realQuery(sql);
      if (!sql.includes('user_version') || otherRan !== null) return st;
      return {
        get: (...a: unknown[]) => {
          const row = (st.get as (...x: unknown[]) => unknown)(...a);
          try {
            migrate(other);
            otherRan = 'migrated';
          } catch (err) {
            otherRan = (err as Error).message;
          }
          return row;
        },
      };
    };
    expect(() => migrate(mine)).not.toThrow();
    expect(otherRan).not.toBeNull();
    expect((realQuery('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(SCHEMA_VERSION);
    mine.close();
    other.close();
  });
  test('the first to make the file WAL does not make the other fail with "database is locked"', async () => {
    // Switching a new file to WAL needs it to itself, and SQLite answers SQLITE_BUSY at once there
    // instead of waiting out busy_timeout. Here another connection holds the new file until the
    // opening process has met its lock.
    const path = freshPath();
    const holder = new Database(path, { create: true });
    holder.exec('BEGIN IMMEDIATE');
    holder.exec('CREATE TABLE IF NOT EXISTS probe (x)');
    const child = Bun.spawn([process.execPath, join(import.meta.dir, '..', 'fixtures', 'open-db.ts'), path, '--say-busy'], { stdout: 'pipe', stderr: 'pipe' });
    try {
      expect(await untilLine(child.stderr, 'busy', 10_000)).toBe('busy');
    } finally {
      holder.exec('ROLLBACK');
    }
    holder.close();
    expect((await new Response(child.stdout).text()).trim()).toBe('written');
  });
});

/** Reads `stream` until a line `want` (resolves it), its end or `ms` (resolves what was read instead). */
async function untilLine(stream: ReadableStream<Uint8Array>, want: string, ms: number): Promise<string> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let got = '';
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<'timeout'>((done) => (timer = setTimeout(() => done('timeout'), ms)));
  try {
    while (!got.split('\n').includes(want)) {
      const next = await Promise.race([reader.read(), timeout]);
      if (next === 'timeout') return `no "${want}" within ${ms} ms: ${got}`;
      if (next.done) return `ended before "${want}": ${got}`;
      got += decoder.decode(next.value, { stream: true });
    }
    return want;
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
}
