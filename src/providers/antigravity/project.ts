// Which Cloud AI Companion project an account generates under (protocol §3): loadCodeAssist gives
// the project and tier; accounts without one are onboarded (a long-running op, polled); when all
// that yields nothing the historical shared project is used, with a warning.
import { log } from '../../log.ts';
import { UpstreamError } from '../provider.ts';
import { postJson, type CloudCodeOptions } from './client.ts';

/** Last resort of every proxy when discovery yields nothing (§3.3). */
export const FALLBACK_PROJECT_ID = 'rising-fact-p41fc';

export type Tier = 'free' | 'pro' | 'ultra' | 'unknown';

export interface ProjectInfo {
  projectId: string;
  tier: Tier;
  /** The raw tier id the tier was derived from (e.g. "g1-pro-tier"). */
  tierId: string | null;
  /** True when discovery failed and the shared fallback project is used. */
  fallback?: boolean;
  /** With the fallback: why Google gave no project (its ineligibleTiers reasons), for the user. */
  reason?: string;
}

/** The metadata the official client sends (§3.1); the old IDE_UNSPECIFIED shape leads to license 403s. */
export const CLIENT_METADATA = { ideType: 'ANTIGRAVITY' } as const;

/** Google Cloud project ids: 6-30 lowercase letters, digits and hyphens, from a letter, not ending in a hyphen. */
export function isProjectId(s: string): boolean {
  return /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/.test(s);
}

/**
 * The account's own Google Cloud project (`mcp accounts set --project`), for tiers Google does not
 * provision one for (Workspace, paid Gemini Code Assist: standard-tier). Null when not set.
 */
export function userProjectOf(meta: Record<string, unknown>): string | null {
  const p = meta.userProject;
  return typeof p === 'string' && p ? p : null;
}

/** The metadata with the user's project as `duetProject` (§3.1, §3.2), as [NODE] and [OC] send it. */
function metadataFor(userProject: string | null): Record<string, string> {
  return userProject ? { ...CLIENT_METADATA, duetProject: userProject } : { ...CLIENT_METADATA };
}

/** `cloudaicompanionProject` is a string or `{id, name, projectNumber}`. */
export function projectIdOf(v: unknown): string | null {
  if (typeof v === 'string' && v) return v;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    for (const k of ['id', 'projectId', 'project']) if (typeof o[k] === 'string' && o[k]) return o[k] as string;
  }
  return null;
}

/** Tier from an id (§3.1 parseTierId): ultra > standard-tier/pro/premium > free. */
export function tierFromId(id: string | null): Tier {
  if (!id) return 'unknown';
  const s = id.toLowerCase();
  if (s.includes('ultra')) return 'ultra';
  if (s === 'standard-tier' || s.includes('pro') || s.includes('premium')) return 'pro';
  if (s.includes('free')) return 'free';
  return 'unknown';
}

interface Tierish {
  id?: unknown;
  isDefault?: unknown;
  userDefinedCloudaicompanionProject?: unknown;
}

function idOf(t: unknown): string | null {
  const id = (t as Tierish | null)?.id;
  return typeof id === 'string' && id ? id : null;
}

/** Reads project and tier out of a loadCodeAssist answer (priority paidTier > currentTier > default allowed). */
export function parseLoadCodeAssist(body: Record<string, unknown>): { projectId: string | null; tierId: string | null; tier: Tier } {
  const projectId = projectIdOf(body.cloudaicompanionProject) ?? projectIdOf(body.projectId) ?? projectIdOf(body.project);
  const allowed = Array.isArray(body.allowedTiers) ? (body.allowedTiers as Tierish[]) : [];
  const tierId = idOf(body.paidTier) ?? idOf(body.currentTier) ?? idOf(allowed.find((t) => t.isDefault === true)) ?? null;
  return { projectId, tierId, tier: tierFromId(tierId) };
}

interface Ineligible {
  reasonCode?: unknown;
  reasonMessage?: unknown;
  validationUrl?: unknown;
}

/** Google's reasons for refusing tiers ("UNSUPPORTED_LOCATION: …"), one line; null when none. */
export function ineligibleReasons(body: Record<string, unknown>): string | null {
  const list = Array.isArray(body.ineligibleTiers) ? (body.ineligibleTiers as Ineligible[]) : [];
  const reasons = list
    .map((t) => [t?.reasonCode, t?.reasonMessage].filter((x): x is string => typeof x === 'string' && !!x).join(': '))
    .filter(Boolean);
  return reasons.length ? [...new Set(reasons)].join('; ').replace(/\s+/g, ' ') : null;
}

