// The release script's fixed parts: the targets (five, and two x64 ones for CPUs without AVX2), the host name, and SHA256SUMS in the format
// `sha256sum -c` checks. (Building every binary takes minutes; the host build is covered by
// test/e2e/binary.test.ts.)
import { afterAll, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostTarget, sha256sums, TARGETS } from '../../scripts/release.ts';

const dir = mkdtempSync(join(tmpdir(), 'mcp-release-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('releases cover linux, macOS and Windows on x64 and arm64 where Bun supports them, and x64 CPUs without AVX2', () => {
  expect(TARGETS.map((t) => `${t.name}=${t.bunTarget}${t.exe}`)).toEqual([
    'linux-x64=bun-linux-x64',
    'linux-arm64=bun-linux-arm64',
    'darwin-x64=bun-darwin-x64',
    'darwin-arm64=bun-darwin-arm64',
    'windows-x64=bun-windows-x64.exe',
    'linux-x64-baseline=bun-linux-x64-baseline',
    'windows-x64-baseline=bun-windows-x64-baseline.exe',
  ]);
});

test('the host is named like its target', () => {
  expect(hostTarget('linux', 'x64')).toBe('linux-x64');
  expect(hostTarget('darwin', 'arm64')).toBe('darwin-arm64');
  expect(hostTarget('win32', 'x64')).toBe('windows-x64');
  expect(TARGETS.some((t) => t.name === hostTarget())).toBe(true);
});

test('SHA256SUMS lines verify with sha256sum -c', () => {
  const a = join(dir, 'mcp-0.1.0-linux-x64');
  const b = join(dir, 'mcp-0.1.0-windows-x64.exe');
  writeFileSync(a, 'binary a');
  writeFileSync(b, '');
  const sums = sha256sums([a, b]);
  const hashA = new Bun.CryptoHasher('sha256').update('binary a').digest('hex');
  expect(sums).toBe(
    `${hashA}  mcp-0.1.0-linux-x64\n` + 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  mcp-0.1.0-windows-x64.exe\n',
  );
  writeFileSync(join(dir, 'SHA256SUMS'), sums);
  if (Bun.which('sha256sum')) {
    const r = Bun.spawnSync(['sha256sum', '-c', 'SHA256SUMS'], { cwd: dir, stdout: 'pipe', stderr: 'pipe' });
    expect(r.exitCode).toBe(0);
    writeFileSync(a, 'tampered');
    expect(Bun.spawnSync(['sha256sum', '-c', 'SHA256SUMS'], { cwd: dir, stdout: 'pipe', stderr: 'pipe' }).exitCode).not.toBe(0);
  }
});
