// dispatch(): one client request -> one upstream stream whose head has been read (head-hold.ts).
// Resolves the model, finds the conversation's account, and before it hands the first event on
// quietly moves the request to another account on limits, capacity, 5xx, network and empty answers
// (at most maxAttempts). When every account is limited it waits for the earliest reset (up to
// maxWaitSec), serves a fallback model (--fallback), or answers with the reset time (limitedError:
// 429, final only past maxWaitSec; 529 for capacity). After the head is handed on an upstream
// failure ends the stream with an Anthropic error event (the server writes it).
import { collectMessage, errorTypeOf } from '../anthropic/collect.ts';
import { clearOldToolUses } from '../anthropic/context-edits.ts';
import { ApiError } from '../anthropic/errors.ts';
import type { AnthropicEvent, Message } from '../anthropic/events.ts';
import type { MessagesRequest } from '../anthropic/schema.ts';
import { webSearchToolOf } from '../anthropic/web-search.ts';
import type { Config } from '../config.ts';
import { log } from '../log.ts';
import type { Pool, Lease } from '../pool/pool.ts';
import { type Provider, type ProviderId, UpstreamError } from '../providers/provider.ts';
import type { LimitKind } from '../store/limits.ts';
import type { Catalog, Route } from './catalog.ts';
import { foreignTo, hasThinking, withoutForeignThinking } from './foreign-thinking.ts';
import { createHeadHold } from './head-hold.ts';
import { metrics } from './ops.ts';
import { historyKeyOf, sessionKeyOf } from './session.ts';
import type { DispatchRequest, Dispatched, Gateway, ModelEntry } from './types.ts';

export type Providers = Partial<Record<ProviderId, Provider>>;
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

const DONE: IteratorResult<AnthropicEvent> = Object.freeze({ done: true, value: undefined });

/** Slack added to a wait for a reset, so the upstream has really lifted the limit when we retry. */
const WAIT_BUFFER_MS = 500;

export interface GatewayDeps {
  config: Readonly<Config>;
  pool: Pool;
  catalog: Catalog;
  providers: Providers;
  now: () => number;
  sleep: Sleep;
  /** Called right after a 429 / quota answer so the account's quota is re-read. */
  onRateLimited?: (accountId: string) => void;
  /** Called when an account has served a request (its quota may need a fresh reading). */
  onServed?: (lease: Lease) => void;
  /** Extra /v1/models fields per route (quota where known). */
  modelExtras?: (route: Route) => Record<string, unknown>;
}

/** How long one request waits when every account is out of upstream capacity, or resting after failures (see serve()). */
const UPSTREAM_TROUBLE_WAIT_MS = 15_000;

/** Every account that could serve the route is limited past the wait threshold. */
class PoolExhausted extends Error {
  constructor(
    readonly route: Route,
    readonly until: number,
    /** What limits the account that is free first. */
    readonly kind: LimitKind,
    readonly last: UpstreamError | null,
    /** Every kind of limit that keeps the accounts out, when there is more than one. */
    readonly kinds?: readonly LimitKind[],
  ) {
    super(`every account is limited for ${route.upstreamModel}`);
  }
}

/** No account can serve the route at all: none usable, or every one found dead during this request. */
class NoUsableAccount extends Error {
  constructor(readonly answer: ApiError) {
    super(answer.message);
  }
}

