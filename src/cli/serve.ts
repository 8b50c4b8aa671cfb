// `mcp serve`: config -> log -> store -> providers -> routing -> HTTP, then a graceful stop on
// SIGTERM/SIGINT/SIGHUP (and Ctrl+Break or a closed console on Windows): stop accepting, let in-flight
// streams finish within the grace period.
import { readFileSync } from 'node:fs';
import { defineCommand } from 'citty';
import { type Config, ConfigError, type ConfigFlags, exposureWarning, loadConfig } from '../config.ts';
import { bannerLine, configureLog, log, registerSecret } from '../log.ts';
import type { Database } from 'bun:sqlite';
import { openDatabase } from '../store/db.ts';
import { type Account, listAccounts } from '../store/accounts.ts';
import type { Pool } from '../pool/pool.ts';
import { observeRequest } from '../request-metrics.ts';
import { createUsageRecorder } from '../usage-recorder.ts';
import { localBaseUrl } from './health.ts';
import { importOnFirstStart } from './import.ts';
import { noteServing, sharedDataDirWarning } from './serving.ts';
import { JsonLogError, say, UsageError, warn } from './output.ts';

/** Registers every credential of the accounts so no log line can carry one. */
export function registerAccountSecrets(accounts: readonly Account[]): void {
  for (const a of accounts) {
    const c = a.credentials;
    if (c.kind === 'api_key') registerSecret(c.apiKey);
    else {
      registerSecret(c.refreshToken);
      registerSecret(c.accessToken);
    }
  }
}

/** Accounts the CLI adds while the server runs are masked too, from the sync that brings them in. */
export function maskAccountsAddedLater(pool: Pick<Pool, 'onAccountsAdded' | 'account'>): void {
  pool.onAccountsAdded((ids) => registerAccountSecrets(ids.flatMap((id) => pool.account(id) ?? [])));
}

/** Flags as citty parsed them -> the config's flag shape (undefined = not given). */
export function serveFlags(args: Record<string, unknown>): ConfigFlags {
  const flags: ConfigFlags = {};
  if (args.port === '' || args.port === true) throw new UsageError('--port needs a value, e.g. --port 8080');
  if (args.port !== undefined) flags.port = String(args.port);
  if (typeof args.debug === 'boolean') flags.debug = args.debug;
  if (typeof args.fallback === 'boolean') flags.fallback = args.fallback;
  const soft = args['soft-limit'] ?? args.softLimit;
  // citty turns --no-soft-limit into soft-limit=false; a bare --soft-limit arrives as "", and one
  // followed by another option takes that option as its value.
  if (soft === false) flags.noSoftLimit = true;
  else if (soft === '' || soft === true || (typeof soft === 'string' && soft.startsWith('--'))) {
    throw new UsageError('--soft-limit needs a threshold, e.g. --soft-limit 0.3 (--no-soft-limit turns soft limits off)');
  } else if (typeof soft === 'string') flags.softLimit = soft;
  return flags;
}

/**
 * A stray rejection or exception (a background task's bug) must neither kill a server that is
 * serving streams nor print a stack trace: one error line, the stack at debug level. Returns the
 * function that takes the guards off again.
 */
export function installStrayErrorGuards(): () => void {
  const report = (kind: string) => (err: unknown) => {
    const e = err as Error | null;
    log.error(`${kind}: ${e?.message ?? String(err)} (a bug: please report it)`);
    if (e?.stack) log.debug(e.stack);
  };
  const onRejection = report('unhandled rejection');
  const onException = report('uncaught exception');
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}

/**
 * The signals that stop the server gracefully. On Windows Ctrl+C is SIGINT but SIGTERM never comes;
 * Ctrl+Break arrives as SIGBREAK and closing the console window as SIGHUP (a few seconds before
 * Windows ends the process), and without a handler each kills it outright. Elsewhere SIGHUP (the
 * terminal or SSH session closed) killed it outright too, cutting streams and losing the usage
 * rows not yet written; it is handled unless the process inherited it ignored: a handler would
 * undo the ignore that `nohup mcp serve &` relies on. Where that cannot be told (no /proc), it is
 * left alone.
 */
export function stopSignals(platform: string = process.platform, hupIgnored: boolean | null = platform === 'linux' ? sighupIgnored() : null): NodeJS.Signals[] {
  if (platform === 'win32') return ['SIGTERM', 'SIGINT', 'SIGBREAK', 'SIGHUP'];
  return hupIgnored === false ? ['SIGTERM', 'SIGINT', 'SIGHUP'] : ['SIGTERM', 'SIGINT'];
}

