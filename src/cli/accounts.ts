// `mcp accounts …`: add, list, remove (keeping a copy of the database first), verify, enable,
// disable. The CLI talks to the store directly; a running server notices changes on its own (it
// polls the database's data_version).
import type { Database } from 'bun:sqlite';
import { existsSync } from 'node:fs';
import { defineCommand } from 'citty';
import { type Config, loadConfig } from '../config.ts';
import { quotaAsOf, quotaLines, servesPastQuotaOf } from '../gateway/ops.ts';
import { limitsInForce } from '../pool/pool.ts';
import { maskSecrets } from '../log.ts';
import { isProjectId, userProjectOf } from '../providers/antigravity/project.ts';
import { meansInvalidAccount, type Provider, type ProviderDeps, type QuotaInfo, UpstreamError, type VerifyResult } from '../providers/provider.ts';
import {
  type Account,
  findAccount,
  listAccounts,
  PROVIDERS,
  type ProviderId,
  removeAccount,
  secretOf,
  setStatusIf,
  updateAccount,
  upsertAccount,
} from '../store/accounts.ts';
import { backupToFresh, pruneBackups } from '../store/backup.ts';
import { defaultBackupDir } from './backup.ts';
import { databaseFailure, immediate, openDatabase, openForReading, StoreError } from '../store/db.ts';
import { listLimits, listQuotas, type ModelLimit, type QuotaRecord, replaceQuotas, resetAccountLimits } from '../store/limits.ts';
import {
  createLineReader,
  maskSecret,
  oneLine,
  printJson,
  relativeTime,
  renderTable,
  say,
  shellQuote,
  stdinIsTty,
  UsageError,
  warn,
} from './output.ts';

/** Config for commands that do not serve: PROXY_API_KEY is not needed here. */
function cliConfig(): Readonly<Config> {
  return loadConfig(process.env, {}, { requireApiKey: false });
}

/**
 * `readOnly`: the command only reads, so a database it may not write (a read-only mount) still
 * serves. `create`: the command stores an account (add), so the database is made if missing; any
 * other finds no account in one not made yet, and making it (the data directory too) as whoever
 * runs the command (root, before the service's own user) could keep the server out of it.
 */
function withDb<T>(fn: (db: Database, config: Readonly<Config>) => Promise<T> | T, opts: { readOnly?: boolean; create?: boolean } = {}): Promise<T> {
  const config = cliConfig();
  const reading = opts.readOnly || (!opts.create && !existsSync(config.dbPath));
  const db = reading ? openForReading(config.dbPath) : openDatabase(config.dbPath, { durable: true });
  return Promise.resolve()
    .then(() => fn(db, config))
    .catch((err: unknown) => {
      // A damaged page is read only now, by the command: named as openDatabase names it.
      throw databaseFailure(config.dbPath, err) ?? err;
    })
    .finally(() => db.close());
}

function mustFind(db: Database, idOrLabel: string): Account {
  const acc = findAccount(db, idOrLabel);
  if (!acc) throw new StoreError(`no account with id or label "${idOrLabel}" (see \`mcp accounts list\`)`);
  return acc;
}

/** What identifies the account's credential without revealing it. */
export function credentialHint(a: Account): string {
  return a.credentials.kind === 'api_key' ? maskSecret(a.credentials.apiKey) : a.email ?? 'oauth';
}

/** One short quota phrase: the lowest remaining figure and what it is ("min 3% (claude/gpt weekly)"). */
export function quotaSummary(quotas: readonly QuotaRecord[]): string {
  const lines = quotaLines(quotas);
  if (lines.length === 0) return quotas.length ? 'unknown' : '-';
  const low = lines.reduce((a, b) => (b.remainingFraction < a.remainingFraction ? b : a));
  const pct = `${Math.round(low.remainingFraction * 100)}%`;
  return lines.length === 1 && quotas.length === 1 ? pct : `min ${pct} (${low.label})`;
}

export interface AccountView {
  id: string;
  label: string;
  provider: ProviderId;
  email: string | null;
  status: string;
  reason: string | null;
  verifyUrl: string | null;
  credential: string;
  lastUsedAt: number | null;
  createdAt: number;
  /** The account's own concurrency cap (0 = none); null = MAX_CONCURRENT_PER_ACCOUNT applies. */
  maxConcurrent: number | null;
  /** Antigravity: the user's own Google Cloud project (`--project`); null = the one Google gives. */
  project: string | null;
  limits: Array<{ model: string; kind: string; resetAt: number; reason: string | null }>;
  quotas: Array<{ model: string; window: string; remainingFraction: number | null; resetAt: number | null }>;
}

