// The README (and `mcp serve --help`) are the user's manual for settings: a variable the code reads
// but the manual does not name is a knob nobody can find. The variables are found by watching the
// code read its environment, so a new one cannot slip past.
import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderHelp } from '../src/cli/main.ts';
import { serveCommand } from '../src/cli/serve.ts';
import { CARRIED_VARS, serviceHome } from '../src/cli/service.ts';
import { loadConfig } from '../src/config.ts';
import { ENGINE_HINTS } from '../src/engine-hints.ts';

const README = readFileSync(join(import.meta.dir, '..', 'README.md'), 'utf8');

/** The README's text from a `## title` heading to the next one. */
function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`README has no section "${title}"`);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

/** The names `read` looks up in the environment it is given. */
function varsRead(read: (env: Record<string, string | undefined>) => unknown): string[] {
  const seen = new Set<string>();
  const env = new Proxy<Record<string, string | undefined>>(
    { PROXY_API_KEY: 'k-FAKE' },
    {
      get(target, k) {
        if (typeof k === 'string') seen.add(k);
        return target[k as string];
      },
    },
  );
  read(env);
  return [...seen];
}

/** Whether `text` names `name` as a whole word (`http_proxy` counts as HTTP_PROXY: "either case"). */
function names(text: string, name: string): boolean {
  const shown = name === name.toLowerCase() ? name.toUpperCase() : name;
  return new RegExp(`(^|[^A-Za-z0-9_])${shown}([^A-Za-z0-9_]|$)`).test(text);
}

// HOME is where `~` comes from, not a setting.
const configVars = varsRead((env) => loadConfig(env)).filter((v) => v !== 'HOME');

describe('README', () => {
  test('the environment table names every variable the config reads', () => {
    const table = section('Environment variables');
    expect(configVars.length).toBeGreaterThan(30);
    expect(configVars.filter((v) => !names(table, v))).toEqual([]);
  });

  test('the environment table names the engine hints serve sets and the service home override', () => {
    const table = section('Environment variables');
    const others = [...Object.keys(ENGINE_HINTS), ...varsRead((env) => serviceHome(env)).filter((v) => v !== 'HOME')];
    expect(others).toContain('MCP_SERVICE_HOME');
    expect(others.filter((v) => !names(table, v))).toEqual([]);
  });

  test('the service section names every variable `mcp service install` carries into service.env', () => {
    const text = section('Run it as a service');
    expect(CARRIED_VARS.filter((v) => !names(text, v))).toEqual([]);
  });
});

describe('mcp serve --help', () => {
  test('names every variable the config reads (the data directory fallbacks are the README\'s)', async () => {
    const help = await renderHelp(serveCommand as never, ['serve']);
    const missing = configVars.filter((v) => v !== 'XDG_CONFIG_HOME' && !names(help, v));
    expect(missing).toEqual([]);
  });
});

/** The README's table rows `| \`NAME\` | default | … |` (also the serve-flags table: `| flag | \`NAME\` | default | … |`), by variable. */
function defaultCells(): Map<string, string> {
  const cells = new Map<string, string>();
  const named = /^`([A-Za-z_]+)`$/;
  for (const line of README.split('\n')) {
    if (!line.startsWith('|')) continue;
    const row = line.split('|').slice(1, -1).map((c) => c.trim());
    const at = named.test(row[0] ?? '') ? 0 : named.test(row[1] ?? '') ? 1 : -1;
    if (at >= 0 && row[at + 1] !== undefined) cells.set(named.exec(row[at]!)![1]!, row[at + 1]!);
  }
  return cells;
}

describe('README defaults', () => {
  test('every default the README gives for a setting is the one the config applies', () => {
    const c = loadConfig({ PROXY_API_KEY: 'k-FAKE' });
    const expected: Record<string, string> = {
      PORT: String(c.port),
      BIND_ADDRESS: c.bindAddress,
      DEBUG: String(c.debug),
      ENABLE_FALLBACK: String(c.fallback),
      SOFT_LIMIT_THRESHOLD: c.softLimitThreshold.toFixed(2),
      READ_TIMEOUT_SEC: String(c.readTimeoutSec),
      WRITE_TIMEOUT_SEC: String(c.writeTimeoutSec),
      IDLE_TIMEOUT_SEC: String(c.idleTimeoutSec),
      UPSTREAM_IDLE_TIMEOUT_SEC: String(c.upstreamIdleTimeoutSec),
      UPSTREAM_HTTP_CLIENT: `\`${c.upstreamHttpClient}\``,
      PING_INTERVAL_SEC: String(c.pingIntervalSec),
      MAX_WAIT_SEC: String(c.maxWaitSec),
      MAX_ATTEMPTS: String(c.maxAttempts),
      MAX_CONCURRENT_PER_ACCOUNT: String(c.maxConcurrentPerAccount),
      DEFAULT_COOLDOWN_SEC: String(c.defaultCooldownSec),
      QUOTA_POLL_INTERVAL_SEC: String(c.quotaPollIntervalSec),
      SHUTDOWN_GRACE_SEC: String(c.shutdownGraceSec),
      USAGE_RETENTION_DAYS: String(c.usageRetentionDays),
      CORS_ENABLED: String(c.cors.enabled),
      CORS_ALLOW_ORIGIN: `\`${c.cors.allowOrigin}\``,
      CORS_ALLOW_METHODS: `\`${c.cors.allowMethods}\``,
      CORS_MAX_AGE: String(c.cors.maxAge),
      LOG_FORMAT: `\`${c.logFormat}\``,
      ZAI_BASE_URL: `\`${c.zai.baseUrl}\``,
      ZAI_STRIP_BETAS: `\`${c.zai.stripBetas}\``,
      ANTIGRAVITY_ENDPOINTS: `\`${c.antigravity.endpoints.join(',')}\``,
      ANTIGRAVITY_THINKING_REPLAY: `\`${c.antigravity.claudeThinkingReplay}\``,
      ANTIGRAVITY_AI_CREDITS: `\`${c.antigravity.aiCredits}\``,
      ANTIGRAVITY_USER_AGENT: `\`${c.antigravity.userAgent}\``,
    };
    for (const [name, value] of Object.entries(ENGINE_HINTS)) expected[name] = `\`${value}\` for \`serve\``;
    const cells = defaultCells();
    const wrong = Object.entries(expected)
      .filter(([name, value]) => cells.get(name) !== value)
      .map(([name, value]) => `${name}: README says ${JSON.stringify(cells.get(name))}, the code ${JSON.stringify(value)}`);
    expect(wrong).toEqual([]);
  });

  test('the CORS headers allowed when a preflight asks for none are the ones the README lists', () => {
    const c = loadConfig({ PROXY_API_KEY: 'k-FAKE' });
    expect(defaultCells().get('CORS_ALLOW_HEADERS')).toContain(`(\`${c.cors.allowHeaders}\` when it asks for none)`);
  });

  test('the request body cap the README gives is the one the server applies', () => {
    const mib = loadConfig({ PROXY_API_KEY: 'k-FAKE' }).bodyLimitBytes / 1024 / 1024;
    expect(README).toContain(`A request body may be up to ${mib} MiB`);
  });
});