/** Whether SIGHUP is ignored in this process (`nohup`), from Linux's /proc status; null when it cannot be read. */
export function sighupIgnored(status: () => string = () => readFileSync('/proc/self/status', 'utf8')): boolean | null {
  try {
    const m = /^SigIgn:\s*([0-9a-f]+)\s*$/im.exec(status());
    // SIGHUP is signal 1: the lowest bit of the mask.
    return m ? (Number.parseInt(m[1]!.slice(-1), 16) & 1) === 1 : null;
  } catch {
    return null;
  }
}

/** How long the requests ended at the end of the grace get to write their error before their connections are cut. */
const STOP_FLUSH_MS = 1_000;
/** The same on a second signal, which asks for the stop at once. */
const STOP_NOW_MS = 100;

const BIND_HINT = 'BIND_ADDRESS; 0.0.0.0 for every interface, 127.0.0.1 for this machine only';

/** Why listen() failed, in words a person can act on (Bun says "ENOENT" for a name with no address). */
export function listenFailure(host: string, port: number, err: unknown): Error {
  const e = err as { code?: string; message?: string } | null;
  const code = e?.code ?? '';
  const message = e?.message ?? String(err);
  if (code === 'EADDRINUSE' || /in use|EADDRINUSE/i.test(message)) {
    return new Error(`port ${port} on ${host} is already in use (choose another with --port or PORT)`);
  }
  const where = `cannot listen on ${host}:${port}`;
  if (code === 'ENOENT') return new Error(`${where}: the host name ${host} has no address (${BIND_HINT})`);
  if (code === 'EADDRNOTAVAIL') return new Error(`${where}: ${host} is not an address of this machine (${BIND_HINT})`);
  if (code === 'EACCES') return new Error(`${where}: permission denied (ports below 1024 need privileges; choose another with --port or PORT)`);
  return new Error(`${where}: ${message}`);
}

function displayHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/**
 * The start-up line: the address bound, and a dashboard link on an address a browser here opens
 * (browsers refuse http://0.0.0.0, so a wildcard bind links to loopback).
 */
export function listeningLine(bindAddress: string, port: number, accounts: number): string {
  const s = accounts === 1 ? '' : 's';
  return `mcp listening on http://${displayHost(bindAddress)}:${port} (${accounts} account${s}); dashboard: ${localBaseUrl(bindAddress, port)}/dashboard`;
}

export async function serve(flags: ConfigFlags, env: Record<string, string | undefined> = process.env): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(env, flags);
  } catch (err) {
    // A bad flag value is a wrong invocation (exit 2), as for every other command's flags.
    const refused = err instanceof ConfigError && err.message.startsWith('--') ? new UsageError(err.message) : err;
    // LOG_FORMAT=json promises a whole output that parses as JSON: the refusal too.
    throw env.LOG_FORMAT?.trim().toLowerCase() === 'json' ? new JsonLogError(refused) : refused;
  }
  configureLog({ format: config.logFormat, debug: config.debug });
  for (const k of config.proxyApiKeys) registerSecret(k);
  try {
    await runServer(config);
  } catch (err) {
    throw config.logFormat === 'json' ? new JsonLogError(err) : err;
  }
}

/**
 * The server's parts over one open database: providers, routing (pool, gateway, ops), usage
 * recording and the HTTP app, not yet listening. `serve` runs them; scripts/soak.ts too.
 */
export async function assembleServer(db: Database, config: Config) {
  // Loaded here, not at the top, so `mcp --help` and `mcp accounts …` stay quick.
  const [{ createRouting, providerDepsFor }, { createProviders }, { createApp, startServer }] = await Promise.all([
    import('../gateway/index.ts'),
    import('../providers/index.ts'),
    import('../server/app.ts'),
  ]);
  const providerDeps = providerDepsFor(db, () => Date.now());
  const providers = createProviders(config, providerDeps);
  const recorder = createUsageRecorder(db, { retentionDays: config.usageRetentionDays });
  const routing = createRouting({ db, config, providers, usageTrouble: () => recorder.trouble(), accountWriteTrouble: () => providerDeps.writeTrouble() });
  maskAccountsAddedLater(routing.pool);
  const shutdown = { cutting: false, stop: new AbortController(), drain: new AbortController() };
  const app = createApp({
    config,
    gateway: routing.gateway,
    ops: routing.ops,
    cutting: () => shutdown.cutting,
    stopping: shutdown.stop.signal,
    draining: shutdown.drain.signal,
    // Usage rows are queued and written in batches; the metrics are in-memory counters.
    onRequestDone: (r) => {
      recorder.record(r);
      observeRequest(r);
    },
  });
  return { routing, recorder, app, startServer, shutdown, providerDeps };
}

