// `mcp accounts import <file>` and the once-only import from ACCOUNTS_CONFIG_PATH on first start.
import { Database } from 'bun:sqlite';
import { describe, expect, test } from 'bun:test';
import { copyFileSync, existsSync, mkdirSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { importOnFirstStart, KEPT_NEWER, KEPT_RULE } from '../../src/cli/import.ts';
import { runCaptured, useTempDataDir } from './run-cli.ts';
import { type Account, listAccounts, removeAccount, updateAccount, upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';
import { fixturePath } from '../fixtures/upgrade/build.ts';

const FIXTURES = join(import.meta.dir, '..', 'fixtures', 'legacy');
const GO = join(FIXTURES, 'go-accounts.json');
const NODE = join(FIXTURES, 'node-accounts.json');
const dataDirOf = useTempDataDir('mcp-cli-import-');

const run = (...argv: string[]) => runCaptured(argv);

function stored(): Account[] {
  const db = openDatabase(join(dataDirOf(), 'proxy.db'));
  try {
    return listAccounts(db);
  } finally {
    db.close();
  }
}

describe('mcp accounts import', () => {
  test('imports the Go file: the Google account and the Z.AI key, and says what it skipped', async () => {
    const r = await run('accounts', 'import', GO);
    expect(r.code).toBe(0);
    expect(r.out).toContain('multi-claude-proxy (Go)');
    expect(r.out).toContain('2 added, 0 updated, 0 unchanged, 2 skipped');
    expect(r.err).toContain('manual@example.com');
    expect(r.err).toContain('octocat');
    const accounts = stored();
    expect(accounts.map((a) => [a.provider, a.label]).sort()).toEqual([
      ['antigravity', 'alice@example.com'],
      ['zai', 'zai-1a2b3c4d'],
    ]);
    const alice = accounts.find((a) => a.provider === 'antigravity')!;
    expect(alice.meta.projectId).toBe('sunny-pier-12345');
  });

  test('imports a CLIProxyAPI auth file: its Google account, and again changes nothing', async () => {
    const file = join(FIXTURES, 'cpa-antigravity.json');
    const r = await run('accounts', 'import', file);
    expect(r.code).toBe(0);
    expect(r.out).toContain('CLIProxyAPI');
    expect(r.out).toContain('1 added, 0 updated, 0 unchanged, 0 skipped');
    expect(r.out + r.err).not.toContain('FAKEcpaCarol');
    expect(stored().map((a) => [a.provider, a.email, a.meta.projectId])).toEqual([['antigravity', 'carol@example.com', 'brave-otter-67890']]);
    expect((await run('accounts', 'import', file)).out).toContain('0 added, 0 updated, 1 unchanged, 0 skipped');
  });

  test("CLIProxyAPI's auth directory imports each auth file in it, and says which files it skipped", async () => {
    const dir = join(dataDirOf(), 'cli-proxy-api');
    mkdirSync(dir);
    copyFileSync(join(FIXTURES, 'cpa-antigravity.json'), join(dir, 'antigravity-carol@example.com.json'));
    copyFileSync(join(FIXTURES, 'cpa-codex.json'), join(dir, 'codex-dave@example.com.json'));
    copyFileSync(GO, join(dir, 'accounts.json'));
    writeFileSync(join(dir, 'broken.json'), '{');
    writeFileSync(join(dir, 'notes.txt'), 'not an auth file');
    const r = await run('accounts', 'import', dir);
    expect(r.code).toBe(0);
    expect(r.out).toContain('1 added, 0 updated, 0 unchanged, 3 skipped');
    expect(r.err).toContain('accounts.json: not a CLIProxyAPI auth file');
    expect(r.err).toContain('broken.json: not JSON');
    expect(r.err).toContain('codex-dave@example.com.json: provider "codex" is not supported by mcp');
    expect(stored().map((a) => a.email)).toEqual(['carol@example.com']);
    const empty = join(dataDirOf(), 'empty');
    mkdirSync(empty);
    const none = await run('accounts', 'import', empty);
    expect(none.code).toBe(1);
    expect(none.err).toBe(`mcp: ${empty}: a directory without .json files: name the accounts file\n`);
  });

  test('importing the same file twice changes nothing the second time', async () => {
    await run('accounts', 'import', GO);
    const first = stored();
    const r = await run('accounts', 'import', GO);
    expect(r.code).toBe(0);
    expect(r.out).toContain('0 added, 0 updated, 2 unchanged, 2 skipped');
    expect(stored()).toEqual(first);
  });

  test('the same email with a new refresh token updates the account instead of adding one', async () => {
    const NEW_REFRESH_TOKEN = ['1/', '/0gFAKEnewToken0123456789'].join('');
    await run('accounts', 'import', GO);
    const file = join(dataDirOf(), 'newer.json');
    writeFileSync(
      file,
      JSON.stringify({ accounts: [{ email: 'alice@example.com', source: 'oauth', provider: 'antigravity', refreshToken: NEW_REFRESH_TOKEN }] }),
    );
    // Written after the import: the file's copy is the newer one (file clocks are coarse, so said outright).
    const later = new Date(Date.now() + 60_000);
    utimesSync(file, later, later);
    const r = await run('accounts', 'import', file);
    expect(r.out).toContain('1 updated');
    const alice = stored().filter((a) => a.email === 'alice@example.com');
    expect(alice).toHaveLength(1);
    expect(alice[0]!.credentials).toEqual({ kind: 'oauth', refreshToken: NEW_REFRESH_TOKEN });
  });

  test('the same email in other capitals is the same account: a file from another tool does not duplicate it', async () => {
    await run('accounts', 'import', GO);
    const before = stored();
    const alice = before.find((a) => a.provider === 'antigravity')!;
    const file = join(dataDirOf(), 'caps.json');
    const token = (alice.credentials as { refreshToken: string }).refreshToken;
    writeFileSync(file, JSON.stringify({ accounts: [{ email: 'Alice@Example.COM', source: 'oauth', provider: 'antigravity', refreshToken: token }] }));
    const r = await run('accounts', 'import', file);
    expect(r.code).toBe(0);
    expect(r.out).toContain('0 added, 0 updated, 1 unchanged');
    expect(stored().filter((a) => a.provider === 'antigravity')).toHaveLength(1);
  });

  test('an older accounts.json does not put back a refresh token that changed here since; an account marked invalid takes it', async () => {
    await run('accounts', 'import', GO);
    const file = join(dataDirOf(), 'old.json');
    copyFileSync(GO, file);
    const written = new Date('2026-01-12T10:00:00Z');
    utimesSync(file, written, written);
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    const alice = listAccounts(db).find((a) => a.email === 'alice@example.com')!;
    updateAccount(db, alice.id, { credentials: { kind: 'oauth', refreshToken: 'FAKE-rotated-alice-0123' } });
    db.close();
    const token = () => (stored().find((a) => a.email === 'alice@example.com')!.credentials as { refreshToken: string }).refreshToken;

    const dry = await run('accounts', 'import', file, '--dry-run');
    expect(dry.out).toContain('0 added, 0 updated, 2 unchanged, 2 skipped');
    const r = await run('accounts', 'import', file);
    expect(r.code).toBe(0);
    expect(r.out).toContain('0 added, 0 updated, 2 unchanged, 2 skipped');
    expect(r.out).toContain(`unchanged alice@example.com (antigravity, ${alice.id}): ${KEPT_NEWER}`);
    expect(r.out).toContain(KEPT_RULE);
    expect(token()).toBe('FAKE-rotated-alice-0123');

    // Google refused the newer token: the file's older one is worth a try.
    const db2 = openDatabase(join(dataDirOf(), 'proxy.db'));
    updateAccount(db2, alice.id, { status: 'invalid', statusReason: 'invalid_grant' });
    db2.close();
    const again = await run('accounts', 'import', file);
    expect(again.out).toContain('0 added, 1 updated, 1 unchanged, 2 skipped');
    expect(token()).toBe('1//0gFAKEgoAliceRefreshToken0123456789');
    expect(stored().find((a) => a.email === 'alice@example.com')!.status).toBe('active');
  });

  test('an import that fails partway changes nothing: no account half of the file, none active before its disabled state', async () => {
    // Stands in for a disk that fills, or a lock held too long, at the third account of the Node file.
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    db.exec(`CREATE TRIGGER fail_third BEFORE INSERT ON accounts WHEN NEW.email = 'dave@example.com'
      BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END`);
    db.close();
    const r = await run('accounts', 'import', NODE);
    expect(r.code).toBe(1);
    expect(r.err).toContain('disk full (simulated)');
    expect(stored()).toEqual([]);
  });

  test('imports the Node file keeping disabled and needs-verification states', async () => {
    const r = await run('accounts', 'import', NODE);
    expect(r.code).toBe(0);
    expect(r.out).toContain('antigravity-claude-proxy (Node)');
    expect(r.out).toContain('3 added');
    const byEmail = new Map(stored().map((a) => [a.email, a]));
    expect(byEmail.get('bob@example.com')?.status).toBe('active');
    expect(byEmail.get('bob@example.com')?.meta).toMatchObject({ projectId: 'bob-project-777', tier: 'pro' });
    expect(byEmail.get('carol@example.com')?.status).toBe('disabled');
    expect(byEmail.get('dave@example.com')?.status).toBe('invalid');
    expect(byEmail.get('dave@example.com')?.verifyUrl).toBe('https://accounts.google.com/signin/continue?fake=1');
  });

  test('a Z.AI key already added by hand is left alone; a taken label does not block the import', async () => {
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    upsertAccount(db, { provider: 'zai', label: 'zai-1a2b3c4d', credentials: { kind: 'api_key', apiKey: 'another-zai-key-0123456789' } });
    db.close();
    const r = await run('accounts', 'import', GO);
    expect(r.out).toContain('2 added');
    const zai = stored().filter((a) => a.provider === 'zai');
    expect(zai).toHaveLength(2);
    expect(new Set(zai.map((a) => a.label)).size).toBe(2);
    const again = await run('accounts', 'import', GO);
    expect(again.out).toContain('2 unchanged');
  });

  test('--only takes one account of the file, by email or by the name the file gives it; none matching is exit 1', async () => {
    const r = await run('accounts', 'import', NODE, '--only', 'carol@example.com');
    expect(r.code).toBe(0);
    expect(r.out).toContain('1 added, 0 updated, 0 unchanged, 0 skipped');
    expect(stored().map((a) => [a.email, a.status])).toEqual([['carol@example.com', 'disabled']]);
    const zai = await run('accounts', 'import', GO, '--only', 'zai-1a2b3c4d');
    expect(zai.out).toContain('1 added');
    expect(stored().map((a) => a.label).sort()).toEqual(['carol@example.com', 'zai-1a2b3c4d']);
    const none = await run('accounts', 'import', GO, '--only', 'nobody@example.com');
    expect(none.code).toBe(1);
    expect(none.err).toBe(`mcp: ${GO}: no account "nobody@example.com" in the file (by id, label or email)\n`);
  });

  test('a newer token for an account the user disabled keeps it disabled (as a re-login does); an invalid one takes it and is back', async () => {
    expect((await run('accounts', 'import', GO)).code).toBe(0);
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    const alice = listAccounts(db).find((a) => a.email === 'alice@example.com')!;
    // Disabled long before the file below was written: the file's token is the newer one.
    updateAccount(db, alice.id, { status: 'disabled', statusReason: 'disabled by user' }, 1000);
    db.close();
    const newer = join(dataDirOf(), 'newer-accounts.json');
    const text = await Bun.file(GO).text();
    writeFileSync(newer, text.replace('1//0gFAKEgoAliceRefreshToken0123456789', '1//0gFAKEgoAliceRefreshTokenNEWER0123'));
    const r = await run('accounts', 'import', newer, '--only', 'alice@example.com');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`updated   alice@example.com (antigravity, ${alice.id}): kept disabled`);
    expect(stored().find((a) => a.id === alice.id)).toMatchObject({
      status: 'disabled',
      statusReason: 'disabled by user',
      credentials: { refreshToken: '1//0gFAKEgoAliceRefreshTokenNEWER0123' },
    });

    const db2 = openDatabase(join(dataDirOf(), 'proxy.db'));
    updateAccount(db2, alice.id, { status: 'invalid', statusReason: 'invalid_grant' }, 1000);
    db2.close();
    expect((await run('accounts', 'import', GO, '--only', 'alice@example.com')).code).toBe(0);
    expect(stored().find((a) => a.id === alice.id)).toMatchObject({ status: 'active', statusReason: null });
  });

  test('--dry-run reports the plan and writes nothing', async () => {
    const r = await run('accounts', 'import', GO, '--dry-run');
    expect(r.code).toBe(0);
    expect(r.out).toContain('would import');
    expect(r.out).toContain('dry run: 2 added');
    expect(stored()).toEqual([]);
  });

  test('--json gives counts and one line per entry', async () => {
    const r = await run('accounts', 'import', NODE, '--json');
    const body = JSON.parse(r.out) as { format: string; counts: Record<string, number>; lines: unknown[] };
    expect(body.format).toBe('node');
    expect(body.counts).toEqual({ added: 3, updated: 0, unchanged: 0, skipped: 1 });
    expect(body.lines).toHaveLength(4);
  });

  test('no secret from the file is printed', async () => {
    const r = await run('accounts', 'import', GO);
    const all = r.out + r.err;
    for (const secret of ['1//0gFAKEgoAliceRefreshToken0123456789', 'fakezaikey0123456789.GoProjectKey', 'ya29.FAKEaccessTokenOnly0123456789', 'gho_FAKEgithubToken0123456789']) {
      expect(all).not.toContain(secret);
    }
  });

  test('a missing or malformed file is one line and exit 1', async () => {
    const missing = await run('accounts', 'import', join(dataDirOf(), 'nope.json'));
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^mcp: no such file: .*nope\.json\n$/);
    const bad = join(dataDirOf(), 'bad.json');
    writeFileSync(bad, '{"hello": 1}');
    const r = await run('accounts', 'import', bad);
    expect(r.code).toBe(1);
    expect(r.err).toContain('expected {"accounts": [...]}');
  });

  test('an account listed twice in the file: the last entry counts, every run and the dry run agree', async () => {
    const file = join(dataDirOf(), 'twice.json');
    const google = (refreshToken: string) => ({ email: 'twice@example.com', source: 'oauth', provider: 'antigravity', refreshToken });
    const key = { email: 'zai-twice', provider: 'zai', apiKey: 'zai-key-listed-twice-0000' };
    writeFileSync(file, JSON.stringify({ accounts: [google('1//first'), key, key, google('1//second')] }));
    const dry = await run('accounts', 'import', file, '--dry-run');
    expect(dry.out).toContain('2 added, 0 updated, 0 unchanged, 2 skipped');
    const first = await run('accounts', 'import', file);
    expect(first.out).toContain('2 added, 0 updated, 0 unchanged, 2 skipped');
    expect(first.err).toContain('#1 (twice@example.com): listed again as #4, which is imported');
    const token = () => (stored().find((a) => a.email === 'twice@example.com')!.credentials as { refreshToken: string }).refreshToken;
    expect(token()).toBe('1//second');
    const again = await run('accounts', 'import', file);
    expect(again.out).toContain('0 added, 0 updated, 2 unchanged, 2 skipped');
    expect(token()).toBe('1//second');
  });

  test('a file saved with a byte order mark (Windows editors) is read', async () => {
    const file = join(dataDirOf(), 'bom.json');
    writeFileSync(file, `\uFEFF${JSON.stringify({ accounts: [{ email: 'zai-bom', provider: 'zai', apiKey: 'zai-key-with-bom-00000000' }] })}`);
    const r = await run('accounts', 'import', file);
    expect(r.code).toBe(0);
    expect(r.out).toContain('1 added');
  });

  test('a file saved as UTF-16 (PowerShell 5 redirection, Notepad "Unicode") is read', async () => {
    const text = JSON.stringify({ accounts: [{ email: 'zai-utf16', provider: 'zai', apiKey: 'zai-key-FAKE-utf16-000000' }] });
    const le = join(dataDirOf(), 'le.json');
    writeFileSync(le, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]));
    const r = await run('accounts', 'import', le);
    expect(r.err).toBe('');
    expect(r.out).toContain('1 added');
    const be = join(dataDirOf(), 'be.json');
    writeFileSync(be, Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(text, 'utf16le').swap16()]));
    expect((await run('accounts', 'import', be)).out).toContain('1 unchanged');
  });

  test('the file argument is required', async () => {
    const r = await run('accounts', 'import');
    expect(r.code).not.toBe(0);
  });
});

