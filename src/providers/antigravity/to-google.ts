// Anthropic Messages request -> the Cloud Code `streamGenerateContent` envelope (protocol §5, §7).
// Pure apart from the signature store, which it reads (and tells the tool names it rewrote). The
// request's strings are byte strings (anthropic/byte-strings.ts), and so is every string added here.
import { fromByteString, parseByteStringJson, toByteString } from '../../anthropic/byte-strings.ts';
import { asCustomTool } from '../../anthropic/client-tools.ts';
import { jsonOnlyInstruction, jsonSchemaOf } from '../../anthropic/structured-output.ts';
import type { MessagesRequest, Tool } from '../../anthropic/schema.ts';
import { toObjectInput } from '../../anthropic/tool-input.ts';
import { familyOf, UpstreamError, type ModelFamily } from '../provider.ts';
import { trackSize } from '../../diagnostics.ts';
import { inlineBase64 } from './inline-data.ts';
import { toGoogleSchema, toGoogleToolSchema } from './schema.ts';
import { MIN_SIGNATURE_LENGTH, type SignatureStore, type ToolNaming } from './signatures.ts';
import { planGeneration } from './thinking.ts';
import { googleToolIds, saltedHash } from './tool-ids.ts';

/** Documented value that makes Gemini skip validating a function call's thought signature (§7.3). */
export const SKIP_SIGNATURE = 'skip_thought_signature_validator';
export const INTERLEAVED_HINT =
  'Interleaved thinking is enabled. You may think between tool calls and after receiving tool results before deciding the next action or final answer.';
/** Claude Code's per-request attribution block: useless upstream and it defeats prompt caching (§5.3). */
const BILLING_PREFIX = 'x-anthropic-billing-header:';
/**
 * Phrases that make Cloud Code answer a misleading 429 "Resource has been exhausted" for the whole
 * request while quota is intact (§5.3). A zero-width space after the first letter defuses them and
 * is invisible to the model.
 */
const FALSE_429_TRIGGERS = /\b(R)(FC 2119)|\b(s)(ystem[-_](?:conventions|directive))/gi;
/** U+200B as a byte string: the texts it goes into are byte strings (anthropic/byte-strings.ts). */
const ZERO_WIDTH_SPACE = toByteString('\u200b');

const GEMINI_2 = /^gemini-2\./;

/**
 * Whether the envelope has Google enforce the answer's JSON schema; when the request has one and
 * this is false, the model was asked for the JSON in words (and may fence it).
 */
export function enforcesResponseSchema(envelope: Record<string, unknown>): boolean {
  const cfg = (envelope.request as { generationConfig?: { responseSchema?: unknown } } | undefined)?.generationConfig;
  return cfg?.responseSchema !== undefined;
}

export interface ToGoogleOptions {
  /** Upstream model id, e.g. "claude-opus-4-6-thinking", "gemini-3-pro-high", "gpt-oss-120b-medium". */
  model: string;
  family: ModelFamily;
  projectId: string;
  /** Stable per client conversation; Google keys its prompt cache on it. */
  sessionId: string;
  requestId: string;
  signatures: SignatureStore;
  /** Key for per-conversation lookups in the store (tool naming). */
  sessionKey: string;
  /** The model's output cap from the catalog, when known (defaults per family otherwise). */
  maxOutputTokens?: number;
  /** The catalog's default thinking budget for the model (-1 = dynamic), when known. */
  thinkingBudget?: number;
  /**
   * How signed Claude thinking is replayed: 'inline' (default; the seed proxies: the thought part
   * carries its signature) or 'split' (the official client: signature on the next visible part).
   * Both are accepted today (§7.5); 'split' is the fallback named in §16 if Google starts rejecting inline.
   */
  claudeThinkingReplay?: 'inline' | 'split';
}

type Block = { type: string; [k: string]: unknown };
/** A client tool name -> the name declared upstream for it in this request. */
type ToolNamer = (name: string) => string;
/** A client tool id -> the id Google gets for it in this request (tool-ids.ts). */
type ToolIds = (id: string) => string;
type Part = Record<string, unknown>;
interface Turn {
  role: 'user' | 'assistant';
  blocks: Block[];
}

export { familyOf };

const NAME_BAD_CHARS = /[^A-Za-z0-9_-]/g;
const NAME_GOOD_START = /^[A-Za-z_]/;
const NAME_FINE = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