/**
 * Keeps a stop signal that comes while the server starts (a restart right after a start, Ctrl+C at
 * once), which would otherwise kill the process where it stands, without a word; start-up honours
 * it as soon as it can. `release` hands the signals back (to the running server's handler, or none).
 */
export function holdStopSignals(signals: NodeJS.Signals[] = stopSignals()): { signal: NodeJS.Signals | null; release(): void } {
  const held = {
    signal: null as NodeJS.Signals | null,
    release: () => {
      for (const s of signals) process.off(s, hold);
    },
  };
  const hold = (s: NodeJS.Signals) => {
    held.signal ??= s;
  };
  for (const s of signals) process.on(s, hold);
  return held;
}

async function runServer(config: Config): Promise<void> {
  const early = holdStopSignals();
  let db: Database;
  let parts: Awaited<ReturnType<typeof assembleServer>>;
  let accounts: Account[];
  try {
    db = openDatabase(config.dbPath, { check: true });
    // Moving over from the Go or Node proxy: their accounts.json is imported once.
    importOnFirstStart(db, config.accountsConfigPath, (level, line) => log[level](line));
    accounts = listAccounts(db);
    registerAccountSecrets(accounts);
    parts = await assembleServer(db, config);
    // A signal that came during the synchronous steps above is delivered on a later turn of the loop.
    await new Promise((resolve) => setImmediate(resolve));
  } catch (err) {
    early.release();
    throw err;
  }
  const { routing, recorder, app, startServer, shutdown, providerDeps } = parts;
  if (early.signal) {
    early.release();
    recorder.stop();
    db.close();
    log.info(`${early.signal} during start-up: stopped before serving`);
    return;
  }

  let server: ReturnType<typeof startServer> | undefined;
  try {
    server = startServer(config, app);
  } catch (err) {
    early.release();
    recorder.stop();
    db.close();
    throw listenFailure(config.bindAddress, config.port, err);
  }
  const port = server.port ?? config.port;

  const removeGuards = installStrayErrorGuards();
  await routing.start();
  const n = accounts.length;
  say(bannerLine(listeningLine(config.bindAddress, port, n)));
  // Once it really listens: a start that fails has nothing exposed to warn about.
  const exposed = exposureWarning(config);
  if (exposed) log.warn(exposed);
  const serving = noteServing(db, port, config.bindAddress);
  const shared = sharedDataDirWarning(serving.others, config.dataDir);
  if (shared) log.warn(shared);
  if (n === 0) {
    say(bannerLine('no accounts yet: add one with `mcp accounts add --provider zai` (it asks for the key) or `--provider antigravity`; a running server picks it up'));
  }

  await new Promise<void>((resolveStopped) => {
    const signals = stopSignals();
    let stopping = false;
    /**
     * The stop a second signal asks for: at once, but what is known still lands. The requests still
     * running end as at the end of the grace (and are recorded so), then the usage rows and the
     * pool's state waiting in memory are written, as a graceful stop would.
     */
    const stopNow = async (): Promise<void> => {
      shutdown.cutting = true;
      shutdown.drain.abort();
      shutdown.stop.abort();
      await Promise.race([server?.stop(true), Bun.sleep(STOP_NOW_MS)]);
      for (const step of [() => recorder.stop(), () => routing.pool.stop(), () => providerDeps.flush(), serving.unnote, () => db.close()]) {
        try {
          step();
        } catch {
          // the graceful stop got there first (the database is closed), or the store refuses: nothing more to do
        }
      }
    };
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        // A closed terminal can send two (the kernel's, then the shell's to its jobs): only a person insists.
        if (signal === 'SIGHUP') return;
        warn('mcp: second signal, stopping now');
        void stopNow()
          .catch(() => {})
          .finally(() => process.exit(1));
        return;
      }
      stopping = true;
      log.info(`${signal}: stopping (in-flight requests get up to ${config.shutdownGraceSec}s)`);
      void (async () => {
        const graceMs = config.shutdownGraceSec * 1000;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const graceful = server ? server.stop(false) : Promise.resolve();
        // A request still waiting for an account has nothing upstream to finish: it is answered now.
        shutdown.drain.abort();
        const finished = await Promise.race([
          Promise.resolve(graceful).then(() => true),
          new Promise<boolean>((r) => {
            timer = setTimeout(() => r(false), graceMs);
          }),
        ]);
        clearTimeout(timer);
        if (!finished) {
          log.warn('grace period over: ending the requests still running, then closing their connections');
          shutdown.cutting = true;
          // Each one still running ends with a clean error (a 529, or an `error` event in a stream)
          // rather than a cut connection; a client that does not read it is cut after a moment.
          shutdown.stop.abort();
          await Promise.race([graceful, Bun.sleep(STOP_FLUSH_MS)]);
          await server?.stop(true);
        }
        try {
          await routing.stop();
        } catch (err) {
          log.warn(`routing did not stop cleanly: ${(err as Error).message}`);
        }
        recorder.stop();
        // The thinking the last answers streamed must be known as the provider's own after the restart.
        providerDeps.flush();
        serving.unnote();
        db.close();
        for (const s of signals) process.off(s, onSignal);
        removeGuards();
        resolveStopped();
      })();
    };
    early.release();
    for (const s of signals) process.on(s, onSignal);
    // One that came while it started up: the stop is as for any other, nothing is in flight yet.
    if (early.signal) onSignal(early.signal);
  });
}

