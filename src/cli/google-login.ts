// The three ways to add a Google (Antigravity) account (protocol §2.3–§2.5): an existing refresh
// token, the manual flow (print the consent URL, paste the redirect back), and the browser flow with
// a loopback callback server. All end the same way: e-mail from userinfo, project and tier from
// loadCodeAssist (onboarding if needed), ready for upsertAccount. Failures are one-line Errors
// without any token in them.
import type { Config } from '../config.ts';
import {
  buildAuthUrl,
  createPkce,
  exchangeCode,
  fetchUserEmail,
  isOAuthClientError,
  missingScopes,
  randomState,
  refreshAccessToken,
  type TokenSet,
} from '../providers/antigravity/oauth.ts';
import { discoverProject, type OnboardOptions } from '../providers/antigravity/project.ts';
import { UpstreamError } from '../providers/provider.ts';

export const DEFAULT_CALLBACK_PORT = 51121;
/** Ports tried after the requested one when it is taken (Windows reserves ranges for Hyper-V). */
const EXTRA_PORTS = 5;
const CALLBACK_PATH = '/oauth-callback';

export interface GoogleLoginResult {
  email: string;
  credentials: { kind: 'oauth'; refreshToken: string; accessToken: string; expiresAt: number };
  meta: { projectId?: string; projectFor?: string | null; tier?: string; tierId?: string | null };
  /** The account's tier needs a Google Cloud project of its own and none was given. */
  needsProject?: boolean;
  /**
   * The shared fallback project discovery ended on. Not stored (a later discovery may do better),
   * but the command's first quota reading uses it rather than run the whole discovery again.
   */
  sharedProject?: string;
}

type Say = (line: string) => void;

function fail(what: string, err: unknown): Error {
  const msg = err instanceof Error ? err.message : String(err);
  // The OAuth layer already says "Google refused the refresh token (invalid_grant…)": not twice.
  return new Error(msg.startsWith(what) ? msg : `${what}: ${msg}`);
}

/** Google down, slow or answering 5xx: nothing was refused, and saying so would send the user hunting a bad token. */
function isTransient(err: unknown): boolean {
  return err instanceof UpstreamError && err.kind === 'transient';
}

/**
 * E-mail + project/tier for fresh tokens, discovered under the user's own project when given.
 * Discovery problems other than auth leave the project to the provider.
 */
async function finish(
  config: Readonly<Config>,
  t: TokenSet,
  refreshToken: string,
  say: Say,
  onboard: OnboardOptions = {},
  userProject: string | null = null,
): Promise<GoogleLoginResult> {
  // An account added without them would only fail later, on every request, with a 403.
  const missing = missingScopes(t);
  if (missing.length) {
    throw new Error(`the Google login did not grant ${missing.join(' and ')}, which Antigravity needs; log in again and leave that permission ticked on the consent page`);
  }
  let email: string;
  try {
    email = await fetchUserEmail(config.antigravity, t.accessToken);
  } catch (err) {
    throw fail('could not read the Google account e-mail', err);
  }
  const meta: GoogleLoginResult['meta'] = {};
  let needsProject = false;
  let sharedProject: string | undefined;
  try {
    const info = await discoverProject(
      { endpoints: config.antigravity.endpoints, userAgent: config.antigravity.userAgent, now: Date.now },
      t.accessToken,
      undefined,
      // Polled for up to a minute: without a word the command would seem to hang.
      { ...onboard, onWait: () => say('Google is provisioning a Cloud Code project for this account; this can take up to a minute...') },
      { userProject },
    );
    meta.tier = info.tier;
    meta.tierId = info.tierId;
    // The shared fallback is not a discovery: leave it to the provider to try again later. Stored
    // with the setting it was found under, so the provider finds it again under another.
    if (!info.fallback) Object.assign(meta, { projectId: info.projectId, projectFor: userProject });
    // The account is added all the same, but requests under the shared project may well be refused:
    // the user must hear why now, not from a 403 later.
    else {
      sharedProject = info.projectId;
      say(`warning: Google gave this account no project${info.reason ? ` (${info.reason})` : ''}; requests use the shared project ${info.projectId} until discovery succeeds`);
    }
  } catch (err) {
    // The login is good; the account waits for its project (the caller says how to set it).
    if (err instanceof UpstreamError && err.code === 'PROJECT_REQUIRED') needsProject = true;
    else if (err instanceof UpstreamError && (err.kind === 'auth' || err.kind === 'invalid_account')) {
      // Verification is done in a browser: without the link the user is stuck.
      const e = fail('Google accepted the login but Cloud Code refused the account', err);
      if (err.verifyUrl) e.message += `; verify the account at ${err.verifyUrl}, then add it again`;
      throw e;
    } else say(`warning: project discovery failed (${(err as Error).message}); it will be retried on first use`);
  }
  const result: GoogleLoginResult = { email, credentials: { kind: 'oauth', refreshToken, accessToken: t.accessToken, expiresAt: t.expiresAt }, meta };
  if (needsProject) result.needsProject = true;
  if (sharedProject) result.sharedProject = sharedProject;
  return result;
}

