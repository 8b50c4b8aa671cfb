import { afterEach, describe, expect, test } from 'bun:test';
import { loadBindings, saveBindings } from '../../src/store/bindings.ts';
import { cleanupDbs, tempDb } from '../gateway/helpers.ts';

afterEach(cleanupDbs);

const b = (session: string, boundAt: number, accountId = 'acc_a') => ({ family: 'google:claude', session, accountId, boundAt });

describe('session bindings in the store', () => {
  test('whether only side requests bound a conversation is kept, and a main request binding it again clears it', () => {
    const { db } = tempDb();
    saveBindings(db, [{ ...b('s1', 100), side: true }, b('s2', 100)], 0, 10);
    expect(loadBindings(db, 0, 10)).toEqual([{ ...b('s1', 100), side: true }, b('s2', 100)]);
    saveBindings(db, [b('s1', 200)], 0, 10);
    expect(loadBindings(db, 0, 10).find((x) => x.session === 's1')).toEqual(b('s1', 200));
  });

  test('a conversation bound again keeps one row, with its newest account', () => {
    const { db } = tempDb();
    saveBindings(db, [b('s1', 100)], 0, 10);
    saveBindings(db, [b('s1', 200, 'acc_b')], 0, 10);
    expect(loadBindings(db, 0, 10)).toEqual([b('s1', 200, 'acc_b')]);
    db.close();
  });

  test('loads oldest first, so the newest are the last an LRU forgets', () => {
    const { db } = tempDb();
    saveBindings(db, [b('new', 300), b('old', 100), b('mid', 200)], 0, 10);
    expect(loadBindings(db, 0, 2).map((x) => x.session)).toEqual(['mid', 'new']);
    db.close();
  });

  test('the table stays bounded: rows past their age or beyond the newest `keep` are deleted', () => {
    const { db } = tempDb();
    saveBindings(db, Array.from({ length: 50 }, (_, i) => b(`s${i}`, 1_000 + i)), 0, 20);
    expect(loadBindings(db, 0, 1_000).map((x) => x.session)).toEqual(Array.from({ length: 20 }, (_, i) => `s${30 + i}`));
    saveBindings(db, [b('late', 5_000)], 1_045, 20);
    expect(loadBindings(db, 0, 1_000).map((x) => x.session)).toEqual(['s45', 's46', 's47', 's48', 's49', 'late']);
    db.close();
  });
});
