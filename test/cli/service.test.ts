// `mcp service`: the generated systemd unit and launchd plist, the private environment file, and
// install/uninstall/status against a throw-away home (MCP_SERVICE_HOME), never the real one.
import { afterAll, afterEach, beforeEach, describe, expect, test } from 'bun:test';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCaptured } from './run-cli.ts';
import {
  CARRIED_VARS,
  detectPlatform,
  envFileText,
  installPlan,
  LAUNCHD_LABEL,
  launchdBusy,
  launchdPlist,
  servicePaths,
  systemdUnit,
  uninstallPlan,
} from '../../src/cli/service.ts';
import { parsePlist } from './plist.ts';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'mcp-service-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const has = (tool: string) => Bun.which(tool) !== null;

describe('the systemd user unit', () => {
  const unit = systemdUnit({ command: ['/opt/mcp dir/mcp'], envFile: '/home/u/.config/multi-claude-proxy/service.env' });

  test('runs `mcp serve` with the environment file, restarts on failure and logs to the journal', () => {
    expect(unit).toContain('ExecStart="/opt/mcp dir/mcp" serve\n');
    expect(unit).toContain('EnvironmentFile=/home/u/.config/multi-claude-proxy/service.env\n');
    expect(unit).toContain('Restart=on-failure\n');
    expect(unit).toContain('StandardOutput=journal\n');
    expect(unit).toContain('StandardError=journal\n');
    expect(unit).toContain('KillSignal=SIGTERM\n');
    expect(unit).toContain('WantedBy=default.target\n');
    expect(unit).not.toContain('PROXY_API_KEY');
  });

  test('passes systemd-analyze verify where it is installed (else the sections are checked by hand)', () => {
    const dir = tmp();
    const envFile = join(dir, 'service.env');
    writeFileSync(envFile, envFileText({ PROXY_API_KEY: 'k-0123456789' }), { mode: 0o600 });
    // A real executable, so verify can check ExecStart.
    const text = systemdUnit({ command: [process.execPath], envFile });
    const file = join(dir, 'mcp.service');
    writeFileSync(file, text);
    if (has('systemd-analyze')) {
      const r = Bun.spawnSync(['systemd-analyze', 'verify', file], { stdout: 'pipe', stderr: 'pipe' });
      const complaints = `${r.stdout.toString()}${r.stderr.toString()}`
        .split('\n')
        .filter((l) => l.includes(file));
      expect(complaints).toEqual([]);
      expect(r.exitCode).toBe(0);
    } else {
      // No systemd here: at least every line is a section header, a comment or Key=Value in a known section.
      let section = '';
      for (const line of text.split('\n')) {
        if (line === '' || line.startsWith('#')) continue;
        const header = /^\[(Unit|Service|Install)\]$/.exec(line);
        if (header) section = header[1]!;
        else expect(line).toMatch(/^[A-Z][A-Za-z]+=\S/);
      }
      expect(section).toBe('Install');
    }
  });

  test('a home and a binary with spaces: the environment file is named bare (systemd does not unquote it) and still read', () => {
    const dir = join(tmp(), 'my home');
    mkdirSync(dir);
    const envFile = join(dir, 'service.env');
    writeFileSync(envFile, envFileText({ PROXY_API_KEY: 'k-0123456789' }), { mode: 0o600 });
    const bin = join(dir, 'mcp bin');
    symlinkSync(process.execPath, bin);
    const text = systemdUnit({ command: [bin], envFile });
    expect(text).toContain(`\nEnvironmentFile=${envFile}\n`);
    expect(text).toContain(`\nExecStart="${bin}" serve\n`);
    if (has('systemd-analyze')) {
      const file = join(dir, 'mcp.service');
      writeFileSync(file, text);
      const r = Bun.spawnSync(['systemd-analyze', 'verify', file], { stdout: 'pipe', stderr: 'pipe' });
      expect(`${r.stdout.toString()}${r.stderr.toString()}`.split('\n').filter((l) => l.includes(file))).toEqual([]);
    }
  });

  test('a long shutdown grace gives systemd a longer stop timeout', () => {
    const plan = installPlan({ platform: 'linux', home: '/h', command: ['/bin/mcp'], env: { SHUTDOWN_GRACE_SEC: '100' }, uid: 1000, start: true });
    expect(plan.files[1]!.content).toContain('TimeoutStopSec=115\n');
  });

  // A reinstall keeps service.env (README: edit it and reinstall): the grace the service will run
  // with is the file's, whatever this shell has; else systemd kills streams the grace lets finish.
  test('a reinstall does not claim the shell\'s key goes into the kept file, and says when they differ', () => {
    const kept = 'PROXY_API_KEY=first-key-0123\n';
    const plan = (key: string) => installPlan({ platform: 'linux', home: '/h', command: ['/bin/mcp'], env: { PROXY_API_KEY: key }, uid: 1, start: false, keptEnvFile: kept }).notes.join('\n');
    expect(plan('second-key-4567')).not.toContain('from this shell goes into');
    expect(plan('second-key-4567')).toContain('PROXY_API_KEY in this shell is not the one in /h/.config/multi-claude-proxy/service.env, which the service keeps using');
    expect(plan('first-key-0123')).not.toContain('is not the one');
    expect(plan('second-key-4567')).not.toContain('second-key');
  });

  test('a reinstall takes the stop timeout from the kept environment file, not the shell', () => {
    const kept = "# kept\nPROXY_API_KEY=k\nSHUTDOWN_GRACE_SEC='200'\n";
    const plan = installPlan({ platform: 'linux', home: '/h', command: ['/bin/mcp'], env: { SHUTDOWN_GRACE_SEC: '10' }, uid: 1000, start: true, keptEnvFile: kept });
    expect(plan.files[1]!.content).toContain('TimeoutStopSec=215\n');
  });
});