export function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new ApiError('api_error', 'client closed the request'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    const onAbort = (): void => {
      clearTimeout(t);
      reject(new ApiError('api_error', 'client closed the request'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The answer to a request that was waiting for an account when the server began to stop: Claude Code and the SDKs retry a 529. */
function stoppingError(): ApiError {
  return new ApiError('overloaded_error', 'mcp is stopping: this request was still waiting for an account to be free; send it again', {
    headers: { 'retry-after': '1' },
  });
}

/** "1h2m3s" for a wait in ms (at least 1s). */
export function formatWait(ms: number): string {
  let s = Math.max(1, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s`;
}

/** The 429 Claude Code shows and does not retry in vain (protocol Part 2.9). */
export function exhaustedError(model: string, until: number, now: number, detail?: string): ApiError {
  const wait = Math.max(0, until - now);
  const retryAfter = Math.max(1, Math.ceil(wait / 1000));
  const msg =
    `RESOURCE_EXHAUSTED: Rate limited on ${model}. Quota will reset after ${formatWait(wait)}. ` +
    `Next available: ${new Date(until).toISOString()}` +
    (detail ? ` (${detail})` : '');
  return new ApiError('rate_limit_error', msg, { headers: { 'retry-after': String(retryAfter), 'x-should-retry': 'false' } });
}

/** What ends when an account limited by `kind` is free again, for the log line of a wait: a rest after 5xx is no limit. */
export function awaitedEnd(kind: LimitKind): string {
  switch (kind) {
    case 'transient':
      return 'end its rest after repeated upstream errors';
    case 'capacity':
      return 'end its cool-down after the upstream was overloaded';
    case 'quota_exhausted':
      return 'get its quota back';
    case 'no_access':
      return 'have its plan checked again';
    default:
      return 'end its rate limit';
  }
}

/**
 * The answer when every account is limited for `model` until `until` and the proxy waits no longer.
 * Only a limit that outlasts MAX_WAIT_SEC (the wait the user accepts) is final: x-should-retry
 * false and the reset in the message. A shorter one Claude Code waits out itself, honouring
 * retry-after. Capacity is the upstream's, not the account's: a 529. A cool-down after repeated
 * 5xx is no exhaustion, so never final, and no rate limit either: a 503.
 */
export function limitedError(
  model: string,
  kind: LimitKind,
  until: number,
  now: number,
  maxWaitMs: number,
  detail?: string,
  /** Every kind of limit that keeps the accounts out, when there is more than one: the message names them. */
  kinds?: readonly LimitKind[],
): ApiError {
  const wait = Math.max(0, until - now);
  const headers = { 'retry-after': String(Math.max(1, Math.ceil(wait / 1000))) };
  const tail = `Next available: ${new Date(until).toISOString()}` + (detail ? ` (${detail})` : '');
  const every = (alone: string): string => `${everyAccountIs(kind, kinds, alone)}, retry after ${formatWait(wait)}. ${tail}`;
  if (kind === 'no_access') return noAccessError(model, until, detail);
  if (kind === 'capacity') return new ApiError('overloaded_error', `Upstream overloaded for ${model}: ${every(LIMIT_STATE.capacity)}`, { headers });
  // The upstream failing is no rate limit: a 429 would have Claude Code show "rate limit" for an outage.
  if (kind === 'transient') return new ApiError('api_error', `Upstream failing for ${model}: ${every(LIMIT_STATE.transient)}`, { status: 503, headers });
  if (wait > maxWaitMs) return exhaustedError(model, until, now, detail);
  return new ApiError('rate_limit_error', `Rate limited on ${model}: ${every(LIMIT_STATE.rate_limited)}`, { headers });
}

/** What each kind of limit says of an account, in an error message. */
const LIMIT_STATE: Record<LimitKind, string> = {
  rate_limited: 'rate limited',
  quota_exhausted: 'out of quota',
  capacity: 'resting after an upstream overload',
  transient: 'resting after repeated upstream failures',
  no_access: 'without the model in its plan',
};

/**
 * "every account is rate limited or resting after an upstream overload": `alone` when one kind keeps
 * every account out, else each kind, the one of the account free first leading.
 */
function everyAccountIs(kind: LimitKind, kinds: readonly LimitKind[] | undefined, alone: string): string {
  if (!kinds || kinds.length < 2) return `every account is ${alone}`;
  const states = [...new Set([kind, ...kinds].map((k) => LIMIT_STATE[k]))];
  return `every account is ${states.slice(0, -1).join(', ')} or ${states[states.length - 1]}`;
}

/**
 * No account's plan includes the model: waiting or retrying will not help, another model will. A 404,
 * as for a model nobody serves: Claude Code then says there is an issue with the selected model and
 * points at /model (a 403 would tell the user to /login, which changes nothing).
 */
function noAccessError(model: string, recheckAt: number, detail?: string): ApiError {
  return new ApiError(
    'not_found_error',
    `No account may use ${model}: its plan does not include it${detail ? ` (${detail})` : ''}. The accounts are asked again after ${new Date(recheckAt).toISOString()}.`,
    { headers: { 'x-should-retry': 'false' } },
  );
}

/**
 * The pool has no account that can serve (none, all disabled, all invalid): the proxy's trouble, not
 * the client key's. A 503 that says not to retry: Claude Code stops at once and shows the message; a
 * 403 would make it tell the user to /login, which fixes nothing here.
 */
function noAccountError(message: string): ApiError {
  return new ApiError('api_error', message, { status: 503, headers: { 'x-should-retry': 'false' } });
}

/** The final client error for an upstream failure nothing else could absorb (§9.6, Part 2.9). */
export function clientErrorFor(e: UpstreamError, model: string, now: number, maxWaitMs: number): ApiError {
  switch (e.kind) {
    case 'bad_request':
      return new ApiError('invalid_request_error', e.message);
    case 'not_found':
      // Anthropic's own form, "model: <id>", unless the upstream's words already name it (theirs rarely do).
      return new ApiError(
        'not_found_error',
        !e.message ? `model: ${model}` : e.message.toLowerCase().includes(model.toLowerCase()) ? e.message : `model: ${model}: ${e.message}`,
      );
    case 'rate_limited':
    case 'quota_exhausted': {
      const until = e.resetAt ?? now + 60_000;
      if (until - now > maxWaitMs) return exhaustedError(model, until, now, e.message);
      const retryAfter = String(Math.max(1, Math.ceil((until - now) / 1000)));
      return new ApiError('rate_limit_error', `Rate limited on ${model}: ${e.message}`, { headers: { 'retry-after': retryAfter } });
    }
    case 'capacity':
      return new ApiError('overloaded_error', `Upstream overloaded for ${model}: ${e.message}`);
    case 'auth':
      // Not authentication_error: to the client that means its key to the proxy (Claude Code clears
      // it and asks again). The account's credentials are the proxy's problem: retryable.
      return new ApiError('api_error', `Upstream rejected the account's credentials: ${e.message}`, { status: 503 });
    case 'no_access':
      return noAccessError(model, e.resetAt ?? now, e.message);
    case 'invalid_account':
      return noAccountError(`No usable account: ${e.message}`);
    default:
      return new ApiError('api_error', `Upstream failed: ${e.message}`, { status: 502 });
  }
}

function asUpstream(err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (err instanceof ApiError) {
    const kind =
      err.status === 429 ? 'rate_limited' : err.status === 529 ? 'capacity' : err.status === 400 ? 'bad_request' : err.status === 404 ? 'not_found' : 'transient';
    return new UpstreamError(kind, err.message, { status: err.status });
  }
  return new UpstreamError('transient', (err as Error)?.message || String(err), { cause: err });
}

/**
 * A provider error that is neither the upstream's (UpstreamError) nor Anthropic's (ApiError) is a
 * bug in mcp's own code: another account would meet the same bug, and the account did nothing wrong.
 */
function isBug(err: unknown): boolean {
  return !(err instanceof UpstreamError) && !(err instanceof ApiError);
}

/**
 * A request nested so deep (a tool input of thousands of levels: valid JSON, valid to the schema)
 * that writing it out for the upstream overflows the stack. The client's to fix, on any account.
 */
function tooDeep(err: unknown): boolean {
  return err instanceof RangeError && /call stack/i.test(err.message);
}

/** The client's error for a bug: logged here with its detail, which the client never sees. */
function bugError(err: unknown, requestId: string, where: string): ApiError {
  log.error(`${requestId}: internal error ${where}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  if (err instanceof Error && err.stack) log.debug(err.stack);
  return new ApiError('api_error', `mcp failed while handling the upstream's answer (an internal error; the server log has the details)`, {
    status: 502,
  });
}

/**
 * The first events to hand on, read until the hold lets them go (head-hold.ts): message_start and
 * pings until something follows, an opening tool call until it is whole and something follows it. A
 * failure meanwhile is one the client never saw and fails over; an `error` event in it throws.
 */
async function headOf(first: AnthropicEvent, it: AsyncIterator<AnthropicEvent>): Promise<AnthropicEvent[]> {
  const head = [first];
  const held = createHeadHold();
  for (let holding = held(first); holding; ) {
    const r = await it.next();
    if (r.done) break;
    if (r.value.type === 'error') throw errorEventError(r.value);
    head.push(r.value);
    holding = held(r.value);
  }
  return head;
}

/** A limit on one account while others can serve: the client retries at once. */
function retrySoon(message: string): ApiError {
  return new ApiError('rate_limit_error', message, { headers: { 'retry-after': '1' } });
}

/** An `error` event as the error it reports. */
function errorEventError(ev: AnthropicEvent): ApiError {
  const e = (ev as { error?: { type?: unknown; message?: unknown } }).error ?? {};
  return new ApiError(errorTypeOf(e.type), String(e.message ?? 'upstream error'));
}

/** The rest of an answer, read to its end; an `error` event in it fails like a thrown error. */
async function restOf(it: AsyncIterator<AnthropicEvent>): Promise<AnthropicEvent[]> {
  const out: AnthropicEvent[] = [];
  for (let r = await it.next(); !r.done; r = await it.next()) {
    if (r.value.type === 'error') throw errorEventError(r.value);
    out.push(r.value);
  }
  return out;
}

/** A whole answer, already read, as the stream Dispatched hands out. */
function eventsOf(events: AnthropicEvent[]): AsyncIterableIterator<AnthropicEvent> {
  let i = 0;
  return {
    next: () => Promise.resolve(i < events.length ? { done: false, value: events[i++]! } : DONE),
    return: () => {
      i = events.length;
      return Promise.resolve(DONE);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/** Errors before the first event that another account may not have. */
function failsOver(kind: UpstreamError['kind']): boolean {
  return kind === 'rate_limited' || kind === 'quota_exhausted' || kind === 'capacity' || kind === 'transient' || kind === 'invalid_account' || kind === 'no_access';
}

const TRUTHY = /^(1|true|yes|on)$/i;

function truthy(v: string | undefined): boolean {
  return v !== undefined && TRUTHY.test(v.trim());
}

export function createGateway(deps: GatewayDeps): Gateway {
  const { config, pool, catalog, providers, now, sleep } = deps;
  const maxWaitMs = config.maxWaitSec * 1000;

  function available(): Set<ProviderId> {
    const s = pool.providersInUse();
    for (const p of [...s]) if (!providers[p]) s.delete(p);
    return s;
  }

  // The provider kinds among the pool's accounts, disabled ones included; worked out again only when
  // the pool reloads its accounts (a new array), not on every request.
  let kinds: { of: readonly unknown[]; ids: ProviderId[] } | null = null;
  function kindsInPool(): ProviderId[] {
    const accounts = pool.accounts();
    if (kinds?.of !== accounts) kinds = { of: accounts, ids: [...new Set(accounts.map((a) => a.provider))] };
    return kinds.ids;
  }

  /**
   * The request as `target` may see it: without thinking another provider of the pool signed. Nothing
   * is scanned when the pool has one provider or no other provider can tell its signatures, so a
   * single-provider pool keeps today's behaviour (each provider's own checks).
   */
  function bodyFor(body: MessagesRequest, target: ProviderId): MessagesRequest {
    // Every account counts, disabled ones too: a conversation begun on Google before its accounts
    // were disabled still carries Google's thinking.
    let others: Provider[] | null = null;
    for (const id of kindsInPool()) {
      const p = providers[id];
      if (id !== target && p?.issuedThinking) (others ??= []).push(p);
    }
    if (!others || !hasThinking(body)) return body;
    return withoutForeignThinking(body, foreignTo(providers[target]!, others));
  }

  function routeFor(model: string): Route {
    pool.syncSoon();
    const avail = available();
    const route = catalog.resolve(model, avail);
    if (route) return route;
    if (!avail.size) {
      const any = pool.accounts().length > 0;
      throw noAccountError(
        any ? 'Every account in the pool is disabled: enable one with `mcp accounts enable <id>`' : 'No accounts in the pool: add one with `mcp accounts add`',
      );
    }
    throw new ApiError('not_found_error', `model: ${model} is not served by any account in the pool (${[...avail].join(', ')})`);
  }

  /**
   * Runs a wait with a signal that also aborts when the server begins to stop (req.draining); a
   * wait the stop ended is the stop's 529. The listener on the server-wide signal goes with the wait.
   */
  async function unlessDraining<T>(req: DispatchRequest, wait: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const draining = req.draining;
    if (!draining) return wait(req.signal);
    if (draining.aborted) throw stoppingError();
    const either = new AbortController();
    const onAbort = (): void => either.abort();
    req.signal.addEventListener('abort', onAbort, { once: true });
    draining.addEventListener('abort', onAbort, { once: true });
    try {
      const r = await wait(either.signal);
      if (draining.aborted && !req.signal.aborted) throw stoppingError();
      return r;
    } catch (err) {
      if (draining.aborted && !req.signal.aborted) throw stoppingError();
      throw err;
    } finally {
      req.signal.removeEventListener('abort', onAbort);
      draining.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Waits `ms` for a limit to end, or less when the pool changes (a reload, a quota reading), so
   * the caller asks the pool again. Rejects when the client leaves.
   */
  async function resetOrChange(ms: number, signal: AbortSignal): Promise<void> {
    // One controller ends both waits (the client left, or one of them is over): no listener is left
    // on the request's signal, however often the pool changes meanwhile.
    const done = new AbortController();
    const onAbort = (): void => done.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    const left = (): ApiError => new ApiError('api_error', 'client closed the request');
    try {
      return await Promise.race([
        sleep(ms, done.signal).catch(() => {
          if (signal.aborted) throw left();
        }),
        pool.waitForChange(ms, done.signal).then(() => {
          if (signal.aborted) throw left();
        }),
      ]);
    } finally {
      signal.removeEventListener('abort', onAbort);
      done.abort();
    }
  }

  /**
   * Streams the rest after the first event; reports failures and ends the lease however it ends.
   * A hand-written iterator, not an async generator: one `then` per event instead of another
   * generator layer (this runs for every event of every request).
   */
  function follow(
    head: AnthropicEvent[],
    it: AsyncIterator<AnthropicEvent>,
    lease: Lease,
    signal: AbortSignal,
    clientModel: string,
    requestId: string,
    /** The answer to a limit from the rest of the pool (another account free, or the pool's earliest reset), or null. */
    poolAnswer: (e: UpstreamError) => ApiError | null,
  ): AsyncIterableIterator<AnthropicEvent> {
    // 0: not pulled yet, 1: streaming (counted in active streams), 2: over.
    let state = 0;
    let sent = 0; // of head
    const finish = (completed: boolean): void => {
      if (state === 2) return;
      if (state === 1) metrics.activeStreams.add({}, -1);
      state = 2;
      lease.release();
      if (!completed) it.return?.()?.catch?.(() => {});
    };
    const onResult = (r: IteratorResult<AnthropicEvent>): IteratorResult<AnthropicEvent> => {
      if (r.done) {
        finish(true);
        return DONE;
      }
      return r;
    };
    const onError = (err: unknown): never => {
      if (state === 2 || signal.aborted) {
        finish(false);
        throw err;
      }
      if (isBug(err)) {
        finish(false);
        throw bugError(err, requestId, `in the stream from ${lease.account.label} (${lease.model})`);
      }
      const e = asUpstream(err);
      // A limit seen mid-stream still tells us about the account. An auth error does not condemn it:
      // before the first event one is refreshed first, and the next request does just that.
      if (e.kind !== 'transient' && e.kind !== 'bad_request' && e.kind !== 'not_found' && e.kind !== 'auth') {
        pool.report(lease, { kind: 'error', error: e });
        if (e.kind === 'rate_limited' || e.kind === 'quota_exhausted') {
          metrics.rateLimited({ provider: lease.provider, model: metrics.rateLimitedModel(lease.model) });
          deps.onRateLimited?.(lease.account.id);
        }
      }
      log.warn(`stream from ${lease.account.label} (${lease.model}) failed after it started: ${e.kind}: ${e.message}`);
      finish(false);
      throw err instanceof ApiError ? err : (poolAnswer(e) ?? clientErrorFor(e, clientModel, now(), maxWaitMs));
    };
    return {
      next(): Promise<IteratorResult<AnthropicEvent>> {
        if (state === 2) return Promise.resolve(DONE);
        if (state === 0) {
          state = 1;
          metrics.activeStreams.add({}, 1);
        }
        if (sent < head.length) return Promise.resolve({ done: false, value: head[sent++]! });
        return it.next().then(onResult, onError);
      },
      return(): Promise<IteratorResult<AnthropicEvent>> {
        finish(false);
        return Promise.resolve(DONE);
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  /** `since`: when the request began, wall and monotonic; a fallback's waits share its MAX_WAIT_SEC. */
  async function serve(
    req: DispatchRequest,
    route: Route,
    sessionKey: string,
    historyKey: string | null,
    fallbackFrom: string | null,
    since: { wall: number; mono: number },
  ): Promise<Dispatched> {
    const provider = providers[route.provider]!;
    const body = bodyFor(req.body, route.provider);
    const started = since.wall;
    const startedMono = since.mono;
    // Accounts whose tier does not list the model are never tried for it (their 404 would end the request).
    const lacking = catalog.accountsLacking(route.provider, route.upstreamModel);
    const exclude = new Set<string>();
    const refreshed = new Set<string>();
    let attempts = 0;
    let failovers = 0;
    const failoverReasons: string[] = [];
    let last: UpstreamError | null = null;
    /**
     * The last failure that left its account in rotation and unlimited (a 5xx, a refresh that failed on
     * the way): the answer when every account was tried and not all are limited. Not an overload nor a
     * plan without the model (both rest the account), nor a dead account (out of rotation).
     */
    let lastUnlimited: UpstreamError | null = null;
    let only: string | undefined;
    let waitedForSlot = false;
    let waitedForReset = false;
    const familyKey = `${route.provider}:${route.family}`;
    // Claude Code's main turns always carry its tools; its session title and small-model one-offs
    // carry none and have no answer yet.
    const side = historyKey === null && !req.body.tools?.length;
    /** What the pool would answer now for this model: asked when one account's limit is no answer by itself. */
    const restOfPool = () => pool.peek({ provider: route.provider, model: route.upstreamModel, familyKey, sessionKey, historyKey, skip: lacking });
    /** What follows a failed attempt, for its log line: a user reading "trying another account" with one account is misled. */
    const nextStep = (): string => {
      if (attempts >= config.maxAttempts) return 'no attempt left (MAX_ATTEMPTS)';
      const rest = pool.peek({ provider: route.provider, model: route.upstreamModel, familyKey, sessionKey, historyKey, exclude, skip: lacking });
      if (rest.kind === 'free' || rest.kind === 'busy') return 'trying another account';
      return rest.kind === 'limited' ? 'every other account is limited' : 'no other account to try';
    };
    // A wait is only worth it if the client, by its own timeout, still has as long again for the answer.
    const clientBudget = req.clientWaitMs === undefined ? Infinity : req.clientWaitMs / 2;

    for (;;) {
      if (req.signal.aborted) throw new ApiError('api_error', 'client closed the request');
      const ask = { provider: route.provider, model: route.upstreamModel, familyKey, sessionKey, historyKey, exclude, skip: lacking, side };
      let got = pool.acquire(only ? { ...ask, only } : ask);
      // The refreshed account went limited or busy meanwhile (a parallel request): any other serves instead.
      if (only && got.kind !== 'lease') got = pool.acquire(ask);
      only = undefined;
      if (got.kind === 'limited') {
        const t = now();
        // Capacity is the upstream's, and clients retry a 529 themselves (Claude Code ten times): a
        // long wait in each of their attempts would multiply. One short cool-down hides a blip. So
        // with a rest after repeated 5xx (an outage): the client is told its length and waits it out,
        // instead of a minute of silence inside every other one of its retries.
        const fits = (r: { until: number; limitKind: LimitKind }) => {
          const upstreamTrouble = r.limitKind === 'capacity' || r.limitKind === 'transient';
          const budget = Math.min(upstreamTrouble ? Math.min(maxWaitMs, UPSTREAM_TROUBLE_WAIT_MS) : maxWaitMs, clientBudget);
          return r.until - started <= budget && r.until - t <= budget;
        };
        // Home (the conversation's account) is waited for only within the budget: past it, the account
        // free first serves, as it would with no home. Never an error where a wait would answer.
        const target = fits(got) ? got : got.earliest !== undefined && fits(got.earliest) ? got.earliest : null;
        if (target !== null) {
          const wait = target.until - t + WAIT_BUFFER_MS;
          const whose = target === got && got.earliest !== undefined ? "the conversation's own account" : 'the first account free again';
          if (!waitedForReset) {
            log.info(`${req.requestId}: no account can serve ${route.upstreamModel} now; waiting ${formatWait(wait)} for ${whose} to ${awaitedEnd(target.limitKind)}`);
          }
          waitedForReset = true;
          // An account enabled or added with the CLI (a reload) serves at once: it is not waited past.
          await unlessDraining(req, (signal) => resetOrChange(wait, signal));
          // A new round, however the wait ended: every account gets a fresh chance (one tried and
          // limited may be free again already). The total wait stays under maxWaitSec, and the
          // upstream calls under maxAttempts in all: a limit that comes back every round (Z.AI
          // 1305, maybe a disguised filter) is answered instead of retried for minutes.
          exclude.clear();
          continue;
        }
        // The client retries at the earliest reset, when some account serves again.
        const first = got.earliest ?? got;
        throw new PoolExhausted(route, first.until, first.limitKind, last, got.kinds);
      }
      if (got.kind === 'busy') {
        // Every account that could serve is at its concurrency cap: wait for one of its requests to end.
        // Real time too: a wall clock stepped back would otherwise stretch the wait by the jump.
        const slotBudget = Math.min(maxWaitMs, clientBudget);
        const left = Math.min(started + slotBudget - now(), startedMono + slotBudget - performance.now());
        if (left > 0) {
          if (!waitedForSlot) log.info(`${req.requestId}: every ${route.provider} account is at its concurrency cap; waiting for a slot`);
          waitedForSlot = true;
          // A limit that ends frees an account as surely as a slot does, but nothing announces it.
          const ms = got.freeAt !== undefined ? Math.min(left, Math.max(1, got.freeAt - now())) : left;
          if (await unlessDraining(req, (signal) => pool.waitForSlot(ms, signal))) continue;
          if (ms < left && !req.signal.aborted) continue;
        }
        if (req.signal.aborted) {
          if (waitedForSlot) metrics.slotWaits({ provider: route.provider, outcome: 'client_closed' });
          throw new ApiError('api_error', 'client closed the request');
        }
        metrics.slotWaits({ provider: route.provider, outcome: 'timed_out' });
        // Only the accounts that could serve are full: the others are limited (or failed this request), not busy.
        const others = got.freeAt !== undefined ? `; the others are limited, the first until ${new Date(got.freeAt).toISOString()}` : '';
        throw new ApiError(
          'overloaded_error',
          `every ${route.provider} account that can serve ${route.upstreamModel} now is serving as many requests as its concurrency cap allows (MAX_CONCURRENT_PER_ACCOUNT)${others}, and none finished within ${slotBudget < maxWaitMs ? `half the client's timeout (${Math.round(slotBudget / 1000)}s)` : `MAX_WAIT_SEC (${config.maxWaitSec}s)`}`,
          { headers: { 'retry-after': '1' } },
        );
      }
      if (got.kind === 'none') {
        if (got.reason === 'all_tried' && last) {
          // The pool says an account is left unlimited (it failed another way): that failure is the
          // answer, one the client retries, not another account's limit, which may last hours.
          const why = lastUnlimited ?? last;
          const answer = clientErrorFor(why, req.body.model, now(), maxWaitMs);
          // Every account died under this request: as good as none (a fallback may serve it).
          if (why.kind === 'invalid_account') throw new NoUsableAccount(answer);
          throw answer;
        }
        throw new NoUsableAccount(noAccountError(`No usable ${route.provider} account for ${route.upstreamModel}: ${got.detail}`));
      }
      const lease = got.lease;
      req.onAttempt?.({ accountId: lease.account.id, provider: route.provider, upstreamModel: route.upstreamModel, fallbackFrom, failovers, failoverReasons });
      if (waitedForSlot) {
        metrics.slotWaits({ provider: route.provider, outcome: 'served' });
        waitedForSlot = false;
      }
      attempts++;
      const t0 = performance.now();
      let firstAt = 0;
      let it: AsyncIterator<AnthropicEvent> | undefined;
      let first: IteratorResult<AnthropicEvent>;
      let head: AnthropicEvent[] = [];
      let whole: AnthropicEvent[] | null = null;
      let message: Message | undefined;
      try {
        it = provider
          .send(body, {
            account: lease.account,
            model: route.upstreamModel,
            clientModel: req.body.model,
            sessionKey,
            requestId: req.requestId,
            signal: req.signal,
            headers: req.headers,
            ...(req.beta ? { beta: true } : {}),
          })
          [Symbol.asyncIterator]();
        first = await it.next();
        if (first.done) throw new UpstreamError('transient', 'upstream answered with an empty stream');
        firstAt = performance.now();
        head = await headOf(first.value, it);
        // A client that is not streaming sees nothing until the answer is whole, so a failure
        // anywhere in it can still move to another account, like one before the first event.
        if (req.body.stream !== true) {
          whole = head.concat(await restOf(it));
          // An answer that cannot be made one Message (invalid tool input) is a failure like any other.
          message = await collectMessage(eventsOf(whole));
        }
      } catch (err) {
        lease.release();
        it?.return?.()?.catch?.(() => {});
        if (req.signal.aborted) {
          pool.report(lease, { kind: 'aborted' });
          throw err instanceof ApiError ? err : new ApiError('api_error', 'client closed the request');
        }
        if (tooDeep(err)) {
          pool.report(lease, { kind: 'neutral' });
          throw new ApiError('invalid_request_error', 'the request nests arrays or objects too deeply to be sent on (thousands of levels); flatten it');
        }
        if (isBug(err)) {
          pool.report(lease, { kind: 'neutral' });
          throw bugError(err, req.requestId, `before the answer from ${lease.account.label} (${route.upstreamModel})`);
        }
        const e = asUpstream(err);
        metrics.upstreamErrors({ provider: route.provider, kind: e.kind });
        if (e.kind === 'bad_request' || e.kind === 'not_found') {
          pool.report(lease, { kind: 'neutral' });
          // A provider that already speaks Anthropic (an ApiError from its translation) is passed on as is.
          throw err instanceof ApiError ? err : clientErrorFor(e, req.body.model, now(), maxWaitMs);
        }
        if (e.kind === 'auth' && !refreshed.has(lease.account.id)) {
          refreshed.add(lease.account.id);
          try {
            await provider.refresh(lease.account);
            only = lease.account.id; // the same account, once, with fresh credentials
            log.info(`${req.requestId}: refreshed credentials of ${lease.account.label} after ${e.message}`);
            continue;
          } catch (refreshErr) {
            const re = asUpstream(refreshErr);
            // Only a refusal says the credentials are dead; a token endpoint that is down or slow says nothing
            // about the account, which must not be lost to a network blip.
            if (re.kind === 'auth' || re.kind === 'invalid_account') {
              pool.markInvalid(lease.account, `credentials refresh failed: ${re.message}`, re.verifyUrl);
            } else {
              pool.report(lease, { kind: 'error', error: re });
              log.warn(`${req.requestId}: could not refresh the credentials of ${lease.account.label} (${re.kind}: ${re.message}); keeping the account`);
            }
          }
        } else {
          pool.report(lease, { kind: 'error', error: e });
        }
        if (e.kind === 'rate_limited' || e.kind === 'quota_exhausted') {
          metrics.rateLimited({ provider: route.provider, model: metrics.rateLimitedModel(route.upstreamModel) });
          deps.onRateLimited?.(lease.account.id);
        }
        last = e;
        if (e.kind === 'transient' || e.kind === 'auth') lastUnlimited = e;
        exclude.add(lease.account.id);
        if (!failsOver(e.kind) && e.kind !== 'auth') throw clientErrorFor(e, req.body.model, now(), maxWaitMs);
        log.info(`${req.requestId}: ${lease.account.label} failed for ${route.upstreamModel} (${e.kind}: ${e.message}); ${nextStep()}`);
        if (attempts >= config.maxAttempts) {
          // The last attempt's failure says nothing about the rest of the pool: one account's reset
          // (maybe hours, a final answer) is no answer while another is free, or frees up sooner; nor is
          // one account's overload (a 529 with no time) while the others are rate limited for seconds.
          const rest = restOfPool();
          // The earliest reset, not home's, and what limits that account: the client retries when some account serves.
          if (rest.kind === 'limited') throw new PoolExhausted(route, (rest.earliest ?? rest).until, (rest.earliest ?? rest).limitKind, e, rest.kinds);
          if (rest.kind === 'free' || rest.kind === 'busy') {
            // Attempts, not accounts: after a wait each account is tried again, so two can use up five.
            if (e.kind === 'rate_limited' || e.kind === 'quota_exhausted') {
              throw retrySoon(`Rate limited on ${req.body.model}: ${attempts} attempts in a row answered with a limit (MAX_ATTEMPTS); another account can serve it, retry`);
            }
            // One dead account is no "do not retry" for the request while another can serve it.
            if (e.kind === 'invalid_account') {
              throw new ApiError('api_error', `Upstream refused ${lease.account.label}, the last of ${attempts} attempts (MAX_ATTEMPTS): ${e.message}; another account can serve it, retry`, {
                status: 503,
              });
            }
          }
          throw clientErrorFor(e, req.body.model, now(), maxWaitMs);
        }
        failovers++;
        failoverReasons.push(`${lease.account.label}:${e.kind}`);
        metrics.failovers({ provider: route.provider, kind: e.kind });
        continue;
      }
      pool.report(lease, { kind: 'success' });
      deps.onServed?.(lease);
      metrics.firstEventLatency({ provider: route.provider }, (firstAt - t0) / 1000);
      let events: AsyncIterable<AnthropicEvent>;
      if (whole) {
        // The upstream call is over: the account is free for its next request already.
        lease.release();
        events = eventsOf(whole);
      } else {
        // Gone already (while buffered first events were read): no abort event will come to end the lease.
        if (req.signal.aborted) {
          lease.release();
          it!.return?.()?.catch?.(() => {});
          throw new ApiError('api_error', 'client closed the request');
        }
        // A client gone before the server first pulls never runs the generator's finally: end the lease here too.
        req.signal.addEventListener('abort', () => lease.release(), { once: true });
        events = follow(head, it!, lease, req.signal, req.body.model, req.requestId, (e) => {
          if (e.kind !== 'rate_limited' && e.kind !== 'quota_exhausted') return null;
          // This account's reset (maybe hours, a final answer) is no answer while another account can serve.
          const rest = restOfPool();
          if (rest.kind === 'limited') {
            const first = rest.earliest ?? rest;
            return limitedError(route.upstreamModel, first.limitKind, first.until, now(), maxWaitMs, e.message, rest.kinds);
          }
          if (rest.kind === 'free' || rest.kind === 'busy') {
            return retrySoon(`Rate limited on ${req.body.model} during the answer (${e.message}); other accounts can serve, retry`);
          }
          return null;
        });
      }
      return {
        events,
        accountId: lease.account.id,
        provider: route.provider,
        upstreamModel: route.upstreamModel,
        fallbackFrom,
        failovers,
        failoverReasons,
        ...(message ? { message } : {}),
      };
    }
  }

  async function dispatch(req: DispatchRequest): Promise<Dispatched> {
    let route = routeFor(req.body.model);
    // Anthropic's web search tool alone (Claude Code's WebSearch) goes to the provider's search model.
    if (webSearchToolOf(req.body)) route = catalog.webSearchRoute(route, available());
    const sessionKey = sessionKeyOf(req.body, req.headers);
    const historyKey = historyKeyOf(req.body);
    // After the keys: they name the conversation as the client sent it.
    const edited = clearOldToolUses(req.body);
    if (edited.applied) {
      log.debug(`${req.requestId}: context_management cleared ${edited.applied.cleared_tool_uses} tool results (~${edited.applied.cleared_input_tokens} tokens)`);
      req = { ...req, body: edited.req };
    }
    const since = { wall: now(), mono: performance.now() };
    try {
      return await serve(req, route, sessionKey, historyKey, null, since);
    } catch (err) {
      // The model cannot be served on any account, for now (limits) or at all (none usable).
      const answer =
        err instanceof PoolExhausted
          ? () => limitedError(route.upstreamModel, err.kind, err.until, now(), maxWaitMs, err.last?.message, err.kinds)
          : err instanceof NoUsableAccount
            ? () => err.answer
            : null;
      if (!answer) throw err;
      const fbRoute = config.fallback && !truthy(req.headers['x-proxy-no-fallback']) ? catalog.fallbackRoute(route.upstreamModel, available()) : null;
      // A map entry naming the model itself (another spelling, an alias of it) is no fallback: a
      // second round on the same accounts would only wait or fail again, and call it a fallback.
      if (!fbRoute || (fbRoute.provider === route.provider && fbRoute.upstreamModel.toLowerCase() === route.upstreamModel.toLowerCase())) throw answer();
      // What keeps the accounts out: an overload or an outage is no exhaustion.
      const why =
        err instanceof PoolExhausted
          ? `cannot be served until ${new Date(err.until).toISOString()}: ${everyAccountIs(err.kind, err.kinds, LIMIT_STATE[err.kind])}`
          : 'has no usable account';
      log.warn(`${req.requestId}: ${route.upstreamModel} ${why}; falling back to ${fbRoute.upstreamModel}`);
      metrics.fallbacks({ from: route.upstreamModel, to: fbRoute.upstreamModel });
      try {
        return await serve(req, fbRoute, sessionKey, historyKey, req.body.model, since);
      } catch (err2) {
        // No chained fallback: the client hears about the model it asked for.
        if (err2 instanceof PoolExhausted || err2 instanceof NoUsableAccount) throw answer();
        throw err2;
      }
    }
  }

  function listModels(): ModelEntry[] {
    pool.sync();
    return catalog.listModels(available(), deps.modelExtras);
  }

  return {
    dispatch,
    listModels,
    imageModel(): string | null {
      pool.syncSoon();
      return catalog.imageModel(available());
    },
    drawsImages(model: string): boolean | null {
      pool.syncSoon();
      return catalog.drawsImages(model, available());
    },
    getModel(id: string): ModelEntry | undefined {
      pool.sync();
      return catalog.describeModel(id, available(), deps.modelExtras) ?? undefined;
    },
  };
}