/** Adds an account from an existing refresh token. */
export async function loginWithRefreshToken(opts: {
  config: Readonly<Config>;
  refreshToken: string;
  say?: Say;
  /** Onboarding's polling (tests shorten it). */
  onboard?: OnboardOptions;
  /** The account's own Google Cloud project (`--project`), sent to Google as duetProject. */
  userProject?: string | null;
}): Promise<GoogleLoginResult> {
  // Accept the Node proxy's composite "token|projectId|managedProjectId" form: only the first part goes to Google.
  const refreshToken = opts.refreshToken.trim().split('|')[0]!.trim();
  if (!refreshToken) throw new Error('the refresh token is empty');
  let t: TokenSet;
  try {
    t = await refreshAccessToken(opts.config.antigravity, refreshToken);
  } catch (err) {
    // A wrong GOOGLE_CLIENT_ID/SECRET: trying again changes nothing, the message says what to fix.
    if (isOAuthClientError(err)) throw new Error((err as Error).message);
    if (isTransient(err)) throw new Error(`could not check the refresh token with Google (${(err as Error).message}); try again`);
    throw fail('Google refused the refresh token', err);
  }
  return finish(opts.config, t, t.refreshToken ?? refreshToken, opts.say ?? (() => {}), opts.onboard, opts.userProject);
}

function redirectUriFor(port: number): string {
  return `http://localhost:${port}${CALLBACK_PATH}`;
}

/** Google's own refusal (consent denied): pasting again cannot mend it. */
class LoginRefused extends Error {}

/** Google codes never hold a `%`: one that does was copied out of the address bar still URL-encoded. */
function decodeCode(code: string): string {
  if (!code.includes('%')) return code;
  try {
    return decodeURIComponent(code);
  } catch {
    return code;
  }
}

/**
 * What the user pasted: the full redirected URL, the same without its `http://` (as browsers show
 * it), its query alone, or the bare code (§2.4), URL-encoded or not.
 */
export function parsePastedRedirect(input: string, expectedState: string): string {
  let text = input.trim();
  // Pasted twice on one line (a paste that seemed not to take): once.
  const half = text.length / 2;
  if (Number.isInteger(half) && half > 0 && text.slice(0, half) === text.slice(half)) text = text.slice(0, half);
  const isUrl = /^https?:\/\//i.test(text);
  if (isUrl || /(^|[?&])(code|error|state)=/.test(text)) {
    if (isUrl && !URL.canParse(text)) throw new Error('that is not a valid URL');
    const q = text.indexOf('?');
    const query = new URLSearchParams((q >= 0 ? text.slice(q + 1) : text).split('#')[0]);
    const state = query.get('state');
    if (state !== null && state !== expectedState) throw new Error('the pasted URL belongs to another login attempt (state mismatch)');
    const error = query.get('error');
    if (error) throw new LoginRefused(`Google reported an error: ${error}`);
    const code = query.get('code')?.trim();
    if (!code) throw new Error('the pasted URL has no code parameter');
    return decodeCode(code);
  }
  if (text.length < 10 || /\s/.test(text)) throw new Error('that does not look like a Google authorization code or redirect URL');
  return decodeCode(text);
}

