import { describe, expect, test } from 'bun:test';
import { fromByteString, parseJsonAsByteStrings, textCopyOf, toByteString, toByteStrings } from '../../src/anthropic/byte-strings.ts';
import { escapedJson } from '../fixtures/escaped-json.ts';

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');
/** The upstream body a value of text makes: its JSON as UTF-8. */
const textBytes = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), 'utf8');
/** The upstream body a value of byte strings makes: its JSON, one byte per character. */
const byteStringBytes = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), 'latin1');


const TEXTS = [
  'plain ASCII',
  'café',
  'a dash — and an arrow →',
  'a robot 🤖 and a flag 🇫🇷',
  'voilà', // ends in the byte 0xA0, which String#trim would take for a no-break space
  'Р', // D0 A0
  '\u00a0',
  '\ufeff inside',
  '\ufffd',
  'ÿ\u0080\u009f',
  'quote " backslash \\ slash /',
  'controls \u0001 \u001b[31m red \u007f',
  'tab\tnewline\n',
  '中文 日本語 한국어',
  '',
];

describe('toByteString and fromByteString', () => {
  test.each(TEXTS)('%j survives the round trip', (text) => {
    const bytes = toByteString(text);
    expect(Buffer.from(bytes, 'latin1').equals(utf8(text))).toBe(true);
    expect(fromByteString(bytes)).toBe(text);
  });

  test('ASCII is its own byte string', () => {
    expect(toByteString('hello')).toBe('hello');
    expect(fromByteString('hello')).toBe('hello');
  });

  test('a string with a character beyond Latin-1 is text already and is left alone', () => {
    expect(fromByteString('é and —')).toBe('é and —');
  });

  test('a UTF-8 sequence cut short becomes U+FFFD', () => {
    expect(fromByteString(`abc${toByteString('—').slice(0, 2)}`)).toBe('abc\ufffd');
  });

  test('a lone surrogate becomes U+FFFD, as in any UTF-8', () => {
    expect(fromByteString(toByteString('a\ud800b'))).toBe('a\ufffdb');
  });
});

describe('parseJsonAsByteStrings', () => {
  const value = (text: string) => ({ model: 'm', [`key ${text}`]: text, list: [text, { nested: text }], n: 1.5, ok: true, none: null });

  test.each(TEXTS)('%j: raw and escaped JSON give the same byte strings, and the same upstream bytes as text would', (text) => {
    const v = value(text);
    const raw = parseJsonAsByteStrings(utf8(JSON.stringify(v)));
    const escaped = parseJsonAsByteStrings(utf8(escapedJson(v)));
    expect(escaped).toEqual(raw);
    expect(byteStringBytes(raw).equals(textBytes(v))).toBe(true);
    expect(fromByteString((raw as { list: string[] }).list[0]!)).toBe(text);
  });

  test('every string is 8-bit: no character beyond 0xFF anywhere', () => {
    const parsed = parseJsonAsByteStrings(utf8(JSON.stringify(value(TEXTS.join(' | ')))));
    expect(/[^\x00-\xff]/.test(JSON.stringify(parsed))).toBe(false);
  });

  test('a byte order mark before the JSON is dropped', () => {
    expect(parseJsonAsByteStrings(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf8('{"a":"é"}')]))).toEqual({ a: toByteString('é') });
  });

  test('an escaped backslash before "u" is a backslash and a "u", not an escape', () => {
    expect(parseJsonAsByteStrings(utf8('{"a":"\\\\u00e9 é"}'))).toEqual({ a: toByteString('\\u00e9 é') });
  });

  test('escapes of ASCII characters (terminal colours in a tool result) keep the fast reading', () => {
    expect(parseJsonAsByteStrings(utf8('{"a":"\\u001b[31m é"}'))).toEqual({ a: toByteString('\u001b[31m é') });
  });

  test('an escaped lone surrogate becomes U+FFFD', () => {
    expect(fromByteString((parseJsonAsByteStrings(utf8('{"a":"x\\ud800y"}')) as { a: string }).a)).toBe('x\ufffdy');
  });

  test('renamed keys keep their order, and a "__proto__" key stays a plain key', () => {
    const parsed = parseJsonAsByteStrings(utf8('{"z":1,"é\\u00e9":2,"__proto__":{"x":3},"a":4}')) as Record<string, unknown>;
    expect(Object.keys(parsed)).toEqual(['z', toByteString('éé'), '__proto__', 'a']);
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
    expect(parsed.__proto__).toEqual({ x: 3 });
  });

  test('an escaped body nested 100 000 deep is converted without running out of stack', () => {
    const json = `{"a":"\\u00e9","x":${'['.repeat(100_000)}"\\u00e9"${']'.repeat(100_000)}}`;
    let v = (parseJsonAsByteStrings(utf8(json)) as { x: unknown }).x;
    for (let i = 0; i < 100_000; i++) v = (v as unknown[])[0];
    expect(v).toBe(toByteString('é'));
  });

  test('malformed JSON throws as JSON.parse does', () => {
    expect(() => parseJsonAsByteStrings(utf8('{"a": "é"'))).toThrow(SyntaxError);
  });

  test('random texts: the upstream bytes are always the text JSON as UTF-8', () => {
    const pool = ['a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\t', '\u0000', '\u001f', '\u007f', '\u0080', 'é', 'ÿ', '\u00a0', 'Ā', '—', '→', '\u2028', '\ufeff', '\uffff', '中', '🤖', '𝄞'];
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const text = (): string => Array.from({ length: rand(12) }, () => pool[rand(pool.length)]).join('');
    for (let i = 0; i < 500; i++) {
      const v = { [text()]: text(), arr: [text(), { [text()]: [text()] }] };
      const json = i % 2 ? escapedJson(v) : JSON.stringify(v);
      const parsed = parseJsonAsByteStrings(utf8(json));
      expect(byteStringBytes(parsed).equals(textBytes(v))).toBe(true);
    }
  });
});

describe('toByteStrings and textCopyOf', () => {
  test('toByteStrings converts a built value in place, keys too', () => {
    const v = { prompt: 'un chat — 猫', parts: [{ 'clé': 'valeur' }], n: 1 };
    expect(toByteStrings(v)).toBe(v);
    expect(byteStringBytes(v).equals(textBytes({ prompt: 'un chat — 猫', parts: [{ 'clé': 'valeur' }], n: 1 }))).toBe(true);
  });

  test('textCopyOf gives the text back and leaves the byte strings as they were', () => {
    const text = { q: 'météo à Zürich — demain', tools: [{ allowed_domains: ['example.ü'] }] };
    const bytes = toByteStrings(structuredClone(text));
    const before = JSON.stringify(bytes);
    expect(textCopyOf(bytes)).toEqual(text);
    expect(JSON.stringify(bytes)).toBe(before);
  });
});
