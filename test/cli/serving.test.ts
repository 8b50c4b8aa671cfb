// Which servers use a data directory: the notes each `mcp serve` leaves, read at the next start.
import { describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { noteServing, sharedDataDirWarning, sortNotes } from '../../src/cli/serving.ts';
import { openDatabase, setSetting, settingsWithPrefix } from '../../src/store/db.ts';

const note = (host: string, pid: number, port = 8080) => ({
  key: `serve:${host}:${pid}`,
  value: JSON.stringify({ host, pid, port, address: '127.0.0.1', startedAt: '2026-12-06T01:00:00.000Z' }),
});

describe('sortNotes', () => {
  test('a live server on this machine is another; a dead one, our own pid (a killed earlier run) and garbage are dropped', () => {
    const live = new Set([100]);
    const { others, stale } = sortNotes(
      [note('box', 100), note('box', 200), note('box', 1), { key: 'serve:box:x', value: '{' }],
      { host: 'box', pid: 1 },
      (pid) => live.has(pid),
    );
    expect(others.map((o) => o.pid)).toEqual([100]);
    expect(stale).toEqual(['serve:box:200', 'serve:box:1', 'serve:box:x']);
  });

  test("another machine's note (a shared volume) is neither named nor dropped: its process cannot be asked", () => {
    expect(sortNotes([note('other-box', 100)], { host: 'box', pid: 1 }, () => true)).toEqual({ others: [], stale: [] });
  });
});

describe('sharedDataDirWarning', () => {
  test('names each other server and what is not shared, or nothing when alone', () => {
    expect(sharedDataDirWarning([], '/data')).toBeNull();
    const w = sharedDataDirWarning([{ host: 'box', pid: 100, port: 8080, address: '0.0.0.0', startedAt: '2026-12-06T01:00:00.000Z' }], '/data')!;
    expect(w).toContain('another mcp serve is using /data (pid 100 on 0.0.0.0:8080');
    expect(w).toContain('--max-concurrent');
  });
});

describe('noteServing on a real database', () => {
  // A killed server's pid, handed by the system to an unrelated process, named that process as a
  // second mcp serve.
  test('a live process that is no `mcp serve` (a reused pid) is not named, and its note is dropped; a live server is named', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-serving-'));
    const other = Bun.spawn(['sleep', '30']);
    const server = Bun.spawn(['/bin/sh', '-c', 'sleep 30', 'serve']);
    const db = openDatabase(join(dir, 'proxy.db'));
    try {
      const noteOf = (pid: number) => JSON.stringify({ host: hostname(), pid, port: 8080, address: '127.0.0.1', startedAt: '2026-12-06T01:00:00.000Z' });
      setSetting(db, `serve:${hostname()}:${other.pid}`, noteOf(other.pid));
      setSetting(db, `serve:${hostname()}:${server.pid}`, noteOf(server.pid));
      const { others, unnote } = noteServing(db, 9090, '127.0.0.1');
      expect(others.map((o) => o.pid)).toEqual([server.pid]);
      expect(settingsWithPrefix(db, 'serve:').map((r) => r.key).sort()).toEqual([`serve:${hostname()}:${process.pid}`, `serve:${hostname()}:${server.pid}`].sort());
      unnote();
      expect(settingsWithPrefix(db, 'serve:').map((r) => r.key)).toEqual([`serve:${hostname()}:${server.pid}`]);
    } finally {
      db.close();
      other.kill();
      server.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
