// Builds the HTTP app from its dependencies. The server knows no provider: it authenticates,
// validates, asks the gateway, and writes Anthropic-shaped answers. Every response carries a
// `request-id`; every failure is the Anthropic error envelope.
import { Elysia } from 'elysia';
import { ApiError } from '../anthropic/errors.ts';
import type { Config } from '../config.ts';
import type { Gateway, Ops } from '../gateway/types.ts';
import { log, logLineFast } from '../log.ts';
import { authError, makeKeyMatcher, noteKeyNumber } from './auth.ts';
import { dashboardRoutes } from './dashboard.ts';
import { errorResponse, jsonResponse, newRequestId, toApiError } from './errors.ts';
import { imageRoutes } from './images.ts';
import { messageRoutes, type RequestRecord } from './messages.ts';
import { modelRoutes } from './models.ts';
import { opsRoutes } from './ops.ts';

export type { RequestRecord } from './messages.ts';
export { CLIENT_CLOSED } from './messages.ts';

export interface AppDeps {
  config: Config;
  gateway: Gateway;
  ops: Ops;
  /** Called once per /v1/messages request when it has fully ended (stream finished or failed). Keep it cheap. */
  onRequestDone?: (r: RequestRecord) => void;
  /** True once the shutdown grace is over and the server cuts the connections still open. */
  cutting?: () => boolean;
  /** Aborted when the shutdown grace is over: requests still running end with a clean error first. */
  stopping?: AbortSignal;
  /** Aborted when the server begins to stop: requests still waiting for an account are answered at once. */
  draining?: AbortSignal;
}

/** Paths anyone may call without the key (HEAD / is Claude Code's connection pre-warm). */
const OPEN_PATHS: ReadonlySet<string> = new Set(['/', '/health']);

/** Known paths and their methods, so a wrong method gets 405 rather than 404. */
const METHODS: Record<string, string[]> = {
  '/': ['GET', 'HEAD'],
  '/v1/messages': ['POST'],
  '/v1/messages/count_tokens': ['POST'],
  '/v1/images/generate': ['POST'],
  '/v1/images/generations': ['POST'],
  '/v1/images/edits': ['POST'],
  '/v1/models': ['GET'],
  '/health': ['GET'],
  '/account-limits': ['GET'],
  '/refresh-token': ['POST'],
  '/metrics': ['GET'],
  '/dashboard': ['GET'],
  '/api/event_logging/batch': ['POST'],
};

function allowedMethods(path: string): string[] | undefined {
  path = routePath(path);
  const m = METHODS[path] ?? (path.startsWith('/v1/models/') ? ['GET'] : undefined);
  // The router answers HEAD wherever it answers GET.
  return m && m.includes('GET') && !m.includes('HEAD') ? [...m, 'HEAD'] : m;
}

/**
 * What a client that reached an unknown path most likely meant: a base URL ending in /v1 doubles
 * it (/v1/v1/messages), one a tool appends /messages to lacks it, and an OpenAI client asks for its own API.
 */
function notFoundHint(path: string): string {
  const p = routePath(path);
  if (p.startsWith('/v1/v1/') && METHODS[p.slice(3)]) {
    return `: did you mean ${p.slice(3)}? (a base URL such as ANTHROPIC_BASE_URL is the server alone, e.g. http://127.0.0.1:8080, without /v1)`;
  }
  if (p.startsWith('/') && !p.startsWith('/v1/') && METHODS[`/v1${p}`]) return `: did you mean /v1${p}?`;
  if (/\/(chat\/)?completions$|\/responses$|\/embeddings$/.test(p)) return ": this is Anthropic's Messages API (POST /v1/messages), not OpenAI's";
  return '';
}

/**
 * The path of a request URL, without the query (no URL object per request). Without a Host (HTTP/1.0)
 * or with an empty one Bun's request.url is the bare path, which must not be read as `/` (open).
 */
