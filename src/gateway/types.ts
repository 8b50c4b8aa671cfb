// What the server asks of the routing brain. The server knows no provider: it hands over a
// validated request and gets back a stream whose first event has already arrived (so the HTTP 200
// is committed only when the upstream really answered), or an ApiError to send as a real HTTP error.
import type { AnthropicEvent, Message } from '../anthropic/events.ts';
import type { MessagesRequest } from '../anthropic/schema.ts';

export interface DispatchRequest {
  body: MessagesRequest;
  requestId: string;
  /** Incoming request headers, lower-case names. */
  headers: Record<string, string>;
  /** The client called the beta surface (`/v1/messages?beta=true`, as Claude Code and the SDK's beta client do). */
  beta?: boolean;
  /** Aborted when the client goes away; the upstream call is aborted with it. */
  signal: AbortSignal;
  /**
   * Aborted when the server begins to stop: a request still waiting for a limit to reset or a
   * concurrency slot (nothing upstream yet) stops waiting and gets a retryable 529 at once, rather
   * than holding the stop for the whole grace; one already upstream carries on.
   */
  draining?: AbortSignal;
  /**
   * How long the client waits for its answer, ms (the SDK's x-stainless-timeout), when it says. A
   * wait for a limit to reset is only made if it leaves the client as long again for the answer;
   * else the client gets the 429 and its retry-after at once, not a timeout it would retry.
   */
  clientWaitMs?: number;
  /**
   * Told of each upstream call as it starts, so a request that fails in the end is still put down to
   * the account and model that answered it last (logs, usage per account).
   */
  onAttempt?(attempt: {
    accountId: string;
    provider: string;
    upstreamModel: string;
    /** The model asked for, when a fallback model is answering it. */
    fallbackFrom: string | null;
    /** Attempts that failed over before this one (on this model), with why. */
    failovers: number;
    failoverReasons: readonly string[];
  }): void;
}

export interface Dispatched {
  /** The whole event stream, starting with the first event (already received). Errors after it are ApiErrors. */
  events: AsyncIterable<AnthropicEvent>;
  accountId: string;
  provider: string;
  upstreamModel: string;
  /** The model the client asked for, when fallback served another one. */
  fallbackFrom: string | null;
  /** How many upstream attempts failed before this one. */
  failovers: number;
  /** Why each failed attempt failed over ("<account label>:<kind>"), for the request log line. */
  failoverReasons?: string[];
  /**
   * Not streaming: the answer as one Message, made while another account could still be tried
   * (an answer that cannot be one fails over). `events` holds the same answer.
   */
  message?: Message;
}

/** One entry of /v1/models (Anthropic shape, plus optional extras). */
export interface ModelEntry {
  type: 'model';
  id: string;
  display_name: string;
  created_at: string;
  max_input_tokens?: number;
  max_tokens?: number;
  [extra: string]: unknown;
}

export interface Gateway {
  /** Throws ApiError for anything the client should see as an HTTP error. */
  dispatch(req: DispatchRequest): Promise<Dispatched>;
  listModels(): ModelEntry[];
  getModel(id: string): ModelEntry | undefined;
  /** The model /v1/images/generate draws with when the request names none; null when no account of the pool can draw. */
  imageModel(): string | null;
  /** Whether a named model draws images: false when the catalog knows it does not, null when it cannot tell. */
  drawsImages(model: string): boolean | null;
}

/** The operations surface behind /health, /account-limits, /refresh-token and /metrics. */
export interface Ops {
  health(detailed: boolean): Record<string, unknown>;
  accountLimits(): Record<string, unknown>;
  accountLimitsTable(): string;
  refresh(accountId?: string): Promise<Record<string, unknown>>;
  metrics(): string;
}