async function exchange(
  config: Readonly<Config>,
  code: string,
  verifier: string,
  redirectUri: string,
  say: Say,
  userProject: string | null = null,
): Promise<GoogleLoginResult> {
  let t: TokenSet & { refreshToken: string };
  try {
    t = await exchangeCode(config.antigravity, { code, verifier, redirectUri });
  } catch (err) {
    if (isOAuthClientError(err)) throw new Error((err as Error).message);
    if (isTransient(err)) throw new Error(`could not exchange the authorization code with Google (${(err as Error).message}); start the login again`);
    // Only invalid_grant is a refusal of the code; a missing refresh token says its own remedy.
    if (err instanceof UpstreamError && err.code !== 'invalid_grant') throw new Error(err.message);
    throw fail('Google refused the authorization code', err);
  }
  return finish(config, t, t.refreshToken, say, {}, userProject);
}

/** Manual flow: print the consent URL, read the redirected URL (or the code) back; a bad paste is asked for again. */
export async function loginNoBrowser(opts: {
  config: Readonly<Config>;
  say: Say;
  /** null at the end of input. */
  readLine: (prompt: string) => Promise<string | null>;
  callbackPort?: number;
  userProject?: string | null;
}): Promise<GoogleLoginResult> {
  const pkce = createPkce();
  const state = randomState();
  const redirectUri = redirectUriFor(opts.callbackPort || DEFAULT_CALLBACK_PORT);
  const url = buildAuthUrl(opts.config.antigravity, { redirectUri, state, codeChallenge: pkce.challenge });
  opts.say('Open this URL in any browser and sign in with your Google account:');
  opts.say(url);
  opts.say(`The browser then lands on ${redirectUri}?code=… (the page will not load); copy that whole address.`);
  // The consent cannot be redone from here: a stray Enter or a wrong paste must not throw it away.
  for (;;) {
    const pasted = await opts.readLine('Paste the redirected URL (or just the code): ');
    if (pasted === null) throw new Error('no redirect URL given on stdin');
    if (!pasted.trim()) continue;
    let code: string;
    try {
      code = parsePastedRedirect(pasted, state);
    } catch (err) {
      if (err instanceof LoginRefused) throw err;
      opts.say(`${(err as Error).message}; paste again`);
      continue;
    }
    return exchange(opts.config, code, pkce.verifier, redirectUri, opts.say, opts.userProject);
  }
}

/** Reads pasted lines until one carries this login's code, the login is over, or input ends. */
async function readPasted(
  readLine: (prompt: string) => Promise<string | null>,
  state: string,
  say: Say,
  isDone: () => boolean,
  gotCode: (code: string) => void,
  refused: (err: Error) => void,
): Promise<void> {
  for (;;) {
    let line: string | null;
    try {
      line = await readLine('');
    } catch {
      return;
    }
    if (line === null || isDone()) return;
    if (!line.trim()) continue;
    try {
      gotCode(parsePastedRedirect(line, state));
      return;
    } catch (err) {
      if (err instanceof LoginRefused) return refused(err);
      say(`${(err as Error).message}; still waiting for the browser, or paste again`);
    }
  }
}

