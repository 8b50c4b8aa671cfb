import { describe, expect, test } from 'bun:test';
import { parseQuotaSummary } from '../../../src/providers/antigravity/quota-summary.ts';
import summary from '../../fixtures/antigravity/quota-summary.json';

const IDS = ['claude-opus-4-6-thinking', 'claude-sonnet-4-6', 'gemini-3-flash', 'gpt-oss-120b-medium'];
const at = (iso: string) => Date.parse(iso);

describe('parseQuotaSummary', () => {
  test("each group's windows become quotas of the models in that group", () => {
    const q = parseQuotaSummary(summary as unknown as Record<string, unknown>, IDS);
    expect(q).toEqual([
      { model: 'gemini-3-flash', remainingFraction: 0.71, resetAt: at('2026-12-08T01:30:48Z'), window: 'weekly' },
      // Spent: proto3 JSON leaves the zero out.
      { model: 'gemini-3-flash', remainingFraction: 0, resetAt: at('2026-12-02T16:41:29Z'), window: '5h' },
      { model: 'claude-opus-4-6-thinking', remainingFraction: 0.04, resetAt: at('2026-12-04T04:23:27Z'), window: 'weekly' },
      { model: 'claude-sonnet-4-6', remainingFraction: 0.04, resetAt: at('2026-12-04T04:23:27Z'), window: 'weekly' },
      { model: 'gpt-oss-120b-medium', remainingFraction: 0.04, resetAt: at('2026-12-04T04:23:27Z'), window: 'weekly' },
      { model: 'claude-opus-4-6-thinking', remainingFraction: 0.9825712, resetAt: at('2026-12-02T19:08:38Z'), window: '5h' },
      { model: 'claude-sonnet-4-6', remainingFraction: 0.9825712, resetAt: at('2026-12-02T19:08:38Z'), window: '5h' },
      { model: 'gpt-oss-120b-medium', remainingFraction: 0.9825712, resetAt: at('2026-12-02T19:08:38Z'), window: '5h' },
    ]);
  });

  // The Gemini group is "Gemini Flash, Gemini Pro" (antigravity.md §11.3): image models are metered apart.
  test('image models are not given the Gemini group\'s windows', () => {
    const q = parseQuotaSummary(summary as unknown as Record<string, unknown>, ['gemini-3-flash', 'gemini-3.1-flash-image', 'gemini-3-pro-image']);
    expect(q.map((x) => x.model)).toEqual(['gemini-3-flash', 'gemini-3-flash']);
  });

  test('groups are told apart by bucket id, else by name; windows by `window`, else the id; unknown groups skipped', () => {
    const body = {
      groups: [
        { displayName: 'Gemini Models', buckets: [{ bucketId: 'x-daily', remainingFraction: 0.5 }] },
        { displayName: 'Something else', buckets: [{ bucketId: 'other-5h', window: '5h', remainingFraction: 0.1 }] },
        { displayName: 'Partner models', buckets: [{ bucketId: '3p-weekly', remaining: { case: 'remainingFraction', value: 0.25 } }] },
        'not a group',
      ],
    };
    expect(parseQuotaSummary(body, ['gemini-3-flash', 'claude-sonnet-4-6'])).toEqual([
      { model: 'gemini-3-flash', remainingFraction: 0.5, resetAt: null, window: 'daily' },
      { model: 'claude-sonnet-4-6', remainingFraction: 0.25, resetAt: null, window: 'weekly' },
    ]);
  });

  test('no fraction and no reset time is unknown; out-of-range fractions are clamped; nothing usable yields nothing', () => {
    const body = { groups: [{ buckets: [{ bucketId: 'gemini-5h' }, { bucketId: 'gemini-weekly', remainingFraction: 1.7 }] }] };
    expect(parseQuotaSummary(body, ['gemini-3-flash'])).toEqual([
      { model: 'gemini-3-flash', remainingFraction: null, resetAt: null, window: '5h' },
      { model: 'gemini-3-flash', remainingFraction: 1, resetAt: null, window: 'weekly' },
    ]);
    expect(parseQuotaSummary({}, IDS)).toEqual([]);
    expect(parseQuotaSummary({ groups: 'x' }, IDS)).toEqual([]);
  });
});
