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

export async function loadCodeAssist(opts: CloudCodeOptions, token: string, signal?: AbortSignal): Promise<Record<string, unknown>> {
  return postJson(opts, 'loadCodeAssist', { metadata: CLIENT_METADATA }, token, signal);
}

export interface OnboardOptions {
  /** Polls of the long-running operation (default 10). */
  attempts?: number;
  /** Wait between polls (default 5 s). */
  pollDelayMs?: number;
  /** Called once when the operation is not done at once: the wait that follows can be long. */
  onWait?: () => void;
}

/** §3.2: onboardUser, re-posted until `done`; returns the project id or null. */
export async function onboardUser(
  opts: CloudCodeOptions,
  token: string,
  tierId: string,
  signal?: AbortSignal,
  poll: OnboardOptions = {},
): Promise<string | null> {
  const attempts = poll.attempts ?? 10;
  const delay = poll.pollDelayMs ?? 5000;
  for (let i = 0; i < attempts; i++) {
    const op = await postJson(opts, 'onboardUser', { tierId, metadata: CLIENT_METADATA }, token, signal);
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

/** Discovery end to end: loadCodeAssist, onboarding when there is no project, the fallback last. */
export async function discoverProject(
  opts: CloudCodeOptions,
  token: string,
  signal?: AbortSignal,
  poll: OnboardOptions = {},
): Promise<ProjectInfo> {
  const body = await loadCodeAssist(opts, token, signal);
  const parsed = parseLoadCodeAssist(body);
  if (parsed.projectId) return { projectId: parsed.projectId, tier: parsed.tier, tierId: parsed.tierId };
  const mustVerify = validationRequired(body);
  if (mustVerify) throw mustVerify;
  let onboarded: string | null = null;
  let failure: string | null = null;
  try {
    onboarded = await onboardUser(opts, token, onboardTierId(body), signal, poll);
  } catch (err) {
    // An auth problem must surface; anything else falls through to the shared project.
    if (err instanceof UpstreamError && (err.kind === 'auth' || err.kind === 'invalid_account')) throw err;
    if (signal?.aborted) throw err;
    failure = (err as Error).message;
    log.warn(`antigravity: onboarding failed (${failure})`);
  }
  if (onboarded) return { projectId: onboarded, tier: parsed.tier, tierId: parsed.tierId };
  // Google's own reasons say more than the onboarding's refusal of them.
  const reason = ineligibleReasons(body) ?? (failure && `onboarding failed: ${failure}`);
  log.warn(`antigravity: no project discovered for this account${reason ? ` (${reason})` : ''}; using the shared fallback project ${FALLBACK_PROJECT_ID}`);
  const info: ProjectInfo = { projectId: FALLBACK_PROJECT_ID, tier: parsed.tier, tierId: parsed.tierId, fallback: true };
  if (reason) info.reason = reason;
  return info;
}
