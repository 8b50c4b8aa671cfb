import { describe, expect, test } from 'bun:test';
import { claudeTier, createCatalog, normalizeModelId } from '../../src/gateway/catalog.ts';
import type { ProviderId } from '../../src/providers/provider.ts';
import { KNOWN_ZAI_MODELS } from '../../src/providers/zai/models.ts';
import { testConfig } from './helpers.ts';

const BOTH = new Set<ProviderId>(['antigravity', 'zai']);
const AG = new Set<ProviderId>(['antigravity']);
const ZAI = new Set<ProviderId>(['zai']);

function catalog(over: Parameters<typeof testConfig>[0] = {}) {
  return createCatalog(testConfig(over), { zai: KNOWN_ZAI_MODELS });
}

describe('resolve', () => {
  const rows: Array<[string, Set<ProviderId>, string | null, string | null]> = [
    // client id, providers in the pool, provider, upstream model
    ['claude-opus-4-8', AG, 'antigravity', 'claude-opus-4-6-thinking'],
    ['claude-opus-4-8[1m]', AG, 'antigravity', 'claude-opus-4-6-thinking'],
    ['opus', AG, 'antigravity', 'claude-opus-4-6-thinking'],
    ['claude-opus-4-1-20250805', AG, 'antigravity', 'claude-opus-4-6-thinking'],
    ['claude-sonnet-4-5-20250929', AG, 'antigravity', 'claude-sonnet-4-6'],
    ['claude-sonnet-5', AG, 'antigravity', 'claude-sonnet-4-6'],
    ['sonnet', AG, 'antigravity', 'claude-sonnet-4-6'],
    ['claude-3-7-sonnet-latest', AG, 'antigravity', 'claude-sonnet-4-6'],
    ['claude-haiku-4-5-20251001', AG, 'antigravity', 'gemini-3-flash'],
    ['haiku', AG, 'antigravity', 'gemini-3-flash'],
    // Real Antigravity ids go through untouched.
    ['claude-sonnet-4-6', AG, 'antigravity', 'claude-sonnet-4-6'],
    ['claude-opus-4-6-thinking', AG, 'antigravity', 'claude-opus-4-6-thinking'],
    ['gemini-3.1-pro-low', AG, 'antigravity', 'gemini-3.1-pro-low'],
    ['antigravity/gemini-3-flash', BOTH, 'antigravity', 'gemini-3-flash'],
    // Z.AI-only pools: Claude names go to Z.AI as they are (it maps them); bare aliases to GLM.
    ['claude-sonnet-4-5-20250929', ZAI, 'zai', 'claude-sonnet-4-5-20250929'],
    ['claude-opus-4-8[1m]', ZAI, 'zai', 'claude-opus-4-8'],
    ['haiku', ZAI, 'zai', 'glm-4.5-air'],
    ['opus', ZAI, 'zai', 'glm-4.7'],
    // GLM ids always go to Z.AI, Claude names prefer Antigravity in a mixed pool.
    ['glm-4.7', BOTH, 'zai', 'glm-4.7'],
    ['GLM-5.1', ZAI, 'zai', 'GLM-5.1'],
    ['claude-opus-4-8', BOTH, 'antigravity', 'claude-opus-4-6-thinking'],
    ['zai/claude-opus-4-8', BOTH, 'zai', 'claude-opus-4-8'],
    // Nobody can serve it.
    ['glm-4.7', AG, null, null],
    ['gemini-3-flash', ZAI, null, null],
    ['claude-opus-4-8', new Set(), null, null],
  ];
  for (const [id, avail, provider, upstream] of rows) {
    test(`${id} with [${[...avail].join(',')}] -> ${provider ?? 'nobody'} ${upstream ?? ''}`, () => {
      const r = catalog().resolve(id, avail);
      if (provider === null) expect(r).toBeNull();
      else expect(r).toMatchObject({ provider, upstreamModel: upstream });
    });
  }

  test('MODEL_MAP wins over the built-in aliases, and may name the provider', () => {
    const c = catalog({ modelMap: { 'claude-opus-4-8': 'gemini-pro-agent', haiku: 'zai/glm-4.5-air', 'my-model': 'glm-4.6' } });
    expect(c.resolve('claude-opus-4-8', BOTH)).toMatchObject({ provider: 'antigravity', upstreamModel: 'gemini-pro-agent', family: 'gemini' });
    expect(c.resolve('claude-opus-4-8[1m]', BOTH)).toMatchObject({ upstreamModel: 'gemini-pro-agent' });
    expect(c.resolve('haiku', BOTH)).toMatchObject({ provider: 'zai', upstreamModel: 'glm-4.5-air' });
    expect(c.resolve('my-model', BOTH)).toMatchObject({ provider: 'zai', upstreamModel: 'glm-4.6' });
  });

  test('a discovered id routes to the provider that listed it', () => {
    const c = catalog();
    c.setDiscovered('acc_1', 'antigravity', [{ id: 'claude-opus-4-7-thinking', displayName: 'Opus 4.7', family: 'claude' }]);
    expect(c.resolve('claude-opus-4-7-thinking', BOTH)).toMatchObject({ provider: 'antigravity', upstreamModel: 'claude-opus-4-7-thinking' });
  });

  test('when discovery no longer lists a default target, the newest id of the same kind takes its place', () => {
    const c = catalog();
    c.setDiscovered('acc_1', 'antigravity', [
      { id: 'claude-opus-4-7-thinking', displayName: 'Opus 4.7', family: 'claude' },
      { id: 'claude-sonnet-4-7', displayName: 'Sonnet 4.7', family: 'claude' },
      { id: 'gemini-3.8-flash-low', displayName: 'Flash', family: 'gemini' },
      { id: 'gemini-3.9-flash-low', displayName: 'Flash', family: 'gemini' },
    ]);
    expect(c.resolve('claude-opus-4-8', AG)!.upstreamModel).toBe('claude-opus-4-7-thinking');
    expect(c.resolve('sonnet', AG)!.upstreamModel).toBe('claude-sonnet-4-7');
    expect(c.resolve('claude-haiku-4-5', AG)!.upstreamModel).toBe('gemini-3.9-flash-low');
  });

  test("a web search request goes to Antigravity's search model: the discovered one, else the known one", () => {
    const c = catalog();
    const opus = c.resolve('opus', AG)!;
    expect(c.webSearchRoute(opus, AG)).toEqual({ provider: 'antigravity', upstreamModel: 'gemini-3.1-flash-lite', family: 'gemini' });
    c.setDiscovered('acc_1', 'antigravity', [
      { id: 'claude-opus-4-6-thinking', displayName: 'Opus', family: 'claude' },
      { id: 'gemini-3.2-flash-lite', displayName: 'Lite', family: 'gemini', webSearch: true },
    ]);
    expect(c.webSearchRoute(opus, AG).upstreamModel).toBe('gemini-3.2-flash-lite');
    // A GLM session in a pool with Google accounts searches with Google too.
    const glm = c.resolve('glm-4.7', BOTH)!;
    expect(glm.provider).toBe('zai');
    expect(c.webSearchRoute(glm, BOTH).upstreamModel).toBe('gemini-3.2-flash-lite');
    // A Z.AI-only pool sends the tool to Z.AI as it is.
    expect(c.webSearchRoute(glm, ZAI)).toEqual(glm);
    // Discovery lists no search model: a Gemini flash model searches (Claude behind Google cannot)...
    c.setDiscovered('acc_1', 'antigravity', [
      { id: 'claude-opus-4-6-thinking', displayName: 'Opus', family: 'claude' },
      { id: 'gemini-3-flash', displayName: 'Flash', family: 'gemini' },
    ]);
    expect(c.webSearchRoute(opus, AG)).toEqual({ provider: 'antigravity', upstreamModel: 'gemini-3-flash', family: 'gemini' });
    // ...and with no Gemini at all the request stays on its own route.
    c.setDiscovered('acc_1', 'antigravity', [{ id: 'claude-opus-4-6-thinking', displayName: 'Opus', family: 'claude' }]);
    expect(c.webSearchRoute(opus, AG)).toEqual(opus);
  });

  test('the image model: the default while served, else the first the catalog lists, none without Antigravity', () => {
    const c = catalog();
    expect(c.imageModel(AG)).toBe('gemini-3.1-flash-image'); // the built-in list, before discovery
    expect(c.imageModel(ZAI)).toBeNull();
    c.setDiscovered('acc_1', 'antigravity', [
      { id: 'claude-opus-4-6-thinking', displayName: 'Opus', family: 'claude' },
      { id: 'gemini-3-pro-image', displayName: 'Pro Image', family: 'gemini', imageGeneration: true },
      { id: 'gemini-3.1-flash-image', displayName: 'Flash Image', family: 'gemini', imageGeneration: true },
    ]);
    expect(c.imageModel(BOTH)).toBe('gemini-3.1-flash-image');
    c.setDiscovered('acc_1', 'antigravity', [{ id: 'gemini-3-pro-image', displayName: 'Pro Image', family: 'gemini', imageGeneration: true }]);
    expect(c.imageModel(AG)).toBe('gemini-3-pro-image');
    c.setDiscovered('acc_1', 'antigravity', [{ id: 'gemini-3-flash', displayName: 'Flash', family: 'gemini' }]);
    expect(c.imageModel(AG)).toBeNull();
    expect(c.fallbackFor('gemini-3-pro-image')).toBe('gemini-3.1-flash-image');
  });

  test('/v1/models marks the image models', () => {
    const list = catalog().listModels(AG);
    expect(list.find((m) => m.id === 'gemini-3.1-flash-image')!.image_generation).toBe(true);
    expect(list.find((m) => m.id === 'gemini-3-flash')!.image_generation).toBeUndefined();
  });

  test('families follow the upstream model', () => {
    const c = catalog();
    expect(c.resolve('claude-haiku-4-5', AG)!.family).toBe('gemini');
    expect(c.resolve('claude-sonnet-4-5', AG)!.family).toBe('claude');
    expect(c.resolve('glm-4.7', ZAI)!.family).toBe('glm');
  });
});

