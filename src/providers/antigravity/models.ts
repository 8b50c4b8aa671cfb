// fetchAvailableModels (protocol §11.1) -> the models an account can use and its quota per model.
// Pure parsing; the provider fetches and caches.
import { familyOf, type ModelInfo, type QuotaInfo } from '../provider.ts';
import { isImageGenerationModel } from './image-generation.ts';

/** Internal ids the IDE uses for tab completion, review and background jobs — never offered. */
const HIDDEN = [/^chat_/, /^tab_/, /^rev\d+-/, /^models\//, /proactive-observer/];

export function isUserFacing(id: string): boolean {
  return !HIDDEN.some((re) => re.test(id));
}

/** Family by id prefix (the catalog's apiProvider says the same, but ids are all we have elsewhere). */
export const familyFromId = familyOf;

interface CatalogEntry {
  displayName?: unknown;
  supportsThinking?: unknown;
  supportsImages?: unknown;
  maxTokens?: unknown;
  maxOutputTokens?: unknown;
  thinkingBudget?: unknown;
  quotaInfo?: { remainingFraction?: unknown; resetTime?: unknown } | null;
}

function entries(body: Record<string, unknown>): Array<[string, CatalogEntry]> {
  const models = body.models;
  if (!models || typeof models !== 'object' || Array.isArray(models)) return [];
  return Object.entries(models as Record<string, CatalogEntry>).filter(([id, e]) => isUserFacing(id) && e && typeof e === 'object');
}

const idList = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x !== '') : []);

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined);

/**
 * The quota pool a model draws on: Google meters Claude and GPT-OSS together and the Gemini text models
 * together, each with a 5-hour and a weekly window (antigravity.md §11.3).
 */
export function quotaGroupOf(id: string): string {
  const s = id.toLowerCase();
  // The Gemini group is "Gemini Flash, Gemini Pro" (§11.3); image models have their own quotaInfo.
  // Apart, a spent image quota cannot park every Gemini text model (the reverse costs one call).
  if (isImageGenerationModel(s, undefined)) return s;
  if (s.startsWith('gemini')) return 'gemini';
  if (s.startsWith('claude') || s.startsWith('gpt')) return 'claude+gpt';
  return s;
}

/** deprecatedModelIds: retired id -> { newModelId, … }. */
function deprecatedOf(body: Record<string, unknown>): Record<string, unknown> {
  return body.deprecatedModelIds && typeof body.deprecatedModelIds === 'object' ? (body.deprecatedModelIds as Record<string, unknown>) : {};
}

/** The catalog as ModelInfo, sorted by id; internal ids and deprecated ones are dropped (their successor names them). */

