// Commands that only read the database (`accounts list`, `usage`, `backup`, `import --dry-run`) on
// one this process may not write: a read-only mount, or a data directory and file another user
// owns. They failed with "cannot write database" though they write nothing to it. The tests make the
// write fail for a real reason, not a seam: run as root (where chmod stops nothing), the command
// runs as another user (uid 65534, nobody) over a directory and file root owns and others may only
// read (EACCES on the -shm, and SQLITE_READONLY_DIRECTORY); run as anyone else, over a directory
// and file of its own made read-only with chmod. Either way SQLite cannot make the -shm a WAL
// database needs, the hard case.
import { afterAll, beforeEach, describe, expect, test } from 'bun:test';
import { Database } from 'bun:sqlite';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase, SCHEMA_VERSION } from '../../src/store/db.ts';
import { insertUsage } from '../../src/store/usage.ts';
import { ROOT } from '../e2e/helpers.ts';
import { FAKE_ZAI_KEY } from '../fixtures/fake-zai-key.ts';
import { usageRecord } from '../usage-record.ts';

const AS_ROOT = process.getuid?.() === 0;
const OTHER_USER = 65534;
const dirs: string[] = [];
let dataDir = '';
let dbPath = '';
/** Somewhere the command may write (a backup's destination), beside the data directory. */
let outDir = '';

beforeEach(() => {
  const top = mkdtempSync(join(tmpdir(), 'mcp-cli-readonly-'));
  dirs.push(top);
  // The other user must reach the data directory through the private temporary one.
  if (AS_ROOT) chmodSync(top, 0o755);
  dataDir = join(top, 'data');
  mkdirSync(dataDir);
  dbPath = join(dataDir, 'proxy.db');
  outDir = join(top, 'out');
  mkdirSync(outDir);
  if (AS_ROOT) chmodSync(outDir, 0o777);
});

afterAll(() => {
  for (const d of dirs) {
    // chmod back first: a read-only directory of one's own cannot be emptied.
    for (const p of [d, join(d, 'data')]) {
      try {
        chmodSync(p, 0o700);
      } catch {
        // already gone
      }
    }
    rmSync(d, { recursive: true, force: true });
  }
});

/** A database with one account and one request served, closed cleanly (no -wal or -shm left). */
function seed(opts: { schema?: number } = {}): void {
  const db = openDatabase(dbPath);
  const { account } = upsertAccount(db, { provider: 'zai', label: 'ro-key', credentials: { kind: 'api_key', apiKey: `${FAKE_ZAI_KEY}-readonly` } });
  insertUsage(db, [usageRecord({ ts: Date.now() - 60_000, accountId: account.id, clientModel: 'glm-4.7', inputTokens: 42 })]);
  if (opts.schema !== undefined) db.exec(`PRAGMA user_version = ${opts.schema}`);
  db.close();
}

/** Takes away this process's (or the other user's) right to write the data directory and the file. */
function makeUnwritable(): void {
  if (AS_ROOT) {
    chmodSync(dataDir, 0o755);
    chmodSync(dbPath, 0o644);
  } else {
    chmodSync(dbPath, 0o444);
    chmodSync(dataDir, 0o555);
  }
}