describe('fallbacks', () => {
  test('built-in map uses today\'s ids, one step only', () => {
    const c = catalog();
    expect(c.fallbackFor('claude-opus-4-6-thinking')).toBe('gemini-pro-agent');
    expect(c.fallbackFor('gemini-pro-agent')).toBe('claude-opus-4-6-thinking');
    expect(c.fallbackFor('claude-sonnet-4-6')).toBe('gemini-3.8-flash-high');
    expect(c.fallbackFor('glm-5.1')).toBe('glm-4.7');
    expect(c.fallbackFor('glm-5.3')).toBe('glm-4.7');
    expect(c.fallbackFor('glm-5.3-flash')).toBe('glm-4.7');
    expect(c.fallbackFor('gemini-3.1-flash-lite')).toBe('gemini-3-flash'); // web search stays on a Gemini
    expect(c.fallbackFor('unknown-model')).toBeNull();
  });
  test('FALLBACK_MAP overrides', () => {
    expect(catalog({ fallbackMap: { 'claude-sonnet-4-6': 'gemini-3-flash' } }).fallbackFor('claude-sonnet-4-6')).toBe('gemini-3-flash');
  });
});

describe('listModels', () => {
  test('Claude Code picker ids come first, then upstream ids, with token limits', () => {
    const list = catalog().listModels(ZAI);
    const ids = list.map((m) => m.id);
    expect(ids[0]).toBe('claude-opus-4-8');
    expect(ids).toContain('claude-haiku-4-5-20251001');
    expect(ids).toContain('glm-4.7');
    const glm = list.find((m) => m.id === 'glm-4.7')!;
    expect(glm.max_input_tokens).toBe(200 * 1024);
    expect(glm.max_tokens).toBe(128 * 1024);
    expect(new Set(ids).size).toBe(ids.length);
  });

  test('extras (quota) are attached per route', () => {
    const list = catalog().listModels(ZAI, () => ({ quota: { remaining_fraction: 0.5 } }));
    expect(list.find((m) => m.id === 'glm-4.7')!.quota).toEqual({ remaining_fraction: 0.5 });
  });

  test('an empty pool lists nothing', () => {
    expect(catalog().listModels(new Set())).toEqual([]);
  });
});

test('helpers: [1m] suffix and tiers', () => {
  expect(normalizeModelId(' claude-opus-4-8[1m] ')).toBe('claude-opus-4-8');
  expect(claudeTier('claude-3-7-sonnet-latest')).toBe('sonnet');
  expect(claudeTier('claude-haiku-4-5')).toBe('haiku');
  expect(claudeTier('glm-4.7')).toBeNull();
});
