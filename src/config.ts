// Flags + environment -> one frozen, validated Config. Flags beat environment, environment beats
// defaults. A bad value is refused with a message naming the variable, never a stack trace.
import { isIPv4, isIPv6 } from 'node:net';
import { homedir } from 'node:os';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface CorsConfig {
  enabled: boolean;
  allowOrigin: string;
  allowMethods: string;
  allowHeaders: string;
  /**
   * CORS_ALLOW_HEADERS unset: a preflight is allowed the headers it asks for (a browser SDK sends
   * its own, x-stainless-* and the like), allowHeaders when it asks for none.
   */
  reflectHeaders: boolean;
  maxAge: number;
}

export interface Config {
  port: number;
  bindAddress: string;
  debug: boolean;
  fallback: boolean;
  softLimitEnabled: boolean;
  /** Remaining fraction at or below which an account is soft-limited for a model. */
  softLimitThreshold: number;
  readTimeoutSec: number;
  writeTimeoutSec: number;
  /** Idle keep-alive connections are closed after this. */
  idleTimeoutSec: number;
  /** An upstream silent this long is abandoned (fail over before the first byte, error event after). */
  upstreamIdleTimeoutSec: number;
  /** Upstream HTTP client for Antigravity and Z.AI: Bun's `fetch` or our HTTP/1.1 client on the main loop. */
  upstreamHttpClient: 'native' | 'fetch';
  /** Seconds of upstream silence between pings to the client. */
  pingIntervalSec: number;
  /** When every account is limited: wait for the earliest reset if it is within this, else 429. */
  maxWaitSec: number;
  /** Upstream attempts per request (accounts and endpoints). */
  maxAttempts: number;
  /** Requests one account serves at once; 0 = no cap (an account's own cap, set with the CLI, wins). */
  maxConcurrentPerAccount: number;
  /** Cool-down when an upstream limits without saying for how long. */
  defaultCooldownSec: number;
  quotaPollIntervalSec: number;
  cors: CorsConfig;
  /** The keys clients may send (PROXY_API_KEY, comma-separated): any of them is accepted. */
  proxyApiKeys: string[];
  dataDir: string;
  dbPath: string;
  logFormat: 'pretty' | 'json';
  bodyLimitBytes: number;
  usageRetentionDays: number;
  shutdownGraceSec: number;
  /** Client model name -> upstream model id, merged over the built-in aliases. */
  modelMap: Record<string, string>;
  /** Model -> fallback model, merged over the built-in map. */
  fallbackMap: Record<string, string>;
  /** stripBetas: send Z.AI no anthropic-beta (a switch for when betas draw 1302s, protocol 3.4.2). */
  zai: { baseUrl: string; quotaUrl: string; stripBetas: boolean };
  antigravity: {
    endpoints: string[];
    userAgent: string;
    /** ANTIGRAVITY_USER_AGENT was set: the User-Agent is the user's and is never moved on. */
    userAgentPinned: boolean;
    /** Antigravity's updater manifest, read when Google turns the client version away; null: never. */
    versionUrl: string | null;
    clientId: string;
    clientSecret: string;
    authUrl: string;
    tokenUrl: string;
    userinfoUrl: string;
    /**
     * How Claude thinking is replayed to Google: signature on the thought part ("inline", what the
     * proxies do) or on the part after it ("split", what Google's own client sends). A switch in case
     * Google starts refusing one form (antigravity.md §16).
     */
    claudeThinkingReplay: 'inline' | 'split';
    /**
     * ANTIGRAVITY_AI_CREDITS: after an account's quota for a model runs out, go on spending its
     * Google One AI credits (antigravity.md §13.3). Costs money, so off unless asked for.
     */
    aiCredits: boolean;
  };
  /** Legacy accounts.json to import once on first start. */
  accountsConfigPath: string | null;
}

export type Env = Record<string, string | undefined>;

