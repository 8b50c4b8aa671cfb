import { describe, expect, test } from 'bun:test';
import { claudeTier, compareVersions, createCatalog, normalizeModelId } from '../../src/gateway/catalog.ts';
import { familyOf, type ProviderId } from '../../src/providers/provider.ts';
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
    ['GLM-5.1', ZAI, 'zai', 'glm-5.1'], // spelled as Z.AI lists it
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

  // agy's runtime ids carry the tier (§7.10, models.resp): a client that names the model without it
  // (gemini-3.8-flash, as Google's own docs spell models) would get a 404 for an id nobody serves.
  test('a Google id without its tier goes to the served tier, the highest first', () => {
    const c = catalog();
    c.setDiscovered('acc_1', 'antigravity', [
      'gemini-3.8-flash-high', 'gemini-3.8-flash-medium', 'gemini-3.8-flash-low', 'gemini-3.7-flash-low', 'gemini-pro-agent',
      'gpt-oss-120b-medium', 'gemini-3-flash',
    ].map((id) => ({ id, displayName: id, family: familyOf(id), ...(id === 'gemini-pro-agent' ? { replaces: ['gemini-3.1-pro-high'] } : {}) })));
    expect(c.resolve('gemini-3.8-flash', AG)).toMatchObject({ provider: 'antigravity', upstreamModel: 'gemini-3.8-flash-high' });
    expect(c.resolve('antigravity/gemini-3.8-flash', BOTH)).toMatchObject({ provider: 'antigravity', upstreamModel: 'gemini-3.8-flash-high' });
    expect(c.resolve('gemini-3.7-flash', AG)).toMatchObject({ upstreamModel: 'gemini-3.7-flash-low' });
    expect(c.resolve('gpt-oss-120b', AG)).toMatchObject({ upstreamModel: 'gpt-oss-120b-medium' });
    expect(c.resolve('gemini-3.1-pro', AG)).toMatchObject({ upstreamModel: 'gemini-pro-agent' }); // via the retired -high
    // A served id stays itself; an id with no served tier goes through as asked.
    expect(c.resolve('gemini-3-flash', AG)).toMatchObject({ upstreamModel: 'gemini-3-flash' });
    expect(c.resolve('gemini-9-flash', AG)).toMatchObject({ upstreamModel: 'gemini-9-flash' });
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

  test('an empty discovery answer keeps what the account listed before; a gone account takes its listing along', () => {
    const c = catalog();
    c.setDiscovered('acc_1', 'antigravity', [{ id: 'claude-opus-4-7-thinking', displayName: 'Opus 4.7', family: 'claude' }]);
    c.setDiscovered('acc_1', 'antigravity', []);
    expect(c.modelsOf('antigravity').map((m) => m.id)).toEqual(['claude-opus-4-7-thinking']);
    expect(c.resolve('opus', AG)!.upstreamModel).toBe('claude-opus-4-7-thinking');
    c.retainAccounts(new Set());
    // Back to the built-in list, not an empty catalog.
    expect(c.resolve('opus', AG)!.upstreamModel).toBe('claude-opus-4-6-thinking');
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

  test('whether a named model draws: known from the catalog, unknown (null) for a model it does not list', () => {
    const c = catalog();
    expect(c.drawsImages('gemini-3.1-flash-image', AG)).toBe(true);
    expect(c.drawsImages('opus', AG)).toBe(false);
    expect(c.drawsImages('glm-4.6', ZAI)).toBe(false);
    expect(c.drawsImages('gemini-9-paint-preview', AG)).toBeNull(); // not listed: the upstream decides
    expect(c.drawsImages('glm-4.6', AG)).toBeNull(); // not routable here: the dispatch says so
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
  // agy's recommended list (models.resp, Sept 2026): -low/-medium tiers and older flash generations
  // the built-in map does not name. Their quota group is spent with the one it names, so they go
  // where their kind goes: across the group, never to a sibling that is out too.
  const AGY_LIST = [
    'gemini-3.8-flash-high', 'gemini-3.8-flash-medium', 'gemini-3.8-flash-low', 'gemini-3.7-flash-high', 'gemini-3.7-flash-low',
    'gemini-pro-agent', 'gemini-3.1-pro-low', 'claude-sonnet-4-6', 'claude-opus-4-6-thinking', 'gpt-oss-120b-medium',
    'gemini-3.1-flash-image', 'gemini-3.1-flash-lite',
  ].map((id) => ({ id, displayName: id, family: familyOf(id) }));
  test.each([
    ['gemini-3.8-flash-low', 'claude-sonnet-4-6'],
    ['gemini-3.8-flash-medium', 'claude-sonnet-4-6'],
    ['gemini-3.7-flash-high', 'claude-sonnet-4-6'],
    ['claude-opus-4-7-thinking', 'gemini-pro-agent'],
    ['claude-sonnet-4-7', 'gemini-3.8-flash-high'],
    ['gpt-oss-120b-low', 'gemini-3.8-flash-high'],
  ])('an Antigravity id the map does not name falls back like its kind: %s -> %s', (id, target) => {
    const c = catalog();
    c.setDiscovered('acc_1', 'antigravity', [...AGY_LIST, { id, displayName: id, family: familyOf(id) }]);
    expect(c.fallbackFor(id)).toBe(target);
    expect(c.fallbackRoute(id, AG)).toMatchObject({ provider: 'antigravity', upstreamModel: target });
  });
  test('no kind, no fallback: image models, unknown ids, and ids Antigravity does not list', () => {
    const c = catalog();
    c.setDiscovered('acc_1', 'antigravity', [...AGY_LIST, { id: 'gemini-3.5-flash-image', displayName: 'x', family: 'gemini' }]);
    expect(c.fallbackFor('gemini-3.5-flash-image')).toBeNull();
    expect(c.fallbackFor('unknown-model')).toBeNull();
    expect(c.fallbackFor('glm-9')).toBeNull();
    expect(c.fallbackFor('claude-opus-4-8')).toBeNull(); // a name Z.AI maps itself, not an Antigravity id
  });
  test("a built-in target the pool's accounts no longer list gives way to the newest listed model of its kind", () => {
    const c = catalog();
    c.setDiscovered('acc_1', 'antigravity', [
      'gemini-3.9-flash-high', 'gemini-3.9-flash-low', 'gemini-3.2-pro-high', 'claude-sonnet-4-7', 'claude-opus-4-7-thinking',
    ].map((id) => ({ id, displayName: id, family: familyOf(id) })));
    // claude-sonnet-4-7 goes like claude-sonnet-4-6, to gemini-3.8-flash-high, which is gone: a 404 for a model never asked for.
    expect(c.fallbackRoute('claude-sonnet-4-7', AG)).toMatchObject({ upstreamModel: 'gemini-3.9-flash-high' });
    expect(c.fallbackRoute('claude-opus-4-7-thinking', AG)).toMatchObject({ upstreamModel: 'gemini-3.2-pro-high' });
    expect(c.fallbackRoute('gemini-3.9-flash-low', AG)).toMatchObject({ upstreamModel: 'claude-sonnet-4-7' });
    // Nothing of the kind listed: no fallback (the client hears about its own model) rather than a dead id.
    const bare = catalog();
    bare.setDiscovered('acc_1', 'antigravity', [{ id: 'claude-sonnet-4-6', displayName: 's', family: 'claude' }]);
    expect(bare.fallbackRoute('claude-sonnet-4-6', AG)).toBeNull();
    // The user's own FALLBACK_MAP target is theirs to choose: passed as written.
    const mine = catalog({ fallbackMap: { 'claude-sonnet-4-6': 'gemini-4-flash' } });
    mine.setDiscovered('acc_1', 'antigravity', [{ id: 'claude-sonnet-4-6', displayName: 's', family: 'claude' }]);
    expect(mine.fallbackRoute('claude-sonnet-4-6', AG)).toMatchObject({ upstreamModel: 'gemini-4-flash' });
  });
  test('FALLBACK_MAP overrides', () => {
    expect(catalog({ fallbackMap: { 'claude-sonnet-4-6': 'gemini-3-flash' } }).fallbackFor('claude-sonnet-4-6')).toBe('gemini-3-flash');
  });
  test("a fallback target is an upstream model: MODEL_MAP (which renames clients' names) does not apply to it", () => {
    const c = catalog({ modelMap: { 'claude-sonnet-4-6': 'zai/glm-4.7' } });
    expect(c.resolve('claude-sonnet-4-6', BOTH)).toMatchObject({ provider: 'zai', upstreamModel: 'glm-4.7' });
    expect(c.fallbackRoute('gemini-3-flash', BOTH)).toMatchObject({ provider: 'antigravity', upstreamModel: 'claude-sonnet-4-6' });
    expect(c.fallbackRoute('GLM-5.1', ZAI)).toMatchObject({ provider: 'zai', upstreamModel: 'glm-4.7' });
    expect(c.fallbackRoute('glm-4.7', AG)).toBeNull();
    expect(c.fallbackRoute('unknown-model', BOTH)).toBeNull();
  });
  test('FALLBACK_MAP keys match whatever capitals the user wrote them in (upstream ids are as the catalog spells them)', () => {
    const c = catalog({ fallbackMap: { 'GLM-5.1': 'glm-4.5', 'Claude-Sonnet-4-6': 'gemini-3-flash' } });
    expect(c.fallbackFor(c.resolve('GLM-5.1', ZAI)!.upstreamModel)).toBe('glm-4.5');
    expect(c.fallbackFor('claude-sonnet-4-6')).toBe('gemini-3-flash');
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

describe('names as clients spell them', () => {
  test('a served id in other capitals goes upstream as the catalog spells it (Google knows only that spelling)', () => {
    const c = catalog();
    expect(c.resolve('GEMINI-3-FLASH', AG)).toMatchObject({ provider: 'antigravity', upstreamModel: 'gemini-3-flash' });
    expect(c.resolve('Claude-Sonnet-4-6', BOTH)).toMatchObject({ provider: 'antigravity', upstreamModel: 'claude-sonnet-4-6' });
    // Z.AI's ids too, so GLM-4.7 and glm-4.7 share one set of limits and /v1/models entry.
    expect(c.resolve('GLM-4.7', ZAI)).toMatchObject({ provider: 'zai', upstreamModel: 'glm-4.7' });
    expect(c.resolve(' GLM-5.2[1m] ', BOTH)).toMatchObject({ provider: 'zai', upstreamModel: 'glm-5.2' });
    // A Claude name in capitals is still a Claude name for Z.AI, not its bare-alias GLM.
    expect(c.resolve('CLAUDE-OPUS-4-8', ZAI)).toMatchObject({ provider: 'zai', upstreamModel: 'claude-opus-4-8' });
  });

  test('an id Google deprecated goes to the id it names as its successor', () => {
    const c = catalog();
    // Before discovery: the built-in list knows gemini-3.1-pro-high became gemini-pro-agent.
    expect(c.resolve('gemini-3.1-pro-high', AG)).toMatchObject({ provider: 'antigravity', upstreamModel: 'gemini-pro-agent' });
    c.setDiscovered('acc_1', 'antigravity', [
      { id: 'gemini-pro-agent', displayName: 'Gemini 3.1 Pro (High)', family: 'gemini', replaces: ['gemini-3.1-pro-high'] },
      { id: 'gemini-3.9-pro', displayName: 'Gemini 3.9 Pro', family: 'gemini', replaces: ['gemini-3.1-pro-low'] },
    ]);
    expect(c.resolve('gemini-3.1-pro-high', AG)!.upstreamModel).toBe('gemini-pro-agent');
    expect(c.resolve('Gemini-3.1-Pro-Low', BOTH)!.upstreamModel).toBe('gemini-3.9-pro');
  });

  test('the newest of a kind is compared by version number, not as text (4-10 is newer than 4-9)', () => {
    const c = catalog();
    c.setDiscovered('acc_1', 'antigravity', [
      { id: 'claude-opus-4-9-thinking', displayName: 'Opus 4.9', family: 'claude' },
      { id: 'claude-opus-4-10-thinking', displayName: 'Opus 4.10', family: 'claude' },
      { id: 'gemini-3.9-flash', displayName: 'Flash 3.9', family: 'gemini' },
      { id: 'gemini-3.10-flash', displayName: 'Flash 3.10', family: 'gemini' },
    ]);
    expect(c.resolve('opus', AG)!.upstreamModel).toBe('claude-opus-4-10-thinking');
    expect(c.resolve('haiku', AG)!.upstreamModel).toBe('gemini-3.10-flash');
  });
});

describe('MODEL_MAP targets', () => {
  test("a target that is one of Claude Code's names resolves like that name (not sent to Google as is)", () => {
    const c = catalog({ modelMap: { 'claude-opus-4-8': 'claude-sonnet-4-5', opus: 'sonnet', big: 'antigravity/opus' } });
    expect(c.resolve('claude-opus-4-8', AG)).toMatchObject({ provider: 'antigravity', upstreamModel: 'claude-sonnet-4-6' });
    expect(c.resolve('opus', AG)).toMatchObject({ provider: 'antigravity', upstreamModel: 'claude-sonnet-4-6' });
    expect(c.resolve('opus', ZAI)).toMatchObject({ provider: 'zai', upstreamModel: 'glm-4.7' });
    expect(c.resolve('big', BOTH)).toMatchObject({ provider: 'antigravity', upstreamModel: 'claude-opus-4-6-thinking' });
  });

  test('the map is applied once: a cycle ends after one step, and a target in capitals is spelled as served', () => {
    const c = catalog({ modelMap: { a: 'b', b: 'a', fast: 'GLM-4.5-AIR' } });
    expect(c.resolve('a', BOTH)).toMatchObject({ upstreamModel: 'b' });
    expect(c.resolve('b', BOTH)).toMatchObject({ upstreamModel: 'a' });
    expect(c.resolve('fast', BOTH)).toMatchObject({ provider: 'zai', upstreamModel: 'glm-4.5-air' });
  });

  test('a target only another provider serves is no route in a pool without it', () => {
    const c = catalog({ modelMap: { 'claude-opus-4-8': 'glm-4.7' } });
    expect(c.resolve('claude-opus-4-8', AG)).toBeNull();
    expect(c.resolve('claude-opus-4-8', BOTH)).toMatchObject({ provider: 'zai', upstreamModel: 'glm-4.7' });
  });
});

describe('describeModel (GET /v1/models/{id})', () => {
  test('a listed id is its list entry', () => {
    const c = catalog();
    expect(c.describeModel('glm-4.7', ZAI)).toMatchObject({ type: 'model', id: 'glm-4.7', display_name: 'GLM-4.7', provider: 'zai' });
  });

  test('any name /v1/messages accepts is described under the name asked for, with what serves it', () => {
    const c = catalog();
    // Z.AI-only pool: Claude names go to Z.AI as they are, and are not listed themselves.
    expect(c.describeModel('claude-haiku-4-5', ZAI)).toMatchObject({ type: 'model', id: 'claude-haiku-4-5', provider: 'zai', upstream_model: 'claude-haiku-4-5' });
    expect(c.describeModel('GLM-4.7', ZAI)).toMatchObject({ id: 'GLM-4.7', upstream_model: 'glm-4.7', max_input_tokens: 200 * 1024 });
    expect(c.describeModel('opus', AG)).toMatchObject({ id: 'opus', upstream_model: 'claude-opus-4-6-thinking', max_tokens: 64_000 });
    expect(c.describeModel('glm-4.7', AG)).toBeNull();
  });

  test("a name Google's listed catalog lacks is not described: /v1/messages would be Google's 404 for it", () => {
    const c = catalog({ modelMap: { 'my-model': 'gemini-3-flash' } });
    const info = (id: string) => ({ id, displayName: id, family: familyOf(id) });
    c.setDiscovered('acct', 'antigravity', [info('gemini-3-flash'), info('claude-sonnet-4-6'), info('claude-opus-4-6-thinking')]);
    expect(c.describeModel('gpt-4o', AG)).toBeNull();
    expect(c.describeModel('nonexistent-xyz', BOTH)).toBeNull();
    // What does get served keeps its entry: tiers, MODEL_MAP names, the provider's own ids.
    expect(c.describeModel('opus', AG)).toMatchObject({ id: 'opus', upstream_model: 'claude-opus-4-6-thinking' });
    expect(c.describeModel('my-model', AG)).toMatchObject({ id: 'my-model', upstream_model: 'gemini-3-flash' });
    expect(c.describeModel('antigravity/gemini-3-flash', AG)).toMatchObject({ upstream_model: 'gemini-3-flash' });
    // Before any catalog was listed there is nothing to tell it by: described as before.
    expect(catalog().describeModel('gpt-4o', AG)).toMatchObject({ provider: 'antigravity', upstream_model: 'gpt-4o' });
  });
});

describe('accountsLacking', () => {
  test('the accounts whose own discovered list lacks a model some other account lists', () => {
    const c = catalog();
    const info = (id: string, replaces?: string[]) => ({ id, displayName: id, family: 'other' as const, ...(replaces ? { replaces } : {}) });
    c.setDiscovered('pro', 'antigravity', [info('claude-opus-4-6-thinking'), info('gemini-pro-agent', ['gemini-3.1-pro-high'])]);
    c.setDiscovered('free', 'antigravity', [info('gemini-3-flash')]);
    c.setDiscovered('z', 'zai', [info('glm-4.7')]);
    expect([...c.accountsLacking('antigravity', 'claude-opus-4-6-thinking')]).toEqual(['free']);
    expect([...c.accountsLacking('antigravity', 'gemini-pro-agent')]).toEqual(['free']);
    expect([...c.accountsLacking('antigravity', 'gemini-3-flash')]).toEqual(['pro']);
    // Nobody lists it: no account is ruled out (the upstream answers for it).
    expect(c.accountsLacking('antigravity', 'gemini-9')).toEqual(new Set());
    expect(c.accountsLacking('zai', 'glm-4.7')).toEqual(new Set());
    // A new listing changes the answer.
    c.setDiscovered('free', 'antigravity', [info('gemini-3-flash'), info('claude-opus-4-6-thinking')]);
    expect(c.accountsLacking('antigravity', 'claude-opus-4-6-thinking')).toEqual(new Set());
  });
});

describe('compareVersions orders model ids by their numbers, not as text', () => {
  const rows: Array<[string, string, '<' | '>' | '=']> = [
    ['claude-opus-4-9', 'claude-opus-4-10', '<'],
    ['gemini-3.9-flash', 'gemini-3.10-flash', '<'],
    ['gemini-3.8-flash-high', 'gemini-3.8-flash-low', '<'],
    ['glm-4.7', 'glm-4.7', '='],
    ['glm-5', 'glm-5.1', '<'],
    ['claude-sonnet-4-6', 'claude-opus-4-6', '>'],
    ['gpt-oss-120b', 'gpt-oss-20b', '>'],
  ];
  for (const [a, b, want] of rows) {
    test(`${a} ${want} ${b}`, () => {
      const got = Math.sign(compareVersions(a, b));
      expect(got).toBe(want === '<' ? -1 : want === '>' ? 1 : 0);
      expect(Math.sign(compareVersions(b, a)) + got).toBe(0);
    });
  }
});
