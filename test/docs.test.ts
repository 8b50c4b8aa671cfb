// The README (and `mcp serve --help`) are the user's manual for settings: a variable the code reads
// but the manual does not name is a knob nobody can find. The variables are found by watching the
// code read its environment, so a new one cannot slip past.
import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderHelp } from '../src/cli/main.ts';
import { serveCommand } from '../src/cli/serve.ts';
import { CARRIED_VARS, serviceHome } from '../src/cli/service.ts';
import { loadConfig } from '../src/config.ts';
import { ENGINE_HINTS } from '../src/engine-hints.ts';

const README = readFileSync(join(import.meta.dir, '..', 'README.md'), 'utf8');

/** The README's text from a `## title` heading to the next one. */
function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`README has no section "${title}"`);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

/** The names `read` looks up in the environment it is given. */
function varsRead(read: (env: Record<string, string | undefined>) => unknown): string[] {
  const seen = new Set<string>();
  const env = new Proxy<Record<string, string | undefined>>(
    { PROXY_API_KEY: 'k-FAKE' },
    {
      get(target, k) {
        if (typeof k === 'string') seen.add(k);
        return target[k as string];
      },
    },
  );
  read(env);
  return [...seen];
}

/** Whether `text` names `name` as a whole word (`http_proxy` counts as HTTP_PROXY: "either case"). */
function names(text: string, name: string): boolean {
  const shown = name === name.toLowerCase() ? name.toUpperCase() : name;
  return new RegExp(`(^|[^A-Za-z0-9_])${shown}([^A-Za-z0-9_]|$)`).test(text);
}

// HOME is where `~` comes from, not a setting.
const configVars = varsRead((env) => loadConfig(env)).filter((v) => v !== 'HOME');

describe('README', () => {
  test('the environment table names every variable the config reads', () => {
    const table = section('Environment variables');
    expect(configVars.length).toBeGreaterThan(30);
    expect(configVars.filter((v) => !names(table, v))).toEqual([]);
  });

  test('the environment table names the engine hints serve sets and the service home override', () => {
    const table = section('Environment variables');
    const others = [...Object.keys(ENGINE_HINTS), ...varsRead((env) => serviceHome(env)).filter((v) => v !== 'HOME')];
    expect(others).toContain('MCP_SERVICE_HOME');
    expect(others.filter((v) => !names(table, v))).toEqual([]);
  });

  test('the service section names every variable `mcp service install` carries into service.env', () => {
    const text = section('Run it as a service');
    expect(CARRIED_VARS.filter((v) => !names(text, v))).toEqual([]);
  });
});

describe('mcp serve --help', () => {
  test('names every variable the config reads (the data directory fallbacks are the README\'s)', async () => {
    const help = await renderHelp(serveCommand as never, ['serve']);
    const missing = configVars.filter((v) => v !== 'XDG_CONFIG_HOME' && !names(help, v));
    expect(missing).toEqual([]);
  });
});