describe('mcp accounts import of a file that is no accounts file', () => {
  test('an empty file (a copy that failed halfway) is said to be empty, not an unexpected end of JSON', async () => {
    const file = join(dataDirOf(), 'accounts.json');
    writeFileSync(file, ' \n');
    const r = await run('accounts', 'import', file);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`mcp: ${file}: not JSON: the file is empty\n`);
  });

  test('a binary file (not an mcp database either) is one line saying so, not the parser\'s garbled byte', async () => {
    const file = join(dataDirOf(), 'photo.png');
    writeFileSync(file, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0xff, 0xfe, 0x80]));
    const r = await run('accounts', 'import', file);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`mcp: ${file}: not JSON: the file is binary, and an accounts file is text\n`);
    expect(stored()).toEqual([]);
  });
});

describe('mcp backup, then mcp accounts import of the copy', () => {
  /** A pool with a renamed Google account, a capped one that is disabled, and a Z.AI key. */
  function seed(): void {
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    upsertAccount(db, { provider: 'zai', label: 'team-zai', credentials: { kind: 'api_key', apiKey: 'zai-key-backup-0123456789' } });
    upsertAccount(db, { provider: 'antigravity', label: 'work', email: 'erin@example.com', credentials: { kind: 'oauth', refreshToken: 'fake-refresh-erin-0123456789' }, meta: { projectId: 'erin-p' } });
    const { account } = upsertAccount(db, { provider: 'antigravity', email: 'finn@example.com', credentials: { kind: 'oauth', refreshToken: 'fake-refresh-finn-0123456789' }, meta: { maxConcurrent: 2 } });
    updateAccount(db, account.id, { status: 'disabled', statusReason: 'disabled by hand' });
    db.close();
  }

  test('the copy brings every account back into an empty data directory: labels, credentials, state and settings', async () => {
    seed();
    const backup = await run('backup', '--json');
    expect(backup.code).toBe(0);
    const { path, accounts } = JSON.parse(backup.out) as { path: string; accounts: number };
    expect(path).toMatch(/\/backups\/proxy-\d{8}-\d{6}\.db$/);
    expect(accounts).toBe(3);
    const before = stored();

    process.env.MCP_DATA_DIR = join(dataDirOf(), 'elsewhere');
    const r = await run('accounts', 'import', path);
    expect(r.code).toBe(0);
    expect(r.out).toContain('mcp database');
    expect(r.out).toContain('3 added, 0 updated, 0 unchanged, 0 skipped');
    const after = stored();
    const shape = (a: Account) => [a.provider, a.label, a.email, a.status, a.statusReason, a.credentials, a.meta];
    const byLabel = (x: Account, y: Account) => x.label.localeCompare(y.label);
    expect(after.sort(byLabel).map(shape)).toEqual(before.sort(byLabel).map(shape));
    const again = await run('accounts', 'import', path);
    expect(again.out).toContain('0 added, 0 updated, 3 unchanged, 0 skipped');
  });

  test('a Z.AI key disabled or marked invalid in the copy (one an older mcp made) comes back so, not in rotation', async () => {
    // The copy: a proxy.db as mcp cc2e7ca (schema 1) left it, with a disabled key and a working one.
    const copy = join(dataDirOf(), 'old-copy.db');
    copyFileSync(fixturePath('schema-1-cc2e7ca.db'), copy);
    const raw = new Database(copy);
    raw.exec("UPDATE accounts SET status = 'invalid', status_reason = '1000: authentication failed' WHERE label = 'z-capped'");
    raw.close();
    const plan = await run('accounts', 'import', copy, '--dry-run');
    expect(plan.out).toMatch(/added\s+z-off \(zai\): imported as disabled/);
    const r = await run('accounts', 'import', copy);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/added\s+z-off \(zai, acc_[0-9a-f]{8}\): imported as disabled/);
    const byLabel = new Map(stored().map((a) => [a.label, a]));
    expect(byLabel.get('z-off')).toMatchObject({ status: 'disabled', statusReason: 'disabled by user' });
    expect(byLabel.get('z-capped')).toMatchObject({ status: 'invalid', statusReason: '1000: authentication failed', meta: { maxConcurrent: 2 } });
    expect(byLabel.get('z-main')).toMatchObject({ status: 'active' });
  });

  test('into a pool that has moved on: a login changed since the copy keeps its token, a removed account comes back, a taken label gets a new one', async () => {
    seed();
    const { path } = JSON.parse((await run('backup', join(dataDirOf(), 'copy.db'), '--json')).out) as { path: string };
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    const erin = listAccounts(db).find((a) => a.email === 'erin@example.com')!;
    // A minute on, so the change is later than the copy's row even on the same millisecond.
    updateAccount(db, erin.id, { credentials: { kind: 'oauth', refreshToken: 'fake-refresh-erin-newer-0123' }, label: 'erin-renamed' }, Date.now() + 60_000);
    removeAccount(db, 'team-zai');
    removeAccount(db, 'finn@example.com');
    upsertAccount(db, { provider: 'zai', label: 'finn@example.com', credentials: { kind: 'api_key', apiKey: 'zai-key-other-0123456789' } });
    db.close();
    const r = await run('accounts', 'import', path);
    expect(r.code).toBe(0);
    expect(r.out).toContain('2 added, 0 updated, 1 unchanged, 0 skipped');
    expect(r.out).toContain(`erin-renamed (antigravity, ${erin.id}): ${KEPT_NEWER}`);
    const now = stored();
    expect(now.find((a) => a.email === 'erin@example.com')).toMatchObject({ label: 'erin-renamed', credentials: { refreshToken: 'fake-refresh-erin-newer-0123' } });
    expect(now.find((a) => a.label === 'team-zai')?.credentials).toEqual({ kind: 'api_key', apiKey: 'zai-key-backup-0123456789' });
    expect(now.find((a) => a.email === 'finn@example.com')).toMatchObject({ label: 'finn@example.com-2', status: 'disabled', meta: { maxConcurrent: 2 } });
  });

  test('backup into a directory that does not exist says so, without naming a temporary file', async () => {
    seed();
    const target = join(dataDirOf(), 'no-such-dir', 'copy.db');
    const r = await run('backup', target);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`mcp: cannot write the backup ${target}: the directory ${join(dataDirOf(), 'no-such-dir')} does not exist\n`);
    // Named with a trailing slash, it is a directory too (as for cp), not a file called "".
    const dir = `${join(dataDirOf(), 'no-such-dir')}/`;
    const slash = await run('backup', dir);
    expect(slash.code).toBe(1);
    expect(slash.err).toBe(`mcp: cannot write the backup into ${dir}: the directory ${join(dataDirOf(), 'no-such-dir')} does not exist\n`);
  });

  test('backup refuses to overwrite without --force, and says where it wrote without printing a secret', async () => {
    seed();
    const target = join(dataDirOf(), 'copy.db');
    const first = await run('backup', target);
    expect(first.code).toBe(0);
    expect(first.out).toContain(`backed up 3 accounts to ${target}`);
    for (const s of ['zai-key-backup-0123456789', 'fake-refresh-erin-0123456789']) expect(first.out + first.err).not.toContain(s);
    const second = await run('backup', target);
    expect(second.code).toBe(1);
    expect(second.err).toBe(`mcp: ${target} already exists (--force replaces it)\n`);
    expect((await run('backup', target, '--force')).code).toBe(0);
  });
});

