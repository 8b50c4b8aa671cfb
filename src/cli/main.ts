// The root command and the runner around citty: help and version, unknown flags refused, and every
// failure turned into one line `mcp: <message>` (exit 1; exit 2 for a wrong invocation), never a
// stack trace.
import { type ArgsDef, type CommandDef, defineCommand, runCommand } from 'citty';
import { jsonLine, redact, registerSecret } from '../log.ts';
import { VERSION, versionLine } from '../version.ts';
import { ExitStatus, io, JsonLogError, UsageError } from './output.ts';

export const rootCommand = defineCommand({
  meta: {
    name: 'mcp',
    version: VERSION,
    description: 'One Anthropic Messages API endpoint over a pool of Google Antigravity accounts and Z.AI GLM keys',
  },
  subCommands: {
    serve: () => import('./serve.ts').then((m) => m.serveCommand),
    accounts: () => import('./accounts.ts').then((m) => m.accountsCommand),
    usage: () => import('./usage.ts').then((m) => m.usageCommand),
    backup: () => import('./backup.ts').then((m) => m.backupCommand),
    service: () => import('./service.ts').then((m) => m.serviceCommand),
    health: () => import('./health.ts').then((m) => m.healthCommand),
  },
});

type AnyCommand = CommandDef<ArgsDef>;

async function resolve<T>(v: T | Promise<T> | (() => T | Promise<T>)): Promise<T> {
  return typeof v === 'function' ? await (v as () => T | Promise<T>)() : await v;
}

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Names a command accepts for its flags, in --kebab and --camel spellings, with their aliases. */
function flagNames(args: ArgsDef): { all: Set<string>; valued: Set<string> } {
  const all = new Set<string>();
  const valued = new Set<string>();
  for (const [name, def] of Object.entries(args)) {
    if (def.type === 'positional') continue;
    const alias = (def as { alias?: string | string[] }).alias;
    const aliases = alias === undefined ? [] : Array.isArray(alias) ? alias : [alias];
    for (const n of [name, camel(name), ...aliases]) {
      all.add(n);
      if (def.type === 'string' || def.type === 'enum') valued.add(n);
    }
  }
  return { all, valued };
}

function columns(rows: Array<[string, string]>): string[] {
  const w = Math.max(...rows.map(([a]) => a.length));
  return rows.map(([a, b]) => `  ${a.padEnd(w)}  ${b}`.trimEnd());
}

/** Help text for one command: what it does, usage, arguments, options, subcommands. */
export async function renderHelp(cmd: AnyCommand, path: string[]): Promise<string> {
  const meta = cmd.meta ? await resolve(cmd.meta) : {};
  const args = cmd.args ? await resolve(cmd.args) : {};
  const subs = cmd.subCommands ? await resolve(cmd.subCommands) : undefined;
  const name = ['mcp', ...path].join(' ');
  const positional: Array<[string, string]> = [];
  const options: Array<[string, string]> = [];
  const usage = [name];
  if (subs) usage.push('<command>');
  for (const [argName, def] of Object.entries(args)) {
    if (def.type === 'positional') {
      const req = def.required !== false;
      usage.push(req ? `<${argName}>` : `[${argName}]`);
      positional.push([req ? `<${argName}>` : `[${argName}]`, def.description ?? '']);
      continue;
    }
    const alias = (def as { alias?: string | string[] }).alias;
    const aliases = (alias === undefined ? [] : Array.isArray(alias) ? alias : [alias]).map((a) => (a.length === 1 ? `-${a}` : `--${a}`));
    const hint = def.type === 'string' || def.type === 'enum' ? ` <${def.valueHint ?? argName}>` : '';
    const negative = def.type === 'boolean' ? (def as { negativeDescription?: string }).negativeDescription : undefined;
    if (def.type === 'boolean' && def.default === true && negative) {
      options.push([`--no-${argName}`, negative]);
      continue;
    }
    options.push([[...aliases, `--${argName}`].join(', ') + hint, def.description ?? '']);
  }
  options.push(['-h, --help', 'Show this help']);
  if (path.length === 0) options.push(['-v, --version', 'Show the version and build commit']);
  if (Object.keys(args).some((k) => args[k]?.type !== 'positional')) usage.push('[options]');
  const lines = [meta.description ?? '', '', `Usage: ${usage.join(' ')}`];
  if (positional.length) lines.push('', 'Arguments:', ...columns(positional));
  lines.push('', 'Options:', ...columns(options));
  const footer = (cmd as { footer?: string }).footer;
  if (footer) lines.push('', footer);
  if (subs) {
    const rows: Array<[string, string]> = [];
    for (const [subName, sub] of Object.entries(subs)) {
      const subMeta = await resolve(((await resolve(sub)) as AnyCommand).meta ?? {});
      if (!subMeta.hidden) rows.push([subName, subMeta.description ?? '']);
    }
    lines.push('', 'Commands:', ...columns(rows), '', `Run \`${name} <command> --help\` for a command's options.`);
  }
  return lines.join('\n');
}

