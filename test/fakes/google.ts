// A fake Google for Antigravity on 127.0.0.1: the OAuth consent endpoint (redirects back with
// code+state), the token endpoint (authorization_code with PKCE check, refresh_token), userinfo,
// and Cloud Code v1internal under two prefixes (`/daily`, `/prod`) so endpoint fallback can be
// tested: loadCodeAssist, onboardUser (long-running op), fetchAvailableModels (per-account quota),
// streamGenerateContent?alt=sse and generateContent. Streams follow the real agy 1.2.0 captures
// (protocol §6, fixtures agy_cli_1.2.0/*.resp.sse): Claude starts with {"text":""} and sends its
// R-form signature in its own thought part; Gemini signs the functionCall part; GPT-OSS always
// reasons in unsigned thought parts, opens and finishes without parts and ends with a usage-only chunk. Error bodies follow fixtures/errors/.
// Every fault the provider must classify can be switched on, one-shot or per token/model/endpoint.
import { type FrameStreamOptions, frameStream } from './frame-stream.ts';
import { solidPng } from './png.ts';

export type QuotaHint = 'full' | 'retry_info' | 'quota_reset_delay' | 'quota_reset_timestamp' | 'message' | 'none';

export type FakeGoogleMode =
  | { kind: 'ok' }
  /** 429 QUOTA_EXHAUSTED with one kind of reset hint (default 'full' = all of them, as real bodies). */
  | { kind: 'quota_exhausted'; hint?: QuotaHint; resetMs?: number }
  /** 429 RATE_LIMIT_EXCEEDED with a short delay (default 479 ms). */
  | { kind: 'rate_limited'; resetMs?: number }
  /** 503 UNAVAILABLE MODEL_CAPACITY_EXHAUSTED. */
  | { kind: 'capacity' }
  | { kind: 'http500' }
  /** An HTML 502 from the front end. */
  | { kind: 'html502' }
  /** 401 UNAUTHENTICATED whatever the token. */
  | { kind: 'unauthorized' }
  /** 403 PERMISSION_DENIED VALIDATION_REQUIRED with a validation_url. */
  | { kind: 'validation_required' }
  /** 403 terms-of-service ban text. */
  | { kind: 'tos_banned' }
  /**
   * 403 "Permission 'cloudaicompanion.companions.generateChat' denied" on the request's project
   * (protocol §9.2, fixtures/errors): for every generation under `project` (any project if unset),
   * after `delayMs`.
   */
  | { kind: 'project_denied'; project?: string; delayMs?: number }
  /** 400 Claude invalid thinking signature (JSON-encoded Anthropic error inside message). */
  | { kind: 'signature_error' }
  /** 404 NOT_FOUND "Requested entity was not found." */
  | { kind: 'not_found' }
  /**
   * 400 INVALID_ARGUMENT in Google's wording ("The input token count (N) exceeds the maximum number of tokens
   * allowed (M).") when the request is over maxTokens (counted as 4 characters a token); served otherwise.
   */
  | { kind: 'prompt_too_long'; maxTokens: number }
  | { kind: 'reset_before_first_byte' }
  /** The socket dies after `afterChunks` data lines (default 2). */
  | { kind: 'reset_mid_stream'; afterChunks?: number }
  | { kind: 'stall_before_first_byte'; ms: number }
  /** Silence for `ms` after `afterChunks` data lines (default 2), then the rest. */
  | { kind: 'stall_mid_stream'; ms: number; afterChunks?: number }
  /** A data line that is not JSON after `afterChunks` lines (default 1), then the rest. */
  | { kind: 'malformed_data'; afterChunks?: number }
  /** The stream ends without any finishReason chunk. */
  | { kind: 'no_finish' }
  /** 200 text/event-stream with nothing in it. */
  | { kind: 'empty_response' }
  /**
   * A retired model's canned answer as ordinary text, 0 tokens (antigravity.md §11.5, the Feb–Mar 2026
   * "Gemini 3 Pro is no longer available. Please switch to Gemini 3.1 Pro in the latest version of Antigravity.").
   */
  | { kind: 'retired_model'; notice?: string }
  /** 200 with chunks that carry no parts at all (what the backend does now and then). */
  | { kind: 'empty_candidates' }
  /**
   * 200 with an answer a content filter stopped before any part: the candidate has no parts and
   * finishReason SAFETY (or the given one), with safetyRatings, as Gemini streams it.
   */
  | { kind: 'blocked_answer'; finishReason?: string }
  /** 200 with the prompt itself blocked: no candidates, only promptFeedback.blockReason (default SAFETY). */
  | { kind: 'blocked_prompt'; blockReason?: string }
  /** 200 with MAX_TOKENS and no parts: the whole output budget went on thinking. */
  | { kind: 'thinking_exhausted' }
  /** The answer's text in `chunks` pieces written `delayMs` apart. */
  | { kind: 'slow_chunks'; chunks: number; delayMs: number }
  /** Token endpoint: refresh_token grants answer 400 invalid_grant. */
  | { kind: 'token_invalid_grant' }
  /** Token endpoint: the OAuth client itself is refused (a wrong GOOGLE_CLIENT_ID / SECRET). */
  | { kind: 'token_invalid_client' }
  /** Token endpoint: HTTP 500. */
  | { kind: 'token_http500' }
  /** Token endpoint: an HTML 502 from Google's front end. */
  | { kind: 'token_html502' }
  /** Token endpoint: the connection is dropped. */
  | { kind: 'token_down' }
  /** Token endpoint: answers after `ms` (single-flight tests). */
  | { kind: 'token_slow'; ms: number }
  /** Token endpoint: a refresh also returns a new refresh_token and revokes the one it was given. */
  | { kind: 'token_rotate' }
  /** Token endpoint: the code exchange answers without a refresh_token (a consent without offline access). */
  | { kind: 'token_no_refresh' }
  /**
   * Token endpoint: refuses the grant (`error`, default invalid_grant) with an error_description that
   * quotes the form it was sent (refresh token, code, client secret, URL-encoded), as a careless
   * upstream or a proxy in front of it might.
   */
  | { kind: 'token_echo'; error?: string; status?: number }
  /**
   * Generation (or, with `rpc`, another Cloud Code call): an error (default 401 UNAUTHENTICATED) whose
   * message quotes the request's Authorization header, as some real upstreams and proxies do.
   */
  | { kind: 'echo_token'; status?: number };

export type FakeModeKind = FakeGoogleMode['kind'];

export interface FakeModelQuota {
  remainingFraction?: number;
  /** RFC3339. */
  resetTime?: string;
}

export type FakeQuotaWindows = Partial<Record<'gemini' | 'claude+gpt', Partial<Record<'5h' | 'weekly', FakeModelQuota>>>>;

export interface FakeAccount {
  email: string;
  /** null: loadCodeAssist returns no project and onboarding provisions `onboardProject`. */
  projectId: string | null;
  /** paidTier id (e.g. g1-pro-tier), or null for none. */
  paidTierId: string | null;
  /** onboardUser answers done:false this many times first. */
  onboardPolls: number;
  onboardProject: string;
  /**
   * Google One AI credits (antigravity.md §13.3): while the quota is out, a request with
   * enabledCreditTypes ["GOOGLE_ONE_AI"] is served and spends one; with none left it is refused
   * with INSUFFICIENT_G1_CREDITS_BALANCE. Default 0.
   */
  aiCredits: number;
  /**
   * Tiers Google will not give this account, in loadCodeAssist's `ineligibleTiers` shape
   * ({reasonCode, reasonMessage, tierId, tierName, validationUrl?}, as gemini-cli's setup.ts reads
   * it). When set, loadCodeAssist answers with no currentTier and only the standard tier allowed,
   * and onboardUser is refused with 400 FAILED_PRECONDITION.
   */
  ineligibleTiers?: Record<string, string>[];
  /** The onboarding operation ends `done: true` with this google.rpc.Status `error` and no response. */
  onboardError?: { code: number; status: string; message: string };
  /**
   * A Workspace / paid Gemini Code Assist account (protocol §3.1: standard-tier,
   * `userDefinedCloudaicompanionProject: true`): Google provisions no project; it serves only under
   * this one, which the client names as `metadata.duetProject`. loadCodeAssist names no project
   * (no currentTier until onboarded), and refuses another duetProject with 403; onboardUser needs
   * it and ends with no project in its response (gemini-cli then uses its own); generation under
   * any other project is refused with the generateChat 403.
   */
  userProject?: string;
}

export interface FakeGoogleOptions {
  /** Keep a record of every request (default true); benchmarks turn it off. */
  record?: boolean;
  /** Email the consent endpoint logs in as (default user@example.com). */
  loginEmail?: string;
  /** expires_in of issued access tokens (default 3599). */
  expiresIn?: number;
  /** Text of plain answers. */
  replyText?: string;
  /**
   * Check the history the way Google does (400 otherwise): every thought signature must be one this
   * fake issued to the same family (Gemini: "Thought signature is not valid"; Claude: "Invalid
   * `signature`"); Gemini needs a signature (or the sentinel) on the first functionCall of every
   * model step of the current turn; Claude with thinking on needs the model message closing a tool
   * loop to start with its thinking.
   */
  strictSignatures?: boolean;
}

export interface RecordedGoogleRequest {
  method: string;
  path: string;
  /** 'daily' | 'prod' for Cloud Code calls, null for OAuth. */
  endpoint: 'daily' | 'prod' | null;
  /** v1internal method (streamGenerateContent…) or 'token' | 'auth' | 'userinfo'. */
  rpc: string;
  query: string;
  headers: Record<string, string>;
  body: unknown;
  /** The bearer token sent, or null. */
  token: string | null;
  email: string | null;
  aborted: boolean;
  /** false while a streamed answer is still being written; set once it has ended (finished, cut or cancelled). */
  ended?: boolean;
  mode: FakeModeKind;
  /** thoughtSignatures this fake issued in its answer to this request (generations only). */
  issuedSignatures?: string[];
}

export interface FakeGoogle {
  url: string;
  /** Cloud Code bases in fallback order: `${url}/daily`, `${url}/prod`. */
  endpoints: string[];
  tokenUrl: string;
  authUrl: string;
  userinfoUrl: string;
  port: number;
  requests: RecordedGoogleRequest[];
  stats: { refreshes: number; codeExchanges: number; generations: number };
  /**
   * Switches answers. Token-endpoint kinds (token_*) apply to the token endpoint, the others to
   * generation, or with `rpc` to that other Cloud Code call instead (loadCodeAssist, onboardUser…:
   * http500, html502, not_found, unauthorized, validation_required, tos_banned, project_denied,
   * reset_before_first_byte, stall_before_first_byte). Filters: access `token` (or account `email`),
   * `model`, `endpoint`; `times` makes it n-shot. Newest rule first.
   */
  setMode(
    mode: FakeGoogleMode,
    opts?: { token?: string; email?: string; model?: string; endpoint?: 'daily' | 'prod'; times?: number; rpc?: string },
  ): void;
  clearModes(): void;
  /** Replaces the catalog (ids -> entry); quota per model can be set with setQuota. */
  setModels(models: Record<string, Record<string, unknown>>): void;
  /** Quota per model for one account (by email) or for everyone. */
  setQuota(quota: Record<string, FakeModelQuota | null>, opts?: { email?: string }): void;
  /**
   * The 5-hour and weekly windows retrieveUserQuotaSummary reports per model group, for one account
   * or everyone (default: every window full, resets in 5 h / 7 days). `null` for the whole setting
   * makes the call unknown (404), as on a backend without it.
   */
  setQuotaWindows(windows: FakeQuotaWindows | null, opts?: { email?: string }): void;
  /** Account facts for loadCodeAssist/onboardUser. */
  setAccount(email: string, patch: Partial<Omit<FakeAccount, 'email'>>): void;
  setLoginEmail(email: string): void;
  /**
   * The scopes the user leaves ticked on Google's consent page (granular consent), or null for all
   * asked for. The code exchange reports them in `scope`, as Google does.
   */
  setLoginScopes(scopes: string[] | null): void;
  /** A refresh token the token endpoint knows, for `email`. */
  refreshTokenFor(email: string): string;
  /** Revokes every access token issued so far (the next call with one gets 401). */
  expireAccessTokens(): void;
  /** Generation requests (the usual assertion target). */
  generations(): RecordedGoogleRequest[];
  /** The updater manifest (ANTIGRAVITY_VERSION_URL): electron-builder YAML naming `latest`. */
  versionUrl: string;
  /**
   * The version gate (antigravity.md §4.3): generations whose User-Agent carries a version below
   * `min` are answered with the canned "no longer supported" text as a normal answer (0 tokens), as
   * the real backend does. `latest` is what the manifest names (default 2.9.1). `min` null: no gate.
   */
  setClientVersions(v: { min: string | null; latest?: string }): void;
  stop(): Promise<void>;
}