/**
 * An account with no tier that Google wants verified first (gemini-cli's setup.ts reads it the same
 * way): onboarding it or sending it to the shared project only fails later and loses the link.
 */
export function validationRequired(body: Record<string, unknown>): UpstreamError | null {
  if (body.currentTier || !Array.isArray(body.ineligibleTiers)) return null;
  const t = (body.ineligibleTiers as Ineligible[]).find((x) => x?.reasonCode === 'VALIDATION_REQUIRED' && typeof x.validationUrl === 'string' && x.validationUrl);
  if (!t) return null;
  const why = typeof t.reasonMessage === 'string' && t.reasonMessage ? t.reasonMessage : 'account verification required';
  return new UpstreamError('invalid_account', `Google requires verifying this account (${why})`, {
    code: 'VALIDATION_REQUIRED',
    scope: 'account',
    verifyUrl: t.validationUrl as string,
  });
}

/** The tier to onboard with: the default allowed tier, else the first, else free (never paidTier, §3.2). */
export function onboardTierId(body: Record<string, unknown>): string {
  const allowed = Array.isArray(body.allowedTiers) ? (body.allowedTiers as Tierish[]) : [];
  return idOf(allowed.find((t) => t.isDefault === true)) ?? idOf(allowed[0]) ?? idOf(body.currentTier) ?? 'free-tier';
}

/**
 * The tier id when the account's tier takes a project of the user's own (Google flags it with
 * userDefinedCloudaicompanionProject: standard-tier, i.e. Workspace and paid Gemini Code Assist):
 * the current tier, else the one it would be onboarded with. Null when Google provisions one.
 */
export function ownProjectTier(body: Record<string, unknown>): string | null {
  const allowed = Array.isArray(body.allowedTiers) ? (body.allowedTiers as Tierish[]) : [];
  const tier = (body.currentTier as Tierish | undefined) ?? allowed.find((t) => t?.isDefault === true) ?? allowed[0];
  return tier?.userDefinedCloudaicompanionProject === true ? (idOf(tier) ?? 'standard-tier') : null;
}

/** How the user names the account's project; `label` is the account's when known. */
export function setProjectHint(label?: string): string {
  return `\`mcp accounts set ${label && !/[\s'"]/.test(label) ? label : '<label>'} --project <your Google Cloud project id>\``;
}

/** An account whose tier needs a project of its own, without one set: it cannot serve until the user names one. */
export function projectRequired(tierId: string, label?: string): UpstreamError {
  return new UpstreamError(
    'invalid_account',
    `this account's Google tier (${tierId}) needs a Google Cloud project of its own, and none is set: ${setProjectHint(label)}`,
    { code: 'PROJECT_REQUIRED', scope: 'account' },
  );
}

export async function loadCodeAssist(opts: CloudCodeOptions, token: string, signal?: AbortSignal, userProject: string | null = null): Promise<Record<string, unknown>> {
  return postJson(opts, 'loadCodeAssist', { metadata: metadataFor(userProject) }, token, signal);
}

/** loadCodeAssist for an account; a 403 under the user's own project (a typo, no access) names the setting to fix. */
export async function loadCodeAssistFor(opts: CloudCodeOptions, token: string, signal: AbortSignal | undefined, owner: ProjectOwner): Promise<Record<string, unknown>> {
  const userProject = owner.userProject ?? null;
  try {
    return await loadCodeAssist(opts, token, signal, userProject);
  } catch (err) {
    if (!userProject || !(err instanceof UpstreamError) || err.status !== 403) throw err;
    throw new UpstreamError(err.kind, `Google refused this account's own project ${userProject} (${err.message}); check the id and that the account may use it: ${setProjectHint(owner.label)}`, {
      status: err.status,
      code: err.code,
      scope: err.scope,
      cause: err,
    });
  }
}

export interface OnboardOptions {
  /** Polls of the long-running operation (default 10). */
  attempts?: number;
  /** Wait between polls (default 5 s). */
  pollDelayMs?: number;
  /** Called once when the operation is not done at once: the wait that follows can be long. */
  onWait?: () => void;
}

/** Who discovery is for: the user's own project (sent as duetProject) and the label messages name. */
export interface ProjectOwner {
  userProject?: string | null;
  label?: string;
}

