// A seeded generator of VALID Anthropic Messages requests shaped like what Claude Code 2.1.197 and
// the SDK send (anthropic-claude-code-zai.md §1.4, §2.2-§2.5): system as a string or cached blocks
// (the billing header included), tools with draft 2020-12 schemas full of what Google refuses
// ($schema, $defs/$ref, anyOf/oneOf, nullable type arrays, formats, bounds, defaults, const),
// histories with thinking signed by us or by nobody, redacted thinking, tool loops with results out
// of order, pictures, documents, empty echoed text, every kind of Unicode but NUL. Same seed, same
// requests. "Valid" means what the real Anthropic API accepts from Claude Code: where it refuses a
// shape (forced tool_choice with thinking, temperature with thinking, empty user text...) the
// generator does not make it.
import { plainPdf } from '../fixtures/pdf/make-pdf.ts';
import { solidPng } from '../fakes/png.ts';

type Json = Record<string, unknown>;
type Block = Json & { type: string };
export type Msg = { role: 'user' | 'assistant' | 'system'; content: string | Block[] };

/** mulberry32: small, fast, and the same sequence on every machine. */
export function rng(seed: number): Random {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const r: Random = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    chance: (p) => next() < p,
    pick: (xs) => xs[Math.floor(next() * xs.length)]!,
    shuffle: (xs) => {
      const out = [...xs];
      for (let i = out.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [out[i], out[j]] = [out[j]!, out[i]!];
      }
      return out;
    },
  };
  return r;
}

export interface Random {
  next(): number;
  int(lo: number, hi: number): number;
  chance(p: number): boolean;
  pick<T>(xs: readonly T[]): T;
  shuffle<T>(xs: readonly T[]): T[];
}

// ---- text ---------------------------------------------------------------------------------------

const WORDS = ['run', 'the', 'tests', 'please', 'file', 'src/main.ts', 'fix', 'bug', 'why', 'does', 'it', 'fail', 'ok', 'thanks', 'RFC 2119', 'system-directive'];
const UNICODE = [
  '😀', '👩‍💻', '🏳️‍🌈', '𝕏𝕪𝕫', '𠜎𠜱', 'e\u0301', 'n\u0303o', 'שלום', 'مرحبا', '\u202Eevil\u202C', 'Ω≈ç√', '日本語', 'ﬁ', '\u200b', '\ufeff',
  '\u0001\u0007\u001b[31m', '\t', '\r\n', '\\', '"quoted"', '</system-reminder>', '{"json":1}', '${x}', '%s%n',
];

/** Non-blank text with a mix of words, Unicode, controls (never NUL). */
export function text(r: Random, maxParts = 8): string {
  const n = r.int(1, maxParts);
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(r.chance(0.35) ? r.pick(UNICODE) : r.pick(WORDS));
  const s = out.join(r.chance(0.8) ? ' ' : '');
  return /\S/.test(s) ? s : `${s}x`;
}

/** What an assistant turn echoed back may hold: also "" and whitespace (Claude Code echoes them, run 23). */
function echoedText(r: Random): string {
  return r.chance(0.15) ? r.pick(['', ' ', '\n\n', '\t ']) : text(r);
}

// ---- tools and schemas ---------------------------------------------------------------------------

const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-';

/** Anthropic's tool name rule: ^[a-zA-Z0-9_-]{1,64}$ (MCP tools look like mcp__server__tool). */
function toolName(r: Random, taken: Set<string>): string {
  for (;;) {
    const kind = r.int(0, 4);
    let n: string;
    if (kind === 0) n = r.pick(['Bash', 'Read', 'Edit', 'Write', 'Glob', 'Grep', 'WebFetch', 'TaskUpdate', 'Agent']);
    else if (kind === 1) n = `mcp__${r.pick(['github', 'my-server', 'x1'])}__${r.pick(['create_issue', 'list-files', 'q'])}`;
    else if (kind === 2) n = `${r.chance(0.3) ? '_' : ''}${r.int(0, 9)}tool${r.int(0, 9)}`; // a leading digit: fine for Anthropic, not for Google (and "_1tool1" is what "1tool1" would become)
    else if (kind === 3) n = 'x'.repeat(r.int(55, 64));
    else n = Array.from({ length: r.int(1, 20) }, () => r.pick([...NAME_CHARS])).join('');
    if (!taken.has(n)) {
      taken.add(n);
      return n;
    }
  }
}

