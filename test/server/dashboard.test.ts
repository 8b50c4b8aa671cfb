import { describe, expect, test } from 'bun:test';
import { duration, escapeHtml, renderDashboard, type DashboardData } from '../../src/server/dashboard.ts';

const NOW = Date.parse('2026-12-02T12:00:00Z');

function data(over: Partial<DashboardData> = {}): DashboardData {
  return {
    status: 'degraded',
    version: '0.1.0 (abc1234)',
    uptimeSec: 3 * 3600 + 12 * 60,
    accounts: { total: 2, ok: 1, limited: 0, partly_limited: 1, invalid: 0, disabled: 0 },
    accountDetails: [
      {
        label: 'work',
        provider: 'antigravity',
        email: 'me@example.com',
        state: 'partly_limited',
        inFlight: 2,
        maxConcurrent: 4,
        plan: 'Google AI Pro',
        lastUsed: new Date(NOW - 90_000).toISOString(),
        limits: [{ model: 'claude-opus-4-6-thinking', kind: 'quota_exhausted', resetInSec: 7260 }],
        quota: [
          { model: 'claude-opus-4-6-thinking', window: null, remainingFraction: 0 },
          { model: 'claude-opus-4-6-thinking', window: 'weekly', remainingFraction: 0.03 },
          { model: 'gpt-oss-120b-medium', window: 'weekly', remainingFraction: 0.03 },
          { model: 'gemini-3-flash', window: '5h', remainingFraction: 1 },
          { model: 'gemini-3-flash', window: 'weekly', remainingFraction: null },
        ],
      },
      {
        label: '<b>glm</b>',
        provider: 'zai',
        state: 'invalid',
        reason: 'key revoked <script>',
        verifyUrl: 'javascript:alert(1)',
        inFlight: 0,
        maxConcurrent: null,
        lastUsed: null,
        limits: [],
        quota: [{ model: '*', window: '5h', remainingFraction: 0.5 }],
      },
    ],
    ...over,
  };
}

describe('renderDashboard', () => {
  const html = renderDashboard(data(), NOW);

  test('a page that refreshes itself, with the pool status, version, uptime and counts', () => {
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).toContain('<meta http-equiv="refresh" content="10">');
    expect(html).toContain('<title>mcp · degraded</title>');
    expect(html).toContain('version 0.1.0 (abc1234) · up 3h12m · 2 account(s): 1 ok, 1 partly limited');
  });

  test('each account: who, plan, state, in flight against its cap, limits with the time left, last use', () => {
    expect(html).toContain('work<br><small>me@example.com</small>');
    expect(html).toContain('antigravity<br><small>Google AI Pro</small>');
    expect(html).toContain('<span class="state partly_limited">partly limited</span>');
    expect(html).toContain('<td class="num">2 / 4</td>');
    expect(html).toContain('claude-opus-4-6-thinking quota exhausted, back in 2h1m');
    expect(html).toContain('1m ago');
    expect(html).toContain('never');
  });

  test('quota as bars; a shared window once, by family; unknown figures left out', () => {
    expect(html).toContain('claude-opus-4-6-thinking <span class="bar low" title="0% left">');
    expect(html).toContain('claude/gpt weekly <span class="bar low" title="3% left">');
    expect(html).toContain('gemini 5h <span class="bar high" title="100% left"><span style="width:100%"></span></span> 100%');
    expect(html).not.toContain('gemini weekly');
    expect(html).toContain('5h <span class="bar high" title="50% left">');
    expect(renderDashboard(data({ accountDetails: [{ ...data().accountDetails![1]!, quota: [{ model: '*', window: '5h', remainingFraction: 0.15 }] }] }), NOW)).toContain('5h <span class="bar mid" title="15% left">');
  });

  test('nothing the accounts say is taken as markup; only https verification links become links', () => {
    expect(html).toContain('&lt;b&gt;glm&lt;/b&gt;');
    expect(html).toContain('key revoked &lt;script&gt;');
    expect(html).not.toContain('<script');
    expect(html).not.toContain('javascript:');
    const verify = renderDashboard(data({ accountDetails: [{ ...data().accountDetails![1]!, verifyUrl: 'https://accounts.google.com/x?a=1&b=2' }] }), NOW);
    expect(verify).toContain('<a href="https://accounts.google.com/x?a=1&amp;b=2" rel="noreferrer">verify the account</a>');
  });

  test('usage the database refuses: the alert claims no more than the error says of what waits in memory and what was dropped', () => {
    const waiting = 'cannot write usage to the database: database or disk is full (3 record(s) waiting in memory)';
    const dropped = 'cannot write usage to the database: database or disk is full (50000 record(s) waiting in memory; 120 older one(s) dropped, at most 50000 are kept)';
    expect(renderDashboard(data({ usageError: waiting }), NOW)).toContain(`<p class="alert">${waiting}; requests are still served.</p>`);
    const page = renderDashboard(data({ usageError: dropped }), NOW);
    expect(page).toContain(`<p class="alert">${dropped}; requests are still served.</p>`);
    expect(page).not.toContain('their usage waits in memory');
  });

  test('an empty pool says how to add an account', () => {
    const empty = renderDashboard(data({ status: 'no_accounts', accounts: { total: 0 }, accountDetails: [] }), NOW);
    expect(empty).toContain('No accounts yet: add one with <code>mcp accounts add</code>.');
    expect(empty).toContain('<span class="status no_accounts">no accounts</span>');
  });
});

test('helpers', () => {
  expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  expect([59, 60, 3599, 3600, 86_399, 90_000].map(duration)).toEqual(['59s', '1m', '59m', '1h0m', '23h59m', '1d1h']);
});
