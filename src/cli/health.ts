// `mcp health`: asks a running server's /health and exits 0 when it answers 200, else 1. Used as the
// Docker HEALTHCHECK (slim images have no curl) and by people checking a service.
import { defineCommand } from 'citty';
import { loadConfig } from '../config.ts';
import { maskSecrets } from '../log.ts';
import { say, UsageError } from './output.ts';

/**
 * /health is 200 while the process runs, whatever the pool can do (a container with no account yet
 * must not be restarted): the statuses where it can serve nothing say so.
 */
const POOL_HINTS: Record<string, string> = {
  no_accounts: 'the server is up, with no account yet: `mcp accounts add`',
  unavailable: 'the server is up, but no account can serve now: see `mcp accounts list`',
};

/** GETs url/health within timeoutMs; resolves to the status line to print and whether it was healthy. */
export async function checkHealth(baseUrl: string, timeoutMs: number): Promise<{ ok: boolean; line: string }> {
  const url = `${baseUrl.replace(/\/+$/, '')}/health`;
  // What is printed: a --url with a user and password (a reverse proxy's login) shows neither.
  const shown = maskSecrets(url);
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let status = '';
    let why: string | undefined;
    try {
      const body = JSON.parse(text) as { status?: unknown; storeError?: unknown; writeError?: unknown; usageError?: unknown };
      status = String(body.status ?? '');
      // "degraded" alone sends the user hunting: a database the server cannot read or write (a full disk) is named.
      const errors = [body.storeError, body.writeError, body.usageError].filter((e): e is string => typeof e === 'string' && e !== '');
      if (errors.length) why = errors.join('; ');
    } catch {
      // not JSON: the status code says enough
    }
    // mcp's /health always answers JSON with a status: anything else is another server on the port.
    const foreign = !status && res.status !== 200 ? 'not an answer of mcp: is an mcp server on this port?' : undefined;
    const hint = Object.hasOwn(POOL_HINTS, status) ? POOL_HINTS[status] : (why ?? foreign);
    return { ok: res.status === 200, line: `${shown}: ${res.status}${status ? ` ${status}` : ''}${hint ? ` (${hint})` : ''}` };
  } catch (err) {
    const e = err as Error & { code?: string };
    const why =
      e.name === 'TimeoutError'
        ? `no answer within ${timeoutMs}ms`
        : e.code === 'ECONNREFUSED'
          ? // Bun says "Is the computer able to access the url?": usually the server is just not running.
            'nothing is listening there (is `mcp serve` running, on this port? --url or PORT name another)'
          : e.code === 'ECONNRESET'
            ? 'the connection was closed without an answer (is an mcp server on this port?)'
            : /Malformed_HTTP_Response/i.test(`${e.code} ${e.message}`)
              ? 'what answered is not HTTP (is an mcp server on this port?)'
              : // Bun's advice to pass `verbose: true` to fetch() is for a programmer, not for someone running mcp.
                e.message.replace(/\s*For more information, pass `verbose: true`.*$/s, '');
    return { ok: false, line: `${shown}: ${why}` };
  }
}

/**
 * Where this machine reaches a server bound to `bindAddress`: the loopback address for a wildcard
 * bind, else that address itself (a server bound to one interface is not on 127.0.0.1).
 */
export function localBaseUrl(bindAddress: string, port: number): string {
  const bare = bindAddress.replace(/^\[(.*)\]$/, '$1');
  const host = bare === '' || bare === '0.0.0.0' ? '127.0.0.1' : bare === '::' ? '[::1]' : bare.includes(':') ? `[${bare}]` : bare;
  return `http://${host}:${port}`;
}

/** The --url as given, or with http:// when it has no scheme (host:port, as curl takes it). */
export function healthBaseUrl(text: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL | null = null;
  try {
    url = new URL(withScheme);
  } catch {
    // refused below
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new UsageError(`--url must be an http:// or https:// address, got "${text}"`);
  }
  return withScheme;
}

/** Longer is no health check; far longer (1e300) broke the timer with an engine message. */
const MAX_TIMEOUT_SEC = 3600;

export const healthCommand = defineCommand({
  meta: { name: 'health', description: "Check a running server's /health (exit 0 healthy, 1 not)" },
  args: {
    url: { type: 'string', valueHint: 'url', description: 'Server base URL (default http://127.0.0.1:$PORT, or $BIND_ADDRESS when it is one address)' },
    timeout: { type: 'string', valueHint: 'seconds', description: 'Give up after this long (default 5)' },
  },
  async run({ args }) {
    const timeoutSec = Number(args.timeout ?? '5');
    if (!Number.isFinite(timeoutSec) || timeoutSec <= 0) throw new UsageError(`--timeout must be a positive number of seconds, got "${args.timeout}"`);
    if (timeoutSec > MAX_TIMEOUT_SEC) throw new UsageError(`--timeout must be at most ${MAX_TIMEOUT_SEC} seconds (an hour), got "${args.timeout}"`);
    let base = args.url?.trim() ? healthBaseUrl(args.url.trim()) : '';
    if (!base) {
      const config = loadConfig(process.env, {}, { requireApiKey: false });
      base = localBaseUrl(config.bindAddress, config.port);
    }
    const r = await checkHealth(base, timeoutSec * 1000);
    if (!r.ok) throw new Error(`unhealthy: ${r.line}`);
    say(`healthy: ${r.line}`);
  },
});
