// One consola instance for the program: human lines by default, JSON lines with LOG_FORMAT=json.
// Anything that looks like a secret is masked before it is written, whatever the caller passed.
import { writeSync } from 'node:fs';
// consola/core: the reporters here are our own; the package's main entry also builds a default
// instance with its own reporters at load, which cost the server ~2.5 MB of idle RSS.
import { createConsola, type ConsolaInstance, type LogObject } from 'consola/core';
import { trackSize } from './diagnostics.ts';

// Google access tokens, Google refresh tokens, Z.AI keys (32 hex digits, a dot, a secret part) and
// sk- keys: secrets by their shape alone, whatever the text around them.
const SHAPE_PATTERNS: RegExp[] = [
  /ya29\.[A-Za-z0-9_\-.]+/g,
  /\b[0-9a-f]{32}\.[A-Za-z0-9_\-]{8,}/gi,
  /1\/\/[A-Za-z0-9_\-]{10,}/g,
  /\bsk-[A-Za-z0-9_\-]{10,}/g,
];

// The user and password of a URL (http://user:password@host: a proxy, a base URL with credentials).
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s@/?#]+@/gi;

// Bearer values and key=value pairs: secrets by what stands before them. A value ends before the
// sentence's own closing punctuation ("(refresh_token=…); log in again" keeps its ");"), and one
// masked already ("***") is left alone; an Authorization value keeps its scheme (Bearer ***, Basic ***).
const CONTEXT_PATTERNS: RegExp[] = [
  /(Bearer\s+)[A-Za-z0-9_\-.~+/=]{6,}/gi,
  /("?(?:api[_-]?key|apiKey|access[_-]?token|accessToken|refresh[_-]?token|refreshToken|client[_-]?secret|authorization|x-api-key|password)"?\s*[:=]\s*"?(?:(?:Bearer|Basic)\s+)?)(?!\*\*\*|(?:Bearer|Basic)\s)([^"\s,}&]{4,}?)(?=[);.]*(?:["\s,}&]|$))/gi,
];

// Secret -> until when it is kept (Infinity: for the life of the process). Access tokens come every
// hour per account and every log line is scanned for each entry, so expired ones are dropped.
const extraSecrets = new Map<string, number>();
// Kept this long past its end: a line may still quote a token that just expired.
const EXPIRED_GRACE_MS = 60 * 60 * 1000;
trackSize('log.secrets', () => extraSecrets.size);

/**
 * Registers a literal secret (e.g. PROXY_API_KEY, an account key) to be masked wherever it appears;
 * one that stops working at `expiresAt` (an access token) is forgotten some time after that.
 */
export function registerSecret(secret: string | undefined | null, expiresAt = Number.POSITIVE_INFINITY, now = Date.now()): void {
  if (!secret || secret.length < 6) return;
  for (const [s, until] of extraSecrets) if (until + EXPIRED_GRACE_MS < now) extraSecrets.delete(s);
  extraSecrets.set(secret, Math.max(extraSecrets.get(secret) ?? Number.NEGATIVE_INFINITY, expiresAt));
}

/** How many literal secrets are registered (tests: the list stays bounded). */
export function registeredSecretCount(): number {
  return extraSecrets.size;
}

// Matches wherever any of the patterns could (a superset): most lines (every request line) contain
// none of these, and one test is far cheaper than six replaces.
const MAYBE_SECRET = /ya29\.|1\/\/|[0-9a-f]{32}\.|bearer\s|\bsk-|api[_-]?key|access[_-]?token|refresh[_-]?token|client[_-]?secret|authorization|password|:\/\/[^\s@/?#]+@/i;
const MAYBE_SHAPED = /ya29\.|1\/\/|[0-9a-f]{32}\.|\bsk-|:\/\/[^\s@/?#]+@/i;

function maskLiterals(text: string): string {
  let out = text;
  for (const s of extraSecrets.keys()) if (out.includes(s)) out = out.split(s).join('***');
  return out;
}

function maskAll(text: string, patterns: RegExp[]): string {
  let out = text;
  for (const re of patterns) {
    out = out.replace(re, (m, p1?: string, p2?: string) => {
      if (typeof p1 === 'string' && typeof p2 === 'string') return `${p1}***`;
      if (typeof p1 === 'string' && /^bearer/i.test(p1)) return `${p1}***`;
      return '***';
    });
  }
  return out;
}

function maskShapes(text: string): string {
  return maskAll(text.replace(URL_CREDENTIALS, '$1***@'), SHAPE_PATTERNS);
}

/** A log line with anything that looks like a secret masked (registered ones, shapes, key=value). */
export function redact(text: string): string {
  const out = maskLiterals(text);
  if (!MAYBE_SECRET.test(out)) return out;
  return maskAll(maskShapes(out), CONTEXT_PATTERNS);
}

/**
 * Text for a client (an error message): registered secrets and token-shaped strings masked, but not
 * the key=value guesses, which would mangle the proxy's own words ("send x-api-key or Authorization: Bearer").
 */
export function maskSecrets(text: string): string {
  const out = maskLiterals(text);
  return MAYBE_SHAPED.test(out) ? maskShapes(out) : out;
}

function stringify(arg: unknown): string {
  if (typeof arg === 'string') return arg;
  if (arg instanceof Error) return arg.message;
  try {
    return JSON.stringify(arg);
  } catch {
    return String(arg);
  }
}

// Request lines (one per finished request, info level) are gathered and written at most every
// LINE_BATCH_MS or per 64 KB: one write(2) per request was ~4 µs, a few percent of a small request.
// Anything else (warnings, errors, start-up lines) first writes what is gathered, then itself, so
// the order holds; what is gathered is written at exit too, and a SIGKILL loses at most that long.
const LINE_BATCH_MS = 50;
let gathered = '';
let gatherTimer: ReturnType<typeof setTimeout> | undefined;
let batchNext = false;

function flushGathered(): void {
  if (gatherTimer) clearTimeout(gatherTimer);
  gatherTimer = undefined;
  if (!gathered) return;
  const text = gathered;
  gathered = '';
  process.stderr.write(text);
}

function emit(text: string, batch: boolean): void {
  if (!batch) {
    flushGathered();
    process.stderr.write(text);
    return;
  }
  gathered += text;
  if (gathered.length >= 65536) flushGathered();
  else if (!gatherTimer) {
    gatherTimer = setTimeout(flushGathered, LINE_BATCH_MS);
    gatherTimer.unref?.();
  }
}

// At exit the event loop is gone: write what is left synchronously.
process.on('exit', () => {
  if (!gathered) return;
  try {
    writeSync(2, gathered);
  } catch {
    // stderr closed: nothing to do
  }
  gathered = '';
});

let format: 'pretty' | 'json' = 'pretty';

/** The object of one LOG_FORMAT=json line: time, level and the (redacted) message. */
function jsonLineOf(date: Date, level: string, msg: string): Record<string, unknown> {
  return { time: date.toISOString(), level, msg: redact(msg) };
}

/**
 * A line for people on stdout (the server's "listening" banner): as it is, or with LOG_FORMAT=json
 * as a JSON line of the same shape as the log's, so a container's whole output parses as JSON.
 */
export function bannerLine(msg: string): string {
  return format === 'json' ? jsonLine('info', msg) : msg;
}

/** One LOG_FORMAT=json line (no newline), stamped now. */
export function jsonLine(level: string, msg: string): string {
  return JSON.stringify(jsonLineOf(new Date(), level, msg));
}

// Masking works on the JSON text and may cut a value at an escaped quote: then the fields go out
// as one masked string rather than the log call throwing.
function maskedFields(fields: object): Record<string, unknown> {
  const text = redact(JSON.stringify(fields));
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { fields: text };
  }
}

function jsonReporter() {
  return {
    log(obj: LogObject) {
      const [first, ...rest] = obj.args;
      const fields = rest.length === 1 && rest[0] && typeof rest[0] === 'object' && !(rest[0] instanceof Error) ? rest[0] : undefined;
      const line = jsonLineOf(obj.date, obj.type, stringify(first ?? ''));
      if (fields) Object.assign(line, maskedFields(fields));
      else if (rest.length) line.extra = rest.map((a) => redact(stringify(a)));
      emit(`${JSON.stringify(line)}\n`, obj.type === 'info' && batchNext);
    },
  };
}

function prettyReporter() {
  return {
    log(obj: LogObject) {
      const text = redact(obj.args.map(stringify).join(' '));
      const tag = obj.type === 'log' || obj.type === 'info' ? '' : `[${obj.type}] `;
      emit(`${obj.date.toISOString()} ${tag}${text}\n`, obj.type === 'info' && batchNext);
    },
  };
}

// No repeat-throttle: consola's holds back a line repeated in a row (its count of repeats never
// resets, so about every sixth repeat in the process's life) on a 1 s timer, which delays it, loses it
// at exit, and hands it to whichever reporters are set by then. Warnings that could repeat often
// (usage drops, store trouble) are paced where they are logged.
export const log: ConsolaInstance = createConsola({ level: 3, reporters: [prettyReporter()], throttle: 0 });

export function configureLog(opts: { format?: 'pretty' | 'json'; debug?: boolean }): void {
  if (opts.format) format = opts.format;
  log.setReporters([format === 'json' ? jsonReporter() : prettyReporter()]);
  log.level = opts.debug ? 4 : 3;
}

/**
 * One pre-built line at info or warn level, handed straight to the reporters: the same output as
 * log.info/log.warn without consola's per-call work (argument copies, a Date). For lines that are
 * unique by construction (each carries a request id). Used once per finished request.
 */
export function logLineFast(type: 'info' | 'warn', line: string): void {
  const level = type === 'warn' ? 1 : 3;
  if (level > log.level) return;
  const obj = { date: new Date(), args: [line], type, level, tag: '' } as unknown as LogObject;
  const ctx = { options: log.options };
  batchNext = true;
  try {
    for (const reporter of log.options.reporters) reporter.log(obj, ctx);
  } finally {
    batchNext = false;
  }
}
