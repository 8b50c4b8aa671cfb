// The Antigravity provider: Google accounts behind Cloud Code v1internal. send() = token, project,
// envelope (to-google.ts), the streamed call with endpoint fallback (client.ts), and the event
// translation (from-google.ts), with the retries that must happen before the client sees a byte:
// an empty answer (§8.4) and one 401 with a fresh token (§2.6).
import type { Config } from '../../config.ts';
import { textCopyOf } from '../../anthropic/byte-strings.ts';
import type { AnthropicEvent } from '../../anthropic/events.ts';
import type { MessagesRequest } from '../../anthropic/schema.ts';
import { createJsonTextUnfence, jsonSchemaOf } from '../../anthropic/structured-output.ts';
import { searchTextOf, webSearchToolOf } from '../../anthropic/web-search.ts';
import { trackSize } from '../../diagnostics.ts';
import { log } from '../../log.ts';
import type { Account } from '../../store/accounts.ts';
import { UpstreamError, type ModelInfo, type Provider, type ProviderDeps, type QuotaInfo, type SendContext, type VerifyResult } from '../provider.ts';
import { openGenerateStream, postJson, type CloudCodeOptions } from './client.ts';
import { createClientVersion, isRetiredModelNotice, versionGateIn } from './client-version.ts';
import { createGoogleTranslator } from './from-google.ts';
import { isImageGenerationModel, toImageGenerationEnvelope } from './image-generation.ts';
import { maxOutputTokensOf, parseModels, parseQuota, quotaGroupOf, slimCatalog, thinkingBudgetOf } from './models.ts';
import { createTokenManager } from './oauth.ts';
import {
  discoverProject,
  ineligibleReasons,
  loadCodeAssistFor,
  type OnboardOptions,
  ownProjectTier,
  parseLoadCodeAssist,
  projectRequired,
  userProjectOf,
  validationRequired,
} from './project.ts';
import { parseQuotaSummary } from './quota-summary.ts';
import { storedCallSignatures, storedImageSignatures, storedSignatureHashes } from '../issued-hashes.ts';
import { createSignatureStore } from './signatures.ts';
import { asksForThinking } from './thinking.ts';
import { enforcesResponseSchema, familyOf, toGoogleRequest } from './to-google.ts';
import {
  createGroundingCollector,
  GROUNDING_REDIRECT_ORIGIN,
  isGroundingRedirect,
  type SearchSource,
  webSearchEnvelope,
  webSearchEvents,
} from './web-search.ts';

export { classifyGoogleError, parseGoDuration } from './errors.ts';
export { parseModels, parseQuota } from './models.ts';

/** The catalog changes rarely; one listing per account serves this long. */
const MODELS_TTL_MS = 5 * 60_000;
/** §13.3: the credit type the official client spends after a quota runs out. */
const AI_CREDITS = 'GOOGLE_ONE_AI';
/** An account found without credits is not asked again for this long. */
const NO_CREDITS_RECHECK_MS = 60 * 60_000;
/** §8.4: an empty answer is retried this many times, 500 ms then 1000 ms apart. */
const EMPTY_RETRIES = 2;
const EMPTY_BACKOFF_MS = 500;

/** How long a search waits for Google's redirects to name the pages before it keeps the redirect links. */
const REDIRECT_TIMEOUT_MS = 2_000;

/**
 * The pages behind a search's grounding redirects, so the client sees (and may fetch) real links, as
 * CLIProxyAPI does. One HEAD per link, not followed, all at once; a link that does not answer with a
 * redirect in time stays as it was.
 */
async function resolveRedirects(sources: SearchSource[], origins: readonly string[], signal: AbortSignal): Promise<SearchSource[]> {
  if (!sources.some((s) => isGroundingRedirect(s.url, origins))) return sources;
  const deadline = AbortSignal.any([signal, AbortSignal.timeout(REDIRECT_TIMEOUT_MS)]);
  return Promise.all(
    sources.map(async (s) => {
      if (!isGroundingRedirect(s.url, origins)) return s;
      try {
        const res = await fetch(s.url, { method: 'HEAD', redirect: 'manual', signal: deadline });
        const to = res.headers.get('location');
        return to && /^https?:\/\//i.test(to) ? { ...s, url: to } : s;
      } catch {
        return s;
      }
    }),
  );
}

