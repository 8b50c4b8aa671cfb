// `mcp health` (the Docker HEALTHCHECK): exit 0 on a 200 from /health, 1 on anything else.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { checkHealth, localBaseUrl } from '../../src/cli/health.ts';
import { runCaptured } from './run-cli.ts';

let healthy: ReturnType<typeof Bun.serve>;
let sick: ReturnType<typeof Bun.serve>;
let slow: ReturnType<typeof Bun.serve>;

beforeAll(() => {
  const opts = { hostname: '127.0.0.1', port: 0 };
  healthy = Bun.serve({ ...opts, fetch: (req) => (new URL(req.url).pathname === '/health' ? Response.json({ status: 'ok' }) : new Response('no', { status: 404 })) });
  sick = Bun.serve({ ...opts, fetch: () => Response.json({ status: 'degraded' }, { status: 503 }) });
  slow = Bun.serve({ ...opts, fetch: async () => { await Bun.sleep(2000); return new Response('late'); } });
});
afterAll(() => {
  healthy.stop(true);
  sick.stop(true);
  slow.stop(true);
});

const run = (...argv: string[]) => runCaptured(argv);

test('a 200 from /health is healthy (exit 0) and shows the status', async () => {
  const r = await run('health', '--url', `http://127.0.0.1:${healthy.port}`);
  expect(r.code).toBe(0);
  expect(r.out).toBe(`healthy: http://127.0.0.1:${healthy.port}/health: 200 ok\n`);
});

test('a 503 is unhealthy: exit 1 with one line', async () => {
  const r = await run('health', '--url', `http://127.0.0.1:${sick.port}/`);
  expect(r.code).toBe(1);
  expect(r.err).toBe(`mcp: unhealthy: http://127.0.0.1:${sick.port}/health: 503 degraded\n`);
});

test('nothing listening is unhealthy, not a crash', async () => {
  const probe = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') });
  const dead = probe.port;
  probe.stop(true);
  const r = await run('health', '--url', `http://127.0.0.1:${dead}`);
  expect(r.code).toBe(1);
  expect(r.err).toStartWith(`mcp: unhealthy: http://127.0.0.1:${dead}/health: `);
});

// A server behind a reverse proxy that wants a login is asked as http://user:password@host/.
test('a --url with a user and password prints neither, healthy or not', async () => {
  const password = ['FAKE', 'health', 'password', '0123'].join('-');
  const ok = await run('health', '--url', `http://probe:${password}@127.0.0.1:${healthy.port}`);
  expect(ok).toEqual({ code: 0, out: `healthy: http://***@127.0.0.1:${healthy.port}/health: 200 ok\n`, err: '' });
  const bad = await run('health', '--url', `http://probe:${password}@127.0.0.1:${sick.port}`);
  expect(bad).toEqual({ code: 1, out: '', err: `mcp: unhealthy: http://***@127.0.0.1:${sick.port}/health: 503 degraded\n` });
});

// Bun's own words were "ECONNREFUSED: Unable to connect. Is the computer able to access the url?",
// which sends a user looking at the network when the server is simply not running (or on another port).
test('nothing listening says so and what to do, in one line', async () => {
  const probe = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') });
  const dead = probe.port;
  probe.stop(true);
  const r = await run('health', '--url', `http://127.0.0.1:${dead}`);
  expect(r).toEqual({
    code: 1,
    out: '',
    err: `mcp: unhealthy: http://127.0.0.1:${dead}/health: nothing is listening there (is \`mcp serve\` running, on this port? --url or PORT name another)\n`,
  });
});

test('a server that does not answer in time is unhealthy after --timeout', async () => {
  const started = Date.now();
  const r = await checkHealth(`http://127.0.0.1:${slow.port}`, 200);
  expect(r.ok).toBe(false);
  expect(r.line).toContain('no answer within 200ms');
  expect(Date.now() - started).toBeLessThan(1500);
});

test('without --url it asks 127.0.0.1 on PORT', async () => {
  const saved = process.env.PORT;
  process.env.PORT = String(healthy.port);
  try {
    const r = await run('health');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`http://127.0.0.1:${healthy.port}/health`);
  } finally {
    if (saved === undefined) delete process.env.PORT;
    else process.env.PORT = saved;
  }
});

// `--timeout 1e300` reached the timer and came back as "unhealthy: … Value 1e+303 is outside the range", exit 1.
test('a --timeout past an hour is a usage error (exit 2) naming the longest accepted; an hour is accepted', async () => {
  for (const given of ['3601', '99999999999', '1e300']) {
    const r = await run('health', '--url', `http://127.0.0.1:${healthy.port}`, '--timeout', given);
    expect(r).toEqual({ code: 2, out: '', err: `mcp: --timeout must be at most 3600 seconds (an hour), got "${given}"\n` });
  }
  expect((await run('health', '--url', `http://127.0.0.1:${healthy.port}`, '--timeout', '3600')).code).toBe(0);
});

test('a --timeout that is not a positive number is a usage error (exit 2), as the README says', async () => {
  const r = await run('health', '--url', `http://127.0.0.1:${healthy.port}`, '--timeout', 'abc');
  expect(r).toEqual({ code: 2, out: '', err: 'mcp: --timeout must be a positive number of seconds, got "abc"\n' });
});

