import { afterEach, beforeEach, describe, expect, test } from 'bun:test';
import { closeSync, existsSync, mkdtempSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeError, runCli } from '../../src/cli/main.ts';
import { captureIo, UsageError } from '../../src/cli/output.ts';
import { ConfigError } from '../../src/config.ts';
import { upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase, StoreError } from '../../src/store/db.ts';
import { VERSION } from '../../src/version.ts';
import { useTempDataDir } from './run-cli.ts';
import { FAKE_ZAI_KEY, FAKE_ZAI_KEY_ID, FAKE_ZAI_KEY_SECRET } from '../fixtures/fake-zai-key.ts';

let restore: (() => void) | null = null;
afterEach(() => {
  restore?.();
  restore = null;
});

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  restore = captureIo(
    (s) => {
      out += s;
    },
    (s) => {
      err += s;
    },
  );
  const code = await runCli(argv);
  restore();
  restore = null;
  return { code, out, err };
}

describe('runCli', () => {
  test('--version prints the package version and a commit', async () => {
    const r = await run(['--version']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`^mcp ${VERSION.replace(/\./g, '\\.')} \\([0-9a-z]+\\)\\n$`));
  });

  test('--help lists the commands and exits 0', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('serve');
    expect(r.out).toContain('accounts');
  });

  test('help for a subcommand shows its own options', async () => {
    const r = await run(['accounts', 'add', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('Usage: mcp accounts add');
    expect(r.out).toContain('--api-key <key>');
    expect(r.out).toContain('--no-browser');
  });

  // `mcp help` was an unknown command; people type it (git, go and npm answer it).
  test.each([
    ['help', '--help'],
    ['help accounts', 'accounts --help'],
    ['accounts help', 'accounts --help'],
    ['help accounts add', 'accounts add --help'],
    ['accounts help add', 'accounts add --help'],
  ])('`mcp %s` prints what `mcp %s` prints, exit 0', async (asked, flag) => {
    const expected = await run(flag.split(' '));
    expect(expected.code).toBe(0);
    expect(await run(asked.split(' '))).toEqual(expected);
  });

  test('`mcp help <what is no command>` is the unknown-command usage error, naming where to look', async () => {
    expect(await run(['help', 'acounts'])).toEqual({ code: 2, out: '', err: 'mcp: unknown command "acounts" (see `mcp --help`)\n' });
    expect(await run(['help', 'accounts', 'ad'])).toEqual({ code: 2, out: '', err: 'mcp: unknown command "accounts ad" (see `mcp accounts --help`)\n' });
  });

  test('an unknown command is a usage error (exit 2) with one line', async () => {
    const r = await run(['acounts']);
    expect(r.code).toBe(2);
    expect(r.err).toBe('mcp: unknown command "acounts" (see `mcp --help`)\n');
  });

  test('an unknown option is refused, naming it', async () => {
    const r = await run(['accounts', 'list', '--jsn']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown option --jsn');
  });

  test('a missing positional argument is a usage error', async () => {
    const r = await run(['accounts', 'remove']);
    expect(r.code).toBe(2);
    expect(r.err.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.err).toStartWith('mcp: ');
  });

  test('a refusal quoting a setting that holds PROXY_API_KEY or GOOGLE_CLIENT_SECRET by mistake masks it', async () => {
    const proxyKey = ['FAKE', 'proxy', 'key', 'pasted', 'twice'].join('-');
    const clientSecret = ['FAKE', 'GOCSPX', 'client', 'secret'].join('-');
    const vars = { PROXY_API_KEY: `other-key,${proxyKey}`, GOOGLE_CLIENT_SECRET: clientSecret, PORT: proxyKey, ZAI_BASE_URL: clientSecret };
    const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
    Object.assign(process.env, vars);
    try {
      const r = await run(['serve']);
      expect(r.code).toBe(1);
      expect(r.err).toContain('PORT must be a whole number, got "***"');
      expect(r.err).toContain('ZAI_BASE_URL must be an http(s) URL, got "***"');
      expect(r.err).not.toContain(proxyKey);
      expect(r.err).not.toContain(clientSecret);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});

describe('describeError', () => {
  const cases = [
    ['ConfigError', new ConfigError('PORT must be between 0 and 65535, got 70000'), 1],
    ['StoreError', new StoreError('cannot open database /x: denied'), 1],
    ['any Error', new Error('boom'), 1],
    ['UsageError', new UsageError('--provider is required'), 2],
  ] as const;
  for (const [name, err, code] of cases) {
    test(`${name} gives exit code ${code}`, () => {
      expect(describeError(err).code).toBe(code);
    });
  }

  test('keeps only the first line of a message and masks secrets in it', () => {
    const key = ['sk', 'FAKEabcdefghijklmnop'].join('-');
    const { message } = describeError(new Error(`upstream said Bearer ${key}\nat stack line`));
    expect(message).not.toContain(key);
    expect(message).not.toContain('stack');
  });

  test('treats citty argument errors as usage errors', () => {
    const e = new Error('Missing required positional argument: ACCOUNT');
    e.name = 'CLIError';
    expect(describeError(e).code).toBe(2);
  });
});

describe('what a command does not take is a usage error (exit 2), not silently ignored', () => {
  useTempDataDir('mcp-main-');
  const savedKey = process.env.PROXY_API_KEY;
  beforeEach(() => {
    delete process.env.PROXY_API_KEY;
  });
  afterEach(() => {
    if (savedKey !== undefined) process.env.PROXY_API_KEY = savedKey;
  });

  test('an extra argument', async () => {
    expect(await run(['serve', 'now'])).toEqual({ code: 2, out: '', err: 'mcp: unexpected argument "now" (see `mcp serve --help`)\n' });
    expect(await run(['accounts', 'list', 'extra'])).toEqual({ code: 2, out: '', err: 'mcp: unexpected argument "extra" (see `mcp accounts list --help`)\n' });
    expect((await run(['accounts', 'remove', 'a', 'b'])).err).toBe('mcp: unexpected argument "b" (see `mcp accounts remove --help`)\n');
  });

  test('a Z.AI key pasted without --api-key is refused without being echoed', async () => {
    const r = await run(['accounts', 'add', '--provider', 'zai', FAKE_ZAI_KEY]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('unexpected argument');
    expect(r.err).not.toContain(FAKE_ZAI_KEY_ID);
    expect(r.err).not.toContain(FAKE_ZAI_KEY_SECRET);
  });

  test('a value for an on/off option other than true or false', async () => {
    expect(await run(['serve', '--fallback=maybe'])).toEqual({
      code: 2,
      out: '',
      err: 'mcp: --fallback is on or off: give it alone, or =true / =false, not "maybe" (see `mcp serve --help`)\n',
    });
    expect((await run(['accounts', 'list', '--json=yes'])).code).toBe(2);
  });

  // citty said "Missing required positional argument: ACCOUNT", and took a valued option given last as
  // "" (`accounts add --provider zai --label` then complained about --api-key, not --label).
  test('a missing argument, or an option left without its value, is named with where to look', async () => {
    expect(await run(['accounts', 'remove'])).toEqual({
      code: 2,
      out: '',
      err: 'mcp: missing <account>: Account id or label (see `mcp accounts remove --help`)\n',
    });
    expect(await run(['accounts', 'add', '--provider', 'zai', '--label'])).toEqual({
      code: 2,
      out: '',
      err: 'mcp: --label needs a value: --label <name> (see `mcp accounts add --help`)\n',
    });
    expect((await run(['accounts', 'add', '--label', '--provider', 'zai'])).err).toBe(
      'mcp: --label needs a value: --label <name> (see `mcp accounts add --help`)\n',
    );
    expect((await run(['serve', '--soft-limit'])).err).toBe(
      'mcp: --soft-limit needs a value: --soft-limit <threshold> (see `mcp serve --help`)\n',
    );
  });

  // `mcp --port 8080 serve` said 'unknown command "8080"', and `mcp accounts --json list` printed the
  // table, the --json dropped without a word.
  test('an option before the command word it belongs to is refused, naming it', async () => {
    expect(await run(['--port', '8080', 'serve'])).toEqual({
      code: 2,
      out: '',
      err: 'mcp: unknown option --port (options go after the command, e.g. `mcp serve --port`; see `mcp --help`)\n',
    });
    expect(await run(['accounts', '--json', 'list'])).toEqual({
      code: 2,
      out: '',
      err: 'mcp: unknown option --json (options go after the command, e.g. `mcp accounts list --json`; see `mcp accounts --help`)\n',
    });
    expect((await run(['--help', 'serve'])).code).toBe(0);
  });

  // citty read `-p=9000` as the port "=9000".
  test('a short option with = takes the value after it, as the long form does', async () => {
    process.env.PROXY_API_KEY = 'k-FAKE-main';
    try {
      expect(await run(['serve', '-p=70000'])).toEqual({ code: 2, out: '', err: 'mcp: --port must be between 0 and 65535, got 70000\n' });
    } finally {
      delete process.env.PROXY_API_KEY;
    }
  });

  test('=true and =false are still understood', async () => {
    expect((await run(['accounts', 'list', '--json=true'])).out).toBe('[]\n');
    expect((await run(['accounts', 'list', '--json=false'])).out).not.toBe('[]\n');
  });
});

describe('output the system cannot take', () => {
  const main = join(import.meta.dir, '..', '..', 'src', 'main.ts');

  // /dev/full: every write fails with ENOSPC, as `> file` on a full disk does (Linux; macOS has none).
  test.skipIf(!existsSync('/dev/full'))('a full disk behind `> file` is exit 1 with one line, not exit 0 with nothing written', async () => {
    const fd = openSync('/dev/full', 'w');
    try {
      const env = { ...process.env, MCP_DATA_DIR: mkdtempSync(join(tmpdir(), 'mcp-cli-out-')) };
      const p = Bun.spawn([process.execPath, main, '--help'], { stdout: fd, stderr: 'pipe', env });
      expect(await p.exited).toBe(1);
      expect(await new Response(p.stderr).text()).toBe('mcp: cannot write the output: ENOSPC: no space left on device, write\n');
    } finally {
      closeSync(fd);
    }
  });

  test('a reader that stops early (`| head -1`) is no failure: exit 0, nothing on stderr', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-cli-out-'));
    // Enough accounts that the list outgrows a pipe's buffer, so writes go on after the reader left.
    const db = openDatabase(join(dir, 'proxy.db'));
    for (let i = 0; i < 1500; i++) {
      upsertAccount(db, { provider: 'zai', label: `pipe-${i}`, credentials: { kind: 'api_key', apiKey: `zai-FAKE-${String(i).padStart(24, '0')}` } });
    }
    db.close();
    const p = Bun.spawn([process.execPath, main, 'accounts', 'list', '--json'], { stdout: 'pipe', stderr: 'pipe', env: { ...process.env, MCP_DATA_DIR: dir } });
    const reader = p.stdout.getReader();
    await reader.read();
    await reader.cancel();
    expect(await p.exited).toBe(0);
    expect(await new Response(p.stderr).text()).toBe('');
  });
});