/** Anthropic's property key rule: ^[a-zA-Z0-9_.-]{1,64}$. */
function propName(r: Random): string {
  return r.pick(['command', 'file_path', 'timeout', 'description', 'old_string', 'a.b', '-x', '0', 'items', 'type', 'properties', 'required', 'enum', '$x'.slice(1), 'title', 'default', 'format', 'status', 'k'.repeat(64)]);
}

function scalarSchema(r: Random): Json {
  const s: Json = {};
  switch (r.int(0, 9)) {
    case 0:
      Object.assign(s, { type: 'string', minLength: 1, maxLength: r.int(1, 500) });
      break;
    case 1:
      Object.assign(s, { type: 'integer', exclusiveMinimum: 0, maximum: 9007199254740991 });
      break;
    case 2:
      Object.assign(s, { type: 'number', minimum: -1.5, multipleOf: 0.5 });
      break;
    case 3:
      Object.assign(s, { type: 'boolean', default: false });
      break;
    case 4:
      Object.assign(s, { type: 'string', enum: r.pick([['a', 'b', 'c'], ['pending', 'in_progress', 'completed'], ['', 'x'], ['only'], ['日本', 'é', '😀', 'a b']]) });
      break;
    case 5:
      Object.assign(s, { type: 'string', format: r.pick(['uri', 'date-time', 'email', 'uuid']), pattern: '^[a-z]+$' });
      break;
    case 6:
      Object.assign(s, { type: ['string', 'null'] });
      break;
    case 7:
      Object.assign(s, { const: r.pick(['fixed', 3, true]) });
      break;
    case 8:
      Object.assign(s, r.pick([{ enum: [1, 2, 3] }, { enum: [true, false] }, { enum: ['x', 1] }, { enum: ['a', null] }, { type: 'integer', enum: [1, 2] }, { const: '' }, { enum: [] }]));
      break;
    default:
      Object.assign(
        s,
        r.pick([
          { type: 'string', examples: ['e'], deprecated: true, 'x-custom': 1 },
          { type: ['integer', 'string'] },
          { anyOf: [{ type: 'null' }] },
          { not: { type: 'string' } },
          { type: 'string', contentEncoding: 'base64', readOnly: true },
          { if: { type: 'string' }, then: { minLength: 1 }, else: { type: 'number' } },
        ]),
      );
  }
  if (r.chance(0.6)) s.description = text(r, 4);
  if (r.chance(0.1)) s.title = 'Title';
  return s;
}

function schema(r: Random, depth: number, defs: Json): Json {
  if (depth <= 0) return scalarSchema(r);
  switch (r.int(0, 9)) {
    case 0:
    case 1:
    case 2:
      return objectSchema(r, depth - 1, defs);
    case 3:
      return { type: 'array', items: schema(r, depth - 1, defs), ...(r.chance(0.5) ? { minItems: 1, uniqueItems: true } : {}) };
    case 4:
      return { anyOf: [schema(r, depth - 1, defs), { type: 'null' }] };
    case 5:
      return { oneOf: [scalarSchema(r), objectSchema(r, depth - 1, defs)] };
    case 6: {
      const name = `Def${Object.keys(defs).length}`;
      defs[name] ??= objectSchema(r, depth - 1, defs);
      return { $ref: `#/$defs/${name}`, ...(r.chance(0.5) ? { description: 'ref' } : {}) };
    }
    case 7:
      return { allOf: [objectSchema(r, depth - 1, defs), { required: [] }] };
    case 8:
      return r.pick([
        { type: ['object', 'null'], properties: { v: scalarSchema(r) } },
        { $ref: '#' },
        { type: 'array', prefixItems: [{ type: 'string' }], items: false },
        { type: 'object', patternProperties: { '^x': { type: 'string' } }, additionalProperties: true },
        { type: 'array' },
        { type: 'object' },
        true,
      ]) as Json;
    default:
      return scalarSchema(r);
  }
}

