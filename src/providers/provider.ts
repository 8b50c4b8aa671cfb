// The seam between the routing brain and an upstream. Everything provider-specific stays behind it:
// a provider turns one Anthropic request into a stream of Anthropic events for one account, or
// throws an UpstreamError saying what kind of failure it was so the gateway can act on it.
import type { AnthropicEvent } from '../anthropic/events.ts';
import type { MessagesRequest } from '../anthropic/schema.ts';
import type { Account, AccountPatch, ProviderId } from '../store/accounts.ts';

export type { ProviderId };

/**
 * What went wrong upstream, in the terms the gateway acts on:
 * - rate_limited: short throttle; cool this account+model down until resetAt, fail over.
 * - quota_exhausted: the account's quota for the model is gone until resetAt; fail over.
 * - capacity: the upstream has no capacity (not this account's fault); fail over / retry.
 * - auth: credentials rejected; refresh once and retry, then treat as invalid_account.
 * - invalid_account: the account can't serve (revoked, banned, unpaid); mark it and fail over.
 * - no_access: this account may not use this model (its plan lacks it); rest the model on it until
 *   resetAt and fail over: another account's plan may include it.
 * - bad_request: the client's request is wrong; never retried, shown to the client.
 * - not_found: model unknown upstream; shown to the client.
 * - transient: 5xx, network, timeouts, empty responses; fail over.
 */
export type UpstreamErrorKind =
  | 'rate_limited'
  | 'quota_exhausted'
  | 'capacity'
  | 'auth'
  | 'invalid_account'
  | 'no_access'
  | 'bad_request'
  | 'not_found'
  | 'transient';

export class UpstreamError extends Error {
  readonly kind: UpstreamErrorKind;
  /** Upstream HTTP status, 0 for network errors. */
  readonly status: number;
  /** Epoch ms when the limit lifts, when the upstream said (or implied) it. */
  readonly resetAt: number | null;
  /** Whether the limit applies to the model only, or to every model of the account (Z.AI quota). */
  readonly scope: 'model' | 'account';
  /** Provider's own code (e.g. "1308", "QUOTA_EXHAUSTED") for logs and the client message. */
  readonly code: string | null;
  /** Google's verification link for accounts that need it. */
  readonly verifyUrl: string | null;
  /**
   * Other upstream models of the same account that this limit also covers, because they draw on
   * one shared quota (Antigravity's "Claude and GPT" and "Gemini" groups).
   */
  readonly sharedWith: readonly string[];

  constructor(
    kind: UpstreamErrorKind,
    message: string,
    opts: {
      status?: number;
      resetAt?: number | null;
      scope?: 'model' | 'account';
      code?: string | null;
      verifyUrl?: string | null;
      sharedWith?: readonly string[];
      cause?: unknown;
    } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'UpstreamError';
    this.kind = kind;
    this.status = opts.status ?? 0;
    this.resetAt = opts.resetAt ?? null;
    this.scope = opts.scope ?? 'model';
    this.code = opts.code ?? null;
    this.verifyUrl = opts.verifyUrl ?? null;
    this.sharedWith = opts.sharedWith ?? [];
  }
}

/**
 * A failure that is the account's own and lasts (a revoked login, a refused key, a banned or unpaid
 * account): the account is marked invalid, as the pool does for a request that meets it. Anything
 * else (a timeout, a 5xx, a limit) says nothing about the credentials.
 */
export function meansInvalidAccount(e: UpstreamError): boolean {
  return e.kind === 'auth' || e.kind === 'invalid_account';
}

/** What `verify` found; a failure keeps its classified error, so a dead credential is told from a blip. */
export interface VerifyResult {
  ok: boolean;
  detail: string;
  error?: UpstreamError;
}

export type ModelFamily = 'claude' | 'gemini' | 'gpt' | 'glm' | 'other';

/** A model's family from its id prefix: what decides signatures, thinking config and session stickiness. */
export function familyOf(id: string): ModelFamily {
  const s = id.toLowerCase();
  if (s.startsWith('claude')) return 'claude';
  if (s.startsWith('gemini')) return 'gemini';
  if (s.startsWith('gpt')) return 'gpt';
  if (s.startsWith('glm')) return 'glm';
  return 'other';
}