describe('the launchd agent', () => {
  const paths = servicePaths('macos', '/Users/me');
  const text = launchdPlist({ command: ['/usr/local/bin/mcp'], envFile: paths.envFile, logDir: paths.logDir });

  test('parses as a property list with KeepAlive, RunAtLoad and logs under ~/Library/Logs', () => {
    const plist = parsePlist(text) as Record<string, unknown>;
    expect(plist.Label).toBe(LAUNCHD_LABEL);
    expect(plist.RunAtLoad).toBe(true);
    expect(plist.KeepAlive).toEqual({ SuccessfulExit: false });
    expect(plist.StandardOutPath).toBe('/Users/me/Library/Logs/multi-claude-proxy/mcp.log');
    expect(plist.StandardErrorPath).toBe('/Users/me/Library/Logs/multi-claude-proxy/mcp.err.log');
    // Not Background: the user waits on every streamed token, which must not yield to busy foreground apps.
    expect(plist.ProcessType).toBe('Interactive');
    expect(paths.serviceFile).toBe(`/Users/me/Library/LaunchAgents/${LAUNCHD_LABEL}.plist`);
    if (has('plutil')) {
      const dir = tmp();
      writeFileSync(join(dir, 'a.plist'), text);
      expect(Bun.spawnSync(['plutil', '-lint', join(dir, 'a.plist')]).exitCode).toBe(0);
    }
  });

  test('sources the environment file then execs `mcp serve`, keeping the key out of the plist', () => {
    const plist = parsePlist(text) as { ProgramArguments: string[] };
    expect(plist.ProgramArguments).toEqual([
      '/bin/sh',
      '-c',
      'set -a; . "$0"; set +a; exec "$@" serve',
      '/Users/me/.config/multi-claude-proxy/service.env',
      '/usr/local/bin/mcp',
    ]);
    expect(text).not.toContain('PROXY_API_KEY');
  });

  test('the shell wrapper really exports the file and runs the command with `serve`', () => {
    const dir = tmp();
    const envFile = join(dir, 'service.env');
    writeFileSync(envFile, envFileText({ PROXY_API_KEY: 'key with spaces & $dollar', PORT: '9123' }));
    const script = join(dir, 'fake-mcp');
    writeFileSync(script, '#!/bin/sh\necho "$1|$PROXY_API_KEY|$PORT"\n', { mode: 0o755 });
    const plist = parsePlist(launchdPlist({ command: [script], envFile, logDir: dir })) as { ProgramArguments: string[] };
    const r = Bun.spawnSync(plist.ProgramArguments, { env: { PATH: '/usr/bin:/bin' }, stdout: 'pipe' });
    expect(r.stdout.toString()).toBe('serve|key with spaces & $dollar|9123\n');
  });
});