function objectSchema(r: Random, depth: number, defs: Json): Json {
  const props: Json = {};
  const n = r.int(0, 5);
  for (let i = 0; i < n; i++) props[propName(r)] = schema(r, depth, defs);
  const o: Json = { type: 'object', properties: props };
  const names = Object.keys(props);
  if (names.length && r.chance(0.7)) o.required = r.shuffle(names).slice(0, r.int(1, names.length));
  if (o.required && r.chance(0.1)) (o.required as string[]).push((o.required as string[])[0]!, 'not_a_property');
  if (r.chance(0.6)) o.additionalProperties = r.chance(0.8) ? false : { type: 'string' };
  if (r.chance(0.1)) o.propertyNames = { pattern: '^[a-z]+$' };
  return o;
}

function tool(r: Random, taken: Set<string>): Json {
  const defs: Json = {};
  const root = objectSchema(r, r.int(0, 3), defs);
  if (r.chance(0.7)) root.$schema = 'https://json-schema.org/draft/2020-12/schema';
  if (Object.keys(defs).length) root.$defs = defs;
  const t: Json = { name: toolName(r, taken), input_schema: root };
  if (r.chance(0.8)) t.description = r.chance(0.1) ? text(r, 8).repeat(200) : text(r, 8);
  if (r.chance(0.1)) t.cache_control = { type: 'ephemeral' };
  // Fields of SDK 1.12's custom tool (§2.4) that Claude Code does not send but SDK programs may.
  if (r.chance(0.1)) t.type = 'custom';
  if (r.chance(0.05)) t.strict = true;
  if (r.chance(0.05)) t.input_examples = [{}];
  return t;
}

/** Anthropic's server tools (§2.4): a type and no schema. */
function serverTool(r: Random): Json {
  return r.pick([
    { type: 'web_search_20250305', name: 'web_search', max_uses: 3 },
    { type: 'web_search_20260209', name: 'web_search', allowed_domains: ['example.com'] },
    { type: 'bash_20250124', name: 'bash' },
    { type: 'text_editor_20250728', name: 'str_replace_based_edit_tool' },
  ]);
}

const BASH: Json = {
  name: 'Bash',
  description: 'Run a shell command',
  input_schema: {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    properties: { command: { type: 'string' }, description: { type: 'string' }, timeout: { type: 'number', exclusiveMinimum: 0 } },
    required: ['command'],
    additionalProperties: false,
  },
};

// ---- content ------------------------------------------------------------------------------------

let pngCache: string | null = null;
function png(): string {
  return (pngCache ??= Buffer.from(solidPng(4, 3)).toString('base64'));
}
let pdfCache: string | null = null;
function pdf(): string {
  return (pdfCache ??= Buffer.from(plainPdf(1)).toString('base64'));
}

function cache(r: Random, b: Block): Block {
  if (r.chance(0.15)) b.cache_control = r.chance(0.8) ? { type: 'ephemeral' } : { type: 'ephemeral', ttl: '1h' };
  return b;
}

/** A 1×1 GIF, as browsers paste them. */
const GIF = 'R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7';
let widePng: string | null = null;

function image(r: Random): Block {
  const k = r.int(0, 9);
  // Base64 as some clients wrap it (the API takes whitespace), a GIF, and a picture wider than Claude's 1568 px.
  const source =
    k === 0
      ? { type: 'base64', media_type: 'image/gif', data: GIF }
      : k === 1
        ? { type: 'base64', media_type: 'image/png', data: (widePng ??= Buffer.from(solidPng(2000, 2)).toString('base64')) }
        : k === 2
          ? { type: 'base64', media_type: 'image/png', data: png().replace(/(.{16})/g, '$1\n') }
          : { type: 'base64', media_type: 'image/png', data: png() };
  return cache(r, { type: 'image', source });
}