export interface ModelInfo {
  /** Upstream model id, e.g. "claude-opus-4-6-thinking", "glm-4.7". */
  id: string;
  displayName: string;
  family: ModelFamily;
  contextWindow?: number;
  maxOutputTokens?: number;
  thinking?: boolean;
  supportsImages?: boolean;
  /** The provider answers Anthropic's web search tool with this model (Antigravity: `webSearchModelIds`). */
  webSearch?: boolean;
  /** The model draws images (Antigravity: `imageGenerationModelIds`). */
  imageGeneration?: boolean;
  /** Ids the upstream retired in favour of this one (Antigravity: `deprecatedModelIds[old].newModelId`). */
  replaces?: readonly string[];
}

export interface QuotaInfo {
  /** Upstream model id, or "*" when the quota covers every model of the account (Z.AI). */
  model: string;
  /** 0..1, null when unknown. */
  remainingFraction: number | null;
  /** Epoch ms of the next reset, null when unknown. */
  resetAt: number | null;
  /** Window name when the upstream reports several ("5h", "weekly"). */
  window?: string;
}

export interface SendContext {
  account: Account;
  /** The upstream model id to call. */
  model: string;
  /** The model name the client asked for; echoed back in message_start. */
  clientModel: string;
  /** Stable id of the client conversation (for upstream caching and sticky sessions). */
  sessionKey: string;
  requestId: string;
  signal: AbortSignal;
  /** Client headers worth forwarding (lower-case names): anthropic-version, anthropic-beta, user-agent, x-app. */
  headers: Record<string, string>;
  /** The client called `/v1/messages?beta=true`: an upstream that speaks Anthropic is called the same way. */
  beta?: boolean;
}

export interface Provider {
  readonly id: ProviderId;
  /** One upstream call. Yields a valid Anthropic event sequence or throws UpstreamError. */
  send(req: MessagesRequest, ctx: SendContext): AsyncIterable<AnthropicEvent>;
  /** Models this account can use (discovered upstream; cached by the provider). */
  models(account: Account, signal?: AbortSignal): Promise<ModelInfo[]>;
  /** Remaining quota per model (or "*"). */
  quota(account: Account, signal?: AbortSignal): Promise<QuotaInfo[]>;
  /** Drop cached credentials and fetch fresh ones now (no-op for API keys). Throws UpstreamError. */
  refresh(account: Account): Promise<void>;
  /** One cheap authenticated call, for `mcp accounts verify`. */
  verify(account: Account, signal?: AbortSignal): Promise<VerifyResult>;
  /**
   * Whether this provider issued the thinking signature (from memory, or its shape). In a pool of
   * several providers the gateway sends each one only the thinking it issued (or, for one that cannot
   * tell, none that another claims), so one provider's thinking never reaches another.
   */
  issuedThinking?(signature: string): boolean;
}

/** What a provider may ask of the rest of the program: persist what it learned about an account. */
export interface ProviderDeps {
  updateAccount(id: string, patch: AccountPatch): void;
  now(): number;
  /**
   * Where a provider keeps the hashes of the thinking signatures it issued, so that after a restart
   * it still tells its own thinking from another's (issuedThinking). None: memory only (the CLI).
   */
  issuedSignatures?: IssuedSignatureStore;
  /**
   * Where Antigravity keeps the thought signatures of recent Gemini function calls, which Gemini
   * wants back on the call and Claude Code does not return. None: memory only (a restart then sends
   * the skip sentinel, and the tool loop loses its reasoning).
   */
  callSignatures?: CallSignatureStore;
  /**
   * Where Antigravity keeps the thought signatures of pictures a Gemini image model drew, which the
   * model wants back on its picture in the history. None: memory only (a restart then sends the
   * picture unsigned, which the model may refuse, as it does an unsigned call).
   */
  imageSignatures?: ImageSignatureStore;
}

export interface KeptCallSignature {
  toolUseId: string;
  signature: string | null;
  /** The upstream gave the call no id; the proxy made the one the client knows it by. */
  minted: boolean;
}

export interface CallSignatureStore {
  /** The calls kept, oldest first. */
  load(): KeptCallSignature[];
  /** Keeps one more (written in the background, never on the request path). */
  remember(call: KeptCallSignature): void;
}

/** A drawn picture's signature, known by a hash of the picture's base64 (the picture itself is never kept). */
export interface KeptImageSignature {
  hash: number;
  signature: string;
}

export interface ImageSignatureStore {
  /** The pictures' signatures kept, oldest first. */
  load(): KeptImageSignature[];
  /** Keeps one more (written in the background, never on the request path). */
  remember(image: KeptImageSignature): void;
}

export interface IssuedSignatureStore {
  /** The hashes kept for `provider`, oldest first. */
  load(provider: ProviderId): number[];
  /** Keeps one more (written in the background, never on the request path). */
  remember(provider: ProviderId, hash: number): void;
}