/** Google: letter/underscore first, ≤ 64; Claude behind it: [A-Za-z0-9_-] only (§7.12). */
export function sanitizeToolName(name: string): string {
  if (NAME_FINE.test(name)) return name;
  // One "_" per character of the text, not per byte of the byte string: the names Google knew.
  let n = fromByteString(name).replace(NAME_BAD_CHARS, '_');
  if (!NAME_GOOD_START.test(n)) n = `_${n}`;
  return n.slice(0, 64);
}

export function toGoogleRequest(req: MessagesRequest, opts: ToGoogleOptions): Record<string, unknown> {
  const { family, signatures } = opts;

  const naming: ToolNaming = { original: new Map(), placeholders: new Set() };
  const { declarations, names } = convertTools(req.tools, naming);
  const toolName: ToolNamer = (name) => names.get(name) ?? sanitizeToolName(name);
  if (naming.original.size > 0 || naming.placeholders.size > 0) signatures.rememberTools(opts.sessionKey, naming);

  const system = systemTexts(req.system);
  const turns: Turn[] = [];
  for (const m of req.messages) {
    const blocks = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : (m.content as Block[]);
    if (m.role === 'system') {
      // Claude Code sends role:"system" messages mid-conversation; Google only has systemInstruction.
      for (const b of blocks) if (b.type === 'text' && isNonBlank(b.text)) system.push(b.text);
      continue;
    }
    // Anthropic merges consecutive same-role turns; so must we before calls and results are
    // paired, or a result in the second of two user messages reads as an interrupted call.
    const last = turns[turns.length - 1];
    if (last?.role === m.role) last.blocks = last.blocks.concat(blocks);
    else turns.push({ role: m.role, blocks });
  }

  const plan = planGeneration(req, family, opts.model, opts.maxOutputTokens, opts.thinkingBudget);
  const cleaned = cleanHistory(answerMissingCalls(turns), family, plan.thinking, signatures);
  const history = plan.thinking ? recoverToolLoop(cleaned, family, signatures) : cleaned;
  const contents = toContents(history, family, signatures, opts.claudeThinkingReplay === 'split', toolName);
  if (family === 'gemini' && contents[0]?.role === 'model') contents.unshift({ role: 'user', parts: [{ text: '.' }] });

  const request: Record<string, unknown> = { contents };
  // Claude and GPT-OSS behind Google take no response schema: they are asked for the JSON instead.
  // So is Gemini 2.x when it has tools: it refuses a response schema beside function declarations
  // (400 "Function calling with a response mime type: 'application/json' is unsupported"), which
  // Anthropic allows; Gemini 3 takes both.
  const schema = jsonSchemaOf(req);
  const enforced = family === 'gemini' && !(declarations.length > 0 && GEMINI_2.test(opts.model));
  if (schema && !enforced) system.push(jsonOnlyInstruction(schema));
  if (family === 'claude' && plan.thinking && declarations.length > 0) {
    if (system.length > 0) system[system.length - 1] = `${system[system.length - 1]}\n\n${INTERLEAVED_HINT}`;
    else system.push(INTERLEAVED_HINT);
  }
  if (system.length > 0) request.systemInstruction = { role: 'user', parts: system.map((text) => ({ text: defuse(text) })) };
  if (declarations.length > 0) {
    request.tools = [{ functionDeclarations: declarations }];
    const toolConfig = toolConfigFor(req, family, plan.thinking, names);
    if (toolConfig) request.toolConfig = toolConfig;
  }
  const generationConfig = plan.generationConfig;
  if (enforced && schema) {
    generationConfig.responseMimeType = 'application/json';
    generationConfig.responseSchema = toGoogleSchema(schema);
  }
  request.generationConfig = generationConfig;
  request.sessionId = opts.sessionId;

  return {
    project: opts.projectId,
    // An id the catalog does not know is the client's, passed on (text, like every model id here).
    model: toByteString(opts.model),
    request,
    userAgent: 'antigravity',
    requestType: 'agent',
    requestId: opts.requestId,
  };
}

// ---- tools ------------------------------------------------------------------------------------