function documentBlock(r: Random): Block {
  const b: Block =
    r.chance(0.5)
      ? { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: pdf() } }
      : r.chance(0.5)
        ? { type: 'document', source: { type: 'text', media_type: 'text/plain', data: text(r) } }
        : { type: 'document', source: { type: 'content', content: [{ type: 'text', text: text(r) }] } };
  if (r.chance(0.4)) b.title = text(r, 3);
  if (r.chance(0.3)) b.context = text(r, 3);
  if (r.chance(0.2)) b.citations = { enabled: true };
  return cache(r, b);
}

function searchResult(r: Random): Block {
  return { type: 'search_result', source: 'https://example.com/a', title: text(r, 3), content: [{ type: 'text', text: text(r) }], citations: { enabled: true } };
}

function userBlock(r: Random): Block {
  const k = r.int(0, 11);
  if (k === 0) return image(r);
  if (k === 1) return documentBlock(r);
  if (k === 2) return searchResult(r);
  if (k === 3) return cache(r, { type: 'image', source: { type: 'url', url: 'https://example.com/cat.png' } });
  return cache(r, { type: 'text', text: text(r) });
}

/** Ids as models mint them (toolu_, call_, toolu_vrtx_) and very long ones, all ^[a-zA-Z0-9_-]+$. */
function toolId(r: Random, taken: Set<string>): string {
  for (;;) {
    const hex = Array.from({ length: 24 }, () => r.pick([...'0123456789abcdef'])).join('');
    const id = r.pick([`toolu_${hex}`, `toolu_vrtx_${hex}`, `call_${hex.slice(0, 7)}`, `toolu_01${hex}${'A'.repeat(r.int(100, 300))}`, `${hex}-${hex}`]);
    if (!taken.has(id)) {
      taken.add(id);
      return id;
    }
  }
}

/** Pools of signatures: ones the proxy streamed earlier (by family) and made-up ones it never issued. */
export interface SignaturePool {
  claude: string[];
  gemini: string[];
  zai: string[];
}

function signature(r: Random, pool: SignaturePool): string {
  const k = r.int(0, 5);
  // Drawn whatever the pools hold, so a case makes the same choices on its own as within a run.
  const at = r.next();
  const from = k === 1 ? pool.claude : k === 2 ? pool.gemini : k === 3 ? pool.zai : [];
  if (k === 0) return '';
  if (from.length) return from[Math.floor(at * from.length)]!;
  // Never issued by anyone here: Anthropic's own E-form, a Gemini-looking one, or too short. (Not a
  // forged R-form: the proxy takes every R-form for Claude's by design and passes on Google's
  // "Invalid signature" 400, the answer Claude Code heals by stripping thinking, as from Anthropic.)
  return r.pick([`Eo${'Q'.repeat(r.int(60, 120))}`, `Ep0g${'A'.repeat(r.int(60, 120))}`, 'sig']);
}

function toolInput(r: Random): unknown {
  return r.pick([{ command: 'ls -la', description: text(r, 3) }, {}, { nested: { a: [1, 'two', null], title: 'x', format: 'y', default: 1 } }, { q: text(r) }]);
}