export function parseModels(body: Record<string, unknown>): ModelInfo[] {
  const deprecated = deprecatedOf(body);
  const search = new Set(idList(body.webSearchModelIds));
  const images = new Set(idList(body.imageGenerationModelIds));
  const out: ModelInfo[] = [];
  for (const [id, e] of entries(body)) {
    if (id in deprecated) continue;
    const info: ModelInfo = {
      id,
      displayName: typeof e.displayName === 'string' && e.displayName ? e.displayName : id,
      family: familyFromId(id),
    };
    const ctx = num(e.maxTokens);
    if (ctx !== undefined) info.contextWindow = ctx;
    const maxOut = num(e.maxOutputTokens);
    if (maxOut !== undefined) info.maxOutputTokens = maxOut;
    // Claude "-thinking" ids think even when the catalog forgets to say so.
    info.thinking = e.supportsThinking === true || /thinking/.test(id);
    if (typeof e.supportsImages === 'boolean') info.supportsImages = e.supportsImages;
    if (search.has(id)) info.webSearch = true;
    if (images.has(id)) {
      info.imageGeneration = true;
      images.delete(id);
    }
    out.push(info);
  }
  // An image model the catalog names without an entry of its own is still offered.
  for (const id of images) if (isUserFacing(id) && !(id in deprecated)) out.push({ id, displayName: id, family: familyFromId(id), imageGeneration: true });
  // Clients with fixed names keep asking for a retired id: it goes to its successor, when listed.
  for (const [old, d] of Object.entries(deprecated)) {
    const next = d && typeof d === 'object' ? (d as { newModelId?: unknown }).newModelId : undefined;
    const m = typeof next === 'string' ? out.find((x) => x.id === next) : undefined;
    if (m) m.replaces = [...(m.replaces ?? []), old];
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** The per-model fields the parsers here read; the entries carry many more (experiments, MIME types). */
const ENTRY_FIELDS = ['displayName', 'supportsThinking', 'supportsImages', 'maxTokens', 'maxOutputTokens', 'thinkingBudget', 'quotaInfo'] as const;

/**
 * The catalog cut down to what the parsers here read, for keeping per account. Google's answer is
 * about 200 KB of JSON (experiments, sort orders, MIME tables, internal ids) and each account's was
 * kept whole for as long as the server ran; every parser gives the same answer on the cut.
 */
export function slimCatalog(body: Record<string, unknown>): Record<string, unknown> {
  const models: Record<string, CatalogEntry> = {};
  for (const [id, e] of entries(body)) {
    const kept: Record<string, unknown> = {};
    for (const f of ENTRY_FIELDS) if (e[f] !== undefined) kept[f] = e[f];
    models[id] = kept as CatalogEntry;
  }
  const deprecated: Record<string, unknown> = {};
  for (const [old, d] of Object.entries(deprecatedOf(body))) {
    const next = d && typeof d === 'object' ? (d as { newModelId?: unknown }).newModelId : undefined;
    deprecated[old] = typeof next === 'string' ? { newModelId: next } : {};
  }
  return {
    models,
    deprecatedModelIds: deprecated,
    webSearchModelIds: idList(body.webSearchModelIds),
    imageGenerationModelIds: idList(body.imageGenerationModelIds),
  };
}

/** The catalog entry of `id` (own keys only), or undefined. */
function entryOf(body: Record<string, unknown> | undefined, id: string): CatalogEntry | undefined {
  const models = body?.models;
  if (!models || typeof models !== 'object' || Array.isArray(models)) return undefined;
  if (!Object.hasOwn(models, id)) return undefined;
  const e = (models as Record<string, CatalogEntry | null>)[id];
  return e && typeof e === 'object' ? e : undefined;
}

/** The model's output cap as the catalog gives it (undefined when it does not). */
export function maxOutputTokensOf(body: Record<string, unknown> | undefined, id: string): number | undefined {
  return num(entryOf(body, id)?.maxOutputTokens);
}

/**
 * The thinking budget the official client sends for the runtime id (gemini-3.8-flash-low: 1000;
 * -1 = dynamic). proto3 omits zeros, so 0 means "not given" here, not "thinking off".
 */
export function thinkingBudgetOf(body: Record<string, unknown> | undefined, id: string): number | undefined {
  const b = entryOf(body, id)?.thinkingBudget;
  return typeof b === 'number' && Number.isInteger(b) && (b > 0 || b === -1) ? b : undefined;
}

/**
 * Quota per model. proto3 JSON omits zeros, so an exhausted model shows only `resetTime` (-> 0);
 * a model without quotaInfo is unknown (null). Retired ids have none: requests for them go to the
 * successor, whose quota counts.
 */
export function parseQuota(body: Record<string, unknown>): QuotaInfo[] {
  const out: QuotaInfo[] = [];
  const deprecated = deprecatedOf(body);
  for (const [id, e] of entries(body)) {
    if (Object.hasOwn(deprecated, id)) continue;
    const q = e.quotaInfo;
    if (!q || typeof q !== 'object') {
      out.push({ model: id, remainingFraction: null, resetAt: null });
      continue;
    }
    const reset = typeof q.resetTime === 'string' ? Date.parse(q.resetTime) : Number.NaN;
    let fraction: number | null = typeof q.remainingFraction === 'number' ? q.remainingFraction : Number.isFinite(reset) ? 0 : null;
    if (fraction !== null) fraction = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
    out.push({ model: id, remainingFraction: fraction, resetAt: Number.isFinite(reset) ? reset : null });
  }
  return out.sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : 0));
}
