// The CLI as a person (or a script) uses it: a real `mcp` child process, a private data dir, no TTY.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type FakeZai, startFakeZai } from '../fakes/zai.ts';
import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { findAccount, updateAccount } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';
import { cleanupTempDirs, MCP_FROM_SOURCE, mcpEnv, runMcp, tempDir, zaiEnv } from './helpers.ts';

const KEY = 'zai-test-key-for-cli-0123456789';
const OTHER = 'zai-other-key-000000000000';
/** Accepted when added, refused afterwards (its quota answer says so). */
const REVOKED = 'zai-revoked-later-key-00000000';
let zai: FakeZai;

beforeAll(() => {
  zai = startFakeZai({ keys: [KEY, OTHER, REVOKED] });
});
afterAll(async () => {
  await zai.stop();
  cleanupTempDirs();
});

describe('mcp accounts lifecycle against a fake Z.AI', () => {
  test('add, list (table and JSON), verify, disable, enable, remove', async () => {
    const env = mcpEnv(tempDir(), zaiEnv(zai));

    const add = await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'team'], { env });
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    expect(add.stdout).toMatch(/^added acc_[0-9a-f]{8} \(team\)/);
    expect(add.stdout).not.toContain(KEY);
    const id = /acc_[0-9a-f]{8}/.exec(add.stdout)![0];

    const table = await runMcp(['accounts', 'list'], { env });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`${id}\\s+team\\s+zai\\s+active`));

    const json = await runMcp(['accounts', 'list', '--json'], { env });
    const rows = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    expect(rows).toEqual([expect.objectContaining({ id, label: 'team', provider: 'zai', status: 'active' })]);
    expect(json.stdout).not.toContain(KEY);

    const verify = await runMcp(['accounts', 'verify'], { env });
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(new RegExp(`^ok\\s+${id}\\s+team\\s+zai`));
    expect(zai.requests.some((r) => r.key === KEY)).toBe(true);

    expect((await runMcp(['accounts', 'disable', 'team'], { env })).code).toBe(0);
    expect((await runMcp(['accounts', 'list'], { env })).stdout).toMatch(/team\s+zai\s+disabled\s+disabled by user/);
    expect((await runMcp(['accounts', 'enable', id], { env })).code).toBe(0);
    expect((await runMcp(['accounts', 'list'], { env })).stdout).toMatch(/team\s+zai\s+active/);

    const remove = await runMcp(['accounts', 'remove', 'team'], { env });
    expect(remove.code).toBe(0);
    expect(remove.stdout).toContain(`removed ${id}`);
    expect(JSON.parse((await runMcp(['accounts', 'list', '--json'], { env })).stdout)).toEqual([]);
  });

  test('verify reports a rejected key and exits 1', async () => {
    const env = mcpEnv(tempDir(), zaiEnv(zai));
    expect((await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', REVOKED, '--label', 'bad'], { env })).code).toBe(0);
    zai.setQuota({ success: false, msg: 'token expired or incorrect', code: 401 }, { key: REVOKED });
    const r = await runMcp(['accounts', 'verify', 'bad'], { env });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^FAIL\s+acc_[0-9a-f]{8}\s+bad\s+zai/);
    expect(r.stderr).toBe('mcp: 1 of 1 account failed verification\n');
    expect(r.stdout + r.stderr).not.toContain(REVOKED);
  });

  test('--api-key - reads the key from stdin, so it stays out of argv and the shell history', async () => {
    const env = mcpEnv(tempDir(), zaiEnv(zai));
    const r = await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', '-', '--label', 'piped'], { env, stdin: `${KEY}\r\n` });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^added acc_[0-9a-f]{8} \(piped\): zai key zai-…6789/);
    const empty = await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', '-'], { env, stdin: '' });
    expect(empty.code).toBe(2);
    expect(empty.stderr).toBe('mcp: --api-key - reads the key from stdin, but stdin gave none\n');
  });

  test('--refresh-token - with nothing on stdin names the refresh token it wanted, not a key', async () => {
    const env = mcpEnv(tempDir(), zaiEnv(zai));
    const r = await runMcp(['accounts', 'add', '--provider', 'antigravity', '--refresh-token', '-'], { env, stdin: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('mcp: --refresh-token - reads the refresh token from stdin, but stdin gave none\n');
  });

  test('add refuses a key Z.AI does not know: exit 1, nothing stored, the key never printed', async () => {
    const env = mcpEnv(tempDir(), zaiEnv(zai));
    const wrong = 'zai-wrong-key-000000000000';
    const r = await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', wrong], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^mcp: Z\.AI refused the key zai-…0000 \(.*\); it was not added\n$/);
    expect(r.stdout + r.stderr).not.toContain(wrong);
    expect(JSON.parse((await runMcp(['accounts', 'list', '--json'], { env })).stdout)).toEqual([]);
  });

  test('verify puts an account marked invalid back in rotation once it passes; a disabled one stays disabled', async () => {
    const dir = tempDir();
    const env = mcpEnv(dir, zaiEnv(zai));
    await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'fixed'], { env });
    const db = openDatabase(join(dir, 'proxy.db'));
    try {
      const acc = findAccount(db, 'fixed')!;
      updateAccount(db, acc.id, { status: 'invalid', statusReason: '1113: insufficient balance' });
      const r = await runMcp(['accounts', 'verify'], { env });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('was invalid: 1113: insufficient balance; back in rotation');
      expect(findAccount(db, 'fixed')).toMatchObject({ status: 'active', statusReason: null });
      updateAccount(db, acc.id, { status: 'disabled', statusReason: 'disabled by user' });
      expect((await runMcp(['accounts', 'verify'], { env })).code).toBe(0);
      expect(findAccount(db, 'fixed')!.status).toBe('disabled');
    } finally {
      db.close();
    }
  });

  test('a concurrency cap given at add, changed with set, shown in list --json; a bad value is exit 2', async () => {
    const env = mcpEnv(tempDir(), zaiEnv(zai));
    const add = await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'capped', '--max-concurrent', '2'], { env });
    expect(add.code).toBe(0);
    const cap = async () => (JSON.parse((await runMcp(['accounts', 'list', '--json'], { env })).stdout) as Array<{ maxConcurrent: unknown }>)[0]!.maxConcurrent;
    expect(await cap()).toBe(2);

    const one = await runMcp(['accounts', 'set', 'capped', '--max-concurrent', '1'], { env });
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/\(capped\): at most 1 request at once/);
    expect(await cap()).toBe(1);
    const table = (await runMcp(['accounts', 'list'], { env })).stdout;
    expect(table).toContain('MAX CONC.');
    expect(table).toMatch(/capped\s+zai\s+active\s.*\s1\s+-\s*$/m);
    expect((await runMcp(['accounts', 'set', 'capped', '--max-concurrent', '0'], { env })).stdout).toContain('no concurrency cap');
    expect(await cap()).toBe(0);
    expect((await runMcp(['accounts', 'set', 'capped', '--max-concurrent', 'default'], { env })).stdout).toContain('MAX_CONCURRENT_PER_ACCOUNT applies');
    expect(await cap()).toBeNull();

    // Adding the same key again with a cap changes only the cap.
    const again = await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--max-concurrent', '3'], { env });
    expect(again.stdout).toContain('already added');
    expect(again.stdout).toContain('at most 3 requests at once');
    expect(await cap()).toBe(3);

    const bad = await runMcp(['accounts', 'set', 'capped', '--max-concurrent', 'lots'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('mcp: --max-concurrent must be a whole number from 0 (no cap) to 10000, or "default", got "lots"\n');
    const nothing = await runMcp(['accounts', 'set', 'capped'], { env });
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toBe('mcp: nothing to set: give --label, --max-concurrent or --project\n');
    const missing = await runMcp(['accounts', 'set', 'nobody', '--max-concurrent', '1'], { env });
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('nobody');
  });

  test('set --label renames an account; a taken or id-shaped label is refused and nothing changes', async () => {
    const env = mcpEnv(tempDir(), zaiEnv(zai));
    await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', KEY, '--label', 'old-name'], { env });
    await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', OTHER, '--label', 'taken'], { env });
    const labels = async () => (JSON.parse((await runMcp(['accounts', 'list', '--json'], { env })).stdout) as Array<{ label: string }>).map((a) => a.label).sort();

    const renamed = await runMcp(['accounts', 'set', 'old-name', '--label', 'new-name', '--max-concurrent', '2'], { env });
    expect(renamed.code).toBe(0);
    expect(renamed.stdout).toMatch(/^acc_[0-9a-f]{8}: label old-name -> new-name\nacc_[0-9a-f]{8} \(new-name\): at most 2 requests at once\n$/);
    expect(await labels()).toEqual(['new-name', 'taken']);

    const clash = await runMcp(['accounts', 'set', 'new-name', '--label', 'taken'], { env });
    expect(clash.code).toBe(1);
    expect(clash.stderr).toBe('mcp: an account labelled "taken" already exists\n');
    const idShaped = await runMcp(['accounts', 'set', 'new-name', '--label', 'acc_0123abcd'], { env });
    expect(idShaped.code).toBe(2);
    expect(idShaped.stderr).toBe('mcp: --label must not look like an account id, got "acc_0123abcd"\n');
    expect(await labels()).toEqual(['new-name', 'taken']);
  });

  test('a missing flag without a TTY is an error naming the flag (exit 2)', async () => {
    const r = await runMcp(['accounts', 'add', '--provider', 'zai'], { env: mcpEnv(tempDir()) });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('mcp: --api-key is required for --provider zai\n');
  });
});

