import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'bun:test';
import { Database } from 'bun:sqlite';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accountsTable, accountViews, askProvider, browserCommand, KEPT_REMOVAL_COPIES, quotaSummary } from '../../src/cli/accounts.ts';
import { runCaptured, useTempDataDir } from './run-cli.ts';
import { io } from '../../src/cli/output.ts';
import { listAccounts, updateAccount, upsertAccount } from '../../src/store/accounts.ts';
import { accountsInBackup } from '../../src/store/backup.ts';
import { openDatabase } from '../../src/store/db.ts';
import { listLimits, listQuotas, replaceQuotas, setLimit } from '../../src/store/limits.ts';
import { type FakeGoogle, startFakeGoogle } from '../fakes/google.ts';
import { type FakeZai, startFakeZai } from '../fakes/zai.ts';
import { FAKE_ZAI_KEY } from '../fixtures/fake-zai-key.ts';

const KEY = 'zai-key-0123456789abcdefghij';
const savedInteractive = io.interactive;
const dataDirOf = useTempDataDir('mcp-cli-accounts-');

// `accounts add` checks a key with Z.AI and reads the quota right away: against fakes, never a real host.
let zai: FakeZai;
let google: FakeGoogle;
const UPSTREAM_VARS = ['ZAI_BASE_URL', 'ZAI_QUOTA_URL', 'GOOGLE_OAUTH_TOKEN_URL', 'GOOGLE_OAUTH_AUTH_URL', 'GOOGLE_USERINFO_URL', 'ANTIGRAVITY_ENDPOINTS'];
const savedUpstreams = Object.fromEntries(UPSTREAM_VARS.map((k) => [k, process.env[k]]));
beforeAll(() => {
  const keys = [KEY, `${KEY}-2`, `${KEY}-other`, `${KEY}-masked`, `${FAKE_ZAI_KEY}-blip`, `${FAKE_ZAI_KEY}-lines`, ...Array.from({ length: KEPT_REMOVAL_COPIES + 2 }, (_, i) => `${KEY}-${i}`)];
  zai = startFakeZai({ keys });
  google = startFakeGoogle();
  Object.assign(process.env, {
    ZAI_BASE_URL: zai.url,
    ZAI_QUOTA_URL: zai.quotaUrl,
    GOOGLE_OAUTH_TOKEN_URL: google.tokenUrl,
    GOOGLE_OAUTH_AUTH_URL: google.authUrl,
    GOOGLE_USERINFO_URL: google.userinfoUrl,
    ANTIGRAVITY_ENDPOINTS: google.endpoints.join(','),
  });
});
afterAll(async () => {
  for (const [k, v] of Object.entries(savedUpstreams)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await Promise.all([zai.stop(), google.stop()]);
});

beforeEach(() => {
  io.interactive = () => false;
});
afterEach(() => {
  io.interactive = savedInteractive;
});

const run = (...argv: string[]) => runCaptured(argv);

function storedAccounts() {
  const db = openDatabase(join(dataDirOf(), 'proxy.db'));
  try {
    return listAccounts(db);
  } finally {
    db.close();
  }
}

describe('mcp accounts (in process, against a temporary data dir)', () => {
  test('add stores a Z.AI key and prints the id and label, never the whole key', async () => {
    const r = await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'main');
    expect(r.code).toBe(0);
    const [acc] = storedAccounts();
    expect(acc?.label).toBe('main');
    expect(acc?.credentials).toEqual({ kind: 'api_key', apiKey: KEY });
    expect(r.out).toContain(acc!.id);
    expect(r.out).toContain('main');
    expect(r.out).not.toContain(KEY);
  });

  test('adding the same key twice keeps one account', async () => {
    await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY);
    const r = await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY);
    expect(r.code).toBe(0);
    expect(r.out).toContain('already added');
    expect(storedAccounts()).toHaveLength(1);
  });

  test('a key Z.AI refuses is not added: one line naming it masked, exit 1', async () => {
    const wrong = 'zai-wrong-key-0000000000000000';
    const r = await run('accounts', 'add', '--provider', 'zai', '--api-key', wrong, '--label', 'typo');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^mcp: Z\.AI refused the key zai-…0000 .*not added\n$/);
    expect(r.err + r.out).not.toContain(wrong);
    expect(storedAccounts()).toHaveLength(0);
  });

  // The README promises it: a key added on a train or behind a proxy down for the moment is kept.
  test('when Z.AI cannot be reached the key is added with a one-line warning, exit 0, the key never printed', async () => {
    const closed = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
    const port = closed.port;
    closed.stop(true);
    const saved = process.env.ZAI_QUOTA_URL;
    process.env.ZAI_QUOTA_URL = `http://127.0.0.1:${port}/api/monitor/usage/quota/limit`;
    try {
      const r = await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'offline');
      expect(r.code).toBe(0);
      expect(r.err).toStartWith('warning: could not check the key with Z.AI (');
      expect(r.err).toContain('added anyway, `mcp accounts verify` checks it again');
      expect(r.err.split('\n').filter(Boolean)).toHaveLength(1);
      expect(r.out + r.err).not.toContain(KEY);
      expect(storedAccounts().map((a) => a.label)).toEqual(['offline']);
    } finally {
      process.env.ZAI_QUOTA_URL = saved;
    }
  });

  test('a new key with a label another account holds is refused before Z.AI is asked', async () => {
    await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'main');
    const before = zai.requests.length;
    const r = await run('accounts', 'add', '--provider', 'zai', '--api-key', `${KEY}-2`, '--label', 'main');
    expect(r.code).toBe(1);
    expect(r.err).toBe('mcp: an account labelled "main" already exists\n');
    expect(zai.requests.length).toBe(before);
  });

  test('a key with a space or line break inside is refused before any call (a paste gone wrong)', async () => {
    const before = zai.requests.length;
    for (const pasted of [`${KEY.slice(0, 10)} ${KEY.slice(10)}`, `${KEY.slice(0, 10)}\n${KEY.slice(10)}`]) {
      const r = await run('accounts', 'add', '--provider', 'zai', '--api-key', pasted);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/^mcp: the API key has a space or line break inside/);
      expect(r.err).not.toContain(KEY.slice(10));
    }
    expect(zai.requests.length).toBe(before);
    expect(storedAccounts()).toHaveLength(0);
  });

  // Stored, such a key failed every call later ("connection failed: ERR_INVALID_HEADER_VALUE", or a 431).
  test('a key with curly quotes, a zero-width character or far too long is refused before any call', async () => {
    const before = zai.requests.length;
    for (const [pasted, said] of [
      [`\u201c${KEY}\u201d`, 'holds a character no key has'],
      [`${KEY}\u200b`, 'holds a character no key has'],
      [KEY.repeat(50), `is ${KEY.length * 50} characters long`],
    ] as const) {
      const r = await run('accounts', 'add', '--provider', 'zai', '--api-key', pasted);
      expect(r.code).toBe(2);
      expect(r.err).toStartWith(`mcp: the API key ${said}`);
      expect(r.err).not.toContain(KEY.slice(10));
    }
    expect(zai.requests.length).toBe(before);
    expect(storedAccounts()).toHaveLength(0);
  });

  test('the quota is read right after a Z.AI key is added, so list shows it at once', async () => {
    const r = await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'main');
    expect(r.code).toBe(0);
    expect(r.out).toContain('pro plan');
    const [view] = JSON.parse((await run('accounts', 'list', '--json')).out) as Array<{ quotas: unknown[] }>;
    expect(view?.quotas.length).toBeGreaterThan(0);
  });

  test('the quota is read right after a Google account is added', async () => {
    const r = await run('accounts', 'add', '--provider', 'antigravity', '--refresh-token', google.refreshTokenFor('q@example.com'));
    expect(r.code).toBe(0);
    const [view] = JSON.parse((await run('accounts', 'list', '--json')).out) as Array<{ email: string; quotas: Array<{ model: string }> }>;
    expect(view?.email).toBe('q@example.com');
    expect(view?.quotas.some((q) => q.model.startsWith('claude-'))).toBe(true);
  });

  test('a quota reading refused with words that quote the access token warns without the token', async () => {
    // Some upstreams (and proxies before them) quote the Authorization header in their error.
    google.setMode({ kind: 'echo_token', status: 403 }, { rpc: 'fetchAvailableModels', times: 3 });
    const r = await run('accounts', 'add', '--provider', 'antigravity', '--refresh-token', google.refreshTokenFor('echo@example.com'));
    expect(r.code).toBe(0);
    expect(r.err).toContain('could not read the quota yet');
    const sent = google.requests.filter((q) => q.rpc === 'fetchAvailableModels' && q.email === 'echo@example.com').map((q) => q.token!);
    expect(sent.length).toBeGreaterThan(0);
    for (const token of sent) expect(r.err + r.out).not.toContain(token.slice(-16));
  });

  test('a Google account left on the shared project is discovered once by add, not again for its first quota reading', async () => {
    // Onboarding refused (an unsupported country): discovery ends on the shared project after a
    // loadCodeAssist and an onboardUser the user already waited for once.
    google.setAccount('shared@example.com', { projectId: null, ineligibleTiers: [{ reasonCode: 'UNSUPPORTED_LOCATION', reasonMessage: 'Not available in your country.', tierId: 'free-tier' }] });
    const r = await run('accounts', 'add', '--provider', 'antigravity', '--refresh-token', google.refreshTokenFor('shared@example.com'));
    expect(r.code).toBe(0);
    const mine = google.requests.filter((q) => q.email === 'shared@example.com');
    expect(mine.filter((q) => q.rpc === 'loadCodeAssist')).toHaveLength(1);
    expect(mine.filter((q) => q.rpc === 'onboardUser')).toHaveLength(1);
    const [view] = JSON.parse((await run('accounts', 'list', '--json')).out) as Array<{ quotas: unknown[] }>;
    expect(view?.quotas.length).toBeGreaterThan(0);
  });

  test('adding an account again with --label renames it rather than ignoring the label', async () => {
    await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'main');
    const again = await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'work');
    expect(again.code).toBe(0);
    expect(again.out).toContain('label main -> work');
    expect(storedAccounts().map((a) => a.label)).toEqual(['work']);

    const token = google.refreshTokenFor('relabel@example.com');
    await run('accounts', 'add', '--provider', 'antigravity', '--refresh-token', token);
    const relogin = await run('accounts', 'add', '--provider', 'antigravity', '--refresh-token', token, '--label', 'personal');
    expect(relogin.code).toBe(0);
    expect(relogin.out).toMatch(/updated acc_\w+ \(personal\)/);
    expect(storedAccounts().map((a) => a.label)).toEqual(['work', 'personal']);

    const clash = await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'personal');
    expect(clash.code).toBe(1);
    expect(clash.err).toBe('mcp: an account labelled "personal" already exists\n');
    expect(storedAccounts().map((a) => a.label)).toEqual(['work', 'personal']);
  });

  test('without a TTY a missing --provider or --api-key is a usage error naming the flag', async () => {
    const a = await run('accounts', 'add');
    expect(a.code).toBe(2);
    expect(a.err).toContain('--provider');
    const b = await run('accounts', 'add', '--provider', 'zai');
    expect(b.code).toBe(2);
    expect(b.err).toContain('--api-key');
  });

  test('a credential flag of the other provider is a usage error, not ignored for a login (and not echoed)', async () => {
    const a = await run('accounts', 'add', '--provider', 'antigravity', '--api-key', KEY);
    expect(a.code).toBe(2);
    expect(a.err).toContain('--api-key');
    expect(a.err).not.toContain(KEY);
    expect(a.out).toBe('');
    const b = await run('accounts', 'add', '--provider', 'zai', '--refresh-token', '1//0gFAKErefresh0123456789');
    expect(b.code).toBe(2);
    expect(b.err).toContain('--refresh-token');
    expect(b.err).not.toContain('0gFAKErefresh');
    expect(storedAccounts()).toHaveLength(0);
  });

  test('logging in again keeps an account the user disabled disabled, and says so', async () => {
    const token = google.refreshTokenFor('off@example.com');
    await run('accounts', 'add', '--provider', 'antigravity', '--refresh-token', token, '--label', 'off');
    await run('accounts', 'disable', 'off');
    const r = await run('accounts', 'add', '--provider', 'antigravity', '--refresh-token', token);
    expect(r.code).toBe(0);
    expect(r.out).toContain('still disabled: `mcp accounts enable off` puts it back in rotation');
    expect(storedAccounts()[0]).toMatchObject({ status: 'disabled', statusReason: 'disabled by user' });
  });

  test('logging in again keeps disabled an account imported with its e-mail in other capitals (Google answers in lower case)', async () => {
    const token = google.refreshTokenFor('caps@example.com');
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    try {
      // As an import of another tool's accounts.json stores it: the file's capitals kept.
      const { account } = upsertAccount(db, { provider: 'antigravity', email: 'Caps@Example.com', credentials: { kind: 'oauth', refreshToken: 'old-FAKE' } });
      updateAccount(db, account.id, { status: 'disabled', statusReason: 'disabled by user' });
    } finally {
      db.close();
    }
    const r = await run('accounts', 'add', '--provider', 'antigravity', '--refresh-token', token);
    expect(r.code).toBe(0);
    expect(r.out).toContain('still disabled');
    expect(storedAccounts()).toHaveLength(1);
    expect(storedAccounts()[0]).toMatchObject({ status: 'disabled', statusReason: 'disabled by user' });
  });

  test('a database damaged where the accounts are is named, with the newest copy to go back to, as serve names it', async () => {
    await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'main');
    expect((await run('backup')).code).toBe(0);
    const [copy] = readdirSync(join(dataDirOf(), 'backups'));
    const path = join(dataDirOf(), 'proxy.db');
    const db = new Database(path);
    const { rootpage } = db.query("SELECT rootpage FROM sqlite_master WHERE name = 'accounts'").get() as { rootpage: number };
    const { page_size } = db.query('PRAGMA page_size').get() as { page_size: number };
    db.close();
    // The accounts table's first page: a leaf page type whose cell count runs past the page.
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from([0x0d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 0, 8, (rootpage - 1) * page_size);
    closeSync(fd);
    const goFile = join(import.meta.dir, '..', 'fixtures', 'legacy', 'go-accounts.json');
    for (const argv of [['accounts', 'list'], ['accounts', 'disable', 'main'], ['accounts', 'import', goFile]]) {
      const r = await run(...argv);
      expect(r.code).toBe(1);
      expect(r.err).toBe(
        `mcp: database ${path} is not usable: database disk image is malformed; the newest copy of it is ${join(dataDirOf(), 'backups', copy!)} (README, Backups: how to put it back)\n`,
      );
    }
  });

  test('a label that reads as an option or holds a line break is refused (it could not be named again)', async () => {
    for (const bad of ['-x', 'two\nlines']) {
      const r = await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', bad);
      expect(r.code).toBe(2);
      expect(r.err).toStartWith('mcp: --label must not start with "-" or hold control characters');
    }
    expect(storedAccounts()).toHaveLength(0);
  });

  test('--provider google means antigravity (the help calls it "a Google (Antigravity) account")', async () => {
    const r = await run('accounts', 'add', '--provider', 'Google', '--refresh-token', google.refreshTokenFor('alias@example.com'));
    expect(r.code).toBe(0);
    expect(storedAccounts().map((a) => [a.provider, a.email])).toEqual([['antigravity', 'alias@example.com']]);
  });

  test('an unknown provider is refused', async () => {
    const r = await run('accounts', 'add', '--provider', 'openai', '--api-key', KEY);
    expect(r.code).toBe(2);
    expect(r.err).toContain('--provider must be one of antigravity, zai');
  });

  test('list prints a table and --json an array without credentials', async () => {
    await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'main');
    const table = await run('accounts', 'list');
    expect(table.code).toBe(0);
    expect(table.out).toMatch(/^ID\s+LABEL\s+PROVIDER\s+STATUS\s+REASON\s+LAST USED\s+LIMITS\s+QUOTA/);
    expect(table.out).toMatch(/main\s+zai\s+active/);
    const json = await run('accounts', 'list', '--json');
    const parsed = JSON.parse(json.out) as Array<Record<string, unknown>>;
    expect(parsed).toHaveLength(1);
    expect(parsed[0]).toMatchObject({ label: 'main', provider: 'zai', status: 'active', credential: 'zai-…ghij' });
    expect(json.out).not.toContain(KEY);
  });

  test('reset forgets the recorded limits of one account, or of all', async () => {
    await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'main');
    await run('accounts', 'add', '--provider', 'zai', '--api-key', `${KEY}-2`, '--label', 'second');
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    const now = Date.now();
    try {
      for (const a of listAccounts(db)) {
        setLimit(db, { accountId: a.id, model: 'glm-4.7', kind: 'quota_exhausted', resetAt: now + 3_600_000, reason: null, updatedAt: now });
      }
      const one = await run('accounts', 'reset', 'main');
      expect(one.code).toBe(0);
      expect(one.out).toContain('1 limit');
      expect(listLimits(db).map((l) => l.accountId)).toEqual([listAccounts(db).find((a) => a.label === 'second')!.id]);
      expect((await run('accounts', 'reset')).out).toContain('second');
      expect(listLimits(db)).toHaveLength(0);
      expect((await run('accounts', 'reset')).out).toBe('no limits or spent quota windows recorded\n');
    } finally {
      db.close();
    }
  });

  // It printed "reset acc_… (label): 2 limits cleared": which account that is, and what it no longer waits for, took `list` to find out.
  test('reset names the account as list does (label, provider, email) and says which limits it cleared', async () => {
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    const now = Date.now();
    try {
      const { account: g } = upsertAccount(db, { provider: 'antigravity', label: 'work', email: 'me@example.com', credentials: { kind: 'oauth', refreshToken: 'FAKE-refresh' } });
      const { account: z } = upsertAccount(db, { provider: 'zai', label: 'glm', credentials: { kind: 'api_key', apiKey: KEY } });
      const limit = (accountId: string, model: string, kind: 'quota_exhausted' | 'rate_limited', inMs: number) =>
        setLimit(db, { accountId, model, kind, resetAt: now + inMs, reason: null, updatedAt: now });
      limit(g.id, 'claude-sonnet-4-6', 'quota_exhausted', 3 * 3_600_000 + 60_000);
      limit(g.id, '*', 'rate_limited', 90_000);
      limit(z.id, 'glm-4.7', 'rate_limited', -60_000); // ran out already: held nothing back
      const r = await run('accounts', 'reset', 'work');
      expect(r).toEqual({
        code: 0,
        out: `reset ${g.id} work (antigravity, me@example.com): cleared 2 limits: claude-sonnet-4-6 quota_exhausted (would have reset in 3h), all models rate_limited (would have reset in 1m)\n`,
        err: '',
      });
      expect((await run('accounts', 'reset', 'glm')).out).toBe(`${z.id} glm (zai) has no limits or spent quota windows recorded\n`);
      expect(listLimits(db)).toEqual([]);
    } finally {
      db.close();
    }
  });

  test('reset also forgets spent quota readings, which would keep the account parked until the next poll; other readings stay', async () => {
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    const now = Date.now();
    try {
      const { account: g } = upsertAccount(db, { provider: 'antigravity', label: 'work', email: 'me@example.com', credentials: { kind: 'oauth', refreshToken: 'FAKE-refresh' } });
      const reading = (model: string, window: string, remainingFraction: number, inMs: number) => ({ accountId: g.id, model, window, remainingFraction, resetAt: now + inMs, fetchedAt: now });
      replaceQuotas(db, g.id, [
        reading('claude-opus-4-6-thinking', 'weekly', 0, 3 * 86_400_000 + 60_000),
        reading('gemini-3-flash', '5h', 0.5, 3_600_000),
        reading('gemini-3-pro-high', '5h', 0, -60_000), // its window is already full again
      ]);
      setLimit(db, { accountId: g.id, model: 'claude-sonnet-4-6', kind: 'rate_limited', resetAt: now + 90_000, reason: null, updatedAt: now });
      const r = await run('accounts', 'reset', 'work');
      expect(r).toEqual({
        code: 0,
        out: `reset ${g.id} work (antigravity, me@example.com): cleared 1 limit: claude-sonnet-4-6 rate_limited (would have reset in 1m); forgot 1 spent quota window: claude-opus-4-6-thinking weekly (would have reset in 3d)\n`,
        err: '',
      });
      expect(listQuotas(db).map((q) => q.model).sort()).toEqual(['gemini-3-flash', 'gemini-3-pro-high']);
      expect(listLimits(db)).toEqual([]);
      expect((await run('accounts', 'reset', 'work')).out).toBe(`${g.id} work (antigravity, me@example.com) has no limits or spent quota windows recorded\n`);
    } finally {
      db.close();
    }
  });

  test('disable and enable change the stored status; remove deletes by label', async () => {
    await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'main');
    expect((await run('accounts', 'disable', 'main')).code).toBe(0);
    expect(storedAccounts()[0]?.status).toBe('disabled');
    expect((await run('accounts', 'enable', 'main')).code).toBe(0);
    expect(storedAccounts()[0]).toMatchObject({ status: 'active', statusReason: null });
    const r = await run('accounts', 'remove', 'main');
    expect(r.code).toBe(0);
    expect(storedAccounts()).toHaveLength(0);
  });

  test('enable on an invalid account changes nothing and points at verify, keeping the verification link', async () => {
    await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'main');
    const id = storedAccounts()[0]!.id;
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    try {
      updateAccount(db, id, { status: 'invalid', statusReason: 'needs verification', verifyUrl: 'https://accounts.example.com/verify' });
    } finally {
      db.close();
    }
    const r = await run('accounts', 'enable', 'main');
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `mcp: ${id} (main) is not disabled but invalid (needs verification); \`mcp accounts verify main\` checks it now and puts it back in rotation when it passes\n`,
    );
    expect(storedAccounts()[0]).toMatchObject({ status: 'invalid', statusReason: 'needs verification', verifyUrl: 'https://accounts.example.com/verify' });
  });

  test('verify puts an invalid account that passes back in rotation, but not one disabled while it was checking', async () => {
    await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'main');
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    const id = storedAccounts()[0]!.id;
    updateAccount(db, id, { status: 'invalid', statusReason: 'plan expired' });
    // Z.AI answers the check only after the user (another `mcp accounts disable`) took the account out.
    let checks = 0;
    const slow = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(req) {
        checks++;
        updateAccount(db, id, { status: 'disabled', statusReason: 'disabled by user' });
        return fetch(zai.quotaUrl, { headers: req.headers });
      },
    });
    const saved = process.env.ZAI_QUOTA_URL;
    process.env.ZAI_QUOTA_URL = `http://127.0.0.1:${slow.port}/quota`;
    try {
      const r = await run('accounts', 'verify', 'main');
      expect(r.code).toBe(0);
    } finally {
      process.env.ZAI_QUOTA_URL = saved;
      await slow.stop(true);
      db.close();
    }
    expect(checks).toBe(1);
    expect(storedAccounts()[0]).toMatchObject({ status: 'disabled', statusReason: 'disabled by user' });
    // Without the user in between, a passing check does bring it back.
    const db2 = openDatabase(join(dataDirOf(), 'proxy.db'));
    updateAccount(db2, id, { status: 'invalid', statusReason: 'plan expired' });
    db2.close();
    const again = await run('accounts', 'verify', 'main');
    expect(again.out).toContain('back in rotation');
    expect(storedAccounts()[0]).toMatchObject({ status: 'active', statusReason: null });
  });

  test('the same key added twice at once (two terminals, two containers on one volume) is stored once', async () => {
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    // The other `add` stores the key while this one waits for Z.AI's answer.
    const slow = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(req) {
        upsertAccount(db, { provider: 'zai', label: 'first', credentials: { kind: 'api_key', apiKey: KEY } });
        return fetch(zai.quotaUrl, { headers: req.headers });
      },
    });
    const saved = process.env.ZAI_QUOTA_URL;
    process.env.ZAI_QUOTA_URL = `http://127.0.0.1:${slow.port}/quota`;
    try {
      const r = await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY);
      expect(r.code).toBe(0);
      expect(r.out).toContain('already added');
    } finally {
      process.env.ZAI_QUOTA_URL = saved;
      await slow.stop(true);
      db.close();
    }
    expect(storedAccounts().map((a) => a.label)).toEqual(['first']);
  });

  test('remove keeps a copy of the database first; the command it prints brings back that account alone', async () => {
    await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'main');
    await run('accounts', 'add', '--provider', 'zai', '--api-key', `${KEY}-other`, '--label', 'other');
    const r = await run('accounts', 'remove', 'main');
    expect(r.code).toBe(0);
    const undo = /`mcp (accounts import (\S+) --only (acc_\w+))` brings the account back/.exec(r.out);
    expect(undo?.[2]).toStartWith(join(dataDirOf(), 'backups', 'before-remove-'));
    expect(r.out).not.toContain(KEY);
    const other = await run('accounts', 'remove', 'other', '--no-backup');
    expect(other.out).not.toContain('kept at');
    expect(readdirSync(join(dataDirOf(), 'backups'))).toHaveLength(1);
    expect((await run(...undo![1]!.split(' '))).code).toBe(0);
    expect(storedAccounts().map((a) => [a.label, a.credentials])).toEqual([['main', { kind: 'api_key', apiKey: KEY }]]);
  });

  test('the command remove prints to bring an account back works pasted into a shell when the data dir has a space', async () => {
    process.env.MCP_DATA_DIR = join(dataDirOf(), 'my data');
    await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'main');
    const r = await run('accounts', 'remove', 'main');
    const undo = /`mcp (accounts import .+ --only acc_\w+)` brings the account back/.exec(r.out)![1]!;
    // What a shell makes of it, word by word.
    const words = Bun.spawnSync(['sh', '-c', `printf '%s\\n' ${undo}`]).stdout.toString().trimEnd().split('\n');
    expect(words[2]).toStartWith(join(dataDirOf(), 'my data', 'backups', 'before-remove-'));
    expect((await run(...words)).code).toBe(0);
    const db = openDatabase(join(dataDirOf(), 'my data', 'proxy.db'));
    try {
      expect(listAccounts(db).map((a) => a.label)).toEqual(['main']);
    } finally {
      db.close();
    }
  });

  test('when the copy cannot be made the account is not removed, and the message says how to go without', async () => {
    await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'main');
    writeFileSync(join(dataDirOf(), 'backups'), 'a file where the directory would be');
    const r = await run('accounts', 'remove', 'main');
    expect(r.code).toBe(1);
    // Said as `mcp backup` says it, not as the bare "EEXIST: file already exists, mkdir …".
    const dir = join(dataDirOf(), 'backups');
    expect(r.err).toBe(`mcp: cannot write the backup into ${dir}: ${dir} is a file, not a directory (move it away); main was not removed (--no-backup removes it without a copy)\n`);
    expect(storedAccounts()).toHaveLength(1);
    expect((await run('accounts', 'remove', 'main', '--no-backup')).code).toBe(0);
    expect(storedAccounts()).toHaveLength(0);
  });

  test(`only the newest ${KEPT_REMOVAL_COPIES} copies taken before removals are kept; other backups are never pruned`, async () => {
    const dir = join(dataDirOf(), 'backups');
    mkdirSync(dir);
    writeFileSync(join(dir, 'proxy-20200101-000000.db'), 'a copy the user made');
    for (let i = 0; i < KEPT_REMOVAL_COPIES + 2; i++) {
      await run('accounts', 'add', '--provider', 'zai', '--api-key', `${KEY}-${i}`, '--label', `k${i}`);
      expect((await run('accounts', 'remove', `k${i}`)).code).toBe(0);
    }
    const files = readdirSync(dir);
    expect(files.filter((f) => f.startsWith('before-remove-'))).toHaveLength(KEPT_REMOVAL_COPIES);
    expect(files).toContain('proxy-20200101-000000.db');
    // Removals in the same second each got their own copy (-2, -3…), and the newest are the ones kept:
    // between them they hold every account removed last, the very last one included.
    const copies = files.filter((f) => f.startsWith('before-remove-'));
    expect(copies.some((f) => /-\d{6}-\d+\.db$/.test(f))).toBe(true);
    const held = new Set(copies.flatMap((f) => accountsInBackup(join(dir, f)).map((a) => a.label)));
    expect(held).toContain(`k${KEPT_REMOVAL_COPIES + 1}`);
    expect(held).not.toContain('k0');
  });

  test('naming an account that does not exist fails with one line, exit 1', async () => {
    for (const cmd of ['remove', 'enable', 'disable', 'verify']) {
      const r = await run('accounts', cmd, 'nobody');
      expect(r.code).toBe(1);
      expect(r.err).toBe('mcp: no account with id or label "nobody" (see `mcp accounts list`)\n');
    }
  });

  test('add --project: a Workspace account is discovered under its own project (duetProject), stored, and listed', async () => {
    google.setAccount('ws-add@example.com', { projectId: null, paidTierId: null, userProject: 'acme-cli-proj' });
    google.requests.length = 0;
    const r = await run('accounts', 'add', '--provider', 'antigravity', '--refresh-token', google.refreshTokenFor('ws-add@example.com'), '--label', 'work', '--project', 'acme-cli-proj');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('(work): Google Cloud project acme-cli-proj');
    expect(google.requests.find((q) => q.rpc === 'loadCodeAssist')?.body).toEqual({ metadata: { ideType: 'ANTIGRAVITY', duetProject: 'acme-cli-proj' } });
    expect(storedAccounts()[0]!.meta).toMatchObject({ userProject: 'acme-cli-proj', projectId: 'acme-cli-proj', projectFor: 'acme-cli-proj' });
    const [view] = JSON.parse((await run('accounts', 'list', '--json')).out) as Array<{ project: unknown }>;
    expect(view?.project).toBe('acme-cli-proj');
    expect((await run('accounts', 'list')).out).toMatch(/PROJECT[\s\S]*work\s+antigravity\s+active\s.*\sacme-cli-proj\s/);
  });

  test('add without --project for a tier that needs one: added, with a warning naming the set command', async () => {
    google.setAccount('ws-bare@example.com', { projectId: null, paidTierId: null, userProject: 'acme-bare-proj' });
    const r = await run('accounts', 'add', '--provider', 'antigravity', '--refresh-token', google.refreshTokenFor('ws-bare@example.com'), '--label', 'bare');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain('needs a Google Cloud project of its own');
    expect(r.err).toContain('`mcp accounts set bare --project <your Google Cloud project id>`');
    expect(r.err).not.toContain("project discovery failed");
    expect(r.err).not.toContain("could not read the quota");
    expect(storedAccounts()[0]!.meta.projectId).toBeUndefined();
  });

  test('set --project stores the project, --project default clears it; list shows it', async () => {
    await run('accounts', 'add', '--provider', 'antigravity', '--refresh-token', google.refreshTokenFor('set-proj@example.com'), '--label', 'g');
    const set = await run('accounts', 'set', 'g', '--project', 'my-gcp-project-1');
    expect(set.code, set.err).toBe(0);
    expect(set.out).toMatch(/^acc_[0-9a-f]{8} \(g\): Google Cloud project my-gcp-project-1\n$/);
    expect(storedAccounts()[0]!.meta.userProject).toBe('my-gcp-project-1');
    const cleared = await run('accounts', 'set', 'g', '--project', 'default');
    expect(cleared.code, cleared.err).toBe(0);
    expect(cleared.out).toContain('the Google Cloud project Google gives it');
    expect(storedAccounts()[0]!.meta.userProject).toBeNull();
    const [view] = JSON.parse((await run('accounts', 'list', '--json')).out) as Array<{ project: unknown }>;
    expect(view?.project).toBeNull();
  });

  test('set --project on an account marked invalid checks it at once under the new project, and puts it back when it passes', async () => {
    google.setAccount('ws-invalid@example.com', { projectId: null, paidTierId: null, userProject: 'acme-right-proj' });
    await run('accounts', 'add', '--provider', 'antigravity', '--refresh-token', google.refreshTokenFor('ws-invalid@example.com'), '--label', 'inv');
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    try {
      updateAccount(db, listAccounts(db)[0]!.id, { status: 'invalid', statusReason: 'PROJECT_REQUIRED: needs a project' });
    } finally {
      db.close();
    }
    const wrong = await run('accounts', 'set', 'inv', '--project', 'acme-wrong-proj');
    expect(wrong.code, wrong.err).toBe(0);
    expect(wrong.out).toContain("FAIL  acc_");
    expect(wrong.out).toContain("Google refused this account's own project acme-wrong-proj");
    expect(storedAccounts()[0]).toMatchObject({ status: 'invalid', meta: { userProject: 'acme-wrong-proj' } });
    const right = await run('accounts', 'set', 'inv', '--project', 'acme-right-proj');
    expect(right.code, right.err).toBe(0);
    expect(right.out).toContain('acme-right-proj (yours)');
    expect(right.out).toContain('back in rotation');
    expect(storedAccounts()[0]).toMatchObject({ status: 'active', meta: { userProject: 'acme-right-proj' } });
  });

  test('a malformed --project, or one for a Z.AI account, is a usage error (exit 2) and changes nothing', async () => {
    await run('accounts', 'add', '--provider', 'antigravity', '--refresh-token', google.refreshTokenFor('bad-proj@example.com'), '--label', 'g2');
    for (const bad of ['My_Project', '1abcdef', 'abc', 'x'.repeat(31), 'ends-with-']) {
      const r = await run('accounts', 'set', 'g2', '--project', bad);
      expect(r.code).toBe(2);
      expect(r.err).toBe(
        `mcp: --project must be a Google Cloud project id (6-30 lowercase letters, digits and hyphens, starting with a letter), or "default", got "${bad}"\n`,
      );
    }
    const addBad = await run('accounts', 'add', '--provider', 'antigravity', '--refresh-token', google.refreshTokenFor('bad-proj-2@example.com'), '--project', 'Nope');
    expect(addBad.code).toBe(2);
    await run('accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'z');
    const zaiSet = await run('accounts', 'set', 'z', '--project', 'my-gcp-project-3');
    expect(zaiSet.code).toBe(2);
    expect(zaiSet.err).toContain('--project is for Google (antigravity) accounts');
    const zaiAdd = await run('accounts', 'add', '--provider', 'zai', '--api-key', `${KEY}-2`, '--project', 'my-gcp-project-3');
    expect(zaiAdd.code).toBe(2);
    expect(storedAccounts().map((a) => [a.label, a.meta.userProject])).toEqual([
      ['g2', undefined],
      ['z', undefined],
    ]);
  });
});