const PAGE = (title: string, body: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body style="font-family:sans-serif;margin:3em"><h2>${title}</h2><p>${body}</p></body></html>`;

function html(status: number, title: string, body: string): Response {
  return new Response(PAGE(title, body), { status, headers: { 'content-type': 'text/html; charset=utf-8' } });
}

type Server = ReturnType<typeof Bun.serve>;

/** A port is taken when it is taken on either loopback: `localhost` in the redirect may resolve to ::1 first. */
function inUse(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === 'EADDRINUSE';
}

/**
 * Binds the callback server on 127.0.0.1 and [::1] (where there is one): the requested port, else
 * the next few. A port another program holds on [::1] alone would get the browser's redirect.
 */
function bindCallback(port: number, handler: (req: Request) => Response): Server[] {
  let lastErr: unknown;
  for (let p = port; p <= Math.min(65535, port + EXTRA_PORTS); p++) {
    let v4: Server;
    try {
      v4 = Bun.serve({ port: p, hostname: '127.0.0.1', fetch: handler });
    } catch (err) {
      lastErr = err;
      continue;
    }
    try {
      return [v4, Bun.serve({ port: p, hostname: '::1', fetch: handler })];
    } catch (err) {
      if (!inUse(err)) return [v4]; // no IPv6 loopback here
      v4.stop(true);
      lastErr = err;
    }
  }
  throw new Error(`cannot listen for the Google callback on ports ${port}-${port + EXTRA_PORTS} (${(lastErr as { code?: string })?.code ?? 'in use'}); use --callback-port or --no-browser`);
}

/** Browser flow: loopback callback server, consent URL opened in the browser, code exchanged. */
export async function loginWithBrowser(opts: {
  config: Readonly<Config>;
  callbackPort?: number;
  openBrowser: (url: string) => boolean | void | Promise<unknown>;
  say: Say;
  timeoutMs?: number;
  /**
   * Reads a line the user pastes (null at end of input). When given, the address the browser landed
   * on may be pasted instead of reaching the callback: a browser on another machine (SSH) cannot.
   */
  readLine?: (prompt: string) => Promise<string | null>;
  userProject?: string | null;
}): Promise<GoogleLoginResult> {
  const pkce = createPkce();
  const state = randomState();
  let settle!: { resolve: (code: string) => void; reject: (err: Error) => void };
  const got = new Promise<string>((resolve, reject) => (settle = { resolve, reject }));
  let done = false;

  const servers = bindCallback(opts.callbackPort || DEFAULT_CALLBACK_PORT, (req) => {
    const u = new URL(req.url);
    if (u.pathname !== CALLBACK_PATH) return new Response('not found', { status: 404 });
    if (done) return html(200, 'Already done', 'You can close this tab.');
    // State first, for errors too: any web page can make the browser load this address, and only
    // Google knows the state; a stale tab or a forged request is refused and the wait goes on.
    if (u.searchParams.get('state') !== state) {
      return html(400, 'Login failed', 'This login link does not belong to the running mcp accounts add (state mismatch).');
    }
    const error = u.searchParams.get('error');
    if (error) {
      done = true;
      settle.reject(new Error(`Google login was not completed: ${error}`));
      return html(400, 'Login failed', `Google reported: ${error.replace(/[<>&"']/g, '')}. You can close this tab.`);
    }
    const code = u.searchParams.get('code');
    if (!code) return html(400, 'Login failed', 'The callback had no authorization code.');
    done = true;
    settle.resolve(code);
    return html(200, 'Signed in', 'mcp received the Google login. You can close this tab.');
  });

  const timeoutMs = opts.timeoutMs ?? 5 * 60_000;
  const timer = setTimeout(() => {
    if (done) return;
    done = true;
    settle.reject(new Error(`timed out after ${Math.round(timeoutMs / 1000)}s waiting for the Google login; try --no-browser`));
  }, timeoutMs);
  try {
    const redirectUri = redirectUriFor(servers[0]!.port as number);
    const url = buildAuthUrl(opts.config.antigravity, { redirectUri, state, codeChallenge: pkce.challenge });
    opts.say('Opening the Google sign-in page; if it does not open, visit:');
    opts.say(url);
    try {
      const opened = opts.openBrowser(url);
      if (opened instanceof Promise) opened.catch(() => {});
      else if (opened === false) opts.say('(could not start a browser here: open the URL above yourself)');
    } catch {
      opts.say('(could not start a browser here: open the URL above yourself)');
    }
    if (opts.readLine) {
      opts.say(`If the browser is on another machine, it lands on ${redirectUri}?code=… and shows an error: paste that whole address here.`);
      void readPasted(
        opts.readLine,
        state,
        opts.say,
        () => done,
        (code) => {
          done = true;
          settle.resolve(code);
        },
        (err) => {
          done = true;
          settle.reject(new Error(`Google login was not completed: ${err.message.replace(/^Google reported an error: /, '')}`));
        },
      );
    }
    const code = await got;
    return await exchange(opts.config, code, pkce.verifier, redirectUri, opts.say, opts.userProject);
  } finally {
    clearTimeout(timer);
    // Let the success page reach the browser before closing.
    for (const server of servers) server.stop(false);
  }
}