export function pathOf(url: string): string {
  const start = url.charCodeAt(0) === 47 ? 0 : url.indexOf('/', url.indexOf('//') + 2);
  if (start < 0) return '/';
  let end = url.length;
  const q = url.indexOf('?', start);
  if (q >= 0) end = q;
  const h = url.indexOf('#', start);
  if (h >= 0 && h < end) end = h;
  return url.slice(start, end);
}

/** The path as the router matches it: it serves `/health/` as `/health`, so auth must see it so too. */
function routePath(path: string): string {
  return path.length > 1 && path.charCodeAt(path.length - 1) === 47 ? path.slice(0, -1) : path;
}

const EXPOSE = 'request-id, retry-after, x-should-retry, x-proxy-account, x-proxy-upstream-model, x-proxy-fallback-from';

/**
 * A Host header as RFC 3986 allows one (a name, IPv4, or [IPv6], and a port); empty is HTTP/1.0's.
 * Bun puts the Host into request.url but routes by the request line: with a `/`, `?` or `#` in it
 * (`Host: x/health?`) the path read from the URL was an open one while the router served another.
 */
const HOST = /^[A-Za-z0-9._~!$&'()*+,;=:[\]-]*$/;

const CONTROL = /[\u0000-\u001f\u007f\u2028\u2029]/;

/** A client-chosen name as one short piece of a log line: control characters escaped, length capped. */
function shown(s: string): string {
  let out = s.length > 200 ? `${s.slice(0, 200)}…(${s.length} chars)` : s;
  if (CONTROL.test(out)) out = JSON.stringify(out).slice(1, -1);
  return out;
}

function logLine(r: RequestRecord): void {
  // The model names come from the request body (a passed-through id is the upstream model too).
  let line =
    `${r.requestId} ${shown(r.clientModel) || '-'} -> ${r.upstreamModel === null ? '-' : shown(r.upstreamModel)} acct=${r.accountId ?? '-'} ` +
    `${r.status} ${r.latencyMs}ms${r.stream ? ' stream' : ''} in=${r.inputTokens} out=${r.outputTokens} ` +
    `cache_r=${r.cacheReadTokens} cache_w=${r.cacheCreationTokens}`;
  if (r.fallbackFrom) line += ` fallback_from=${shown(r.fallbackFrom)}`;
  if (r.failovers) line += ` failovers=${r.failovers}${r.failoverReasons?.length ? ` (${r.failoverReasons.join(',')})` : ''}`;
  if (r.errorType) line += ` error=${r.errorType}`;
  if (r.clientKey) line += ` key=${r.clientKey}`;
  logLineFast(r.status >= 500 || (r.errorType && r.status === 200) ? 'warn' : 'info', line);
}

export function createApp(deps: AppDeps) {
  const { config, gateway, ops } = deps;
  const matchKey = makeKeyMatcher(config.proxyApiKeys);
  const isAuthorized = (headers: Headers): boolean => matchKey(headers) > 0;
  const severalKeys = config.proxyApiKeys.length > 1;
  const corsHeaders: Record<string, string> | null = config.cors.enabled
    ? {
        'access-control-allow-origin': config.cors.allowOrigin,
        'access-control-expose-headers': EXPOSE,
      }
    : null;
  const preflightHeaders: Record<string, string> | null = config.cors.enabled
    ? {
        ...corsHeaders,
        'access-control-allow-methods': config.cors.allowMethods,
        'access-control-allow-headers': config.cors.allowHeaders,
        'access-control-max-age': String(config.cors.maxAge),
      }
    : null;

  const stopSignals = { ...(deps.stopping ? { stopping: deps.stopping } : {}), ...(deps.draining ? { draining: deps.draining } : {}) };
  const done = (r: RequestRecord): void => {
    // A connection the server cut at shutdown looks to the request like a client that left: it was not.
    if (r.errorType === 'client_closed' && deps.cutting?.()) {
      r.status = 503;
      r.errorType = 'server_stopped';
    }
    logLine(r);
    if (!deps.onRequestDone) return;
    try {
      deps.onRequestDone(r);
    } catch (err) {
      log.error(`onRequestDone failed: ${(err as Error)?.message ?? String(err)}`);
    }
  };

  // standardHostname off: Elysia otherwise looks for the path from the URL's 12th character on,
  // which skips part of it behind a host under 4 characters (`Host: api`, a bare service name).
  return new Elysia({ name: 'mcp', handler: { standardHostname: false } })
    .onRequest(({ request, set }) => {
      const requestId = newRequestId();
      set.headers['request-id'] = requestId;
      if (!HOST.test(request.headers.get('host') ?? '')) {
        const api = new ApiError('invalid_request_error', 'the Host header is not a host name or address (with an optional port)', { headers: { connection: 'close' } });
        return errorResponse(api, requestId, corsHeaders ?? undefined, request);
      }
      const path = routePath(pathOf(request.url));
      if (corsHeaders) {
        Object.assign(set.headers, corsHeaders);
        if (request.method === 'OPTIONS') {
          const headers: Record<string, string> = { ...preflightHeaders, 'request-id': requestId };
          const asked = config.cors.reflectHeaders ? request.headers.get('access-control-request-headers') : null;
          if (config.cors.reflectHeaders) headers.vary = 'access-control-request-headers';
          if (asked) headers['access-control-allow-headers'] = asked;
          return new Response(null, { status: 204, headers });
        }
      }
      // Basic auth only where reading is all a request can do: a browser that logged in to the
      // dashboard replays it on any request to this origin, a foreign page's form POST included.
      const basic = request.method === 'GET' || request.method === 'HEAD';
      const keyNumber = OPEN_PATHS.has(path) ? -1 : matchKey(request.headers, basic);
      if (severalKeys && keyNumber > 0) noteKeyNumber(request, keyNumber);
      if (keyNumber === 0) {
        // A browser shows its own login box for this: any user name, the proxy key as the password.
        if (path === '/dashboard') {
          return new Response('The dashboard needs the proxy key (PROXY_API_KEY) as the password.\n', {
            status: 401,
            headers: { 'content-type': 'text/plain; charset=utf-8', 'www-authenticate': 'Basic realm="mcp", charset="UTF-8"', 'request-id': requestId },
          });
        }
        return errorResponse(authError(request.headers, basic), requestId, corsHeaders ?? undefined, request);
      }
    })
    .onError(({ code, error, set, request, path }) => {
      const requestId = String(set.headers['request-id'] ?? newRequestId());
      let api: ApiError;
      if (code === 'NOT_FOUND' && !(error instanceof ApiError)) {
        const allowed = allowedMethods(path);
        api =
          allowed && !allowed.includes(request.method)
            ? new ApiError('invalid_request_error', `method ${request.method} is not allowed on ${path}`, {
                status: 405,
                headers: { allow: allowed.join(', ') },
              })
            : new ApiError('not_found_error', `${request.method} ${path} not found${notFoundHint(path)}`);
      } else api = toApiError(error, code);
      return errorResponse(api, requestId, corsHeaders ?? undefined, request);
    })
    .get('/', () => jsonResponse({ status: 'ok', service: 'multi-claude-proxy' }))
    .use(messageRoutes({ config, gateway, done, ...stopSignals }))
    .use(imageRoutes({ config, gateway, done, ...stopSignals }))
    .use(modelRoutes(gateway))
    .use(opsRoutes(ops, isAuthorized, deps.stopping))
    .use(dashboardRoutes(ops));
}

export type App = ReturnType<typeof createApp>;

/**
 * Starts Bun's native server for `app` with the configured address and idle timeout, and returns
 * the running server. Stop it with `app.stop()` (pass `true` to also cut open connections).
 * Bun's own body cap is out of the way (its 413 has no envelope, and a chunked body over it errors
 * the stream): ours is enforced while reading, and what a refused client still sends is discarded
 * by Bun without being kept in memory.
 * Elysia turns SO_REUSEPORT on by default: a second server on the same port would then start and
 * silently take half the connections, so it is off and the second one fails with EADDRINUSE.
 */
export function startServer(config: Config, app: App) {
  app.listen({
    port: config.port,
    reusePort: false,
    hostname: config.bindAddress,
    idleTimeout: Math.min(255, config.idleTimeoutSec),
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
  });
  return app.server!;
}