/** `servesPastQuota`: providers a spent quota does not stop (see servesPastQuotaOf); their readings are no limit. */
export function accountViews(
  accounts: readonly Account[],
  limits: readonly ModelLimit[],
  quotas: readonly QuotaRecord[],
  now: number,
  servesPastQuota: ReadonlySet<ProviderId> = new Set(),
): AccountView[] {
  return accounts.map((a) => ({
    id: a.id,
    label: a.label,
    provider: a.provider,
    email: a.email,
    status: a.status,
    reason: a.statusReason,
    verifyUrl: a.verifyUrl,
    credential: credentialHint(a),
    lastUsedAt: a.lastUsedAt,
    createdAt: a.createdAt,
    maxConcurrent: typeof a.meta.maxConcurrent === 'number' ? a.meta.maxConcurrent : null,
    project: a.provider === 'antigravity' ? userProjectOf(a.meta) : null,
    // A spent quota window keeps the account out as a 429 would: shown as the server routes it.
    limits: (servesPastQuota.has(a.provider)
      ? limits.filter((l) => l.accountId === a.id && l.resetAt > now)
      : limitsInForce(a.id, limits, quotas.filter((q) => q.accountId === a.id), now)
    ).map((l) => ({ model: l.model, kind: l.kind, resetAt: l.resetAt, reason: l.reason })),
    quotas: quotas
      .filter((q) => q.accountId === a.id)
      // Past its reset a window is full again (a disabled account is never polled): as the server shows it.
      .map((q) => quotaAsOf(q, now))
      .map((q) => ({ model: q.model, window: q.window, remainingFraction: q.remainingFraction, resetAt: q.resetAt })),
  }));
}

/** An account as `accounts list` shows it: id, label, provider, and the Google login's email. */
export function accountName(a: Pick<Account, 'id' | 'label' | 'provider' | 'email'>): string {
  const email = a.email && a.email !== a.label ? `, ${a.email}` : '';
  return `${a.id} ${a.label} (${a.provider}${email})`;
}

export function accountsTable(views: readonly AccountView[], now: number): string {
  return renderTable(
    ['ID', 'LABEL', 'PROVIDER', 'STATUS', 'REASON', 'LAST USED', 'LIMITS', 'QUOTA', 'PROJECT', 'MAX CONC.', 'LIMITED'],
    views.map((v) => [
      v.id,
      v.label,
      v.provider,
      v.status,
      v.reason ?? '-',
      relativeTime(v.lastUsedAt, now),
      String(v.limits.length),
      quotaSummary(v.quotas.map((q) => ({ ...q, accountId: v.id, fetchedAt: 0 }))),
      // The user's own Google Cloud project; '-' when Google's applies.
      v.project ?? '-',
      // The account's own cap; '-' when the server's MAX_CONCURRENT_PER_ACCOUNT applies.
      v.maxConcurrent === null ? '-' : v.maxConcurrent === 0 ? 'none' : String(v.maxConcurrent),
      // Which models wait for what, so `list` answers "why is this account not used?".
      v.limits.map((l) => `${l.model === '*' ? 'all models' : l.model} ${l.kind} (resets ${relativeTime(l.resetAt, now)})`).join('; ') || '-',
    ]),
  );
}

function providerDeps(db: Database): ProviderDeps {
  return {
    updateAccount: (id, patch) => {
      updateAccount(db, id, patch);
    },
    now: () => Date.now(),
  };
}

/** `add --label` for an account already there renames it, rather than ignoring the label. */
function relabel(db: Database, acc: Account, label: string | undefined): Account {
  if (!label || label === acc.label) return acc;
  if (findAccount(db, label)) throw new StoreError(`an account labelled "${label}" already exists`);
  updateAccount(db, acc.id, { label });
  say(`${acc.id}: label ${acc.label} -> ${label}`);
  return { ...acc, label };
}

/** A new account's quota, read at once. */
const FIRST_QUOTA_TIMEOUT_MS = 20_000;

/** What a provider reported, as stored rows: fractions clamped, one row per model and window (the tighter). */
export function quotaRecords(accountId: string, quotas: readonly QuotaInfo[], now: number): QuotaRecord[] {
  const rows = new Map<string, QuotaRecord>();
  for (const q of quotas) {
    const f = q.remainingFraction;
    const r: QuotaRecord = {
      accountId,
      model: q.model,
      window: q.window ?? '',
      remainingFraction: f === null || !Number.isFinite(f) ? null : Math.min(1, Math.max(0, f)),
      resetAt: q.resetAt,
      fetchedAt: now,
    };
    const k = `${r.model}\u0000${r.window}`;
    const cur = rows.get(k);
    if (!cur || (r.remainingFraction ?? 1) < (cur.remainingFraction ?? 1)) rows.set(k, r);
  }
  return [...rows.values()];
}

/**
 * Reads an account's quota with its provider, so `accounts list` shows it at once rather than after
 * the server's next round. `account` may not be stored yet (a Z.AI key is checked first): then
 * provider writes (the plan level) are collected into `learned` instead.
 */
