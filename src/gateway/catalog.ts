// Client model id -> (provider, upstream model, family). Claude Code sends its own names (aliases,
// dated ids, a `[1m]` suffix); they map onto whatever the pool's backends serve today, with the
// user's MODEL_MAP on top. Also the fallback map (--fallback) and the discovered model list behind
// /v1/models.
import type { Config } from '../config.ts';
import type { ModelEntry } from './types.ts';
import { familyOf, type ModelFamily, type ModelInfo, type ProviderId } from '../providers/provider.ts';

export interface Route {
  provider: ProviderId;
  /** The id sent upstream; limits and quotas are kept per this id. */
  upstreamModel: string;
  family: ModelFamily;
}

const ONE_M_SUFFIX = /\[1m\]$/i;
/**
 * Orders ids by their version numbers: claude-opus-4-10 after claude-opus-4-9, gemini-3.10 after
 * gemini-3.9. By hand, not Intl.Collator: a collator loads ICU's collation data, about 1 MB of the
 * proxy's idle memory (docs/benchmarks.md), for a sort of a dozen ids per discovery change.
 */
export function compareVersions(a: string, b: string): number {
  const x = a.match(RUNS) ?? [];
  const y = b.match(RUNS) ?? [];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const p = x[i]!;
    const q = y[i]!;
    if (p === q) continue;
    const dp = p.charCodeAt(0) <= 57 && p.charCodeAt(0) >= 48;
    const dq = q.charCodeAt(0) <= 57 && q.charCodeAt(0) >= 48;
    if (dp && dq) return Number(p) - Number(q) || p.length - q.length;
    return p < q ? -1 : 1;
  }
  return x.length - y.length;
}
const RUNS = /\d+|\D+/g;
const PROVIDER_PREFIX = /^(antigravity|zai)\//i;

/** Antigravity targets of Claude Code's names (antigravity.md §11.5, Sept 2026 lineup). */
export const ANTIGRAVITY_ALIASES = {
  opus: 'claude-opus-4-6-thinking',
  sonnet: 'claude-sonnet-4-6',
  // Titles and Explore sub-agents: cheap and fast, and it spares the Claude+GPT quota group.
  haiku: 'gemini-3-flash',
} as const;

/**
 * When discovery shows the default target is gone (ids move every few months), the newest served
 * id of the same kind takes its place; the last resort is the sonnet target.
 */
const TIER_PATTERNS: Record<'opus' | 'sonnet' | 'haiku', RegExp[]> = {
  opus: [/^claude-opus-.*thinking/, /^claude-opus-/],
  sonnet: [/^claude-sonnet-/],
  haiku: [/^gemini-[\d.]+-flash(-low)?$/, /^gemini-.*flash/, /^claude-haiku-/],
};

/** Z.AI's own answer to the bare aliases (claude-* ids go through: Z.AI maps them itself). */
export const ZAI_ALIASES = { opus: 'glm-4.7', sonnet: 'glm-4.7', haiku: 'glm-4.5-air' } as const;

/** Antigravity ids known to serve (used before discovery has answered). */
export const KNOWN_ANTIGRAVITY_MODELS: readonly ModelInfo[] = [
  { id: 'claude-opus-4-6-thinking', displayName: 'Claude Opus 4.6 (Thinking)', family: 'claude', contextWindow: 200_000, maxOutputTokens: 64_000, thinking: true },
  { id: 'claude-sonnet-4-6', displayName: 'Claude Sonnet 4.6', family: 'claude', contextWindow: 200_000, maxOutputTokens: 64_000, thinking: true },
  { id: 'gemini-pro-agent', displayName: 'Gemini 3.1 Pro (High)', family: 'gemini', contextWindow: 1_048_576, maxOutputTokens: 65_535, thinking: true, replaces: ['gemini-3.1-pro-high'] },
  { id: 'gemini-3.1-pro-low', displayName: 'Gemini 3.1 Pro (Low)', family: 'gemini', contextWindow: 1_048_576, maxOutputTokens: 65_535, thinking: true },
  { id: 'gemini-3.8-flash-high', displayName: 'Gemini 3.8 Flash (High)', family: 'gemini', contextWindow: 1_048_576, maxOutputTokens: 65_536, thinking: true },
  { id: 'gemini-3-flash', displayName: 'Gemini 3 Flash', family: 'gemini', contextWindow: 1_048_576, maxOutputTokens: 65_536, thinking: true },
  { id: 'gpt-oss-120b-medium', displayName: 'GPT-OSS 120B (Medium)', family: 'gpt', contextWindow: 114_000, maxOutputTokens: 32_768, thinking: true },
  { id: 'gemini-3.1-flash-lite', displayName: 'Gemini 3.1 Flash Lite', family: 'gemini', contextWindow: 1_048_576, maxOutputTokens: 65_536, webSearch: true },
  { id: 'gemini-3.1-flash-image', displayName: 'Gemini 3.1 Flash Image', family: 'gemini', imageGeneration: true },
];

