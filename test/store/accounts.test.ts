// Looking accounts up by what people type: an id first, then a label, whatever order the rows are in.
import { afterAll, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findAccount, updateAccount, upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';

const dir = mkdtempSync(join(tmpdir(), 'mcp-accounts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => openDatabase(join(dir, `proxy-${++n}.db`));
const key = (s: string) => ['FAKE', 'zai', s].join('-');

test('an id wins over another account whose label is that id, whichever row comes first', () => {
  const db = fresh();
  // The account labelled with the id is stored first (lower rowid, older created_at), so a lookup
  // that took "the first row matching id or label" would find it instead of the account itself.
  const shadow = upsertAccount(db, { provider: 'zai', label: 'shadow', credentials: { kind: 'api_key', apiKey: key('shadow') } }, 1000).account;
  const real = upsertAccount(db, { provider: 'zai', label: 'real', credentials: { kind: 'api_key', apiKey: key('real') } }, 2000).account;
  updateAccount(db, shadow.id, { label: real.id });
  expect(findAccount(db, real.id)?.label).toBe('real');
  // The shadowing account is still found by its own id.
  expect(findAccount(db, shadow.id)?.label).toBe(real.id);
  // And the other way round: the account itself stored first.
  const db2 = fresh();
  const first = upsertAccount(db2, { provider: 'zai', label: 'first', credentials: { kind: 'api_key', apiKey: key('first') } }, 1000).account;
  const second = upsertAccount(db2, { provider: 'zai', label: 'second', credentials: { kind: 'api_key', apiKey: key('second') } }, 2000).account;
  updateAccount(db2, second.id, { label: first.id });
  expect(findAccount(db2, first.id)?.label).toBe('first');
  db.close();
  db2.close();
});

test('a label is matched exactly, after ids; nothing matching is null', () => {
  const db = fresh();
  const a = upsertAccount(db, { provider: 'zai', label: 'Work', credentials: { kind: 'api_key', apiKey: key('work') } }).account;
  expect(findAccount(db, 'Work')?.id).toBe(a.id);
  expect(findAccount(db, 'work')).toBeNull();
  expect(findAccount(db, ' Work')).toBeNull();
  expect(findAccount(db, 'nobody')).toBeNull();
  db.close();
});