async function readQuota(config: Readonly<Config>, account: Account, db: Database | null, learned: Record<string, unknown> = {}): Promise<QuotaInfo[]> {
  const { createProviders } = await import('../providers/index.ts');
  const deps: ProviderDeps = db
    ? providerDeps(db)
    : { updateAccount: (_id, patch) => Object.assign(learned, patch.meta ?? {}), now: () => Date.now() };
  const provider = createProviders(config, deps)[account.provider];
  if (!provider) return [];
  return provider.quota(account, AbortSignal.timeout(FIRST_QUOTA_TIMEOUT_MS));
}

function storeQuota(db: Database, accountId: string, quotas: readonly QuotaInfo[] | null): string {
  if (!quotas) return '';
  const rows = quotaRecords(accountId, quotas, Date.now());
  replaceQuotas(db, accountId, rows);
  return rows.length ? `, quota ${quotaSummary(rows)}` : '';
}

/** `--api-key -` / `--refresh-token -`: the secret is the first line of stdin, never on the command line (shell history, ps). */
async function secretFromStdin(readLine: (prompt: string) => Promise<string | null>, flag: string, prompt: string): Promise<string> {
  const line = ((await readLine(prompt)) ?? '').trim();
  // A refresh token is no key: naming the wrong secret sends the user looking for the wrong thing.
  if (!line) throw new UsageError(`${flag} - reads the ${flag === '--refresh-token' ? 'refresh token' : 'key'} from stdin, but stdin gave none`);
  return line;
}

/** A pasted key: surrounding blanks dropped; one with a blank inside is a paste gone wrong. */
/** Z.AI's keys are some 50 characters; far longer is something else pasted (a file, a whole page). */
const MAX_API_KEY_LENGTH = 1024;

export function cleanApiKey(raw: string): string {
  const key = raw.trim();
  if (/\s/.test(key)) throw new UsageError('the API key has a space or line break inside: paste it again, all on one line');
  // Curly quotes or a zero-width character from a chat or a document: no HTTP header can carry
  // them, so every call would fail later with the key stored.
  if (/[^\x21-\x7e]/.test(key)) {
    throw new UsageError('the API key holds a character no key has (a curly quote, a zero-width or non-ASCII character, perhaps from where it was copied): paste it again, the key alone');
  }
  if (key.length > MAX_API_KEY_LENGTH) throw new UsageError(`the API key is ${key.length} characters long, far longer than a key: paste the key alone`);
  return key;
}

/**
 * The command that opens `url` in the default browser. Not `cmd /c start` on Windows: cmd reads
 * the `&` between the query parameters as "run another command" and opens a cut-off URL.
 */
export function browserCommand(platform: string, url: string, env: Readonly<Record<string, string | undefined>> = {}): string[] {
  if (platform === 'darwin') return ['open', url];
  if (platform === 'win32') return ['rundll32', 'url.dll,FileProtocolHandler', url];
  // WSL: Linux with no browser of its own and seldom an xdg-open, but Windows' programs on its PATH.
  if (env.WSL_DISTRO_NAME) return ['rundll32.exe', 'url.dll,FileProtocolHandler', url];
  return ['xdg-open', url];
}

function openBrowser(url: string): boolean {
  // On WSL without Windows' PATH (interop off), xdg-open is the one left to try.
  const commands = [browserCommand(process.platform, url, process.env), browserCommand(process.platform, url)];
  for (const cmd of commands) {
    try {
      const p = Bun.spawn(cmd, { stdout: 'ignore', stderr: 'ignore' });
      p.unref();
      return true;
    } catch {
      // not there: the next one
    }
  }
  return false;
}

/** People say "google" for the Antigravity accounts (it is a Google login). */
function providerName(raw: string): string {
  const p = raw.trim().toLowerCase();
  return p === 'google' ? 'antigravity' : p;
}

export async function askProvider(readLine: (p: string) => Promise<string | null>): Promise<ProviderId> {
  for (;;) {
    const raw = await readLine(`Provider (${PROVIDERS.join('/')}): `);
    // End of input ends the command; an empty line (Enter by mistake) is asked again.
    if (raw === null) throw new UsageError('no provider given');
    const answer = providerName(raw);
    if (answer === '') continue;
    if ((PROVIDERS as readonly string[]).includes(answer)) return answer as ProviderId;
    warn(`unknown provider "${answer}"`);
  }
}

function parseCallbackPort(raw: unknown): number {
  if (raw === undefined || raw === '') return 0;
  const s = String(raw).trim();
  const n = Number(s);
  if (!/^\d+$/.test(s) || n > 65535) throw new UsageError(`--callback-port must be a port number (0-65535), got "${s}"`);
  return n;
}

/** A --label as given (trimmed; undefined when empty). Ids and labels are looked up together, so a label shaped like an id would shadow one. */
function checkLabel(raw: string | undefined): string | undefined {
  const label = raw?.trim() || undefined;
  if (label && /^acc_[0-9a-f]{8}$/.test(label)) throw new UsageError(`--label must not look like an account id, got "${label}"`);
  // `mcp accounts remove -x` reads as an option, and a line break breaks the list.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (label && (label.startsWith('-') || /[\u0000-\u001f\u007f]/.test(label))) {
    throw new UsageError(`--label must not start with "-" or hold control characters, got ${JSON.stringify(label)}`);
  }
  return label;
}