describe('the environment file', () => {
  test('plain values are bare, others single-quoted; quotes and line breaks are refused', () => {
    expect(envFileText({ PROXY_API_KEY: 'abc-123_x.y', MODEL_MAP: '{"a":"b"}' })).toBe(
      "# Environment for `mcp serve` run as a service. Keep this file private (0600).\nPROXY_API_KEY=abc-123_x.y\nMODEL_MAP='{\"a\":\"b\"}'\n",
    );
    expect(() => envFileText({ PROXY_API_KEY: "it's" })).toThrow('must not contain quotes');
    expect(() => envFileText({ PROXY_API_KEY: 'a\nb' })).toThrow('line breaks');
  });

  test('install carries PROXY_API_KEY and the serve settings that are set, nothing else', () => {
    const plan = installPlan({
      platform: 'linux',
      home: '/h',
      command: ['/bin/mcp'],
      env: { PROXY_API_KEY: 'the-key-0123', PORT: '9000', MAX_CONCURRENT_PER_ACCOUNT: '2', HTTPS_PROXY: 'http://proxy.corp:3128', HOME: '/h', SECRET_OTHER: 'no', LOG_FORMAT: '' },
      uid: 1000,
      start: true,
    });
    expect(plan.files[0]).toMatchObject({ path: '/h/.config/multi-claude-proxy/service.env', mode: 0o600, keepExisting: true });
    expect(plan.files[0]!.content).toContain('PROXY_API_KEY=the-key-0123\nPORT=9000\n');
    expect(plan.files[0]!.content).toContain('MAX_CONCURRENT_PER_ACCOUNT=2\n');
    expect(plan.files[0]!.content).toContain('HTTPS_PROXY=http://proxy.corp:3128\n');
    expect(plan.files[0]!.content).not.toContain('SECRET_OTHER');
    expect(plan.files[0]!.content).not.toContain('LOG_FORMAT');
  });

  // A service the shell set a longer WRITE_TIMEOUT_SEC or CORS for would otherwise run silently without them.
  test('install carries the timeouts, the cool-down and poll intervals and the CORS settings too', () => {
    const vars = {
      READ_TIMEOUT_SEC: '900', WRITE_TIMEOUT_SEC: '1800', IDLE_TIMEOUT_SEC: '60', UPSTREAM_IDLE_TIMEOUT_SEC: '300', PING_INTERVAL_SEC: '10',
      DEFAULT_COOLDOWN_SEC: '30', QUOTA_POLL_INTERVAL_SEC: '600', ANTIGRAVITY_THINKING_REPLAY: 'split',
      CORS_ENABLED: 'true', CORS_ALLOW_ORIGIN: 'https://app.example', CORS_ALLOW_METHODS: 'GET, POST', CORS_ALLOW_HEADERS: 'x-api-key', CORS_MAX_AGE: '600',
    };
    const text = installPlan({ platform: 'linux', home: '/h', command: ['/bin/mcp'], env: { PROXY_API_KEY: 'k-0123456789', ...vars }, uid: 1000, start: false }).files[0]!.content;
    for (const [k, v] of Object.entries(vars)) expect(text).toContain(/^[\w.:/-]*$/.test(v) ? `\n${k}=${v}\n` : `\n${k}='${v}'\n`);
  });

  test('paths are written absolute, and the data directory this shell uses is the service\'s too', () => {
    const plan = (env: Record<string, string>) =>
      installPlan({ platform: 'linux', home: '/h', command: ['/m'], env: { PROXY_API_KEY: 'k-0123456789', ...env }, uid: 1, start: false, cwd: '/work/here' })
        .files[0]!.content;
    // The service starts in /, not here: a relative path would name another place.
    const relative = plan({ MCP_DATA_DIR: 'data', ACCOUNTS_CONFIG_PATH: './old/accounts.json', MODEL_MAP: 'maps/model.json', FALLBACK_MAP: '{"a":"b"}' });
    expect(relative).toContain('MCP_DATA_DIR=/work/here/data\n');
    expect(relative).toContain('ACCOUNTS_CONFIG_PATH=/work/here/old/accounts.json\n');
    expect(relative).toContain('MODEL_MAP=/work/here/maps/model.json\n');
    expect(relative).toContain(`FALLBACK_MAP='{"a":"b"}'\n`);
    // A ~ the shell did not expand (quoted) is the home directory, not a directory named ~ here.
    const tilde = plan({ MCP_DATA_DIR: '~/mcp', ACCOUNTS_CONFIG_PATH: '~/old/accounts.json' });
    expect(tilde).toContain('MCP_DATA_DIR=/h/mcp\n');
    expect(tilde).toContain('ACCOUNTS_CONFIG_PATH=/h/old/accounts.json\n');
    // XDG_CONFIG_HOME is not passed to the service: the directory it picks is pinned instead.
    expect(plan({ XDG_CONFIG_HOME: '/h/xdg' })).toContain('MCP_DATA_DIR=/h/xdg/multi-claude-proxy\n');
    expect(plan({})).not.toContain('MCP_DATA_DIR');
  });

  test('without PROXY_API_KEY in the shell a random key is generated', () => {
    const a = installPlan({ platform: 'linux', home: '/h', command: ['/m'], env: {}, uid: 1, start: false });
    const b = installPlan({ platform: 'linux', home: '/h', command: ['/m'], env: {}, uid: 1, start: false });
    const key = (p: typeof a) => /PROXY_API_KEY=(mcp-[A-Za-z0-9_-]{32})\n/.exec(p.files[0]!.content)?.[1];
    expect(key(a)).toBeDefined();
    expect(key(a)).not.toBe(key(b));
    expect(a.notes[0]).toContain('a random one');
  });
});