// Claude Code sends the same tool schemas on every turn, and converting them was over half of
// toGoogleRequest's time for a typical turn. The cache is keyed by tool name and holds the schema
// it was made from; a walk that compares the new schema with it is about twice as fast as the
// JSON key it replaces and allocates nothing. Bounded; the results are shared, which is safe
// because nothing downstream mutates them (the envelope is only serialised).
const TOOL_SCHEMA_CACHE_MAX = 256;
const toolSchemaCache = new Map<string, { schema: unknown; result: ReturnType<typeof toGoogleToolSchema> }>();
trackSize('antigravity.toolSchemas', () => toolSchemaCache.size);
function cachedToolSchema(name: string, inputSchema: unknown): ReturnType<typeof toGoogleToolSchema> {
  const hit = toolSchemaCache.get(name);
  if (hit && sameJson(hit.schema, inputSchema)) return hit.result;
  const result = toGoogleToolSchema(inputSchema);
  if (!hit && toolSchemaCache.size >= TOOL_SCHEMA_CACHE_MAX) toolSchemaCache.delete(toolSchemaCache.keys().next().value!);
  toolSchemaCache.set(name, { schema: inputSchema, result });
  return result;
}

/** Deep equality of two parsed JSON values (same keys in any order, same values). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let keys = 0;
  for (const k in x) {
    if (!Object.hasOwn(y, k) || !sameJson(x[k], y[k])) return false;
    keys++;
  }
  for (const _ in y) keys--;
  return keys === 0;
}

/**
 * The declarations, and the upstream name of each client tool (`names`: client -> upstream). Two
 * client names that sanitize alike (`mcp__a.b`, `mcp__a:b`) would both be `mcp__a_b`: names that
 * need no change keep theirs, and every sanitized name that collides gets a suffix hashed from its
 * client name, so the names depend on the set of tools, not on their order.
 */
function convertTools(tools: Tool[] | undefined, naming: ToolNaming): { declarations: Part[]; names: Map<string, string> } {
  const out: Part[] = [];
  const names = new Map<string, string>();
  const declared: Tool[] = [];
  for (const t of tools ?? []) {
    if (!(typeof t.type === 'string' && t.type !== 'custom' && t.input_schema === undefined)) declared.push(t);
    else {
      // Anthropic-defined tools carry a type and no schema. The client runs bash, the text editor and
      // memory, so they are declared with Anthropic's documented inputs (left out, the model could
      // never call them); server tools (web_search_…, code_execution_…) run nowhere here: left out.
      const custom = asCustomTool(t);
      if (custom) declared.push(custom);
    }
  }
  const taken = new Set<string>();
  const sanitized = new Map<string, Set<string>>(); // sanitized name -> the client names that give it
  for (const t of declared) {
    if (NAME_FINE.test(t.name)) taken.add(t.name);
    else {
      const n = sanitizeToolName(t.name);
      const from = sanitized.get(n);
      if (from) from.add(t.name);
      else sanitized.set(n, new Set([t.name]));
    }
  }
  for (const t of declared) {
    if (names.has(t.name)) continue; // the same client name twice: the first one stands
    let name = sanitizeToolName(t.name);
    if (name !== t.name) {
      if (taken.has(name) || sanitized.get(name)!.size > 1) name = suffixedName(name, t.name, taken);
      taken.add(name);
    }
    names.set(t.name, name);
    const { parameters, placeholder } = cachedToolSchema(t.name, t.input_schema);
    // The original goes back to the client in the answer: as text.
    if (name !== t.name) naming.original.set(name, fromByteString(t.name));
    if (placeholder) naming.placeholders.add(name);
    const decl: Part = { name };
    if (typeof t.description === 'string' && t.description) decl.description = t.description;
    decl.parameters = parameters;
    out.push(decl);
  }
  return { declarations: out, names };
}

function suffixedName(base: string, original: string, taken: Set<string>): string {
  for (let salt = 0; ; salt++) {
    const suffix = `_${saltedHash(original, salt)}`;
    const name = base.slice(0, 64 - suffix.length) + suffix;
    if (!taken.has(name)) return name;
  }
}

/**
 * §7.11. Claude behind Google wants VALIDATED whenever tools are on; forcing a tool conflicts with
 * thinking. `declared`: client name -> upstream name of each tool declared upstream.
 */
function toolConfigFor(req: MessagesRequest, family: ModelFamily, thinking: boolean, declared: Map<string, string>): Record<string, unknown> | null {
  const choice = req.tool_choice;
  if (choice?.type === 'none') return { functionCallingConfig: { mode: 'NONE' } };
  // A forced tool that is not declared here (a server tool, which has no schema to declare) cannot
  // be named to Google, which refuses an unknown allowed function: it forces nothing.
  const forced = choice?.type === 'any' || (choice?.type === 'tool' && declared.has(choice.name ?? ''));
  if (forced && !(family === 'claude' && thinking)) {
    const cfg: Record<string, unknown> = { mode: 'ANY' };
    if (choice.type === 'tool') cfg.allowedFunctionNames = [declared.get(choice.name!)!];
    return { functionCallingConfig: cfg };
  }
  if (family === 'claude') return { functionCallingConfig: { mode: 'VALIDATED' } };
  if (choice?.type === 'auto') return { functionCallingConfig: { mode: 'AUTO' } };
  return null;
}

