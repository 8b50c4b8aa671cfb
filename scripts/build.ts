// `bun run build`: one self-contained executable at dist/mcp, with the version and the git commit
// baked in (src/version.ts reads them). MCP_COMMIT overrides the commit (e.g. a tarball build).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pkg from '../package.json' with { type: 'json' };
import { adhocSign, machoSignatureProblems } from './macho-signature.ts';

const root = join(import.meta.dir, '..');

function gitCommit(): string {
  if (process.env.MCP_COMMIT) return process.env.MCP_COMMIT;
  const r = Bun.spawnSync(['git', 'rev-parse', '--short', 'HEAD'], { cwd: root, stdout: 'pipe', stderr: 'ignore' });
  const out = r.stdout.toString().trim();
  return r.exitCode === 0 && out ? out : 'unknown';
}

const outfile = process.argv[2] ?? join(root, 'dist', 'mcp');
const commit = gitCommit();
mkdirSync(join(outfile, '..'), { recursive: true });

const cmd = [
  process.execPath,
  'build',
  '--compile',
  '--minify',
  '--sourcemap',
  join(root, 'src', 'main.ts'),
  '--outfile',
  outfile,
  '--define',
  `MCP_BUILD_VERSION=${JSON.stringify(pkg.version)}`,
  '--define',
  `MCP_BUILD_COMMIT=${JSON.stringify(commit)}`,
];
const r = Bun.spawnSync(cmd, { cwd: root, stdout: 'inherit', stderr: 'inherit' });
if (r.exitCode !== 0) {
  console.error(`build failed (exit ${r.exitCode})`);
  process.exit(r.exitCode ?? 1);
}
// On an Intel Mac Bun 1.4.5 leaves the runtime's own signature, which no longer matches, and macOS
// would kill dist/mcp at once: it is signed again, ad hoc (see scripts/release.ts).
if (process.platform === 'darwin' && machoSignatureProblems(readFileSync(outfile)).length) {
  const signed = adhocSign(readFileSync(outfile));
  const problems = machoSignatureProblems(signed);
  if (problems.length) {
    console.error(`build failed: the code signature of ${outfile} does not verify (${problems.join('; ')})`);
    process.exit(1);
  }
  writeFileSync(outfile, signed, { mode: 0o755 });
  console.log(`signed ${outfile} again (ad hoc): the one Bun wrote did not match its bytes`);
}
console.log(`built ${outfile} (mcp ${pkg.version}, ${commit})`);