describe('mcp serve refuses bad configuration with one line', () => {
  test('without PROXY_API_KEY it exits non-zero and says how to set it', async () => {
    const r = await runMcp(['serve'], { env: mcpEnv(tempDir()) });
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toStartWith('mcp: PROXY_API_KEY is not set: export PROXY_API_KEY=');
  });

  const bad: Array<[string, Record<string, string>, string[], string]> = [
    ['PORT=70000', { PORT: '70000' }, [], 'PORT'],
    ['--port 70000', {}, ['--port', '70000'], '--port'],
    ['SOFT_LIMIT_THRESHOLD=abc', { SOFT_LIMIT_THRESHOLD: 'abc' }, [], 'SOFT_LIMIT_THRESHOLD'],
    ['SOFT_LIMIT_THRESHOLD=1.5', { SOFT_LIMIT_THRESHOLD: '1.5' }, [], 'SOFT_LIMIT_THRESHOLD'],
    ['--soft-limit abc', {}, ['--soft-limit', 'abc'], '--soft-limit'],
  ];
  for (const [name, extra, args, variable] of bad) {
    test(`${name} is refused naming ${variable}`, async () => {
      const r = await runMcp(['serve', ...args], { env: mcpEnv(tempDir(), { PROXY_API_KEY: 'k-123456', ...extra }) });
      // A bad flag is a wrong invocation (2), as in every command; a bad variable is a configuration error (1).
      expect(r.code).toBe(args.length ? 2 : 1);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toStartWith(`mcp: ${variable} must be`);
    });
  }

  test('a port already in use is one clear line, exit 1', async () => {
    const blocker = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('busy') });
    try {
      const r = await runMcp(['serve'], {
        env: mcpEnv(tempDir(), { PROXY_API_KEY: 'k-123456', PORT: String(blocker.port), BIND_ADDRESS: '127.0.0.1' }),
      });
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n').at(-1)).toBe(
        `mcp: port ${blocker.port} on 127.0.0.1 is already in use (choose another with --port or PORT)`,
      );
    } finally {
      blocker.stop(true);
    }
  });
});