/** The image model /v1/images/generate uses when the request names none (the catalog's, Sept 2026). */
export const DEFAULT_IMAGE_MODEL = 'gemini-3.1-flash-image';

/**
 * When a model is exhausted on every account (§10.5, moved to today's ids). Tried once, never
 * chained. config.fallbackMap entries win.
 */
export const DEFAULT_FALLBACKS: Readonly<Record<string, string>> = {
  'claude-opus-4-6-thinking': 'gemini-pro-agent',
  'claude-sonnet-4-6': 'gemini-3.8-flash-high',
  'gemini-pro-agent': 'claude-opus-4-6-thinking',
  'gemini-3.1-pro-high': 'claude-opus-4-6-thinking',
  'gemini-3.1-pro-low': 'claude-sonnet-4-6',
  'gemini-3.8-flash-high': 'claude-sonnet-4-6',
  'gemini-3-flash': 'claude-sonnet-4-6',
  'gpt-oss-120b-medium': 'gemini-3.8-flash-high',
  // The web search model: another Gemini, which can search with Google too.
  'gemini-3.1-flash-lite': 'gemini-3-flash',
  // The older image model: today's draws for it.
  'gemini-3-pro-image': 'gemini-3.1-flash-image',
  'glm-5.3': 'glm-4.7',
  'glm-5.3-flash': 'glm-4.7',
  'glm-5.2': 'glm-4.7',
  'glm-5.1': 'glm-4.7',
  'glm-5': 'glm-4.7',
  'glm-5-turbo': 'glm-4.7',
  'glm-4.7': 'glm-4.6',
  'glm-4.6': 'glm-4.5',
};

/**
 * The built-in entry an Antigravity id the map does not name follows (agy lists -low/-medium tiers
 * and older flash generations beside the ones named): its family and size. Image models have none.
 */
function fallbackKind(id: string): string | null {
  if (id.includes('image')) return null;
  if (id.startsWith('claude-opus-')) return 'claude-opus-4-6-thinking';
  if (id.startsWith('claude-')) return 'claude-sonnet-4-6';
  if (id.startsWith('gpt-')) return 'gpt-oss-120b-medium';
  if (/^gemini-(.*-)?pro\b/.test(id)) return 'gemini-pro-agent';
  if (/^gemini-.*flash/.test(id) && !id.includes('lite')) return 'gemini-3.8-flash-high';
  return null;
}

/** Listed models that can stand in for a built-in Gemini fallback target gone from the catalog, best first. */
const GEMINI_STAND_INS: Array<[RegExp, RegExp[]]> = [
  [/pro/, [/^gemini-pro-agent/, /^gemini-[\d.]+-pro-high$/, /^gemini-[\d.]+-pro/]],
  [/flash/, [/^gemini-[\d.]+-flash-high$/, /^gemini-[\d.]+-flash$/, /^gemini-[\d.]+-flash-(?!.*(lite|image))/]],
];

