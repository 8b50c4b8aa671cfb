// The operations surface: /health (open, details only with the key), /account-limits (JSON or a
// text table), /refresh-token and /metrics (Prometheus text), plus the harmless Claude Code
// telemetry sink. Auth for all but /health is enforced by the app before routing.
import { Elysia } from 'elysia';
import type { Ops } from '../gateway/types.ts';
import { jsonResponse } from './errors.ts';

const TEXT = { 'content-type': 'text/plain; charset=utf-8' } as const;
const PROMETHEUS = { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' } as const;

export function opsRoutes(ops: Ops, isAuthorized: (headers: Headers) => boolean) {
  return new Elysia({ name: 'ops' })
    .get('/health', ({ request }) => jsonResponse(ops.health(isAuthorized(request.headers))))
    .get('/account-limits', ({ query }) => {
      if ((query as Record<string, string | undefined>).format === 'table') {
        return new Response(ops.accountLimitsTable(), { headers: TEXT });
      }
      return jsonResponse(ops.accountLimits());
    })
    .post(
      '/refresh-token',
      async ({ query }) => {
        const account = (query as Record<string, string | undefined>).account;
        return jsonResponse(await ops.refresh(account || undefined));
      },
      { parse: 'none' },
    )
    .get('/metrics', () => new Response(ops.metrics(), { headers: PROMETHEUS }))
    .post('/api/event_logging/batch', () => jsonResponse({ status: 'ok' }), { parse: 'none' });
}
