import { describe, expect, test } from 'bun:test';
import { type Candidate, HOME_WAIT_SLACK_MS, limitKindsOf, type Selection, SHORT_LIMIT_MS, selectAccount } from '../../src/pool/select.ts';

const NOW = 1_800_000_000_000;

function c(id: string, over: Partial<Candidate> = {}): Candidate {
  const limited = over.limitedUntil !== undefined && over.limitedUntil !== null;
  return {
    id,
    status: 'active',
    limitedUntil: null,
    limitKind: limited ? 'rate_limited' : null,
    remaining: null,
    inFlight: 0,
    maxInFlight: null,
    lastUsedAt: null,
    ...over,
  };
}

interface Row {
  name: string;
  candidates: Candidate[];
  bound?: string;
  threshold?: number | null;
  exclude?: string[];
  /** The clock, NOW unless given. */
  now?: number;
  want: Selection;
}

const rows: Row[] = [
  { name: 'no accounts at all', candidates: [], want: { kind: 'none', reason: 'no_accounts' } },
  {
    name: 'invalid and disabled accounts never serve',
    candidates: [c('a', { status: 'invalid' }), c('b', { status: 'disabled' })],
    want: { kind: 'none', reason: 'no_active_accounts' },
  },
  {
    name: 'a fresh pool gives the first account',
    candidates: [c('a'), c('b')],
    want: { kind: 'account', accountId: 'a', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'a new session goes to the account with fewest requests in flight',
    candidates: [c('a', { inFlight: 2 }), c('b', { inFlight: 1 }), c('c', { inFlight: 3 })],
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'equal load: the least recently used account wins, never-used first',
    candidates: [c('a', { lastUsedAt: NOW - 10 }), c('b', { lastUsedAt: NOW - 20 }), c('c')],
    want: { kind: 'account', accountId: 'c', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'a bound session stays on its account even when others are idler',
    candidates: [c('a', { inFlight: 0 }), c('b', { inFlight: 4 })],
    bound: 'b',
    want: { kind: 'account', accountId: 'b', sticky: true, soft: false, overflow: false },
  },
  {
    name: 'a bound session moves when its account is rate-limited for longer than a short throttle',
    candidates: [c('a', { inFlight: 3 }), c('b', { limitedUntil: NOW + 5 * 60_000 })],
    bound: 'b',
    want: { kind: 'account', accountId: 'a', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'a bound session whose account is throttled for a second overflows and keeps its binding',
    candidates: [c('a', { inFlight: 3 }), c('b', { limitedUntil: NOW + 1000 })],
    bound: 'b',
    want: { kind: 'account', accountId: 'a', sticky: false, soft: false, overflow: true },
  },
  {
    name: 'a capacity cool-down of 10 s overflows and keeps the binding',
    candidates: [c('a', { limitedUntil: NOW + 10_000, limitKind: 'capacity' }), c('b')],
    bound: 'a',
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: true },
  },
  {
    name: 'a limit that ends exactly at the short-limit threshold still overflows',
    candidates: [c('a', { limitedUntil: NOW + SHORT_LIMIT_MS }), c('b')],
    bound: 'a',
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: true },
  },
  {
    name: 'a limit one millisecond past the threshold moves the conversation',
    candidates: [c('a', { limitedUntil: NOW + SHORT_LIMIT_MS + 1 }), c('b')],
    bound: 'a',
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'a long limit seen when less than the threshold of it is left overflows (the clock decides, not the original length)',
    candidates: [c('a', { limitedUntil: NOW + 90_000 }), c('b')],
    bound: 'a',
    now: NOW + 40_000,
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: true },
  },
  {
    name: 'the rest after repeated 5xx moves the conversation, however short: the account is unwell',
    candidates: [c('a', { limitedUntil: NOW + 60_000, limitKind: 'transient' }), c('b')],
    bound: 'a',
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'a quota exhaustion moves the conversation however soon it resets',
    candidates: [c('a', { limitedUntil: NOW + 5000, limitKind: 'quota_exhausted' }), c('b')],
    bound: 'a',
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'a plan that lacks the model (no_access) moves the conversation however soon it is rechecked',
    candidates: [c('a', { limitedUntil: NOW + 5000, limitKind: 'no_access' }), c('b')],
    bound: 'a',
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'a short throttle on a soft-limited account moves the conversation to a fresh one (the floor would move it next turn)',
    candidates: [c('a', { limitedUntil: NOW + 1000, remaining: 0.1 }), c('b', { remaining: 0.8 })],
    bound: 'a',
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'a short throttle with only soft-limited accounts left overflows onto the fullest and keeps the binding',
    candidates: [c('a', { limitedUntil: NOW + 1000, remaining: 0.8 }), c('b', { remaining: 0.1 }), c('c', { remaining: 0.15 })],
    bound: 'a',
    want: { kind: 'account', accountId: 'c', sticky: false, soft: true, overflow: true },
  },
  {
    name: 'the next request after a short throttle ends goes home',
    candidates: [c('a', { limitedUntil: NOW + 1000 }), c('b', { lastUsedAt: NOW - 10 })],
    bound: 'a',
    now: NOW + 1000,
    want: { kind: 'account', accountId: 'a', sticky: true, soft: false, overflow: false },
  },
  {
    name: 'a limit whose reset has passed no longer counts',
    candidates: [c('a', { limitedUntil: NOW }), c('b')],
    bound: 'a',
    want: { kind: 'account', accountId: 'a', sticky: true, soft: false, overflow: false },
  },
  {
    name: 'a bound session moves when its account turned invalid',
    candidates: [c('a', { status: 'invalid' }), c('b')],
    bound: 'a',
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'a soft-limited account is avoided while a fresh one exists',
    candidates: [c('a', { remaining: 0.1 }), c('b', { remaining: 0.9, inFlight: 5 })],
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'soft limit is "at or below" the threshold',
    candidates: [c('a', { remaining: 0.2 }), c('b', { remaining: 0.21, inFlight: 1 })],
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'unknown quota is not a soft limit',
    candidates: [c('a', { remaining: 0.05 }), c('b', { remaining: null, inFlight: 1 })],
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'a soft-limited account serves when no fresh one can',
    candidates: [c('a', { remaining: 0.1 }), c('b', { limitedUntil: NOW + 5000 })],
    want: { kind: 'account', accountId: 'a', sticky: false, soft: true, overflow: false },
  },
  {
    name: 'among soft-limited accounts the one with most quota left serves',
    candidates: [c('a', { remaining: 0.05 }), c('b', { remaining: 0.15 }), c('c', { remaining: 0.1 })],
    want: { kind: 'account', accountId: 'b', sticky: false, soft: true, overflow: false },
  },
  {
    name: 'every account below the floor: a new conversation goes to a less busy one with comparable quota, not always the fullest',
    candidates: [c('a', { remaining: 0.15, inFlight: 2 }), c('b', { remaining: 0.1, inFlight: 0 }), c('c', { remaining: 0.12, inFlight: 1 })],
    want: { kind: 'account', accountId: 'b', sticky: false, soft: true, overflow: false },
  },
  {
    name: 'every account below the floor: one with less than half the fullest one\'s quota is spared even when idle',
    candidates: [c('a', { remaining: 0.16, inFlight: 3 }), c('b', { remaining: 0.07, inFlight: 0 })],
    want: { kind: 'account', accountId: 'a', sticky: false, soft: true, overflow: false },
  },
  {
    name: 'every account below the floor and equally busy: the fullest serves',
    candidates: [c('a', { remaining: 0.1, inFlight: 1 }), c('b', { remaining: 0.15, inFlight: 1 })],
    want: { kind: 'account', accountId: 'b', sticky: false, soft: true, overflow: false },
  },
  {
    name: 'a bound session leaves its soft-limited account for a fresh one',
    candidates: [c('a', { remaining: 0.1 }), c('b', { remaining: 0.8 })],
    bound: 'a',
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'a bound session keeps its soft-limited account when nothing fresh is left',
    candidates: [c('a', { remaining: 0.15 }), c('b', { remaining: 0.19 })],
    bound: 'a',
    want: { kind: 'account', accountId: 'a', sticky: true, soft: true, overflow: false },
  },
  {
    name: 'soft limits off (--no-soft-limit): quota does not matter',
    candidates: [c('a', { remaining: 0.01 }), c('b', { remaining: 0.9, inFlight: 1 })],
    threshold: null,
    want: { kind: 'account', accountId: 'a', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'all limited: report the earliest reset and the kind of that limit',
    candidates: [
      c('a', { limitedUntil: NOW + 9000, limitKind: 'quota_exhausted' }),
      c('b', { limitedUntil: NOW + 3000, limitKind: 'capacity' }),
      c('x', { status: 'disabled' }),
    ],
    want: { kind: 'limited', until: NOW + 3000, limitKind: 'capacity' },
  },
  {
    name: 'all limited by throttles and quotas: the earliest is a throttle, so the answer is one',
    candidates: [c('a', { limitedUntil: NOW + 3_600_000, limitKind: 'quota_exhausted' }), c('b', { limitedUntil: NOW + 4000, limitKind: 'rate_limited' })],
    want: { kind: 'limited', until: NOW + 4000, limitKind: 'rate_limited' },
  },
  {
    name: 'all limited, the earliest by a transient cool-down: its kind is transient',
    candidates: [c('a', { limitedUntil: NOW + 60_000, limitKind: 'transient' }), c('b', { limitedUntil: NOW + 90_000, limitKind: 'rate_limited' })],
    want: { kind: 'limited', until: NOW + 60_000, limitKind: 'transient' },
  },
  {
    name: "all limited, the earliest a plan that lacks the model: the answer is the others' limit, not \"no account may use it\"",
    candidates: [
      c('a', { limitedUntil: NOW + 3_600_000, limitKind: 'no_access' }),
      c('b', { limitedUntil: NOW + 5 * 3_600_000, limitKind: 'quota_exhausted' }),
      c('c', { limitedUntil: NOW + 2 * 3_600_000, limitKind: 'rate_limited' }),
    ],
    want: { kind: 'limited', until: NOW + 2 * 3_600_000, limitKind: 'rate_limited' },
  },
  {
    name: 'every plan lacks the model: the earliest recheck, as no_access',
    candidates: [c('a', { limitedUntil: NOW + 3_600_000, limitKind: 'no_access' }), c('b', { limitedUntil: NOW + 1_800_000, limitKind: 'no_access' })],
    want: { kind: 'limited', until: NOW + 1_800_000, limitKind: 'no_access' },
  },
  {
    name: 'limits that end together: the first in pool order names the kind',
    candidates: [c('a', { limitedUntil: NOW + 5000, limitKind: 'rate_limited' }), c('b', { limitedUntil: NOW + 5000, limitKind: 'quota_exhausted' })],
    want: { kind: 'limited', until: NOW + 5000, limitKind: 'rate_limited' },
  },
  {
    name: 'accounts already tried for this request are skipped',
    candidates: [c('a'), c('b', { inFlight: 2 })],
    exclude: ['a'],
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'a bound account already tried (a 5xx) is not retried; the other serves without taking the conversation',
    candidates: [c('a'), c('b')],
    bound: 'a',
    exclude: ['a'],
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: true },
  },
  {
    name: 'a bound account tried and now out of quota gives the conversation up',
    candidates: [c('a', { limitedUntil: NOW + 3_600_000, limitKind: 'quota_exhausted' }), c('b')],
    bound: 'a',
    exclude: ['a'],
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'a bound account tried and throttled for a second (its 429 just now) serves the conversation again next turn: overflow',
    candidates: [c('a', { limitedUntil: NOW + 1000 }), c('b')],
    bound: 'a',
    exclude: ['a'],
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: true },
  },
  {
    name: 'every account throttled briefly, home a moment after another: wait for home, not the other',
    candidates: [c('a', { limitedUntil: NOW + 1500 }), c('b', { limitedUntil: NOW + 1000 })],
    bound: 'a',
    exclude: ['a', 'b'],
    want: { kind: 'limited', until: NOW + 1500, limitKind: 'rate_limited', earliest: { until: NOW + 1000, limitKind: 'rate_limited' } },
  },
  {
    name: "every account throttled, home's throttle ends exactly the slack after the earliest: still wait for home",
    candidates: [c('a', { limitedUntil: NOW + 1000 + HOME_WAIT_SLACK_MS, limitKind: 'capacity' }), c('b', { limitedUntil: NOW + 1000 })],
    bound: 'a',
    want: { kind: 'limited', until: NOW + 1000 + HOME_WAIT_SLACK_MS, limitKind: 'capacity', earliest: { until: NOW + 1000, limitKind: 'rate_limited' } },
  },
  {
    // The gateway waits for home only when its budget covers it, else for the earliest: it must know both.
    name: 'every account throttled, home by capacity a moment after another: home to wait for, the earliest (and its kind) reported too',
    candidates: [c('a', { limitedUntil: NOW + 2500, limitKind: 'capacity' }), c('b', { limitedUntil: NOW + 1000, limitKind: 'rate_limited' }), c('c', { limitedUntil: NOW + 9000 })],
    bound: 'a',
    want: { kind: 'limited', until: NOW + 2500, limitKind: 'capacity', earliest: { until: NOW + 1000, limitKind: 'rate_limited' } },
  },
  {
    name: 'every account throttled, home the earliest itself: nothing else to report',
    candidates: [c('a', { limitedUntil: NOW + 1000 }), c('b', { limitedUntil: NOW + 2000 })],
    bound: 'a',
    want: { kind: 'limited', until: NOW + 1000, limitKind: 'rate_limited' },
  },
  {
    name: "every account throttled, home's ends more than the slack after the earliest: the earliest (its request overflows)",
    candidates: [c('a', { limitedUntil: NOW + 1001 + HOME_WAIT_SLACK_MS }), c('b', { limitedUntil: NOW + 1000 })],
    bound: 'a',
    want: { kind: 'limited', until: NOW + 1000, limitKind: 'rate_limited' },
  },
  {
    name: 'every account throttled, home soft-limited and the earliest above the floor: the earliest (the floor moves the conversation there)',
    candidates: [c('a', { limitedUntil: NOW + 1500, remaining: 0.1 }), c('b', { limitedUntil: NOW + 1000, remaining: 0.9 })],
    bound: 'a',
    want: { kind: 'limited', until: NOW + 1000, limitKind: 'rate_limited' },
  },
  {
    name: 'every account limited, home by a quota that resets a moment after another: the earliest (the conversation moves anyway)',
    candidates: [c('a', { limitedUntil: NOW + 1500, limitKind: 'quota_exhausted' }), c('b', { limitedUntil: NOW + 1000 })],
    bound: 'a',
    want: { kind: 'limited', until: NOW + 1000, limitKind: 'rate_limited' },
  },
  {
    name: 'every account tried and none limited: nothing to wait for',
    candidates: [c('a'), c('b')],
    exclude: ['a', 'b'],
    want: { kind: 'none', reason: 'all_tried' },
  },
  {
    name: 'every account tried and each limited on the way: the earliest reset among them',
    candidates: [c('a', { limitedUntil: NOW + 9000 }), c('b', { limitedUntil: NOW + 4000 }), c('c', { limitedUntil: NOW + 6000 })],
    exclude: ['a', 'b', 'c'],
    want: { kind: 'limited', until: NOW + 4000, limitKind: 'rate_limited' },
  },
  {
    // The unlimited one failed some other way (a 5xx): that failure is the answer, not the others' limits.
    name: 'every account tried, one still unlimited: all tried, not limited',
    candidates: [c('a', { limitedUntil: NOW + 9000 }), c('b', { limitedUntil: NOW + 4000 }), c('c')],
    exclude: ['a', 'b', 'c'],
    want: { kind: 'none', reason: 'all_tried' },
  },
  {
    name: 'the only unlimited account failed (a 5xx) while the others are limited for hours: all tried, not limited',
    candidates: [c('a'), c('b', { limitedUntil: NOW + 3_600_000, limitKind: 'quota_exhausted' })],
    exclude: ['a'],
    want: { kind: 'none', reason: 'all_tried' },
  },
  {
    name: 'the only unlimited account failed while another is limited briefly: all tried too (the failure is the answer)',
    candidates: [c('a'), c('b', { limitedUntil: NOW + 700 })],
    exclude: ['a'],
    want: { kind: 'none', reason: 'all_tried' },
  },
  {
    name: 'a tried account that is invalid now does not count as unlimited: wait for the limited ones',
    candidates: [c('a', { status: 'invalid' }), c('b', { limitedUntil: NOW + 700 })],
    exclude: ['a'],
    want: { kind: 'limited', until: NOW + 700, limitKind: 'rate_limited' },
  },
  {
    name: 'an account at its concurrency cap is skipped for a new conversation',
    candidates: [c('a', { inFlight: 2, maxInFlight: 2 }), c('b', { inFlight: 5 })],
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: false },
  },
  {
    name: 'below its cap an account serves as usual',
    candidates: [c('a', { inFlight: 1, maxInFlight: 2 }), c('b', { inFlight: 1, maxInFlight: 2, lastUsedAt: NOW - 5 })],
    bound: 'a',
    want: { kind: 'account', accountId: 'a', sticky: true, soft: false, overflow: false },
  },
  {
    name: 'a conversation whose account is at its cap overflows to another and keeps its binding',
    candidates: [c('a', { inFlight: 1, maxInFlight: 1 }), c('b'), c('c', { inFlight: 1 })],
    bound: 'a',
    want: { kind: 'account', accountId: 'b', sticky: false, soft: false, overflow: true },
  },
  {
    name: 'overflow prefers a fresh account to a soft-limited one',
    candidates: [c('a', { inFlight: 1, maxInFlight: 1 }), c('b', { remaining: 0.1 }), c('c', { remaining: 0.8, inFlight: 3 })],
    bound: 'a',
    want: { kind: 'account', accountId: 'c', sticky: false, soft: false, overflow: true },
  },
  {
    name: 'overflow onto soft-limited accounts only when nothing else is free',
    candidates: [c('a', { inFlight: 1, maxInFlight: 1 }), c('b', { remaining: 0.1 }), c('c', { remaining: 0.15 })],
    bound: 'a',
    want: { kind: 'account', accountId: 'c', sticky: false, soft: true, overflow: true },
  },
  {
    name: 'every usable account at its cap: wait for a slot, or for the limited one to come free, whichever is first',
    candidates: [c('a', { inFlight: 2, maxInFlight: 2 }), c('b', { inFlight: 1, maxInFlight: 1 }), c('c', { limitedUntil: NOW + 5000 })],
    bound: 'a',
    want: { kind: 'busy', freeAt: NOW + 5000 },
  },
  {
    name: 'a tried account at its cap is not waited for, and being unlimited its failure is the answer',
    candidates: [c('a', { inFlight: 1, maxInFlight: 1 }), c('b', { limitedUntil: NOW + 5000 })],
    exclude: ['a'],
    want: { kind: 'none', reason: 'all_tried' },
  },
  {
    name: 'a busy untried account and limited ones: wait for the slot, or the earliest of the limits to end',
    candidates: [c('a', { inFlight: 1, maxInFlight: 1 }), c('b', { limitedUntil: NOW + 9000 }), c('c', { limitedUntil: NOW + 5000 }), c('d', { limitedUntil: NOW + 1000 })],
    exclude: ['d'],
    want: { kind: 'busy', freeAt: NOW + 5000 },
  },
  {
    name: 'every account at its cap and none limited: only a slot can free one',
    candidates: [c('a', { inFlight: 1, maxInFlight: 1 }), c('b', { inFlight: 1, maxInFlight: 1 })],
    want: { kind: 'busy' },
  },
];

