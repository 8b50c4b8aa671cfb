import { describe, expect, test } from 'bun:test';
import { createSignatureStore, isClaudeRForm, MIN_SIGNATURE_LENGTH } from '../../../src/providers/antigravity/signatures.ts';
import sigs from '../../fixtures/antigravity/signatures.json';

describe('signature family by shape', () => {
  test.each([
    ['a Claude R-form signature (base64 of an E… signature)', sigs.claude, true],
    ['the capture-style R-form prefix', `RW9ZQ0NwUUJDQkVRQWhnQ0trRE9qbGZyRVZRclExL1FTbFU0aStnYlpE`, true],
    ['a Gemini signature', sigs.gemini, false],
    ['an Anthropic E-form signature', `EqQBCkgIBxABGAIqQH${'A'.repeat(60)}`, false],
    ['a short R… string', 'RW9ZQ0Nw', false],
    ['R-prefixed garbage that does not decode to base64 text', `R${'/'.repeat(60)}`, false],
    ['the sentinel', 'skip_thought_signature_validator', false],
  ])('%s', (_n, sig, expected) => expect(isClaudeRForm(sig)).toBe(expected));
});

describe('createSignatureStore', () => {
  test('remembers which family minted a thinking signature; R-form is known as claude even when forgotten', () => {
    const store = createSignatureStore();
    store.rememberThinking(sigs.gemini, 'gemini');
    expect(store.thinkingFamily(sigs.gemini)).toBe('gemini');
    expect(createSignatureStore().thinkingFamily(sigs.gemini)).toBeUndefined();
    expect(createSignatureStore().thinkingFamily(sigs.claude)).toBe('claude');
  });

  test('signatures shorter than the minimum are not remembered', () => {
    const store = createSignatureStore();
    const short = 'E'.repeat(MIN_SIGNATURE_LENGTH - 1);
    store.rememberThinking(short, 'gemini');
    expect(store.thinkingFamily(short)).toBeUndefined();
  });

  test('tool calls and per-session tool naming are remembered by key', () => {
    const store = createSignatureStore();
    store.rememberToolCall('call_1', { name: 'Read', signature: sigs.gemini, family: 'gemini' });
    expect(store.toolCall('call_1')).toEqual({ name: 'Read', signature: sigs.gemini, family: 'gemini' });
    expect(store.toolCall('call_2')).toBeUndefined();
    const naming = { original: new Map([['a_b', 'a.b']]), placeholders: new Set(['a_b']) };
    store.rememberTools('sess', naming);
    expect(store.tools('sess')).toEqual(naming);
    expect(store.tools('other')).toBeUndefined();
  });

  test('tool naming of one conversation accumulates across requests with different tool sets (subagents)', () => {
    const store = createSignatureStore();
    store.rememberTools('sess', { original: new Map([['a_b', 'a.b']]), placeholders: new Set(['a_b']) });
    store.rememberTools('sess', { original: new Map([['c_d', 'c d']]), placeholders: new Set(['Empty']) });
    expect(store.tools('sess')).toEqual({
      original: new Map([
        ['a_b', 'a.b'],
        ['c_d', 'c d'],
      ]),
      placeholders: new Set(['a_b', 'Empty']),
    });
  });

  test('entries expire after the TTL', () => {
    let now = 1_000;
    const store = createSignatureStore({ ttlMs: 100, now: () => now });
    store.rememberToolCall('call_1', { name: 'Read', signature: null, family: 'gemini' });
    now += 99;
    expect(store.toolCall('call_1')).toBeDefined();
    now += 1;
    expect(store.toolCall('call_1')).toBeUndefined();
  });

  test('the least recently used entry is evicted past maxEntries; reads refresh recency', () => {
    const store = createSignatureStore({ maxEntries: 2 });
    const rec = { name: 'X', signature: null, family: 'claude' as const };
    store.rememberToolCall('a', rec);
    store.rememberToolCall('b', rec);
    expect(store.toolCall('a')).toBeDefined(); // a is now the most recent
    store.rememberToolCall('c', rec);
    expect(store.toolCall('b')).toBeUndefined();
    expect(store.toolCall('a')).toBeDefined();
    expect(store.toolCall('c')).toBeDefined();
  });
});

describe('createSignatureStore memory', () => {
  test('expired entries that are never read again are dropped, not held until maxEntries pushes them out', () => {
    let now = 0;
    const store = createSignatureStore({ ttlMs: 1_000, now: () => now });
    const rec = { name: 'X', signature: null, family: 'claude' as const };
    for (let i = 0; i < 500; i++) {
      store.rememberToolCall(`call_${i}`, rec);
      store.rememberThinking(`${sigs.gemini}${i}`, 'gemini');
      store.rememberTools(`session_${i}`, { original: new Map([['a_b', 'a.b']]), placeholders: new Set() });
      store.rememberImage(`picture-${i}`, sigs.gemini);
    }
    expect(store.size()).toBe(2_000);
    // Hours later, one new conversation: what the earlier ones left is gone.
    now += 5_000;
    store.rememberToolCall('fresh', rec);
    expect(store.size()).toBe(1);
    expect(store.toolCall('fresh')).toBeDefined();
  });

  test('an entry still within its TTL survives the sweep', () => {
    let now = 0;
    const store = createSignatureStore({ ttlMs: 1_000, now: () => now });
    const rec = { name: 'X', signature: null, family: 'claude' as const };
    store.rememberToolCall('old', rec);
    now = 900;
    store.rememberToolCall('young', rec);
    now = 1_200;
    store.rememberToolCall('new', rec);
    expect(store.toolCall('old')).toBeUndefined();
    expect(store.toolCall('young')).toBeDefined();
    expect(store.toolCall('new')).toBeDefined();
  });
});
