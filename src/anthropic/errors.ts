// The Anthropic error envelope, as a throwable. Every failure the client sees is one of these,
// whichever room raised it; the server turns it into status, headers and body.

export type ApiErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'billing_error'
  | 'permission_error'
  | 'not_found_error'
  | 'request_too_large'
  | 'rate_limit_error'
  | 'api_error'
  | 'timeout_error'
  | 'overloaded_error';

const STATUS: Record<ApiErrorType, number> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  timeout_error: 504,
  overloaded_error: 529,
};

export class ApiError extends Error {
  readonly type: ApiErrorType;
  readonly status: number;
  /** Extra response headers, e.g. retry-after, x-should-retry. */
  readonly headers: Record<string, string>;
  /** error.details: a machine-readable error_code the SDK acts on (e.g. thread_unsupported_request). */
  readonly details: Record<string, unknown> | undefined;

  constructor(
    type: ApiErrorType,
    message: string,
    opts: { status?: number; headers?: Record<string, string>; details?: Record<string, unknown> } = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.type = type;
    this.status = opts.status ?? STATUS[type];
    this.headers = opts.headers ?? {};
    this.details = opts.details;
  }

  body(requestId?: string): {
    type: 'error';
    error: { type: ApiErrorType; message: string; details?: Record<string, unknown> };
    request_id?: string;
  } {
    const error = this.details ? { type: this.type, message: this.message, details: this.details } : { type: this.type, message: this.message };
    return requestId ? { type: 'error', error, request_id: requestId } : { type: 'error', error };
  }
}

export function statusForType(type: ApiErrorType): number {
  return STATUS[type];
}
