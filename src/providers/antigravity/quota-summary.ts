// retrieveUserQuotaSummary (antigravity.md §11.3; the official agy client's quota call): each model
// group (Gemini; Claude and GPT) shares a 5-hour and a weekly window. fetchAvailableModels gives
// one fraction per model, which does not say which window it is; an account whose weekly window is
// nearly spent can look fine there. The windows become one quota per model and window, so the pool
// (which keeps an account above the soft floor by its tightest window) and /account-limits see both.
// Pure.
import type { QuotaInfo } from '../provider.ts';
import { quotaGroupOf } from './models.ts';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Which of our quota groups a summary group is: by its buckets' ids (gemini-5h, 3p-weekly), else by its name. */
function groupKey(group: Json, buckets: Json[]): string | null {
  for (const b of buckets) {
    const id = typeof b.bucketId === 'string' ? b.bucketId.toLowerCase() : '';
    if (id.startsWith('gemini')) return 'gemini';
    if (id.startsWith('3p')) return 'claude+gpt';
  }
  const name = typeof group.displayName === 'string' ? group.displayName : '';
  if (/gemini/i.test(name)) return 'gemini';
  if (/claude|gpt/i.test(name)) return 'claude+gpt';
  return null;
}

/** A bucket's window name: its `window`, else the end of its id ("gemini-5h" -> "5h"). */
function windowOf(b: Json): string | null {
  if (typeof b.window === 'string' && b.window) return b.window;
  const id = typeof b.bucketId === 'string' ? b.bucketId : '';
  const dash = id.lastIndexOf('-');
  return dash > 0 ? id.slice(dash + 1) : null;
}

/** proto3 JSON leaves a zero out: a bucket with a reset time and no fraction is spent. */
function fractionOf(b: Json, resetAt: number | null): number | null {
  const v = typeof b.remainingFraction === 'number' ? b.remainingFraction : isObject(b.remaining) && typeof b.remaining.value === 'number' ? b.remaining.value : undefined;
  if (v === undefined) return resetAt !== null ? 0 : null;
  return Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0;
}

/** The summary's windows as quotas of each of `modelIds` in the group they belong to. */
export function parseQuotaSummary(body: Json, modelIds: readonly string[]): QuotaInfo[] {
  const out: QuotaInfo[] = [];
  const groups = Array.isArray(body.groups) ? body.groups.filter(isObject) : [];
  for (const g of groups) {
    const buckets = Array.isArray(g.buckets) ? g.buckets.filter(isObject) : [];
    const key = groupKey(g, buckets);
    if (!key) continue;
    const models = modelIds.filter((id) => quotaGroupOf(id) === key);
    for (const b of buckets) {
      const window = windowOf(b);
      if (!window) continue;
      const reset = typeof b.resetTime === 'string' ? Date.parse(b.resetTime) : Number.NaN;
      const resetAt = Number.isFinite(reset) ? reset : null;
      const remainingFraction = fractionOf(b, resetAt);
      for (const model of models) out.push({ model, remainingFraction, resetAt, window });
    }
  }
  return out;
}