const ENV_HELP = `Environment (flags win over it):
  PROXY_API_KEY (required)  the key clients send as x-api-key or Authorization: Bearer; several, comma-separated, are each accepted
  PORT, BIND_ADDRESS (0.0.0.0), DEBUG, ENABLE_FALLBACK, SOFT_LIMIT_THRESHOLD (0.20), SOFT_LIMIT_ENABLED,
  READ_TIMEOUT_SEC, WRITE_TIMEOUT_SEC, IDLE_TIMEOUT_SEC, UPSTREAM_IDLE_TIMEOUT_SEC, PING_INTERVAL_SEC,
  MAX_WAIT_SEC, MAX_ATTEMPTS, MAX_CONCURRENT_PER_ACCOUNT, DEFAULT_COOLDOWN_SEC, QUOTA_POLL_INTERVAL_SEC, SHUTDOWN_GRACE_SEC,
  CORS_ENABLED, CORS_ALLOW_ORIGIN, CORS_ALLOW_METHODS, CORS_ALLOW_HEADERS, CORS_MAX_AGE,
  MCP_DATA_DIR, LOG_FORMAT (pretty|json), USAGE_RETENTION_DAYS, MODEL_MAP, FALLBACK_MAP,
  ZAI_BASE_URL, ZAI_QUOTA_URL, ZAI_STRIP_BETAS, ANTIGRAVITY_ENDPOINTS, ANTIGRAVITY_USER_AGENT, ANTIGRAVITY_VERSION_URL,
  ANTIGRAVITY_THINKING_REPLAY, ANTIGRAVITY_AI_CREDITS,
  UPSTREAM_HTTP_CLIENT (native|fetch), HTTPS_PROXY, HTTP_PROXY, NO_PROXY (with a proxy set, fetch is the default client),
  ACCOUNTS_CONFIG_PATH, BUN_JSC_forceRAMSize (garbage-collector hint, 0 = off),
  BUN_JSC_mediumHeapRAMFraction (how much of that size the heap fills before it grows slowly: 0.82; the engine's own is 0.9),
  BUN_JSC_useFTLJIT (JavaScriptCore's top JIT tier, off for serve unless set to true),
  GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET, GOOGLE_OAUTH_AUTH_URL, GOOGLE_OAUTH_TOKEN_URL, GOOGLE_USERINFO_URL
See README.md for what each one does.`;

export const serveCommand = defineCommand({
  meta: { name: 'serve', description: 'Start the proxy (needs PROXY_API_KEY)' },
  args: {
    port: { type: 'string', alias: 'p', valueHint: 'port', description: 'Port to listen on (env PORT, default 8080)' },
    debug: { type: 'boolean', description: 'Debug logging (env DEBUG)' },
    fallback: { type: 'boolean', description: 'Serve a fallback model when every account is limited (env ENABLE_FALLBACK)' },
    'soft-limit': {
      type: 'string',
      valueHint: 'threshold',
      description:
        'Avoid accounts whose remaining quota is at or below this fraction (env SOFT_LIMIT_THRESHOLD, default 0.20); --no-soft-limit turns it off',
    },
  },
  async run({ args }) {
    await serve(serveFlags(args as Record<string, unknown>));
  },
});
/** Shown under the options by `mcp serve --help`. */
(serveCommand as { footer?: string }).footer = ENV_HELP;
