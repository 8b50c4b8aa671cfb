// Upgrades and downgrades by replacing the binary: a database an older mcp left is opened with every
// account, limit and usage row meaning what it meant; one a newer mcp left is refused untouched.
import { Database } from 'bun:sqlite';
import { afterAll, describe, expect, test } from 'bun:test';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPool } from '../../src/pool/pool.ts';
import { listAccounts } from '../../src/store/accounts.ts';
import { loadBindings } from '../../src/store/bindings.ts';
import { getSetting, migrate, MIGRATIONS, openDatabase, openForReading, SCHEMA_VERSION } from '../../src/store/db.ts';
import { loadCallSignatures, loadIssued } from '../../src/store/signatures.ts';
import { summarizeUsage } from '../../src/store/usage.ts';
import { FAR_RESET, fakeRefreshToken, fakeZaiKey, FIXTURES, fixturePath, RECORDED_AT } from '../fixtures/upgrade/build.ts';

const dir = mkdtempSync(join(tmpdir(), 'mcp-upgrade-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const freshPath = () => join(dir, `proxy-${++n}.db`);

/** A copy of a fixture as a data directory's proxy.db (the fixture itself is never opened). */
function copyOf(file: string): string {
  const path = freshPath();
  copyFileSync(fixturePath(file), path);
  return path;
}

function schemaOf(db: Database): string[] {
  return (db.query("SELECT type || ' ' || name || ' ' || tbl_name FROM sqlite_master ORDER BY name").values() as string[][]).map((r) => r[0]!);
}

const version = (db: Database) => (db.query('PRAGMA user_version').get() as { user_version: number }).user_version;

describe.each(FIXTURES.map((f) => [f.file, f] as const))('a database an older mcp left (%s)', (file, fixture) => {
  test('opens at the current schema with every account as it was: label, status, reason, link, project, credentials', () => {
    const db = openDatabase(copyOf(file));
    try {
      expect(version(db)).toBe(SCHEMA_VERSION);
      const fresh = openDatabase(freshPath());
      expect(schemaOf(db)).toEqual(schemaOf(fresh));
      fresh.close();
      const byLabel = new Map(listAccounts(db).map((a) => [a.label, a]));
      expect([...byLabel.keys()].sort()).toEqual(['g-alice', 'g-bob', 'g-carol', 'g-dave', ...(fixture.projectFor ? ['g-erin'] : []), 'z-capped', 'z-main', 'z-off']);
      expect(byLabel.get('z-main')).toMatchObject({ id: 'acc_0000z001', provider: 'zai', status: 'active', credentials: { kind: 'api_key', apiKey: fakeZaiKey(1) }, meta: { plan: 'pro' } });
      expect(byLabel.get('z-off')).toMatchObject({ status: 'disabled', statusReason: 'disabled by user' });
      expect(byLabel.get('z-capped')!.meta).toEqual({ plan: 'lite', maxConcurrent: 2 });
      expect(byLabel.get('g-alice')).toMatchObject({
        email: 'alice@example.com',
        status: 'active',
        credentials: { kind: 'oauth', refreshToken: fakeRefreshToken('alice') },
        meta: { projectId: 'proj-alice', tierId: 'g1-pro-tier' },
      });
      expect(byLabel.get('g-carol')).toMatchObject({ status: 'invalid', statusReason: 'invalid_grant: Token has been expired or revoked.', verifyUrl: null });
      expect(byLabel.get('g-dave')).toMatchObject({ status: 'invalid', verifyUrl: 'https://accounts.google.com/signin/continue?FAKE=1' });
      if (fixture.projectFor) expect(byLabel.get('g-erin')!.meta).toMatchObject({ projectId: 'own-proj-erin', userProject: 'own-proj-erin', projectFor: 'own-proj-erin' });
      expect(getSetting(db, 'legacy_import:/home/erin/.config/antigravity-proxy/accounts.json')).not.toBeNull();
    } finally {
      db.close();
    }
  });

  test('its limits still in force keep the limited accounts out of rotation; a lifted one and the disabled and invalid accounts stay out of the way', () => {
    const db = openDatabase(copyOf(file));
    const t = RECORDED_AT + 60_000;
    const pool = createPool({ db, now: () => t, defaultCooldownSec: 60, softLimitThreshold: 0.2 });
    try {
      pool.sync();
      const limits = new Map(pool.state().map((s) => [s.account.label, s.limits.map((l) => [l.model, l.kind, l.resetAt]).sort()]));
      expect(limits.get('z-main')).toEqual([['*', 'quota_exhausted', FAR_RESET]]);
      expect(limits.get('g-alice')).toEqual([
        ['claude-opus-4-6-thinking', 'quota_exhausted', FAR_RESET],
        ['claude-sonnet-4-6', 'quota_exhausted', FAR_RESET],
      ]);
      // bob's rate limit has lifted; his spent gemini-3.1-pro-high reading is a limit until its reset.
      expect(limits.get('g-bob')).toEqual([['gemini-3.1-pro-high', 'quota_exhausted', FAR_RESET]]);
      const take = (provider: 'zai' | 'antigravity', model: string, family: string, skip: string[] = []) => {
        const got = pool.acquire({ provider, model, familyKey: `${provider}:${family}`, sessionKey: `new-${model}`, skip: new Set(skip) });
        if (got.kind !== 'lease') return got.kind;
        got.lease.release();
        return got.lease.account.label;
      };
      expect(take('zai', 'glm-4.6', 'glm')).toBe('z-capped');
      expect(take('zai', 'glm-4.6', 'glm', ['acc_0000z003'])).toBe('limited');
      const claude = ['g-bob', ...(fixture.projectFor ? ['g-erin'] : [])];
      expect(claude).toContain(take('antigravity', 'claude-sonnet-4-6', 'claude'));
      expect(take('antigravity', 'claude-sonnet-4-6', 'claude', ['acc_0000g002', 'acc_0000g005'])).toBe('limited');
      expect(take('antigravity', 'gemini-3-flash', 'gemini', ['acc_0000g001', 'acc_0000g005'])).toBe('g-bob');
    } finally {
      pool.stop();
      db.close();
    }
  });

  test('its usage totals are what they were: requests, errors, cancelled, failovers, tokens', () => {
    const db = openDatabase(copyOf(file));
    try {
      const rows = summarizeUsage(db, 0, 'account').map((r) => [r.key, r.requests, r.errors, r.cancelled, r.failovers, r.inputTokens, r.outputTokens, r.cacheReadTokens]);
      expect(rows.sort()).toEqual([
        ['-', 1, 1, 0, 2, 0, 0, 0],
        ['g-bob', 3, 1, 0, 1, 106, 43, 1024],
        ['g-carol', 1, 0, 1, 0, 33, 5, 0],
        ['z-capped', 2, 0, 0, 1, 46, 60, 0],
      ]);
      expect(summarizeUsage(db, 0, 'model').find((r) => r.key === 'claude-opus-4-5')?.requests).toBe(1);
    } finally {
      db.close();
    }
  });

  test('what it kept for conversations (bindings, signatures) is still read', () => {
    const db = openDatabase(copyOf(file));
    try {
      const bindings = loadBindings(db, 0, 10).map((b) => [b.family, b.accountId, b.side === true]).sort();
      if (fixture.schema < 2) expect(bindings).toEqual([]);
      else expect(bindings).toEqual([['antigravity:claude', 'acc_0000g002', false], ['zai:glm', 'acc_0000z003', fixture.schema >= 3]]);
      expect(loadIssued(db, 'zai', 0, 10)).toEqual(fixture.schema >= 4 ? [123456789] : []);
      expect(loadCallSignatures(db, 0, 10)).toEqual(fixture.schema >= 5 ? [{ toolUseId: 'toolu_FAKE01', signature: 'FAKE-call-signature', minted: false }] : []);
    } finally {
      db.close();
    }
  });
});

describe('an older file with rows an account deleted by hand left behind', () => {
  // sqlite3's shell has foreign keys off: `DELETE FROM accounts …` there leaves the account's limits.
  function withOrphans(): string {
    const path = copyOf('schema-2-678a13c.db');
    const raw = new Database(path);
    raw.exec('PRAGMA foreign_keys = OFF');
    raw.exec("DELETE FROM accounts WHERE label = 'g-alice'");
    raw.close();
    return path;
  }

  test('is still brought up to date, every other account, limit and usage row as it was', () => {
    const db = openDatabase(withOrphans());
    try {
      expect(version(db)).toBe(SCHEMA_VERSION);
      expect(listAccounts(db).map((a) => a.label).sort()).toEqual(['g-bob', 'g-carol', 'g-dave', 'g-erin', 'z-capped', 'z-main', 'z-off']);
      expect(summarizeUsage(db, 0, 'provider').reduce((n, r) => n + r.requests, 0)).toBe(7);
    } finally {
      db.close();
    }
  });

  test('a migration step that itself leaves rows pointing at nothing is still refused, changing nothing', () => {
    const db = new Database(withOrphans());
    const breaks = "DELETE FROM accounts WHERE label = 'z-main'";
    expect(() => migrate(db, [...MIGRATIONS.slice(0, 2), breaks])).toThrow(new Error('migration to schema 3 left 1 row(s) pointing at nothing; nothing was changed'));
    expect(version(db)).toBe(2);
    expect(listAccounts(db)).toHaveLength(7);
    db.close();
  });
});

describe('an upgrade killed in the middle of its migration (kill -9, power cut)', () => {
  test('leaves the old file as it was, and the next start brings it up to date whole', async () => {
    const path = copyOf('schema-1-cc2e7ca.db');
    const child = Bun.spawn([process.execPath, join(import.meta.dir, '..', 'fixtures', 'upgrade', 'migrate-forever.ts'), path], { stdout: 'ignore', stderr: 'pipe' });
    // The steps before the endless one fit in SQLite's cache: pages reach the -wal once it spills,
    // well inside the one transaction that has not committed.
    const deadline = Date.now() + 30_000;
    while (!(existsSync(`${path}-wal`) && statSync(`${path}-wal`).size > 256 * 1024)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the migration never got going: ${await new Response(child.stderr).text()}`);
      await Bun.sleep(20);
    }
    child.kill('SIGKILL');
    await child.exited;

    const raw = new Database(path, { readonly: true });
    expect(version(raw)).toBe(1);
    expect(schemaOf(raw).filter((s) => s.startsWith('table ')).map((s) => s.split(' ')[1])).toEqual(['accounts', 'model_limits', 'quotas', 'settings', 'usage']);
    expect((raw.query('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check).toBe('ok');
    raw.close();

    const db = openDatabase(path);
    try {
      expect(version(db)).toBe(SCHEMA_VERSION);
      expect(listAccounts(db)).toHaveLength(7);
      expect(summarizeUsage(db, 0, 'provider').reduce((n, r) => n + r.requests, 0)).toBe(7);
    } finally {
      db.close();
    }
  }, 60_000);
});

describe('a database from a newer mcp (a downgrade)', () => {
  // `mcp backup` writes its copies in rollback mode; put back as proxy.db (README, Backups), such a
  // copy is what an older binary meets after going back a version. WAL mode is the file as that mcp
  // left it on a clean stop.
  test.each(['DELETE', 'WAL'])('in %s journal mode is refused in one line, with not a byte of it changed and no -wal or -shm left', (mode) => {
    const path = freshPath();
    openDatabase(path).close();
    const raw = new Database(path);
    raw.exec(`PRAGMA journal_mode = ${mode}`);
    raw.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    const before = readFileSync(path);
    const refusal = `database ${path} was written by a newer mcp (schema ${SCHEMA_VERSION + 1}, this one understands ${SCHEMA_VERSION}): run that newer mcp (upgrade this one); \`mcp backup\` still copies it as it is`;
    expect(() => openDatabase(path)).toThrow(new Error(refusal));
    expect(() => openForReading(path)).toThrow(new Error(refusal));
    expect(readFileSync(path).equals(before)).toBe(true);
    expect([existsSync(`${path}-wal`), existsSync(`${path}-shm`)]).toEqual([false, false]);
  });

  test('with its last changes still in its -wal (that mcp was killed) is refused without folding them into the file', () => {
    // The newer mcp's files as a kill -9 leaves them: changes committed to the -wal, none checkpointed.
    const live = freshPath();
    openDatabase(live).close();
    const writer = new Database(live);
    writer.exec('PRAGMA wal_autocheckpoint = 0');
    writer.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    writer.exec("INSERT INTO settings VALUES ('from_the_future', '1')");
    const path = freshPath();
    copyFileSync(live, path);
    copyFileSync(`${live}-wal`, `${path}-wal`);
    writer.close();
    const before = readFileSync(path);
    const wal = readFileSync(`${path}-wal`);
    expect(wal.length).toBeGreaterThan(0);
    expect(() => openDatabase(path)).toThrow(/was written by a newer mcp/);
    expect(() => openForReading(path)).toThrow(/was written by a newer mcp/);
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(readFileSync(`${path}-wal`).equals(wal)).toBe(true);
  });
});