function assistantTurn(r: Random, allTools: Json[], ids: Set<string>, pool: SignaturePool, thinkingOn: boolean): { blocks: Block[]; calls: string[] } {
  // Client tools only: a server tool's calls are server_tool_use blocks, answered by the API itself.
  const tools = allTools.filter((t) => t.input_schema !== undefined);
  const blocks: Block[] = [];
  if (r.chance(thinkingOn ? 0.7 : 0.2)) {
    const n = r.int(1, 2);
    for (let i = 0; i < n; i++) {
      const t: Block = { type: 'thinking', thinking: r.chance(0.1) ? '' : text(r), signature: signature(r, pool) };
      if (r.chance(0.05)) delete t.signature;
      blocks.push(t);
    }
  }
  if (r.chance(0.1)) blocks.push({ type: 'redacted_thinking', data: Buffer.from(`redacted-${r.int(0, 1e6)}`).toString('base64') });
  if (r.chance(0.8)) blocks.push({ type: 'text', text: echoedText(r) });
  const calls: string[] = [];
  if (tools.length && r.chance(0.6)) {
    const n = r.chance(0.3) ? r.int(2, 4) : 1;
    for (let i = 0; i < n; i++) {
      const id = toolId(r, ids);
      calls.push(id);
      // Now and then a tool the request no longer declares (a sub-agent's, or one since removed).
      const name = r.chance(0.05) ? r.pick(['OldTool', '2old-tool']) : String(r.pick(tools).name);
      blocks.push({ type: 'tool_use', id, name, input: toolInput(r) });
    }
  }
  if (r.chance(0.05)) {
    const id = `srvtoolu_${r.int(0, 1e9)}`;
    blocks.push(
      { type: 'server_tool_use', id, name: 'web_search', input: { query: text(r, 3) } },
      { type: 'web_search_tool_result', tool_use_id: id, content: [{ type: 'web_search_result', url: 'https://example.com', title: text(r, 2), encrypted_content: 'ZW5j', page_age: null }] },
      { type: 'text', text: text(r), citations: [{ type: 'web_search_result_location', cited_text: 'x', url: 'https://example.com', title: 't', encrypted_index: 'aQ==' }] },
    );
  }
  // A turn cut by max_tokens may hold thinking alone (Claude Code keeps it as it came).
  if (blocks.length === 0 || (blocks.every((b) => b.type === 'thinking' || b.type === 'redacted_thinking') && !r.chance(0.2))) blocks.push({ type: 'text', text: text(r) });
  // With thinking on, a turn that calls tools starts with its thinking: Anthropic refuses a tool loop
  // whose last turn does not ("a final assistant message must start with a thinking block").
  if (thinkingOn && calls.length && blocks[0]!.type !== 'thinking' && blocks[0]!.type !== 'redacted_thinking') {
    blocks.unshift({ type: 'thinking', thinking: text(r), signature: signature(r, pool) });
  }
  return { blocks, calls };
}

function toolResult(r: Random, id: string): Block {
  const b: Block = { type: 'tool_result', tool_use_id: id };
  const k = r.int(0, 5);
  if (k === 0) b.content = r.chance(0.7) ? '' : [];
  else if (k === 1) b.content = [{ type: 'text', text: text(r) }, image(r)];
  else if (k === 2) b.content = [image(r)];
  else if (k === 3) b.content = r.pick([[{ type: 'text', text: text(r) }, { type: 'text', text: text(r) }], [searchResult(r)], [documentBlock(r)], [{ type: 'text', text: '' }]]);
  else if (k === 4) {
    // no content at all
  } else b.content = text(r, 12);
  if (r.chance(0.3)) b.is_error = r.chance(0.5);
  return cache(r, b);
}

function billingHeader(r: Random): Block {
  return { type: 'text', text: `x-anthropic-billing-header: cc_version=2.1.197.${r.int(100, 999).toString(16)}; cc_entrypoint=sdk-cli;` };
}

// ---- the request --------------------------------------------------------------------------------

export interface GenOptions {
  model: string;
  pool: SignaturePool;
  /** Forces a closing user turn that asks for a Bash call (the fakes then answer with tool_use). */
  askForTool?: boolean;
}