interface Resolved {
  cmd: AnyCommand;
  /** The words that led here, e.g. ["accounts", "add"]. */
  path: string[];
  /** argv after the last command word. */
  rest: string[];
  /** Asked for with the word `help` (`mcp help accounts`, `mcp accounts help add`): print its help. */
  help: boolean;
}

/** Follows the command words in argv down to the command that will run. */
async function resolveCommand(root: AnyCommand, argv: string[], from: string[] = []): Promise<Resolved> {
  let cmd = root;
  let rest = argv;
  const path = [...from];
  for (;;) {
    const subs = cmd.subCommands ? await resolve(cmd.subCommands) : undefined;
    if (!subs || Object.keys(subs).length === 0) break;
    const { all, valued } = flagNames(cmd.args ? await resolve(cmd.args) : {});
    let i = 0;
    for (; i < rest.length; i++) {
      const a = rest[i]!;
      if (a === '--') {
        i = rest.length;
        break;
      }
      if (!a.startsWith('-')) break;
      const name = a.replace(/^-+/, '').split('=')[0]!;
      // citty would drop it (`mcp accounts --json list`) or take its value for the command word.
      if (!all.has(name) && !['h', 'help', 'v', 'version'].includes(name)) {
        const owner = rest.find((w) => Object.hasOwn(subs, w));
        const where = [...path, owner ?? '<command>'].join(' ');
        const see = `see \`mcp ${path.join(' ')}${path.length ? ' ' : ''}--help\``;
        throw new UsageError(`unknown option ${a.split('=')[0]} (options go after the command, e.g. \`mcp ${where} ${a.split('=')[0]}\`; ${see})`);
      }
      if (!a.includes('=') && valued.has(name)) i++;
    }
    const word = rest[i];
    if (word === undefined) break;
    const sub = subs[word];
    // People type `mcp help` (git, go, npm answer it): the help `--help` prints, for the command named after it.
    if (!sub && word === 'help') return { ...(await resolveCommand(cmd, rest.slice(i + 1), path)), help: true };
    if (!sub) throw new UsageError(`unknown command "${[...path, word].join(' ')}" (see \`mcp ${path.join(' ')}${path.length ? ' ' : ''}--help\`)`);
    cmd = (await resolve(sub)) as AnyCommand;
    path.push(word);
    rest = rest.slice(i + 1);
  }
  return { cmd, path, rest, help: false };
}

/**
 * Refuses what citty would silently take: an unknown option, a value for an on/off option that is
 * not true or false (citty reads `--fallback=maybe` as on), and arguments the command has no place for.
 */
