// Upgrades and downgrades by replacing the binary: a database an older mcp left is opened with every
// account, limit and usage row meaning what it meant; one a newer mcp left is refused untouched.
import { Database } from 'bun:sqlite';
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, openForReading, SCHEMA_VERSION } from '../../src/store/db.ts';

const dir = mkdtempSync(join(tmpdir(), 'mcp-upgrade-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const freshPath = () => join(dir, `proxy-${++n}.db`);

describe('a database from a newer mcp (a downgrade)', () => {
  // `mcp backup` writes its copies in rollback mode; put back as proxy.db (README, Backups), such a
  // copy is what an older binary meets after going back a version.
  test('in rollback mode (a backup put back) is refused with not a byte of it changed, and no WAL made', () => {
    const path = freshPath();
    openDatabase(path).close();
    const raw = new Database(path);
    raw.exec('PRAGMA journal_mode = DELETE');
    raw.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    const before = readFileSync(path);
    const refusal = `database ${path} was written by a newer mcp (schema ${SCHEMA_VERSION + 1}, this one understands ${SCHEMA_VERSION}): run that newer mcp (upgrade this one); \`mcp backup\` still copies it as it is`;
    expect(() => openDatabase(path)).toThrow(new Error(refusal));
    expect(() => openForReading(path)).toThrow(new Error(refusal));
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(existsSync(`${path}-wal`)).toBe(false);
  });
});
