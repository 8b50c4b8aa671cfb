// Anything thrown while serving -> the Anthropic error envelope, with its status and headers.
// Bad input is always a 4xx ApiError; only a genuine bug becomes a 500, and then with a generic
// message (the detail goes to the log, never to the client).
import { ApiError } from '../anthropic/errors.ts';
import { log, maskSecrets } from '../log.ts';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** `req_` + 24 random base62 characters, like Anthropic's request ids. */
export function newRequestId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  let s = 'req_';
  // 248 = 4 * 62: rejection-free enough; the tiny bias is irrelevant for an id.
  for (const b of bytes) s += ALPHABET[b % 62]!;
  return s;
}

/** Elysia's own error codes mapped to the envelope; everything unknown is a generic 500. */
export function toApiError(err: unknown, code?: string | number): ApiError {
  if (err instanceof ApiError) return err;
  switch (code) {
    case 'NOT_FOUND':
      return new ApiError('not_found_error', 'Not found');
    case 'PARSE':
      return new ApiError('invalid_request_error', 'could not parse the request body');
    case 'VALIDATION':
      return new ApiError('invalid_request_error', 'invalid request');
  }
  log.error(`unexpected server error: ${err instanceof Error ? err.message : String(err)}`);
  if (err instanceof Error && err.stack) log.debug(err.stack);
  return new ApiError('api_error', 'Internal server error');
}

const JSON_HEADERS = { 'content-type': 'application/json' } as const;

/**
 * An error message as the client may see it: an upstream's words can quote an access token or a
 * key (an error page echoing the request, a key sent back), so it is masked as the log is.
 */
export function clientMessage(message: string): string {
  return maskSecrets(message);
}

/**
 * A body the answer leaves unread (a 404 or 401 to an upload, a wrong content-type): Bun keeps such
 * a connection open, and a graceful stop waits on it for its whole grace period.
 */
function leavesBodyUnread(request: Request | undefined): boolean {
  if (!request || request.bodyUsed) return false;
  const length = request.headers.get('content-length');
  return (length !== null && length !== '0') || request.headers.has('transfer-encoding');
}

/**
 * The envelope as a Response. `headers` (request-id, CORS…) are added to the error's own. Given the
 * request, a connection whose body was not read is closed after the answer.
 */
export function errorResponse(err: ApiError, requestId: string, headers?: Record<string, string>, request?: Request): Response {
  const close = leavesBodyUnread(request) ? { connection: 'close' } : undefined;
  const body = err.body(requestId);
  body.error.message = clientMessage(body.error.message);
  return new Response(JSON.stringify(body), {
    status: err.status,
    headers: { ...JSON_HEADERS, ...headers, ...err.headers, ...close, 'request-id': requestId },
  });
}

/** A JSON success response. */
export function jsonResponse(body: unknown, headers?: Record<string, string>, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: headers ? { ...JSON_HEADERS, ...headers } : JSON_HEADERS });
}

/**
 * overloaded_error: as a 529 (nothing sent yet) Claude Code and the SDKs retry it, and a restarted
 * server answers; as a stream's `error` event, after part of the answer, no client retries (Claude
 * Code shows the message), but it says what happened where a cut connection said nothing.
 */
export function serverStoppedError(): ApiError {
  return new ApiError('overloaded_error', 'mcp was stopped before this answer was finished (its SHUTDOWN_GRACE_SEC was over, or a second stop signal came); send the request again');
}

/** `work`, or the stop error once `stopping` aborts first (the shutdown grace is over). */
export function untilStopped<T>(work: Promise<T>, stopping: AbortSignal | undefined): Promise<T> {
  if (!stopping) return work;
  if (stopping.aborted) return Promise.reject(serverStoppedError());
  let onStop = (): void => {};
  const stopped = new Promise<never>((_, reject) => {
    onStop = () => reject(serverStoppedError());
    stopping.addEventListener('abort', onStop, { once: true });
  });
  return Promise.race([work, stopped]).finally(() => stopping.removeEventListener('abort', onStop));
}
