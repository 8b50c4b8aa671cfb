// `bun run docker:smoke [--engine docker|podman] [--image NAME] [--build] [--memory LIMIT]`: the container
// image as a user runs it, under a memory limit (default 160m; 0 for none), against the fake Cloud
// Code upstream (test/fakes/bench-upstream.ts) on this machine's loopback, with a burst of load. Linux only: the container shares the host's network to reach the fake.
// Each step prints PASS or FAIL; the exit code is the number of failed steps (2 when it cannot start).
import { BENCH_REFRESH_TOKEN, STREAM50_MARKER, startBenchUpstream } from '../test/fakes/bench-upstream.ts';
import { bigRequest } from './bench.ts';
import { join } from 'node:path';
import { expect, failedSteps, freePort, step, waitFor } from './smoke-steps.ts';

const ROOT = join(import.meta.dir, '..');
const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const ENGINE = opt('--engine') ?? (Bun.which('docker') ? 'docker' : 'podman');
const IMAGE = opt('--image') ?? 'multi-claude-proxy';
/** The container's memory limit (RAM, no swap); a small VPS's budget. */
const MEMORY = opt('--memory') ?? '160m';
const KEY = 'smoke-proxy-key-0123456789';
const tag = Math.random().toString(36).slice(2, 8);
const NAME = `mcp-smoke-${tag}`;
const VOLUME = `mcp-smoke-${tag}`;

/** Runs the engine without blocking: the fake upstream lives in this process and must keep answering. */
async function engine(cmd: string[], opts: { check?: boolean } = {}): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn([ENGINE, ...cmd], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const r = { code, out, err };
  if (opts.check && r.code !== 0) throw new Error(`${ENGINE} ${cmd.join(' ')} failed (${r.code}): ${r.err.trim().slice(-500)}`);
  return r;
}

