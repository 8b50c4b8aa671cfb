// The operations surface: /health (open, details only with the key), /account-limits (JSON or a
// text table), /refresh-token and /metrics (Prometheus text), plus the harmless Claude Code
// telemetry sink. Auth for all but /health is enforced by the app before routing.
import { Elysia } from 'elysia';
import { ApiError } from '../anthropic/errors.ts';
import type { Ops } from '../gateway/types.ts';
import { jsonResponse, untilStopped } from './errors.ts';

// nosniff: a browser that logged in to the dashboard replays Basic auth, and a foreign page could
// load these as a script; never run text/plain as one.
const TEXT = { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' } as const;
const PROMETHEUS = { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'x-content-type-options': 'nosniff' } as const;

/** `stopping`: aborted when the shutdown grace is over (a refresh still waiting on Google then gets the stop error). */
export function opsRoutes(ops: Ops, isAuthorized: (headers: Headers) => boolean, stopping?: AbortSignal) {
  return new Elysia({ name: 'ops' })
    .get('/health', ({ request }) => jsonResponse(ops.health(isAuthorized(request.headers))))
    .get('/account-limits', ({ query }) => {
      const format = (query as Record<string, string | undefined>).format;
      if (format === 'table') return new Response(ops.accountLimitsTable(), { headers: TEXT });
      // A typo must not quietly answer something else than what was asked for.
      if (format !== undefined && format !== '' && format !== 'json') {
        throw new ApiError('invalid_request_error', `format: must be "json" or "table", got "${format.slice(0, 20)}"`);
      }
      return jsonResponse(ops.accountLimits());
    })
    .post(
      '/refresh-token',
      async ({ query }) => {
        const account = (query as Record<string, string | undefined>).account;
        return jsonResponse(await untilStopped(ops.refresh(account || undefined), stopping));
      },
      { parse: 'none' },
    )
    .get('/metrics', () => new Response(ops.metrics(), { headers: PROMETHEUS }))
    .post('/api/event_logging/batch', () => jsonResponse({ status: 'ok' }), { parse: 'none' });
}
