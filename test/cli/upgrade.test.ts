// What a user sees right after replacing the binary: `mcp accounts list` and `mcp usage` on a
// proxy.db an older mcp left (test/fixtures/upgrade) show the same accounts, limits and totals.
import { describe, expect, test } from 'bun:test';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { FAR_RESET, FIXTURES, fixturePath } from '../fixtures/upgrade/build.ts';
import { runCaptured, useTempDataDir } from './run-cli.ts';

const dataDir = useTempDataDir('mcp-cli-upgrade-');

interface Listed {
  label: string;
  status: string;
  reason: string | null;
  verifyUrl: string | null;
  maxConcurrent: number | null;
  limits: Array<{ model: string; kind: string; resetAt: number }>;
}

describe.each(FIXTURES.map((f) => [f.file, f] as const))('after an upgrade from %s', (file, fixture) => {
  test('accounts list shows every account with its state, cap and the limits still in force', async () => {
    copyFileSync(fixturePath(file), join(dataDir(), 'proxy.db'));
    const r = await runCaptured(['accounts', 'list', '--json']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const listed = new Map((JSON.parse(r.out) as Listed[]).map((a) => [a.label, a]));
    expect(listed.size).toBe(fixture.projectFor ? 8 : 7);
    expect(listed.get('z-off')).toMatchObject({ status: 'disabled', reason: 'disabled by user' });
    expect(listed.get('g-dave')).toMatchObject({ status: 'invalid', verifyUrl: 'https://accounts.google.com/signin/continue?FAKE=1' });
    expect(listed.get('z-capped')!.maxConcurrent).toBe(2);
    expect(listed.get('z-main')!.limits).toEqual([expect.objectContaining({ model: '*', kind: 'quota_exhausted', resetAt: FAR_RESET })]);
    expect(listed.get('g-alice')!.limits.map((l) => l.model).sort()).toEqual(['claude-opus-4-6-thinking', 'claude-sonnet-4-6']);
  });

  test('usage counts the requests it recorded, as it counted them', async () => {
    copyFileSync(fixturePath(file), join(dataDir(), 'proxy.db'));
    const r = await runCaptured(['usage', '--since', '2026-12-01', '--by', 'provider', '--json']);
    expect(r.code).toBe(0);
    const rows = (JSON.parse(r.out) as { rows: Array<{ key: string; requests: number; errors: number; cancelled: number; inputTokens: number }> }).rows;
    expect(rows.map((x) => [x.key, x.requests, x.errors, x.cancelled, x.inputTokens]).sort()).toEqual([
      ['-', 1, 1, 0, 0],
      ['antigravity', 4, 1, 1, 139],
      ['zai', 2, 0, 0, 46],
    ]);
  });
});