/** Values given as command-line flags (undefined = not given). */
export interface ConfigFlags {
  port?: string | number;
  debug?: boolean;
  fallback?: boolean;
  softLimit?: string | number | boolean;
  noSoftLimit?: boolean;
}

export const DEFAULTS = {
  port: 8080,
  bindAddress: '0.0.0.0',
  softLimitThreshold: 0.2,
  readTimeoutSec: 600,
  writeTimeoutSec: 600,
  idleTimeoutSec: 120,
  upstreamIdleTimeoutSec: 120,
  upstreamHttpClient: 'native' as 'native' | 'fetch',
  pingIntervalSec: 15,
  maxWaitSec: 120,
  maxAttempts: 5,
  maxConcurrentPerAccount: 0,
  defaultCooldownSec: 60,
  quotaPollIntervalSec: 300,
  bodyLimitBytes: 50 * 1024 * 1024,
  usageRetentionDays: 30,
  shutdownGraceSec: 30,
  zaiBaseUrl: 'https://api.z.ai/api/anthropic',
  zaiQuotaUrl: 'https://api.z.ai/api/monitor/usage/quota/limit',
  antigravityEndpoints: ['https://daily-cloudcode-pa.googleapis.com', 'https://cloudcode-pa.googleapis.com'],
  antigravityUserAgent: 'antigravity/hub/2.9.1 darwin/arm64',
  // The hub's updater manifest (antigravity.md §4.3): YAML with `version: X.Y.Z`.
  antigravityVersionUrl: 'https://antigravity-hub-auto-updater-974169037036.us-central1.run.app/manifest/latest-arm64-mac.yml',
  // The public installed-app client of the Antigravity IDE (not a secret: shipped in every client).
  googleClientId: '1071006060591-tmhssin2h21lcre235vtolojh4g403ep.apps.googleusercontent.com',
  googleClientSecret: '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',
  googleAuthUrl: 'https://accounts.google.com/o/oauth2/v2/auth',
  googleTokenUrl: 'https://oauth2.googleapis.com/token',
  googleUserinfoUrl: 'https://www.googleapis.com/oauth2/v1/userinfo',
} as const;

/**
 * A path setting with a leading `~` or `~/` made the home directory's, as users write it: a shell
 * expands it only unquoted, and a .env file or the service's environment file never do. `~user` is
 * left alone (another user's home is not ours to guess).
 */
export function expandHome(path: string, home: string): string {
  return /^~(?=$|[/\\])/.test(path) ? join(home, path.slice(1)) : path;
}

function homeOf(env: Env): string {
  return env.HOME || homedir();
}

/**
 * Where an mcp from before ~ meant home put the database for this MCP_DATA_DIR (`~/mcp` from a .env
 * file: a directory named ~ under the working directory), when one is there and none is where it
 * means now: starting on a fresh empty database would look as if every account had been lost.
 */
function dataLeftBehind(raw: string, dataDir: string, cwd: string): string | null {
  if (!/^~(?=$|[/\\])/.test(raw)) return null;
  const literal = resolve(cwd, raw);
  if (literal === resolve(dataDir) || existsSync(join(dataDir, 'proxy.db')) || !existsSync(join(literal, 'proxy.db'))) return null;
  return literal;
}

/** The data directory: MCP_DATA_DIR, else $XDG_CONFIG_HOME/multi-claude-proxy, else ~/.config/multi-claude-proxy. */
export function dataDirFrom(env: Env): string {
  if (env.MCP_DATA_DIR) return expandHome(env.MCP_DATA_DIR, homeOf(env));
  const base = env.XDG_CONFIG_HOME || join(homeOf(env), '.config');
  return join(base, 'multi-claude-proxy');
}

function int(name: string, raw: string | number | undefined, def: number, min: number, max: number): number {
  if (raw === undefined || raw === '') return def;
  const s = String(raw).trim();
  if (!/^-?\d+$/.test(s)) return refuse(`${name} must be a whole number, got "${s}"`, def);
  const n = Number(s);
  if (n < min || n > max) return refuse(`${name} must be between ${min} and ${max}, got ${n}`, def);
  return n;
}