test('without --url it asks the address the server binds to (BIND_ADDRESS), 127.0.0.1 for every interface', async () => {
  // 127.0.0.2 is loopback too on Linux, but nothing listens on 127.0.0.1 at that port.
  const only = Bun.serve({ hostname: '127.0.0.2', port: 0, fetch: () => Response.json({ status: 'ok' }) });
  const saved = { PORT: process.env.PORT, BIND_ADDRESS: process.env.BIND_ADDRESS };
  process.env.PORT = String(only.port);
  process.env.BIND_ADDRESS = '127.0.0.2';
  try {
    const r = await run('health');
    expect(r.out).toBe(`healthy: http://127.0.0.2:${only.port}/health: 200 ok\n`);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    only.stop(true);
  }
  expect(localBaseUrl('0.0.0.0', 8080)).toBe('http://127.0.0.1:8080');
  expect(localBaseUrl('::', 8080)).toBe('http://[::1]:8080');
  expect(localBaseUrl('[::]', 8080)).toBe('http://[::1]:8080');
  expect(localBaseUrl('fd00::5', 8080)).toBe('http://[fd00::5]:8080');
  expect(localBaseUrl('proxy.lan', 80)).toBe('http://proxy.lan:80');
});

// An operator types host:port as `curl` takes it; before, that was "fetch() URL is invalid", exit 1.
test('a --url without a scheme is taken as http://', async () => {
  const r = await runCaptured(['health', '--url', `127.0.0.1:${healthy.port}`]);
  expect(r.code).toBe(0);
  expect(r.out).toContain(`healthy: http://127.0.0.1:${healthy.port}/health: 200 ok`);
});

test('a --url that is not http(s) is a usage error (exit 2) naming the flag', async () => {
  const r = await runCaptured(['health', '--url', 'ftp://127.0.0.1/']);
  expect(r.code).toBe(2);
  expect(r.err).toBe('mcp: --url must be an http:// or https:// address, got "ftp://127.0.0.1/"\n');
});

// /health answers 200 while the process runs (a container without accounts yet is not restarted), so
// `mcp health` printed "healthy: …: 200 unavailable" for a pool that could serve nothing.
test('a server up with a pool that cannot serve exits 0 but says what the status means and where to look', async () => {
  for (const [status, hint] of [
    ['no_accounts', 'the server is up, with no account yet: `mcp accounts add`'],
    ['unavailable', 'the server is up, but no account can serve now: see `mcp accounts list`'],
  ] as const) {
    const up = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => Response.json({ status }) });
    try {
      const r = await run('health', '--url', `http://127.0.0.1:${up.port}`);
      expect(r).toEqual({ code: 0, out: `healthy: http://127.0.0.1:${up.port}/health: 200 ${status} (${hint})\n`, err: '' });
    } finally {
      up.stop(true);
    }
  }
});

test('a degraded /health names why (usage or limits it cannot write to the database), not just "degraded"', async () => {
  for (const body of [
    { status: 'degraded', usageError: 'cannot write usage to the database: database or disk is full (3 record(s) waiting)' },
    { status: 'degraded', writeError: 'cannot store account limits and states in the database: database is locked (2 change(s) waiting in memory)' },
  ]) {
    const degraded = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => Response.json(body) });
    try {
      const r = await run('health', '--url', `http://127.0.0.1:${degraded.port}`);
      expect(r.code).toBe(0);
      expect(r.out).toBe(`healthy: http://127.0.0.1:${degraded.port}/health: 200 degraded (${body.usageError ?? body.writeError})\n`);
    } finally {
      degraded.stop(true);
    }
  }
});

test('something on the port that is not an HTTP server is named as such, without Bun fetch() advice', async () => {
  const opts = { hostname: '127.0.0.1', port: 0 } as const;
  const hangsUp = Bun.listen({ ...opts, socket: { open: (s) => void s.end(), data() {} } });
  // Another service on the port (an SSH server, say): it answers, but not in HTTP.
  const notHttp = Bun.listen({ ...opts, socket: { open: (s) => void s.write('SSH-2.0-FAKE\r\nHello there\r\n'), data() {} } });
  try {
    const closed = await run('health', '--url', `127.0.0.1:${hangsUp.port}`, '--timeout', '3');
    expect(closed.code).toBe(1);
    expect(closed.err).toBe(`mcp: unhealthy: http://127.0.0.1:${hangsUp.port}/health: the connection was closed without an answer (is an mcp server on this port?)\n`);
    const other = await run('health', '--url', `127.0.0.1:${notHttp.port}`, '--timeout', '3');
    expect(other.code).toBe(1);
    expect(other.err).toBe(`mcp: unhealthy: http://127.0.0.1:${notHttp.port}/health: what answered is not HTTP (is an mcp server on this port?)\n`);
    for (const r of [closed, other]) expect(r.err).not.toContain('verbose');
  } finally {
    hangsUp.stop(true);
    notHttp.stop(true);
  }
});

test('another HTTP server on the port (a 404 page) is named as not mcp, not just "404"', async () => {
  const other = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('<html>nope</html>', { status: 404, headers: { 'content-type': 'text/html' } }) });
  try {
    const r = await run('health', '--url', `127.0.0.1:${other.port}`);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`mcp: unhealthy: http://127.0.0.1:${other.port}/health: 404 (not an answer of mcp: is an mcp server on this port?)\n`);
  } finally {
    other.stop(true);
  }
});
