// The hashes of issued thinking signatures are written in the background; once the server stops
// (its last flush) and closes the database, nothing may keep trying to write them every second.
// The last flush also stores the account changes a lock held back.
import { Database } from 'bun:sqlite';
import { afterEach, expect, spyOn, test } from 'bun:test';
import { providerDepsFor } from '../../src/gateway/index.ts';
import { findAccount } from '../../src/store/accounts.ts';
import { loadCallSignatures, loadImageSignatures, loadIssued } from '../../src/store/signatures.ts';
import { openDatabase } from '../../src/store/db.ts';
import { configureLog, log } from '../../src/log.ts';
import { addZai, cleanupDbs, T0, tempDb } from './helpers.ts';

afterEach(cleanupDbs);
afterEach(() => configureLog({ format: 'pretty' }));

/** A little past the background write's period (ISSUED_FLUSH_MS, 1 s). */
const PAST_ONE_ROUND_MS = 1_150;

test('a hash remembered after the last flush is not written to the closed database, now or later', async () => {
  const { db } = tempDb();
  const deps = providerDepsFor(db, () => T0);
  deps.issuedSignatures!.remember('zai', 1);
  deps.flush();
  db.close();
  const tries = spyOn(db, 'query');
  const exec = spyOn(db, 'exec');
  // A stream that was still ending when the server stopped.
  deps.issuedSignatures!.remember('zai', 2);
  await Bun.sleep(PAST_ONE_ROUND_MS);
  expect(tries).not.toHaveBeenCalled();
  expect(exec).not.toHaveBeenCalled();
});

test('a background write that finds the database closed gives up instead of retrying each second', async () => {
  const { db } = tempDb();
  const deps = providerDepsFor(db, () => T0);
  deps.issuedSignatures!.remember('zai', 1);
  db.close();
  const tries = spyOn(db, 'query');
  await Bun.sleep(2 * PAST_ONE_ROUND_MS);
  // The first round finds it closed; no second round follows.
  expect(tries.mock.calls.length).toBe(1);
});

test('the last flush still writes what was waiting', () => {
  const { db, path } = tempDb();
  const deps = providerDepsFor(db, () => T0);
  deps.issuedSignatures!.remember('zai', 7);
  deps.flush();
  db.close();
  const again = openDatabase(path);
  try {
    expect(loadIssued(again, 'zai', 0, 10)).toEqual([7]);
  } finally {
    again.close();
  }
});

test('an account change a lock refused is still stored by the last flush, before the database closes', () => {
  // A token refresh while the CLI held the lock waits for the next round (1 s); the server stopping
  // meanwhile must not drop it (a rotated refresh token would be lost with it).
  const { db, path } = tempDb();
  const account = addZai(db, 'a');
  const deps = providerDepsFor(db, () => T0);
  const cli = new Database(path);
  cli.exec('BEGIN IMMEDIATE');
  deps.updateAccount(account.id, { email: 'after-refresh@example.com' });
  cli.exec('COMMIT');
  cli.close();
  deps.flush();
  db.close();
  const again = openDatabase(path);
  try {
    expect(findAccount(again, account.id)?.email).toBe('after-refresh@example.com');
  } finally {
    again.close();
  }
});

test('hashes remembered while another process holds the lock are written on a later round, once it lets go', async () => {
  const { db, path } = tempDb();
  const deps = providerDepsFor(db, () => T0);
  const cli = new Database(path);
  cli.exec('BEGIN IMMEDIATE');
  deps.issuedSignatures!.remember('antigravity', 11);
  deps.callSignatures!.remember({ toolUseId: 'call_1', signature: 'FAKE-sig'.padEnd(60, '.'), minted: false });
  deps.imageSignatures!.remember({ hash: 12, signature: 'FAKE-picture-sig'.padEnd(60, '.') });
  // The first round meets the lock and keeps them.
  await Bun.sleep(PAST_ONE_ROUND_MS);
  cli.exec('COMMIT');
  cli.close();
  await Bun.sleep(PAST_ONE_ROUND_MS);
  expect(loadIssued(db, 'antigravity', 0, 10)).toEqual([11]);
  expect(loadCallSignatures(db, 0, 10).map((c) => c.toolUseId)).toEqual(['call_1']);
  expect(loadImageSignatures(db, 0, 10).map((i) => i.hash)).toEqual([12]);
  deps.flush();
});