function fraction(name: string, raw: string | number | undefined, def: number): number {
  if (raw === undefined || raw === '') return def;
  const s = String(raw).trim();
  const n = Number(s);
  if (s === '' || !Number.isFinite(n)) return refuse(`${name} must be a number between 0 and 1, got "${s}"`, def);
  if (n < 0 || n > 1) return refuse(`${name} must be between 0 and 1, got ${n}`, def);
  return n;
}

function bool(name: string, raw: string | boolean | undefined, def: boolean): boolean {
  if (raw === undefined || raw === '') return def;
  if (typeof raw === 'boolean') return raw;
  const s = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  return refuse(`${name} must be true or false, got "${raw}"`, def);
}

function url(name: string, raw: string | undefined, def: string): string {
  const s = (raw ?? '').trim() || def;
  try {
    const u = new URL(s);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
  } catch {
    // What stands before an @ may be a user and password: never echoed.
    const shown = s.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^@/]*@/i, (_, scheme: string | undefined) => `${scheme ?? ''}***@`);
    return refuse(`${name} must be an http(s) URL, got "${shown}"`, def);
  }
  return s.replace(/\/+$/, '');
}

/**
 * The quota endpoint beside a Z.AI base URL: keys are bound to their region, so a China-region base
 * (open.bigmodel.cn/api/anthropic) checked against api.z.ai's quota would refuse every key. Z.AI
 * serves both under one /api prefix; a base of any other shape keeps the default.
 */
function zaiQuotaUrlFor(baseUrl: string): string {
  return /\/anthropic$/.test(baseUrl) ? baseUrl.replace(/\/anthropic$/, '/monitor/usage/quota/limit') : DEFAULTS.zaiQuotaUrl;
}

