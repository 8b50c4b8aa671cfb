import { heapStats } from 'bun:jsc';
import { describe, expect, test } from 'bun:test';
import { createSignatureStore, DEFAULT_MAX_BYTES, isClaudeRForm, MIN_SIGNATURE_LENGTH, THINKING_TTL_MS } from '../../../src/providers/antigravity/signatures.ts';
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

  test("a Gemini thinking signature's family is known for a week, not the 2 h of tool calls: a conversation idle over lunch keeps its thinking", () => {
    let now = 0;
    const store = createSignatureStore({ now: () => now });
    store.rememberThinking(sigs.gemini, 'gemini');
    store.rememberToolCall('call_1', { name: 'Read', signature: null, family: 'gemini' });
    now += 3 * 60 * 60 * 1000;
    store.rememberToolCall('call_2', { name: 'Read', signature: null, family: 'gemini' }); // a write sweeps
    expect(store.toolCall('call_1')).toBeUndefined();
    expect(store.thinkingFamily(sigs.gemini)).toBe('gemini');
    now += THINKING_TTL_MS;
    expect(store.thinkingFamily(sigs.gemini)).toBeUndefined();
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

  test("a drawn picture's signature is told with a 53-bit hash of the picture (never the picture), and a store made from what was told gives it back", () => {
    const told: Array<{ hash: number; signature: string }> = [];
    const picture = `iVBORw0KGgo${'FAKEPICTURE'.repeat(40)}`;
    createSignatureStore({ onImage: (i) => told.push(i) }).rememberImage(picture, sigs.gemini);
    expect(told).toHaveLength(1);
    expect(told[0]!.signature).toBe(sigs.gemini);
    // A key an SQLite integer holds exactly.
    expect(Number.isSafeInteger(told[0]!.hash)).toBe(true);
    expect(JSON.stringify(told)).not.toContain('FAKEPICTURE');
    // After a restart: the same picture, sent back as history, finds its signature; another does not.
    const restarted = createSignatureStore({ knownImages: told });
    expect(restarted.imageSignature(picture)).toBe(sigs.gemini);
    expect(restarted.imageSignature(`${picture}A`)).toBeUndefined();
  });
});