// A refusal that is not a lock (read-only, a damaged table) was retried every second, for ever, and
// never said: the writes were lost all the same, and nobody knew.
test('hashes the database refuses for good (not a lock) are dropped and said once, without a hash; the other writes go on', async () => {
  const { db } = tempDb();
  const lines: string[] = [];
  log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
  const deps = providerDepsFor(db, () => T0);
  db.exec('ALTER TABLE issued_signatures RENAME TO issued_away');
  const tries = spyOn(db, 'query');
  const hash = 918_273_645;
  deps.issuedSignatures!.remember('zai', hash);
  deps.callSignatures!.remember({ toolUseId: 'call_9', signature: 'FAKE-sig'.padEnd(60, '.'), minted: false });
  await Bun.sleep(PAST_ONE_ROUND_MS);
  expect(lines).toEqual([
    'warn: could not store 1 thinking signature hash(es) of zai: dropped, as later ones will be while the database refuses them: no such table: issued_signatures',
  ]);
  // The Gemini call signatures behind it were still written.
  expect(loadCallSignatures(db, 0, 10).map((c) => c.toolUseId)).toEqual(['call_9']);
  const afterFirst = tries.mock.calls.length;
  // Not tried again on later rounds.
  await Bun.sleep(PAST_ONE_ROUND_MS);
  expect(tries.mock.calls.length).toBe(afterFirst);
  // A new hash is tried, refused and dropped again, but not said again.
  deps.issuedSignatures!.remember('zai', hash + 1);
  await Bun.sleep(PAST_ONE_ROUND_MS);
  expect(lines).toHaveLength(1);
  expect(lines.join('\n')).not.toContain(String(hash));
  // Once the table takes writes again, the hashes are stored as before.
  db.exec('ALTER TABLE issued_away RENAME TO issued_signatures');
  deps.issuedSignatures!.remember('zai', hash + 2);
  deps.flush();
  expect(loadIssued(db, 'zai', 0, 10)).toEqual([hash + 2]);
  tries.mockRestore();
});

// A drawn picture's signature was kept in memory only: a restart sent the picture back unsigned and
// the image model refused the conversation.
test("a drawn picture's signature remembered by the provider reaches the table on the next background round", async () => {
  const { db } = tempDb();
  const deps = providerDepsFor(db, () => T0);
  const signature = 'FAKE-picture-sig'.padEnd(60, '.');
  deps.imageSignatures!.remember({ hash: 2 ** 52 + 1, signature });
  expect(loadImageSignatures(db, 0, 10)).toEqual([]); // off the request path
  await Bun.sleep(PAST_ONE_ROUND_MS);
  expect(loadImageSignatures(db, 0, 10)).toEqual([{ hash: 2 ** 52 + 1, signature }]);
  // And a provider made over this database is handed it.
  expect(providerDepsFor(db, () => T0).imageSignatures!.load()).toEqual([{ hash: 2 ** 52 + 1, signature }]);
  deps.flush();
});

test("pictures' signatures the database refuses for good are dropped and said once, without the signature; the call signatures beside them are written", async () => {
  const { db } = tempDb();
  const lines: string[] = [];
  log.setReporters([{ log: (o) => lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
  const deps = providerDepsFor(db, () => T0);
  db.exec('ALTER TABLE image_signatures RENAME TO images_away');
  const signature = 'FAKE-picture-sig'.padEnd(60, '.');
  deps.imageSignatures!.remember({ hash: 5, signature });
  deps.callSignatures!.remember({ toolUseId: 'call_7', signature: 'FAKE-sig'.padEnd(60, '.'), minted: false });
  await Bun.sleep(PAST_ONE_ROUND_MS);
  expect(lines).toEqual([
    'warn: could not store 1 drawn picture signature(s): dropped, as later ones will be while the database refuses them: no such table: image_signatures',
  ]);
  expect(loadCallSignatures(db, 0, 10).map((c) => c.toolUseId)).toEqual(['call_7']);
  deps.imageSignatures!.remember({ hash: 6, signature });
  await Bun.sleep(PAST_ONE_ROUND_MS);
  expect(lines).toHaveLength(1);
  expect(lines.join('\n')).not.toContain('FAKE-picture-sig');
  db.exec('ALTER TABLE images_away RENAME TO image_signatures');
  deps.imageSignatures!.remember({ hash: 7, signature });
  deps.flush();
  expect(loadImageSignatures(db, 0, 10).map((i) => i.hash)).toEqual([7]);
});