// ---- system -----------------------------------------------------------------------------------

function systemTexts(system: MessagesRequest['system']): string[] {
  if (typeof system === 'string') return isNonBlank(system) ? [system] : [];
  const out: string[] = [];
  for (const b of system ?? []) {
    if (b.type !== 'text' || !isNonBlank(b.text)) continue;
    if (b.text.startsWith(BILLING_PREFIX)) continue;
    out.push(b.text);
  }
  return out;
}

export function defuse(text: string): string {
  FALSE_429_TRIGGERS.lastIndex = 0;
  if (!FALSE_429_TRIGGERS.test(text)) return text;
  return text.replace(FALSE_429_TRIGGERS, (_m, a?: string, b?: string, c?: string, d?: string) => (a ? `${a}${ZERO_WIDTH_SPACE}${b}` : `${c}${ZERO_WIDTH_SPACE}${d}`));
}

// ---- history: thinking filter and recovery ------------------------------------------------------

function signatureOf(b: Block): string | null {
  const s = typeof b.signature === 'string' && b.signature ? b.signature : b.thoughtSignature;
  return typeof s === 'string' && s.length >= MIN_SIGNATURE_LENGTH ? s : null;
}

/**
 * Keeps only thinking the target can verify: signed, and minted by the same family (§7.5). A
 * signature from another family, an unsigned block, or redacted_thinking is dropped.
 */
function cleanHistory(
  turns: Turn[],
  family: ModelFamily,
  thinking: boolean,
  signatures: SignatureStore,
): Turn[] {
  // Most turns carry no thinking: they are passed on as they are, and the list is copied only
  // when one changes (a 59-message turn otherwise built ~30 arrays for nothing).
  let out: Turn[] | null = null;
  for (let i = 0; i < turns.length; i++) {
    const t = turns[i]!;
    if (t.role !== 'assistant' || !t.blocks.some(isThinkingBlock)) continue;
    const blocks: Block[] = [];
    for (const b of t.blocks) {
      if (isThinkingBlock(b)) {
        const sig = b.type === 'thinking' ? signatureOf(b) : null;
        const keep = thinking && sig !== null && (family === 'claude' || family === 'gemini') && signatures.thinkingFamily(sig) === family;
        if (keep) blocks.push(b);
        continue;
      }
      blocks.push(b);
    }
    (out ??= turns.slice())[i] = { role: t.role, blocks };
  }
  return out ?? turns;
}

function isThinkingBlock(b: Block): boolean {
  return b.type === 'thinking' || b.type === 'redacted_thinking';
}

/**
 * Every call must be answered in the next turn (both Claude and Gemini 400 otherwise). A call left
 * without a result (the user interrupted it, or history was cut) gets an error result saying so.
 */
function answerMissingCalls(turns: Turn[]): Turn[] {
  let out: Turn[] | null = null;
  for (let i = 0; i < turns.length; i++) {
    const t = turns[i]!;
    if (t.role !== 'assistant') continue;
    const next = turns[i + 1];
    if (!next) continue; // a trailing call is the client's own business
    let missing: string[] | null = null;
    for (const b of t.blocks) {
      if (b.type !== 'tool_use') continue;
      const id = String(b.id);
      if (next.role !== 'user' || !answers(next.blocks, id)) (missing ??= []).push(id);
    }
    if (!missing) continue;
    out ??= turns.slice();
    const results: Block[] = missing.map((id) => ({ type: 'tool_result', tool_use_id: id, content: '[Tool call was interrupted.]', is_error: true }));
    const at = out.indexOf(t) + 1;
    if (next.role === 'user') out[at] = { role: 'user', blocks: [...results, ...next.blocks] };
    else out.splice(at, 0, { role: 'user', blocks: results });
  }
  return out ?? turns;
}

function answers(blocks: Block[], id: string): boolean {
  for (const b of blocks) if (b.type === 'tool_result' && String(b.tool_use_id) === id) return true;
  return false;
}