describe('first-start import from ACCOUNTS_CONFIG_PATH', () => {
  test('imports the file once and remembers it; later starts leave the accounts alone', () => {
    const file = join(dataDirOf(), 'accounts.json');
    copyFileSync(GO, file);
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    const lines: string[] = [];
    const logLine = (level: string, line: string) => lines.push(`${level}: ${line}`);
    try {
      const first = importOnFirstStart(db, file, logLine);
      expect(first?.counts.added).toBe(2);
      expect(lines.join('\n')).toContain('imported accounts from');
      expect(lines.join('\n')).toContain('warn: import skipped #4 (octocat)');
      // The user removes an imported account; a restart must not bring it back.
      db.query("DELETE FROM accounts WHERE provider = 'zai'").run();
      expect(importOnFirstStart(db, file, logLine)).toBeNull();
      expect(listAccounts(db).map((a) => a.provider)).toEqual(['antigravity']);
    } finally {
      db.close();
    }
  });

  test('no path, or a path with no file yet, imports nothing and does not remember it', () => {
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    const lines: string[] = [];
    try {
      expect(importOnFirstStart(db, null, (_l, line) => lines.push(line))).toBeNull();
      const file = join(dataDirOf(), 'later.json');
      expect(importOnFirstStart(db, file, (_l, line) => lines.push(line))).toBeNull();
      expect(lines).toEqual([expect.stringContaining('does not exist')]);
      copyFileSync(NODE, file);
      expect(importOnFirstStart(db, file, () => {})?.counts.added).toBe(3);
    } finally {
      db.close();
    }
  });

  test('a broken file is a warning, not a failed start', () => {
    const file = join(dataDirOf(), 'broken.json');
    writeFileSync(file, 'not json');
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    const lines: string[] = [];
    try {
      expect(importOnFirstStart(db, file, (level, line) => lines.push(`${level}: ${line}`))).toBeNull();
      expect(lines).toEqual([expect.stringMatching(/^warn: could not import ACCOUNTS_CONFIG_PATH: .*not JSON/)]);
    } finally {
      db.close();
    }
  });
});