function checkFlags(args: ArgsDef, rest: string[], path: string[]): void {
  const { all, valued } = flagNames(args);
  const see = `(see \`mcp ${path.join(' ')}${path.length ? ' ' : ''}--help\`)`;
  const places = Object.values(args).filter((d) => d.type === 'positional').length;
  /** The value placeholder of a valued option, by any of its names (`label` -> `name`). */
  const hintOf = (name: string): string => {
    const [key, def] = Object.entries(args).find(([k, d]) => k === name || camel(k) === name || [(d as { alias?: string | string[] }).alias].flat().includes(name)) ?? [name, {}];
    return (def as { valueHint?: string }).valueHint ?? key;
  };
  let positionals = 0;
  const positional = (a: string): void => {
    if (++positionals > places) throw new UsageError(`unexpected argument "${a}" ${see}`);
  };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--') {
      for (const p of rest.slice(i + 1)) positional(p);
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      positional(a);
      continue;
    }
    const [flag, ...valueParts] = a.split('=');
    let name = flag!.replace(/^-+/, '');
    const negated = !all.has(name) && name.startsWith('no-');
    if (negated) name = name.slice(3);
    if (!all.has(name)) throw new UsageError(`unknown option ${flag} ${see}`);
    if (a.includes('=') && (negated || !valued.has(name))) {
      const value = valueParts.join('=');
      if (negated || (value !== 'true' && value !== 'false')) {
        throw new UsageError(`${flag} is on or off: give it alone, or =true / =false, not "${value}" ${see}`);
      }
    }
    if (!a.includes('=') && valued.has(name) && !a.startsWith('--no-')) {
      // Last, or followed by another of this command's options: citty would take "" or that option as the value.
      const next = rest[i + 1];
      const nextName = next?.startsWith('--') ? next.slice(2).split('=')[0]! : null;
      if (next === undefined || (nextName !== null && (all.has(nextName) || all.has(nextName.replace(/^no-/, ''))))) {
        throw new UsageError(`${flag} needs a value: ${flag} <${hintOf(name)}> ${see}`);
      }
      i++;
    }
  }
  const required = Object.entries(args).filter(([, d]) => d.type === 'positional' && d.required !== false);
  const missing = required[positionals];
  if (missing) {
    const [argName, def] = missing;
    throw new UsageError(`missing <${argName}>${def.description ? `: ${def.description}` : ''} ${see}`);
  }
}

// citty colours its messages unless NO_COLOR/CI; a one-line error should be plain text.
// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escapes are control characters
const ANSI = /\u001b\[[0-9;]*m/g;

/** One line for the person at the terminal, whatever was thrown; secrets masked. */
export function describeError(err: unknown): { message: string; code: number } {
  const e = err instanceof Error ? err : new Error(String(err));
  const usage = e instanceof UsageError || e.name === 'CLIError';
  const first = (e.message || e.name || 'failed').replace(ANSI, '').split('\n')[0]!.trim();
  return { message: redact(first), code: usage ? 2 : 1 };
}

/**
 * The secrets the environment holds, known to the masking before anything is said: a refusal that
 * quotes a setting ("PORT must be a whole number, got …") holding one of them by mistake masks it.
 */
async function registerEnvironmentSecrets(env: NodeJS.ProcessEnv): Promise<void> {
  // Loaded here, on the way out with an error: every command starts without the config module.
  const { parseApiKeys } = await import('../config.ts');
  for (const key of parseApiKeys(env.PROXY_API_KEY)) registerSecret(key);
  registerSecret(env.GOOGLE_CLIENT_SECRET?.trim());
}

/** Runs the CLI with argv (without the program name) and returns the exit code. */
export async function runCli(given: string[], root: AnyCommand = rootCommand as AnyCommand): Promise<number> {
  // citty reads `-p=9000` as the value "=9000": split a short option's `=value` off, as for --port=9000.
  const argv = given.flatMap((a) => (/^-[A-Za-z]=/.test(a) ? [a.slice(0, 2), a.slice(3)] : [a]));
  try {
    if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
      io.out(`${versionLine()}\n`);
      return 0;
    }
    const { cmd, path, rest, help } = await resolveCommand(root, argv);
    const wantsHelp = help || argv.some((a) => a === '--help' || a === '-h');
    const subs = cmd.subCommands ? await resolve(cmd.subCommands) : undefined;
    if (wantsHelp || (!cmd.run && subs && rest.length === 0)) {
      io.out(`${await renderHelp(cmd, path)}\n`);
      return 0;
    }
    checkFlags(cmd.args ? await resolve(cmd.args) : {}, rest, path);
    await runCommand(root, { rawArgs: argv });
    return 0;
  } catch (err) {
    if (err instanceof ExitStatus) return err.code;
    await registerEnvironmentSecrets(process.env);
    const json = err instanceof JsonLogError;
    const { message, code } = describeError(json ? err.inner : err);
    io.err(json ? `${jsonLine('fatal', `mcp: ${message}`)}\n` : `mcp: ${message}\n`);
    return code;
  }
}
