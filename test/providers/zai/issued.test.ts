import { describe, expect, test } from 'bun:test';
import { createIssuedSignatures } from '../../../src/providers/zai/issued.ts';

const sig = (n: number) => ['zai', 'sig', 'FAKE', String(n).padStart(8, '0')].join('-');

describe('the signatures Z.AI issued', () => {
  test('holds at most its bound, forgetting the oldest first', () => {
    const issued = createIssuedSignatures(3);
    for (let i = 0; i < 5; i++) issued.remember(sig(i));
    expect(issued.size()).toBe(3);
    expect([0, 1, 2, 3, 4].map((i) => issued.has(sig(i)))).toEqual([false, false, true, true, true]);
  });

  test('a signature seen again is kept as the newest; an empty one is never claimed', () => {
    const issued = createIssuedSignatures(2);
    issued.remember(sig(0));
    issued.remember(sig(1));
    issued.remember(sig(0));
    issued.remember(sig(2));
    expect([issued.has(sig(0)), issued.has(sig(1)), issued.has(sig(2))]).toEqual([true, false, true]);
    issued.remember('');
    expect(issued.has('')).toBe(false);
  });
});
