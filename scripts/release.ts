// `bun run release`: self-contained binaries for every supported platform in dist/, with the version
// and commit baked in (as scripts/build.ts does), plus dist/SHA256SUMS.
// Cross-compiling needs Bun's runtime for each target, which bun fetches (and caches) on first use;
// a target that cannot be built (offline, no cache) is reported and skipped, the host one still is.
// Usage: bun run release [--out dir] [--only linux-x64,darwin-arm64]
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import pkg from '../package.json' with { type: 'json' };
import { adhocSign, machoSignatureProblems } from './macho-signature.ts';

const root = join(import.meta.dir, '..');

export interface Target {
  /** Name used in the file name: mcp-<version>-<name>. */
  name: string;
  /** bun build --target value. */
  bunTarget: string;
  exe: string;
}

export const TARGETS: readonly Target[] = [
  { name: 'linux-x64', bunTarget: 'bun-linux-x64', exe: '' },
  { name: 'linux-arm64', bunTarget: 'bun-linux-arm64', exe: '' },
  { name: 'darwin-x64', bunTarget: 'bun-darwin-x64', exe: '' },
  { name: 'darwin-arm64', bunTarget: 'bun-darwin-arm64', exe: '' },
  { name: 'windows-x64', bunTarget: 'bun-windows-x64', exe: '.exe' },
  // Bun's x64 runtime needs AVX2 (Haswell, 2013): on an older CPU, or a VM that hides AVX2, it dies
  // with "Illegal instruction" before a line of mcp runs. These need only SSE4.2. (Every Mac that
  // runs a macOS Bun supports has AVX2.)
  { name: 'linux-x64-baseline', bunTarget: 'bun-linux-x64-baseline', exe: '' },
  { name: 'windows-x64-baseline', bunTarget: 'bun-windows-x64-baseline', exe: '.exe' },
];

export function hostTarget(platform: string = process.platform, arch: string = process.arch): string {
  const os = platform === 'win32' ? 'windows' : platform;
  return `${os}-${arch}`;
}

function gitCommit(): string {
  if (process.env.MCP_COMMIT) return process.env.MCP_COMMIT;
  const r = Bun.spawnSync(['git', 'rev-parse', '--short', 'HEAD'], { cwd: root, stdout: 'pipe', stderr: 'ignore' });
  const out = r.stdout.toString().trim();
  return r.exitCode === 0 && out ? out : 'unknown';
}

/** `sha256  file` lines, as `sha256sum -c` reads them. */
export function sha256sums(files: readonly string[]): string {
  return files.map((f) => `${createHash('sha256').update(readFileSync(f)).digest('hex')}  ${basename(f)}\n`).join('');
}

function parseArgs(argv: string[]): { out: string; only: Set<string> | null } {
  let out = join(root, 'dist');
  let only: Set<string> | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--out') out = resolve(argv[++i] ?? '');
    else if (a === '--only') only = new Set((argv[++i] ?? '').split(',').filter(Boolean));
    else throw new Error(`unknown argument ${a} (use --out dir, --only name,name)`);
  }
  if (only) {
    for (const n of only) if (!TARGETS.some((t) => t.name === n)) throw new Error(`unknown target ${n} (${TARGETS.map((t) => t.name).join(', ')})`);
  }
  return { out, only };
}

async function main(): Promise<number> {
  const { out, only } = parseArgs(process.argv.slice(2));
  const version = pkg.version;
  const commit = gitCommit();
  const host = hostTarget();
  mkdirSync(out, { recursive: true });
  const built: string[] = [];
  const failed: Array<{ name: string; why: string }> = [];
  for (const t of TARGETS) {
    if (only && !only.has(t.name)) continue;
    const outfile = join(out, `mcp-${version}-${t.name}${t.exe}`);
    rmSync(outfile, { force: true });
    rmSync(`${outfile}.map`, { force: true });
    const started = Date.now();
    const r = Bun.spawnSync(
      [
        process.execPath,
        'build',
        '--compile',
        '--minify',
        '--sourcemap',
        `--target=${t.bunTarget}`,
        join(root, 'src', 'main.ts'),
        '--outfile',
        outfile,
        '--define',
        `MCP_BUILD_VERSION=${JSON.stringify(version)}`,
        '--define',
        `MCP_BUILD_COMMIT=${JSON.stringify(commit)}`,
      ],
      { cwd: root, stdout: 'pipe', stderr: 'pipe' },
    );
    // macOS kills a binary whose code signature does not match its bytes (Bun 1.4.5 leaves the
    // runtime's own signature on darwin-x64): such a file is signed again, ad hoc, as Bun signs
    // darwin-arm64; one that still does not verify is no release.
    let badSignature: string[] = [];
    if (r.exitCode === 0 && t.name.startsWith('darwin-') && machoSignatureProblems(readFileSync(outfile)).length) {
      try {
        const signed = adhocSign(readFileSync(outfile));
        badSignature = machoSignatureProblems(signed);
        if (!badSignature.length) {
          writeFileSync(outfile, signed, { mode: 0o755 });
          console.log(`signed ${basename(outfile)} again (ad hoc): the one Bun wrote did not match its bytes`);
        }
      } catch (err) {
        badSignature = [(err as Error).message];
      }
    }
    if (badSignature.length) {
      rmSync(outfile, { force: true });
      rmSync(`${outfile}.map`, { force: true });
      const why = `its code signature is invalid, macOS would kill it (a Bun bug: try another Bun version): ${badSignature.join('; ')}`;
      failed.push({ name: t.name, why });
      console.error(`could not build ${t.name}: ${why}`);
    } else if (r.exitCode === 0) {
      // The compiled binary carries its own source map; the side file is not part of a release.
      rmSync(`${outfile}.map`, { force: true });
      built.push(outfile);
      console.log(`built ${basename(outfile)} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
    } else {
      const text = `${r.stderr.toString()}${r.stdout.toString()}`.trim().split('\n');
      const why = text.find((l) => /error|fail|download|fetch/i.test(l)) ?? text.at(-1) ?? `exit ${r.exitCode}`;
      failed.push({ name: t.name, why: why.trim() });
      const fetching = /download|fetch|network|ENOTFOUND|ECONNREFUSED|getaddrinfo|timed? ?out|certificate/i.test(text.join('\n'));
      const hint = fetching && t.name !== host ? ' (cross-compiling fetches the target runtime once: needs the network or a warm bun cache)' : '';
      console.error(`could not build ${t.name}: ${why.trim()}${hint}`);
    }
  }
  // Only the binaries of this run go into the sums (a stale one from an earlier run must not).
  writeFileSync(join(out, 'SHA256SUMS'), sha256sums(built));
  console.log(`wrote ${join(out, 'SHA256SUMS')} (${built.length} file${built.length === 1 ? '' : 's'}), mcp ${version} (${commit})`);
  if (failed.length) {
    console.error(`missing: ${failed.map((f) => f.name).join(', ')}`);
    // The host binary is the one that must exist; the others are best effort offline.
    const hostFailed = failed.some((f) => f.name === host);
    return hostFailed || built.length === 0 ? 1 : 2;
  }
  return 0;
}

if (import.meta.main) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      console.error(`release: ${(err as Error).message}`);
      process.exit(1);
    },
  );
}