describe('list rendering', () => {
  const viewDirs: string[] = [];
  /** A scratch database for one rendering test, removed after it. */
  const viewDb = () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-cli-view-'));
    viewDirs.push(dir);
    return openDatabase(join(dir, 'proxy.db'));
  };
  afterEach(() => {
    for (const dir of viewDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  test('counts only limits still in force and summarises the lowest quota', () => {
    const db = viewDb();
    const now = 1_800_000_000_000;
    const { account } = upsertAccount(db, { provider: 'antigravity', email: 'a@example.com', credentials: { kind: 'oauth', refreshToken: 'rt' } }, now);
    setLimit(db, { accountId: account.id, model: 'gemini-3-flash', kind: 'rate_limited', resetAt: now + 60_000, reason: null, updatedAt: now });
    setLimit(db, { accountId: account.id, model: 'claude-opus-4-6', kind: 'rate_limited', resetAt: now - 1, reason: null, updatedAt: now });
    replaceQuotas(db, account.id, [
      { accountId: account.id, model: 'gemini-3-flash', window: '', remainingFraction: 0.8, resetAt: null, fetchedAt: now },
      { accountId: account.id, model: 'claude-opus-4-6', window: '', remainingFraction: 0.25, resetAt: null, fetchedAt: now },
    ]);
    const views = accountViews(listAccounts(db), listLimits(db), listQuotas(db), now);
    db.close();
    expect(views[0]?.limits).toHaveLength(1);
    expect(views[0]?.credential).toBe('a@example.com');
    const table = accountsTable(views, now);
    expect(table).toMatch(/a@example\.com\s+antigravity\s+active\s+-\s+never\s+1\s+min 25% \(claude-opus-4-6\)/);
  });

  test('a spent quota window shows as the limit the server routes by, until its reset', () => {
    const db = viewDb();
    const now = 1_800_000_000_000;
    const { account } = upsertAccount(db, { provider: 'antigravity', email: 'c@example.com', credentials: { kind: 'oauth', refreshToken: 'rt' } }, now);
    replaceQuotas(db, account.id, [
      { accountId: account.id, model: 'claude-opus-4-6', window: 'weekly', remainingFraction: 0, resetAt: now + 3_600_000, fetchedAt: now },
      { accountId: account.id, model: 'gemini-3-flash', window: '5h', remainingFraction: 0, resetAt: now - 1, fetchedAt: now - 3_600_000 },
    ]);
    const views = accountViews(listAccounts(db), listLimits(db), listQuotas(db), now);
    expect(views[0]?.limits).toEqual([{ model: 'claude-opus-4-6', kind: 'quota_exhausted', resetAt: now + 3_600_000, reason: 'quota reading: nothing left in the weekly window' }]);
    // With AI credits the server serves it anyway: no limit to show.
    expect(accountViews(listAccounts(db), listLimits(db), listQuotas(db), now, new Set(['antigravity']))[0]?.limits).toEqual([]);
    db.close();
  });

  test('a quota window whose reset has passed reads as full, as the pool routes it, not as the last poll said', () => {
    const db = viewDb();
    const now = 1_800_000_000_000;
    const { account } = upsertAccount(db, { provider: 'antigravity', email: 'b@example.com', credentials: { kind: 'oauth', refreshToken: 'rt' } }, now);
    replaceQuotas(db, account.id, [
      { accountId: account.id, model: 'claude-opus-4-6', window: '5h', remainingFraction: 0.03, resetAt: now - 60_000, fetchedAt: now - 3_600_000 },
      { accountId: account.id, model: 'gemini-3-flash', window: '5h', remainingFraction: 0.5, resetAt: now + 60_000, fetchedAt: now - 3_600_000 },
    ]);
    const views = accountViews(listAccounts(db), listLimits(db), listQuotas(db), now);
    db.close();
    expect(views[0]?.quotas).toEqual([
      { model: 'claude-opus-4-6', window: '5h', remainingFraction: 1, resetAt: null },
      { model: 'gemini-3-flash', window: '5h', remainingFraction: 0.5, resetAt: now + 60_000 },
    ]);
    expect(accountsTable(views, now)).toContain('min 50% (gemini 5h)');
  });

  test.each([
    [[], '-'],
    [[{ remainingFraction: null }], 'unknown'],
    [[{ remainingFraction: 0.42 }], '42%'],
    [[{ remainingFraction: 0.42, window: '5h' }, { remainingFraction: 0.9, window: 'weekly' }], 'min 42% (5h)'],
    [
      [
        { model: 'claude-sonnet-4-6', remainingFraction: 1 },
        { model: 'claude-sonnet-4-6', window: 'weekly', remainingFraction: 0.03 },
        { model: 'gpt-oss-120b-medium', window: 'weekly', remainingFraction: 0.03 },
      ],
      'min 3% (claude/gpt weekly)',
    ],
  ])('quota %j reads %p', (qs, text) => {
    const records = (qs as Array<{ remainingFraction: number | null }>).map((q) => ({
      accountId: 'a',
      model: '*',
      window: '',
      resetAt: null,
      fetchedAt: 0,
      ...q,
    }));
    expect(quotaSummary(records)).toBe(text);
  });
});

describe('opening the browser', () => {
  const url = 'https://accounts.google.com/o/oauth2/v2/auth?client_id=x&redirect_uri=http%3A%2F%2Flocalhost%3A51121&state=s';

  test('on Windows the URL does not go through cmd, which would cut it at the first &', () => {
    const cmd = browserCommand('win32', url);
    expect(cmd.map((w) => w.toLowerCase())).not.toContain('cmd');
    expect(cmd.at(-1)).toBe(url);
  });

  test('macOS and Linux hand the whole URL to open / xdg-open', () => {
    expect(browserCommand('darwin', url)).toEqual(['open', url]);
    expect(browserCommand('linux', url)).toEqual(['xdg-open', url]);
  });

  // Under WSL xdg-open is seldom installed and has no browser to open anyway: the login only said
  // "open the URL yourself". Windows' opener is reachable from WSL, and takes the URL whole.
  test('under WSL the URL goes to Windows\' own opener', () => {
    expect(browserCommand('linux', url, { WSL_DISTRO_NAME: 'Ubuntu' })).toEqual(['rundll32.exe', 'url.dll,FileProtocolHandler', url]);
    expect(browserCommand('linux', url, {})).toEqual(['xdg-open', url]);
  });
});

describe('a bad --callback-port', () => {
  // It was checked only as the browser login began, after the hint for headless machines was printed.
  test('is refused on its own line before anything else is said or started', async () => {
    const saved = process.env.DISPLAY;
    delete process.env.DISPLAY;
    try {
      expect(await runCaptured(['accounts', 'add', '--provider', 'antigravity', '--callback-port', '99999'])).toEqual({
        code: 2,
        out: '',
        err: 'mcp: --callback-port must be a port number (0-65535), got "99999"\n',
      });
    } finally {
      if (saved !== undefined) process.env.DISPLAY = saved;
    }
  });
});

describe('a Google login option given for a Z.AI key', () => {
  // --refresh-token was refused, but --no-browser and --callback-port were dropped without a word.
  test('is refused, naming the option, and nothing is added', async () => {
    for (const extra of [['--refresh-token', '1//x'], ['--no-browser'], ['--callback-port', '5000']]) {
      const r = await runCaptured(['accounts', 'add', '--provider', 'zai', '--api-key', KEY, ...extra]);
      expect(r.code).toBe(2);
      expect(r.err).toStartWith(`mcp: ${extra[0]} is for --provider antigravity`);
    }
    expect((await runCaptured(['accounts', 'list', '--json'])).out).toBe('[]\n');
  });
});

// `accounts verify` or `reset` run first made an empty proxy.db: run as root before the service's
// own user (docker exec, sudo), that kept the server out of its own database.
describe('with no database made yet', () => {
  test('only `add` makes one: the other commands find no account and leave nothing behind', async () => {
    for (const argv of [['accounts', 'verify'], ['accounts', 'reset'], ['accounts', 'list']]) expect((await runCaptured(argv)).code).toBe(0);
    for (const argv of [['accounts', 'verify', 'x'], ['accounts', 'remove', 'x'], ['accounts', 'disable', 'x'], ['accounts', 'enable', 'x'], ['accounts', 'set', 'x', '--label', 'y']]) {
      expect(await runCaptured(argv)).toEqual({ code: 1, out: '', err: 'mcp: no account with id or label "x" (see `mcp accounts list`)\n' });
    }
    expect(readdirSync(dataDirOf())).toEqual([]);
    expect((await runCaptured(['accounts', 'add', '--provider', 'zai', '--api-key', KEY])).code).toBe(0);
    expect(readdirSync(dataDirOf())).toContain('proxy.db');
  });
});

describe('accounts verify', () => {
  // The verdict lines ran the provider and its detail on straight after each label, so a list of
  // accounts with labels of different lengths was a ragged column to read down.
  test('lines up its verdicts, whatever the length of each label', async () => {
    await runCaptured(['accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'a']);
    await runCaptured(['accounts', 'add', '--provider', 'zai', '--api-key', `${KEY}-2`, '--label', 'a-much-longer-label']);
    const r = await runCaptured(['accounts', 'verify']);
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(new Set(lines.map((l) => l.indexOf('zai: ')))).toHaveProperty('size', 1);
  });

  // It printed FAIL and left the account active, so `serve` went on picking it until a request failed there.
  test('marks an active account whose credentials are refused (Z.AI 401, Google invalid_grant) invalid, with the reason', async () => {
    const refused = `${FAKE_ZAI_KEY}-refused`; // a key the fake Z.AI does not know: its quota call is a 401
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    upsertAccount(db, { provider: 'zai', label: 'zk', credentials: { kind: 'api_key', apiKey: refused } });
    db.close();
    expect((await run('accounts', 'add', '--provider', 'antigravity', '--refresh-token', google.refreshTokenFor('revoked@example.com'), '--label', 'g')).code).toBe(0);
    google.setMode({ kind: 'token_invalid_grant' }, { times: 1 }); // the refresh token is revoked from now on
    const r = await run('accounts', 'verify');
    expect(r.code).toBe(1);
    expect(r.out).not.toContain(refused);
    const lines = r.out.trim().split('\n');
    expect(lines.find((l) => l.includes(' zk '))).toMatch(/^FAIL .*zai: auth: .*token expired or incorrect \(marked invalid: out of rotation until it passes again\)$/);
    expect(lines.find((l) => l.includes(' g '))).toMatch(/^FAIL .*antigravity: invalid_account: .*invalid_grant.* \(marked invalid: out of rotation until it passes again\)$/);
    const stored = Object.fromEntries(storedAccounts().map((a) => [a.label, a]));
    expect(stored.zk).toMatchObject({ status: 'invalid', statusReason: expect.stringContaining('token expired or incorrect') });
    expect(stored.g).toMatchObject({ status: 'invalid', statusReason: expect.stringContaining('invalid_grant') });
    // `accounts list` shows why.
    expect((await run('accounts', 'list')).out).toContain('invalid_grant');
  });

  test('leaves the status alone when the check fails for no fault of the credentials (5xx answer, unreachable)', async () => {
    const key = `${FAKE_ZAI_KEY}-blip`;
    await run('accounts', 'add', '--provider', 'zai', '--api-key', key, '--label', 'blip');
    zai.setQuota({ success: false, msg: 'system busy, try again later', code: 500 }, { key });
    const busy = await run('accounts', 'verify', 'blip');
    expect(busy.code).toBe(1);
    expect(busy.out).toMatch(/^FAIL .*zai: transient: .*system busy/);
    expect(busy.out).not.toContain('marked invalid');
    const saved = process.env.ZAI_QUOTA_URL;
    process.env.ZAI_QUOTA_URL = 'http://127.0.0.1:1/quota'; // nothing listens there
    try {
      const down = await run('accounts', 'verify', 'blip');
      expect(down.code).toBe(1);
      expect(down.out).not.toContain('marked invalid');
    } finally {
      process.env.ZAI_QUOTA_URL = saved;
    }
    expect(storedAccounts()[0]).toMatchObject({ status: 'active', statusReason: null });
  });

  test("leaves a Google account alone when Google refuses the OAuth client (GOOGLE_CLIENT_ID/SECRET), not the account", async () => {
    expect((await run('accounts', 'add', '--provider', 'antigravity', '--refresh-token', google.refreshTokenFor('client@example.com'), '--label', 'gc')).code).toBe(0);
    google.setMode({ kind: 'token_invalid_client' }, { times: 1 });
    const r = await run('accounts', 'verify', 'gc');
    expect(r.code).toBe(1);
    expect(r.out).toContain('GOOGLE_CLIENT_ID');
    expect(r.out).not.toContain('marked invalid');
    expect(storedAccounts()[0]).toMatchObject({ status: 'active', statusReason: null });
  });

  test('never marks an account the user disabled, whatever the verdict', async () => {
    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    upsertAccount(db, { provider: 'zai', label: 'off', credentials: { kind: 'api_key', apiKey: `${FAKE_ZAI_KEY}-refused` } });
    db.close();
    await run('accounts', 'disable', 'off');
    const r = await run('accounts', 'verify', 'off');
    expect(r.code).toBe(1);
    expect(r.out).not.toContain('marked invalid');
    expect(storedAccounts()[0]).toMatchObject({ status: 'disabled', statusReason: 'disabled by user' });
  });

  // An upstream message with line breaks split the verdict line, cut `add`'s refusal short at its
  // first line (only that reaches the terminal), and spread the stored reason over the table's rows.
  test("an upstream's message with line breaks stays on one verdict line, one error line and one table row", async () => {
    const key = `${FAKE_ZAI_KEY}-lines`;
    zai.setQuota({ success: false, msg: 'Your key\nhas been\r\n  suspended: token invalid', code: 401 }, { key });
    const refused = await run('accounts', 'add', '--provider', 'zai', '--api-key', key, '--label', 'lines');
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/^mcp: Z\.AI refused the key .* \(Z\.AI quota: Your key has been suspended: token invalid\); it was not added\n$/);

    const db = openDatabase(join(dataDirOf(), 'proxy.db'));
    upsertAccount(db, { provider: 'zai', label: 'lines', credentials: { kind: 'api_key', apiKey: key } });
    db.close();
    zai.setQuota({ success: false, msg: 'Your key\nhas been\nsuspended: coding plan expired', code: 500 }, { key });
    const r = await run('accounts', 'verify', 'lines');
    expect(r.out).toMatch(/^FAIL .* zai: invalid_account: Z\.AI quota: Your key has been suspended: coding plan expired \(marked invalid: out of rotation until it passes again\)\n$/);
    const table = (await run('accounts', 'list')).out.trim().split('\n');
    expect(table).toHaveLength(2);
    expect(table[1]).toContain('invalid  Z.AI quota: Your key has been suspended: coding plan expired  never');
  });

  test("masks a credential the upstream's answer quotes, as the server's errors do", async () => {
    const key = `${KEY}-masked`;
    await runCaptured(['accounts', 'add', '--provider', 'zai', '--api-key', key, '--label', 'a']);
    const quoted = `ya29.FAKE${'x'.repeat(20)}`;
    zai.setQuota({ success: false, msg: `token ${quoted} is not allowed here`, code: 500 }, { key });
    const r = await runCaptured(['accounts', 'verify']);
    expect(`${r.out}${r.err}`).toContain('not allowed here');
    expect(`${r.out}${r.err}`).not.toContain(quoted);
  });
});

describe('the interactive provider prompt', () => {
  test('an empty answer (Enter pressed by mistake) asks again instead of ending the command', async () => {
    const answers = ['', '  ', 'zai'];
    const asked: string[] = [];
    const got = await askProvider(async (p) => {
      asked.push(p);
      return answers.shift() ?? null;
    });
    expect(got).toBe('zai');
    expect(asked).toHaveLength(3);
  });

  test('end of input (Ctrl-D) still ends it with a usage error, not an endless prompt', async () => {
    await expect(askProvider(async () => null)).rejects.toThrow('no provider given');
  });
});

describe('an empty --refresh-token (a script whose $TOKEN is unset)', () => {
  test('is a usage error at once, not a browser login that waits for minutes', async () => {
    const asked = google.requests.length;
    for (const given of ['', '  ']) {
      const r = await run('accounts', 'add', '--provider', 'antigravity', '--refresh-token', given);
      expect(r.code).toBe(2);
      expect(r.err).toBe('mcp: --refresh-token is empty: give the token, or - to read it from stdin (without the option, a browser login starts)\n');
    }
    expect(google.requests.length).toBe(asked);
  }, 5000);
});