describe('import of something that is no accounts file', () => {
  // /dev/zero was read until memory ran out: the command never ended.
  test.skipIf(!existsSync('/dev/zero'))('a device is refused at once, naming what to give', async () => {
    const r = await runCaptured(['accounts', 'import', '/dev/zero']);
    expect(r.code).toBe(1);
    expect(r.err).toBe('mcp: /dev/zero is a device, not an accounts file: name the accounts.json, auth file or backup to import\n');
  }, 5000);

  test('a file far larger than any accounts file is refused before it is read', async () => {
    const big = join(dataDirOf(), 'huge.log');
    writeFileSync(big, '');
    truncateSync(big, 65 * 1024 * 1024);
    const r = await runCaptured(['accounts', 'import', big]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`mcp: ${big} is 65 MB, far too large for an accounts file: name the accounts.json, auth file or backup to import\n`);
  });
});

describe('an accounts file whose key or token no upstream would take', () => {
  // Imported, such an account failed every call (a header cannot carry the character, Google refuses the token).
  test('the entry is skipped with the reason, the others imported, and the secret never printed', async () => {
    const file = join(dataDirOf(), 'accounts.json');
    const key = `FAKE${'0'.repeat(28)}.FAKEzaiSecretPart`;
    writeFileSync(
      file,
      JSON.stringify({
        accounts: [
          { provider: 'zai', apiKey: `\u201c${key}\u201d` },
          { provider: 'antigravity', email: 'zw@example.com', refreshToken: `1//FAKE\u200brefresh` },
          { provider: 'zai', apiKey: key },
        ],
      }),
    );
    const r = await runCaptured(['accounts', 'import', file]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('1 added, 0 updated, 0 unchanged, 2 skipped');
    expect(r.err).toContain('skipped   #1: its apiKey holds a space or a character no key has (a curly quote, a non-ASCII one)');
    expect(r.err).toContain('skipped   #2 (zw@example.com): its refresh token holds a space or a character no token has (a curly quote, a non-ASCII one)');
    expect(r.out + r.err).not.toContain('FAKEzaiSecretPart');
  });
});