describe('selectAccount', () => {
  for (const r of rows) {
    test(r.name, () => {
      const got = selectAccount({
        candidates: r.candidates,
        boundAccountId: r.bound ?? null,
        softLimitThreshold: r.threshold === undefined ? 0.2 : r.threshold,
        exclude: r.exclude ? new Set(r.exclude) : undefined,
        now: r.now ?? NOW,
      });
      expect(got).toEqual(r.want);
    });
  }

  test('parallel new sessions spread over the pool as in-flight counts rise', () => {
    const cands = [c('a'), c('b'), c('c')];
    const picked: string[] = [];
    for (let i = 0; i < 6; i++) {
      const s = selectAccount({ candidates: cands, boundAccountId: null, softLimitThreshold: 0.2, now: NOW });
      if (s.kind !== 'account') throw new Error('expected an account');
      picked.push(s.accountId);
      const chosen = cands.find((x) => x.id === s.accountId)!;
      chosen.inFlight++;
    }
    expect(picked).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
  });
});

test('the kinds of limit keeping the accounts out: each once, in pool order; not those of limits over, nor of accounts out of rotation', () => {
  const kinds = limitKindsOf(
    [
      c('a', { limitedUntil: NOW + 5_000 }),
      c('b', { limitedUntil: NOW + 9_000, limitKind: 'capacity' }),
      c('c', { limitedUntil: NOW + 1_000 }),
      c('d', { limitedUntil: NOW, limitKind: 'transient' }),
      c('e', { limitedUntil: NOW + 3_600_000, limitKind: 'quota_exhausted', status: 'disabled' }),
      c('f'),
    ],
    NOW,
  );
  expect(kinds).toEqual(['rate_limited', 'capacity']);
});
