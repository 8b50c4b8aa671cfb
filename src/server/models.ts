// GET /v1/models (Anthropic list shape, limit/after_id/before_id paging) and GET /v1/models/:id.
import { Elysia } from 'elysia';
import { ApiError } from '../anthropic/errors.ts';
import type { Gateway, ModelEntry } from '../gateway/types.ts';
import { jsonResponse } from './errors.ts';

export interface ModelPage {
  data: ModelEntry[];
  has_more: boolean;
  first_id: string | null;
  last_id: string | null;
}

function parseLimit(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 20;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 1000) {
    throw new ApiError('invalid_request_error', `limit: must be an integer between 1 and 1000, got "${raw.slice(0, 20)}"`);
  }
  return n;
}

/** One page of `models` (already in display order, newest first). Pure, for tests. */
export function pageModels(
  models: readonly ModelEntry[],
  query: { limit?: string; after_id?: string; before_id?: string },
): ModelPage {
  const limit = parseLimit(query.limit);
  let start = 0;
  let end = models.length;
  const indexOf = (id: string, name: string): number => {
    const i = models.findIndex((m) => m.id === id);
    if (i < 0) throw new ApiError('invalid_request_error', `${name}: unknown model id "${id.slice(0, 100)}"`);
    return i;
  };
  if (query.after_id) start = indexOf(query.after_id, 'after_id') + 1;
  if (query.before_id) end = indexOf(query.before_id, 'before_id');
  let data: ModelEntry[];
  let hasMore: boolean;
  if (query.before_id && !query.after_id) {
    // Paging backwards: the `limit` items just before the cursor.
    const from = Math.max(start, end - limit);
    data = models.slice(from, end);
    hasMore = from > start;
  } else {
    data = models.slice(start, Math.min(end, start + limit));
    hasMore = start + limit < end;
  }
  return { data, has_more: hasMore, first_id: data[0]?.id ?? null, last_id: data[data.length - 1]?.id ?? null };
}

/** The id from the path; a broken %-escape names no model, so it is kept as sent (a 404, not a 500). */
function decodeId(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

export function modelRoutes(gateway: Gateway) {
  return new Elysia({ name: 'models' })
    .get('/v1/models', ({ query }) =>
      jsonResponse(pageModels(gateway.listModels(), query as Record<string, string | undefined>)),
    )
    .get('/v1/models/*', ({ params }) => {
      const id = decodeId((params as Record<string, string>)['*'] ?? '');
      const model = id ? gateway.getModel(id) : undefined;
      if (!model) throw new ApiError('not_found_error', `model: ${id.slice(0, 200)}`);
      return jsonResponse(model);
    });
}
