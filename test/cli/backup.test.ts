// `mcp backup <dir>`: a directory named as the target gets a fresh proxy-<UTC time>.db inside it,
// as `cp file dir/` would, rather than "already exists (--force replaces it)" and a --force that fails.
import { describe, expect, test } from 'bun:test';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { runCaptured, useTempDataDir } from './run-cli.ts';

const dataDir = useTempDataDir('mcp-backup-cli-');

describe('mcp backup into a directory', () => {
  test('writes a fresh proxy-<UTC time>.db inside it, owner-only', async () => {
    const target = join(dataDir(), 'elsewhere');
    mkdirSync(target);
    const r = await runCaptured(['backup', target]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const files = readdirSync(target);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^proxy-\d{8}-\d{6}\.db$/);
    expect(statSync(join(target, files[0]!)).mode & 0o777).toBe(0o600);
    expect(r.out).toContain(join(target, files[0]!));
  });

  test('a second backup into it the same second gets its own name', async () => {
    const target = join(dataDir(), 'elsewhere');
    mkdirSync(target);
    expect((await runCaptured(['backup', target])).code).toBe(0);
    expect((await runCaptured(['backup', target])).code).toBe(0);
    expect(readdirSync(target)).toHaveLength(2);
  });
});
