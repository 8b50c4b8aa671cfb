// Printing for people: data to stdout (tables, JSON), one-line complaints to stderr, and a plain
// line reader for prompts. Writers go through `io` so tests can capture them.
import type { Interface } from 'node:readline';
import { maskSecrets } from '../log.ts';

export const io = {
  out(text: string): void {
    process.stdout.write(text);
  },
  err(text: string): void {
    process.stderr.write(text);
  },
  /** Whether a person can answer prompts (stdin is a terminal). */
  interactive(): boolean {
    return Boolean(process.stdin.isTTY);
  },
};

/** Replaces the writers (tests); returns a function restoring the previous ones. */
export function captureIo(out: (s: string) => void, err: (s: string) => void): () => void {
  const prev = { out: io.out, err: io.err };
  io.out = out;
  io.err = err;
  return () => {
    io.out = prev.out;
    io.err = prev.err;
  };
}

// Everything a command prints is masked (known secrets, token shapes, a URL's password): lines quote
// upstream answers and account reasons, and an upstream may quote the credentials it was sent.
export function say(line: string): void {
  io.out(`${maskSecrets(line)}\n`);
}

export function warn(line: string): void {
  io.err(`${maskSecrets(line)}\n`);
}

export function printJson(value: unknown): void {
  io.out(`${maskSecrets(JSON.stringify(value, null, 2))}\n`);
}

/**
 * A failure of a command whose output is a JSON log (`serve` with LOG_FORMAT=json): reported as one
 * JSON line like the rest of that output, not as a plain `mcp: …` line.
 */
export class JsonLogError extends Error {
  constructor(readonly inner: unknown) {
    super(inner instanceof Error ? inner.message : String(inner));
    this.name = 'JsonLogError';
  }
}

/** A command that has said all it had to and only ends with this exit code (`service status`: 3 when stopped). */
export class ExitStatus extends Error {
  constructor(readonly code: number) {
    super(`exit status ${code}`);
    this.name = 'ExitStatus';
  }
}

/** A wrong invocation (missing flag, unknown value): exit code 2 instead of 1. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** One word of a command line a person may paste into a POSIX shell: quoted when it needs to be. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Shows enough of a secret to recognise it, never enough to use it: `abcd…wxyz`. */
export function maskSecret(secret: string | null | undefined): string {
  if (!secret) return '';
  if (secret.length <= 12) return `${secret.slice(0, 2)}…`;
  return `${secret.slice(0, 4)}…${secret.slice(-4)}`;
}

/**
 * Text from elsewhere (an upstream's error, a reason stored from one) on one line: a line break in
 * it would split a verdict line in two, or a table row across the next rows' columns.
 */
export function oneLine(text: string): string {
  return text.replace(/\s*[\r\n\u2028\u2029]+\s*/g, ' ');
}

/** Left-aligned columns separated by two spaces; the header row first; each cell on one line. */
export function renderTable(header: readonly string[], cells: readonly (readonly string[])[]): string {
  const rows = cells.map((r) => r.map(oneLine));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** "3m ago", "2h ago", "in 5m"; "never" for null. */
export function relativeTime(at: number | null, now: number): string {
  if (at === null) return 'never';
  const diff = Math.round((now - at) / 1000);
  const abs = Math.abs(diff);
  const text =
    abs < 60
      ? `${abs}s`
      : abs < 3600
        ? `${Math.floor(abs / 60)}m`
        : abs < 86400
          ? `${Math.floor(abs / 3600)}h`
          : `${Math.floor(abs / 86400)}d`;
  if (abs < 5) return 'just now';
  return diff >= 0 ? `${text} ago` : `in ${text}`;
}

/**
 * One chunk of keystrokes typed at a terminal in raw mode, for a secret that is not echoed: the text
 * so far and whether input is over (Enter, Ctrl-C, Ctrl-D on an empty line). Pure.
 */
export function typeSecret(text: string, chunk: string): { text: string; done: 'enter' | 'cancel' | 'eof' | null } {
  let t = text;
  for (const ch of chunk) {
    if (ch === '\r' || ch === '\n') return { text: t, done: 'enter' };
    if (ch === '\u0003') return { text: '', done: 'cancel' };
    if (ch === '\u0004') {
      if (t === '') return { text: '', done: 'eof' };
      continue;
    }
    if (ch === '\u007f' || ch === '\b') t = t.slice(0, -1);
    else if (ch === '\u0015') t = '';
    else if (ch >= ' ') t += ch;
  }
  return { text: t, done: null };
}

/** Reads one line from the terminal without echoing it (an API key should not stay in the scrollback). */
function readHidden(prompt: string): Promise<string | null> {
  const stdin = process.stdin;
  io.err(prompt);
  return new Promise((resolve, reject) => {
    let text = '';
    const finish = (value: string | null, err?: Error) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      io.err('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (data: Buffer | string) => {
      const r = typeSecret(text, data.toString());
      text = r.text;
      if (r.done === 'enter') finish(text);
      else if (r.done === 'eof') finish(null);
      else if (r.done === 'cancel') finish(null, new Error('cancelled'));
    };
    stdin.setRawMode(true);
    stdin.on('data', onData);
    stdin.resume();
  });
}

/**
 * Reads lines from stdin one at a time (prompts, a pasted redirect URL). Works for a TTY and for a
 * pipe; at end of input it resolves to null. `readSecret` does not echo what is typed at a terminal.
 */
export function createLineReader(): {
  readLine(prompt: string): Promise<string | null>;
  readSecret(prompt: string): Promise<string | null>;
  close(): void;
} {
  let rl: Interface | null = null;
  const queued: string[] = [];
  const waiting: Array<(line: string | null) => void> = [];
  let ended = false;
  const ensure = () => {
    if (rl) return;
    // Loaded when a prompt is first read: imported at the top it would be loaded by `serve` too (~0.5 MB).
    const { createInterface } = require('node:readline') as typeof import('node:readline');
    rl = createInterface({ input: process.stdin, terminal: false });
    rl.on('line', (line) => {
      const w = waiting.shift();
      if (w) w(line);
      else queued.push(line);
    });
    rl.on('close', () => {
      ended = true;
      for (const w of waiting.splice(0)) w(null);
    });
  };
  const readLine = (prompt: string): Promise<string | null> => {
    if (prompt) io.err(prompt);
    ensure();
    const q = queued.shift();
    if (q !== undefined) return Promise.resolve(q);
    if (ended) return Promise.resolve(null);
    return new Promise((resolve) => waiting.push(resolve));
  };
  return {
    readLine,
    readSecret(prompt: string) {
      if (!process.stdin.isTTY || typeof process.stdin.setRawMode !== 'function') return readLine(prompt);
      // The line reader would see the keystrokes too: it is closed first (lines it queued are dropped).
      rl?.close();
      rl = null;
      queued.length = 0;
      ended = false;
      return readHidden(prompt);
    },
    close() {
      rl?.close();
      rl = null;
    },
  };
}

export function stdinIsTty(): boolean {
  return io.interactive();
}
