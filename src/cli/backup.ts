// `mcp backup [file]`: a copy of the database (accounts with their credentials, limits, quotas,
// usage) that can be taken while the server runs. `mcp accounts import <copy>` brings its accounts
// back, into this machine or another.
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { defineCommand } from 'citty';
import { loadConfig } from '../config.ts';
import { backupDatabase, backupDir, backupToFresh } from '../store/backup.ts';
import { accessHint, backupsPath, databaseFailure, openForReading, SCHEMA_VERSION, schemaVersion, StoreError } from '../store/db.ts';
import { printJson, say, shellQuote } from './output.ts';

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * backups/ in the data directory, made if missing; a directory that cannot be made is said plainly,
 * not as a bare errno, followed by `then` (what the command can do instead). Also `accounts remove`'s.
 */
export function defaultBackupDir(dataDir: string, then = '; name another place: `mcp backup <file|dir>`'): string {
  try {
    return backupDir(dataDir);
  } catch (err) {
    const dir = backupsPath(dataDir);
    let why: string;
    if (existsSync(dir) && !isDirectory(dir)) why = `${dir} is a file, not a directory (move it away)`;
    else {
      const hint = accessHint(existsSync(dir) ? join(dir, 'x') : dir, true);
      why = `${(err as Error).message}${hint ? ` (${hint})` : ''}`;
    }
    throw new StoreError(`cannot write the backup into ${dir}: ${why}${then}`, { cause: err });
  }
}

export const backupCommand = defineCommand({
  meta: {
    name: 'backup',
    description: 'Copy the database (accounts and their credentials, limits, usage) to a file; safe while the server runs',
  },
  args: {
    file: { type: 'positional', required: false, description: 'File or directory to write the copy to (default: backups/proxy-<UTC time>.db in the data directory)' },
    force: { type: 'boolean', description: 'Replace the file if it exists' },
    json: { type: 'boolean', description: 'Print the result as JSON' },
  },
  run({ args }) {
    const config = loadConfig(process.env, {}, { requireApiKey: false });
    // Opening a missing database would create an empty one and "back up 0 accounts" with exit 0:
    // a cron job pointed at the wrong MCP_DATA_DIR would keep empty copies and never know.
    if (!existsSync(config.dbPath)) {
      throw new StoreError(`no database at ${config.dbPath}, so nothing to back up (is MCP_DATA_DIR right? \`mcp serve\` or \`mcp accounts add\` creates it)`);
    }
    const named = args.file ? String(args.file) : '';
    // Said plainly: otherwise the error names the temporary file the copy is first written to.
    // A name ending in a slash is a directory, as for cp, even before it exists.
    if (/[/\\]$/.test(named) && !isDirectory(named)) {
      throw new StoreError(`cannot write the backup into ${named}: the directory ${resolve(named)} does not exist`);
    }
    // A directory gets a fresh copy inside it, as `cp file dir/` would.
    const intoDir = !named ? defaultBackupDir(config.dataDir) : isDirectory(named) ? named : null;
    const target = intoDir ?? named;
    const dir = dirname(resolve(target));
    if (!existsSync(dir)) throw new StoreError(`cannot write the backup ${target}: the directory ${dir} does not exist`);
    if (!isDirectory(dir)) throw new StoreError(`cannot write the backup ${target}: ${dir} is a file, not a directory`);
    // A copy needs no schema this mcp understands: after a downgrade it is how the data is kept.
    // It only reads the database: one on a read-only mount is copied elsewhere all the same.
    const db = openForReading(config.dbPath, { anySchema: true });
    try {
      const r = intoDir ? backupToFresh(db, intoDir, 'proxy', new Date()) : backupDatabase(db, target, { overwrite: Boolean(args.force) });
      if (args.json) return printJson(r);
      say(`backed up ${r.accounts} account${r.accounts === 1 ? '' : 's'} to ${r.path} (${Math.max(1, Math.round(r.bytes / 1024))} KB, owner-only)`);
      // This mcp refuses to import a newer mcp's copy: only such an mcp brings the accounts back.
      const schema = schemaVersion(db);
      const by = schema > SCHEMA_VERSION ? ` run by an mcp that understands schema ${schema} (this one understands ${SCHEMA_VERSION})` : '';
      say(`it holds refresh tokens and API keys: keep it private. \`mcp accounts import ${shellQuote(r.path)}\`${by} brings the accounts back`);
    } catch (err) {
      throw databaseFailure(config.dbPath, err) ?? err;
    } finally {
      db.close();
    }
  },
});