describe('a data directory this user may not write', () => {
  // As root (CI here), drop to nobody with setpriv against a root-owned 0700 directory; as anyone
  // else, take write permission away from a directory of one's own.
  function lockedOut(): { dir: string; bin: string[]; uid: number } {
    const dir = tempDir();
    const root = process.getuid?.() === 0;
    if (root && Bun.which('setpriv')) {
      chmodSync(dir, 0o700);
      return { dir, bin: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...MCP_FROM_SOURCE], uid: 65534 };
    }
    chmodSync(dir, 0o500);
    return { dir, bin: [...MCP_FROM_SOURCE], uid: process.getuid?.() ?? -1 };
  }

  test('serve says which directory, which uid, who owns it and what to do, in one line', async () => {
    const { dir, bin, uid } = lockedOut();
    const owner = statSync(dir).uid;
    const r = await runMcp(['serve'], { env: mcpEnv(dir, { PROXY_API_KEY: 'k-123456', PORT: '0' }), bin });
    chmodSync(dir, 0o700);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      `mcp: cannot open database ${join(dir, 'proxy.db')}: unable to open database file (the directory ${dir} is not writable by uid ${uid}, owned by uid ${owner}: change its owner or permissions, or point MCP_DATA_DIR elsewhere)`,
    ]);
  });

  test('with LOG_FORMAT=json, serve reports the same failure as one JSON line at level fatal', async () => {
    const { dir, bin, uid } = lockedOut();
    const r = await runMcp(['serve'], { env: mcpEnv(dir, { PROXY_API_KEY: 'k-123456', PORT: '0', LOG_FORMAT: 'json' }), bin });
    chmodSync(dir, 0o700);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(line).toEqual({ time: expect.any(String), level: 'fatal', msg: expect.stringContaining(`is not writable by uid ${uid}`) });
    expect(line.msg).toStartWith(`mcp: cannot open database ${join(dir, 'proxy.db')}: `);
  });

  test('a data directory that cannot be created names the nearest one that exists', async () => {
    const { dir, bin, uid } = lockedOut();
    const owner = statSync(dir).uid;
    // A command that stores accounts (the others make no directory: they find none).
    const r = await runMcp(['accounts', 'import', join(dir, 'accounts.json')], { env: mcpEnv(dir, { MCP_DATA_DIR: join(dir, 'a', 'b') }), bin });
    chmodSync(dir, 0o700);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toStartWith(`mcp: cannot create data directory ${join(dir, 'a', 'b')}: `);
    expect(lines[0]).toEndWith(`(the directory ${dir} is not writable by uid ${uid}, owned by uid ${owner}: change its owner or permissions, or point MCP_DATA_DIR elsewhere)`);
  });
});

describe('mcp --version and --help', () => {
  test('--version prints the version and the commit', async () => {
    const r = await runMcp(['--version'], { env: mcpEnv(tempDir()) });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^mcp \d+\.\d+\.\d+\S* \([0-9a-z]+\)\n$/);
  });

  const commands: Array<[string[], string]> = [
    [[], 'serve'],
    [['serve'], '--soft-limit <threshold>'],
    [['accounts'], 'verify'],
    [['accounts', 'add'], '--refresh-token <token>'],
    [['accounts', 'list'], '--json'],
    [['accounts', 'remove'], '<account>'],
    [['accounts', 'verify'], '[account]'],
    [['accounts', 'enable'], '<account>'],
    [['accounts', 'disable'], '<account>'],
    [['accounts', 'set'], '--max-concurrent'],
  ];
  for (const [path, expected] of commands) {
    test(`mcp ${[...path, '--help'].join(' ')} describes the command`, async () => {
      const r = await runMcp([...path, '--help'], { env: mcpEnv(tempDir()) });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: ${['mcp', ...path].join(' ')}`);
      expect(r.stdout).toContain(expected);
    });
  }
});
