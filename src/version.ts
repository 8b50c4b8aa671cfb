// The program's version and the git commit it was built from. `scripts/build.ts` bakes both in with
// `bun build --define`; run from source, the commit comes from git (or "dev" outside a checkout).
import { dirname } from 'node:path';
import pkg from '../package.json' with { type: 'json' };

declare const MCP_BUILD_VERSION: string | undefined;
declare const MCP_BUILD_COMMIT: string | undefined;

export const VERSION: string = typeof MCP_BUILD_VERSION === 'string' ? MCP_BUILD_VERSION : pkg.version;

let cachedCommit: string | null = null;

function commitFromGit(): string {
  try {
    const r = Bun.spawnSync(['git', 'rev-parse', '--short', 'HEAD'], {
      cwd: dirname(import.meta.path),
      stdout: 'pipe',
      stderr: 'ignore',
    });
    const out = r.stdout.toString().trim();
    return r.exitCode === 0 && out ? out : 'dev';
  } catch {
    return 'dev';
  }
}

/** The build's commit: baked in at build time, else asked of git (once), else "dev". */
export function commit(): string {
  if (typeof MCP_BUILD_COMMIT === 'string' && MCP_BUILD_COMMIT) return MCP_BUILD_COMMIT;
  cachedCommit ??= commitFromGit();
  return cachedCommit;
}

/** What `mcp --version` prints. */
export function versionLine(): string {
  return `mcp ${VERSION} (${commit()})`;
}
