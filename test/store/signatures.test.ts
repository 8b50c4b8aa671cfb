import { afterEach, expect, test } from 'bun:test';
import { loadCallSignatures, loadImageSignatures, loadIssued, saveCallSignatures, saveImageSignatures, saveIssued } from '../../src/store/signatures.ts';
import { cleanupDbs, tempDb } from '../gateway/helpers.ts';

afterEach(cleanupDbs);

test('issued signature hashes come back per provider, oldest first, with a re-issued one moved to the back', () => {
  const { db } = tempDb();
  saveIssued(db, 'zai', [{ hash: 1, issuedAt: 100 }, { hash: 2, issuedAt: 200 }], 0, 10);
  saveIssued(db, 'antigravity', [{ hash: 9, issuedAt: 150 }], 0, 10);
  saveIssued(db, 'zai', [{ hash: 1, issuedAt: 300 }], 0, 10);
  expect(loadIssued(db, 'zai', 0, 10)).toEqual([2, 1]);
  expect(loadIssued(db, 'antigravity', 0, 10)).toEqual([9]);
});

test('the table keeps no more than the newest `keep` of a provider, and none older than `since`', () => {
  const { db } = tempDb();
  saveIssued(db, 'zai', Array.from({ length: 30 }, (_, i) => ({ hash: 2 ** 52 + i, issuedAt: 1_000 + i })), 0, 20);
  expect(loadIssued(db, 'zai', 0, 100)).toEqual(Array.from({ length: 20 }, (_, i) => 2 ** 52 + 10 + i));
  saveIssued(db, 'zai', [{ hash: 7, issuedAt: 5_000 }], 1_025, 20);
  expect(loadIssued(db, 'zai', 0, 100)).toEqual([...Array.from({ length: 5 }, (_, i) => 2 ** 52 + 25 + i), 7]);
});

test('Gemini call signatures come back oldest first, the newest `keep` only, none older than `since`', () => {
  const { db } = tempDb();
  const call = (i: number) => ({ toolUseId: `call_${i}`, signature: i % 2 ? `sig-${i}` : null, minted: i % 2 === 0, issuedAt: 1_000 + i });
  saveCallSignatures(db, Array.from({ length: 5 }, (_, i) => call(i)), 0, 3);
  expect(loadCallSignatures(db, 0, 10)).toEqual([2, 3, 4].map((i) => ({ toolUseId: `call_${i}`, signature: i % 2 ? `sig-${i}` : null, minted: i % 2 === 0 })));
  saveCallSignatures(db, [{ ...call(9), issuedAt: 5_000 }], 1_004, 3);
  expect(loadCallSignatures(db, 0, 10).map((c) => c.toolUseId)).toEqual(['call_4', 'call_9']);
  expect(loadCallSignatures(db, 4_000, 10).map((c) => c.toolUseId)).toEqual(['call_9']);
});

test("drawn pictures' signatures come back by hash, oldest first, a redrawn one moved to the back, the newest `keep` only, none older than `since`", () => {
  const { db } = tempDb();
  // Hashes up to 53 bits (the provider's key) come back exact.
  const pic = (i: number) => ({ hash: 2 ** 52 + i, signature: `FAKE-picture-sig-${i}`, issuedAt: 1_000 + i });
  saveImageSignatures(db, Array.from({ length: 5 }, (_, i) => pic(i)), 0, 3);
  expect(loadImageSignatures(db, 0, 10)).toEqual([2, 3, 4].map((i) => ({ hash: 2 ** 52 + i, signature: `FAKE-picture-sig-${i}` })));
  // The same picture signed again: one row, with the newer signature, now the newest.
  saveImageSignatures(db, [{ ...pic(2), signature: 'FAKE-picture-sig-again', issuedAt: 2_000 }], 0, 3);
  expect(loadImageSignatures(db, 0, 10)).toEqual([
    { hash: 2 ** 52 + 3, signature: 'FAKE-picture-sig-3' },
    { hash: 2 ** 52 + 4, signature: 'FAKE-picture-sig-4' },
    { hash: 2 ** 52 + 2, signature: 'FAKE-picture-sig-again' },
  ]);
  saveImageSignatures(db, [{ ...pic(9), issuedAt: 5_000 }], 1_005, 3);
  expect(loadImageSignatures(db, 0, 10).map((i) => i.hash - 2 ** 52)).toEqual([2, 9]);
  expect(loadImageSignatures(db, 4_000, 10).map((i) => i.hash - 2 ** 52)).toEqual([9]);
  expect(loadImageSignatures(db, 0, 1).map((i) => i.hash - 2 ** 52)).toEqual([9]);
});
