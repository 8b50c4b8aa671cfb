// Reads the accounts.json of the projects people move over from, as pure data -> NewAccount[]:
//  - the original Go multi-claude-proxy: {accounts:[{email, source:"oauth"|"manual",
//    provider:"antigravity"|"zai"|"copilot", refreshToken, apiKey, projectId, …}], settings, activeIndex}
//  - the Node antigravity-claude-proxy: {accounts:[{email, source, enabled, refreshToken:
//    "1//…|projectId|managedProjectId", projectId, subscription:{tier, projectId}, isInvalid, verifyUrl, …}],
//    settings, activeIndex}
//  - CLIProxyAPI, one file per account: {type:"antigravity"|"codex"|…, access_token, refresh_token,
//    expires_in, timestamp, expired, email, project_id}
// Rate-limit and quota state is not carried over: it is stale by the time anyone imports.
import { maskSecrets } from './log.ts';
import type { AccountStatus, NewAccount } from './store/accounts.ts';

/** 'mcp': another mcp database (a backup), read by src/cli/import.ts. */
export type LegacyFormat = 'go' | 'node' | 'cpa' | 'unknown' | 'mcp';

export interface LegacyAccount {
  account: NewAccount;
  /** The name the old file used (email, or the Go project's zai-<hash> id). */
  legacyName: string;
  /** The account's id where the file has one (an mcp database). */
  sourceId?: string;
  /**
   * When the file's copy of the account was written (epoch ms), where known: an mcp database row's
   * updated_at, else the file's modification time. An account changed here since keeps its login.
   */
  writtenAt?: number;
  /** Set when the old file said the account was off or needs the user's attention. */
  status?: { status: AccountStatus; reason: string | null; verifyUrl: string | null };
}

export interface LegacySkip {
  /** Entry position (1-based) and whatever name it had. */
  entry: string;
  reason: string;
}

export interface LegacyParse {
  format: LegacyFormat;
  accounts: LegacyAccount[];
  skipped: LegacySkip[];
}

export class LegacyFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LegacyFormatError';
  }
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string => (typeof v === 'string' ? v.trim() : '');

/** Which project wrote the file, from fields only one of them uses. */
export function detectLegacyFormat(entries: readonly Obj[]): LegacyFormat {
  if (entries.some((a) => 'provider' in a)) return 'go';
  if (
    entries.some(
      (a) => 'enabled' in a || 'subscription' in a || 'quota' in a || 'modelQuotaThresholds' in a || str(a.refreshToken).includes('|'),
    )
  ) {
    return 'node';
  }
  return 'unknown';
}

/**
 * A key or token with a space, a curly quote or any character outside printable ASCII (a file edited
 * by hand, pasted from a chat): no upstream takes it, and stored it would fail every call.
 */
const UNUSABLE_SECRET = /[^\x21-\x7e]/;

function oneAccount(a: Obj, index: number, skipped: LegacySkip[]): LegacyAccount | null {
  const email = str(a.email);
  const entry = `#${index + 1}${email ? ` (${email})` : ''}`;
  const provider = (str(a.provider) || 'antigravity').toLowerCase();
  const source = (str(a.source) || 'oauth').toLowerCase();

  if (provider === 'zai') {
    const apiKey = str(a.apiKey);
    if (!apiKey) {
      skipped.push({ entry, reason: 'Z.AI entry without an apiKey' });
      return null;
    }
    if (UNUSABLE_SECRET.test(apiKey)) {
      skipped.push({ entry, reason: 'its apiKey holds a space or a character no key has (a curly quote, a non-ASCII one)' });
      return null;
    }
    // The Go project named Z.AI keys "zai-<hash>"; keep it as the label so people recognise it.
    return { legacyName: email || 'zai', account: { provider: 'zai', ...(email ? { label: email } : {}), credentials: { kind: 'api_key', apiKey } } };
  }
  if (provider !== 'antigravity') {
    skipped.push({ entry, reason: `provider "${provider}" is not supported by mcp` });
    return null;
  }
  if (source !== 'oauth') {
    // "manual" holds a bare access token and "database" reads the IDE's store: neither can be refreshed here.
    skipped.push({
      entry,
      reason: `source "${source}" has no refresh token; add it again with \`mcp accounts add --provider antigravity\``,
    });
    return null;
  }
  // The Node project stores refreshToken|projectId|managedProjectId; only the first part goes to Google.
  const [refreshToken = '', tokenProject = '', managedProject = ''] = str(a.refreshToken).split('|').map((s) => s.trim());
  if (!refreshToken) {
    skipped.push({ entry, reason: 'no refresh token' });
    return null;
  }
  if (UNUSABLE_SECRET.test(refreshToken)) {
    skipped.push({ entry, reason: 'its refresh token holds a space or a character no token has (a curly quote, a non-ASCII one)' });
    return null;
  }
  if (!email) {
    skipped.push({ entry, reason: 'no email (mcp identifies Google accounts by email)' });
    return null;
  }
  const sub = isObj(a.subscription) ? a.subscription : {};
  const projectId = str(a.projectId) || tokenProject || str(sub.projectId);
  const meta: Record<string, unknown> = { importedFrom: 'accounts.json' };
  if (projectId) meta.projectId = projectId;
  if (managedProject) meta.managedProjectId = managedProject;
  if (str(sub.tier)) meta.tier = str(sub.tier);

  const out: LegacyAccount = {
    legacyName: email,
    account: { provider: 'antigravity', email, credentials: { kind: 'oauth', refreshToken }, meta },
  };
  // The Node project keeps an account invalid across restarts only when it has a verification URL.
  const verifyUrl = str(a.verifyUrl);
  if (a.isInvalid === true && verifyUrl) {
    // The reason is the Node proxy's own error text, which may quote the refresh token that failed;
    // /health and the dashboard show it as stored.
    out.status = { status: 'invalid', reason: maskSecrets(str(a.invalidReason)) || 'needs verification', verifyUrl };
  } else if (a.enabled === false) {
    out.status = { status: 'disabled', reason: 'disabled in the imported accounts.json', verifyUrl: null };
  }
  return out;
}

