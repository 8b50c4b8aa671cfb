import { describe, expect, test } from 'bun:test';
import { familyFromId, isUserFacing, maxOutputTokensOf, parseModels, parseQuota, slimCatalog, thinkingBudgetOf } from '../../../src/providers/antigravity/models.ts';
import catalog from '../../fixtures/antigravity/fetch-available-models.json';

const body = catalog as unknown as Record<string, unknown>;

describe('parseModels', () => {
  test('internal and deprecated ids are hidden; the rest sorted by id', () => {
    expect(parseModels(body).map((m) => m.id)).toEqual(['claude-opus-4-6-thinking', 'claude-sonnet-4-6', 'gemini-3-flash', 'gpt-oss-120b-medium']);
  });

  test('limits, family and thinking come from the catalog', () => {
    const byId = Object.fromEntries(parseModels(body).map((m) => [m.id, m]));
    expect(byId['gemini-3-flash']).toEqual({
      id: 'gemini-3-flash',
      displayName: 'Gemini 3 Flash',
      family: 'gemini',
      contextWindow: 1048576,
      maxOutputTokens: 65536,
      thinking: true,
      supportsImages: true,
    });
    expect(byId['claude-opus-4-6-thinking']!.family).toBe('claude');
    expect(byId['claude-sonnet-4-6']!.thinking).toBe(false);
    expect(byId['gpt-oss-120b-medium']!.family).toBe('gpt');
    expect(byId['gpt-oss-120b-medium']!.contextWindow).toBe(114000);
  });

  test('the ids in webSearchModelIds are marked as the ones that run Anthropic web searches', () => {
    const withSearch = { ...body, models: { ...(body.models as object), 'gemini-3.1-flash-lite': { displayName: 'Gemini 3.1 Flash Lite' } }, webSearchModelIds: ['gemini-3.1-flash-lite', 42] };
    const models = parseModels(withSearch);
    expect(models.filter((m) => m.webSearch).map((m) => m.id)).toEqual(['gemini-3.1-flash-lite']);
    expect(parseModels(body).some((m) => m.webSearch)).toBe(false);
  });

  test('the ids in imageGenerationModelIds are marked as image models, listed or not', () => {
    const withImages = {
      ...body,
      models: { ...(body.models as object), 'gemini-3-pro-image': { displayName: 'Gemini 3 Pro Image' } },
      imageGenerationModelIds: ['gemini-3-pro-image', 'gemini-3.1-flash-image', 'tab_image', 7],
    };
    const images = parseModels(withImages).filter((m) => m.imageGeneration);
    expect(images).toEqual([
      { id: 'gemini-3-pro-image', displayName: 'Gemini 3 Pro Image', family: 'gemini', thinking: false, imageGeneration: true },
      // Named only in the list: offered all the same, under its id.
      { id: 'gemini-3.1-flash-image', displayName: 'gemini-3.1-flash-image', family: 'gemini', imageGeneration: true },
    ]);
    expect(parseModels(body).some((m) => m.imageGeneration)).toBe(false);
  });

  test('a deprecated id is carried by the model Google names as its successor, when that one is listed', () => {
    const withSuccessor = {
      ...body,
      models: { ...(body.models as object), 'gemini-pro-agent': { displayName: 'Gemini 3.1 Pro (High)' } },
      deprecatedModelIds: {
        ...(body.deprecatedModelIds as object),
        'gemini-3-pro-high': { newModelId: 'gemini-pro-agent' },
        'gemini-2-pro': { newModelId: 'gemini-gone' },
        broken: { newModelId: 7 },
      },
    };
    const byId = Object.fromEntries(parseModels(withSuccessor).map((m) => [m.id, m]));
    expect(byId['gemini-pro-agent']!.replaces).toEqual(['gemini-3.1-pro-high', 'gemini-3-pro-high']);
    expect(byId['gemini-3.1-pro-high']).toBeUndefined();
    expect(Object.values(byId).filter((m) => m.replaces).length).toBe(1);
  });

  test('a body without models yields none', () => {
    expect(parseModels({})).toEqual([]);
    expect(parseModels({ models: [] })).toEqual([]);
  });
});

describe('parseQuota', () => {
  const q = Object.fromEntries(parseQuota(body).map((x) => [x.model, x]));

  test('fraction and reset time per model', () => {
    expect(q['gemini-3-flash']).toEqual({ model: 'gemini-3-flash', remainingFraction: 0.9897612, resetAt: Date.parse('2026-09-11T04:41:29Z') });
  });

  test('an exhausted model shows only resetTime, which means 0 left', () => {
    expect(q['claude-opus-4-6-thinking']!.remainingFraction).toBe(0);
    expect(q['claude-opus-4-6-thinking']!.resetAt).toBe(Date.parse('2026-09-12T00:00:00Z'));
  });

  test('a full model may have no reset time; no quotaInfo means unknown', () => {
    expect(q['claude-sonnet-4-6']).toEqual({ model: 'claude-sonnet-4-6', remainingFraction: 1, resetAt: null });
    expect(q['gpt-oss-120b-medium']).toEqual({ model: 'gpt-oss-120b-medium', remainingFraction: null, resetAt: null });
  });

  test('internal ids carry no quota rows', () => {
    expect(Object.keys(q).some((k) => k.startsWith('chat_') || k.startsWith('tab_'))).toBe(false);
  });

  // Requests for a retired id go to its successor (parseModels' replaces), whose quota is the one
  // kept; a row of its own would show /account-limits a model /v1/models does not list.
  test('a deprecated id carries no quota row', () => {
    expect(q['gemini-3.1-pro-high']).toBeUndefined();
  });
});