const SSE_HEADERS = { 'content-type': 'text/event-stream', 'x-cloudaicompanion-trace-id': 'fake', server: 'ESF' };
const JSON_HEADERS = { 'content-type': 'application/json; charset=UTF-8' };
const HOUR = 3_600_000;

function hex(n: number): string {
  let s = '';
  while (s.length < n) s += Math.floor(Math.random() * 0xffffffff).toString(16).padStart(8, '0');
  return s.slice(0, n);
}

function b64(n: number): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(n))).toString('base64');
}

/** Claude signatures arrive double-base64 ("R-form" of an Anthropic "E…" signature). */
function claudeSignature(): string {
  return Buffer.from(`Eo${b64(90)}`).toString('base64');
}

function geminiSignature(): string {
  return `Ep0g${b64(72)}`;
}

/** Whether the first X.Y.Z in a User-Agent is older than `min` (no version at all counts as older). */
function versionBelow(userAgent: string, min: string): boolean {
  const v = /(\d+)\.(\d+)\.(\d+)/.exec(userAgent);
  const m = /(\d+)\.(\d+)\.(\d+)/.exec(min)!;
  if (!v) return true;
  for (let i = 1; i <= 3; i++) if (Number(v[i]) !== Number(m[i])) return Number(v[i]) < Number(m[i]);
  return false;
}

/** The canned answer to a client version the backend no longer supports: ordinary text, 0 tokens. */
function versionGateAnswer(model: string, stream: boolean): Response {
  return cannedAnswer(model, stream, 'This version of Antigravity is no longer supported. Please update to receive the latest features!');
}

/** A notice from the backend in place of the model's answer (version gate, retired model): ordinary text, 0 tokens. */
function cannedAnswer(model: string, stream: boolean, text: string): Response {
  const chunk = {
    response: {
      candidates: [{ content: { role: 'model', parts: [{ text }] }, finishReason: 'STOP' }],
      usageMetadata: { promptTokenCount: 0, candidatesTokenCount: 0, totalTokenCount: 0 },
      modelVersion: model,
    },
    traceId: 'fake',
  };
  if (!stream) return new Response(JSON.stringify(chunk), { headers: JSON_HEADERS });
  return new Response(`data: ${JSON.stringify(chunk)}\r\n\r\n`, { headers: SSE_HEADERS });
}

/** Go duration text like the backend writes it: 25h20m26.179915352s. */
function goDuration(ms: number): string {
  let s = ms / 1000;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s.toFixed(6)}s`;
}

/** Rounded, as in messages: "1h2m3s". */
function humanDuration(ms: number): string {
  let s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s`;
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });
}

function googleError(status: number, gStatus: string, message: string, details?: unknown[]): Response {
  const error: Record<string, unknown> = { code: status, message, status: gStatus };
  if (details) error.details = details;
  return json(status, { error });
}

/** Google's front end's own 502 page (HTML, not JSON), as captured. */
function html502(): Response {
  return new Response('<!DOCTYPE html><html lang=en><title>Error 502 (Server Error)!!1</title><p><b>502.</b> <ins>That’s an error.</ins></html>', {
    status: 502,
    headers: { 'content-type': 'text/html; charset=UTF-8' },
  });
}

function validationRequired(): Response {
  return googleError(403, 'PERMISSION_DENIED', 'VALIDATION_REQUIRED: Please complete account validation', [
    {
      '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
      reason: 'VALIDATION_REQUIRED',
      domain: 'cloudcode-pa.googleapis.com',
      metadata: { validation_url: 'https://accounts.google.com/signin/continue?sarp=1&scc=1&plt=FAKE' },
    },
  ]);
}

function tosBanned(): Response {
  return googleError(403, 'PERMISSION_DENIED', 'This service has been disabled in this account for violation of Terms of Service.');
}

function errorInfo(reason: string, model: string, extra: Record<string, string> = {}): Record<string, unknown> {
  return {
    '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
    reason,
    domain: 'cloudcode-pa.googleapis.com',
    metadata: { uiMessage: 'true', model, ...extra },
  };
}