/** Ids Claude Code's /model picker knows, listed first in /v1/models (gateway discovery keeps claude-*). */
export const PICKER_MODELS: ReadonlyArray<{ id: string; name: string; alias: 'opus' | 'sonnet' | 'haiku'; created: string }> = [
  { id: 'claude-opus-4-8', name: 'Claude Opus 4.8', alias: 'opus', created: '2026-09-01T00:00:00Z' },
  { id: 'claude-sonnet-5', name: 'Claude Sonnet 5', alias: 'sonnet', created: '2026-08-01T00:00:00Z' },
  { id: 'claude-opus-4-6', name: 'Claude Opus 4.6', alias: 'opus', created: '2026-02-05T00:00:00Z' },
  { id: 'claude-sonnet-4-6', name: 'Claude Sonnet 4.6', alias: 'sonnet', created: '2026-02-17T00:00:00Z' },
  { id: 'claude-sonnet-4-5-20250929', name: 'Claude Sonnet 4.5', alias: 'sonnet', created: '2025-09-29T00:00:00Z' },
  { id: 'claude-haiku-4-5-20251001', name: 'Claude Haiku 4.5', alias: 'haiku', created: '2025-10-01T00:00:00Z' },
];


/** Which of Claude Code's tiers a name means, or null when it is not a Claude Code name. */
export function claudeTier(id: string): 'opus' | 'sonnet' | 'haiku' | null {
  const s = id.toLowerCase();
  if (s === 'opus' || s === 'sonnet' || s === 'haiku') return s;
  if (!s.startsWith('claude-')) return null;
  if (s.includes('opus')) return 'opus';
  if (s.includes('haiku')) return 'haiku';
  // claude-3-7-sonnet-latest, dated sonnets, and any other claude-* name: the everyday model.
  return 'sonnet';
}

/** Strips what only the client cares about: `[1m]`, surrounding space. */
export function normalizeModelId(id: string): string {
  return id.trim().replace(ONE_M_SUFFIX, '');
}

export interface Catalog {
  /**
   * Routes a client model. `available` = providers with at least one account that may serve.
   * Returns null when no provider of the pool can serve the id.
   */
  resolve(clientModel: string, available: ReadonlySet<ProviderId>): Route | null;
  /** The fallback upstream model for an exhausted one, or null. */
  fallbackFor(upstreamModel: string): string | null;
  /**
   * The route of that fallback, or null. Resolved as an upstream name: MODEL_MAP renames what
   * clients ask for, not the fallback map's targets.
   */
  fallbackRoute(upstreamModel: string, available: ReadonlySet<ProviderId>): Route | null;
  /**
   * The route for a request whose only tool is Anthropic's web search: Antigravity's search model
   * (`webSearchModelIds`, else a Gemini flash model) whenever the pool has Antigravity accounts,
   * whatever model was asked for (a GLM session searches with Google too), else the route as it is.
   */
  webSearchRoute(route: Route, available: ReadonlySet<ProviderId>): Route;
  /**
   * The image model to draw with when a request names none: DEFAULT_IMAGE_MODEL while served, else
   * the first the catalog lists; null when no provider of the pool draws.
   */
  imageModel(available: ReadonlySet<ProviderId>): string | null;
  /**
   * Whether the model a client names draws images: false for one the catalog lists without
   * imageGeneration (opus, glm-4.6), null when it cannot tell (not listed, or not routable here).
   */
  drawsImages(clientModel: string, available: ReadonlySet<ProviderId>): boolean | null;
  /**
   * Accounts of the provider whose own discovered list lacks a model another account lists (a tier
   * without it): not to be picked for it. Empty when nobody lists the model (the upstream decides).
   */
  accountsLacking(provider: ProviderId, upstreamModel: string): ReadonlySet<string>;
  /** Records what an account's provider says it serves. */
  setDiscovered(accountId: string, provider: ProviderId, models: readonly ModelInfo[]): void;
  /** Forgets accounts that are gone. */
  retainAccounts(ids: ReadonlySet<string>): void;
  /** Known models of a provider: discovered union, else the built-in list. */
  modelsOf(provider: ProviderId): readonly ModelInfo[];
  /** /v1/models entries, picker ids first, with limits from the routed upstream model. */
  listModels(available: ReadonlySet<ProviderId>, extra?: (route: Route) => Record<string, unknown>): ModelEntry[];
  /**
   * GET /v1/models/{id}: the listed entry of that id, else, for any name /v1/messages would route, an
   * entry under the name asked for (as Anthropic answers for an alias) with the model that serves it;
   * null when nothing in the pool would, or when it would go to Antigravity as a name its listed
   * catalog lacks (Google's 404).
   */
  describeModel(id: string, available: ReadonlySet<ProviderId>, extra?: (route: Route) => Record<string, unknown>): ModelEntry | null;
}