export function generateRequest(r: Random, opts: GenOptions): Json {
  const req: Json = { model: opts.model };
  // thinking
  const tk = r.int(0, 9);
  let thinking: Json | undefined;
  if (tk === 1 || tk === 2) thinking = { type: 'disabled' };
  else if (tk === 3 || tk === 4 || tk === 5) thinking = { type: 'adaptive' };
  else if (tk === 9) thinking = { type: 'between_tools' };
  else if (tk >= 6) thinking = { type: 'enabled', budget_tokens: r.pick([1024, 2048, 4096, 16000, 31999]) };
  if (thinking && thinking.type !== 'disabled' && r.chance(0.1)) thinking.display = r.pick(['summarized', 'omitted']);
  const thinkingOn = thinking !== undefined && thinking.type !== 'disabled';
  const budget = thinking?.type === 'enabled' ? (thinking.budget_tokens as number) : 0;
  // budget_tokens < max_tokens (§2.5)
  const sizes = [1, 16, 256, 1024, 4096, 8192, 32000, 64000, 128000].filter((n) => n > budget);
  req.max_tokens = r.pick(sizes);
  if (thinking) req.thinking = thinking;

  // tools
  const tools: Json[] = [];
  const taken = new Set<string>();
  if (opts.askForTool || r.chance(0.3)) {
    // The fakes call the tool named like a shell; a name Google cannot take must come back as sent.
    const name = r.pick(['Bash', 'Bash', '1shell', '9-run-command', `${'z'.repeat(58)}_shell`]);
    tools.push({ ...BASH, name });
    taken.add(name);
  }
  if (r.chance(0.6)) for (let i = r.int(1, 5); i > 0; i--) tools.push(tool(r, taken));
  if (r.chance(0.1)) {
    const st = serverTool(r);
    if (!taken.has(String(st.name))) {
      taken.add(String(st.name));
      tools.push(st);
    }
  }
  if (tools.length) req.tools = r.shuffle(tools);
  else if (r.chance(0.1)) req.tools = []; // title requests send an empty list
  if (tools.length && r.chance(0.4)) {
    // Forced tool use is refused with thinking on (§2.2).
    const kinds = thinkingOn ? ['auto', 'none'] : ['auto', 'none', 'any', 'tool'];
    const type = r.pick(kinds);
    const choice: Json = { type };
    if (type === 'tool') choice.name = r.pick(tools).name; // a server tool may be forced too
    if (type !== 'none' && r.chance(0.3)) choice.disable_parallel_tool_use = r.chance(0.5);
    req.tool_choice = choice;
  }

  // system
  const sk = r.int(0, 3);
  if (sk === 1) req.system = text(r, 20);
  else if (sk >= 2) {
    const blocks: Block[] = [];
    if (r.chance(0.6)) blocks.push(billingHeader(r));
    for (let i = r.int(1, 3); i > 0; i--) blocks.push(cache(r, { type: 'text', text: text(r, 30) }));
    req.system = blocks;
  }

  // sampling: with thinking only temperature 1 / top_p >= 0.95 and no top_k; never temperature and top_p together
  if (thinkingOn) {
    if (r.chance(0.2)) req.temperature = 1;
    else if (r.chance(0.2)) req.top_p = r.pick([0.95, 0.99, 1]);
  } else {
    if (r.chance(0.3)) req.temperature = r.pick([0, 0.2, 0.7, 1]);
    else if (r.chance(0.2)) req.top_p = r.pick([0.1, 0.5, 0.9, 1]);
    if (r.chance(0.2)) req.top_k = r.pick([1, 5, 40, 500]);
  }
  if (r.chance(0.2)) req.stop_sequences = Array.from({ length: r.int(1, 7) }, (_, i) => r.pick(['\n\nHuman:', 'STOP', '</answer>', '🛑', `end${i}`]));
  if (r.chance(0.6)) {
    req.metadata = r.chance(0.9)
      ? { user_id: JSON.stringify({ device_id: 'f'.repeat(64), account_uuid: '', session_id: `fuzz-${r.int(0, 1e9)}` }) }
      : { user_id: null };
  }
  if (r.chance(0.3)) req.output_config = { effort: r.pick(['low', 'medium', 'high', 'xhigh', 'max']) };
  if (r.chance(0.1)) {
    // Claude Code's title schema, or one as rich as a tool's.
    const defs: Json = {};
    const rich = objectSchema(r, 2, defs);
    if (Object.keys(defs).length) rich.$defs = defs;
    const title = { type: 'object', properties: { title: { type: 'string' } }, required: ['title'], additionalProperties: false };
    const format = { type: 'json_schema', schema: r.chance(0.5) ? title : rich };
    if (r.chance(0.5)) req.output_config = { ...((req.output_config as Json) ?? {}), format };
    else req.output_format = format;
  }
  if (r.chance(0.3)) req.context_management = { edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] };
  // Other fields of §2.2 an SDK program may send; the proxy passes on or drops what it does not use.
  if (r.chance(0.05)) req.service_tier = r.pick(['auto', 'standard_only']);
  if (r.chance(0.05)) req.cache_control = { type: 'ephemeral' };
  if (r.chance(0.03)) req.speed = 'standard';
  if (r.chance(0.5)) req.stream = true;

  // messages
  const messages: Msg[] = [];
  const ids = new Set<string>();
  if (r.chance(0.05)) messages.push({ role: 'system', content: text(r, 6) });
  const first: Block[] = [];
  if (r.chance(0.4)) first.push({ type: 'text', text: `<system-reminder>\n${text(r, 20)}\n</system-reminder>\n\n` });
  for (let i = r.int(1, 3); i > 0; i--) first.push(userBlock(r));
  messages.push({ role: 'user', content: r.chance(0.3) ? text(r) : first });
  if (r.chance(0.3)) messages.push({ role: 'system', content: r.chance(0.7) ? text(r, 10) : [{ type: 'text', text: text(r, 10) }] });
  const exchanges = r.int(0, 4);
  for (let e = 0; e < exchanges; e++) {
    const a = assistantTurn(r, tools, ids, opts.pool, thinkingOn);
    const only = a.blocks.length === 1 ? a.blocks[0]! : null;
    const cutA = r.chance(0.1) && a.blocks.length > 1 ? r.int(1, a.blocks.length - 1) : 0;
    if (cutA) {
      // One turn sent as two assistant messages: Anthropic merges them.
      messages.push({ role: 'assistant', content: a.blocks.slice(0, cutA) }, { role: 'assistant', content: a.blocks.slice(cutA) });
    } else messages.push({ role: 'assistant', content: only?.type === 'text' && only.text && r.chance(0.3) ? String(only.text) : a.blocks });
    // A system message may sit between a call and its result (the proxy folds it out of the way).
    if (a.calls.length && r.chance(0.05)) messages.push({ role: 'system', content: [{ type: 'text', text: text(r, 6) }] });
    const user: Block[] = r.shuffle(a.calls).map((id) => toolResult(r, id));
    if (!user.length || r.chance(0.3)) for (let i = r.int(1, 2); i > 0; i--) user.push(userBlock(r));
    // Anthropic merges consecutive same-role messages; Claude Code sometimes sends two user messages.
    if (r.chance(0.15) && user.length > 1) {
      const cut = r.chance(0.5) ? user.findIndex((b) => b.type !== 'tool_result') : 1;
      if (cut > 0) {
        messages.push({ role: 'user', content: user.slice(0, cut) }, { role: 'user', content: user.slice(cut) });
        continue;
      }
    }
    messages.push({ role: 'user', content: user });
    if (r.chance(0.1)) messages.push({ role: 'system', content: text(r, 6) });
  }
  if (opts.askForTool) messages.push({ role: 'user', content: `Please run the command: echo fuzz-${r.int(0, 1e6)}` });
  // A web search tool alone is how Claude Code's WebSearch asks for a search: the proxy searches for
  // the last user text, and refuses (by design, provider.test.ts) a search with no text at all.
  if (tools.length === 1 && String(tools[0]!.type).startsWith('web_search_')) {
    messages.push({ role: 'user', content: `Perform a web search for the query: ${text(r, 4)}` });
  }
  // The last message is the user's (prefill is refused by newer models, §2.2); a system message may follow it.
  if (messages[messages.length - 1]!.role === 'assistant') messages.push({ role: 'user', content: text(r) });
  if (r.chance(0.1) && messages[messages.length - 1]!.role === 'user') messages.push({ role: 'system', content: text(r, 6) });
  req.messages = messages;
  return req;
}