test('family and visibility by id', () => {
  expect(familyFromId('claude-sonnet-4-6')).toBe('claude');
  expect(familyFromId('gemini-pro-agent')).toBe('gemini');
  expect(familyFromId('gpt-oss-120b-medium')).toBe('gpt');
  expect(familyFromId('rev19-uic3-1p')).toBe('other');
  expect(isUserFacing('rev19-uic3-1p')).toBe(false);
  expect(isUserFacing('gemini-3-flash')).toBe(true);
});

describe('maxOutputTokensOf', () => {
  const listing = { models: { a: { maxOutputTokens: 16384 }, b: { maxOutputTokens: 0 }, c: { maxOutputTokens: '9' }, d: null } };
  test.each([
    ['a listed cap', listing, 'a', 16384],
    ['zero is no cap', listing, 'b', undefined],
    ['a string is no cap', listing, 'c', undefined],
    ['a null entry', listing, 'd', undefined],
    ['an unlisted model', listing, 'zz', undefined],
    ['an inherited name', listing, '__proto__', undefined],
    ['no catalog yet', undefined, 'a', undefined],
  ] as const)('%s', (_n, b, id, expected) => {
    expect(maxOutputTokensOf(b as Record<string, unknown> | undefined, id)).toBe(expected);
  });
});

// models.resp (agy 1.2.0): gemini-3.8-flash-low 1000, gemini-3-flash -1 (dynamic).
describe('thinkingBudgetOf', () => {
  const listing = { models: { low: { thinkingBudget: 1000 }, dyn: { thinkingBudget: -1 }, zero: { thinkingBudget: 0 }, odd: { thinkingBudget: '9' }, none: {}, nul: null } };
  test.each([
    ['a listed budget', listing, 'low', 1000],
    ['dynamic (-1) is a budget', listing, 'dyn', -1],
    ['zero (proto3 default: not given) is none', listing, 'zero', undefined],
    ['a string is none', listing, 'odd', undefined],
    ['an entry without one', listing, 'none', undefined],
    ['a null entry', listing, 'nul', undefined],
    ['an unlisted model', listing, 'zz', undefined],
    ['an inherited name', listing, '__proto__', undefined],
    ['no catalog yet', undefined, 'low', undefined],
  ] as const)('%s', (_n, b, id, expected) => {
    expect(thinkingBudgetOf(b as Record<string, unknown> | undefined, id)).toBe(expected);
  });
});

describe('slimCatalog', () => {
  // Shaped like Google's full answer (agy 1.2.0's is 196 KB): what is never read outweighs the rest.
  const heavy: Record<string, unknown> = {
    ...body,
    models: Object.fromEntries(
      Object.entries(body.models as Record<string, Record<string, unknown>>).map(([id, e]) => [
        id,
        { ...e, supportedMimeTypes: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`type/x-${i}`, true])), modelExperiments: { flags: 'x'.repeat(2000) } },
      ]),
    ),
    agentModelSorts: [{ displayName: 'Recommended', groups: [{ modelIds: Array.from({ length: 50 }, (_, i) => `m${i}`) }] }],
    experimentIds: Array.from({ length: 300 }, (_, i) => i),
    deprecatedModelIds: { 'gemini-old': { newModelId: 'gemini-3-flash', oldModelEnum: 'E'.repeat(200), newModelEnum: 'N'.repeat(200) } },
    webSearchModelIds: ['gemini-3-flash'],
    imageGenerationModelIds: ['gemini-3.1-flash-image'],
  };

  test('every parser reads the cut-down catalog as it reads the whole one', () => {
    const slim = slimCatalog(heavy);
    expect(parseModels(slim)).toEqual(parseModels(heavy));
    expect(parseQuota(slim)).toEqual(parseQuota(heavy));
    for (const m of parseModels(heavy)) {
      expect(maxOutputTokensOf(slim, m.id)).toBe(maxOutputTokensOf(heavy, m.id));
      expect(thinkingBudgetOf(slim, m.id)).toBe(thinkingBudgetOf(heavy, m.id));
    }
  });

  test('what is kept per account is a small part of what Google sends', () => {
    const slim = slimCatalog(heavy);
    expect(JSON.stringify(slim).length).toBeLessThan(JSON.stringify(heavy).length / 4);
    expect(JSON.stringify(slim)).not.toContain('modelExperiments');
  });
});
