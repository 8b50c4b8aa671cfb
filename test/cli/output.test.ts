import { describe, expect, test } from 'bun:test';
import { maskSecret, relativeTime, renderTable } from '../../src/cli/output.ts';

describe('maskSecret', () => {
  test('shows only the first and last four characters of a long key', () => {
    const key = 'sk-abcdefghijklmnopqrstuvwxyz0123';
    const masked = maskSecret(key);
    expect(masked).toBe('sk-a…0123');
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
