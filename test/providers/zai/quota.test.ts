import { describe, expect, test } from 'bun:test';
import { UpstreamError } from '../../../src/providers/provider.ts';
import { KNOWN_ZAI_MODELS, mergeModels, parseModelList } from '../../../src/providers/zai/models.ts';
import { describeQuota, parseZaiQuota, windowName } from '../../../src/providers/zai/quota.ts';

// Modelled on the live example in the seed proxy's tests (protocol §3.3).
const body = {
  code: 200,
  msg: 'Operation successful',
  success: true,
  data: {
    level: 'pro',
    limits: [
      { type: 'TOKENS_LIMIT', unit: 3, number: 5, usage: 200000000, currentValue: 80626, remaining: 199919374, percentage: 1, nextResetTime: 1769036370828 },
      { type: 'TOKENS_LIMIT', unit: 6, number: 1, usage: 1000, currentValue: 1000, remaining: 0, percentage: 100, nextResetTime: 1769500000000 },
      { type: 'TIME_LIMIT', unit: 5, number: 1, usage: 1000, currentValue: 250, remaining: 750, percentage: 25, nextResetTime: 1770000000000, usageDetails: [{ modelCode: 'search-prime', usage: 12 }] },
    ],
  },
};

describe('parseZaiQuota', () => {
  test('turns every token window into a quota for all models, ignoring MCP tool-call limits', () => {
    const q = parseZaiQuota(body);
    expect(q.level).toBe('pro');
    expect(q.windows).toHaveLength(2);
    expect(q.windows[0]!.model).toBe('*');
    expect(q.windows[0]!.window).toBe('5h');
    expect(q.windows[0]!.remainingFraction).toBeCloseTo(199919374 / 200000000, 9);
    expect(q.windows[0]!.resetAt).toBe(1769036370828);
    expect(q.windows[1]).toEqual({ model: '*', remainingFraction: 0, resetAt: 1769500000000, window: 'weekly' });
  });

  test('an unused window has no reset time', () => {
    const q = parseZaiQuota({ success: true, data: { limits: [{ type: 'TOKENS_LIMIT', unit: 3, number: 5, usage: 100, currentValue: 0, remaining: 100, percentage: 0 }] } });
    expect(q.windows[0]).toEqual({ model: '*', remainingFraction: 1, resetAt: null, window: '5h' });
    expect(q.level).toBeNull();
  });

  test('falls back to the percentage when counts are missing', () => {
    const q = parseZaiQuota({ success: true, data: { limits: [{ type: 'TOKENS_LIMIT', unit: 3, number: 5, percentage: 40 }] } });
    expect(q.windows[0]!.remainingFraction).toBeCloseTo(0.6, 9);
  });

  // §3.7: a window is spent at percentage >= 100 even when the counts leave a few tokens over.
  test('a window at 100 percent is spent whatever crumbs the counts leave', () => {
    const q = parseZaiQuota({ success: true, data: { limits: [{ type: 'TOKENS_LIMIT', unit: 3, number: 5, usage: 200000000, currentValue: 199999990, remaining: 10, percentage: 100, nextResetTime: 1769036370828 }] } });
    expect(q.windows[0]!.remainingFraction).toBe(0);
  });

  // §3.3/§3.7: spent at remaining <= 0 too, when the allowance and the percentage are left out.
  test('a window with nothing remaining is spent though the allowance and percentage are missing', () => {
    const q = parseZaiQuota({ success: true, data: { limits: [{ type: 'TOKENS_LIMIT', unit: 3, number: 5, remaining: 0, currentValue: 5000, nextResetTime: 1769036370828 }] } });
    expect(q.windows[0]!.remainingFraction).toBe(0);
    const rounded = parseZaiQuota({ success: true, data: { limits: [{ type: 'TOKENS_LIMIT', unit: 6, number: 1, remaining: 0, percentage: 99, nextResetTime: 1769036370828 }] } });
    expect(rounded.windows[0]!.remainingFraction).toBe(0);
  });

  // A reset given in epoch seconds would read as 1970 and the spent window as long over.
  test('a reset time in epoch seconds is read as seconds', () => {
    const q = parseZaiQuota({ success: true, data: { limits: [{ type: 'TOKENS_LIMIT', unit: 3, number: 5, percentage: 100, nextResetTime: 1769036370 }] } });
    expect(q.windows[0]!.resetAt).toBe(1769036370000);
  });

  test('a key without a coding plan is an invalid account', () => {
    try {
      parseZaiQuota({ code: 500, msg: 'This account has no active GLM Coding Plan', success: false });
      throw new Error('no throw');
    } catch (e) {
      expect(e).toBeInstanceOf(UpstreamError);
      expect((e as UpstreamError).kind).toBe('invalid_account');
    }
  });

  test('a failure message that echoes the key does not carry it on (it reaches logs and verify)', () => {
    try {
      parseZaiQuota({ code: 401, msg: 'Authorization token zk-secret-0123456789 is invalid', success: false }, 'zk-secret-0123456789');
      throw new Error('no throw');
    } catch (e) {
      expect((e as UpstreamError).kind).toBe('auth');
      expect((e as UpstreamError).message).not.toContain('zk-secret-0123456789');
    }
  });

  test('a key Z.AI calls expired or wrong (code 401 in a 200 body) is an auth failure, not a key without a plan', () => {
    // Z.AI's answer to a bad key on this endpoint; a quota poll must not take the account out over it.
    const kindOf = (b: unknown) => {
      try {
        parseZaiQuota(b);
      } catch (e) {
        return (e as UpstreamError).kind;
      }
      return 'no throw';
    };
    expect(kindOf({ code: 401, msg: 'token expired or incorrect', success: false })).toBe('auth');
    expect(kindOf({ msg: 'token expired or incorrect', success: false })).toBe('auth');
    expect(kindOf({ code: 1309, msg: 'Your GLM Coding Plan package has expired', success: false })).toBe('invalid_account');
  });

  // Without `success` the failure is still a failure: an empty window list would read as a healthy key.
  test('a failure code without a success flag is a failure, not a key with no windows', () => {
    expect(() => parseZaiQuota({ code: 401, msg: 'token expired or incorrect' })).toThrow(UpstreamError);
    try {
      parseZaiQuota({ code: 401, msg: 'token expired or incorrect' });
    } catch (e) {
      expect((e as UpstreamError).kind).toBe('auth');
    }
    expect(parseZaiQuota({ code: 200, msg: 'Operation successful', data: { limits: [] } }).windows).toEqual([]);
  });

  test('another failure is transient', () => {
    expect(() => parseZaiQuota({ code: 500, msg: 'system busy', success: false })).toThrow(UpstreamError);
    try {
      parseZaiQuota({ code: 500, msg: 'system busy', success: false });
    } catch (e) {
      expect((e as UpstreamError).kind).toBe('transient');
    }
  });

  test('window names', () => {
    expect(windowName(3, 5)).toBe('5h');
    expect(windowName(6, 1)).toBe('weekly');
    expect(windowName(6, 2)).toBe('2w');
  });

  test('describes the plan for verify', () => {
    expect(describeQuota(parseZaiQuota(body))).toBe('ok: pro plan, 5h window 100% left, weekly window 0% left');
  });
});