function stringMap(name: string, raw: string | undefined, home: string): Record<string, string> {
  if (!raw || !raw.trim()) return {};
  let text = raw.trim();
  // JSON of another shape (`[…]`, `null`, a string) is refused as such below, not looked for as a file.
  if (!/^(?:[{["]|null$|true$|false$)/.test(text)) {
    // A path to a JSON file.
    try {
      // Editors on Windows may save the file with a byte-order mark, which JSON.parse refuses.
      text = (require('node:fs').readFileSync(expandHome(text, home), 'utf8') as string).replace(/^\uFEFF/, '');
    } catch (err) {
      const why = (err as { code?: string }).code === 'ENOENT' ? 'there is no such file' : (err as Error).message;
      return refuse(`${name}: cannot read ${raw}: ${why} (give a JSON object of strings, or a path to one)`, {});
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const what = text === raw.trim() ? name : `${name}: ${raw.trim()}`;
    return refuse(`${what} is not valid JSON (${(err as Error).message.split('\n')[0]}): give a JSON object of strings, or a path to one`, {});
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return refuse(`${name} must be a JSON object of strings (model -> model), got ${Array.isArray(parsed) ? 'an array' : String(JSON.stringify(parsed))}`, {});
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (typeof v !== 'string') return refuse(`${name}: value for "${k}" must be a string`, {});
    // An empty target would be sent upstream as the model "".
    if (!v.trim()) return refuse(`${name}: value for "${k}" must be a model id, got an empty string`, {});
    out[k.trim()] = v.trim();
  }
  return out;
}

/**
 * An outbound proxy Bun's fetch can use: every Google login and token refresh, and the upstream calls
 * with the fetch client, go through it. One it cannot use (socks5://, a typo) failed each of those
 * calls instead, as "connection failed: ENOTFOUND" that names no proxy. Bun takes `host:port` as http.
 */
function outboundProxy(name: string, raw: string | undefined): void {
  const s = (raw ?? '').trim();
  if (!s) return;
  let u: URL | null = null;
  try {
    u = new URL(s.includes('://') ? s : `http://${s}`);
  } catch {
    // not an address at all
  }
  if (u && (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname) return;
  // The address may carry a password: it is never echoed.
  const shown = u ? ` (a ${u.protocol.replace(/:$/, '')} address)` : '';
  refuse(`${name} must be an http:// or https:// proxy address, such as http://proxy.example:3128${shown}; unset it for mcp if it is meant for other programs`, null);
}

const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?)*\.?$/;

/** An IP address or a host name; "999.1.1.1" would otherwise reach listen() and come back as ENOENT. */
function bindAddress(raw: string | undefined): string {
  const s = (raw ?? '').trim();
  if (!s) return DEFAULTS.bindAddress;
  const bare = s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
  const ok = bare.includes(':') ? isIPv6(bare) : /^[\d.]+$/.test(bare) ? isIPv4(bare) : HOST_NAME.test(bare);
  if (!ok) {
    return refuse(
      `BIND_ADDRESS must be an IP address (0.0.0.0 for every interface, 127.0.0.1 for this machine only) or a host name, got "${s}"`,
      DEFAULTS.bindAddress,
    );
  }
  return s;
}

/**
 * PROXY_API_KEY holds one key, or several separated by commas: a new key can be handed out and
 * the old one retired later without a moment when a client is refused, and each client (or
 * person) can have its own. Blank entries are ignored.
 */
export function parseApiKeys(value: string | undefined): string[] {
  const keys: string[] = [];
  for (const part of (value ?? '').split(',')) {
    const k = part.trim();
    if (k && !keys.includes(k)) keys.push(k);
  }
  return keys;
}

/** Collects the refusals while loadConfig runs (null otherwise): every bad setting is named at once. */
let problems: string[] | null = null;

/** Refuses a setting: while loading, noted and `fallback` stands in so the rest is still checked; else thrown. */
function refuse<T>(message: string, fallback: T): T {
  if (!problems) throw new ConfigError(message);
  problems.push(message);
  return fallback;
}

/**
 * Builds the Config for `mcp serve`. Requires PROXY_API_KEY. Every bad setting is refused in one
 * ConfigError, on one line ("; " between them), flags first: fixing one only to meet the next is slow.
 */
export function loadConfig(env: Env, flags: ConfigFlags = {}, opts: { requireApiKey?: boolean; platform?: string; cwd?: string } = {}): Readonly<Config> {
  const found: string[] = [];
  problems = found;
  let config: Readonly<Config>;
  try {
    config = buildConfig(env, flags, opts);
  } finally {
    problems = null;
  }
  if (found.length) {
    // What was typed on this command line first, then the environment, in the order read.
    const ordered = [...found.filter((m) => m.startsWith('--')), ...found.filter((m) => !m.startsWith('--'))];
    throw new ConfigError(ordered.join('; '));
  }
  return config;
}

function buildConfig(env: Env, flags: ConfigFlags, opts: { requireApiKey?: boolean; platform?: string; cwd?: string }): Readonly<Config> {
  const proxyApiKeys = parseApiKeys(env.PROXY_API_KEY);
  // Curly quotes from a chat or a document: a client cannot send them in a header, so every one
  // would get a 401 with nothing to say why. Never echoed: it is the key.
  const unsendable = proxyApiKeys.findIndex((k) => /[^\x20-\x7e]/.test(k));
  if (unsendable >= 0) {
    const which = proxyApiKeys.length > 1 ? `key ${unsendable + 1} of PROXY_API_KEY` : 'PROXY_API_KEY';
    refuse(`${which} holds a character no client can send in a header (a curly quote, a non-ASCII one, perhaps from where it was copied): use plain ASCII`, null);
  }
  if ((opts.requireApiKey ?? true) && !proxyApiKeys.length) {
    // `export` is no command in PowerShell or cmd, where Windows users start mcp.
    const howToSet =
      (opts.platform ?? process.platform) === 'win32'
        ? '$env:PROXY_API_KEY = "<a secret of your choice>" in PowerShell (set PROXY_API_KEY=<…> in cmd)'
        : 'export PROXY_API_KEY=<a secret of your choice>';
    refuse(`PROXY_API_KEY is not set: ${howToSet} (clients send it as x-api-key or Bearer)`, null);
  }
  // --soft-limit may carry a threshold; --no-soft-limit turns the feature off. Either flag beats
  // SOFT_LIMIT_ENABLED: asking for a threshold on the command line means wanting soft limits.
  const softFlag = flags.softLimit;
  const softThresholdFlag = typeof softFlag === 'string' || typeof softFlag === 'number';
  const softLimitThreshold = softThresholdFlag
    ? fraction('--soft-limit', softFlag, DEFAULTS.softLimitThreshold)
    : fraction('SOFT_LIMIT_THRESHOLD', env.SOFT_LIMIT_THRESHOLD, DEFAULTS.softLimitThreshold);
  const softLimitEnabled =
    flags.noSoftLimit || softFlag === false ? false : softThresholdFlag || softFlag === true ? true : bool('SOFT_LIMIT_ENABLED', env.SOFT_LIMIT_ENABLED, true);

  const dataDir = dataDirFrom(env);
  const leftBehind = dataLeftBehind(env.MCP_DATA_DIR ?? '', dataDir, opts.cwd ?? process.cwd());
  if (leftBehind) {
    refuse(
      `MCP_DATA_DIR=${env.MCP_DATA_DIR} is ${dataDir} (a leading ~ is the home directory), which holds no proxy.db, but ${join(leftBehind, 'proxy.db')} holds the accounts an older mcp kept there, taking the ~ as a directory name: move ${leftBehind} to ${dataDir}, or set MCP_DATA_DIR=${leftBehind}`,
      null,
    );
  }
  const endpoints = (env.ANTIGRAVITY_ENDPOINTS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const replayRaw = (env.ANTIGRAVITY_THINKING_REPLAY ?? 'inline').trim().toLowerCase() || 'inline';
  const thinkingReplay =
    replayRaw === 'inline' || replayRaw === 'split'
      ? replayRaw
      : refuse(`ANTIGRAVITY_THINKING_REPLAY must be "inline" or "split", got "${env.ANTIGRAVITY_THINKING_REPLAY}"`, 'inline' as const);
  // fetch honours HTTP(S)_PROXY and http1.ts does not: behind a proxy the default stays fetch.
  const viaProxy = Boolean(env.HTTPS_PROXY || env.https_proxy || env.HTTP_PROXY || env.http_proxy);
  for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy']) outboundProxy(name, env[name]);
  const clientRaw = (env.UPSTREAM_HTTP_CLIENT ?? '').trim().toLowerCase() || (viaProxy ? 'fetch' : DEFAULTS.upstreamHttpClient);
  const httpClient =
    clientRaw === 'native' || clientRaw === 'fetch'
      ? clientRaw
      : refuse(`UPSTREAM_HTTP_CLIENT must be "native" or "fetch", got "${env.UPSTREAM_HTTP_CLIENT}"`, 'fetch' as const);
  const formatRaw = (env.LOG_FORMAT ?? 'pretty').trim().toLowerCase();
  const logFormat =
    formatRaw === 'pretty' || formatRaw === 'json' ? formatRaw : refuse(`LOG_FORMAT must be "pretty" or "json", got "${env.LOG_FORMAT}"`, 'pretty' as const);

  // Other tools take Z.AI's base with /v1 (or the whole /v1/messages); the client adds that itself.
  const zaiBaseUrl = url('ZAI_BASE_URL', env.ZAI_BASE_URL, DEFAULTS.zaiBaseUrl).replace(/\/v1(?:\/messages)?$/i, '');
  const config: Config = {
    port: int(flags.port !== undefined ? '--port' : 'PORT', flags.port ?? env.PORT, DEFAULTS.port, 0, 65535),
    bindAddress: bindAddress(env.BIND_ADDRESS),
    debug: flags.debug ?? bool('DEBUG', env.DEBUG, false),
    fallback: flags.fallback ?? bool('ENABLE_FALLBACK', env.ENABLE_FALLBACK, false),
    softLimitEnabled,
    softLimitThreshold,
    readTimeoutSec: int('READ_TIMEOUT_SEC', env.READ_TIMEOUT_SEC, DEFAULTS.readTimeoutSec, 1, 86400),
    writeTimeoutSec: int('WRITE_TIMEOUT_SEC', env.WRITE_TIMEOUT_SEC, DEFAULTS.writeTimeoutSec, 1, 86400),
    idleTimeoutSec: int('IDLE_TIMEOUT_SEC', env.IDLE_TIMEOUT_SEC, DEFAULTS.idleTimeoutSec, 1, 255),
    upstreamIdleTimeoutSec: int(
      'UPSTREAM_IDLE_TIMEOUT_SEC',
      env.UPSTREAM_IDLE_TIMEOUT_SEC,
      DEFAULTS.upstreamIdleTimeoutSec,
      1,
      3600,
    ),
    upstreamHttpClient: httpClient,
    pingIntervalSec: int('PING_INTERVAL_SEC', env.PING_INTERVAL_SEC, DEFAULTS.pingIntervalSec, 1, 170),
    maxWaitSec: int('MAX_WAIT_SEC', env.MAX_WAIT_SEC, DEFAULTS.maxWaitSec, 0, 3600),
    maxAttempts: int('MAX_ATTEMPTS', env.MAX_ATTEMPTS, DEFAULTS.maxAttempts, 1, 50),
    maxConcurrentPerAccount: int('MAX_CONCURRENT_PER_ACCOUNT', env.MAX_CONCURRENT_PER_ACCOUNT, DEFAULTS.maxConcurrentPerAccount, 0, 10_000),
    defaultCooldownSec: int('DEFAULT_COOLDOWN_SEC', env.DEFAULT_COOLDOWN_SEC, DEFAULTS.defaultCooldownSec, 1, 86400),
    quotaPollIntervalSec: int(
      'QUOTA_POLL_INTERVAL_SEC',
      env.QUOTA_POLL_INTERVAL_SEC,
      DEFAULTS.quotaPollIntervalSec,
      1,
      86400,
    ),
    cors: {
      enabled: bool('CORS_ENABLED', env.CORS_ENABLED, false),
      allowOrigin: (env.CORS_ALLOW_ORIGIN ?? '').trim() || '*',
      allowMethods: (env.CORS_ALLOW_METHODS ?? '').trim() || 'GET, POST, HEAD, OPTIONS',
      allowHeaders:
        (env.CORS_ALLOW_HEADERS ?? '').trim() ||
        'Content-Type, Authorization, x-api-key, anthropic-version, anthropic-beta',
      reflectHeaders: !(env.CORS_ALLOW_HEADERS ?? '').trim(),
      maxAge: int('CORS_MAX_AGE', env.CORS_MAX_AGE, 86400, 0, 31536000),
    },
    proxyApiKeys,
    dataDir,
    dbPath: join(dataDir, 'proxy.db'),
    logFormat,
    bodyLimitBytes: DEFAULTS.bodyLimitBytes,
    usageRetentionDays: int('USAGE_RETENTION_DAYS', env.USAGE_RETENTION_DAYS, DEFAULTS.usageRetentionDays, 1, 3650),
    shutdownGraceSec: int('SHUTDOWN_GRACE_SEC', env.SHUTDOWN_GRACE_SEC, DEFAULTS.shutdownGraceSec, 0, 3600),
    modelMap: stringMap('MODEL_MAP', env.MODEL_MAP, homeOf(env)),
    fallbackMap: stringMap('FALLBACK_MAP', env.FALLBACK_MAP, homeOf(env)),
    zai: {
      baseUrl: zaiBaseUrl,
      quotaUrl: url('ZAI_QUOTA_URL', env.ZAI_QUOTA_URL, zaiQuotaUrlFor(zaiBaseUrl)),
      stripBetas: bool('ZAI_STRIP_BETAS', env.ZAI_STRIP_BETAS, false),
    },
    antigravity: {
      endpoints: (endpoints.length ? endpoints : [...DEFAULTS.antigravityEndpoints]).map((e) =>
        url('ANTIGRAVITY_ENDPOINTS', e, e),
      ),
      userAgent: (env.ANTIGRAVITY_USER_AGENT ?? '').trim() || DEFAULTS.antigravityUserAgent,
      userAgentPinned: (env.ANTIGRAVITY_USER_AGENT ?? '').trim() !== '',
      versionUrl: ['off', 'none'].includes((env.ANTIGRAVITY_VERSION_URL ?? '').trim().toLowerCase())
        ? null
        : url('ANTIGRAVITY_VERSION_URL', env.ANTIGRAVITY_VERSION_URL, DEFAULTS.antigravityVersionUrl),
      clientId: (env.GOOGLE_CLIENT_ID ?? '').trim() || DEFAULTS.googleClientId,
      clientSecret: (env.GOOGLE_CLIENT_SECRET ?? '').trim() || DEFAULTS.googleClientSecret,
      authUrl: url('GOOGLE_OAUTH_AUTH_URL', env.GOOGLE_OAUTH_AUTH_URL, DEFAULTS.googleAuthUrl),
      tokenUrl: url('GOOGLE_OAUTH_TOKEN_URL', env.GOOGLE_OAUTH_TOKEN_URL, DEFAULTS.googleTokenUrl),
      userinfoUrl: url('GOOGLE_USERINFO_URL', env.GOOGLE_USERINFO_URL, DEFAULTS.googleUserinfoUrl),
      claudeThinkingReplay: thinkingReplay,
      aiCredits: bool('ANTIGRAVITY_AI_CREDITS', env.ANTIGRAVITY_AI_CREDITS, false),
    },
    accountsConfigPath: expandHome((env.ACCOUNTS_CONFIG_PATH ?? '').trim(), homeOf(env)) || null,
  };
  return Object.freeze(config);
}

/** Shorter than this, a key someone on the network can try is guessable (the README's `change-me` is 9). */
export const MIN_EXPOSED_KEY_LENGTH = 16;

function isLoopback(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return h === 'localhost' || h === '::1' || (isIPv4(h) && h.startsWith('127.'));
}

/**
 * A warning for `mcp serve` when the server is reachable from other machines (any address but
 * loopback) and a client key is short enough to guess, as the quick start's example key is; null
 * otherwise. Not a refusal: in a container 0.0.0.0 is the norm and the port may be published to
 * loopback only.
 */
export function exposureWarning(config: Pick<Config, 'bindAddress' | 'proxyApiKeys'>): string | null {
  if (isLoopback(config.bindAddress)) return null;
  const short = config.proxyApiKeys.filter((k) => k.length < MIN_EXPOSED_KEY_LENGTH).length;
  if (!short) return null;
  const which = config.proxyApiKeys.length > 1 ? `${short} of the ${config.proxyApiKeys.length} keys in PROXY_API_KEY are` : 'PROXY_API_KEY is';
  return (
    `${which} shorter than ${MIN_EXPOSED_KEY_LENGTH} characters and mcp listens on ${config.bindAddress}, which other machines can reach: ` +
    'anyone there may guess it and spend your accounts. Use a long random key (e.g. `openssl rand -hex 24`), or BIND_ADDRESS=127.0.0.1 to serve this machine only'
  );
}
