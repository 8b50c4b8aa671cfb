// Looking accounts up by what people type: an id first, then a label, whatever order the rows are in.
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findAccount, setStatusIf, updateAccount, upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase, StoreError } from '../../src/store/db.ts';

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

describe('a token refresh that ends after a new login here (the CLI, while the server runs)', () => {
  // The server refreshes with the token it holds in memory; `mcp accounts add` may store a new login
  // meanwhile. Its write must not put the old refresh token back, nor mark the new login invalid.
  const google = (refreshToken: string) =>
    ({ provider: 'antigravity', email: 'erin@example.com', credentials: { kind: 'oauth', refreshToken } }) as const;
  const OLD = ['FAKE', 'refresh', 'old'].join('-');
  const NEW = ['FAKE', 'refresh', 'new'].join('-');

  test('does not put the old refresh token back, or mark the new login invalid', () => {
    const db = fresh();
    const { account } = upsertAccount(db, google(OLD), 1000);
    upsertAccount(db, google(NEW), 2000);
    const late = updateAccount(db, account.id, { credentials: { kind: 'oauth', refreshToken: OLD, accessToken: 'FAKE-access', expiresAt: 9000 }, ifRefreshToken: [OLD] }, 3000);
    expect(late?.credentials).toEqual({ kind: 'oauth', refreshToken: NEW });
    updateAccount(db, account.id, { status: 'invalid', statusReason: 'invalid_grant', ifRefreshToken: [OLD] }, 3000);
    expect(findAccount(db, account.id)).toMatchObject({ status: 'active', credentials: { kind: 'oauth', refreshToken: NEW }, updatedAt: 2000 });
    db.close();
  });

  test("the server's verdict on the old login is not stored over the new one", () => {
    const db = fresh();
    const { account } = upsertAccount(db, google(OLD), 1000);
    upsertAccount(db, google(NEW), 2000);
    const invalid = { status: 'invalid', statusReason: 'invalid_grant', verifyUrl: null } as const;
    expect(setStatusIf(db, account.id, ['active'], invalid, 3000, OLD)).toMatchObject({ changed: false, account: { status: 'active' } });
    expect(findAccount(db, account.id)).toMatchObject({ status: 'active', updatedAt: 2000 });
    expect(setStatusIf(db, account.id, ['active'], invalid, 3000, NEW)).toMatchObject({ changed: true, account: { status: 'invalid' } });
    expect(findAccount(db, account.id)).toMatchObject({ status: 'invalid', statusReason: 'invalid_grant', updatedAt: 3000 });
    db.close();
  });

  test('is stored when the refresh token is still the one it used', () => {
    const db = fresh();
    const { account } = upsertAccount(db, google(OLD), 1000);
    const creds = { kind: 'oauth', refreshToken: OLD, accessToken: 'FAKE-access', expiresAt: 9000 } as const;
    expect(updateAccount(db, account.id, { credentials: creds, ifRefreshToken: [OLD] }, 3000)?.credentials).toEqual(creds);
    expect(findAccount(db, account.id)?.credentials).toEqual(creds);
    expect(findAccount(db, account.id)).not.toHaveProperty('ifRefreshToken');
    db.close();
  });
});

test('a Google login again with the e-mail in other capitals updates the same account (e-mail addresses ignore case)', () => {
  const db = fresh();
  const google = (email: string, refreshToken: string) => ({ provider: 'antigravity' as const, email, credentials: { kind: 'oauth' as const, refreshToken } });
  const first = upsertAccount(db, google('Alice.Smith@Example.com', ['FAKE', 'refresh', 'one'].join('-')), 1000);
  const again = upsertAccount(db, google('alice.smith@example.com', ['FAKE', 'refresh', 'two'].join('-')), 2000);
  expect(again.created).toBe(false);
  expect(again.account.id).toBe(first.account.id);
  expect(again.account.credentials).toEqual({ kind: 'oauth', refreshToken: ['FAKE', 'refresh', 'two'].join('-') });
  db.close();
});

test('a rename to a label another account took meanwhile is the clear one-line refusal, and changes nothing', () => {
  // `mcp accounts set --label` looks for the label before it writes; a second `set` or `add --label`
  // may take it in between. The store's own check must then say what the CLI's would have said.
  const db = fresh();
  const a = upsertAccount(db, { provider: 'zai', label: 'a', credentials: { kind: 'api_key', apiKey: key('race-a') } }).account;
  upsertAccount(db, { provider: 'zai', label: 'taken', credentials: { kind: 'api_key', apiKey: key('race-b') } });
  let thrown: unknown;
  try {
    updateAccount(db, a.id, { label: 'taken', meta: { maxConcurrent: 2 } });
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(StoreError);
  expect((thrown as Error).message).toBe('an account labelled "taken" already exists');
  expect(findAccount(db, a.id)).toMatchObject({ label: 'a', meta: {} });
  // Its own label is no clash.
  expect(updateAccount(db, a.id, { label: 'a' })?.label).toBe('a');
  db.close();
});