describe('plans', () => {
  test('Linux install enables and (re)starts the unit; uninstall disables it and keeps the env file', () => {
    const i = installPlan({ platform: 'linux', home: '/h', command: ['/m'], env: { PROXY_API_KEY: 'k' }, uid: 1, start: true });
    expect(i.commands).toEqual([
      ['systemctl', '--user', 'daemon-reload'],
      ['systemctl', '--user', 'enable', '--now', 'mcp.service'],
      ['systemctl', '--user', 'restart', 'mcp.service'],
    ]);
    const u = uninstallPlan({ platform: 'linux', home: '/h', uid: 1 });
    expect(u.remove).toEqual(['/h/.config/systemd/user/mcp.service']);
    expect(u.commands[0]).toEqual(['systemctl', '--user', 'disable', '--now', 'mcp.service']);
    expect(u.notes[0]).toContain('is kept');
  });

  test('macOS install boots the agent into the gui domain of the user', () => {
    const i = installPlan({ platform: 'macos', home: '/Users/me', command: ['/m'], env: {}, uid: 501, start: true });
    // enable: bootstrap refuses a label left disabled with the same EIO as a busy one, forever.
    expect(i.commands).toEqual([
      ['launchctl', 'bootout', `gui/501/${LAUNCHD_LABEL}`],
      ['launchctl', 'enable', `gui/501/${LAUNCHD_LABEL}`],
      ['launchctl', 'bootstrap', 'gui/501', `/Users/me/Library/LaunchAgents/${LAUNCHD_LABEL}.plist`],
    ]);
    expect(uninstallPlan({ platform: 'macos', home: '/Users/me', uid: 501 }).commands).toEqual([
      ['launchctl', 'bootout', `gui/501/${LAUNCHD_LABEL}`],
    ]);
  });

  test('--no-start runs no service-manager command', () => {
    expect(installPlan({ platform: 'linux', home: '/h', command: ['/m'], env: {}, uid: 1, start: false }).commands).toEqual([]);
    expect(installPlan({ platform: 'macos', home: '/h', command: ['/m'], env: {}, uid: 1, start: false }).commands).toEqual([]);
  });

  test('the platform comes from the flag or the OS; Windows is refused with advice', () => {
    expect(detectPlatform(undefined, 'linux')).toBe('linux');
    expect(detectPlatform(undefined, 'darwin')).toBe('macos');
    expect(detectPlatform('launchd', 'linux')).toBe('macos');
    expect(() => detectPlatform(undefined, 'win32')).toThrow(
      'mcp service supports Linux (systemd) and macOS (launchd), not Windows; run `mcp serve` under your own supervisor (such as a Task Scheduler task run at logon)',
    );
    expect(() => detectPlatform(undefined, 'freebsd')).toThrow('not freebsd; run `mcp serve` under your own supervisor');
    expect(() => detectPlatform('bsd', 'linux')).toThrow('--platform must be linux or macos');
  });
});

