// Google gates Cloud Code on the client version in the User-Agent (antigravity.md §4.3): a version it
// no longer supports gets a canned "please update" line as the model's answer. The accepted version
// moves every few weeks, faster than mcp is released, so on that answer the provider reads the
// current version from Antigravity's updater manifest and tries once more as that version.
import type { AnthropicEvent } from '../../anthropic/events.ts';
import { log } from '../../log.ts';

const GATE = /^\s*(This version of Antigravity is no longer supported|Your current version of Antigravity is out of date)/;
/**
 * The same kind of canned answer for a model Google retired (antigravity.md §11.5: "Gemini 3 Pro is no
 * longer available. Please switch to Gemini 3.1 Pro in the latest version of Antigravity."). Held to
 * the backend's whole wording, so a model's own answer about something else being retired is not it.
 */
const RETIRED = /^\s*(?:Gemini|Claude|GPT)[^\n]{0,60}? is no longer available\. Please switch to [^\n]{1,80}? in the latest version of Antigravity/;

/** Whether an answer's first text is the backend's version gate rather than the model's. */
export function isVersionGate(text: string): boolean {
  return GATE.test(text);
}

/** Whether an answer's first text is the backend's notice that the model was retired. */
export function isRetiredModelNotice(text: string): boolean {
  return RETIRED.test(text);
}

/**
 * The gate's (or the retired-model notice's) text when the first content among these events is one,
 * null when it is anything else (then the answer is the model's), undefined while no content has come yet.
 */
export function versionGateIn(events: readonly AnthropicEvent[]): string | null | undefined {
  for (const ev of events) {
    if (ev.type === 'content_block_start' && ev.content_block.type !== 'text') return null;
    if (ev.type === 'content_block_delta') {
      const text = ev.delta.type === 'text_delta' ? ev.delta.text : null;
      if (typeof text !== 'string') return null;
      if (text.trim() === '') continue;
      return isVersionGate(text) || isRetiredModelNotice(text) ? text : null;
    }
  }
  return undefined;
}

const SEMVER = /(\d+)\.(\d+)\.(\d+)/;

/** X.Y.Z from an updater manifest: YAML `version: X.Y.Z`, JSON `{"version": …}`, or plain text with one. */
export function parseManifestVersion(body: string): string | null {
  const keyed = /(?:^|[\s{,])["']?version["']?\s*:\s*["']?v?(\d+\.\d+\.\d+)/m.exec(body);
  if (keyed) return keyed[1]!;
  return SEMVER.exec(body)?.[0] ?? null;
}

function parts(v: string): number[] | null {
  const m = SEMVER.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

/** Orders X.Y.Z versions numerically; a string without one sorts first. */
export function compareClientVersions(a: string, b: string): number {
  const x = parts(a);
  const y = parts(b);
  if (!x || !y) return x ? 1 : y ? -1 : 0;
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
}

/** The User-Agent with its version replaced, or null when it carries none to replace. */
export function withClientVersion(userAgent: string, version: string): string | null {
  return SEMVER.test(userAgent) ? userAgent.replace(SEMVER, version) : null;
}

/** Between two reads of the manifest: every request meeting the gate must not ask again. */
export const MANIFEST_RECHECK_MS = 10 * 60_000;
const MANIFEST_TIMEOUT_MS = 5_000;

export interface ClientVersion {
  userAgent(): string;
  /** Reads the manifest; true when it named a newer version, which userAgent() now carries. */
  update(): Promise<boolean>;
}

export function createClientVersion(opts: {
  userAgent: string;
  /** The user chose the User-Agent (ANTIGRAVITY_USER_AGENT): it is never changed. */
  pinned: boolean;
  /** ANTIGRAVITY_VERSION_URL; null: never read. */
  manifestUrl: string | null;
  now(): number;
}): ClientVersion {
  let userAgent = opts.userAgent;
  let lastRead = -Infinity;
  let reading: Promise<boolean> | null = null;

  async function read(): Promise<boolean> {
    lastRead = opts.now();
    try {
      const res = await fetch(opts.manifestUrl!, {
        headers: { 'user-agent': 'electron-builder' },
        signal: AbortSignal.timeout(MANIFEST_TIMEOUT_MS),
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const version = parseManifestVersion((await res.text()).slice(0, 64 * 1024));
      if (!version) throw new Error('no version in it');
      const next = withClientVersion(userAgent, version);
      if (!next || compareClientVersions(version, userAgent) <= 0) return false;
      log.info(`antigravity: Google asked for a newer client; sending User-Agent "${next}" (was "${userAgent}")`);
      userAgent = next;
      return true;
    } catch (err) {
      log.warn(`antigravity: could not read the current client version from ANTIGRAVITY_VERSION_URL (${(err as Error)?.message ?? String(err)})`);
      return false;
    }
  }

  return {
    userAgent: () => userAgent,
    update(): Promise<boolean> {
      if (opts.pinned || !opts.manifestUrl) return Promise.resolve(false);
      if (reading) return reading;
      if (opts.now() - lastRead < MANIFEST_RECHECK_MS) return Promise.resolve(false);
      reading = read().finally(() => (reading = null));
      return reading;
    },
  };
}
