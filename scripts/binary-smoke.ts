// `bun run binary:smoke <binary> [--via "<runner> <args>"]`: one release artefact as a user runs it,
// against the fake Cloud Code upstream (test/fakes/bench-upstream.ts) on loopback: --version,
// `accounts add`, `serve`, a plain and a streamed request, the thinking stream, `accounts list`, and
// exit 0 on SIGTERM. `--via` runs the binary through an emulator, e.g. for linux-arm64 on x86-64:
//   bun run binary:smoke dist/mcp-0.1.0-linux-arm64 --via "qemu-aarch64-static -L /path/to/arm64-rootfs"
// Each step prints PASS or FAIL; the exit code is the number of failed steps (2 when it cannot start).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, failedSteps, freePort, step, waitFor } from './smoke-steps.ts';
import { BENCH_REFRESH_TOKEN, STREAM50_MARKER, THINKING_MARKER, startBenchUpstream } from '../test/fakes/bench-upstream.ts';

const args = process.argv.slice(2);
const viaAt = args.indexOf('--via');
const via = viaAt >= 0 ? (args[viaAt + 1] ?? '').split(/\s+/).filter(Boolean) : [];
const binArg = args.find((a, i) => !a.startsWith('--') && (viaAt < 0 || i !== viaAt + 1));
const KEY = 'smoke-proxy-key-0123456789';

async function main(): Promise<void> {
  if (!binArg) throw new Error('usage: bun run binary:smoke <binary> [--via "<runner> <args>"]');
  const cmd = [...via, resolve(binArg)];
  const up = startBenchUpstream();
  const dir = mkdtempSync(join(tmpdir(), 'mcp-binary-smoke-'));
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, MCP_DATA_DIR: join(dir, 'data'), ...up.env(), PROXY_API_KEY: KEY, PORT: String(port), NO_COLOR: '1' };
  const run = async (more: string[]) => {
    const p = Bun.spawn([...cmd, ...more], { env, stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { out, err, code };
  };
  const post = async (text: string, stream: boolean) => {
    const res = await fetch(`${url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': KEY, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 64, stream, messages: [{ role: 'user', content: text }] }),
    });
    return { status: res.status, text: await res.text() };
  };
  let server: ReturnType<typeof Bun.spawn> | null = null;
  try {
    await step('--version', async () => {
      const r = await run(['--version']);
      expect(r.code === 0 && /^mcp \S+ \(\S+\)\n$/.test(r.out), `${r.code}: ${r.out}${r.err}`);
      return r.out.trim();
    });
    await step('`accounts add` with a refresh token', async () => {
      const r = await run(['accounts', 'add', '--provider', 'antigravity', '--refresh-token', BENCH_REFRESH_TOKEN]);
      expect(r.code === 0 && /^added acc_[0-9a-f]{8}/.test(r.out), `${r.code}: ${r.out}${r.err}`);
      expect(!`${r.out}${r.err}`.includes(BENCH_REFRESH_TOKEN), 'the refresh token was printed');
    });
    await step('`serve` answers /health', async () => {
      server = Bun.spawn([...cmd, 'serve'], { env, stdout: 'ignore', stderr: 'ignore', stdin: 'ignore' });
      await waitFor('/health', async () => (await fetch(`${url}/health`)).status === 200, 60_000);
    });
    await step('a plain request', async () => {
      const r = await post('Say hello.', false);
      expect(r.status === 200 && r.text.includes('"type":"message"'), `${r.status} ${r.text.slice(0, 200)}`);
    });
    await step('a 50-chunk stream ends with message_stop', async () => {
      const r = await post(`Count. ${STREAM50_MARKER}`, true);
      expect(r.status === 200 && r.text.includes('event: message_stop'), `${r.status} ${r.text.slice(-200)}`);
    });
    await step('a thinking stream carries its signature', async () => {
      const r = await post(`Think. ${THINKING_MARKER}`, true);
      expect(r.status === 200 && r.text.includes('signature_delta') && r.text.includes('event: message_stop'), `${r.status} ${r.text.slice(-200)}`);
    });
    await step('`accounts list --json` shows the account', async () => {
      const r = await run(['accounts', 'list', '--json']);
      expect(r.code === 0 && (JSON.parse(r.out) as unknown[]).length === 1, `${r.code}: ${r.out}${r.err}`);
    });
    await step('SIGTERM ends `serve` with exit code 0', async () => {
      const s = server as unknown as { kill(sig: string): void; exited: Promise<number> };
      s.kill('SIGTERM');
      const code = await s.exited;
      server = null;
      expect(code === 0, `exit code ${code}`);
    });
  } finally {
    (server as unknown as { kill(): void } | null)?.kill();
    await up.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const failed = failedSteps();
  console.log(failed ? `${failed} step(s) failed` : `${binArg} passed every step`);
  process.exit(failed);
}

main().catch((err) => {
  console.error(`binary smoke test failed: ${(err as Error).message}`);
  process.exit(2);
});