/** Parses the text of a legacy accounts.json. Throws LegacyFormatError when it is not one. */
export function parseLegacyAccounts(text: string): LegacyParse {
  let data: unknown;
  // A binary file (an image, an archive, a database of another program) would otherwise be named
  // by the parser's first unreadable byte, printed as a replacement character.
  if (/[\u0000\uFFFD]/.test(text)) throw new LegacyFormatError('not JSON: the file is binary, and an accounts file is text');
  // "Unexpected EOF" for a file that holds nothing at all (truncated by a failed copy, or /dev/null).
  if (!text.replace(/^\uFEFF/, '').trim()) throw new LegacyFormatError('not JSON: the file is empty');
  try {
    // Windows editors save with a byte order mark, which JSON.parse refuses.
    data = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (err) {
    // The parser quotes what it stumbled on, which in this file may be a key left unquoted.
    throw new LegacyFormatError(`not JSON: ${(err as Error).message.replace(/"[^"]*"/g, '"…"')}`);
  }
  if (isObj(data) && !('accounts' in data) && typeof data.type === 'string') return parseCpaFile(data);
  const list = Array.isArray(data) ? data : isObj(data) ? data.accounts : undefined;
  if (!Array.isArray(list)) {
    throw new LegacyFormatError(
      'expected {"accounts": [...]} as written by multi-claude-proxy or antigravity-claude-proxy, or one CLIProxyAPI auth file',
    );
  }
  const entries = list.filter(isObj);
  const skipped: LegacySkip[] = [];
  const found: Array<{ index: number; acc: LegacyAccount }> = [];
  list.forEach((v, i) => {
    if (!isObj(v)) {
      skipped.push({ entry: `#${i + 1}`, reason: 'not an object' });
      return;
    }
    const acc = oneAccount(v, i, skipped);
    if (acc) found.push({ index: i, acc });
  });
  // The same account twice (a key, a Google e-mail): the last entry counts. Applying both would
  // flip the account between them on every run, so an import would never settle.
  const last = new Map<string, number>();
  for (const f of found) last.set(identity(f.acc), f.index);
  const accounts: LegacyAccount[] = [];
  for (const f of found) {
    const keep = last.get(identity(f.acc))!;
    if (keep === f.index) accounts.push(f.acc);
    else skipped.push({ entry: `#${f.index + 1} (${f.acc.legacyName})`, reason: `listed again as #${keep + 1}, which is imported` });
  }
  return { format: detectLegacyFormat(entries), accounts, skipped };
}

/** One CLIProxyAPI auth file: one account, in the shape the Go project's entries have. */
function parseCpaFile(data: Obj): LegacyParse {
  const type = str(data.type).toLowerCase();
  const skipped: LegacySkip[] = [];
  const entry = { email: data.email, provider: type, source: 'oauth', refreshToken: data.refresh_token, projectId: data.project_id };
  const acc = oneAccount(entry, 0, skipped);
  if (acc) acc.account.meta = { ...acc.account.meta, importedFrom: 'CLIProxyAPI' };
  return { format: 'cpa', accounts: acc ? [acc] : [], skipped };
}

function identity(a: LegacyAccount): string {
  const c = a.account.credentials;
  // Without case, as the store matches e-mails: two spellings would land on one account, the first winning.
  return c.kind === 'api_key' ? `key\u0000${c.apiKey}` : `${a.account.provider}\u0000${(a.account.email ?? '').toLowerCase()}`;
}
