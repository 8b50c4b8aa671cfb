import { describe, expect, test } from 'bun:test';
import { shellQuote, typeSecret } from '../../src/cli/output.ts';
import { maskSecret, relativeTime, renderTable } from '../../src/cli/output.ts';

describe('maskSecret', () => {
  test('shows only the first and last four characters of a long key', () => {
    const key = ['sk', 'FAKEabcdefghijklmnopqrstuvwxyz0123'].join('-');
    const masked = maskSecret(key);
    expect(masked).toBe('sk-F…0123');
    expect(masked).not.toContain('mnopq');
  });
  test('shows at most two characters of a short secret', () => {
    expect(maskSecret('abcdefgh')).toBe('ab…');
  });
  test('prints nothing for no secret', () => {
    expect(maskSecret(null)).toBe('');
    expect(maskSecret('')).toBe('');
  });
});

describe('renderTable', () => {
  test('aligns columns to the widest cell and trims trailing space', () => {
    const text = renderTable(['ID', 'LABEL'], [['acc_1', 'a'], ['b', 'longer-label']]);
    expect(text.split('\n')).toEqual(['ID     LABEL', 'acc_1  a', 'b      longer-label']);
  });
});

describe('relativeTime', () => {
  const now = 1_000_000_000;
  test.each([
    [null, 'never'],
    [now - 2_000, 'just now'],
    [now - 90_000, '1m ago'],
    [now - 3 * 3600_000, '3h ago'],
    [now - 2 * 86400_000, '2d ago'],
    [now + 5 * 60_000, 'in 5m'],
  ])('%p reads as %p', (at, text) => {
    expect(relativeTime(at, now)).toBe(text);
  });
});

describe('typeSecret (a key typed at a terminal, not echoed)', () => {
  test('collects characters up to Enter, a pasted line included', () => {
    expect(typeSecret('', 'zai-key-0123\r')).toEqual({ text: 'zai-key-0123', done: 'enter' });
    expect(typeSecret('zai-', 'key\n')).toEqual({ text: 'zai-key', done: 'enter' });
    expect(typeSecret('', 'abc')).toEqual({ text: 'abc', done: null });
  });

  test('backspace removes the last character; Ctrl-U the whole line', () => {
    expect(typeSecret('abc', '\u007f\u007fd\r')).toEqual({ text: 'ad', done: 'enter' });
    expect(typeSecret('abc', '\u0015x\r')).toEqual({ text: 'x', done: 'enter' });
  });

  test('Ctrl-C cancels; Ctrl-D on an empty line ends input', () => {
    expect(typeSecret('abc', '\u0003').done).toBe('cancel');
    expect(typeSecret('', '\u0004').done).toBe('eof');
  });
});

describe('shellQuote', () => {
  test('leaves plain words alone and quotes the rest so a shell reads them back as one word', () => {
    expect(shellQuote('/home/u/.config/multi-claude-proxy/backups/proxy-20261204-061042.db')).toBe('/home/u/.config/multi-claude-proxy/backups/proxy-20261204-061042.db');
    for (const word of ["/Users/Jane Doe/mcp backup.db", "it's", '$HOME', 'a;b']) {
      const echoed = Bun.spawnSync(['sh', '-c', `printf '%s' ${shellQuote(word)}`]).stdout.toString();
      expect(echoed).toBe(word);
    }
  });
});
