// Which `mcp serve` processes use this data directory. Two may share one safely (limits, quota and
// usage go through the database), but each caps concurrency and polls quota on its own, so a
// second one is usually a mistake (the service left running, a terminal forgotten): it is named
// at start. Each server notes itself in the settings at start and removes the note at its stop; a
// note whose process is gone (killed) is dropped by the next start on the same machine.
import type { Database } from 'bun:sqlite';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { deleteSetting, setSetting, settingsWithPrefix } from '../store/db.ts';

const PREFIX = 'serve:';

export interface ServingNote {
  host: string;
  pid: number;
  port: number;
  address: string;
  startedAt: string;
}

/**
 * Whether an `mcp serve` runs as `pid` on this machine (signal 0: only asks). Where /proc tells, the
 * process must also have `serve` among its arguments: a killed server's pid may be anyone's now.
 */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists, under another user.
    if ((err as { code?: string }).code !== 'EPERM') return false;
  }
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return true;
  }
  return cmdline.split('\0').includes('serve');
}

/**
 * The notes of other servers and those to drop (pure: the host, own pid and liveness are given).
 * A process on another machine (a shared volume) cannot be asked whether it lives: its note is
 * left alone and not named.
 */
export function sortNotes(
  notes: ReadonlyArray<{ key: string; value: string }>,
  self: { host: string; pid: number },
  isAlive: (pid: number) => boolean,
): { others: ServingNote[]; stale: string[] } {
  const others: ServingNote[] = [];
  const stale: string[] = [];
  for (const { key, value } of notes) {
    let note: ServingNote;
    try {
      note = JSON.parse(value) as ServingNote;
    } catch {
      stale.push(key);
      continue;
    }
    if (note.host !== self.host) continue;
    // Our own pid: a note left by an earlier run that was killed (a container restarts as pid 1 again).
    if (note.pid === self.pid || !isAlive(note.pid)) stale.push(key);
    else others.push(note);
  }
  return { others, stale };
}

/** The warning for servers already using the data directory, or null. */
export function sharedDataDirWarning(others: readonly ServingNote[], dataDir: string): string | null {
  if (!others.length) return null;
  const who = others.map((o) => `pid ${o.pid} on ${o.address}:${o.port} since ${o.startedAt}`).join('; ');
  return (
    `another mcp serve is using ${dataDir} (${who}): limits, quota and usage are shared safely, but each server ` +
    'applies --max-concurrent and MAX_CONCURRENT_PER_ACCOUNT on its own (together they may exceed them) and polls quota on its own; stop the one you do not want'
  );
}

/**
 * Notes this server in the database and returns the other servers using it and a function that
 * removes the note again. A database that refuses the write only loses the warning.
 */
export function noteServing(db: Database, port: number, address: string): { others: ServingNote[]; unnote: () => void } {
  const self = { host: hostname(), pid: process.pid };
  const key = `${PREFIX}${self.host}:${self.pid}`;
  try {
    const { others, stale } = sortNotes(settingsWithPrefix(db, PREFIX), self, alive);
    for (const k of stale) deleteSetting(db, k);
    const note: ServingNote = { ...self, port, address, startedAt: new Date().toISOString() };
    setSetting(db, key, JSON.stringify(note));
    return {
      others,
      unnote: () => {
        try {
          deleteSetting(db, key);
        } catch {
          // closed or busy: the next start drops the note
        }
      },
    };
  } catch {
    return { others: [], unnote: () => {} };
  }
}