/** Index in `blocks` of the `n`th tool_use block (n from callIndex, so it exists). */
function callAt(blocks: Block[], n: number): number {
  for (let i = 0; i < blocks.length; i++) if (blocks[i]!.type === 'tool_use' && n-- === 0) return i;
  return -1;
}

/** Position of call `id` among the tool_use blocks of `blocks` (-1 when absent). */
function callIndex(blocks: Block[] | null, id: string): number {
  if (!blocks) return -1;
  let n = 0;
  for (const b of blocks) {
    if (b.type !== 'tool_use') continue;
    if (String(b.id) === id) return n;
    n++;
  }
  return -1;
}

function toolUses(t: Turn): Block[] {
  return t.blocks.filter((b) => b.type === 'tool_use');
}

function hasToolResult(t: Turn): boolean {
  return t.role === 'user' && t.blocks.some((b) => b.type === 'tool_result');
}

/**
 * §7.8: with thinking on, a tool loop whose last assistant turn cannot be replayed with its own
 * thinking (dropped: foreign family, unsigned, cache loss) makes Claude fail with "Expected
 * thinking…" and leaves Gemini without its call signatures. Closing the loop with a synthetic
 * exchange lets the model start a fresh turn instead.
 */
function recoverToolLoop(turns: Turn[], family: ModelFamily, signatures: SignatureStore): Turn[] {
  let last = -1;
  for (let i = turns.length - 1; i >= 0; i--) if (turns[i]!.role === 'assistant') { last = i; break; }
  if (last < 0) return turns;
  const assistant = turns[last]!;
  const calls = toolUses(assistant);
  if (calls.length === 0) return turns;
  const later = turns.slice(last + 1);
  // Calls left unanswered were answered by answerMissingCalls, so an open turn is always a tool loop.
  const resultMessages = later.filter(hasToolResult).length;
  if (resultMessages === 0) return turns;
  if (assistant.blocks.some((b) => b.type === 'thinking')) return turns;

  // With thinking on, Claude wants the turn it continues to start with its thinking, whatever the
  // reason there is none: dropped here, dropped by the gateway as another provider's (so the turn
  // arrives looking as if it never thought), or made with thinking off. Gemini needs a call's signature.
  const intact = family === 'gemini' ? calls.some((c) => geminiSignature(c, signatures) !== null) : family !== 'claude';
  if (intact) return turns;

  const text = (s: string): Block[] => [{ type: 'text', text: s }];
  const done = resultMessages === 1 ? '[Tool execution completed.]' : `[${resultMessages} tool executions completed.]`;
  return [...turns, { role: 'assistant', blocks: text(done) }, { role: 'user', blocks: text('[Continue]') }];
}

function geminiSignature(b: Block, signatures: SignatureStore): string | null {
  if (typeof b.thoughtSignature === 'string' && b.thoughtSignature.length >= MIN_SIGNATURE_LENGTH) return b.thoughtSignature;
  const rec = signatures.toolCall(String(b.id));
  return rec?.family === 'gemini' && rec.signature ? rec.signature : null;
}

// ---- contents -----------------------------------------------------------------------------------

/** One content per turn; same-role neighbours merged (strict alternation), never an empty one. */
function toContents(
  turns: Turn[],
  family: ModelFamily,
  signatures: SignatureStore,
  splitClaude: boolean,
  toolName: ToolNamer,
): Array<{ role: string; parts: Part[] }> {
  const contents: Array<{ role: string; parts: Part[] }> = [];
  const toolId = googleToolIds(toolIdsOf(turns));
  let prevCalls: Block[] | null = null; // the assistant turn the next user turn answers
  const add = (role: string, parts: Part[]): void => {
    const last = contents[contents.length - 1];
    if (last?.role === role) last.parts.push(...parts);
    else contents.push({ role, parts });
  };
  for (const t of turns) {
    if (t.role === 'assistant') {
      add('model', modelParts(t.blocks, family, signatures, splitClaude, toolName, toolId));
      prevCalls = t.blocks;
    } else {
      add('user', userParts(t.blocks, prevCalls, family, signatures, toolName, toolId));
      prevCalls = null;
    }
  }
  // Claude rejects empty turns; a lone "." keeps the alternation without saying anything.
  for (const c of contents) if (c.parts.length === 0) c.parts.push({ text: '.' });
  return contents;
}

/**
 * Thinking first, then text and media, then calls (§7 step 5). One output array, filled in three
 * passes over the (few) blocks, instead of three arrays joined by a spread.
 */