/** --max-concurrent: a count (0 = no cap), or "default" for MAX_CONCURRENT_PER_ACCOUNT (null). */
export function parseMaxConcurrent(raw: unknown): number | null {
  const s = String(raw ?? '').trim().toLowerCase();
  if (s === 'default') return null;
  const n = Number(s);
  if (!/^\d+$/.test(s) || n > 10_000) {
    throw new UsageError(`--max-concurrent must be a whole number from 0 (no cap) to 10000, or "default", got "${String(raw ?? '')}"`);
  }
  return n;
}

/** --project: a Google Cloud project id, or "default" for the one Google gives the account (null). */
export function parseProject(raw: unknown): string | null {
  const s = String(raw ?? '').trim();
  if (s.toLowerCase() === 'default') return null;
  if (!isProjectId(s)) {
    throw new UsageError(
      `--project must be a Google Cloud project id (6-30 lowercase letters, digits and hyphens, starting with a letter), or "default", got ${JSON.stringify(String(raw ?? ''))}`,
    );
  }
  return s;
}

function describeProject(project: string | null): string {
  return project === null ? 'the Google Cloud project Google gives it' : `Google Cloud project ${project}`;
}

const PROJECT_ARG = {
  type: 'string',
  valueHint: 'id|default',
  description: "Google (antigravity) only: the account's own Google Cloud project, for Workspace and paid Gemini Code Assist tiers (default: the one Google gives)",
} as const;

function describeCap(cap: number | null): string {
  return cap === null ? 'MAX_CONCURRENT_PER_ACCOUNT applies' : cap === 0 ? 'no concurrency cap' : `at most ${cap} request${cap === 1 ? '' : 's'} at once`;
}

const MAX_CONCURRENT_ARG = {
  type: 'string',
  valueHint: 'n|default',
  description: 'Requests this account serves at once (0 = no cap; default: MAX_CONCURRENT_PER_ACCOUNT)',
} as const;