export function createCatalog(config: Readonly<Config>, builtin: Partial<Record<ProviderId, readonly ModelInfo[]>> = {}): Catalog {
  const modelMap = new Map(Object.entries(config.modelMap).map(([k, v]) => [k.toLowerCase(), v]));
  // Keyed lower-case: upstream ids come as the catalog spells them, the user's keys as typed.
  const fallbacks = new Map<string, string>();
  for (const [k, v] of [...Object.entries(DEFAULT_FALLBACKS), ...Object.entries(config.fallbackMap)]) fallbacks.set(k.toLowerCase(), v);
  const userFallbacks = new Set(Object.keys(config.fallbackMap).map((k) => k.toLowerCase()));
  const discovered = new Map<string, { provider: ProviderId; models: readonly ModelInfo[] }>();
  const known: Record<ProviderId, readonly ModelInfo[]> = {
    antigravity: builtin.antigravity ?? KNOWN_ANTIGRAVITY_MODELS,
    zai: builtin.zai ?? [],
  };
  /** What discovery says, derived once per change: routing asks on every request. */
  interface Derived {
    models: Map<ProviderId, ModelInfo[]>;
    /** Lower-cased id (or an id it replaces) -> the id as the provider spells it. */
    ids: Map<ProviderId, Map<string, string>>;
    targets: Partial<Record<'opus' | 'sonnet' | 'haiku', string>>;
    /** Per provider and lower-cased model: accounts lacking it (only for models some account lists, so bounded). */
    lacking: Map<string, ReadonlySet<string>>;
  }
  let derivedCache: Derived | null = null;

  function derived(): Derived {
    if (derivedCache) return derivedCache;
    const models = new Map<ProviderId, ModelInfo[]>();
    const seen = new Set<string>();
    for (const { provider, models: list } of discovered.values()) {
      const out = models.get(provider) ?? [];
      for (const m of list) {
        const k = `${provider}\u0000${m.id.toLowerCase()}`;
        if (seen.has(k)) continue;
        seen.add(k);
        out.push(m);
      }
      models.set(provider, out);
    }
    const ids = new Map<ProviderId, Map<string, string>>();
    for (const p of ['antigravity', 'zai'] as const) {
      const d = models.get(p);
      const list = d && d.length ? d : known[p];
      const index = new Map<string, string>();
      // Successors first, so an id that is both listed and retired elsewhere goes as listed.
      for (const m of list) for (const old of m.replaces ?? []) index.set(old.toLowerCase(), m.id);
      for (const m of list) index.set(m.id.toLowerCase(), m.id);
      ids.set(p, index);
    }
    derivedCache = { models, ids, targets: {}, lacking: new Map() };
    return derivedCache;
  }

  function modelsOf(provider: ProviderId): readonly ModelInfo[] {
    const d = derived().models.get(provider);
    return d && d.length ? d : known[provider];
  }

  /** The provider's own spelling of an id it serves (or of one it retired), else undefined. */
  function servedIn(provider: ProviderId, id: string): string | undefined {
    return derived().ids.get(provider)!.get(id.toLowerCase());
  }

  function servedBy(id: string, available: ReadonlySet<ProviderId>): Route | null {
    for (const p of available) {
      const hit = servedIn(p, id);
      if (hit !== undefined) return route(p, hit);
    }
    return null;
  }

  /**
   * Google's runtime ids carry the thinking tier (gemini-3.8-flash-high, gpt-oss-120b-medium; §7.10):
   * an id named without it goes to its served tier, the highest first, as agy's default is -high.
   */
  function servedTier(id: string): string | undefined {
    if (familyOf(id) !== 'gemini' && familyOf(id) !== 'gpt') return undefined;
    if (/-(low|medium|high)$/i.test(id)) return undefined;
    for (const tier of ['high', 'medium', 'low']) {
      const hit = servedIn('antigravity', `${id}-${tier}`);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  /** The Antigravity id for a Claude Code tier: the default while it is served, else the newest alike. */
  function antigravityTarget(tier: 'opus' | 'sonnet' | 'haiku'): string {
    const d = derived();
    const cached = d.targets[tier];
    if (cached !== undefined) return cached;
    const want = ANTIGRAVITY_ALIASES[tier];
    let target: string = want;
    if (servedIn('antigravity', want) === undefined) {
      const ids = modelsOf('antigravity')
        .map((m) => m.id)
        .sort((a, b) => compareVersions(b, a));
      const hit = TIER_PATTERNS[tier].map((re) => ids.find((id) => re.test(id))).find((x) => x !== undefined);
      if (hit) target = hit;
      else if (tier !== 'sonnet' && servedIn('antigravity', ANTIGRAVITY_ALIASES.sonnet) !== undefined) target = ANTIGRAVITY_ALIASES.sonnet;
    }
    d.targets[tier] = target;
    return target;
  }

  const NONE: ReadonlySet<string> = new Set();

  function accountsLacking(provider: ProviderId, upstreamModel: string): ReadonlySet<string> {
    const d = derived();
    const s = upstreamModel.toLowerCase();
    const key = `${provider}\u0000${s}`;
    const cached = d.lacking.get(key);
    if (cached) return cached;
    // Nobody's listing names it (an index lookup: this runs for every request, listed or not).
    if (!d.models.get(provider)?.length || servedIn(provider, s) === undefined) return NONE;
    const lists = (m: ModelInfo): boolean => m.id.toLowerCase() === s || (m.replaces?.some((r) => r.toLowerCase() === s) ?? false);
    const out = new Set<string>();
    for (const [accountId, a] of discovered) if (a.provider === provider && !a.models.some(lists)) out.add(accountId);
    d.lacking.set(key, out);
    return out;
  }

  function route(provider: ProviderId, upstreamModel: string): Route {
    return { provider, upstreamModel, family: familyOf(upstreamModel) };
  }

  /** A Claude Code tier on one provider: Antigravity's target, or for Z.AI the Claude name (it maps those) or its GLM alias. */
  function tierRoute(provider: ProviderId, tier: 'opus' | 'sonnet' | 'haiku', id: string): Route {
    if (provider === 'antigravity') return route('antigravity', antigravityTarget(tier));
    const s = id.toLowerCase();
    return route('zai', s.startsWith('claude-') ? s : ZAI_ALIASES[tier]);
  }

  /** A name past MODEL_MAP -> its route: served ids as the provider spells them, Claude Code's names by tier. */
  function resolveName(name: string, available: ReadonlySet<ProviderId>): Route | null {
    let id = normalizeModelId(name);
    const prefix = PROVIDER_PREFIX.exec(id);
    if (prefix) {
      const explicit = prefix[1]!.toLowerCase() as ProviderId;
      if (!available.has(explicit)) return null;
      id = id.slice(prefix[0].length);
      const hit = servedIn(explicit, id) ?? (explicit === 'antigravity' ? servedTier(id) : undefined);
      if (hit !== undefined) return route(explicit, hit);
      const tier = claudeTier(id);
      return tier ? tierRoute(explicit, tier, id) : route(explicit, id);
    }
    // A Claude Code name that is also a real upstream id (claude-sonnet-4-6 on Antigravity) goes as is.
    const direct = servedBy(id, available);
    if (direct) return direct;
    const tiered = available.has('antigravity') ? servedTier(id) : undefined;
    if (tiered !== undefined) return route('antigravity', tiered);
    const tier = claudeTier(id);
    if (tier) {
      if (available.has('antigravity')) return tierRoute('antigravity', tier, id);
      if (available.has('zai')) return tierRoute('zai', tier, id);
      return null;
    }
    const fam = familyOf(id);
    if (fam === 'glm') return available.has('zai') ? route('zai', id) : null;
    if (fam === 'gemini' || fam === 'gpt') return available.has('antigravity') ? route('antigravity', id) : null;
    // Unknown ids go to whoever can try them; the upstream answers not_found if it cannot.
    if (available.has('antigravity')) return route('antigravity', id);
    if (available.has('zai')) return route('zai', id);
    return null;
  }

  function resolve(clientModel: string, available: ReadonlySet<ProviderId>): Route | null {
    const id = normalizeModelId(clientModel);
    // Applied once: a target is resolved as a name, never mapped again (a cycle cannot loop).
    const mapped = modelMap.size ? (modelMap.get(clientModel.trim().toLowerCase()) ?? modelMap.get(id.replace(PROVIDER_PREFIX, '').toLowerCase())) : undefined;
    return resolveName(mapped ?? id, available);
  }

  function webSearchRoute(r: Route, available: ReadonlySet<ProviderId>): Route {
    if (!available.has('antigravity')) return r;
    const m = modelsOf('antigravity').find((x) => x.webSearch);
    if (m) return route('antigravity', m.id);
    // No search model listed: a Gemini flash model searches with Google too; Claude behind Google cannot.
    const flash = antigravityTarget('haiku');
    const served = familyOf(flash) === 'gemini' && modelsOf('antigravity').some((x) => x.id === flash);
    return served ? route('antigravity', flash) : r;
  }

  function imageModel(available: ReadonlySet<ProviderId>): string | null {
    if (!available.has('antigravity')) return null;
    const drawing = modelsOf('antigravity').filter((m) => m.imageGeneration);
    return (drawing.find((m) => m.id === DEFAULT_IMAGE_MODEL) ?? drawing[0])?.id ?? null;
  }

  /** The fallback map key an exhausted model follows: its own, else (listed on Antigravity) its kind's. */
  function fallbackKey(upstreamModel: string): string | null {
    const s = upstreamModel.toLowerCase();
    if (fallbacks.has(s)) return s;
    const kind = servedIn('antigravity', s) !== undefined ? fallbackKind(s) : null;
    return kind !== null && fallbacks.has(kind) ? kind : null;
  }

  function fallbackFor(upstreamModel: string): string | null {
    const key = fallbackKey(upstreamModel);
    const f = key !== null ? fallbacks.get(key) : undefined;
    return f && f.toLowerCase() !== upstreamModel.toLowerCase() ? f : null;
  }

  /**
   * A built-in Gemini target the accounts' catalogs no longer list (ids move every few months) would
   * be a 404 about a model the client never asked for: the newest listed one of its kind stands in,
   * or there is no fallback. Claude targets resolve by tier first (resolveName), so only one whose
   * tier has no listed model at all gets here, and has none.
   */
  function standIn(target: string, upstreamModel: string): string | null {
    const s = target.toLowerCase();
    const ids = modelsOf('antigravity')
      .map((m) => m.id)
      .filter((id) => id.toLowerCase() !== upstreamModel.toLowerCase())
      .sort((a, b) => compareVersions(b, a));
    for (const [kind, patterns] of GEMINI_STAND_INS) {
      if (!kind.test(s)) continue;
      for (const re of patterns) {
        const hit = ids.find((id) => re.test(id.toLowerCase()));
        if (hit) return hit;
      }
      return null;
    }
    return null;
  }

  function fallbackRoute(upstreamModel: string, available: ReadonlySet<ProviderId>): Route | null {
    const target = fallbackFor(upstreamModel);
    if (!target) return null;
    const r = resolveName(target, available);
    const builtIn = !userFallbacks.has(fallbackKey(upstreamModel)!);
    if (r && builtIn && r.provider === 'antigravity' && derived().models.get('antigravity')?.length && servedIn('antigravity', r.upstreamModel) === undefined) {
      const other = standIn(r.upstreamModel, upstreamModel);
      return other ? route('antigravity', other) : null;
    }
    return r;
  }

  function entry(id: string, name: string, created: string, info: ModelInfo | undefined): ModelEntry {
    const e: ModelEntry = { type: 'model', id, display_name: name, created_at: created };
    if (info?.contextWindow) e.max_input_tokens = info.contextWindow;
    if (info?.maxOutputTokens) e.max_tokens = info.maxOutputTokens;
    if (info?.imageGeneration) e.image_generation = true;
    return e;
  }

  function infoOf(r: Route): ModelInfo | undefined {
    const s = r.upstreamModel.toLowerCase();
    return modelsOf(r.provider).find((m) => m.id.toLowerCase() === s);
  }

  function listModels(available: ReadonlySet<ProviderId>, extra?: (route: Route) => Record<string, unknown>): ModelEntry[] {
    const out: ModelEntry[] = [];
    const seen = new Set<string>();
    const push = (e: ModelEntry, r: Route | null): void => {
      if (seen.has(e.id.toLowerCase())) return;
      seen.add(e.id.toLowerCase());
      if (r) {
        e.upstream_model = r.upstreamModel;
        e.provider = r.provider;
        if (extra) Object.assign(e, extra(r));
      }
      out.push(e);
    };
    for (const p of PICKER_MODELS) {
      const r = resolve(p.id, available);
      if (r) push(entry(p.id, p.name, p.created, infoOf(r)), r);
    }
    for (const [alias, target] of modelMap) {
      const r = resolve(alias, available);
      if (r) push(entry(alias, `${alias} (${target})`, '2026-01-01T00:00:00Z', infoOf(r)), r);
    }
    for (const p of ['antigravity', 'zai'] as const) {
      if (!available.has(p)) continue;
      for (const m of modelsOf(p)) push(entry(m.id, m.displayName, '2026-01-01T00:00:00Z', m), route(p, m.id));
    }
    return out;
  }

  function describeModel(id: string, available: ReadonlySet<ProviderId>, extra?: (route: Route) => Record<string, unknown>): ModelEntry | null {
    const list = listModels(available, extra);
    const exact = list.find((m) => m.id === id);
    if (exact) return exact;
    const r = resolve(id, available);
    if (!r) return null;
    const target = list.find((m) => m.id === r.upstreamModel && m.provider === r.provider);
    // Google serves only what it lists: once a catalog is known, any other name is its 404 on
    // /v1/messages, so it is not said to exist here either (Z.AI serves names it does not list).
    if (!target && r.provider === 'antigravity' && derived().models.get('antigravity')?.length && servedIn('antigravity', r.upstreamModel) === undefined) {
      return null;
    }
    const e: ModelEntry = target ? { ...target } : entry(id, id, '2026-01-01T00:00:00Z', infoOf(r));
    e.id = id;
    e.display_name = `${id} (${r.upstreamModel})`;
    e.upstream_model = r.upstreamModel;
    e.provider = r.provider;
    if (!target && extra) Object.assign(e, extra(r));
    return e;
  }

  return {
    fallbackRoute,
    describeModel,
    accountsLacking,
    resolve,
    webSearchRoute,
    imageModel,
    drawsImages(clientModel, available) {
      const r = resolve(clientModel, available);
      const info = r ? infoOf(r) : undefined;
      return info ? info.imageGeneration === true : null;
    },
    fallbackFor,
    setDiscovered(accountId, provider, models) {
      if (!models.length) return;
      discovered.set(accountId, { provider, models });
      derivedCache = null;
    },
    retainAccounts(ids) {
      for (const id of discovered.keys()) {
        if (!ids.has(id)) {
          discovered.delete(id);
          derivedCache = null;
        }
      }
    },
    modelsOf,
    listModels,
  };
}
