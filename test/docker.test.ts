// The container files carry what issue 5 asks of them: a multi-stage build that compiles the binary,
// a slim runtime as a non-root user, the database on a volume, port 8080 and a HEALTHCHECK that
// uses the binary itself (`mcp health`, tested against a real server in test/e2e/ops.test.ts).
import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemdUnit } from '../src/cli/service.ts';
import { DEFAULTS } from '../src/config.ts';

const ROOT = join(import.meta.dir, '..');
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const dockerignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8');

/** Instructions (continuation lines joined, comments dropped) of each stage. */
function stages(text: string): Array<{ from: string; lines: string[] }> {
  const out: Array<{ from: string; lines: string[] }> = [];
  const joined = text.replace(/\\\n\s*/g, ' ');
  for (const raw of joined.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (/^FROM\s/i.test(line)) out.push({ from: line, lines: [] });
    else out.at(-1)?.lines.push(line);
  }
  return out;
}

describe('Dockerfile', () => {
  const [build, runtime, ...extra] = stages(dockerfile);

  test('builds with Bun in one stage and runs on slim Debian in the next', () => {
    expect(extra).toEqual([]);
    expect(build!.from).toMatch(/^FROM oven\/bun:1\.4\S* AS build$/);
    expect(build!.lines.some((l) => /^RUN .*bun install --frozen-lockfile/.test(l))).toBe(true);
    // scripts/build.ts runs `bun build --compile` with the version and commit baked in.
    expect(build!.lines.some((l) => /^RUN .*scripts\/build\.ts \/out\/mcp/.test(l))).toBe(true);
    expect(readFileSync(join(ROOT, 'scripts', 'build.ts'), 'utf8')).toContain("'--compile'");
    expect(runtime!.from).toMatch(/^FROM debian:\S+-slim$/);
    expect(runtime!.lines).toContain('COPY --from=build /out/mcp /usr/local/bin/mcp');
  });

  test('runs as a non-root user', () => {
    const user = runtime!.lines.filter((l) => l.startsWith('USER ')).at(-1);
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^USER (root|0)(:|$)/);
    expect(runtime!.lines.some((l) => l.includes('useradd') && l.includes('mcp'))).toBe(true);
  });

  test('keeps the database on a volume at MCP_DATA_DIR and exposes 8080', () => {
    expect(runtime!.lines).toContain('VOLUME ["/data"]');
    expect(runtime!.lines.some((l) => /^ENV .*MCP_DATA_DIR=\/data\b/.test(l))).toBe(true);
    expect(runtime!.lines).toContain('EXPOSE 8080');
    expect(runtime!.lines.some((l) => /^ENV .*PORT=8080\b/.test(l))).toBe(true);
  });

  test('checks its health with the binary (no curl in slim images) and runs `mcp serve`', () => {
    const hc = runtime!.lines.find((l) => l.startsWith('HEALTHCHECK'));
    expect(hc).toMatch(/CMD \["\/usr\/local\/bin\/mcp", "health"/);
    expect(runtime!.lines).toContain('ENTRYPOINT ["/usr/local/bin/mcp"]');
    expect(runtime!.lines).toContain('CMD ["serve"]');
    expect(runtime!.lines).toContain('STOPSIGNAL SIGTERM');
  });

  test('the build context leaves out the checkout, dependencies, databases and tests', () => {
    for (const entry of ['.git', 'node_modules', 'dist', 'test', '*.db']) expect(dockerignore.split('\n')).toContain(entry);
    // …but keeps what the build stage copies.
    for (const needed of ['src', 'scripts', 'package.json', 'bun.lock', 'tsconfig.json']) {
      expect(dockerignore.split('\n')).not.toContain(needed);
    }
  });
});

describe('docker-compose.yml', () => {
  const compose = Bun.YAML.parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, Record<string, unknown>>;
    volumes: Record<string, unknown>;
  };
  const svc = compose.services.mcp!;

  test('requires PROXY_API_KEY and keeps the database on a named volume', () => {
    const env = svc.environment as string[];
    expect(env).toContain('PROXY_API_KEY=${PROXY_API_KEY:?PROXY_API_KEY is required}');
    expect(svc.volumes as string[]).toContain('mcp-data:/data');
    expect(Object.keys(compose.volumes)).toContain('mcp-data');
  });

  test('imports a legacy accounts.json from ./config on first start, as the original mounted it', () => {
    expect(svc.volumes as string[]).toContain('./config:/config:ro');
    expect(svc.environment as string[]).toContain('ACCOUNTS_CONFIG_PATH=/config/accounts.json');
  });

  test('restarts, checks health with the binary and waits out the shutdown grace', () => {
    expect(svc.restart).toBe('unless-stopped');
    expect((svc.healthcheck as { test: string[] }).test.slice(0, 3)).toEqual(['CMD', '/usr/local/bin/mcp', 'health']);
    expect(svc.ports as string[]).toEqual(['${PORT:-8080}:8080']);
  });

  // It was a fixed 45s: with SHUTDOWN_GRACE_SEC raised in .env, Docker killed the server mid-grace.
  test('the stop grace period moves with SHUTDOWN_GRACE_SEC, with the same default and margin as the service files', () => {
    const graceLine = (svc.environment as string[]).find((l) => l.startsWith('SHUTDOWN_GRACE_SEC='))!;
    expect(graceLine).toBe(`SHUTDOWN_GRACE_SEC=\${SHUTDOWN_GRACE_SEC:-${DEFAULTS.shutdownGraceSec}}`);
    const period = String(svc.stop_grace_period);
    expect(period).toContain(`\${SHUTDOWN_GRACE_SEC:-${DEFAULTS.shutdownGraceSec}}`);
    // The systemd unit's stop timeout is the margin mcp's own service files give the grace.
    const unitStop = Number(/TimeoutStopSec=(\d+)/.exec(systemdUnit({ command: ['/bin/mcp'], envFile: '/e' }))![1]);
    const margin = unitStop - DEFAULTS.shutdownGraceSec;
    expect(composeDurationSec(interpolate(period, {}))).toBe(DEFAULTS.shutdownGraceSec + margin);
    expect(composeDurationSec(interpolate(period, { SHUTDOWN_GRACE_SEC: '100' }))).toBe(100 + margin);
    expect(composeDurationSec(interpolate(period, { SHUTDOWN_GRACE_SEC: '0' }))).toBe(margin);
  });
});

/** Compose's `${VAR:-default}` (unset or empty takes the default); other forms are not used here. */
function interpolate(text: string, env: Record<string, string>): string {
  return text.replace(/\$\{(\w+):-([^}]*)\}/g, (_, name: string, dflt: string) => env[name] || dflt);
}

/**
 * A duration as both Compose versions read it: Go's number-unit pairs, summed, and (Compose v1's
 * stricter parser) each unit at most once, in the order h, m, s, ms.
 */
function composeDurationSec(text: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$/.exec(text);
  if (!m || text === '') throw new Error(`not a duration both Compose versions read: "${text}"`);
  const [h, min, s, ms] = m.slice(1).map((v) => Number(v ?? 0));
  return h! * 3600 + min! * 60 + s! + ms! / 1000;
}