const addCommand = defineCommand({
  meta: { name: 'add', description: 'Add a Z.AI API key or a Google (Antigravity) account' },
  args: {
    provider: { type: 'string', valueHint: 'zai|antigravity', description: 'Which upstream the account is for' },
    'api-key': { type: 'string', valueHint: 'key', description: 'Z.AI API key (zai); - reads it from stdin, keeping it out of the shell history' },
    label: { type: 'string', valueHint: 'name', description: 'A name to refer to the account by (default: email or zai-<id>)' },
    browser: {
      type: 'boolean',
      default: true,
      description: 'Log in with a local browser (antigravity)',
      negativeDescription: 'Print the login URL and read the redirect URL pasted back (antigravity, headless machines)',
    },
    'refresh-token': { type: 'string', valueHint: 'token', description: 'Add a Google account from an existing refresh token (antigravity); - reads it from stdin' },
    'callback-port': { type: 'string', valueHint: 'port', description: 'Port of the local OAuth callback (antigravity, default 51121; when taken, one of the next few)' },
    'max-concurrent': MAX_CONCURRENT_ARG,
    project: PROJECT_ARG,
  },
  async run({ args }) {
    const interactive = stdinIsTty();
    // Checked before any login, so a typo does not cost a browser round trip.
    const capMeta = args['max-concurrent'] === undefined ? {} : { maxConcurrent: parseMaxConcurrent(args['max-concurrent']) };
    const projectMeta = args.project === undefined ? {} : { userProject: parseProject(args.project) };
    const reader = createLineReader();
    try {
      let provider = args.provider === undefined ? undefined : providerName(args.provider);
      if (!provider) {
        if (!interactive) throw new UsageError(`--provider is required (${PROVIDERS.join(' or ')})`);
        provider = await askProvider(reader.readLine);
      }
      if (!(PROVIDERS as readonly string[]).includes(provider)) {
        throw new UsageError(`--provider must be one of ${PROVIDERS.join(', ')}, got "${provider}"`);
      }
      const label = checkLabel(args.label);
      // A key given to the wrong provider would otherwise be dropped silently and a browser login
      // started in its place (or the key asked for again).
      if (provider === 'antigravity' && args['api-key'] !== undefined) {
        throw new UsageError('--api-key is for --provider zai; a Google account takes --refresh-token or a browser login');
      }
      if (provider === 'zai') {
        const google = args['refresh-token'] !== undefined ? '--refresh-token' : args.browser === false ? '--no-browser' : args['callback-port'] !== undefined ? '--callback-port' : null;
        if (google) throw new UsageError(`${google} is for --provider antigravity; a Z.AI account takes --api-key`);
      }
      if (provider === 'zai' && args.project !== undefined) throw new UsageError('--project is for --provider antigravity (a Google Cloud project)');

      if (provider === 'zai') {
        let apiKey = (args['api-key'] ?? '').trim();
        if (apiKey === '-') apiKey = await secretFromStdin(reader.readSecret, '--api-key', interactive ? 'Z.AI API key: ' : '');
        if (!apiKey) {
          if (!interactive) throw new UsageError('--api-key is required for --provider zai');
          apiKey = ((await reader.readSecret('Z.AI API key (not shown): ')) ?? '').trim();
          if (!apiKey) throw new UsageError('no API key given');
        }
        apiKey = cleanApiKey(apiKey);
        await withDb(async (db, config) => {
          const sameKey = () => listAccounts(db).find((a) => a.credentials.kind === 'api_key' && a.credentials.apiKey === apiKey);
          const alreadyAdded = (same: Account) => {
            const acc = relabel(db, same, label);
            say(`already added: ${acc.id} (${acc.label}), key ${maskSecret(apiKey)}`);
            if ('maxConcurrent' in capMeta) {
              updateAccount(db, same.id, { meta: capMeta });
              say(`${acc.id} (${acc.label}): ${describeCap(capMeta.maxConcurrent ?? null)}`);
            }
          };
          const same = sameKey();
          if (same) return alreadyAdded(same);
          if (label && findAccount(db, label)) throw new StoreError(`an account labelled "${label}" already exists`);
          // Checked with Z.AI before it is stored (the quota call is the cheap authenticated one): a
          // mistyped key is refused here, not found out by the first request that fails on it.
          const now = Date.now();
          const provisional: Account = {
            id: 'acc_new',
            provider: 'zai',
            label: label ?? 'new',
            email: null,
            status: 'active',
            statusReason: null,
            verifyUrl: null,
            credentials: { kind: 'api_key', apiKey },
            meta: {},
            createdAt: now,
            updatedAt: now,
            lastUsedAt: null,
          };
          const learned: Record<string, unknown> = {};
          let quotas: QuotaInfo[] | null = null;
          try {
            quotas = await readQuota(config, provisional, null, learned);
          } catch (err) {
            // On one line: only the first line of an error reaches the terminal.
            const msg = oneLine(((err as Error)?.message || String(err)).split(apiKey).join('***'));
            if (err instanceof UpstreamError && err.kind === 'auth') {
              throw new StoreError(`Z.AI refused the key ${maskSecret(apiKey)} (${msg}); it was not added`);
            }
            // Z.AI unreachable, or the key has no plan: stored anyway; the server checks it on every quota round.
            warn(`warning: could not check the key with Z.AI (${msg}); added anyway, \`mcp accounts verify\` checks it again`);
          }
          // Looked at again as it is stored: another `add` of this key may have finished during the check.
          const account = immediate(db, () => {
            if (sameKey()) return null;
            if (label && findAccount(db, label)) throw new StoreError(`an account labelled "${label}" already exists`);
            return upsertAccount(db, {
              provider: 'zai',
              credentials: { kind: 'api_key', apiKey },
              meta: { ...learned, ...capMeta },
              ...(label ? { label } : {}),
            }).account;
          });
          if (!account) return alreadyAdded(sameKey()!);
          const plan = typeof learned.plan === 'string' ? `, ${learned.plan} plan` : '';
          say(`added ${account.id} (${account.label}): zai key ${maskSecret(apiKey)}${plan}${storeQuota(db, account.id, quotas)}`);
        }, { create: true });
        return;
      }

      // antigravity: one of three Google login paths, all ending in {email, credentials, meta}.
      const callbackPort = parseCallbackPort(args['callback-port']);
      const config = cliConfig();
      const login = await import('./google-login.ts');
      const sayLine = (line: string) => warn(line);
      let result: Awaited<ReturnType<typeof login.loginWithRefreshToken>>;
      let refreshToken = (args['refresh-token'] ?? '').trim();
      // `--refresh-token "$TOKEN"` with the variable unset: a browser login instead would wait minutes in a script.
      if (args['refresh-token'] !== undefined && !refreshToken) {
        throw new UsageError('--refresh-token is empty: give the token, or - to read it from stdin (without the option, a browser login starts)');
      }
      if (refreshToken === '-') refreshToken = await secretFromStdin(reader.readSecret, '--refresh-token', interactive ? 'Refresh token: ' : '');
      // Discovery at login runs under the project given (`default`: Google's, as without it).
      const userProject = projectMeta.userProject ?? null;
      if (refreshToken) {
        result = await login.loginWithRefreshToken({ config, refreshToken, say: sayLine, userProject });
      } else if (args.browser === false) {
        result = await login.loginNoBrowser({
          config,
          userProject,
          say: sayLine,
          readLine: async (prompt: string) => {
            const line = await reader.readLine(prompt);
            if (line === null) throw new UsageError('no redirect URL given on stdin');
            return line;
          },
        });
      } else {
        if (!interactive && !process.env.DISPLAY && process.platform === 'linux') {
          warn('no terminal or display here: consider --no-browser or --refresh-token');
        }
        result = await login.loginWithBrowser({
          config,
          userProject,
          callbackPort,
          openBrowser,
          say: sayLine,
          timeoutMs: 5 * 60_000,
          readLine: reader.readLine,
        });
      }
      await withDb(async (db) => {
        // The store matches e-mails without case (upsertAccount): an account imported as
        // "Alice@…" is the one Google's "alice@…" login updates, and keeps its state here too.
        const sameLogin = (a: Account) => a.provider === 'antigravity' && a.email?.toLowerCase() === result.email.toLowerCase();
        // One transaction: a running server never sees a disabled account active between two writes.
        const { account, before, created } = immediate(db, () => {
          // Checked before anything is written: a label taken by another account changes nothing.
          const holder = label ? findAccount(db, label) : null;
          if (holder && !sameLogin(holder)) throw new StoreError(`an account labelled "${label}" already exists`);
          const before = listAccounts(db).find(sameLogin);
          const { account: stored, created } = upsertAccount(db, {
            provider: 'antigravity',
            email: result.email,
            credentials: result.credentials,
            meta: { ...result.meta, ...capMeta, ...projectMeta },
            ...(label ? { label } : {}),
          });
          const account = created ? stored : relabel(db, stored, label);
          // A new login mends an invalid account; one the user disabled stays disabled (their call, as for the server).
          if (before?.status === 'disabled') updateAccount(db, account.id, { status: 'disabled', statusReason: before.statusReason });
          return { account, before, created };
        });
        const stillDisabled = before?.status === 'disabled';
        // The project as stored: given now, or set before for this account.
        const own = userProjectOf(findAccount(db, account.id)?.meta ?? {});
        // Added all the same (the login is good): it serves once it has its project; no quota until then.
        const waitsForProject = result.needsProject === true && !own;
        let quotas: QuotaInfo[] | null = null;
        try {
          // Discovery just ended on the shared project: the reading uses it, not a second discovery
          // (a loadCodeAssist and an onboarding the user already waited for). Not stored, as at login.
          const quotaAccount = result.sharedProject && !own ? { ...account, meta: { ...account.meta, projectId: result.sharedProject } } : account;
          if (!waitsForProject) quotas = await readQuota(config, quotaAccount, db);
        } catch (err) {
          warn(`warning: could not read the quota yet (${oneLine((err as Error)?.message || String(err))}); the server reads it when it runs`);
        }
        say(`${created ? 'added' : 'updated'} ${account.id} (${account.label}): antigravity ${result.email}${storeQuota(db, account.id, quotas)}`);
        if (own) say(`${account.id} (${account.label}): ${describeProject(own)}`);
        else if (waitsForProject) {
          warn(
            `warning: this account's Google tier needs a Google Cloud project of its own (Workspace, paid Gemini Code Assist); it cannot serve until you set one: \`mcp accounts set ${shellQuote(account.label)} --project <your Google Cloud project id>\``,
          );
        }
        if (stillDisabled) say(`still disabled: \`mcp accounts enable ${shellQuote(account.label)}\` puts it back in rotation`);
      }, { create: true });
    } finally {
      reader.close();
    }
  },
});