async function main(): Promise<void> {
  if (!Bun.which(ENGINE)) throw new Error(`${ENGINE} not found (choose one with --engine docker|podman)`);
  if (args.includes('--build')) {
    const commit = Bun.spawnSync(['git', 'rev-parse', '--short', 'HEAD'], { cwd: ROOT }).stdout.toString().trim() || 'unknown';
    console.log(`building ${IMAGE} with ${ENGINE}…`);
    await engine(['build', '--network', 'host', '--build-arg', `MCP_COMMIT=${commit}`, '-t', IMAGE, '.'], { check: true });
  }
  const up = startBenchUpstream();
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = { ...up.env(), PROXY_API_KEY: KEY, PORT: String(port) };
  const envArgs = Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  const runArgs = ['--network', 'host', '-v', `${VOLUME}:/data`, ...envArgs, IMAGE];
  const healthy = async () => (await fetch(`${url}/health`)).status === 200;
  const post = (stream: boolean) =>
    fetch(`${url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': KEY, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 64, stream, messages: [{ role: 'user', content: 'Say hello.' }] }),
    });

  try {
    await step('the container starts read-only and answers /health', async () => {
      const limit = MEMORY === '0' ? [] : ['--memory', MEMORY, '--memory-swap', MEMORY];
      await engine(['run', '-d', '--name', NAME, '--read-only', ...limit, ...runArgs], { check: true });
      await waitFor('/health', healthy, 30_000);
    });
    await step('it runs as the unprivileged user mcp (uid 10001)', async () => {
      const id = (await engine(['exec', NAME, 'id', '-u'], { check: true })).out.trim();
      expect(id === '10001', `uid ${id}`);
    });
    await step('`mcp accounts add` inside the container', async () => {
      const r = await engine(['exec', NAME, 'mcp', 'accounts', 'add', '--provider', 'antigravity', '--refresh-token', BENCH_REFRESH_TOKEN], { check: true });
      expect(/^added acc_[0-9a-f]{8}/.test(r.out), r.out.trim());
      expect(!r.out.includes(BENCH_REFRESH_TOKEN), 'the refresh token was printed');
    });
    await step('the running server picks the account up and answers a request', async () => {
      let text = '';
      await waitFor(
        'a 200',
        async () => {
          const res = await post(false);
          text = await res.text();
          return res.status === 200;
        },
        15_000,
      );
      expect(text.includes('"type":"message"'), text.slice(0, 200));
    });
    await step('a streamed request ends with message_stop', async () => {
      const res = await post(true);
      const text = await res.text();
      expect(res.status === 200 && text.includes('event: message_stop'), `${res.status} ${text.slice(-200)}`);
    });
    await step(`under the memory limit (${MEMORY}), 16 concurrent 90 KB turns for 10 s and then 100 concurrent streams all succeed`, async () => {
      const big = JSON.stringify(bigRequest());
      const streamBody = JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 64, stream: true, messages: [{ role: 'user', content: `Count. ${STREAM50_MARKER}` }] });
      const send = async (body: string): Promise<boolean> => {
        const res = await fetch(`${url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': KEY, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' }, body });
        return res.status === 200 && (await res.text()).includes('event: message_stop');
      };
      let turns = 0;
      let bad = 0;
      const until = Date.now() + 10_000;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (Date.now() < until) (await send(big).catch(() => false)) ? turns++ : bad++;
        }),
      );
      const streams = await Promise.all(Array.from({ length: 100 }, () => send(streamBody).catch(() => false)));
      const lostStreams = streams.filter((ok) => !ok).length;
      const oom = (await engine(['inspect', '--format', '{{.State.OOMKilled}}', NAME])).out.trim();
      const hwm = /VmHWM:\s+(\d+) kB/.exec((await engine(['exec', NAME, 'cat', '/proc/1/status'])).out)?.[1];
      expect(bad === 0 && lostStreams === 0 && oom !== 'true', `${bad} failed turns, ${lostStreams} failed streams, OOMKilled ${oom}`);
      return `${turns} turns, 100 streams; the server's peak RSS ${hwm ? `${Math.round(Number(hwm) / 1024)} MB` : 'unknown'}`;
    });
    await step('the HEALTHCHECK command passes', async () => {
      await engine(['exec', NAME, 'mcp', 'health', '--timeout', '4'], { check: true });
    });
    await step('every line of the container output is JSON (LOG_FORMAT=json)', async () => {
      const r = await engine(['logs', NAME], { check: true });
      const lines = `${r.out}${r.err}`.split('\n').filter((l) => l.trim());
      expect(lines.length >= 2, `${lines.length} lines`);
      for (const l of lines) {
        try {
          JSON.parse(l);
        } catch {
          throw new Error(`not JSON: ${l.slice(0, 200)}`);
        }
      }
      expect(!lines.some((l) => l.includes(KEY) || l.includes(BENCH_REFRESH_TOKEN)), 'a secret is in the output');
      return `${lines.length} lines`;
    });
    await step('`stop` (SIGTERM) ends it with exit code 0', async () => {
      await engine(['stop', '-t', '45', NAME], { check: true });
      const code = (await engine(['inspect', '--format', '{{.State.ExitCode}}', NAME], { check: true })).out.trim();
      expect(code === '0', `exit code ${code}`);
    });
    await step('after a restart the account is still there (the volume keeps the database)', async () => {
      await engine(['start', NAME], { check: true });
      await waitFor('/health', healthy, 30_000);
      const list = (await engine(['exec', NAME, 'mcp', 'accounts', 'list', '--json'], { check: true })).out;
      expect((JSON.parse(list) as unknown[]).length === 1, list.trim());
      const res = await post(false);
      expect(res.status === 200, `status ${res.status}: ${await res.text()}`);
    });
    await engine(['rm', '-f', NAME]);
    await step('run as another uid, it says the volume is not writable by that uid, in one line', async () => {
      const r = await engine(['run', '--rm', '--user', '12345:12345', ...runArgs]);
      const lines = `${r.out}${r.err}`.split('\n').filter((l) => l.trim());
      expect(r.code === 1, `exit code ${r.code}`);
      expect(lines.length === 1, lines.join(' | '));
      const line = JSON.parse(lines[0]!) as { level?: string; msg?: string };
      expect(line.level === 'fatal' && !!line.msg?.includes('is not writable by uid 12345, owned by uid 10001'), lines[0]!);
    });
  } finally {
    await engine(['rm', '-f', NAME]);
    await engine(['volume', 'rm', '-f', VOLUME]);
    await up.stop();
  }
  const failed = failedSteps();
  console.log(failed ? `${failed} step(s) failed` : `the image ${IMAGE} passed every step`);
  process.exit(failed);
}

main().catch((err) => {
  console.error(`docker smoke test failed: ${(err as Error).message}`);
  process.exit(2);
});