function modelParts(
  blocks: Block[],
  family: ModelFamily,
  signatures: SignatureStore,
  splitClaude: boolean,
  toolName: ToolNamer,
  toolId: ToolIds,
): Part[] {
  const out: Part[] = [];
  // Split replay moves one signature to the next visible part; with several thinking blocks it would lose some.
  const split = family === 'gemini' || (splitClaude && signedThoughts(blocks) === 1);
  let splitSignature: string | null = null;
  for (const b of blocks) {
    if (b.type !== 'thinking') continue;
    const sig = signatureOf(b);
    if (!sig) continue;
    const text = typeof b.thinking === 'string' ? b.thinking : '';
    if (split) {
      // Gemini signed the first visible part after its thoughts and the official client replays
      // it there, without the thought text; Claude in split mode keeps the text, unsigned (§7.5).
      splitSignature = sig;
      if (family === 'claude' && text) out.push({ text, thought: true });
      continue;
    }
    // An empty thought still carries its signature ([CPA] carrier part).
    out.push({ text, thought: true, thoughtSignature: sig });
  }
  const visible = out.length;
  for (const b of blocks) {
    if (b.type === 'thinking' || b.type === 'tool_use') continue;
    for (const p of partsOf(b)) {
      const heading = mediaHeading(b, p);
      if (heading) out.push(heading);
      // A picture a Gemini image model drew goes back with the signature it came with.
      const drawn = family === 'gemini' && b.type === 'image' && p.inlineData ? signatures.imageSignature((p.inlineData as { data: string }).data) : undefined;
      if (drawn) p.thoughtSignature = drawn;
      out.push(p);
    }
  }
  let firstCallSigned: boolean | null = null;
  for (const b of blocks) {
    if (b.type !== 'tool_use') continue;
    const id = String(b.id);
    const name = toolName(String(b.name));
    const part: Part = { functionCall: withId({ name, args: toObjectInput(b.input, parseByteStringJson) }, id, toolId, family, signatures) };
    if (family === 'gemini') {
      // Gemini checks the calls of the current turn; only the first of a parallel batch is signed.
      const sig = geminiSignature(b, signatures);
      if (sig) part.thoughtSignature = sig;
      else if (firstCallSigned !== true) part.thoughtSignature = SKIP_SIGNATURE;
      firstCallSigned ??= sig !== null;
    }
    out.push(part);
  }
  if (splitSignature) {
    const carrier = out[visible];
    if (carrier && (!carrier.thoughtSignature || carrier.thoughtSignature === SKIP_SIGNATURE)) carrier.thoughtSignature = splitSignature;
    else if (!carrier && family === 'claude') {
      // Nothing visible to carry it: fall back to the signed thought itself.
      const last = visible > 0 ? out[visible - 1] : undefined;
      if (last) last.thoughtSignature = splitSignature;
      else out.push({ text: '', thought: true, thoughtSignature: splitSignature });
    }
  }
  return out;
}

function signedThoughts(blocks: Block[]): number {
  let n = 0;
  for (const b of blocks) if (b.type === 'thinking' && signatureOf(b)) n++;
  return n;
}

/**
 * functionResponses first, in the order of the calls they answer, then their images, then the
 * rest. `calls` is the assistant turn being answered (null when the previous turn was not one).
 */
function userParts(
  blocks: Block[],
  calls: Block[] | null,
  family: ModelFamily,
  signatures: SignatureStore,
  toolName: ToolNamer,
  toolId: ToolIds,
): Part[] {
  const out: Part[] = []; // the functionResponses, kept sorted by the order of their calls
  const orders: number[] = [];
  let media: Part[] | null = null;
  let rest: Part[] | null = null;
  for (const b of blocks) {
    if (b.type !== 'tool_result') {
      for (const p of partsOf(b)) {
        const heading = mediaHeading(b, p);
        if (heading) (rest ??= []).push(heading);
        (rest ??= []).push(p);
      }
      continue;
    }
    const id = String(b.tool_use_id);
    const order = callIndex(calls, id);
    // A plain string is by far the usual content; only block lists need assembling.
    const assembled = typeof b.content === 'string' ? null : resultContent(b.content);
    const text = assembled ? assembled.text : (b.content as string);
    const images = assembled?.images;
    if (order < 0) {
      // No call to answer (history cut by compaction): keep the content as plain text.
      rest ??= [];
      if (text) rest.push({ text: `[Tool result ${id}]\n${text}` });
      if (images) for (const im of images) rest.push(im);
      continue;
    }
    // The call is in `calls` (order >= 0); its name is mapped the same way modelParts did.
    const name = toolName(String(calls![callAt(calls!, order)]!.name));
    const body = text || attachedNote(images);
    // A failed tool goes back like a good one, its error as text: that is what the official client
    // sends (a capture of a failed view_file), and Claude Code's error results say they are errors.
    const response = { output: body };
    // Insertion keeps equal orders in arrival order, as the stable sort it replaces did.
    let at = orders.length;
    while (at > 0 && orders[at - 1]! > order) at--;
    orders.splice(at, 0, order);
    out.splice(at, 0, { functionResponse: withId({ name }, id, toolId, family, signatures, response) });
    if (images && images.length > 0) (media ??= []).push(...images);
  }
  if (media) for (const p of media) out.push(p);
  if (rest) for (const p of rest) out.push(p);
  return out;
}