function quotaResponse(model: string, hint: QuotaHint, resetMs: number, now: number): Response {
  const retryInfo = { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${(resetMs / 1000).toFixed(9)}s` };
  const stamp = new Date(now + resetMs).toISOString().replace(/\.\d+Z$/, 'Z');
  const timed = `You have exhausted your capacity on this model. Your quota will reset after ${humanDuration(resetMs)}.`;
  const plain = 'You have exhausted your capacity on this model.';
  switch (hint) {
    case 'full':
      return googleError(429, 'RESOURCE_EXHAUSTED', timed, [
        errorInfo('QUOTA_EXHAUSTED', model, { quotaResetDelay: goDuration(resetMs), quotaResetTimeStamp: stamp }),
        retryInfo,
      ]);
    case 'retry_info':
      return googleError(429, 'RESOURCE_EXHAUSTED', plain, [errorInfo('QUOTA_EXHAUSTED', model), retryInfo]);
    case 'quota_reset_delay':
      return googleError(429, 'RESOURCE_EXHAUSTED', plain, [errorInfo('QUOTA_EXHAUSTED', model, { quotaResetDelay: goDuration(resetMs) })]);
    case 'quota_reset_timestamp':
      return googleError(429, 'RESOURCE_EXHAUSTED', plain, [errorInfo('QUOTA_EXHAUSTED', model, { quotaResetTimeStamp: stamp })]);
    case 'message':
      return googleError(429, 'RESOURCE_EXHAUSTED', timed);
    case 'none':
      return googleError(429, 'RESOURCE_EXHAUSTED', 'Resource has been exhausted (e.g. check quota).');
  }
}

/** The catalog the fake serves by default (shape of fetchAvailableModels, §11.1). */
export function defaultFakeModels(): Record<string, Record<string, unknown>> {
  const gemini = (displayName: string, budget: number) => ({
    displayName,
    supportsImages: true,
    supportsThinking: true,
    thinkingBudget: budget,
    minThinkingBudget: 32,
    recommended: true,
    maxTokens: 1048576,
    maxOutputTokens: 65536,
    model: 'MODEL_PLACEHOLDER_M18',
    apiProvider: 'API_PROVIDER_GOOGLE_GEMINI',
    modelProvider: 'MODEL_PROVIDER_GOOGLE',
  });
  return {
    'claude-opus-4-6-thinking': {
      displayName: 'Claude Opus 4.6 (Thinking)',
      supportsImages: true,
      supportsThinking: true,
      thinkingBudget: 1024,
      minThinkingBudget: 1024,
      recommended: true,
      maxTokens: 200000,
      maxOutputTokens: 64000,
      model: 'MODEL_PLACEHOLDER_M26',
      apiProvider: 'API_PROVIDER_ANTHROPIC_VERTEX',
      modelProvider: 'MODEL_PROVIDER_ANTHROPIC',
    },
    'claude-sonnet-4-6': {
      displayName: 'Claude Sonnet 4.6',
      supportsImages: true,
      supportsThinking: true,
      thinkingBudget: 1024,
      minThinkingBudget: 1024,
      recommended: true,
      maxTokens: 200000,
      maxOutputTokens: 64000,
      model: 'MODEL_CLAUDE_4_5_SONNET',
      apiProvider: 'API_PROVIDER_ANTHROPIC_VERTEX',
      modelProvider: 'MODEL_PROVIDER_ANTHROPIC',
    },
    'gemini-3.8-flash-high': gemini('Gemini 3.8 Flash (High)', -1),
    'gemini-3.8-flash-low': gemini('Gemini 3.8 Flash (Low)', 1000),
    'gemini-pro-agent': gemini('Gemini 3.1 Pro (High)', -1),
    'gemini-3-flash': gemini('Gemini 3 Flash', -1),
    'gpt-oss-120b-medium': {
      displayName: 'GPT-OSS 120B (Medium)',
      supportsThinking: true,
      thinkingBudget: 8192,
      recommended: true,
      maxTokens: 114000,
      maxOutputTokens: 32768,
      model: 'MODEL_OPENAI_GPT_OSS_120B_MEDIUM',
      apiProvider: 'API_PROVIDER_OPENAI_VERTEX',
      modelProvider: 'MODEL_PROVIDER_OPENAI',
    },
    // The search model (webSearchModelIds below); Google Search grounding answers through it.
    'gemini-3.1-flash-lite': { ...gemini('Gemini 3.1 Flash Lite', 0), supportsThinking: false, recommended: false },
    // The image model (imageGenerationModelIds below); it answers requestType "image_gen" only.
    'gemini-3.1-flash-image': { ...gemini('Gemini 3.1 Flash Image', 0), supportsThinking: false, recommended: false, maxOutputTokens: 32768 },
    chat_20706: { displayName: 'internal', model: 'MODEL_CHAT_20706' },
    tab_flash_lite_preview: { displayName: 'internal tab', model: 'MODEL_TAB' },
    'gemini-3.1-pro-high': gemini('Gemini 3.1 Pro (High)', -1),
  };
}

type Part = Record<string, unknown>;
type Content = { role?: string; parts?: Part[] };

interface Reply {
  thinking: string | null;
  text: string | null;
  call: { name: string; args: Record<string, unknown> } | null;
  /** Calls made beside `call` in the same turn (parallel tool use), each unsigned. */
  more?: Array<{ name: string; args: Record<string, unknown> }>;
}

/** What a client sends for a Gemini call it has no signature for; Gemini accepts it. */
const SKIP_SIGNATURE = 'skip_thought_signature_validator';

const COMMAND_AFTER_COLON = /(?:command|exactly):\s*`?([^`\n]+?)`?\s*(?:\n|$)/i;
/** "Run in parallel: a ;; b": one call per command, in one turn. */
const RUN_IN_PARALLEL = /run in parallel:\s*([^\n]+)/i;
const RUN_EXACTLY = /exactly:\s*`?([^`\n]+?)`?\s*(?:\n|$)/i;
const ASKS_TO_RUN = /\b(run|execute)\b/i;
const SEARCH_THE_WEB = /search the web for:?\s*([^\n]+)/i;
const READ_THE_FILE = /^read the file:\s*(\S+)/im;
const DESCRIBE_PICTURE = /describe the (?:picture|image)/i;
const USE_A_SUBAGENT = /^use a sub-?agent to:\s*([^\n]+)/im;
const IMAGE_MODEL = /-image$/;
/** "Without a word, run …": the call opens the answer, no text before it. */
const NO_PREAMBLE = /\bwithout a word\b/i;

function outputOf(resp: unknown): string {
  if (resp && typeof resp === 'object') {
    const r = resp as Record<string, unknown>;
    for (const k of ['output', 'result', 'content']) {
      const v = r[k];
      if (typeof v === 'string') return v;
      if (v !== undefined) return JSON.stringify(v);
    }
    return JSON.stringify(r);
  }
  return String(resp ?? '');
}

/** The scripted conversation: a tool call when asked to run something, the tool's output after it, text otherwise. */
function script(request: Record<string, unknown>, replyText: string): Reply {
  const contents = (Array.isArray(request.contents) ? request.contents : []) as Content[];
  const last = contents[contents.length - 1];
  const parts = last?.parts ?? [];
  const cfg = (request.generationConfig ?? {}) as Record<string, unknown>;
  const tc = (cfg.thinkingConfig ?? {}) as Record<string, unknown>;
  const thinks = tc.includeThoughts === true || tc.include_thoughts === true;
  const thinking = thinks ? 'Let me think about this request step by step.' : null;
  const responses = parts.filter((p) => p.functionResponse).map((p) => outputOf((p.functionResponse as Record<string, unknown>).response));
  // Pictures in the last turn (a Read of an image beside its response, or one the user attached):
  // what arrived, so a test sees that the model got the bytes and not a note about them.
  const seen = parts
    .map((p) => p.inlineData as { mimeType?: string; data?: string } | undefined)
    .filter((d) => d && typeof d.data === 'string')
    .map((d) => ` SAW_IMAGE ${d!.mimeType} ${Buffer.from(d!.data!, 'base64').length} bytes`)
    .join('');
  if (responses.length) return { thinking, text: `FINAL_ANSWER: tool said ${responses.join(' ').trim()}${seen}`, call: null };
  const userText = parts.map((p) => (typeof p.text === 'string' && !p.thought ? p.text : '')).join('\n');
  const decls = ((Array.isArray(request.tools) ? request.tools : []) as Array<{ functionDeclarations?: Array<{ name?: string }> }>).flatMap(
    (t) => t.functionDeclarations ?? [],
  );
  const search = decls.find((d) => d.name === 'WebSearch');
  const wants = SEARCH_THE_WEB.exec(userText);
  if (search && wants) return { thinking, text: 'I will search the web.', call: { name: 'WebSearch', args: { query: wants[1]!.trim() } } };
  if (DESCRIBE_PICTURE.test(userText)) return { thinking, text: `PICTURE:${seen || ' none'}`, call: null };
  const agent = decls.find((d) => d.name === 'Task' || d.name === 'Agent');
  const delegated = USE_A_SUBAGENT.exec(userText);
  if (agent?.name && delegated) {
    const task = delegated[1]!.trim();
    return { thinking, text: 'I will delegate this.', call: { name: agent.name, args: { description: 'Delegated task', prompt: task, subagent_type: 'general-purpose' } } };
  }
  const read = decls.find((d) => d.name === 'Read');
  const file = READ_THE_FILE.exec(userText);
  if (read && file) return { thinking, text: 'I will read the file.', call: { name: 'Read', args: { file_path: file[1]! } } };
  const bash = decls.find((d) => d.name === 'Bash') ?? decls.find((d) => /bash|shell|command/i.test(d.name ?? ''));
  const parallel = RUN_IN_PARALLEL.exec(userText);
  if (bash?.name && parallel) {
    const [first, ...rest] = parallel[1]!.split(';;').map((c) => ({ name: bash.name!, args: { command: c.trim() } }));
    return { thinking, text: 'I will run them together.', call: first!, more: rest };
  }
  if (bash?.name && (COMMAND_AFTER_COLON.test(userText) || ASKS_TO_RUN.test(userText))) {
    // "exactly:" first: a sub-agent's prompt comes with reminders that say "command:" elsewhere.
    const command = (RUN_EXACTLY.exec(userText) ?? COMMAND_AFTER_COLON.exec(userText))?.[1]?.trim() || 'echo hello-from-fake-tool';
    const text = NO_PREAMBLE.test(userText) ? null : 'I will run a command.';
    return { thinking, text, call: { name: bash.name, args: { command, description: 'Print a marker string' } } };
  }
  return { thinking, text: replyText, call: null };
}

type Family = 'claude' | 'gemini' | 'gpt';
function familyOfModel(model: string): Family {
  return model.startsWith('claude') ? 'claude' : model.startsWith('gpt') ? 'gpt' : 'gemini';
}

function split(text: string, n: number): string[] {
  if (n <= 1 || text.length <= 1) return [text];
  const size = Math.ceil(text.length / n);
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

interface StreamPlan {
  /** Each entry is one `response` object. */
  chunks: Record<string, unknown>[];
  /** Signatures issued in this answer. */
  signatures: string[];
}

/** The answer as the real backend streams it, per family (see the header comment). */
function plan(model: string, reply: Reply, promptTokens: number, textChunks: number): StreamPlan {
  const family = familyOfModel(model);
  const responseId = family === 'claude' ? `req_vrtx_${hex(24)}` : family === 'gpt' ? crypto.randomUUID() : b64(15).replace(/[+/=]/g, 'x');
  const modelVersion = family === 'gemini' ? model.replace(/-(high|medium|low)$/, '') : model.replace(/-thinking$/, '');
  const signatures: string[] = [];
  const usage = (candidates?: number, extra: Record<string, number> = {}) => {
    const u: Record<string, number> = { promptTokenCount: promptTokens };
    if (candidates !== undefined) u.candidatesTokenCount = candidates;
    u.totalTokenCount = promptTokens + (candidates ?? 0);
    return { ...u, ...extra };
  };
  const chunk = (parts: Part[] | null, opts: { finish?: string; usage?: Record<string, number> | null } = {}) => {
    const content: Record<string, unknown> = { role: 'model' };
    if (parts) content.parts = parts;
    const cand: Record<string, unknown> = { content };
    if (opts.finish) cand.finishReason = opts.finish;
    const r: Record<string, unknown> = { candidates: [cand] };
    if (opts.usage !== null) r.usageMetadata = opts.usage ?? usage(family === 'claude' ? 1 : undefined);
    r.modelVersion = modelVersion;
    r.responseId = responseId;
    if (family === 'gpt') r.createTime = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    return r;
  };
  const out: Record<string, unknown>[] = [];
  const outputTokens = 12 + (reply.text?.length ?? 0) / 4;
  const thoughtTokens = reply.thinking ? 40 : 0;
  const cached = promptTokens > 2000 ? Math.floor(promptTokens / 2) : 0;

  if (family === 'claude') {
    out.push(chunk([{ text: '' }]));
    if (reply.thinking) {
      for (const t of split(reply.thinking, 3)) out.push(chunk([{ thought: true, text: t }]));
      const sig = claudeSignature();
      signatures.push(sig);
      out.push(chunk([{ thought: true, thoughtSignature: sig, text: '' }]));
    }
    if (reply.text) for (const t of split(reply.text, textChunks)) out.push(chunk([{ text: t }]));
    if (reply.call) out.push(chunk([{ functionCall: { name: reply.call.name, args: reply.call.args, id: `toolu_vrtx_${hex(24)}` } }]));
    for (const c of reply.more ?? []) out.push(chunk([{ functionCall: { name: c.name, args: c.args, id: `toolu_vrtx_${hex(24)}` } }]));
    out.push(chunk([{ text: '' }], { finish: 'STOP', usage: usage(Math.round(outputTokens + thoughtTokens)) }));
  } else if (family === 'gemini') {
    if (reply.thinking) for (const t of split(reply.thinking, 2)) out.push(chunk([{ thought: true, text: t }], { usage: usage() }));
    if (reply.text) {
      const pieces = split(reply.text, textChunks);
      pieces.forEach((t, i) => {
        const p: Part = { text: t };
        // Gemini 3 rides the signature on the first visible part after thinking (when no call follows).
        if (i === 0 && reply.thinking && !reply.call) {
          const sig = geminiSignature();
          signatures.push(sig);
          p.thoughtSignature = sig;
        }
        out.push(chunk([p], { usage: usage() }));
      });
    }
    if (reply.call) {
      const sig = geminiSignature();
      signatures.push(sig);
      out.push(chunk([{ thoughtSignature: sig, functionCall: { name: reply.call.name, args: reply.call.args, id: `call_${hex(7)}` } }], { usage: usage() }));
      // Gemini signs only the first of parallel calls.
      for (const c of reply.more ?? []) out.push(chunk([{ functionCall: { name: c.name, args: c.args, id: `call_${hex(7)}` } }], { usage: usage() }));
    }
    out.push(
      chunk([{ text: '' }], {
        finish: 'STOP',
        usage: usage(Math.round(outputTokens), { ...(cached ? { cachedContentTokenCount: cached } : {}), ...(thoughtTokens ? { thoughtsTokenCount: thoughtTokens } : {}) }),
      }),
    );
  } else {
    out.push(chunk(null, { usage: null }));
    // GPT-OSS reasons in unsigned thought parts whether or not it was asked to (stream_turn12_gpt_initial).
    const thought = reply.thinking ?? 'The user wants an answer.';
    for (const t of split(thought, 3)) out.push(chunk([{ thought: true, text: t }], { usage: null }));
    if (reply.text) for (const t of split(reply.text, textChunks)) out.push(chunk([{ text: t }], { usage: null }));
    if (reply.call) out.push(chunk([{ functionCall: { name: reply.call.name, args: reply.call.args, id: `call_${hex(8)}` } }], { usage: null }));
    for (const c of reply.more ?? []) out.push(chunk([{ functionCall: { name: c.name, args: c.args, id: `call_${hex(8)}` } }], { usage: null }));
    out.push(chunk(null, { finish: 'STOP', usage: null }));
    out.push({ usageMetadata: usage(Math.round(outputTokens)), modelVersion, responseId });
  }
  return { chunks: out, signatures };
}

/** Unary answer: the streamed parts merged the way generateContent returns them. */
function unary(p: StreamPlan): Record<string, unknown> {
  const parts: Part[] = [];
  let finish = 'STOP';
  let usageMetadata: unknown;
  let last: Record<string, unknown> = {};
  for (const c of p.chunks) {
    last = c;
    if (c.usageMetadata) usageMetadata = c.usageMetadata;
    const cand = (c.candidates as Array<Record<string, unknown>> | undefined)?.[0];
    if (!cand) continue;
    if (typeof cand.finishReason === 'string') finish = cand.finishReason;
    for (const part of ((cand.content as Content | undefined)?.parts ?? []) as Part[]) {
      const prev = parts[parts.length - 1];
      if (typeof part.text === 'string' && part.text === '' && !part.thoughtSignature) continue;
      if (prev && typeof part.text === 'string' && typeof prev.text === 'string' && !!prev.thought === !!part.thought && !prev.functionCall) {
        prev.text = (prev.text as string) + part.text;
        if (part.thoughtSignature) prev.thoughtSignature = part.thoughtSignature;
      } else parts.push({ ...part });
    }
  }
  return {
    candidates: [{ content: { role: 'model', parts }, finishReason: finish }],
    usageMetadata,
    modelVersion: last.modelVersion,
    responseId: last.responseId,
  };
}

interface Rule {
  mode: FakeGoogleMode;
  token: string | null;
  email: string | null;
  model: string | null;
  endpoint: 'daily' | 'prod' | null;
  /** A Cloud Code call other than generation, or null for generation. */
  rpc: string | null;
  left: number;
}

const TOKEN_KINDS = new Set<FakeModeKind>([
  'token_invalid_grant',
  'token_invalid_client',
  'token_http500',
  'token_html502',
  'token_down',
  'token_slow',
  'token_rotate',
  'token_no_refresh',
  'token_echo',
]);

/** An error quoting the Authorization header it was sent (the `echo_token` mode). */
function echoAuthorization(req: Request, status = 401): Response {
  const gStatus = status === 401 ? 'UNAUTHENTICATED' : status === 403 ? 'PERMISSION_DENIED' : status === 429 ? 'RESOURCE_EXHAUSTED' : status >= 500 ? 'INTERNAL' : 'INVALID_ARGUMENT';
  return googleError(status, gStatus, `Request had invalid credentials: authorization: ${req.headers.get('authorization') ?? '(none)'}`);
}

export function startFakeGoogle(opts: FakeGoogleOptions = {}): FakeGoogle {
  const record = opts.record ?? true;
  const replyText = opts.replyText ?? 'Hello from the fake Antigravity.';
  const expiresIn = opts.expiresIn ?? 3599;
  let loginEmail = opts.loginEmail ?? 'user@example.com';
  let loginScopes: string[] | null = null;
  let models = defaultFakeModels();
  let minClientVersion: string | null = null;
  let latestClientVersion = '2.9.1';
  const globalQuota: Record<string, FakeModelQuota | null> = {};
  const quotaByEmail = new Map<string, Record<string, FakeModelQuota | null>>();
  let globalWindows: FakeQuotaWindows | null = {};
  const windowsByEmail = new Map<string, FakeQuotaWindows | null>();
  const accounts = new Map<string, FakeAccount>();
  const accessTokens = new Map<string, string>(); // token -> email
  const refreshTokens = new Map<string, string>(); // refresh token -> email
  const codes = new Map<string, { email: string; challenge: string; redirectUri: string; scope: string }>();
  const onboardSeen = new Map<string, number>();
  /** Accounts with a userProject that onboarding has put on their tier. */
  const ownOnboarded = new Set<string>();
  const issuedSignatures = new Map<string, Family>();
  const requests: RecordedGoogleRequest[] = [];
  const stats = { refreshes: 0, codeExchanges: 0, generations: 0 };
  let rules: Rule[] = [];

  function account(email: string): FakeAccount {
    let a = accounts.get(email);
    if (!a) {
      a = { email, projectId: 'aicode-consumers', paidTierId: 'g1-pro-tier', onboardPolls: 1, onboardProject: `cogent-snow-${hex(5)}`, aiCredits: 0 };
      accounts.set(email, a);
    }
    return a;
  }

  function refreshTokenFor(email: string): string {
    for (const [t, e] of refreshTokens) if (e === email) return t;
    const t = `1//fake-refresh-${hex(32)}`;
    refreshTokens.set(t, email);
    return t;
  }

  function issueAccess(email: string): string {
    const t = `ya29.fake-${hex(40)}`;
    accessTokens.set(t, email);
    return t;
  }

  function pickMode(
    token: boolean,
    rec: { token: string | null; email: string | null; model?: string | null; endpoint: 'daily' | 'prod' | null },
    rpc: string | null = null,
  ): FakeGoogleMode {
    for (let i = rules.length - 1; i >= 0; i--) {
      const r = rules[i]!;
      if (r.left === 0 || TOKEN_KINDS.has(r.mode.kind) !== token) continue;
      if (!token && r.rpc !== rpc) continue;
      if (r.token !== null && r.token !== rec.token) continue;
      if (r.email !== null && r.email !== rec.email) continue;
      if (r.model !== null && r.model !== (rec.model ?? null)) continue;
      if (r.endpoint !== null && r.endpoint !== rec.endpoint) continue;
      if (r.left > 0) r.left--;
      if (r.left === 0) rules = rules.filter((x) => x !== r);
      return r.mode;
    }
    return { kind: 'ok' };
  }

  function untilAbort(ms: number, signal: AbortSignal): Promise<void> {
    return Promise.race([Bun.sleep(ms), new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }))]);
  }

  async function handleToken(req: Request, raw: string, rec: RecordedGoogleRequest): Promise<Response> {
    const form = new URLSearchParams(raw);
    const grant = form.get('grant_type');
    const mode = pickMode(true, rec);
    rec.mode = mode.kind;
    if (grant === 'refresh_token') stats.refreshes++;
    if (mode.kind === 'token_down') return new Response(new ReadableStream({ start: (c) => c.error() }), { status: 200 });
    if (mode.kind === 'token_http500') return json(500, { error: 'internal_failure', error_description: 'Backend Error' });
    if (mode.kind === 'token_html502') {
      return html502();
    }
    if (mode.kind === 'token_slow') await untilAbort(mode.ms, req.signal);
    if (mode.kind === 'token_echo') return json(mode.status ?? 400, { error: mode.error ?? 'invalid_grant', error_description: `Bad request: ${raw}` });
    if (form.get('client_id') === null || form.get('client_secret') === null || mode.kind === 'token_invalid_client') {
      return json(401, { error: 'invalid_client', error_description: 'Unauthorized' });
    }
    if (grant === 'refresh_token') {
      const email = refreshTokens.get(form.get('refresh_token') ?? '');
      if (!email || mode.kind === 'token_invalid_grant') return json(400, { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' });
      rec.email = email;
      const rotated: Record<string, string> = {};
      if (mode.kind === 'token_rotate') {
        refreshTokens.delete(form.get('refresh_token') ?? '');
        rotated.refresh_token = refreshTokenFor(email);
      }
      return json(200, {
        access_token: issueAccess(email),
        expires_in: expiresIn,
        scope: 'https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/userinfo.email openid',
        token_type: 'Bearer',
        id_token: `fake-id-token-${hex(16)}`,
        ...rotated,
      });
    }
    if (grant === 'authorization_code') {
      stats.codeExchanges++;
      const c = codes.get(form.get('code') ?? '');
      if (!c) return json(400, { error: 'invalid_grant', error_description: 'Malformed auth code.' });
      codes.delete(form.get('code') ?? '');
      if (c.redirectUri !== form.get('redirect_uri')) return json(400, { error: 'redirect_uri_mismatch', error_description: 'Bad Request' });
      const verifier = form.get('code_verifier') ?? '';
      const challenge = Buffer.from(new Bun.CryptoHasher('sha256').update(verifier).digest()).toString('base64url');
      if (challenge !== c.challenge) return json(400, { error: 'invalid_grant', error_description: 'Invalid code verifier.' });
      rec.email = c.email;
      return json(200, {
        access_token: issueAccess(c.email),
        expires_in: expiresIn,
        ...(mode.kind === 'token_no_refresh' ? {} : { refresh_token: refreshTokenFor(c.email) }),
        scope: c.scope || 'https://www.googleapis.com/auth/cloud-platform',
        token_type: 'Bearer',
      });
    }
    return json(400, { error: 'unsupported_grant_type', error_description: `Invalid grant_type: ${grant}` });
  }

  function handleAuth(u: URL): Response {
    const redirect = u.searchParams.get('redirect_uri');
    if (!redirect) return new Response('Error 400: invalid_request (missing redirect_uri)', { status: 400 });
    if (u.searchParams.get('code_challenge_method') !== 'S256' || !u.searchParams.get('code_challenge')) {
      return new Response('Error 400: invalid_request (PKCE required by this fake)', { status: 400 });
    }
    const code = `4/0A${hex(40)}`;
    const asked = (u.searchParams.get('scope') ?? '').split(' ').filter(Boolean);
    const granted = loginScopes ? asked.filter((x) => loginScopes!.includes(x)) : asked;
    codes.set(code, { email: loginEmail, challenge: u.searchParams.get('code_challenge')!, redirectUri: redirect, scope: granted.join(' ') });
    const to = new URL(redirect);
    to.searchParams.set('code', code);
    const state = u.searchParams.get('state');
    if (state !== null) to.searchParams.set('state', state);
    to.searchParams.set('scope', u.searchParams.get('scope') ?? '');
    return new Response(null, { status: 302, headers: { location: to.toString() } });
  }

  function sseResponse(chunks: Record<string, unknown>[], mode: FakeGoogleMode, rec: RecordedGoogleRequest, slowDelay: number): Response {
    const traceId = hex(16);
    const lines = chunks.map((r) => (r.candidates || r.usageMetadata ? `data: ${JSON.stringify({ response: r, traceId, metadata: {} })}\r\n\r\n` : ''));
    const fault: FrameStreamOptions['fault'] =
      mode.kind === 'reset_mid_stream'
        ? { at: mode.afterChunks ?? 2, what: { kind: 'reset' } }
        : mode.kind === 'stall_mid_stream'
          ? { at: mode.afterChunks ?? 2, what: { kind: 'stall', ms: mode.ms } }
          : mode.kind === 'malformed_data'
            ? { at: mode.afterChunks ?? 1, what: { kind: 'insert', text: 'data: {"response": {"candidates": [{"content": {"role": "model","parts": [{"text": "tru\r\n\r\n' } }
            : undefined;
    rec.ended = false;
    const body = frameStream(lines, { fault, delayMs: slowDelay, onCancel: () => (rec.aborted = true), onEnd: () => (rec.ended = true) });
    return new Response(body, { headers: SSE_HEADERS });
  }

  function signaturesIn(contents: Content[]): string[] {
    const out: string[] = [];
    for (const c of contents) for (const p of c.parts ?? []) if (typeof p.thoughtSignature === 'string') out.push(p.thoughtSignature);
    return out;
  }

  /** What Google would refuse in this history (see strictSignatures), or null. */
  function strictRefusal(model: string, request: Record<string, unknown>): Response | null {
    const family = familyOfModel(model);
    const contents = (Array.isArray(request.contents) ? request.contents : []) as Content[];
    for (const s of signaturesIn(contents)) {
      if (s === SKIP_SIGNATURE && family === 'gemini') continue;
      if (issuedSignatures.get(s) !== family) return family === 'claude' ? signatureError() : geminiSignatureInvalid();
    }
    if (family === 'gemini') {
      // The current turn starts at the last user content that is not only function responses.
      let start = 0;
      contents.forEach((c, i) => {
        if (c.role === 'user' && (c.parts ?? []).some((p) => !p.functionResponse)) start = i;
      });
      for (let i = start; i < contents.length; i++) {
        const c = contents[i]!;
        if (c.role !== 'model') continue;
        const call = (c.parts ?? []).find((p) => p.functionCall);
        if (call && typeof call.thoughtSignature !== 'string') {
          const name = String((call.functionCall as { name?: unknown }).name);
          return googleError(400, 'INVALID_ARGUMENT', `Unable to submit request because function call \`${name}\` in the ${i + 1}. content block is missing a \`thought_signature\`. Learn more: https://docs.cloud.google.com/vertex-ai/generative-ai/docs/thought-signatures`);
        }
      }
    }
    const cfg = (request.generationConfig ?? {}) as { thinkingConfig?: { includeThoughts?: boolean } };
    const last = contents[contents.length - 1];
    if (family === 'claude' && cfg.thinkingConfig?.includeThoughts && last?.role === 'user' && last.parts?.some((p) => p.functionResponse)) {
      const i = contents.findLastIndex((c) => c.role === 'model');
      const first = contents[i]?.parts?.[0];
      if (i >= 0 && first?.thought !== true) return claudeInvalid(`messages.${i}.content.0.type: Expected \`thinking\` or \`redacted_thinking\`, but found \`${first?.functionCall ? 'tool_use' : 'text'}\`. When \`thinking\` is enabled, a final \`assistant\` message must start with a thinking block (preceeding the lastmost set of \`tool_use\` and \`tool_result\` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable \`thinking\`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking`);
    }
    return null;
  }

  async function handleGenerate(req: Request, rec: RecordedGoogleRequest, body: Record<string, unknown>, stream: boolean, mode: FakeGoogleMode): Promise<Response> {
    stats.generations++;
    const model = typeof body.model === 'string' ? body.model : '';
    rec.mode = mode.kind;
    const now = Date.now();
    switch (mode.kind) {
      case 'unauthorized':
        return unauthenticated();
      case 'echo_token':
        return echoAuthorization(req, mode.status);
      case 'quota_exhausted': {
        const spend = Array.isArray(body.enabledCreditTypes) && body.enabledCreditTypes.includes('GOOGLE_ONE_AI');
        if (!spend) return quotaResponse(model, mode.hint ?? 'full', mode.resetMs ?? 2 * HOUR, now);
        const a = rec.email ? account(rec.email) : null;
        if (!a || a.aiCredits <= 0) {
          return googleError(429, 'RESOURCE_EXHAUSTED', 'You do not have enough Google One AI credits.', [errorInfo('INSUFFICIENT_G1_CREDITS_BALANCE', model)]);
        }
        a.aiCredits--;
        rec.mode = 'ok'; // served, on credits
        break;
      }
      case 'rate_limited': {
        const ms = mode.resetMs ?? 479.417207;
        return googleError(429, 'RESOURCE_EXHAUSTED', `You have exhausted your capacity on this model. Your quota will reset after ${Math.round(ms / 1000)}s.`, [
          errorInfo('RATE_LIMIT_EXCEEDED', model, { quotaResetDelay: ms < 1000 ? `${ms}ms` : goDuration(ms) }),
          { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${(ms / 1000).toFixed(9)}s` },
        ]);
      }
      case 'capacity':
        return googleError(503, 'UNAVAILABLE', `No capacity available for model ${model} on the server`, [
          { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'MODEL_CAPACITY_EXHAUSTED', domain: 'cloudcode-pa.googleapis.com', metadata: { model } },
        ]);
      case 'http500':
        return googleError(500, 'INTERNAL', 'Internal error encountered.');
      case 'html502':
        return html502();
      case 'validation_required':
        return validationRequired();
      case 'tos_banned':
        return tosBanned();
      case 'project_denied':
        if (mode.project === undefined || body.project === mode.project) {
          if (mode.delayMs) await untilAbort(mode.delayMs, req.signal);
          return googleError(
            403,
            'PERMISSION_DENIED',
            `Permission 'cloudaicompanion.companions.generateChat' denied on resource '//cloudaicompanion.googleapis.com/projects/${String(body.project)}/locations/global'`,
          );
        }
        rec.mode = 'ok'; // another project: served
        break;
      case 'signature_error':
        return signatureError();
      case 'not_found':
        return googleError(404, 'NOT_FOUND', 'Requested entity was not found.');
      case 'prompt_too_long': {
        const tokens = Math.ceil(JSON.stringify(body.request ?? {}).length / 4);
        if (tokens > mode.maxTokens) {
          return googleError(400, 'INVALID_ARGUMENT', `The input token count (${tokens}) exceeds the maximum number of tokens allowed (${mode.maxTokens}).`);
        }
        rec.mode = 'ok'; // short enough: served
        break;
      }
      case 'reset_before_first_byte':
        return new Response(new ReadableStream({ start: (c) => c.error() }), { headers: SSE_HEADERS });
      case 'stall_before_first_byte':
        await untilAbort(mode.ms, req.signal);
        if (req.signal.aborted) {
          rec.aborted = true;
          return new Response(null, { status: 499 });
        }
        break;
      case 'empty_response':
        return new Response('', { headers: SSE_HEADERS });
      case 'retired_model':
        return cannedAnswer(model, stream, mode.notice ?? 'Gemini 3 Pro is no longer available. Please switch to Gemini 3.1 Pro in the latest version of Antigravity.');
      default:
        break;
    }
    if (!(model in models) || body.project === undefined) return googleError(404, 'NOT_FOUND', 'Requested entity was not found.');
    const own = rec.email ? accounts.get(rec.email)?.userProject : undefined;
    if (own && body.project !== own) {
      return googleError(
        403,
        'PERMISSION_DENIED',
        `Permission 'cloudaicompanion.companions.generateChat' denied on resource '//cloudaicompanion.googleapis.com/projects/${String(body.project)}/locations/global'`,
      );
    }
    const request = (body.request ?? {}) as Record<string, unknown>;
    const malformed = shapeRefusal(model, request);
    if (malformed) return malformed;
    const badId = familyOfModel(model) === 'claude' ? badToolId(request) : null;
    if (badId) return claudeInvalid(`${badId}: String should match pattern '^[a-zA-Z0-9_-]+$'`);
    if (opts.strictSignatures) {
      const refused = strictRefusal(model, request);
      if (refused) {
        rec.mode = 'signature_error'; // the record says this one was refused
        return refused;
      }
    }
    if (minClientVersion && versionBelow(rec.headers['user-agent'] ?? '', minClientVersion)) return versionGateAnswer(model, stream);
    if (body.requestType === 'web_search') return searchAnswer(model, request, rec, stream);
    if (body.requestType === 'image_gen' || IMAGE_MODEL.test(model)) return imageAnswer(model, body, request, rec);
    const reply = script(request, replyText);
    const rawLen = JSON.stringify(request).length;
    const p = plan(model, reply, Math.max(1, Math.round(rawLen / 4)), mode.kind === 'slow_chunks' ? mode.chunks : 2);
    for (const s of p.signatures) issuedSignatures.set(s, familyOfModel(model));
    rec.issuedSignatures = p.signatures;
    if (mode.kind === 'empty_candidates') {
      p.chunks = [
        { candidates: [{ content: { role: 'model' } }], modelVersion: model },
        { candidates: [{ content: { role: 'model' }, finishReason: 'STOP' }], usageMetadata: { promptTokenCount: 10, totalTokenCount: 10 }, modelVersion: model },
      ];
    }
    if (mode.kind === 'blocked_answer') {
      const finishReason = mode.finishReason ?? 'SAFETY';
      const safetyRatings = [{ category: 'HARM_CATEGORY_DANGEROUS_CONTENT', probability: 'HIGH', blocked: true }];
      p.chunks = [{ candidates: [{ content: { role: 'model' }, finishReason, safetyRatings }], usageMetadata: { promptTokenCount: 10, totalTokenCount: 10 }, modelVersion: model }];
    }
    if (mode.kind === 'blocked_prompt') {
      const promptFeedback = { blockReason: mode.blockReason ?? 'SAFETY', safetyRatings: [{ category: 'HARM_CATEGORY_HARASSMENT', probability: 'HIGH' }] };
      p.chunks = [{ promptFeedback, usageMetadata: { promptTokenCount: 10, totalTokenCount: 10 }, modelVersion: model }];
    }
    if (mode.kind === 'thinking_exhausted') {
      p.chunks = [
        { candidates: [{ content: { role: 'model' }, finishReason: 'MAX_TOKENS' }], usageMetadata: { promptTokenCount: 10, thoughtsTokenCount: 64, totalTokenCount: 74 }, modelVersion: model },
      ];
    }
    if (mode.kind === 'no_finish') {
      p.chunks = p.chunks.filter((c) => !(c.candidates as Array<Record<string, unknown>> | undefined)?.[0]?.finishReason && c.candidates);
    }
    if (!stream) return json(200, { response: unary(p), traceId: hex(16), metadata: {} });
    return sseResponse(p.chunks, mode, rec, mode.kind === 'slow_chunks' ? mode.delayMs : 0);
  }

  /**
   * A Google Search grounded answer (requestType "web_search" with the googleSearch tool, antigravity.md
   * §13.2): text, then a last chunk with groundingMetadata in Vertex AI's shape (webSearchQueries,
   * groundingChunks of redirect links titled with the site's domain, groundingSupports). Only Gemini
   * models search; a Claude model is refused as Vertex refuses unsupported tools.
   */
  function searchAnswer(model: string, request: Record<string, unknown>, rec: RecordedGoogleRequest, stream: boolean): Response {
    const tools = (Array.isArray(request.tools) ? request.tools : []) as Array<Record<string, unknown>>;
    if (!tools.some((t) => t.googleSearch) || familyOfModel(model) !== 'gemini') {
      return googleError(400, 'INVALID_ARGUMENT', `Search grounding is not supported for model ${model}.`);
    }
    const contents = (Array.isArray(request.contents) ? request.contents : []) as Content[];
    const asked = (contents.at(-1)?.parts ?? []).map((p) => (typeof p.text === 'string' ? p.text : '')).join(' ');
    const query = asked.replace(/^\s*Perform a web search for the query:\s*/i, '').trim() || 'nothing';
    const sites = ['example.com', 'docs.example.org', 'blocked.example.net'];
    const text = `FAKE_SEARCH_RESULT for "${query}": ${sites.length} sites say so.`;
    const grounding = {
      webSearchQueries: [query],
      searchEntryPoint: { renderedContent: '<style>.container{}</style><div class="container"></div>' },
      // On this fake's own host (the provider follows redirects only there and on Google's); the last one is broken.
      groundingChunks: sites.map((site, i) => ({
        web: { uri: `${server.url.origin}/grounding-api-redirect/FAKE${i}${site}-${hex(4)}${i === sites.length - 1 ? '-broken' : ''}`, title: site },
      })),
      groundingSupports: [{ segment: { startIndex: 0, endIndex: text.length, text }, groundingChunkIndices: [0, 1, 2], confidenceScores: [0.9, 0.8, 0.7] }],
    };
    const usage = { promptTokenCount: 20, candidatesTokenCount: 30, totalTokenCount: 50 };
    const half = Math.ceil(text.length / 2);
    const chunks = [
      { candidates: [{ content: { role: 'model', parts: [{ text: text.slice(0, half) }] } }], modelVersion: model, responseId: hex(12) },
      { candidates: [{ content: { role: 'model', parts: [{ text: text.slice(half) }] }, finishReason: 'STOP', groundingMetadata: grounding }], usageMetadata: usage, modelVersion: model, responseId: hex(12) },
    ];
    if (!stream) return json(200, { response: { ...chunks[1], candidates: [{ ...chunks[1]!.candidates[0], content: { role: 'model', parts: [{ text }] } }] }, traceId: hex(16), metadata: {} });
    return sseResponse(chunks, { kind: 'ok' }, rec, 0);
  }

  /**
   * An image model's answer (antigravity.md §12), in the Gemini image models' shape: a thought
   * with a draft image (thought: true), a line of text, then the finished PNG as inlineData, sized
   * by imageConfig (long side 64 px; 128 for 2K, 256 for 4K) so a test can see the settings
   * arrived; a "detailed" prompt gets a 1024 px picture of noise (~4 MB of base64 on one SSE line).
   * The text after the thoughts and the picture are signed, and a picture in the history must come
   * back with its signature (400 otherwise, Gemini 3.1 Flash Image's message).
   * A prompt with "forbidden" in it is refused the way Gemini refuses: text only,
   * finishReason IMAGE_SAFETY. Assumption of this fake, not a capture: an image model wants
   * requestType "image_gen" and responseModalities with IMAGE, and other models refuse image output.
   */
  function imageAnswer(model: string, body: Record<string, unknown>, request: Record<string, unknown>, rec: RecordedGoogleRequest): Response {
    const gen = (request.generationConfig ?? {}) as { responseModalities?: unknown; imageConfig?: { aspectRatio?: string; imageSize?: string } };
    const modalities = Array.isArray(gen.responseModalities) ? gen.responseModalities : [];
    if (!IMAGE_MODEL.test(model)) return googleError(400, 'INVALID_ARGUMENT', 'Multi-modal output is not supported.');
    if (body.requestType !== 'image_gen' || !modalities.includes('IMAGE') || request.tools || request.sessionId) {
      return googleError(400, 'INVALID_ARGUMENT', `${model} takes requestType image_gen with responseModalities IMAGE, no tools and no sessionId`);
    }
    const contents = (Array.isArray(request.contents) ? request.contents : []) as Content[];
    // As Gemini 3.1 Flash Image does: a picture it drew comes back in the history with the signature it came with.
    for (const [i, c] of contents.entries()) {
      if (c.role !== 'model') continue;
      for (const p of c.parts ?? []) {
        if (!p.inlineData) continue;
        if (typeof p.thoughtSignature !== 'string' || issuedSignatures.get(p.thoughtSignature) !== 'gemini') {
          return googleError(400, 'INVALID_ARGUMENT', `Unable to submit request because it has an invalid thought signature for content at index ${i}.`);
        }
      }
    }
    const last = contents.at(-1)?.parts ?? [];
    const prompt = last.map((p) => (typeof p.text === 'string' ? p.text : '')).join(' ');
    const edits = last.filter((p) => p.inlineData).length;
    const usage = { promptTokenCount: 12 + edits * 258, candidatesTokenCount: 1290, totalTokenCount: 1302 + edits * 258 };
    const chunks: Record<string, unknown>[] = [];
    if (/forbidden/i.test(prompt)) {
      chunks.push({ candidates: [{ content: { role: 'model', parts: [{ text: "I can't draw that." }] }, finishReason: 'IMAGE_SAFETY' }], usageMetadata: usage, modelVersion: model });
    } else {
      const [w, h] = (gen.imageConfig?.aspectRatio ?? '1:1').split(':').map(Number) as [number, number];
      const detailed = /detailed/i.test(prompt);
      const long = detailed ? 1024 : gen.imageConfig?.imageSize === '4K' ? 256 : gen.imageConfig?.imageSize === '2K' ? 128 : 64;
      const scale = long / Math.max(w, h);
      const png = Buffer.from(solidPng(Math.round(w * scale), Math.round(h * scale), undefined, detailed)).toString('base64');
      const draft = Buffer.from(solidPng(8, 8, [0, 0, 0])).toString('base64');
      const said = edits ? `Here is your picture, edited from the ${edits} you sent.` : 'Here is your picture.';
      // The first part after the thoughts and every finished picture are signed.
      const [textSig, imageSig] = [geminiSignature(), geminiSignature()];
      issuedSignatures.set(textSig, 'gemini');
      issuedSignatures.set(imageSig, 'gemini');
      rec.issuedSignatures = [textSig, imageSig];
      chunks.push(
        { candidates: [{ content: { role: 'model', parts: [{ text: 'Composing the scene.', thought: true }, { inlineData: { mimeType: 'image/png', data: draft }, thought: true }] } }], modelVersion: model },
        { candidates: [{ content: { role: 'model', parts: [{ text: said, thoughtSignature: textSig }] } }], modelVersion: model },
        { candidates: [{ content: { role: 'model', parts: [{ inlineData: { mimeType: 'image/png', data: png }, thoughtSignature: imageSig }] }, finishReason: 'STOP' }], usageMetadata: usage, modelVersion: model },
      );
    }
    return sseResponse(chunks, { kind: 'ok' }, rec, 0);
  }

  /**
 * What the backend refuses in a request's shape, as antigravity.md describes it (the section is cited
 * at each rule), or null. The proto rules hold for every family; Claude behind Google adds
 * Anthropic's own (anthropic-claude-code-zai.md §2.2, §2.3), in Claude's words inside Google's 400.
 */
function shapeRefusal(model: string, request: Record<string, unknown>): Response | null {
  // Gemini 2.x takes no response schema beside function declarations (Gemini 3 does); reported by
  // Gemini API users, e.g. github.com/symfony/ai issue #1777 on gemini-2.5-flash.
  const cfg = isRecord(request.generationConfig) ? request.generationConfig : {};
  const declares = Array.isArray(request.tools) && request.tools.some((t) => isRecord(t) && Array.isArray(t.functionDeclarations));
  if (model.startsWith('gemini-2.') && declares && cfg.responseMimeType === 'application/json') {
    return googleError(400, 'INVALID_ARGUMENT', "Function calling with a response mime type: 'application/json' is unsupported");
  }
  const problem = shapeProblem(familyOfModel(model), request);
  if (!problem) return null;
  return problem.claude
    ? googleError(400, 'INVALID_ARGUMENT', JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message: problem.message }, request_id: `req_vrtx_${hex(24)}` }))
    : googleError(400, 'INVALID_ARGUMENT', problem.message);
}

type ShapeProblem = { message: string; claude?: boolean };

/** Part fields the proto knows; any other is "Unknown name" (§7 step 1, §7.13). */
const PART_FIELDS = new Set(['text', 'thought', 'thoughtSignature', 'inlineData', 'fileData', 'functionCall', 'functionResponse']);
/** The oneof `data` of a part: exactly one must be set (§7.1). */
const PART_DATA = ['text', 'inlineData', 'fileData', 'functionCall', 'functionResponse'];
/** Keywords a tool schema may keep (§7.13: "only the keywords listed as kept"). */
const SCHEMA_FIELDS = new Set(['type', 'description', 'properties', 'required', 'items', 'enum', 'title']);
const SCHEMA_TYPES = new Set(['STRING', 'NUMBER', 'INTEGER', 'BOOLEAN', 'ARRAY', 'OBJECT']);
/** Google's function name rule (§7.12); Claude behind it allows only Anthropic's characters. */
const GOOGLE_FUNCTION_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/;
const CLAUDE_TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
/** The media Claude takes (anthropic-claude-code-zai.md §2.3). */
const CLAUDE_MEDIA = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp', 'application/pdf']);
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const CLAUDE_MAX_OUTPUT = 64_000;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function unknownName(key: string, at: string): ShapeProblem {
  return { message: `Invalid JSON payload received. Unknown name "${key}" at '${at}': Cannot find field.` };
}

/** GenerateContentRequest fields (§5.1), generationConfig fields (§7.9, §7.10, §12) and thinkingConfig's, both spellings. */
const REQUEST_FIELDS = new Set(['contents', 'systemInstruction', 'tools', 'toolConfig', 'generationConfig', 'sessionId', 'labels', 'safetySettings']);
const GENERATION_FIELDS = new Set([
  'maxOutputTokens', 'temperature', 'topP', 'topK', 'stopSequences', 'thinkingConfig', 'candidateCount',
  'responseMimeType', 'responseSchema', 'responseModalities', 'imageConfig',
]);
const THINKING_FIELDS = new Set(['includeThoughts', 'thinkingBudget', 'include_thoughts', 'thinking_budget', 'thinkingLevel']);
/** §7.14: Gemini 3.x writes at most 65536 tokens. */
const GEMINI_MAX_OUTPUT = 65_536;

function shapeProblem(family: Family, request: Record<string, unknown>): ShapeProblem | null {
  const claude = family === 'claude';
  // Proto JSON: a field the message does not have is a 400 (§7.13's "Cannot find field").
  for (const k of Object.keys(request)) if (!REQUEST_FIELDS.has(k)) return unknownName(k, 'request');
  if (isRecord(request.generationConfig)) {
    for (const k of Object.keys(request.generationConfig)) if (!GENERATION_FIELDS.has(k)) return unknownName(k, 'request.generation_config');
    const t = request.generationConfig.thinkingConfig;
    if (isRecord(t)) for (const k of Object.keys(t)) if (!THINKING_FIELDS.has(k)) return unknownName(k, 'request.generation_config.thinking_config');
    const max = request.generationConfig.maxOutputTokens;
    if (family === 'gemini' && typeof max === 'number' && max > GEMINI_MAX_OUTPUT) return { message: `Unable to submit request because it has a maxOutputTokens value of ${max} but the supported range is from 1 (inclusive) to ${GEMINI_MAX_OUTPUT + 1} (exclusive).` };
  }
  // §5.3: an object with parts; a plain string is a 400.
  const sys = request.systemInstruction;
  if (sys !== undefined) {
    if (!isRecord(sys) || !Array.isArray(sys.parts)) return { message: "Invalid value at 'request.system_instruction' (type.googleapis.com/google.ai.generativelanguage.v1beta.Content)" };
    for (const [j, p] of (sys.parts as unknown[]).entries()) {
      const bad = partProblem(p, `request.system_instruction.parts[${j}]`, claude);
      if (bad) return bad;
    }
  }
  const contents = Array.isArray(request.contents) ? (request.contents as unknown[]) : [];
  if (contents.length === 0) return { message: '* GenerateContentRequest.contents: contents is not specified' };
  const declared = new Set<string>();
  const tools = request.tools;
  if (tools !== undefined) {
    if (!Array.isArray(tools)) return { message: "Invalid value at 'request.tools'" };
    for (const [i, t] of tools.entries()) {
      const at = `request.tools[${i}]`;
      if (!isRecord(t)) return { message: `Invalid value at '${at}'` };
      // §7.12: never `parameters` (or anything else) on the wrapper.
      for (const k of Object.keys(t)) if (k !== 'functionDeclarations' && k !== 'googleSearch') return unknownName(k, at);
      for (const [j, d] of ((t.functionDeclarations ?? []) as unknown[]).entries()) {
        const bad = declarationProblem(d, `${at}.function_declarations[${j}]`, claude, declared);
        if (bad) return bad;
      }
    }
  }
  const cfg = isRecord(request.toolConfig) ? request.toolConfig.functionCallingConfig : undefined;
  const gen = isRecord(request.generationConfig) ? request.generationConfig : {};
  const tc = isRecord(gen.thinkingConfig) ? gen.thinkingConfig : undefined;
  const thinks = tc?.includeThoughts === true && typeof tc.thinkingBudget === 'number' && tc.thinkingBudget !== 0;
  if (isRecord(cfg)) {
    if (!['AUTO', 'ANY', 'NONE', 'VALIDATED'].includes(String(cfg.mode))) return { message: `Invalid value at 'request.tool_config.function_calling_config.mode' (${String(cfg.mode)})` };
    const allowed = Array.isArray(cfg.allowedFunctionNames) ? (cfg.allowedFunctionNames as unknown[]) : [];
    for (const n of allowed) if (!declared.has(String(n))) return { message: `allowed_function_names contains ${String(n)}, which is not declared` };
    // §7.11 and anthropic §2.2: with thinking, Claude takes only auto/none tool choices.
    if (claude && thinks && cfg.mode === 'ANY') return { claude, message: 'Thinking may not be enabled when tool_choice forces tool use.' };
  }
  // generationConfig (§7.9, §7.10; anthropic §2.2).
  if (claude) {
    const max = typeof gen.maxOutputTokens === 'number' ? gen.maxOutputTokens : undefined;
    if (max !== undefined && max > CLAUDE_MAX_OUTPUT) return { claude, message: `max_tokens: ${max} > ${CLAUDE_MAX_OUTPUT}, which is the maximum allowed number of output tokens` };
    if (typeof gen.temperature === 'number' && (gen.temperature < 0 || gen.temperature > 1)) return { claude, message: 'temperature: Input should be less than or equal to 1' };
    if (thinks) {
      const budget = tc!.thinkingBudget as number;
      if (budget < 1024) return { claude, message: 'thinking.enabled.budget_tokens: Input should be greater than or equal to 1024' };
      if (max !== undefined && budget >= max) return { claude, message: '`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size' };
      if (gen.temperature !== undefined && gen.temperature !== 1) return { claude, message: '`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility' };
      if (gen.topK !== undefined) return { claude, message: '`top_k` cannot be set when thinking is enabled.' };
      if (typeof gen.topP === 'number' && gen.topP < 0.95) return { claude, message: '`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled.' };
    }
  }
  let prevCalls: Array<{ id?: unknown; name: unknown }> = [];
  for (const [i, c] of contents.entries()) {
    const at = `request.contents[${i}]`;
    if (!isRecord(c)) return { message: `Invalid value at '${at}'` };
    if (c.role !== 'user' && c.role !== 'model') return { message: `Please use a valid role: user, model. (${at})` };
    const parts = Array.isArray(c.parts) ? (c.parts as unknown[]) : [];
    // §7 step 5: a turn with no parts is refused (proxies pad it with ".").
    if (parts.length === 0) return { message: `* GenerateContentRequest.${at.slice(8)}.parts: contents.parts must not be empty.` };
    for (const [j, p] of parts.entries()) {
      const bad = partProblem(p, `${at}.parts[${j}]`, claude);
      if (bad) return bad;
    }
    const recs = parts as Array<Record<string, unknown>>;
    const responses = recs.filter((p) => p.functionResponse).map((p) => p.functionResponse as Record<string, unknown>);
    // §7.4: every call of a model turn is answered in the next turn, by id (or by name without one).
    if (prevCalls.length > 0) {
      for (const call of prevCalls) {
        const answered = responses.some((r) => (call.id !== undefined ? r.id === call.id : r.name === call.name));
        if (!answered) {
          return claude
            ? { claude, message: `messages.${i}.content: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${String(call.id)}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.` }
            : { message: 'Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.' };
        }
      }
    }
    if (responses.length > 0) {
      // Anthropic §2.3: a result answers a call of the turn before it, and results lead their message.
      for (const r of responses) {
        const known = prevCalls.some((call) => (r.id !== undefined ? call.id === r.id : call.name === r.name));
        if (!known) {
          return claude
            ? { claude, message: `messages.${i}.content: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${String(r.id)}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.` }
            : { message: 'Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.' };
        }
      }
      if (!claude && responses.length !== prevCalls.length) return { message: 'Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.' };
      if (claude) {
        const firstOther = recs.findIndex((p) => !p.functionResponse);
        const lastResponse = recs.findLastIndex((p) => p.functionResponse);
        if (firstOther >= 0 && firstOther < lastResponse) return { claude, message: `messages.${i}.content: tool_result blocks must come before any other content in a user message.` };
      }
    }
    prevCalls = c.role === 'model' ? recs.filter((p) => p.functionCall).map((p) => p.functionCall as { id?: unknown; name: unknown }) : [];
  }
  return null;
}

function partProblem(p: unknown, at: string, claude: boolean): ShapeProblem | null {
  if (!isRecord(p)) return { message: `Invalid value at '${at}'` };
  for (const k of Object.keys(p)) if (!PART_FIELDS.has(k)) return unknownName(k, at);
  const data = PART_DATA.filter((k) => p[k] !== undefined);
  if (data.length !== 1) return { message: `Invalid value at '${at}': required oneof field 'data' must have one initialized field` };
  if (typeof p.text === 'string' && !/\S/.test(p.text) && !(p.thought === true && typeof p.thoughtSignature === 'string')) {
    // §7.1: blank text parts are a 400 (a signed thought may be empty: the carrier part of §7.5).
    return claude ? { claude, message: 'messages: text content blocks must contain non-whitespace text' } : { message: 'Unable to submit request because it has an empty text parameter. Add a value to the parameter and try again.' };
  }
  if (p.text !== undefined && typeof p.text !== 'string') return { message: `Invalid value at '${at}.text'` };
  if (p.inlineData !== undefined) {
    const d = p.inlineData;
    if (!isRecord(d) || typeof d.mimeType !== 'string' || typeof d.data !== 'string' || !BASE64.test(d.data)) return { message: `Invalid value at '${at}.inline_data' (base64 data and a mime type)` };
    if (claude && !CLAUDE_MEDIA.has(d.mimeType)) return { claude, message: `Image does not match the provided media type ${d.mimeType}` };
  }
  if (p.functionCall !== undefined) {
    const f = p.functionCall;
    if (!isRecord(f) || typeof f.name !== 'string' || (f.args !== undefined && !isRecord(f.args))) return { message: `Invalid value at '${at}.function_call'` };
    for (const k of Object.keys(f)) if (k !== 'name' && k !== 'args' && k !== 'id') return unknownName(k, `${at}.function_call`);
  }
  if (p.functionResponse !== undefined) {
    const f = p.functionResponse;
    if (!isRecord(f) || typeof f.name !== 'string' || !isRecord(f.response)) return { message: `Invalid value at '${at}.function_response'` };
    for (const k of Object.keys(f)) if (k !== 'name' && k !== 'response' && k !== 'id' && k !== 'parts') return unknownName(k, `${at}.function_response`);
  }
  return null;
}

function declarationProblem(d: unknown, at: string, claude: boolean, declared: Set<string>): ShapeProblem | null {
  if (!isRecord(d)) return { message: `Invalid value at '${at}'` };
  for (const k of Object.keys(d)) if (k !== 'name' && k !== 'description' && k !== 'parameters') return unknownName(k, at);
  const name = String(d.name);
  // §7.12: letter or underscore first, [A-Za-z0-9_.:-], at most 64.
  if (!GOOGLE_FUNCTION_NAME.test(name)) return { message: `* GenerateContentRequest.${at.slice(8)}.name: Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64.` };
  if (claude && !CLAUDE_TOOL_NAME.test(name)) return { claude, message: `tools.${at.match(/\[(\d+)\]$/)?.[1]}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'` };
  // §7.12: declarations are deduplicated by name (the backend refuses two).
  if (declared.has(name)) return { message: `* GenerateContentRequest.${at.slice(8)}: Duplicate function declaration found: ${name}` };
  declared.add(name);
  if (d.parameters === undefined) return null;
  const bad = schemaProblem(d.parameters, `${at}.parameters`);
  if (bad) return bad;
  // §7.11: VALIDATED (Claude) wants an object with at least one property.
  const params = d.parameters as Record<string, unknown>;
  if (claude && (String(params.type).toUpperCase() !== 'OBJECT' || !isRecord(params.properties) || Object.keys(params.properties).length === 0)) {
    return { claude, message: `tools.${name}.input_schema: an object schema with at least one property is required` };
  }
  return null;
}

/** §7.13: a plain tree of the kept keywords, `type` one known string, `required` naming properties, string enums. */
function schemaProblem(s: unknown, at: string): ShapeProblem | null {
  if (!isRecord(s)) return { message: `Invalid value at '${at}'` };
  for (const k of Object.keys(s)) if (!SCHEMA_FIELDS.has(k)) return unknownName(k, at);
  if (typeof s.type !== 'string' || !SCHEMA_TYPES.has(s.type.toUpperCase())) return { message: `Invalid value at '${at}.type' (${JSON.stringify(s.type)})` };
  const type = s.type.toUpperCase();
  if (s.description !== undefined && typeof s.description !== 'string') return { message: `Invalid value at '${at}.description'` };
  if (s.enum !== undefined) {
    if (!Array.isArray(s.enum) || s.enum.length === 0) return { message: `* ${at}.enum: must not be empty` };
    if (type !== 'STRING') return { message: `* ${at}.enum: only allowed for STRING type` };
    for (const [i, v] of s.enum.entries()) if (typeof v !== 'string' || v === '') return { message: `* ${at}.enum[${i}]: cannot be empty` };
  }
  if (s.properties !== undefined) {
    if (!isRecord(s.properties)) return { message: `Invalid value at '${at}.properties'` };
    for (const [k, v] of Object.entries(s.properties)) {
      const bad = schemaProblem(v, `${at}.properties[${JSON.stringify(k)}].value`);
      if (bad) return bad;
    }
  }
  if (s.required !== undefined) {
    if (!Array.isArray(s.required)) return { message: `Invalid value at '${at}.required'` };
    const props = isRecord(s.properties) ? s.properties : {};
    for (const [i, r] of s.required.entries()) if (typeof r !== 'string' || !(r in props)) return { message: `* ${at}.required[${i}]: property is not defined` };
  }
  if (type === 'ARRAY') {
    if (s.items === undefined) return { message: `* ${at}.items: missing field.` };
    const bad = schemaProblem(s.items, `${at}.items`);
    if (bad) return bad;
  } else if (s.items !== undefined) return { message: `* ${at}.items: only allowed for ARRAY type` };
  return null;
}

/** Claude checks every tool id of the history against Anthropic's pattern (antigravity.md §7.3). */
  function badToolId(request: Record<string, unknown>): string | null {
    const contents = (Array.isArray(request.contents) ? request.contents : []) as Content[];
    for (let i = 0; i < contents.length; i++) {
      const parts = contents[i]!.parts ?? [];
      for (let j = 0; j < parts.length; j++) {
        const p = parts[j]!;
        const named = (p.functionCall ?? p.functionResponse) as { id?: unknown } | undefined;
        if (named && named.id !== undefined && !/^[a-zA-Z0-9_-]+$/.test(String(named.id))) {
          return `messages.${i}.content.${j}.${p.functionCall ? 'tool_use.id' : 'tool_result.tool_use_id'}`;
        }
      }
    }
    return null;
  }

  function signatureError(): Response {
    return claudeInvalid('messages.1.content.0: Invalid `signature` in `thinking` block');
  }

  /** Claude's own 400, JSON-encoded inside Google's message (fixtures/errors). */
  function claudeInvalid(message: string): Response {
    const inner = JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message }, request_id: `req_vrtx_${hex(24)}` });
    return googleError(400, 'INVALID_ARGUMENT', inner);
  }

  function geminiSignatureInvalid(): Response {
    const message = 'Unable to submit request because Thought signature is not valid.. Learn more: https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/gemini';
    return json(400, { error: { code: 400, message, errors: [{ message, domain: 'global', reason: 'badRequest' }], status: 'INVALID_ARGUMENT' } });
  }

  function unauthenticated(): Response {
    return googleError(
      401,
      'UNAUTHENTICATED',
      'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
    );
  }

  function quotaFor(email: string | null, id: string): FakeModelQuota | null {
    const own = email ? quotaByEmail.get(email) : undefined;
    if (own && id in own) return own[id] ?? null;
    if (id in globalQuota) return globalQuota[id] ?? null;
    return { remainingFraction: 1, resetTime: new Date(Date.now() + 5 * HOUR).toISOString().replace(/\.\d+Z$/, 'Z') };
  }

  /** A fault switched on for a Cloud Code call other than generation (null: answer normally). */
  async function rpcFault(req: Request, mode: FakeGoogleMode): Promise<Response | null> {
    switch (mode.kind) {
      case 'http500':
        return googleError(500, 'INTERNAL', 'Internal error encountered.');
      case 'html502':
        return html502();
      case 'not_found':
        return googleError(404, 'NOT_FOUND', 'Requested entity was not found.');
      case 'unauthorized':
        return unauthenticated();
      case 'echo_token':
        return echoAuthorization(req, mode.status);
      case 'validation_required':
        return validationRequired();
      case 'tos_banned':
        return tosBanned();
      case 'project_denied':
        return googleError(403, 'PERMISSION_DENIED', 'The caller does not have permission');
      case 'reset_before_first_byte':
        return new Response(new ReadableStream({ start: (c) => c.error() }), { headers: JSON_HEADERS });
      case 'stall_before_first_byte':
        await untilAbort(mode.ms, req.signal);
        return null;
      default:
        return null;
    }
  }

  function handleCloudCode(rec: RecordedGoogleRequest, rpc: string, body: Record<string, unknown>): Response {
    if (!rec.email) return unauthenticated();
    const a = account(rec.email);
    switch (rpc) {
      case 'loadCodeAssist': {
        if (a.userProject) {
          const duet = (body.metadata as Record<string, unknown> | undefined)?.duetProject;
          if (duet !== undefined && duet !== a.userProject) return googleError(403, 'PERMISSION_DENIED', `Permission denied on resource project ${String(duet)}.`);
          const standard = { id: 'standard-tier', name: 'Gemini Code Assist', userDefinedCloudaicompanionProject: true, usesGcpTos: true };
          const out: Record<string, unknown> = { allowedTiers: [{ ...standard, isDefault: true }], gcpManaged: false };
          if (ownOnboarded.has(a.email)) out.currentTier = standard;
          return json(200, out);
        }
        if (a.ineligibleTiers) {
          return json(200, {
            allowedTiers: [{ id: 'standard-tier', name: 'Antigravity', userDefinedCloudaicompanionProject: true, usesGcpTos: true, isDefault: true }],
            ineligibleTiers: a.ineligibleTiers,
            gcpManaged: false,
          });
        }
        const out: Record<string, unknown> = {
          currentTier: { id: 'free-tier', name: 'Antigravity', description: 'Antigravity free tier' },
          allowedTiers: [
            { id: 'free-tier', name: 'Antigravity', isDefault: true },
            { id: 'standard-tier', name: 'Antigravity', userDefinedCloudaicompanionProject: true, usesGcpTos: true },
          ],
          gcpManaged: false,
        };
        if (a.projectId) out.cloudaicompanionProject = a.projectId;
        if (a.paidTierId) {
          // proto3 JSON leaves a zero creditAmount out (antigravity.md §3).
          const credit: Record<string, string> = { creditType: 'GOOGLE_ONE_AI', minimumCreditAmountForUsage: '50' };
          if (a.aiCredits > 0) credit.creditAmount = String(a.aiCredits);
          out.paidTier = { id: a.paidTierId, name: 'Google AI Pro', availableCredits: [credit] };
        }
        return json(200, out);
      }
      case 'onboardUser': {
        if (typeof body.tierId !== 'string' && typeof body.tier_id !== 'string') return googleError(400, 'INVALID_ARGUMENT', 'tier_id is required');
        if (a.ineligibleTiers) return googleError(400, 'FAILED_PRECONDITION', 'Precondition check failed.');
        if (a.userProject) {
          const duet = (body.metadata as Record<string, unknown> | undefined)?.duetProject;
          if (duet !== a.userProject) return googleError(400, 'FAILED_PRECONDITION', 'Precondition check failed.');
          ownOnboarded.add(a.email);
          return json(200, { name: `operations/${hex(8)}`, done: true, response: { '@type': 'type.googleapis.com/google.internal.cloud.code.v1internal.OnboardUserResponse' } });
        }
        const seen = (onboardSeen.get(a.email) ?? 0) + 1;
        onboardSeen.set(a.email, seen);
        if (seen <= a.onboardPolls) return json(200, { name: `operations/${hex(8)}`, done: false });
        if (a.onboardError) return json(200, { name: `operations/${hex(8)}`, done: true, error: a.onboardError });
        return json(200, {
          name: `operations/${hex(8)}`,
          done: true,
          response: { '@type': 'type.googleapis.com/google.internal.cloud.code.v1internal.OnboardUserResponse', cloudaicompanionProject: { id: a.onboardProject, name: a.onboardProject, projectNumber: '22597072101' } },
        });
      }
      case 'fetchAvailableModels': {
        const out: Record<string, unknown> = {};
        for (const [id, entry] of Object.entries(models)) {
          const q = quotaFor(rec.email, id);
          out[id] = q ? { ...entry, quotaInfo: q } : { ...entry };
        }
        return json(200, {
          models: out,
          defaultAgentModelId: 'gemini-3.8-flash-high',
          deprecatedModelIds: { 'gemini-3.1-pro-high': { newModelId: 'gemini-pro-agent' } },
          imageGenerationModelIds: ['gemini-3.1-flash-image'],
          mqueryModelIds: ['gemini-3.1-flash-lite'],
          webSearchModelIds: ['gemini-3.1-flash-lite'],
        });
      }
      case 'retrieveUserQuotaSummary': {
        // Shaped like fixtures/antigravity/agy_cli_1.2.0/quota.resp.json.
        const windows = windowsByEmail.has(a.email) ? windowsByEmail.get(a.email)! : globalWindows;
        if (windows === null) return googleError(404, 'NOT_FOUND', `Method not found: ${rpc}`);
        const bucket = (prefix: string, window: '5h' | 'weekly', hours: number) => {
          const q = windows[prefix === 'gemini' ? 'gemini' : 'claude+gpt']?.[window] ?? {};
          const out: Record<string, unknown> = {
            bucketId: `${prefix}-${window}`,
            displayName: window === '5h' ? 'Five Hour Limit Remaining' : 'Weekly Limit Remaining',
            window,
            resetTime: q.resetTime ?? new Date(Date.now() + hours * HOUR).toISOString().replace(/\.\d+Z$/, 'Z'),
          };
          // proto3 JSON: a spent window has no remainingFraction at all.
          const f = q.remainingFraction ?? 1;
          if (f !== 0) out.remainingFraction = f;
          return out;
        };
        return json(200, {
          groups: [
            { buckets: [bucket('gemini', 'weekly', 168), bucket('gemini', '5h', 5)], displayName: 'Gemini Models', description: 'Models within this group: Gemini Flash, Gemini Pro' },
            { buckets: [bucket('3p', 'weekly', 168), bucket('3p', '5h', 5)], displayName: 'Claude and GPT models', description: 'Models within this group: Claude Opus, Claude Sonnet, GPT-OSS' },
          ],
          description: 'Within each group, models share a weekly limit and a 5-hour limit.',
        });
      }
      default:
        return googleError(404, 'NOT_FOUND', `Method not found: ${rpc}`);
    }
  }

  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    idleTimeout: 0,
    async fetch(req) {
      const u = new URL(req.url);
      const headers: Record<string, string> = {};
      req.headers.forEach((v, k) => {
        headers[k] = v;
      });
      const raw = req.method === 'POST' ? await req.text() : '';
      let body: unknown = undefined;
      if (raw) {
        try {
          body = JSON.parse(raw);
        } catch {
          body = raw;
        }
      }
      const auth = req.headers.get('authorization');
      const token = auth && /^bearer\s+/i.test(auth) ? auth.replace(/^bearer\s+/i, '').trim() : null;
      const m = /^\/(daily|prod)\/v1internal:([A-Za-z]+)$/.exec(u.pathname);
      const rpc = m ? m[2]! : u.pathname === '/token' ? 'token' : u.pathname === '/o/oauth2/v2/auth' ? 'auth' : u.pathname === '/oauth2/v1/userinfo' ? 'userinfo' : u.pathname;
      const rec: RecordedGoogleRequest = {
        method: req.method,
        path: u.pathname,
        endpoint: m ? (m[1] as 'daily' | 'prod') : null,
        rpc,
        query: u.search,
        headers,
        body,
        token,
        email: token ? (accessTokens.get(token) ?? null) : null,
        aborted: false,
        mode: 'ok',
      };
      if (record) requests.push(rec);
      // Google's grounding redirects (vertexaisearch.cloud.google.com/grounding-api-redirect/…): a 302 to
      // the page; a link ending in "-broken" answers 500 instead.
      const redirect = /^\/grounding-api-redirect\/FAKE\d+([a-z.]+)-[0-9a-f]+(-broken)?$/.exec(u.pathname);
      if (redirect) {
        if (redirect[2]) return new Response('Internal error', { status: 500 });
        return new Response(null, { status: 302, headers: { location: `https://${redirect[1]}/fake-search-page` } });
      }
      if (u.pathname === '/manifest/latest-arm64-mac.yml') {
        return new Response(`version: ${latestClientVersion}\nfiles:\n  - url: Antigravity-${latestClientVersion}-arm64-mac.zip\nreleaseDate: '2026-11-30T00:00:00.000Z'\n`, {
          headers: { 'content-type': 'text/yaml' },
        });
      }
      if (rpc === 'token' && req.method === 'POST') return handleToken(req, raw, rec);
      if (rpc === 'auth' && req.method === 'GET') return handleAuth(u);
      if (rpc === 'userinfo') {
        if (!rec.email) return json(401, { error: { code: 401, message: 'Request is missing required authentication credential.', status: 'UNAUTHENTICATED' } });
        return json(200, { id: hex(21), email: rec.email, verified_email: true, name: rec.email.split('@')[0], picture: 'https://example.invalid/p.png' });
      }
      if (m && req.method === 'POST') {
        const b = body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
        if (typeof body === 'string') return googleError(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.');
        if (rpc === 'streamGenerateContent' || rpc === 'generateContent') {
          const model = typeof b.model === 'string' ? b.model : null;
          // Fault modes answer whatever the token (an outage does not check credentials); 401 otherwise.
          const mode = pickMode(false, { token, email: rec.email, model, endpoint: rec.endpoint });
          if (!rec.email && mode.kind === 'ok') return unauthenticated();
          const stream = rpc === 'streamGenerateContent' && u.searchParams.get('alt') === 'sse';
          return handleGenerate(req, rec, b, stream, mode);
        }
        const fault = pickMode(false, { token, email: rec.email, endpoint: rec.endpoint }, rpc);
        if (fault.kind !== 'ok') {
          rec.mode = fault.kind;
          const r = await rpcFault(req, fault);
          if (r) return r;
        }
        return handleCloudCode(rec, rpc, b);
      }
      return googleError(404, 'NOT_FOUND', `Not found: ${u.pathname}`);
    },
  });

  const port = server.port as number;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    endpoints: [`${url}/daily`, `${url}/prod`],
    tokenUrl: `${url}/token`,
    authUrl: `${url}/o/oauth2/v2/auth`,
    userinfoUrl: `${url}/oauth2/v1/userinfo`,
    port,
    requests,
    stats,
    setMode(mode, o = {}) {
      rules.push({ mode, token: o.token ?? null, email: o.email ?? null, model: o.model ?? null, endpoint: o.endpoint ?? null, rpc: o.rpc ?? null, left: o.times ?? -1 });
    },
    clearModes() {
      rules = [];
    },
    setModels(m) {
      models = m;
    },
    setQuotaWindows(w, o = {}) {
      if (o.email) windowsByEmail.set(o.email, w);
      else globalWindows = w;
    },
    setQuota(q, o = {}) {
      if (o.email) quotaByEmail.set(o.email, { ...(quotaByEmail.get(o.email) ?? {}), ...q });
      else Object.assign(globalQuota, q);
    },
    setAccount(email, patch) {
      Object.assign(account(email), patch);
    },
    setLoginEmail(email) {
      loginEmail = email;
    },
    setLoginScopes(scopes) {
      loginScopes = scopes;
    },
    refreshTokenFor,
    expireAccessTokens() {
      accessTokens.clear();
    },
    generations() {
      return requests.filter((r) => r.rpc === 'streamGenerateContent' || r.rpc === 'generateContent');
    },
    versionUrl: `${url}/manifest/latest-arm64-mac.yml`,
    setClientVersions(v) {
      minClientVersion = v.min;
      if (v.latest) latestClientVersion = v.latest;
    },
    async stop() {
      await server.stop(true);
    },
  };
}