describe('createSignatureStore memory', () => {
  test('expired entries that are never read again are dropped, not held until maxEntries pushes them out', () => {
    let now = 0;
    const store = createSignatureStore({ ttlMs: 1_000, thinkingTtlMs: 1_000, now: () => now });
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

describe('createSignatureStore byte budget', () => {
  // Sizes from the captures: a Gemini function call's thoughtSignature is 5,506 characters.
  const GEMINI_LEN = 5_506;
  const base = `Ep0g${'A'.repeat(GEMINI_LEN - 12)}`;
  /** A distinct capture-sized signature, made again from `i` whenever it is needed (the test holds none). */
  const big = (i: number): string => Buffer.from(`${base}${i.toString(36).padStart(8, '0')}`, 'latin1').toString('latin1');
  const heap = (): number => {
    Bun.gc(true);
    return heapStats().heapSize;
  };

  test('a store filled with thousands of large tool-call signatures keeps no more heap than its byte budget', () => {
    const store = createSignatureStore();
    const before = heap();
    for (let i = 0; i < 6_000; i++) store.rememberToolCall(`call_${i}`, { name: 'run_command', signature: big(i), family: 'gemini' });
    const kept = heap() - before;
    // 6,000 x 5.5 KB was 33 MB held; the default budget is 16 MB for the whole store.
    expect(kept).toBeLessThan(DEFAULT_MAX_BYTES);
    // What the conversations in progress need, the latest calls, is still there.
    expect(store.toolCall('call_5999')?.signature).toBe(big(5_999));
  });

  test("the store's byte count is what it keeps, even for signatures parsed from a UTF-16 chunk", () => {
    // A chunk with one character beyond Latin-1 parses into UTF-16 strings, two bytes a character.
    const wide = (i: number): string => (JSON.parse(JSON.stringify({ t: '—', s: big(i) })) as { s: string }).s;
    const store = createSignatureStore();
    const before = heap();
    for (let i = 0; i < 1_500; i++) store.rememberToolCall(`call_${i}`, { name: 'run_command', signature: wide(i), family: 'gemini' });
    const kept = heap() - before;
    expect(store.size()).toBe(1_500);
    expect(kept).toBeLessThan(store.bytes() * 1.25);
    expect(store.toolCall('call_7')?.signature).toBe(big(7));
  });

  test('the family map is keyed by a hash: it holds no signature string, and still knows signatures seen before', () => {
    const store = createSignatureStore();
    const before = heap();
    for (let i = 0; i < 3_000; i++) store.rememberThinking(big(i), 'gemini');
    const kept = heap() - before;
    // 3,000 x 5.5 KB of keys would be 16 MB; hashed entries are a few hundred bytes each.
    expect(kept).toBeLessThan(2 * 1024 * 1024);
    expect(store.thinkingFamily(big(0))).toBe('gemini');
    expect(store.thinkingFamily(big(2_999))).toBe('gemini');
    expect(store.thinkingFamily(big(3_000))).toBeUndefined();
  });

  test('a Claude R-form signature is not stored: its shape already says claude', () => {
    const store = createSignatureStore();
    store.rememberThinking(sigs.claude, 'claude');
    expect(store.size()).toBe(0);
    expect(store.thinkingFamily(sigs.claude)).toBe('claude');
  });

  test('an R-form signature some other family minted is remembered with that family', () => {
    const store = createSignatureStore();
    store.rememberThinking(sigs.claude, 'gemini');
    expect(store.thinkingFamily(sigs.claude)).toBe('gemini');
  });

  test('the store counts its bytes and never holds more than maxBytes, evicting the least recently used', () => {
    const maxBytes = 256 * 1024;
    const store = createSignatureStore({ maxBytes });
    for (let i = 0; i < 500; i++) {
      store.rememberToolCall(`call_${i}`, { name: 'run_command', signature: big(i), family: 'gemini' });
      store.rememberImage(`picture-${i}`, big(i));
      store.rememberThinking(big(i), 'gemini');
      store.rememberTools(`session_${i}`, { original: new Map([['a_b', 'a.b']]), placeholders: new Set() });
      expect(store.bytes()).toBeLessThanOrEqual(maxBytes);
    }
    expect(store.toolCall('call_0')).toBeUndefined();
    expect(store.toolCall('call_499')?.signature).toBe(big(499));
    expect(store.imageSignature('picture-499')).toBe(big(499));
    expect(store.imageSignature('picture-0')).toBeUndefined();
  });

  test('a flood of tool calls does not push out the tool naming of a conversation: each map has its own share', () => {
    const store = createSignatureStore({ maxBytes: 256 * 1024 });
    store.rememberTools('sess', { original: new Map([['a_b', 'a.b']]), placeholders: new Set() });
    store.rememberThinking(big(-1), 'gemini');
    for (let i = 0; i < 500; i++) store.rememberToolCall(`call_${i}`, { name: 'run_command', signature: big(i), family: 'gemini' });
    expect(store.tools('sess')?.original.get('a_b')).toBe('a.b');
    expect(store.thinkingFamily(big(-1))).toBe('gemini');
  });

  test('an entry larger than its share is not kept and evicts nothing', () => {
    const store = createSignatureStore({ maxBytes: 64 * 1024 });
    store.rememberToolCall('small', { name: 'Read', signature: big(1), family: 'gemini' });
    store.rememberToolCall('huge', { name: 'Read', signature: 'E'.repeat(200_000), family: 'gemini' });
    expect(store.toolCall('huge')).toBeUndefined();
    expect(store.toolCall('small')?.signature).toBe(big(1));
  });

  test('only a Gemini call keeps its signature: nothing else replays it', () => {
    const store = createSignatureStore();
    store.rememberToolCall('toolu_vrtx_1', { name: 'Read', signature: sigs.claude, family: 'claude' });
    expect(store.toolCall('toolu_vrtx_1')).toEqual({ name: 'Read', signature: null, family: 'claude' });
  });

  test('expired entries give their bytes back', () => {
    let now = 0;
    const store = createSignatureStore({ ttlMs: 1_000, thinkingTtlMs: 1_000, now: () => now });
    store.rememberToolCall('old', { name: 'Read', signature: big(1), family: 'gemini' });
    store.rememberImage('picture', big(2));
    store.rememberTools('sess', { original: new Map([['a_b', 'a.b']]), placeholders: new Set(['a_b']) });
    store.rememberThinking(big(3), 'gemini');
    expect(store.bytes()).toBeGreaterThan(2 * 5_506); // the call and the picture; the family entry is a hash
    now = 5_000;
    store.rememberToolCall('new', { name: 'Read', signature: null, family: 'gemini' });
    expect(store.size()).toBe(1);
    expect(store.bytes()).toBeLessThan(1_024);
  });

  test('tool naming merged into a conversation is counted again, growing its bytes', () => {
    const store = createSignatureStore();
    store.rememberTools('sess', { original: new Map([['a_b', 'a.b']]), placeholders: new Set() });
    const one = store.bytes();
    store.rememberTools('sess', { original: new Map([['c_d', 'c d']]), placeholders: new Set(['c_d']) });
    expect(store.bytes()).toBeGreaterThan(one);
    store.rememberTools('sess', { original: new Map([['a_b', 'a.b']]), placeholders: new Set() });
    expect(store.size()).toBe(1);
  });
});
