import { describe, expect, test } from 'bun:test';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JsonLogError, UsageError } from '../../src/cli/output.ts';
import { installStrayErrorGuards, listenFailure, listeningLine, maskAccountsAddedLater, serve, serveFlags, sighupIgnored, stopSignals } from '../../src/cli/serve.ts';
import { configureLog, log, redact } from '../../src/log.ts';
import { createPool } from '../../src/pool/pool.ts';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { createApp, startServer } from '../../src/server/app.ts';
import { upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';

/**
 * What serve writes to stdout and stderr, together: serve sets its own log reporters, so what
 * reaches the streams is what the user sees. `restore` puts the streams and the log back.
 */
function captureOutput(): { text(): string; restore(): void } {
  let out = '';
  const writes = { err: process.stderr.write, out: process.stdout.write };
  const capture = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  process.stderr.write = capture;
  process.stdout.write = capture;
  return {
    text: () => out,
    restore: () => {
      process.stderr.write = writes.err;
      process.stdout.write = writes.out;
      configureLog({ format: 'pretty' });
    },
  };
}

describe('serveFlags', () => {
  test('passes only the flags that were given', () => {
    expect(serveFlags({})).toEqual({});
  });
  test('maps --port, --debug and --fallback', () => {
    expect(serveFlags({ port: '9000', debug: true, fallback: true })).toEqual({ port: '9000', debug: true, fallback: true });
  });
  test('--no-soft-limit (citty: soft-limit=false) turns soft limits off', () => {
    const flags = serveFlags({ 'soft-limit': false });
    expect(flags).toEqual({ noSoftLimit: true });
    expect(loadConfig({ PROXY_API_KEY: 'k' }, flags).softLimitEnabled).toBe(false);
  });
  test('--soft-limit 0.35 beats SOFT_LIMIT_THRESHOLD', () => {
    const flags = serveFlags({ 'soft-limit': '0.35' });
    expect(loadConfig({ PROXY_API_KEY: 'k', SOFT_LIMIT_THRESHOLD: '0.1' }, flags).softLimitThreshold).toBe(0.35);
  });
  test('--port without a value is a usage error', () => {
    expect(() => serveFlags({ port: '' })).toThrow(UsageError);
  });
  test('--soft-limit without a threshold (bare, or followed by another option) is a usage error, not ignored', () => {
    expect(() => serveFlags({ 'soft-limit': '' })).toThrow(new UsageError('--soft-limit needs a threshold, e.g. --soft-limit 0.3 (--no-soft-limit turns soft limits off)'));
    expect(() => serveFlags({ 'soft-limit': '--debug' })).toThrow(UsageError);
  });
});

describe('serve refuses bad configuration before opening anything', () => {
  test('without PROXY_API_KEY it says how to set it', async () => {
    await expect(serve({}, { MCP_DATA_DIR: '/nonexistent/never-created' })).rejects.toThrow(/PROXY_API_KEY is not set: export/);
  });
  test('a port out of range names PORT', async () => {
    await expect(serve({}, { PROXY_API_KEY: 'k', PORT: '70000' })).rejects.toThrow(/^PORT must be between/);
  });
  test('a threshold above 1 names --soft-limit', async () => {
    const err = await serve({ softLimit: '1.5' }, { PROXY_API_KEY: 'k' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toContain('--soft-limit');
  });
  // README: with LOG_FORMAT=json a container's whole output parses as JSON, refusals included.
  test('with LOG_FORMAT=json a bad setting is refused as a JSON line (keeping its exit code)', async () => {
    const err = await serve({}, { PROXY_API_KEY: 'k', PORT: '70000', LOG_FORMAT: 'json' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JsonLogError);
    expect((err as JsonLogError).inner).toBeInstanceOf(ConfigError);
    const flag = await serve({ port: 'abc' }, { PROXY_API_KEY: 'k', LOG_FORMAT: ' JSON ' }).catch((e: unknown) => e);
    expect((flag as JsonLogError).inner).toBeInstanceOf(UsageError);
  });
  // A bad flag value is a wrong invocation (exit 2) as in every other command; a bad variable stays 1.
  test('a bad --port value is a usage error, a bad PORT a configuration error', async () => {
    await expect(serve({ port: 'abc' }, { PROXY_API_KEY: 'k' })).rejects.toBeInstanceOf(UsageError);
    const env = await serve({}, { PROXY_API_KEY: 'k', PORT: 'abc' }).catch((e: unknown) => e);
    expect(env).toBeInstanceOf(ConfigError);
    expect(env).not.toBeInstanceOf(UsageError);
  });
});

describe('MODEL_MAP / FALLBACK_MAP that is JSON but not an object', () => {
  // A JSON array or null was taken for a file name: "cannot read [1,2]: ENOENT: no such file…".
  test('is named as the wrong JSON, not looked for as a file', async () => {
    for (const [value, got] of [['["glm-4.7"]', 'an array'], ['null', 'null'], ['"glm-4.7"', '"glm-4.7"']]) {
      const err = (await serve({}, { PROXY_API_KEY: 'k', FALLBACK_MAP: value }).catch((e: unknown) => e)) as Error;
      expect(err.message).toBe(`FALLBACK_MAP must be a JSON object of strings (model -> model), got ${got}`);
    }
  });

  test('a path that names no file says so in words, with what to give instead', async () => {
    const err = (await serve({}, { PROXY_API_KEY: 'k', MODEL_MAP: '/nonexistent/map.json' }).catch((e: unknown) => e)) as Error;
    expect(err.message).toBe('MODEL_MAP: cannot read /nonexistent/map.json: there is no such file (give a JSON object of strings, or a path to one)');
  });
});

describe('an outbound proxy setting Bun cannot use', () => {
  // Taken as it was, every Google token refresh and upstream call failed with "connection failed: ENOTFOUND".
  test('is refused at start, naming the variable and never its password', async () => {
    for (const [name, value, shown] of [
      ['HTTPS_PROXY', 'socks5://user:FAKEsecret@proxy.example:1080', ' (a socks5 address)'],
      ['http_proxy', 'not a proxy', ''],
    ] as const) {
      // A server that started anyway stays on loopback, with its data in a directory of its own.
      const data = mkdtempSync(join(tmpdir(), 'mcp-serve-proxy-'));
      const env = { PROXY_API_KEY: 'k', BIND_ADDRESS: '127.0.0.1', PORT: '0', MCP_DATA_DIR: data, [name]: value };
      const err = (await serve({}, env).catch((e: unknown) => e)) as Error;
      rmSync(data, { recursive: true, force: true });
      expect(err.message).toBe(
        `${name} must be an http:// or https:// proxy address, such as http://proxy.example:3128${shown}; unset it for mcp if it is meant for other programs`,
      );
      expect(err.message).not.toContain('FAKEsecret');
    }
  });

  test('http://, https:// and a bare host:port (which Bun takes as http) are accepted', () => {
    for (const value of ['http://user:FAKEsecret@proxy.example:3128', 'https://proxy.example', 'proxy.example:3128']) {
      expect(loadConfig({ PROXY_API_KEY: 'k', HTTPS_PROXY: value }).upstreamHttpClient).toBe('fetch');
    }
  });
});

describe('a PROXY_API_KEY no client can send', () => {
  // Taken, it made a server that answered every client 401 "invalid x-api-key", whatever it sent.
  test('curly quotes or a non-ASCII character are refused at start, without echoing the key', async () => {
    for (const [keys, which] of [
      ['\u201cFAKE-proxy-key-0123456789\u201d', 'PROXY_API_KEY'],
      ['FAKE-proxy-key-0123456789,FAKE-cl\u00e9-0123456789', 'key 2 of PROXY_API_KEY'],
    ] as const) {
      const data = mkdtempSync(join(tmpdir(), 'mcp-serve-key-'));
      const err = (await serve({}, { PROXY_API_KEY: keys, BIND_ADDRESS: '127.0.0.1', PORT: '0', MCP_DATA_DIR: data }).catch((e: unknown) => e)) as Error;
      rmSync(data, { recursive: true, force: true });
      expect(err.message).toBe(`${which} holds a character no client can send in a header (a curly quote, a non-ASCII one, perhaps from where it was copied): use plain ASCII`);
      expect(err.message).not.toContain('FAKE');
    }
  });
});

describe('serve on a port another mcp already serves', () => {
  test('is refused with the port-in-use line (no silent sharing of the port)', async () => {
    const env = { PROXY_API_KEY: 'k-123456', BIND_ADDRESS: '127.0.0.1', PORT: '0' };
    const config = loadConfig(env);
    const ops = { health: () => ({}), accountLimits: () => ({}), accountLimitsTable: () => '', refresh: async () => ({}), metrics: () => '' };
    const gateway = { dispatch: async () => { throw new Error('unused'); }, listModels: () => [], getModel: () => undefined, imageModel: () => null, drawsImages: () => null };
    const first = createApp({ config, gateway, ops } as unknown as Parameters<typeof createApp>[0]);
    const port = startServer(config, first).port!;
    const data = mkdtempSync(join(tmpdir(), 'mcp-serve-port-'));
    let started = false;
    try {
      const second = serve({}, { ...env, PORT: String(port), MCP_DATA_DIR: data });
      // Without the fix the second server starts and waits for a signal: stop it rather than hang.
      const timer = setTimeout(() => {
        started = true;
        process.emit('SIGTERM', 'SIGTERM');
      }, 3000);
      const err = await second.then(() => null, (e: unknown) => e);
      clearTimeout(timer);
      expect(started).toBe(false);
      expect((err as Error | null)?.message).toBe(`port ${port} on 127.0.0.1 is already in use (choose another with --port or PORT)`);
    } finally {
      first.stop(true);
      rmSync(data, { recursive: true, force: true });
    }
  });
});

describe('a stray error in a running server', () => {
  test('an unhandled rejection or uncaught exception is one log line, no stack, and the process lives on', () => {
    const lines: string[] = [];
    log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
    const before = [process.listenerCount('unhandledRejection'), process.listenerCount('uncaughtException')];
    const uninstall = installStrayErrorGuards();
    try {
      process.emit('unhandledRejection', new Error('write failed'), Promise.resolve());
      process.emit('uncaughtException', new TypeError('x is undefined'));
    } finally {
      uninstall();
      configureLog({ format: 'pretty' });
    }
    expect(lines).toEqual([
      'error: unhandled rejection: write failed (a bug: please report it)',
      'error: uncaught exception: x is undefined (a bug: please report it)',
    ]);
    expect([process.listenerCount('unhandledRejection'), process.listenerCount('uncaughtException')]).toEqual(before);
  });
});

describe('serve on a damaged database', () => {
  test('names the file and the newest copy to go back to, as the README says', async () => {
    const data = mkdtempSync(join(tmpdir(), 'mcp-serve-damaged-'));
    try {
      const path = join(data, 'proxy.db');
      const db = openDatabase(path);
      for (const label of ['a', 'b', 'c']) upsertAccount(db, { provider: 'zai', label, credentials: { kind: 'api_key', apiKey: `zai-key-${label}-0123456789` } });
      db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
      db.close();
      // A damaged disk: the page after the header (the accounts table) is garbage, the header is fine.
      const fd = openSync(path, 'r+');
      writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, 4096);
      closeSync(fd);
      mkdirSync(join(data, 'backups'));
      writeFileSync(join(data, 'backups', 'proxy-20261201-100000.db'), 'a copy');
      const err = await serve({}, { PROXY_API_KEY: 'k-123456', BIND_ADDRESS: '127.0.0.1', PORT: '0', MCP_DATA_DIR: data }).catch((e: unknown) => e);
      expect((err as Error).message).toBe(
        `database ${path} is not usable: database disk image is malformed; the newest copy of it is ${join(data, 'backups', 'proxy-20261201-100000.db')} (README, Backups: how to put it back)`,
      );
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });
});

describe('a listen that fails says why in words', () => {
  const err = (code: string, message: string) => Object.assign(new Error(message), { code });
  test('each cause, one line naming what to change', () => {
    expect(listenFailure('127.0.0.1', 8080, err('EADDRINUSE', 'Failed to start server. Is port 8080 in use?')).message).toBe(
      'port 8080 on 127.0.0.1 is already in use (choose another with --port or PORT)',
    );
    expect(listenFailure('nosuchhost.invalid', 8080, err('ENOENT', 'ENOENT: no such file or directory, listen')).message).toBe(
      'cannot listen on nosuchhost.invalid:8080: the host name nosuchhost.invalid has no address (BIND_ADDRESS; 0.0.0.0 for every interface, 127.0.0.1 for this machine only)',
    );
    expect(listenFailure('192.0.2.1', 8080, err('EADDRNOTAVAIL', 'EADDRNOTAVAIL: address not available, listen')).message).toBe(
      'cannot listen on 192.0.2.1:8080: 192.0.2.1 is not an address of this machine (BIND_ADDRESS; 0.0.0.0 for every interface, 127.0.0.1 for this machine only)',
    );
    expect(listenFailure('0.0.0.0', 80, err('EACCES', 'EACCES: permission denied, listen')).message).toBe(
      'cannot listen on 0.0.0.0:80: permission denied (ports below 1024 need privileges; choose another with --port or PORT)',
    );
    expect(listenFailure('0.0.0.0', 8080, err('EWHAT', 'something odd')).message).toBe('cannot listen on 0.0.0.0:8080: something odd');
  });

  test('serve on an address this machine does not have', async () => {
    const data = mkdtempSync(join(tmpdir(), 'mcp-serve-bind-'));
    try {
      // 192.0.2.0/24 is TEST-NET-1: documentation only, never assigned to an interface.
      const e = await serve({}, { PROXY_API_KEY: 'k-123456', BIND_ADDRESS: '192.0.2.1', PORT: '0', MCP_DATA_DIR: data }).catch((x: unknown) => x);
      expect((e as Error).message).toBe(
        'cannot listen on 192.0.2.1:0: 192.0.2.1 is not an address of this machine (BIND_ADDRESS; 0.0.0.0 for every interface, 127.0.0.1 for this machine only)',
      );
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });
});

describe('secrets of accounts added while the server runs', () => {
  test('are masked in log lines from the moment the pool picks the account up', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-serve-secrets-'));
    const path = join(dir, 'proxy.db');
    const db = openDatabase(path);
    const cli = openDatabase(path);
    try {
      const pool = createPool({ db, now: () => Date.now(), defaultCooldownSec: 60, softLimitThreshold: null });
      pool.sync();
      maskAccountsAddedLater(pool);
      // Not shaped like any pattern the log knows: only registering it can mask it.
      const key = ['later', 'added', 'FAKE', 'key'].join('-');
      upsertAccount(cli, { provider: 'zai', label: 'later', credentials: { kind: 'api_key', apiKey: key } });
      expect(pool.sync()).toBe(true);
      expect(redact(`Z.AI echoed ${key}`)).toBe('Z.AI echoed ***');
    } finally {
      cli.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// Browsers refuse http://0.0.0.0 (Chrome and Safari block it as a private-network address), so the
// dashboard link of a server on every interface, the default, led nowhere when clicked.
describe('the listening banner', () => {
  test('names the address bound, and a dashboard link a browser on this machine can open', () => {
    expect(listeningLine('0.0.0.0', 8080, 2)).toBe('mcp listening on http://0.0.0.0:8080 (2 accounts); dashboard: http://127.0.0.1:8080/dashboard');
    expect(listeningLine('::', 8080, 1)).toBe('mcp listening on http://[::]:8080 (1 account); dashboard: http://[::1]:8080/dashboard');
    expect(listeningLine('127.0.0.1', 9000, 0)).toBe('mcp listening on http://127.0.0.1:9000 (0 accounts); dashboard: http://127.0.0.1:9000/dashboard');
    expect(listeningLine('fd00::5', 80, 3)).toBe('mcp listening on http://[fd00::5]:80 (3 accounts); dashboard: http://[fd00::5]:80/dashboard');
  });
});

describe('serve with a short key on every interface', () => {
  test('warns once it listens, without quoting the key', async () => {
    const data = mkdtempSync(join(tmpdir(), 'mcp-serve-exposed-'));
    const output = captureOutput();
    try {
      const key = 'k-FAKE-short';
      const running = serve({}, { PROXY_API_KEY: key, BIND_ADDRESS: '0.0.0.0', PORT: '0', MCP_DATA_DIR: data });
      const t0 = Date.now();
      while (!output.text().includes('[warn]') && Date.now() - t0 < 5000) await Bun.sleep(20);
      process.emit('SIGTERM', 'SIGTERM');
      await running;
      const out = output.text();
      const warned = out.split('\n').filter((l) => l.includes('[warn]') && l.includes('BIND_ADDRESS=127.0.0.1'));
      expect(warned).toHaveLength(1);
      expect(out).toContain('mcp listening on http://0.0.0.0:');
      expect(out).not.toContain(key);
    } finally {
      output.restore();
      rmSync(data, { recursive: true, force: true });
    }
  });
});

describe('a stop signal while serve starts up', () => {
  // Without a handler yet, SIGTERM killed the process where it stood (exit 143, not a word).
  test('stops it before it listens, with one line, and leaves no handler behind', async () => {
    const data = mkdtempSync(join(tmpdir(), 'mcp-serve-early-stop-'));
    const before = stopSignals().map((s) => process.listenerCount(s));
    const output = captureOutput();
    try {
      const starting = serve({}, { PROXY_API_KEY: 'k-FAKE-0123456789abcdef', BIND_ADDRESS: '127.0.0.1', PORT: '0', MCP_DATA_DIR: data });
      // serve has opened the database and waits for its parts to load: the moment a restart's SIGTERM lands.
      process.emit('SIGTERM', 'SIGTERM');
      const stopped = await Promise.race([starting.then(() => true), Bun.sleep(5000).then(() => false)]);
      if (!stopped) process.emit('SIGTERM', 'SIGTERM');
      await starting;
      expect(stopped).toBe(true);
      expect(output.text()).toContain('SIGTERM during start-up: stopped before serving');
      expect(output.text()).not.toContain('mcp listening');
      expect(stopSignals().map((s) => process.listenerCount(s))).toEqual(before);
    } finally {
      output.restore();
      rmSync(data, { recursive: true, force: true });
    }
  });
});

describe('the signals that stop serve gracefully', () => {
  // Ctrl+Break (SIGBREAK) and closing the console window (SIGHUP) killed mcp on Windows at once,
  // cutting streams off and leaving the database unclosed.
  test('on Windows Ctrl+Break and a closed console window stop it like Ctrl+C', () => {
    expect(stopSignals('win32')).toEqual(['SIGTERM', 'SIGINT', 'SIGBREAK', 'SIGHUP']);
  });

  test('on Linux a hang-up (terminal or SSH session closed) stops it gracefully too', () => {
    expect(stopSignals('linux', false)).toEqual(['SIGTERM', 'SIGINT', 'SIGHUP']);
  });

  test('SIGHUP inherited ignored (`nohup mcp serve &`), or where that cannot be told, is left alone so it survives a logout', () => {
    expect(stopSignals('linux', true)).toEqual(['SIGTERM', 'SIGINT']);
    expect(stopSignals('linux', null)).toEqual(['SIGTERM', 'SIGINT']);
    expect(stopSignals('darwin')).toEqual(['SIGTERM', 'SIGINT']);
  });

  test("SIGHUP's ignore bit is read from /proc's SigIgn mask; no /proc is unknown", () => {
    const status = (mask: string) => () => `Name:\tbun\nSigBlk:\t0000000000000000\nSigIgn:\t${mask}\nSigCgt:\t0000000000000001\n`;
    expect(sighupIgnored(status('0000000001001001'))).toBe(true);
    expect(sighupIgnored(status('0000000001001000'))).toBe(false);
    expect(sighupIgnored(() => { throw new Error('ENOENT'); })).toBeNull();
  });
});