describe('models', () => {
  test('reads an Anthropic-style listing', () => {
    expect(parseModelList({ data: [{ id: 'glm-4.6', display_name: 'GLM-4.6' }, { id: 'glm-9' }, { nope: 1 }] })).toEqual([
      { id: 'glm-4.6', displayName: 'GLM-4.6', family: 'glm' },
      { id: 'glm-9', displayName: 'GLM-9', family: 'glm' },
    ]);
  });

  test('an unknown shape lists nothing', () => {
    expect(parseModelList({ error: 'x' })).toEqual([]);
  });

  test('merging keeps listed models, adds limits we know, and appends known ones not listed', () => {
    const merged = mergeModels([{ id: 'glm-4.6', displayName: 'GLM 4.6', family: 'glm' }, { id: 'glm-9', displayName: 'GLM-9', family: 'glm' }]);
    expect(merged[0]).toMatchObject({ id: 'glm-4.6', displayName: 'GLM 4.6', contextWindow: 200 * 1024, maxOutputTokens: 128 * 1024 });
    expect(merged[1]!.id).toBe('glm-9');
    expect(merged.map((m) => m.id)).toEqual(['glm-4.6', 'glm-9', ...KNOWN_ZAI_MODELS.map((m) => m.id).filter((id) => id !== 'glm-4.6')]);
  });

  test('an empty listing falls back to the known catalogue', () => {
    expect(mergeModels([]).map((m) => m.id)).toEqual([
      'glm-4.5', 'glm-4.5-air', 'glm-4.6', 'glm-4.7', 'glm-5', 'glm-5-turbo', 'glm-5.1', 'glm-5.2', 'glm-5.3', 'glm-5.3-flash',
    ]);
  });

  test('the 1M-context models keep their window and output cap when the listing names them bare', () => {
    const merged = mergeModels([{ id: 'glm-5.2', displayName: 'GLM-5.2', family: 'glm' }, { id: 'glm-5.3', displayName: 'GLM-5.3', family: 'glm' }]);
    expect(merged[0]).toMatchObject({ id: 'glm-5.2', contextWindow: 1024 * 1024, maxOutputTokens: 128 * 1024 });
    expect(merged[1]).toMatchObject({ id: 'glm-5.3', contextWindow: 1024 * 1024, maxOutputTokens: 131_072 });
  });
});