/** §3.2: onboardUser, re-posted until `done`; returns the project id or null. */
export async function onboardUser(
  opts: CloudCodeOptions,
  token: string,
  tierId: string,
  signal?: AbortSignal,
  poll: OnboardOptions = {},
  userProject: string | null = null,
): Promise<string | null> {
  const attempts = poll.attempts ?? 10;
  const delay = poll.pollDelayMs ?? 5000;
  const metadata = metadataFor(userProject);
  for (let i = 0; i < attempts; i++) {
    const op = await postJson(opts, 'onboardUser', { tierId, metadata }, token, signal);
    if (op.done === true) {
      // A finished operation may carry a google.rpc.Status instead of a response: that is the answer.
      if (op.error && typeof op.error === 'object') {
        const e = op.error as { message?: unknown; status?: unknown };
        const status = typeof e.status === 'string' && e.status ? e.status : null;
        const message = typeof e.message === 'string' && e.message ? e.message.replace(/\s+/g, ' ') : null;
        throw new UpstreamError('bad_request', [status, message].filter(Boolean).join(': ') || 'the operation ended in an error', {
          code: status,
        });
      }
      const response = (op.response ?? {}) as Record<string, unknown>;
      return projectIdOf(response.cloudaicompanionProject) ?? projectIdOf(response.projectId);
    }
    if (i + 1 < attempts) {
      if (signal?.aborted) throw new UpstreamError('transient', 'request aborted by the client');
      if (i === 0) poll.onWait?.();
      await Bun.sleep(delay);
    }
  }
  return null;
}

/**
 * Discovery end to end: loadCodeAssist, onboarding when there is no project, then the user's own
 * project when set, the shared fallback last. A tier that needs the user's project and has none
 * (and no other reason from Google) is an error naming the setting: the fallback would only be refused.
 */
export async function discoverProject(
  opts: CloudCodeOptions,
  token: string,
  signal?: AbortSignal,
  poll: OnboardOptions = {},
  owner: ProjectOwner = {},
): Promise<ProjectInfo> {
  const userProject = owner.userProject ?? null;
  const body = await loadCodeAssistFor(opts, token, signal, owner);
  const parsed = parseLoadCodeAssist(body);
  if (parsed.projectId) return { projectId: parsed.projectId, tier: parsed.tier, tierId: parsed.tierId };
  const mustVerify = validationRequired(body);
  if (mustVerify) throw mustVerify;
  const ownTier = ownProjectTier(body);
  if (ownTier && !userProject && !ineligibleReasons(body)) throw projectRequired(ownTier, owner.label);
  // Already on a tier that takes the user's project (gemini-cli's setup.ts does the same): nothing to onboard.
  if (userProject && ownTier && body.currentTier) return { projectId: userProject, tier: parsed.tier, tierId: parsed.tierId };
  let onboarded: string | null = null;
  let failure: string | null = null;
  try {
    onboarded = await onboardUser(opts, token, onboardTierId(body), signal, poll, userProject);
  } catch (err) {
    // An auth problem must surface; anything else falls through to the shared project.
    if (err instanceof UpstreamError && (err.kind === 'auth' || err.kind === 'invalid_account')) throw err;
    if (signal?.aborted) throw err;
    failure = (err as Error).message;
    log.warn(`antigravity: onboarding failed (${failure})`);
  }
  if (onboarded) return { projectId: onboarded, tier: parsed.tier, tierId: parsed.tierId };
  // §3.2: a finished onboarding that names no project means the one the caller passed.
  if (userProject) {
    if (failure) log.warn(`antigravity: onboarding under your project ${userProject} failed (${failure}); using it all the same`);
    return { projectId: userProject, tier: parsed.tier, tierId: parsed.tierId };
  }
  // Google's own reasons say more than the onboarding's refusal of them.
  const google = ineligibleReasons(body);
  const why = google ?? (failure && `onboarding failed: ${failure}`);
  // Refused the tiers Google provisions, the user's own project may still serve.
  const reason = why && ownTier ? `${why}; its tier ${ownTier} can use a Google Cloud project of your own: ${setProjectHint(owner.label)}` : why;
  log.warn(`antigravity: no project discovered for this account${reason ? ` (${reason})` : ''}; using the shared fallback project ${FALLBACK_PROJECT_ID}`);
  const info: ProjectInfo = { projectId: FALLBACK_PROJECT_ID, tier: parsed.tier, tierId: parsed.tierId, fallback: true };
  if (reason) info.reason = reason;
  return info;
}
