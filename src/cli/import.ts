// `mcp accounts import <file>`: moves accounts over from the Go multi-claude-proxy or the Node
// antigravity-claude-proxy accounts.json, a CLIProxyAPI auth file, or an mcp database (`mcp backup`,
// another machine's proxy.db). Idempotent: the same Google email updates its account, the same Z.AI
// key is left alone. Also run once by `mcp serve` when ACCOUNTS_CONFIG_PATH names a file.
import type { Database } from 'bun:sqlite';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { defineCommand } from 'citty';
import { loadConfig } from '../config.ts';
import { type LegacyParse, parseLegacyAccounts } from '../legacy-accounts.ts';
import { type Account, listAccounts, updateAccount, upsertAccount } from '../store/accounts.ts';
import { accountsInBackup, isSqliteFile } from '../store/backup.ts';
import { databaseFailure, getSetting, immediate, openDatabase, openForReading, setSetting } from '../store/db.ts';
import { printJson, say, warn } from './output.ts';

export type ImportOutcome = 'added' | 'updated' | 'unchanged' | 'skipped';

export interface ImportLine {
  outcome: ImportOutcome;
  /** Label in mcp, or the legacy entry for skipped ones. */
  name: string;
  provider: string | null;
  id: string | null;
  reason?: string;
}

export interface ImportReport {
  format: LegacyParse['format'];
  lines: ImportLine[];
  counts: Record<ImportOutcome, number>;
}

/** Why a stored Google account kept its own refresh token over the file's. */
export const KEPT_NEWER = "kept the refresh token stored here: the account changed here after the file's copy was written";
/** Why an account the user disabled is still disabled after its update. */
export const KEPT_DISABLED = 'kept disabled (`mcp accounts enable` puts it back in rotation)';
/** The rule, said once under the lines when it applied. */
export const KEPT_RULE =
  'a Google account that changed here after the file was written keeps its own (newer) login; one marked invalid takes the file\'s. To take the file\'s anyway: `mcp accounts remove` it, then import with --only';

/**
 * Applies a parsed legacy file to the store (or only plans it with dryRun), in one transaction: a
 * failure partway leaves no half of the file, and a running server never sees an account before
 * the state the file gives it (disabled, invalid).
 */
export function applyLegacyImport(db: Database, parsed: LegacyParse, opts: { dryRun?: boolean; now?: number } = {}): ImportReport {
  return opts.dryRun ? planOrApply(db, parsed, opts) : immediate(db, () => planOrApply(db, parsed, opts));
}

function planOrApply(db: Database, parsed: LegacyParse, opts: { dryRun?: boolean; now?: number }): ImportReport {
  const now = opts.now ?? Date.now();
  const lines: ImportLine[] = [];
  const existing = listAccounts(db);
  for (const item of parsed.accounts) {
    const input = item.account;
    const creds = input.credentials;
    if (creds.kind === 'api_key') {
      const same = existing.find((a) => a.credentials.kind === 'api_key' && a.credentials.apiKey === creds.apiKey);
      if (same) {
        lines.push({ outcome: 'unchanged', name: same.label, provider: same.provider, id: same.id, reason: 'key already present' });
        continue;
      }
      const labelFree = !input.label || !existing.some((a) => a.label === input.label);
      // A key the copy had disabled (or marked invalid) comes back so: put in rotation, it would
      // serve requests its owner took it out of.
      const keyReason = item.status ? { reason: `imported as ${item.status.status}` } : {};
      if (opts.dryRun) {
        lines.push({ outcome: 'added', name: input.label ?? item.legacyName, provider: input.provider, id: null, ...keyReason });
        continue;
      }
      const { account } = upsertAccount(db, labelFree ? input : { ...input, label: undefined }, now);
      if (item.status) updateAccount(db, account.id, { status: item.status.status, statusReason: item.status.reason, verifyUrl: item.status.verifyUrl }, now);
      existing.push(account);
      lines.push({ outcome: 'added', name: account.label, provider: account.provider, id: account.id, ...keyReason });
      continue;
    }
    const email = input.email?.toLowerCase() ?? null;
    const prior = existing.find((a) => a.provider === input.provider && (a.email?.toLowerCase() ?? null) === email);
    if (prior && prior.credentials.kind === 'oauth' && prior.credentials.refreshToken === creds.refreshToken) {
      lines.push({ outcome: 'unchanged', name: prior.label, provider: prior.provider, id: prior.id, reason: 'same refresh token' });
      continue;
    }
    // An older file must not put back a token replaced here since (a new login, a rotation): the
    // newer one is kept, unless the account is marked invalid, when the file's is worth a try.
    if (prior && prior.status !== 'invalid' && item.writtenAt !== undefined && prior.updatedAt > item.writtenAt) {
      lines.push({ outcome: 'unchanged', name: prior.label, provider: prior.provider, id: prior.id, reason: KEPT_NEWER });
      continue;
    }
    // A new token mends an invalid account; one the user disabled here stays disabled whatever the
    // file says (their call, as for a re-login with `mcp accounts add`).
    const keptDisabled = prior?.status === 'disabled' ? prior : null;
    const reason = keptDisabled ? { reason: KEPT_DISABLED } : item.status ? { reason: `imported as ${item.status.status}` } : {};
    if (opts.dryRun) {
      lines.push({ outcome: prior ? 'updated' : 'added', name: prior?.label ?? item.legacyName, provider: input.provider, id: prior?.id ?? null, ...reason });
      continue;
    }
    // A label another account already has is left for a new one to be made up (as for keys above).
    const labelTaken = !!input.label && existing.some((a) => a.label === input.label && a !== prior);
    const { account, created } = upsertAccount(db, labelTaken ? { ...input, label: undefined } : input, now);
    const status = keptDisabled ? { status: 'disabled' as const, reason: keptDisabled.statusReason, verifyUrl: null } : item.status;
    if (status) updateAccount(db, account.id, { status: status.status, statusReason: status.reason, verifyUrl: status.verifyUrl }, now);
    if (created) existing.push(account);
    lines.push({ outcome: created ? 'added' : 'updated', name: account.label, provider: account.provider, id: account.id, ...reason });
  }
  for (const s of parsed.skipped) lines.push({ outcome: 'skipped', name: s.entry, provider: null, id: null, reason: s.reason });
  const counts: Record<ImportOutcome, number> = { added: 0, updated: 0, unchanged: 0, skipped: 0 };
  for (const l of lines) counts[l.outcome]++;
  return { format: parsed.format, lines, counts };
}