async function mcp(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const proc = Bun.spawn([process.execPath, 'run', join(ROOT, 'src', 'main.ts'), ...argv], {
    cwd: ROOT,
    // HOME where bun may keep its cache (running from source): not in the data directory watched here.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: outDir, MCP_DATA_DIR: dataDir, NO_COLOR: '1' },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    ...(AS_ROOT ? { uid: OTHER_USER, gid: OTHER_USER } : {}),
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, out, err };
}

describe('a database this process may not write', () => {
  test('`accounts list` and `usage` read it as it is, and write nothing beside it', async () => {
    seed();
    makeUnwritable();
    const before = readFileSync(dbPath);

    const list = await mcp('accounts', 'list', '--json');
    expect(list.err).toBe('');
    expect(list.code).toBe(0);
    expect((JSON.parse(list.out) as Array<{ label: string }>).map((a) => a.label)).toEqual(['ro-key']);

    const usage = await mcp('usage', '--json', '--by', 'model');
    expect(usage.err).toBe('');
    expect(usage.code).toBe(0);
    expect((JSON.parse(usage.out) as { rows: Array<{ key: string; inputTokens: number }> }).rows).toMatchObject([{ key: 'glm-4.7', inputTokens: 42 }]);

    expect(readdirSync(dataDir)).toEqual(['proxy.db']);
    expect(readFileSync(dbPath).equals(before)).toBe(true);
    // Nor is the file's mode changed (made owner-writable again, for its owner).
    expect(statSync(dbPath).mode & 0o777).toBe(AS_ROOT ? 0o644 : 0o444);
  });

  // Both only read the database, yet refused it as `accounts list` did.
  test('`backup` copies it to a place it may write, whatever its schema, and writes nothing beside it', async () => {
    seed({ schema: SCHEMA_VERSION + 1 }); // a downgrade's way out: copied as it is
    makeUnwritable();
    const copy = join(outDir, 'copy.db');
    const r = await mcp('backup', copy);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toStartWith(`backed up 1 account to ${copy}`);
    const db = new Database(copy, { readonly: true });
    try {
      expect(db.query('SELECT label FROM accounts').values()).toEqual([['ro-key']]);
    } finally {
      db.close();
    }
    expect(readdirSync(dataDir)).toEqual(['proxy.db']);
  });

  test('`accounts import --dry-run` shows what an import would do; the import itself says it cannot write', async () => {
    seed();
    makeUnwritable();
    const file = join(outDir, 'accounts.json');
    writeFileSync(file, JSON.stringify({ accounts: [{ email: 'new@example.com', source: 'oauth', provider: 'antigravity', refreshToken: 'FAKE-refresh-token-0000' }] }));
    chmodSync(file, 0o644);
    const dry = await mcp('accounts', 'import', file, '--dry-run');
    expect(dry.err).toBe('');
    expect(dry.code).toBe(0);
    expect(dry.out).toContain('dry run: 1 added');
    const real = await mcp('accounts', 'import', file);
    expect(real.code).toBe(1);
    expect(real.err).toStartWith(`mcp: cannot write database ${dbPath}`);
    expect(readdirSync(dataDir)).toEqual(['proxy.db']);
  });

  test('a command that writes still says in one line that it cannot, and why', async () => {
    seed();
    makeUnwritable();
    const r = await mcp('accounts', 'disable', 'ro-key');
    expect(r.code).toBe(1);
    expect(r.err).toStartWith(`mcp: cannot write database ${dbPath}`);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });

  test('a file this user may not even read is named as not readable, not as not writable', async () => {
    seed();
    makeUnwritable();
    chmodSync(dbPath, AS_ROOT ? 0o600 : 0o000);
    const r = await mcp('accounts', 'list');
    expect(r.code).toBe(1);
    expect(r.err).toStartWith(`mcp: cannot read database ${dbPath}: `);
    expect(r.err).toEndWith(`(${dbPath} is not readable by uid ${AS_ROOT ? OTHER_USER : process.getuid?.()}, owned by uid ${AS_ROOT ? 0 : process.getuid?.()}: change its owner or permissions)\n`);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });

  test('a schema older than this mcp reads is refused, saying what brings it up to date, and left as it is', async () => {
    seed({ schema: SCHEMA_VERSION - 1 });
    makeUnwritable();
    const before = readFileSync(dbPath);
    for (const argv of [['accounts', 'list'], ['usage']]) {
      const r = await mcp(...argv);
      expect(r.code).toBe(1);
      expect(r.out).toBe('');
      expect(r.err).toStartWith(`mcp: database ${dbPath} has schema ${SCHEMA_VERSION - 1}, older than this mcp reads (${SCHEMA_VERSION}), and cannot be brought up to date here (`);
      expect(r.err).toEndWith('run `mcp serve`, or any mcp command, once where it can write the data directory\n');
      expect(r.err.trim().split('\n')).toHaveLength(1);
    }
    expect(readFileSync(dbPath).equals(before)).toBe(true);
  });

  test('a schema a newer mcp wrote is refused as it is where the database is writable', async () => {
    seed({ schema: SCHEMA_VERSION + 1 });
    makeUnwritable();
    const r = await mcp('accounts', 'list');
    expect(r.code).toBe(1);
    expect(r.err).toStartWith(`mcp: database ${dbPath} was written by a newer mcp (schema ${SCHEMA_VERSION + 1}`);
  });
});

describe('no database made yet', () => {
  // `accounts list` made the data directory and an empty proxy.db: run first by root, that left the
  // service's own user a database it could not open.
  test('`accounts list`, `usage` and `import --dry-run` answer empty and make no directory or file', async () => {
    rmSync(dataDir, { recursive: true });
    const list = await mcp('accounts', 'list');
    expect(list).toEqual({ code: 0, out: 'no accounts yet: add one with `mcp accounts add`\n', err: '' });
    expect(JSON.parse((await mcp('accounts', 'list', '--json')).out)).toEqual([]);
    const usage = await mcp('usage', '--json');
    expect(usage.code).toBe(0);
    expect(JSON.parse(usage.out)).toMatchObject({ rows: [] });
    const file = join(outDir, 'accounts.json');
    writeFileSync(file, JSON.stringify({ accounts: [{ email: 'new@example.com', source: 'oauth', provider: 'antigravity', refreshToken: 'FAKE-refresh-token-0000' }] }));
    chmodSync(file, 0o644);
    expect((await mcp('accounts', 'import', file, '--dry-run')).out).toContain('dry run: 1 added');
    expect(readdirSync(join(dataDir, '..')).sort()).toEqual(['out']);
  });
});