/**
 * Ids are echoed as the upstream gave them, or as `toolId` rewrites one Claude would refuse. A call
 * Gemini made without an id goes back without one (matched by name and order, as Gemini does);
 * Claude always needs the id it is known by. `fields` is always a fresh object, completed in place.
 */
function withId(fields: Part, id: string, toolId: ToolIds, family: ModelFamily, signatures: SignatureStore, response?: unknown): Part {
  if (response !== undefined) fields.response = response;
  if (family === 'claude' || !signatures.toolCall(id)?.minted) fields.id = toolId(id);
  return fields;
}

/** Every tool id of the history, calls and results alike (one mapping must serve both). */
function toolIdsOf(turns: Turn[]): string[] {
  const ids: string[] = [];
  for (const t of turns) {
    for (const b of t.blocks) {
      if (b.type === 'tool_use') ids.push(String(b.id));
      else if (b.type === 'tool_result') ids.push(String(b.tool_use_id));
    }
  }
  return ids;
}

/** What a result that is only files says: the model should not take a PDF for a picture. */
function attachedNote(files: Part[] | undefined): string {
  if (!files || files.length === 0) return '';
  const images = files.every((p) => {
    const mime = ((p.inlineData ?? p.fileData) as { mimeType?: unknown } | undefined)?.mimeType;
    return typeof mime === 'string' && mime.startsWith('image/');
  });
  return images ? 'Image attached' : 'Document attached';
}

function resultContent(content: unknown): { text: string; images: Part[] } {
  if (typeof content === 'string') return { text: content, images: [] };
  const texts: string[] = [];
  const images: Part[] = [];
  if (Array.isArray(content)) {
    for (const c of content as Block[]) {
      if (c.type === 'text' && typeof c.text === 'string') texts.push(c.text);
      else {
        for (const p of partsOf(c)) {
          const heading = mediaHeading(c, p);
          if (heading) texts.push(heading.text as string);
          if ('inlineData' in p || 'fileData' in p) images.push(p);
          else if (typeof p.text === 'string') texts.push(p.text);
        }
      }
    }
  }
  return { text: texts.join('\n'), images };
}

/**
 * A document's `title` and `context`, which Anthropic shows the model with it (and which tell several
 * documents apart); '' when it has neither.
 */
function documentHeading(b: Block): string {
  if (b.type !== 'document') return '';
  const title = isNonBlank(b.title) ? `Document: ${b.title}` : '';
  const context = isNonBlank(b.context) ? b.context : '';
  return title && context ? `${title}\n${context}` : title || context;
}

/** The heading of a PDF (or other binary document) part, as a text part to go before it. */
function mediaHeading(b: Block, p: Part): Part | null {
  if (b.type !== 'document' || !('inlineData' in p || 'fileData' in p)) return null;
  // A document made of content blocks has its heading in its text part already (contentPart).
  if ((b.source as { type?: unknown } | undefined)?.type === 'content') return null;
  const heading = documentHeading(b);
  return heading ? { text: heading } : null;
}

/** The image blocks of a document whose source is content blocks (none for any other block). */
function documentImages(b: Block): Block[] {
  const src = b.type === 'document' ? (b.source as { type?: unknown; content?: unknown } | undefined) : undefined;
  if (src?.type !== 'content' || !Array.isArray(src.content)) return [];
  return (src.content as Block[]).filter((c) => c !== null && typeof c === 'object' && c.type === 'image');
}