/** The accounts of an mcp database, as an import applies them: labels, state and meta kept. */
function backupAccountsParse(accounts: readonly Account[]): LegacyParse {
  return {
    format: 'mcp',
    accounts: accounts.map((a) => ({
      account: { provider: a.provider, label: a.label, email: a.email, credentials: a.credentials, meta: a.meta },
      legacyName: a.label,
      sourceId: a.id,
      writtenAt: a.updatedAt,
      ...(a.status === 'active' ? {} : { status: { status: a.status, reason: a.statusReason, verifyUrl: a.verifyUrl } }),
    })),
    skipped: [],
  };
}

/** Only the entries named `name` (id, label, email or the file's own name for it); none matching is an error. */
function onlyAccount(parsed: LegacyParse, name: string): LegacyParse {
  const accounts = parsed.accounts.filter(
    (a) => a.sourceId === name || a.legacyName === name || a.account.label === name || (a.account.email ?? undefined) === name,
  );
  if (!accounts.length) throw new Error(`no account "${name}" in the file (by id, label or email)`);
  return { ...parsed, accounts, skipped: [] };
}

/** Reads and applies one file (an accounts.json or an mcp database). Throws with a readable message when it cannot. */
export function importLegacyFile(db: Database, path: string, opts: { dryRun?: boolean; only?: string } = {}): ImportReport {
  const pick = (p: LegacyParse): LegacyParse => (opts.only ? onlyAccount(p, opts.only) : p);
  if (isSqliteFile(path)) return applyLegacyImport(db, pick(backupAccountsParse(accountsInBackup(path))), opts);
  if (!existsSync(path)) throw new Error(`no such file: ${path}`);
  refuseNonFile(path);
  let parsed: LegacyParse;
  try {
    parsed = pick(isDirectory(path) ? readAuthDirectory(path) : readAccountsFile(path));
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
  // Outside the try: a failure of our own database is not the file's, and must not be named after it.
  return applyLegacyImport(db, parsed, opts);
}

/** An accounts file is a few KB; far past that, a wrong name, read whole into memory before JSON refuses it. */
const MAX_ACCOUNTS_FILE_BYTES = 64 * 1024 * 1024;

/** A device (/dev/zero, a disk) would be read until memory runs out; a huge file nearly so. */
function refuseNonFile(path: string): void {
  const st = statSync(path);
  if (st.isCharacterDevice() || st.isBlockDevice() || st.isSocket()) {
    throw new Error(`${path} is a ${st.isSocket() ? 'socket' : 'device'}, not an accounts file: name the accounts.json, auth file or backup to import`);
  }
  if (st.isFile() && st.size > MAX_ACCOUNTS_FILE_BYTES) {
    throw new Error(`${path} is ${Math.round(st.size / 1024 / 1024)} MB, far too large for an accounts file: name the accounts.json, auth file or backup to import`);
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** One accounts file, parsed; each account's writtenAt is the file's modification time. */
function readAccountsFile(path: string): LegacyParse {
  let text: string;
  let writtenAt: number;
  try {
    text = decodeText(readFileSync(path));
    writtenAt = statSync(path).mtimeMs;
  } catch (err) {
    throw new Error(`cannot read it: ${(err as Error).message}`);
  }
  const parsed = parseLegacyAccounts(text);
  for (const a of parsed.accounts) a.writtenAt = writtenAt;
  return parsed;
}

/** CLIProxyAPI keeps one auth file per account in a directory (~/.cli-proxy-api): its .json files, as one. */
function readAuthDirectory(dir: string): LegacyParse {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort();
  if (!files.length) throw new Error('a directory without .json files: name the accounts file');
  const out: LegacyParse = { format: 'cpa', accounts: [], skipped: [] };
  for (const f of files) {
    let one: LegacyParse;
    try {
      one = readAccountsFile(join(dir, f));
    } catch (err) {
      out.skipped.push({ entry: f, reason: (err as Error).message });
      continue;
    }
    if (one.format !== 'cpa') {
      out.skipped.push({ entry: f, reason: 'not a CLIProxyAPI auth file (import an accounts.json on its own)' });
      continue;
    }
    out.accounts.push(...one.accounts);
    out.skipped.push(...one.skipped.map((s) => ({ entry: f, reason: s.reason })));
  }
  return out;
}

/**
 * The file's text: UTF-8, or UTF-16 when it starts with that byte order mark (what PowerShell 5's
 * `>` and Notepad's "Unicode" write on Windows). A UTF-8 mark is left for the parser to drop.
 */
function decodeText(bytes: Buffer): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder('utf-16le').decode(bytes);
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return new TextDecoder('utf-16be').decode(bytes);
  return bytes.toString('utf8');
}

export function summaryLine(r: ImportReport): string {
  const { added, updated, unchanged, skipped } = r.counts;
  return `${added} added, ${updated} updated, ${unchanged} unchanged, ${skipped} skipped`;
}

const FORMAT_NAME = { go: 'multi-claude-proxy (Go)', node: 'antigravity-claude-proxy (Node)', cpa: 'CLIProxyAPI', unknown: 'legacy', mcp: 'mcp database' } as const;

/**
 * First start with ACCOUNTS_CONFIG_PATH: imports that file once (remembered per path in the settings
 * table). A missing file is not an error (the variable may point where the file would be).
 * Returns the report when an import ran.
 */
export function importOnFirstStart(
  db: Database,
  path: string | null,
  logLine: (level: 'info' | 'warn', line: string) => void,
): ImportReport | null {
  if (!path) return null;
  const abs = resolve(path);
  const key = `legacy_import:${abs}`;
  if (getSetting(db, key) !== null) return null;
  if (!existsSync(abs)) {
    logLine('info', `ACCOUNTS_CONFIG_PATH ${abs} does not exist; nothing to import`);
    return null;
  }
  try {
    const report = importLegacyFile(db, abs);
    setSetting(db, key, JSON.stringify({ at: new Date().toISOString(), ...report.counts }));
    logLine('info', `imported accounts from ${abs} (${FORMAT_NAME[report.format]}): ${summaryLine(report)}`);
    for (const l of report.lines) if (l.outcome === 'skipped') logLine('warn', `import skipped ${l.name}: ${l.reason}`);
    return report;
  } catch (err) {
    logLine('warn', `could not import ACCOUNTS_CONFIG_PATH: ${(err as Error).message}`);
    return null;
  }
}

export const importCommand = defineCommand({
  meta: {
    name: 'import',
    description: "Import accounts from the Go multi-claude-proxy's or the Node antigravity-claude-proxy's accounts.json, a CLIProxyAPI auth file, or an mcp backup",
  },
  args: {
    file: { type: 'positional', required: true, description: 'Path to the accounts.json, a CLIProxyAPI auth file or directory, or an mcp database (`mcp backup`, a proxy.db)' },
    only: { type: 'string', valueHint: 'id|label|email', description: 'Import only this account of the file' },
    'dry-run': { type: 'boolean', description: 'Show what would be imported without changing anything' },
    json: { type: 'boolean', description: 'Print the result as JSON' },
  },
  run({ args }) {
    const config = loadConfig(process.env, {}, { requireApiKey: false });
    const dryRun = Boolean(args['dry-run']);
    // A dry run changes nothing: it shows what an import would do to a database it may not write too.
    const db = dryRun ? openForReading(config.dbPath) : openDatabase(config.dbPath, { durable: true });
    try {
      const report = importLegacyFile(db, String(args.file), { dryRun, only: args.only ? String(args.only) : undefined });
      if (args.json) {
        printJson({ dryRun, ...report });
        return;
      }
      say(`${dryRun ? 'would import' : 'importing'} ${FORMAT_NAME[report.format]} accounts from ${args.file}`);
      for (const l of report.lines) {
        const what = `${l.outcome.padEnd(9)} ${l.name}${l.provider ? ` (${l.provider}${l.id ? `, ${l.id}` : ''})` : ''}`;
        const line = l.reason ? `${what}: ${l.reason}` : what;
        if (l.outcome === 'skipped') warn(line);
        else say(line);
      }
      say(`${dryRun ? 'dry run: ' : ''}${summaryLine(report)}`);
      if (report.lines.some((l) => l.reason === KEPT_NEWER)) say(KEPT_RULE);
    } catch (err) {
      throw databaseFailure(config.dbPath, err) ?? err;
    } finally {
      db.close();
    }
  },
});