const listCommand = defineCommand({
  meta: { name: 'list', description: 'List accounts with status, limits and last known quota' },
  args: { json: { type: 'boolean', description: 'Print JSON instead of a table' } },
  async run({ args }) {
    await withDb((db, config) => {
      const now = Date.now();
      const views = accountViews(listAccounts(db), listLimits(db), listQuotas(db), now, servesPastQuotaOf(config));
      if (args.json) printJson(views);
      else if (views.length === 0) say('no accounts yet: add one with `mcp accounts add`');
      else say(accountsTable(views, now));
    }, { readOnly: true });
  },
});

/** Copies of the database taken before a removal that are kept (the newest); `mcp backup` copies are never pruned. */
export const KEPT_REMOVAL_COPIES = 10;

const removeCommand = defineCommand({
  meta: { name: 'remove', description: 'Remove an account (and its limits and quota); a copy of the database is kept first' },
  args: {
    account: { type: 'positional', required: true, description: 'Account id or label' },
    backup: { type: 'boolean', default: true, description: 'Keep a copy of the database first', negativeDescription: 'Remove without keeping a copy first' },
  },
  async run({ args }) {
    await withDb((db, config) => {
      const acc = mustFind(db, args.account);
      // A removed Google account comes back only through a browser login: keep what it was first.
      let copy: string | null = null;
      if (args.backup !== false) {
        try {
          const dir = defaultBackupDir(config.dataDir, '');
          copy = backupToFresh(db, dir, 'before-remove', new Date()).path;
          pruneBackups(dir, 'before-remove', KEPT_REMOVAL_COPIES);
        } catch (err) {
          throw new StoreError(`${(err as Error).message}; ${acc.label} was not removed (--no-backup removes it without a copy)`);
        }
      }
      removeAccount(db, acc.id);
      say(`removed ${acc.id} (${acc.label})`);
      if (copy) say(`the database from before is kept at ${copy}: \`mcp accounts import ${shellQuote(copy)} --only ${acc.id}\` brings the account back`);
    });
  },
});