describe('mcp service (in process, MCP_SERVICE_HOME = a temporary dir)', () => {
  const saved = { home: process.env.MCP_SERVICE_HOME, key: process.env.PROXY_API_KEY };
  let home = '';
  beforeEach(() => {
    home = tmp();
    process.env.MCP_SERVICE_HOME = home;
    process.env.PROXY_API_KEY = 'svc-test-key-0123456789';
  });
  afterEach(() => {
    for (const [k, v] of [['MCP_SERVICE_HOME', saved.home], ['PROXY_API_KEY', saved.key]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  const run = (...argv: string[]) => runCaptured(argv);
  /** `mcp <argv>` with only `path` to look programs up in (systemctl, launchctl), the PATH put back after. */
  async function runWithPath(path: string, ...argv: string[]) {
    const savedPath = process.env.PATH;
    process.env.PATH = path;
    try {
      return await run(...argv);
    } finally {
      process.env.PATH = savedPath;
    }
  }

  test('--dry-run prints the files and commands, masks the key and writes nothing', async () => {
    const r = await run('service', 'install', '--dry-run', '--platform', 'linux', '--bin', '/opt/mcp/mcp');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`would write ${home}/.config/systemd/user/mcp.service`);
    expect(r.out).toContain('ExecStart=/opt/mcp/mcp serve');
    expect(r.out).toContain('PROXY_API_KEY=***');
    expect(r.out).toContain('would run: systemctl --user enable --now mcp.service');
    expect(r.out + r.err).not.toContain('svc-test-key-0123456789');
    expect(existsSync(join(home, '.config'))).toBe(false);
  });

  test('a system without systemctl (a container, WSL without systemd) is told so in one line, and nothing is written', async () => {
    const r = await runWithPath(tmp(), 'service', 'install', '--platform', 'linux', '--bin', process.execPath);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      'mcp: systemctl is not on PATH: this system runs no systemd user services, so `mcp service` cannot install one here; nothing was written. Run `mcp serve` under this system\'s own supervisor instead (README, "Run it as a service")\n',
    );
    expect(existsSync(join(home, '.config'))).toBe(false);
  });

  // Over su, sudo or an SSH session without a user manager, every `systemctl --user` step fails with
  // "Failed to connect to bus". The report showed the first line systemctl wrote ("Created symlink…",
  // which reads as success) and said nothing of what to do.
  test('a step the service manager refuses is reported with its error line, and an unreachable user bus with what to do', async () => {
    const bin = tmp();
    writeFileSync(
      join(bin, 'systemctl'),
      '#!/bin/sh\n[ "$2" = enable ] && echo "Created symlink /x/default.target.wants/mcp.service → /x/mcp.service." >&2\necho "Failed to connect to bus: No medium found" >&2\nexit 1\n',
      { mode: 0o755 },
    );
    const r = await runWithPath(bin, 'service', 'install', '--platform', 'linux', '--bin', '/opt/mcp/mcp');
    expect(r.code).toBe(1);
    expect(r.err).toContain('systemctl --user enable --now mcp.service failed (exit 1): Failed to connect to bus: No medium found\n');
    expect(r.err).not.toContain('Created symlink');
    expect(r.err).toContain(
      'mcp: systemctl --user cannot reach your user service manager: log in as this user directly (not with su or sudo), or run `loginctl enable-linger "$USER"` once and log in again; the files are written, so `mcp service install` again then starts it\n',
    );
  });

  // A reinstall on macOS (how the README says to apply new settings) boots the running agent out and
  // bootstraps it again at once; bootout only signals the old process, and while it drains launchd
  // refuses the bootstrap with "5: Input/output error". Reported as a failure, it left mcp stopped.
  test('macOS: a bootstrap refused while launchd still stops the old agent is tried again until it is taken', async () => {
    const bin = tmp();
    const calls = join(bin, 'calls');
    // Modelled on launchctl's reply while a label is still being torn down (exit 5, two lines on stderr).
    writeFileSync(
      join(bin, 'launchctl'),
      `#!/bin/sh
echo "$1" >> '${calls}'
[ "$1" != bootstrap ] && exit 0
n=$(grep -c bootstrap '${calls}')
if [ "$n" -lt 3 ]; then echo "Bootstrap failed: 5: Input/output error" >&2; echo "Try re-running the command as root for richer errors." >&2; exit 5; fi
exit 0
`,
      { mode: 0o755 },
    );
    const r = await runWithPath(`${bin}:/usr/bin:/bin`, 'service', 'install', '--platform', 'macos', '--bin', process.execPath);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(readFileSync(calls, 'utf8')).toBe('bootout\nenable\nbootstrap\nbootstrap\nbootstrap\n');
    expect(r.out).toContain('launchd is still stopping the previous mcp');
    expect(r.out).toContain('ran: launchctl bootstrap gui/');
  });

  // launchctl ends every failure with "Try re-running the command as root for richer errors.": shown
  // as the error line, it hid the reason and pointed at sudo, which would install for root.
  test('macOS: a refused bootstrap is reported with launchctl\'s reason, and no login session with what to do', async () => {
    const bin = tmp();
    // Modelled on launchctl over SSH with no one logged in at the Mac.
    writeFileSync(
      join(bin, 'launchctl'),
      '#!/bin/sh\n[ "$1" != bootstrap ] && exit 0\necho "Bootstrap failed: 125: Domain does not support specified action" >&2\necho "Try re-running the command as root for richer errors." >&2\nexit 125\n',
      { mode: 0o755 },
    );
    const r = await runWithPath(bin, 'service', 'install', '--platform', 'macos', '--bin', process.execPath);
    expect(r.code).toBe(1);
    expect(r.err).toContain('failed (exit 125): Bootstrap failed: 125: Domain does not support specified action\n');
    expect(r.err).not.toContain('Try re-running');
    expect(r.err).toContain('mcp: launchctl cannot reach a login session of this user');
    expect(r.err).toContain('run `mcp service install` again');
  });

  test('only a launchd bootstrap refused as busy is retried, for the stop timeout and a little more', () => {
    expect(launchdBusy(['launchctl', 'bootstrap', 'gui/501', '/p'], 5, 'Bootstrap failed: 5: Input/output error')).toBe(true);
    expect(launchdBusy(['launchctl', 'bootstrap', 'gui/501', '/p'], 37, '')).toBe(true);
    expect(launchdBusy(['launchctl', 'bootstrap', 'gui/501', '/p'], 125, 'Bootstrap failed: 125: Domain does not support specified action')).toBe(false);
    expect(launchdBusy(['launchctl', 'bootout', 'gui/501/x'], 5, '')).toBe(false);
    expect(launchdBusy(['systemctl', '--user', 'restart', 'mcp.service'], 5, '')).toBe(false);
    const plan = installPlan({ platform: 'macos', home: '/Users/me', command: ['/m'], env: { SHUTDOWN_GRACE_SEC: '60' }, uid: 501, start: true });
    expect(plan.busyRetrySec).toBe(80);
  });

  test('--dry-run shows the settings it carries (the data directory…) and masks only what may hold a secret', async () => {
    const saved = { dir: process.env.MCP_DATA_DIR, proxy: process.env.HTTPS_PROXY };
    process.env.MCP_DATA_DIR = join(home, 'data');
    process.env.HTTPS_PROXY = 'http://user:proxy-password@proxy.corp:3128';
    try {
      const r = await run('service', 'install', '--dry-run', '--platform', 'linux', '--bin', process.execPath);
      expect(r.out).toContain(`  MCP_DATA_DIR=${join(home, 'data')}\n`);
      expect(r.out).toContain('  PROXY_API_KEY=***\n');
      expect(r.out).toContain('  HTTPS_PROXY=***\n');
      expect(r.out).not.toContain('proxy-password');
    } finally {
      for (const [k, v] of [['MCP_DATA_DIR', saved.dir], ['HTTPS_PROXY', saved.proxy]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  test('--dry-run masks the OAuth client secret, a password in any URL and a key pasted into another setting', async () => {
    const secret = ['FAKE', 'GOCSPX', 'client', 'secret'].join('-');
    const password = ['FAKE', 'url', 'password', '0123'].join('-');
    const zaiKey = `${'0'.repeat(32)}.FAKEkeyInModelMap`;
    const vars = { GOOGLE_CLIENT_SECRET: secret, ZAI_BASE_URL: `https://user:${password}@zai.example/api/anthropic`, MODEL_MAP: `{"opus":"${zaiKey}"}` };
    const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
    Object.assign(process.env, vars);
    try {
      const r = await run('service', 'install', '--dry-run', '--platform', 'linux', '--bin', process.execPath);
      expect(r.out).toContain('  GOOGLE_CLIENT_SECRET=***\n');
      expect(r.out).toContain('  ZAI_BASE_URL=https://***@zai.example/api/anthropic\n');
      for (const s of [secret, password, 'FAKEkeyInModelMap']) expect(r.out).not.toContain(s);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  test('a --bin that is not there (a typo) is pointed out: the service would fail at every start', async () => {
    const missing = join(home, 'no', 'mcp');
    const r = await run('service', 'install', '--dry-run', '--platform', 'linux', '--bin', missing);
    expect(r.code).toBe(0);
    expect(r.err).toBe(`warning: ${missing} does not exist (yet): the service cannot start until it does\n`);
    const ok = await run('service', 'install', '--dry-run', '--platform', 'linux', '--bin', process.execPath);
    expect(ok.err).toBe('');
  });

  test('install --no-start writes the unit and a 0600 env file; a reinstall keeps the env file', async () => {
    const r = await run('service', 'install', '--no-start', '--platform', 'linux', '--bin', '/opt/mcp/mcp');
    expect(r.code).toBe(0);
    const paths = servicePaths('linux', home);
    expect(readFileSync(paths.serviceFile, 'utf8')).toContain('ExecStart=/opt/mcp/mcp serve');
    expect(statSync(paths.envFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(paths.envFile, 'utf8')).toContain('PROXY_API_KEY=svc-test-key-0123456789\n');
    process.env.PROXY_API_KEY = 'a-different-key-9876543210';
    const again = await run('service', 'install', '--no-start', '--platform', 'linux', '--bin', '/opt/mcp/mcp');
    expect(again.out).toContain('kept');
    expect(readFileSync(paths.envFile, 'utf8')).toContain('PROXY_API_KEY=svc-test-key-0123456789\n');
  });

  test('macOS install makes the directory launchd writes the logs in (it may not, and the agent would never start)', async () => {
    const paths = servicePaths('macos', home);
    const dry = await run('service', 'install', '--dry-run', '--platform', 'macos', '--bin', process.execPath);
    expect(dry.out).toContain(`would create ${paths.logDir}\n`);
    expect(existsSync(paths.logDir)).toBe(false);
    const r = await run('service', 'install', '--no-start', '--platform', 'macos', '--bin', process.execPath);
    expect(r.code).toBe(0);
    expect(statSync(paths.logDir).isDirectory()).toBe(true);
    expect(parsePlist(readFileSync(paths.serviceFile, 'utf8'))).toMatchObject({ StandardOutPath: join(paths.logDir, 'mcp.log') });
  });

  test('status says what is installed; uninstall --dry-run changes nothing; uninstall removes the plist', async () => {
    const before = await run('service', 'status', '--platform', 'macos');
    expect(before.out).toContain('(not installed)');
    await run('service', 'install', '--no-start', '--platform', 'macos', '--bin', '/opt/mcp/mcp');
    const paths = servicePaths('macos', home);
    expect(parsePlist(readFileSync(paths.serviceFile, 'utf8'))).toMatchObject({ Label: LAUNCHD_LABEL });
    const status = await run('service', 'status', '--platform', 'macos', '--dry-run');
    expect(status.out).toContain('(installed)');
    expect(status.out).toContain(`would run: launchctl print gui/`);
    const dry = await run('service', 'uninstall', '--platform', 'macos', '--dry-run');
    expect(dry.out).toContain(`would remove ${paths.serviceFile}`);
    expect(existsSync(paths.serviceFile)).toBe(true);
    // A real uninstall calls launchctl; with an empty PATH it cannot touch this host's service manager,
    // and the file is still removed with the failure reported.
    const u = await runWithPath(tmp(), 'service', 'uninstall', '--platform', 'macos');
    expect(u.err).toContain('could not run launchctl');
    expect(u.out).toContain(`removed ${paths.serviceFile}`);
    expect(existsSync(paths.serviceFile)).toBe(false);
    expect(existsSync(paths.envFile)).toBe(true);
  });

  /** Runs `mcp service status` with only `tool` (a script answering `reply`) on the PATH. */
  async function statusWith(platform: 'linux' | 'macos', tool: string, reply: string) {
    const bin = tmp();
    writeFileSync(join(bin, tool), `#!/bin/sh\n${reply}\n`, { mode: 0o755 });
    return runWithPath(bin, 'service', 'status', '--platform', platform);
  }

  // A script or monitor asking `mcp service status` got 0 whatever the answer, as if all were well.
  test('status exits as systemctl status does: 0 running, 3 stopped or failed, 4 not installed, 1 when it cannot tell', async () => {
    const missing = await run('service', 'status', '--platform', 'linux');
    expect(missing).toMatchObject({ code: 4, err: '' });
    expect(missing.out).toContain('(not installed)');
    const paths = servicePaths('linux', home);
    mkdirSync(join(paths.serviceFile, '..'), { recursive: true });
    writeFileSync(paths.serviceFile, systemdUnit({ command: ['/opt/mcp/mcp'], envFile: paths.envFile }));
    const running = await statusWith('linux', 'systemctl', 'echo "   Active: active (running) since Sat"; exit 0');
    expect(running).toMatchObject({ code: 0, err: '' });
    expect(running.out).toContain('Active: active (running)');
    const stopped = await statusWith('linux', 'systemctl', 'echo "   Active: inactive (dead)"; exit 3');
    expect(stopped).toMatchObject({ code: 3, err: '' });
    expect(stopped.out).toContain('Active: inactive (dead)');
    // The file is there but systemd never loaded it (no daemon-reload): not running either.
    expect((await statusWith('linux', 'systemctl', 'echo "Unit mcp.service could not be found." >&2; exit 4')).code).toBe(3);
    const noBus = await statusWith('linux', 'systemctl', 'echo "Failed to connect to bus: No medium found" >&2; exit 1');
    expect(noBus.code).toBe(1);
    // Over su, sudo or SSH: what to do, as install says it, not only "see above".
    expect(noBus.err).toBe(
      'mcp: systemctl --user cannot reach your user service manager, so whether the service runs cannot be told: log in as this user directly (not with su or sudo), or run `loginctl enable-linger "$USER"` once and log in again\n',
    );
    const other = await statusWith('linux', 'systemctl', 'echo "Something else went wrong" >&2; exit 1');
    expect(other.err).toBe('mcp: systemctl could not tell whether the service runs (exit 1; see above)\n');
  });

  test('macOS: status reads whether launchd runs the agent: 0 running, 3 loaded but not running or not loaded', async () => {
    await run('service', 'install', '--no-start', '--platform', 'macos', '--bin', '/opt/mcp/mcp');
    expect((await statusWith('macos', 'launchctl', 'printf "gui/501/x = {\\n\\tstate = running\\n\\tpid = 42\\n}\\n"; exit 0')).code).toBe(0);
    expect((await statusWith('macos', 'launchctl', 'printf "gui/501/x = {\\n\\tstate = not running\\n}\\n"; exit 0')).code).toBe(3);
    expect((await statusWith('macos', 'launchctl', 'echo "Could not find service \\"x\\" in domain for user gui: 501" >&2; exit 113')).code).toBe(3);
  });

  test('uninstall with nothing installed says so and runs no service-manager command', async () => {
    const u = await runWithPath(tmp(), 'service', 'uninstall', '--platform', 'linux');
    expect(u.code).toBe(0);
    expect(u.err).toBe('');
    expect(u.out).toContain(`nothing is installed: ${servicePaths('linux', home).serviceFile} is not there`);
    expect(u.out).not.toContain('systemctl');
  });
});

describe('--help', () => {
  test('each command says what its --dry-run holds back: status writes nothing, uninstall removes', async () => {
    const line = async (cmd: string) => (await runCaptured(['service', cmd, '--help'])).out.split('\n').find((l) => l.includes('--dry-run')) ?? '';
    expect(await line('install')).toContain('Print what would be written and run');
    expect(await line('uninstall')).toContain('Print what would be removed and run');
    expect(await line('status')).toContain("Print the service manager's status command instead of running it");
  });

  test('status --help names its exit codes', async () => {
    expect((await runCaptured(['service', 'status', '--help'])).out).toContain(
      'Exit status: 0 installed and running; 3 installed but not running (stopped, failed, or not loaded); 4 not installed; 1 the service manager could not be asked.',
    );
  });
});

test('a long shutdown grace gives launchd a longer exit timeout too', () => {
  const plan = installPlan({ platform: 'macos', home: '/Users/me', command: ['/bin/mcp'], env: { SHUTDOWN_GRACE_SEC: '100' }, uid: 501, start: true });
  expect(plan.files[1]!.content).toContain('<key>ExitTimeOut</key>\n\t<integer>115</integer>');
});

// A setting the server reads but the service's environment file leaves out is silently lost once the
// service starts at login (with no shell around it): a China-region ZAI_BASE_URL would send every key
// to api.z.ai, which refuses them all.
test('every setting mcp serve reads from the environment is carried into the service, but the key written on its own', () => {
  const source = readFileSync(join(import.meta.dir, '..', '..', 'src', 'config.ts'), 'utf8');
  const read = new Set([...source.matchAll(/\benv\.([A-Z][A-Z0-9_]+)/g)].map((m) => m[1]!));
  // The home directory is the service's own; the key has its own line.
  for (const own of ['HOME', 'XDG_CONFIG_HOME', 'PROXY_API_KEY']) read.delete(own);
  const missing = [...read].filter((v) => !(CARRIED_VARS as readonly string[]).includes(v));
  expect(missing).toEqual([]);
});