export interface AntigravityProviderOptions {
  /** onboardUser polling (tests shorten it). */
  onboard?: OnboardOptions;
  /** Base backoff between empty-response retries (default 500 ms). */
  emptyBackoffMs?: number;
}

function abortable(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new UpstreamError('transient', 'request aborted by the client'));
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new UpstreamError('transient', 'request aborted by the client'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Waits for `p` unless the signal fires first (the work behind `p` carries on for other waiters). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new UpstreamError('transient', 'request aborted by the client'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new UpstreamError('transient', 'request aborted by the client'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Google's canned answer for a model it retired: no version or account serves it any more, so the
 * client hears the model is not found (Claude Code then points at /model) with Google's advice,
 * instead of taking the notice for the model's answer.
 */
function retiredModelError(text: string, model: string): UpstreamError {
  return new UpstreamError('not_found', `Antigravity no longer serves ${model}: "${text.trim().slice(0, 200)}"`, { code: 'MODEL_RETIRED' });
}

/** Google's "please update" answer: the client's to fix (the proxy's setting), not the account's. */
function versionGateError(text: string, userAgent: string): UpstreamError {
  const said = text.trim().slice(0, 200);
  return new UpstreamError(
    'bad_request',
    `Antigravity turned away mcp's client version (User-Agent "${userAgent}"): "${said}". Set ANTIGRAVITY_USER_AGENT to a current Antigravity version, e.g. "antigravity/hub/<version> darwin/arm64" (versions: https://antigravity.google/changelog), and restart mcp`,
    { code: 'CLIENT_VERSION' },
  );
}

/** Recent session ids: a conversation sends many turns, and each would hash the same input again. */
const sessionIds = new Map<string, string>();
const SESSION_IDS_MAX = 4096;
trackSize('antigravity.sessionIds', () => sessionIds.size);

/** A stable per-conversation session id in agy's shape (signed decimal int64) for Google's prompt cache. */
export function sessionIdFor(accountId: string, sessionKey: string): string {
  const input = `${accountId}\u0000${sessionKey}`;
  const hit = sessionIds.get(input);
  if (hit !== undefined) return hit;
  const digest = new Bun.CryptoHasher('sha256').update(input).digest();
  const id = new DataView(digest.buffer, digest.byteOffset, 8).getBigInt64(0).toString();
  if (sessionIds.size >= SESSION_IDS_MAX) sessionIds.clear();
  sessionIds.set(input, id);
  return id;
}

export function createAntigravityProvider(config: Readonly<Config>, deps: ProviderDeps, opts: AntigravityProviderOptions = {}): Provider {
  const clientVersion = createClientVersion({
    userAgent: config.antigravity.userAgent,
    pinned: config.antigravity.userAgentPinned,
    manifestUrl: config.antigravity.versionUrl,
    now: deps.now,
  });
  const cc: CloudCodeOptions = {
    endpoints: config.antigravity.endpoints,
    // One User-Agent for every call, moved on only when Google turns the current one away.
    get userAgent() {
      return clientVersion.userAgent();
    },
    now: deps.now,
    httpClient: config.upstreamHttpClient,
  };
  const idleTimeoutMs = config.upstreamIdleTimeoutSec * 1000;
  const tokens = createTokenManager(config.antigravity, deps);
  const signatures = createSignatureStore({
    knownGeminiThinking: storedSignatureHashes(deps, 'antigravity'),
    onGeminiThinking: (hash) => deps.issuedSignatures?.remember('antigravity', hash),
    knownGeminiCalls: storedCallSignatures(deps),
    onGeminiCall: (call) => deps.callSignatures?.remember(call),
    knownImages: storedImageSignatures(deps),
    onImage: (image) => deps.imageSignatures?.remember(image),
  });
  // The project found per account, with the user's own project (`mcp accounts set --project`) it
  // was found under: when that setting changes (the pool reloads the account), it is found again.
  const projects = new Map<string, { projectId: string; userProject: string | null }>();
  const discovering = new Map<string, Promise<string>>();
  const catalog = new Map<string, { at: number; body: Record<string, unknown> }>();
  const emptyBackoff = opts.emptyBackoffMs ?? EMPTY_BACKOFF_MS;
  // Google's grounding redirects are followed only on Google's redirect host (or, as with the
  // tests' fake, the Cloud Code endpoints' own hosts): never to wherever an answer points.
  const redirectOrigins = [GROUNDING_REDIRECT_ORIGIN, ...config.antigravity.endpoints.map((e) => new URL(e).origin)];
  // ANTIGRAVITY_AI_CREDITS: per account and quota group, until when requests spend AI credits (the
  // quota's reset); and the accounts that had none, until when they are not asked again.
  const onCredits = new Map<string, number>();
  const noCredits = new Map<string, number>();

  // Accounts whose project was dropped: their account.meta.projectId is stale until discovery succeeds.
  const staleProjects = new Set<string>();
  trackSize('antigravity.signatures', () => signatures.size());
  trackSize('antigravity.signatureBytes', () => signatures.bytes());
  trackSize('antigravity.rejectedTokens', () => tokens.rejectedCount());
  trackSize('antigravity.perAccount', () => projects.size + catalog.size + onCredits.size + noCredits.size + staleProjects.size);

  /**
   * The project already known for the account (memory, then account.meta), or null; only one found
   * under the account's current own-project setting (meta.projectFor records the one it was found under).
   */
  function knownProject(account: Account): string | null {
    const want = userProjectOf(account.meta);
    const mem = projects.get(account.id);
    if (mem && mem.userProject === want) return mem.projectId;
    if (staleProjects.has(account.id)) return null;
    const foundFor = typeof account.meta.projectFor === 'string' ? account.meta.projectFor : null;
    return typeof account.meta.projectId === 'string' && foundFor === want ? account.meta.projectId : null;
  }

  /** Remembers and stores a discovered project, with the own-project setting it was found under. */
  function rememberProject(account: Account, userProject: string | null, info: { projectId: string; tier: string; tierId: string | null }): void {
    projects.set(account.id, { projectId: info.projectId, userProject });
    deps.updateAccount(account.id, { meta: { projectId: info.projectId, projectFor: userProject, tier: info.tier, tierId: info.tierId } });
  }

  /**
   * Forgets the account's project so the next call discovers it again (§3.3 on a 401, §9.2 on a
   * project 403). With `failed`, only while that is still the project: a request that reports its
   * 403 after another one re-discovered must not throw the new project away and discover again.
   */
  function dropProject(account: Account, failed?: string): void {
    if (failed !== undefined && knownProject(account) !== failed) return;
    projects.delete(account.id);
    staleProjects.add(account.id);
  }

  /**
   * The account's project: memory, then account.meta, then discovery (persisted; single-flight).
   * Discovery runs without the caller's signal: it serves every waiter (each may stop waiting).
   */
  function projectFor(account: Account, token: string): Promise<string> {
    const known = knownProject(account);
    if (known) return Promise.resolve(known);
    const userProject = userProjectOf(account.meta);
    // One discovery per account and setting: one under a setting just changed must not answer for the new one.
    const key = `${account.id}\u0000${userProject ?? ''}`;
    const running = discovering.get(key);
    if (running) return running;
    const p = (async () => {
      try {
        const info = await discoverProject(cc, token, undefined, opts.onboard, { userProject, label: account.label });
        staleProjects.delete(account.id);
        // The shared fallback is not worth persisting: a later discovery may do better.
        if (info.fallback) projects.set(account.id, { projectId: info.projectId, userProject });
        else rememberProject(account, userProject, info);
        return info.projectId;
      } finally {
        discovering.delete(key);
      }
    })();
    discovering.set(key, p);
    return p;
  }

  /** Runs an authenticated RPC; an upstream 401 drops the token and retries once with a fresh one. */
  async function withToken<T>(account: Account, signal: AbortSignal | undefined, fn: (token: string) => Promise<T>): Promise<T> {
    const token = await tokens.get(account, signal);
    try {
      return await fn(token);
    } catch (err) {
      if (!(err instanceof UpstreamError) || err.kind !== 'auth') throw err;
      dropProject(account);
      return fn(await tokens.refresh(account, token));
    }
  }

  async function fetchCatalog(account: Account, signal?: AbortSignal): Promise<Record<string, unknown>> {
    const body = await withToken(account, signal, async (token) => {
      const project = await (signal ? untilAborted(projectFor(account, token), signal) : projectFor(account, token));
      return postJson(cc, 'fetchAvailableModels', { project }, token, signal);
    });
    // Kept per account for the server's life: only what is read from it, not Google's ~200 KB.
    const slim = slimCatalog(body);
    catalog.set(account.id, { at: deps.now(), body: slim });
    return slim;
  }

  /** An exhausted quota names the account's other models of the same quota group, so none of them is tried in vain. */
  function withQuotaGroup(e: UpstreamError, accountId: string, model: string): UpstreamError {
    const hit = catalog.get(accountId);
    if (!hit) return e;
    const group = quotaGroupOf(model);
    const sharedWith = parseModels(hit.body)
      .map((m) => m.id)
      .filter((id) => id !== model && quotaGroupOf(id) === group);
    if (!sharedWith.length) return e;
    return new UpstreamError(e.kind, e.message, {
      status: e.status,
      resetAt: e.resetAt,
      scope: e.scope,
      code: e.code,
      verifyUrl: e.verifyUrl,
      sharedWith,
      cause: e,
    });
  }

  async function* send(req: MessagesRequest, ctx: SendContext): AsyncGenerator<AnthropicEvent> {
    const { account } = ctx;
    const family = familyOf(ctx.model);
    // Anthropic's web search tool, alone (Claude Code's WebSearch): a Google Search grounded answer.
    // Its few strings go into the answer too, so that request is worked on as text.
    const plain = webSearchToolOf(req) ? textCopyOf(req) : null;
    const search = plain && webSearchToolOf(plain);
    const searchText = plain ? searchTextOf(plain) : '';
    if (search && !searchText) throw new UpstreamError('bad_request', 'web search: the last user message has no text to search for');
    const listed = catalog.get(account.id)?.body.imageGenerationModelIds;
    const drawing = !search && isImageGenerationModel(ctx.model, Array.isArray(listed) ? listed : undefined);
    let authRetried = false;
    let projectRetried = false;
    let emptyLeft = EMPTY_RETRIES;
    let versionRetried = false;
    const creditKey = `${account.id}\u0000${quotaGroupOf(ctx.model)}`;
    // When the group went onto credits earlier, its quota comes back at this time.
    const creditsUntil = onCredits.get(creditKey) ?? 0;
    let credits = config.antigravity.aiCredits && creditsUntil > deps.now();
    // The quota answer that moved this request onto credits (its reset is when credits stop).
    let exhausted: UpstreamError | null = null;
    for (let attempt = 0; ; attempt++) {
      let token = '';
      let projectId: string;
      try {
        token = await tokens.get(account, ctx.signal);
        // The usual case: the project is known, no promise or abort listener needed.
        projectId = knownProject(account) ?? (await untilAborted(projectFor(account, token), ctx.signal));
      } catch (err) {
        // A token that passed the cache check but was refused during discovery: same single retry.
        if (err instanceof UpstreamError && err.kind === 'auth' && !authRetried && token) {
          authRetried = true;
          await tokens.refresh(account, token);
          continue;
        }
        throw err;
      }
      let envelope = search
        ? webSearchEnvelope(search, searchText, { model: ctx.model, projectId })
        : toGoogleRequest(req, {
            model: ctx.model,
            family,
            projectId,
            sessionId: sessionIdFor(account.id, ctx.sessionKey),
            requestId: `agent-${crypto.randomUUID()}`,
            signatures,
            sessionKey: ctx.sessionKey,
            // Known once the account's catalog was listed; the family default until then.
            maxOutputTokens: maxOutputTokensOf(catalog.get(account.id)?.body, ctx.model),
            thinkingBudget: thinkingBudgetOf(catalog.get(account.id)?.body, ctx.model),
            claudeThinkingReplay: config.antigravity.claudeThinkingReplay,
          });
      if (drawing) envelope = toImageGenerationEnvelope(envelope, req, `image_gen/${deps.now()}/${crypto.randomUUID()}/12`);
      if (credits) envelope.enabledCreditTypes = [AI_CREDITS];
      const userAgent = cc.userAgent;
      let stream;
      try {
        // The envelope holds the request's byte strings (anthropic/byte-strings.ts), the search's text.
        stream = await openGenerateStream({ ...cc, idleTimeoutMs }, JSON.stringify(envelope), token, ctx.signal, !search);
        if (credits && exhausted) onCredits.set(creditKey, exhausted.resetAt ?? deps.now() + NO_CREDITS_RECHECK_MS);
      } catch (err) {
        if (err instanceof UpstreamError && err.kind === 'auth' && !authRetried) {
          authRetried = true;
          log.debug(`antigravity: 401 for ${account.id}, refreshing the token and retrying once`);
          dropProject(account);
          await tokens.refresh(account, token);
          continue;
        }
        if (err instanceof UpstreamError && err.code === 'PROJECT_DENIED' && !projectRetried) {
          projectRetried = true;
          log.warn(`antigravity: ${account.label}'s project ${projectId} was refused (${err.message}); discovering it again`);
          dropProject(account, projectId);
          continue;
        }
        if (err instanceof UpstreamError && err.kind === 'quota_exhausted') {
          if (credits) {
            // Credits refused (none left, or no such credits): the quota answer stands.
            onCredits.delete(creditKey);
            noCredits.set(account.id, deps.now() + NO_CREDITS_RECHECK_MS);
            log.warn(`antigravity: ${account.label} cannot spend AI credits (${err.code ?? err.message}); its quota for ${ctx.model} is out`);
            const quota =
              exhausted ??
              new UpstreamError('quota_exhausted', `${err.message} (quota out until ${new Date(creditsUntil).toISOString()}, AI credits spent)`, {
                status: err.status,
                code: 'QUOTA_EXHAUSTED',
                resetAt: creditsUntil,
              });
            throw withQuotaGroup(quota, account.id, ctx.model);
          }
          if (config.antigravity.aiCredits && (noCredits.get(account.id) ?? 0) <= deps.now()) {
            credits = true;
            exhausted = err;
            log.info(`antigravity: ${account.label}'s quota for ${ctx.model} is out; spending its AI credits (ANTIGRAVITY_AI_CREDITS)`);
            continue;
          }
          throw withQuotaGroup(err, account.id, ctx.model);
        }
        throw err;
      }
      let yielded = false;
      try {
        if (search) {
          // A search answer is only whole at its end: the sources come with the last chunks.
          const grounding = createGroundingCollector();
          for (let batch = await stream.readBatch(); batch !== null; batch = await stream.readBatch()) for (const c of batch) grounding.feed(c);
          const found = grounding.result();
          if (found.blocked) log.warn(`antigravity: web search stopped by an upstream filter (${found.blocked}); stop_reason refusal`);
          found.sources = await resolveRedirects(found.sources, redirectOrigins, ctx.signal);
          const evs = webSearchEvents(found, { clientModel: ctx.clientModel, tool: search, searchText });
          yielded = true;
          yield* evs;
          return;
        }
        // The one async loop of the request: read a batch of chunks, translate synchronously, yield.
        // GPT-OSS reasons unasked (and unsigned, so nothing is lost); Claude and Gemini think only when told to.
        const thoughts = family !== 'gpt' || asksForThinking(req);
        const singleToolCall = req.tool_choice?.disable_parallel_tool_use === true;
        const tr = createGoogleTranslator({ clientModel: ctx.clientModel, family, sessionKey: ctx.sessionKey, signatures, thoughts, singleToolCall });
        // Only Gemini takes a response schema (not 2.x with tools); the others are asked in words (to-google.ts), and a fenced answer is unwrapped.
        const unfence = jsonSchemaOf(req) && !enforcesResponseSchema(envelope) ? createJsonTextUnfence() : null;
        // Until the first content: is it the version gate (§4.3) instead of the model's answer?
        let gateChecked = false;
        for (;;) {
          const batch = await stream.readBatch();
          if (batch === null) break;
          for (let i = 0; i < batch.length; i++) {
            const raw = tr.feed(batch[i]);
            if (!gateChecked) {
              const gate = versionGateIn(raw);
              if (gate !== undefined) gateChecked = true;
              if (gate) throw isRetiredModelNotice(gate) ? retiredModelError(gate, ctx.model) : versionGateError(gate, userAgent);
            }
            const evs = unfence ? unfence.feed(raw) : raw;
            for (let j = 0; j < evs.length; j++) {
              yielded = true;
              yield evs[j]!;
            }
          }
        }
        const last = unfence ? unfence.feed(tr.end()) : tr.end();
        for (let j = 0; j < last.length; j++) yield last[j]!;
        return;
      } catch (err) {
        if (err instanceof UpstreamError && err.code === 'CLIENT_VERSION' && !yielded && !versionRetried) {
          versionRetried = true;
          // Another request may have moved the User-Agent on already; else the manifest says where to.
          if (userAgent !== cc.userAgent || (await clientVersion.update())) continue;
        }
        const empty = err instanceof UpstreamError && err.code === 'EMPTY_RESPONSE';
        if (empty && !yielded && emptyLeft > 0 && !ctx.signal.aborted) {
          const wait = emptyBackoff * (EMPTY_RETRIES - emptyLeft + 1);
          emptyLeft--;
          log.debug(`antigravity: empty answer from ${ctx.model}, retrying in ${wait} ms`);
          await abortable(wait, ctx.signal);
          continue;
        }
        if (ctx.signal.aborted && !(err instanceof UpstreamError)) throw new UpstreamError('transient', 'request aborted by the client', { cause: err });
        throw err;
      } finally {
        // Make sure the upstream read stops (and its connection is freed) whatever happened above.
        stream.close();
      }
    }
  }

  return {
    id: 'antigravity',

    send(req: MessagesRequest, ctx: SendContext): AsyncIterable<AnthropicEvent> {
      return send(req, ctx);
    },

    async models(account: Account, signal?: AbortSignal): Promise<ModelInfo[]> {
      const hit = catalog.get(account.id);
      const body = hit && deps.now() - hit.at < MODELS_TTL_MS ? hit.body : await fetchCatalog(account, signal);
      return parseModels(body);
    },

    async quota(account: Account, signal?: AbortSignal): Promise<QuotaInfo[]> {
      const body = await fetchCatalog(account, signal);
      const perModel = parseQuota(body);
      // The 5-hour and weekly windows, as the official client reads them. Older backends may not
      // have the call: the per-model figures then stand alone.
      try {
        const summary = await withToken(account, signal, async (token) => {
          const project = await (signal ? untilAborted(projectFor(account, token), signal) : projectFor(account, token));
          return postJson(cc, 'retrieveUserQuotaSummary', { project }, token, signal);
        });
        return [...perModel, ...parseQuotaSummary(summary, parseModels(body).map((m) => m.id))];
      } catch (err) {
        log.debug(`antigravity: no quota windows for ${account.label}: ${(err as Error)?.message ?? String(err)}`);
        return perModel;
      }
    },

    async refresh(account: Account): Promise<void> {
      await tokens.refresh(account);
    },

    async verify(account: Account, signal?: AbortSignal): Promise<VerifyResult> {
      try {
        // The refresh token is what must last: an access token minted before it was revoked passes
        // for up to an hour, and would put an account back in rotation only to fail again.
        await tokens.refresh(account);
        const userProject = userProjectOf(account.meta);
        const body = await withToken(account, signal, (token) => loadCodeAssistFor(cc, token, signal, { userProject, label: account.label }));
        const info = parseLoadCodeAssist(body);
        // No project and Google wants the account verified: not usable, whatever the token says.
        const mustVerify = info.projectId ? null : validationRequired(body);
        if (mustVerify) throw mustVerify;
        const why = info.projectId ? null : ineligibleReasons(body);
        const found = knownProject(account);
        // A tier that takes the user's own project, none set and none known (one imported from another
        // proxy serves as it is): it cannot serve until one is.
        const ownTier = info.projectId || why || found ? null : ownProjectTier(body);
        if (ownTier && !userProject) throw projectRequired(ownTier, account.label);
        if (info.projectId && (found !== info.projectId || account.meta.tierId !== info.tierId)) {
          rememberProject(account, userProject, { projectId: info.projectId, tier: info.tier, tierId: info.tierId });
        }
        const project = info.projectId ?? (userProject ? `${userProject} (yours)` : found ? `${found} (stored)` : '(none yet)');
        return {
          ok: true,
          detail: `project ${project}, tier ${info.tier}${info.tierId ? ` (${info.tierId})` : ''}${why ? `; Google: ${why}` : ''}`,
        };
      } catch (err) {
        const e = err instanceof UpstreamError ? err : new UpstreamError('transient', String((err as Error)?.message ?? err));
        return { ok: false, detail: `${e.kind}: ${e.message}${e.verifyUrl ? ` — verify at ${e.verifyUrl}` : ''}`, error: e };
      }
    },

    issuedThinking(signature: string): boolean {
      // Claude's R-form is known by its shape; Gemini's from memory, which the store fills after a restart.
      return signatures.thinkingFamily(signature) !== undefined;
    },
  };
}