function statusCommand(name: 'enable' | 'disable') {
  return defineCommand({
    meta: {
      name,
      description: name === 'enable' ? 'Put an account back in rotation' : 'Take an account out of rotation (kept in the store)',
    },
    args: { account: { type: 'positional', required: true, description: 'Account id or label' } },
    async run({ args }) {
      await withDb((db) => {
        const acc = mustFind(db, args.account);
        // Invalid is not disabled: forcing it active would drop the verification link Google gave
        // and send requests to credentials known to fail. verify checks it and puts it back if it passes.
        if (name === 'enable' && acc.status === 'invalid') {
          throw new StoreError(
            `${acc.id} (${acc.label}) is not disabled but invalid (${acc.statusReason ?? 'no reason recorded'}); \`mcp accounts verify ${shellQuote(acc.label)}\` checks it now and puts it back in rotation when it passes`,
          );
        }
        const patch =
          name === 'enable'
            ? { status: 'active' as const, statusReason: null, verifyUrl: null }
            : { status: 'disabled' as const, statusReason: 'disabled by user' };
        updateAccount(db, acc.id, patch);
        say(`${name}d ${acc.id} (${acc.label})`);
      });
    },
  });
}

const setCommand = defineCommand({
  meta: { name: 'set', description: 'Rename an account, change its concurrency cap or its Google Cloud project (a running server picks it up)' },
  args: {
    account: { type: 'positional', required: true, description: 'Account id or label' },
    label: { type: 'string', valueHint: 'name', description: 'A new name to refer to the account by' },
    'max-concurrent': MAX_CONCURRENT_ARG,
    project: PROJECT_ARG,
  },
  async run({ args }) {
    if (args['max-concurrent'] === undefined && args.label === undefined && args.project === undefined) {
      throw new UsageError('nothing to set: give --label, --max-concurrent or --project');
    }
    const cap = args['max-concurrent'] === undefined ? undefined : parseMaxConcurrent(args['max-concurrent']);
    const project = args.project === undefined ? undefined : parseProject(args.project);
    const label = args.label === undefined ? undefined : checkLabel(args.label);
    if (label === undefined && args.label !== undefined) throw new UsageError('--label must not be empty');
    const recheck = await withDb((db) => {
      const acc = mustFind(db, args.account);
      if (label !== undefined && label !== acc.label && findAccount(db, label)) {
        throw new StoreError(`an account labelled "${label}" already exists`);
      }
      if (project !== undefined && acc.provider !== 'antigravity') {
        throw new UsageError(`--project is for Google (antigravity) accounts; ${acc.label} is a ${acc.provider} account`);
      }
      const meta = { ...(cap !== undefined ? { maxConcurrent: cap } : {}), ...(project !== undefined ? { userProject: project } : {}) };
      updateAccount(db, acc.id, { ...(label !== undefined ? { label } : {}), ...(Object.keys(meta).length ? { meta } : {}) });
      if (label !== undefined) say(`${acc.id}: label ${acc.label} -> ${label}`);
      if (cap !== undefined) say(`${acc.id} (${label ?? acc.label}): ${describeCap(cap)}`);
      if (project !== undefined) say(`${acc.id} (${label ?? acc.label}): ${describeProject(project)}`);
      return project !== undefined && acc.status === 'invalid' ? findAccount(db, acc.id) : null;
    });
    // Marked invalid (maybe for want of this very project): checked now under the new setting, and
    // back in rotation when it passes, rather than at the server's next quota round.
    if (recheck) {
      await withDb(async (db, config) => {
        const { createProviders } = await import('../providers/index.ts');
        await verifyOne(db, createProviders(config, providerDeps(db)), recheck);
      });
    }
  },
});