/** A block's parts: its one part, and after it the pictures of a document made of content blocks. */
function partsOf(b: Block): Part[] {
  const p = contentPart(b);
  const out = p ? [p] : [];
  for (const image of documentImages(b)) {
    const q = contentPart(image);
    if (q) out.push(q);
  }
  return out;
}

const IMAGE_EXTENSION = /\.(png|gif|webp|jpe?g)$/i;
const IMAGE_TYPE_OF_EXTENSION: Record<string, string> = { png: 'image/png', gif: 'image/gif', webp: 'image/webp', jpg: 'image/jpeg', jpeg: 'image/jpeg' };

/** The image type a URL's path names by its extension (query and fragment aside), or null. */
function imageTypeOfUrl(url: string): string | null {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    return null;
  }
  const ext = IMAGE_EXTENSION.exec(path)?.[1]?.toLowerCase();
  return ext ? IMAGE_TYPE_OF_EXTENSION[ext]! : null;
}

/** text, image, document and the text-bearing pass-through blocks; null for what Google cannot take. */
function contentPart(b: Block): Part | null {
  switch (b.type) {
    case 'text':
      // Empty/blank text parts are a 400 ("required oneof field 'data'").
      return isNonBlank(b.text) ? { text: b.text } : null;
    case 'image':
    case 'document': {
      const src = (b.source ?? {}) as Record<string, unknown>;
      const fallbackMime = b.type === 'image' ? 'image/jpeg' : 'application/pdf';
      if (src.type === 'base64' && typeof src.data === 'string') {
        return { inlineData: { mimeType: typeof src.media_type === 'string' ? src.media_type : fallbackMime, data: inlineBase64(src.data) } };
      }
      if (src.type === 'url' && typeof src.url === 'string') {
        // Anthropic's URL sources name no type (the API looks at what it fetches); Google is told one.
        const mimeType = typeof src.media_type === 'string' ? src.media_type : (b.type === 'image' ? imageTypeOfUrl(src.url) : null) ?? fallbackMime;
        return { fileData: { mimeType, fileUri: src.url } };
      }
      const heading = documentHeading(b);
      if (src.type === 'text' && isNonBlank(src.data)) return { text: heading ? `${heading}\n\n${src.data}` : src.data };
      if (src.type === 'file') {
        // Anthropic's Files API: nothing here can fetch it, and dropping it would have the model
        // answer as if no picture or PDF had been sent.
        throw new UpstreamError('bad_request', `${b.type} blocks with a file_id source (Files API) are not supported by this proxy; send the ${b.type} as base64 or a URL`, { status: 400 });
      }
      if (src.type === 'content') {
        // Its content is a string or text and image blocks (the images follow, partsOf).
        const text =
          typeof src.content === 'string'
            ? src.content
            : Array.isArray(src.content)
              ? (src.content as Block[]).flatMap((c) => (c.type === 'text' && isNonBlank(c.text) ? [c.text] : [])).join('\n')
              : '';
        if (isNonBlank(text)) return { text: heading ? `${heading}\n\n${text}` : text };
        return heading && documentImages(b).length > 0 ? { text: heading } : null;
      }
      return null;
    }
    case 'web_search_tool_result': {
      // A search this proxy (or Anthropic) ran earlier in the conversation: its sources, as text.
      const hits = Array.isArray(b.content) ? (b.content as Block[]) : [];
      const lines = hits.filter((h) => typeof h.url === 'string').map((h) => `${typeof h.title === 'string' && h.title ? h.title : h.url}: ${h.url}`);
      return lines.length ? { text: `Web search results:\n${lines.join('\n')}` } : null;
    }
    case 'search_result': {
      const inner = Array.isArray(b.content) ? (b.content as Block[]) : [];
      const text = inner.map((c) => (typeof c.text === 'string' ? c.text : '')).join('\n');
      if (!isNonBlank(text)) return null;
      // Anthropic shows the model where the passage comes from; so does this heading.
      const title = isNonBlank(b.title) ? b.title : '';
      const source = isNonBlank(b.source) ? b.source : '';
      const heading = title && source ? `${title} (${source})` : title || source;
      return { text: heading ? `Search result: ${heading}\n${text}` : text };
    }
    default:
      return null;
  }
}

const NON_BLANK = /\S/;
/** Same whitespace as `trim()`, without making a trimmed copy of a long text. */
function isNonBlank(v: unknown): v is string {
  return typeof v === 'string' && NON_BLANK.test(v);
}
