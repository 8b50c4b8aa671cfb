// The Z.AI provider: GLM API keys behind Z.AI's Anthropic-compatible endpoint.
import type { Config } from '../../config.ts';
import type { AnthropicEvent } from '../../anthropic/events.ts';
import type { MessagesRequest } from '../../anthropic/schema.ts';
import { trackSize } from '../../diagnostics.ts';
import type { Account } from '../../store/accounts.ts';
import { UpstreamError, type ModelInfo, type Provider, type ProviderDeps, type QuotaInfo, type SendContext, type VerifyResult } from '../provider.ts';
import { getJson, streamMessages } from './client.ts';
import { isExpiredPlanReason } from './errors.ts';
import { createIssuedSignatures, unsignedThinkingKey } from './issued.ts';
import { storedSignatureHashes } from '../issued-hashes.ts';
import { mergeModels, parseModelList } from './models.ts';
import { describeQuota, parseZaiQuota, type ZaiQuota } from './quota.ts';

export { classifyZaiError, parseZaiResetAt, nextChinaMidnight } from './errors.ts';
export { toZaiBody, foldMessages, zaiHeaders } from './request.ts';
export { parseZaiQuota } from './quota.ts';
export { KNOWN_ZAI_MODELS } from './models.ts';

/** The model list changes rarely; one listing serves every key for this long. */
const MODELS_TTL_MS = 10 * 60 * 1000;

function apiKeyOf(account: Account): string {
  if (account.credentials.kind !== 'api_key') {
    throw new UpstreamError('invalid_account', 'Z.AI accounts need an API key', { scope: 'account' });
  }
  return account.credentials.apiKey;
}

export function createZaiProvider(config: Config, deps: ProviderDeps): Provider {
  const baseUrl = config.zai.baseUrl;
  const quotaUrl = config.zai.quotaUrl;
  const httpClient = config.upstreamHttpClient;
  const issued = createIssuedSignatures(undefined, {
    known: storedSignatureHashes(deps, 'zai'),
    onRemember: (hash) => deps.issuedSignatures?.remember('zai', hash),
  });
  trackSize('zai.signatures', () => issued.size());
  const clientOpts = {
    baseUrl,
    idleTimeoutMs: config.upstreamIdleTimeoutSec * 1000,
    now: deps.now,
    httpClient,
    stripBetas: config.zai.stripBetas,
    onSignature: issued.remember,
    onUnsignedThinking: (thinking: string) => issued.remember(unsignedThinkingKey(thinking)),
    ownUnsignedThinking: (thinking: string) => issued.has(unsignedThinkingKey(thinking)),
  };
  let modelCache: { at: number; models: ModelInfo[] } | null = null;

  async function fetchQuota(account: Account, signal?: AbortSignal): Promise<ZaiQuota> {
    const key = apiKeyOf(account);
    let body: unknown;
    try {
      body = await getJson(quotaUrl, key, deps.now, signal, httpClient);
    } catch (err) {
      // The quota endpoint is a setting of its own: its 404 is no fault of ZAI_BASE_URL's, which the
      // shared classification would blame.
      if (err instanceof UpstreamError && err.status === 404) {
        throw new UpstreamError('bad_request', `Z.AI's quota endpoint ${quotaUrl} answered HTTP 404: ZAI_QUOTA_URL is probably wrong (unset, it follows ZAI_BASE_URL)`, {
          status: 404,
        });
      }
      // A 403 here says what its 401 says, a key it does not take (protocol 3.3), unless a business
      // code names the account's state (locked, banned): 'auth', which the poller leaves to a request
      // to confirm. Read as invalid_account, a CDN page refusing the proxy took out every key at once.
      if (err instanceof UpstreamError && err.status === 403 && err.kind === 'invalid_account' && (err.code === null || err.code === '403')) {
        throw new UpstreamError('auth', err.message, { status: 403, code: err.code, scope: 'account' });
      }
      throw err;
    }
    const q = parseZaiQuota(body, key);
    // Remember the plan level for status pages; written only when it changes. A reading without one
    // (only coding-plan keys have a level: the plan expired) forgets the plan it named before.
    const known = typeof account.meta.plan === 'string' ? account.meta.plan : null;
    if (known !== q.level) deps.updateAccount(account.id, { meta: { plan: q.level } });
    return q;
  }

  return {
    id: 'zai',

    send(req: MessagesRequest, ctx: SendContext): AsyncIterable<AnthropicEvent> {
      return streamMessages(clientOpts, req, ctx);
    },

    async models(account: Account, signal?: AbortSignal): Promise<ModelInfo[]> {
      const now = deps.now();
      if (modelCache && now - modelCache.at < MODELS_TTL_MS) return modelCache.models;
      let listed: ModelInfo[] = [];
      try {
        listed = parseModelList(await getJson(`${baseUrl}/v1/models`, apiKeyOf(account), deps.now, signal, httpClient));
      } catch {
        // The listing is a nicety: the known catalogue still serves.
      }
      // A failed or empty listing says nothing new: the last good one stands, and the next call asks again.
      if (!listed.length) return modelCache?.models ?? mergeModels(listed);
      const models = mergeModels(listed);
      modelCache = { at: now, models };
      return models;
    },

    async quota(account: Account, signal?: AbortSignal): Promise<QuotaInfo[]> {
      return (await fetchQuota(account, signal)).windows;
    },

    issuedThinking(signature: string): boolean {
      return issued.has(signature);
    },

    async refresh(): Promise<void> {
      // API keys do not expire.
    },

    async verify(account: Account, signal?: AbortSignal): Promise<VerifyResult> {
      try {
        const q = await fetchQuota(account, signal);
        // The quota endpoint still answers for a key whose plan expired (1309): passing on that alone,
        // the key came back every quota round to fail a request. Only a reading that names a plan again
        // (a level, a token window) says it was renewed.
        if (account.status === 'invalid' && isExpiredPlanReason(account.statusReason) && q.level === null && !q.windows.length) {
          const error = new UpstreamError('invalid_account', 'the plan is still expired (the quota reading names no plan)', { scope: 'account' });
          return { ok: false, detail: `invalid_account: ${error.message}`, error };
        }
        return { ok: true, detail: describeQuota(q) };
      } catch (err) {
        const e = err instanceof UpstreamError ? err : new UpstreamError('transient', String((err as Error)?.message ?? err));
        return { ok: false, detail: `${e.kind}: ${e.message}`, error: e };
      }
    },
  };
}