const resetCommand = defineCommand({
  meta: {
    name: 'reset',
    description: 'Forget the rate limits and spent quota readings recorded for an account (all accounts by default), e.g. after its quota came back early',
  },
  args: { account: { type: 'positional', required: false, description: 'Account id or label (default: all)' } },
  async run({ args }) {
    await withDb((db) => {
      const accounts = args.account ? [mustFind(db, args.account)] : listAccounts(db);
      const now = Date.now();
      let n = 0;
      for (const a of accounts) {
        const { limits, spent } = resetAccountLimits(db, a.id, now);
        // Rows that had run out held nothing back: they go quietly, and are not news.
        const live = limits.filter((l) => l.resetAt > now);
        if (!live.length && !spent.length) continue;
        n += live.length + spent.length;
        const parts: string[] = [];
        if (live.length) {
          const what = live.map((l) => `${l.model === '*' ? 'all models' : l.model} ${l.kind} (would have reset ${relativeTime(l.resetAt, now)})`).join(', ');
          parts.push(`cleared ${live.length} limit${live.length === 1 ? '' : 's'}: ${what}`);
        }
        if (spent.length) {
          // The server reads the quota again on its interval: a window still spent comes back then.
          const what = spent.map((q) => `${q.model === '*' ? 'all models' : q.model}${q.window ? ` ${q.window}` : ''} (would have reset ${relativeTime(q.resetAt!, now)})`).join(', ');
          parts.push(`forgot ${spent.length} spent quota window${spent.length === 1 ? '' : 's'}: ${what}`);
        }
        say(`reset ${accountName(a)}: ${parts.join('; ')}`);
      }
      if (!n) say(args.account ? `${accountName(accounts[0]!)} has no limits or spent quota windows recorded` : 'no limits or spent quota windows recorded');
    });
  },
});

/**
 * One account's verdict, printed. An account marked invalid that now passes (the user fixed it:
 * verified with Google, paid, new key, set its project) goes back into rotation; an active one that
 * fails for its credentials (a revoked login, a refused key) is marked invalid, as a request that
 * met it would, so `serve` stops picking it; one the user disabled stays disabled either way, and a
 * timeout, 5xx or network failure changes nothing. Returns whether it passed.
 */
/** `labelWidth`: the labels are padded to it, so the verdicts of a run line up. */
async function verifyOne(db: Database, providers: Partial<Record<ProviderId, Provider>>, acc: Account, labelWidth = 0): Promise<boolean> {
  const provider = providers[acc.provider];
  let verdict: VerifyResult;
  // The credentials the verdict is about: a login made while it was checked is newer news.
  const secret = secretOf(acc.credentials);
  if (!provider) verdict = { ok: false, detail: `provider ${acc.provider} is not available` };
  else {
    try {
      verdict = await provider.verify(acc, AbortSignal.timeout(30_000));
    } catch (err) {
      verdict = { ok: false, detail: (err as Error).message || String(err) };
    }
  }
  let back = '';
  // Only over `invalid` as stored now: the check took a while, and a disable meanwhile stays.
  if (verdict.ok && acc.status === 'invalid' && setStatusIf(db, acc.id, ['invalid'], { status: 'active', statusReason: null, verifyUrl: null })?.changed) {
    back = ` (was invalid: ${acc.statusReason ?? 'no reason'}; back in rotation)`;
  }
  // Only over `active` as stored now: an invalid one keeps its reason and link (a Z.AI key's expired
  // plan is known by its reason), a disabled one is the user's.
  const e = verdict.error;
  if (!verdict.ok && e && meansInvalidAccount(e) && acc.status === 'active') {
    const patch = { status: 'invalid' as const, statusReason: maskSecrets(e.message), verifyUrl: e.verifyUrl };
    if (setStatusIf(db, acc.id, ['active'], patch, Date.now(), secret)?.changed) back = ' (marked invalid: out of rotation until it passes again)';
  }
  // The detail is often the upstream's own words, which may quote a credential.
  say(`${verdict.ok ? 'ok  ' : 'FAIL'}  ${acc.id}  ${acc.label.padEnd(labelWidth)}  ${acc.provider}: ${oneLine(maskSecrets(verdict.detail))}${back}`);
  return verdict.ok;
}

const verifyCommand = defineCommand({
  meta: { name: 'verify', description: 'Make one cheap authenticated call per account and report the verdict' },
  args: { account: { type: 'positional', required: false, description: 'Account id or label (default: all)' } },
  async run({ args }) {
    await withDb(async (db, config) => {
      const accounts = args.account ? [mustFind(db, args.account)] : listAccounts(db);
      if (accounts.length === 0) {
        say('no accounts to verify: add one with `mcp accounts add`');
        return;
      }
      const { createProviders } = await import('../providers/index.ts');
      const providers = createProviders(config, providerDeps(db));
      let failed = 0;
      // Each verdict is printed as it comes: the widths are known up front, so the lines still align.
      const labelWidth = Math.max(...accounts.map((a) => a.label.length));
      for (const acc of accounts) {
        if (!(await verifyOne(db, providers, acc, labelWidth))) failed++;
      }
      if (failed) throw new Error(`${failed} of ${accounts.length} account${accounts.length === 1 ? '' : 's'} failed verification`);
    });
  },
});

export const accountsCommand = defineCommand({
  meta: { name: 'accounts', description: 'Manage the accounts in the pool' },
  subCommands: {
    add: addCommand,
    list: listCommand,
    remove: removeCommand,
    verify: verifyCommand,
    enable: statusCommand('enable'),
    disable: statusCommand('disable'),
    reset: resetCommand,
    set: setCommand,
    import: () => import('./import.ts').then((m) => m.importCommand),
  },
});
