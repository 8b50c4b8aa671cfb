// Anthropic request -> the body and headers Z.AI's Anthropic endpoint accepts. Z.AI is close to
// Anthropic but rejects a few things Claude Code sends (role:"system" messages -> 422, non-object
// tool input -> 500, empty text -> 400) and ignores others; everything else rides along unchanged.
import { fromByteString, parseByteStringJson, toByteString } from '../../anthropic/byte-strings.ts';
import { budgetForEffort, effortOf } from '../../anthropic/effort.ts';
import { asCustomTool } from '../../anthropic/client-tools.ts';
import type { MessagesRequest, MessageParam, Tool } from '../../anthropic/schema.ts';
import { jsonOnlyInstruction, jsonSchemaOf } from '../../anthropic/structured-output.ts';
import { toObjectInput } from '../../anthropic/tool-input.ts';
import type { SendContext } from '../provider.ts';

// Z.AI crashes (500) on history whose tool_use.input is not an object.
export { toObjectInput };

type Block = { type: string; [k: string]: unknown };
type Msg = { role: string; content: string | Block[]; [k: string]: unknown };

/**
 * Fields Z.AI rejects or ignores; dropping them keeps the request small and accepted. image_config
 * is our own extension, for Google's image models. output_format is the structured-outputs beta's
 * first form of output_config.format.
 */
const DROPPED_FIELDS = ['context_management', 'output_config', 'output_format', 'image_config'] as const;

/** Headers from the client that make the traffic look like Claude Code's (Z.AI treats it well). */
// What Claude Code sends when pointed at Z.AI itself: Z.AI is reported to treat Claude Code's traffic
// specially, so the proxy looks the same and adds no header of its own (protocol Part 3).
const FORWARDED_HEADERS = ['anthropic-version', 'anthropic-beta', 'user-agent', 'x-app', 'x-claude-code-session-id'] as const;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function reminder(content: string | Block[]): Block | null {
  const text = typeof content === 'string' ? content : content.map((b) => (b.type === 'text' ? String(b.text ?? '') : '')).join('\n');
  if (!text.trim()) return null;
  return { type: 'text', text: `<system-reminder>\n${text}\n</system-reminder>` };
}

/** Z.AI refuses empty text wherever it sits (§3.4.5): messages, tool results, the system prompt. */
function isEmptyText(b: Block | null | undefined): boolean {
  return !!b && b.type === 'text' && (typeof b.text !== 'string' || b.text === '');
}

/** Whether an unsigned thinking block (its text) is one Z.AI itself streamed. */
export type OwnUnsignedThinking = (thinking: string) => boolean;

/**
 * Keeps what Z.AI can take: no empty text, object tool input, no thinking without a signature but
 * Z.AI's own, no redacted thinking, and no picture in an assistant turn.
 */
function cleanBlocks(blocks: Block[], role: string, ownUnsigned?: OwnUnsignedThinking): Block[] {
  const out: Block[] = [];
  for (const b of blocks) {
    if (b.type === 'image' && role === 'assistant') {
      // A picture a Gemini image model drew, in a conversation moved to GLM. Anthropic's answers
      // have no image block, so an endpoint built on its schema may refuse the whole turn for it.
      continue;
    } else if (b.type === 'text') {
      if (isEmptyText(b)) continue;
      out.push(b);
    } else if (b.type === 'tool_use') {
      out.push(isPlainObject(b.input) ? b : { ...b, input: toObjectInput(b.input, parseByteStringJson) });
    } else if (b.type === 'tool_result' && Array.isArray(b.content)) {
      // Its content may hold empty text too (a command that printed nothing); a result with nothing
      // left goes without content, which Anthropic's schema allows.
      const inner = (b.content as Block[]).filter((c) => !isEmptyText(c));
      if (inner.length === b.content.length) out.push(b);
      else if (inner.length) out.push({ ...b, content: inner });
      else {
        const { content: _empty, ...rest } = b;
        out.push(rest as Block);
      }
    } else if (b.type === 'redacted_thinking') {
      // Only Anthropic issues these (Z.AI streams its reasoning as thinking blocks): the data is
      // encrypted for Anthropic's keys, means nothing to GLM, and is another provider's reasoning to
      // keep from it (protocol §2.5, §3.7). An endpoint built on Anthropic's schema may also refuse it.
      continue;
    } else if (b.type === 'thinking') {
      // Without a signature (Claude Code echoes "" when none came) it is kept only if Z.AI streamed
      // it: Z.AI may not sign its thinking (protocol Part 3) and does not check signatures, so GLM
      // keeps its reasoning; another model's unsigned thinking (GPT-OSS on Google) is not GLM's.
      const unsigned = typeof b.signature !== 'string' || b.signature === '';
      // The client's text is byte strings here, what Z.AI streamed was decoded: compared as text.
      if (unsigned && !(typeof b.thinking === 'string' && ownUnsigned?.(fromByteString(b.thinking)))) continue;
      out.push(b);
    } else {
      out.push(b);
    }
  }
  return out;
}

function asBlocks(content: string | Block[]): Block[] {
  return typeof content === 'string' ? (content === '' ? [] : [{ type: 'text', text: content }]) : content;
}

/** tool_result blocks must lead a user message (they answer the previous assistant turn). */
function joinUser(a: Block[], b: Block[]): Block[] {
  const results: Block[] = [];
  const rest: Block[] = [];
  for (const blk of [...a, ...b]) (blk.type === 'tool_result' ? results : rest).push(blk);
  return [...results, ...rest];
}

/** Reminders with no user turn after them join the user turn before (never mutating the client's). */
function attachToPrevious(out: Msg[], reminders: Block[]): void {
  const prev = out[out.length - 1];
  if (prev && prev.role === 'user') out[out.length - 1] = { ...prev, content: joinUser(asBlocks(prev.content), reminders) };
  else out.push({ role: 'user', content: reminders });
}

/**
 * role:"system" messages become <system-reminder> text in the next user message (or the previous
 * one when nothing follows), exactly like Claude Code's own fallback; blocks Z.AI rejects are
 * removed, and messages left empty disappear. Adjacent same-role messages are then merged so that
 * user/assistant alternation holds.
 */
export function foldMessages(messages: readonly MessageParam[], ownUnsigned?: OwnUnsignedThinking): MessageParam[] {
  // Pass 1: clean blocks and turn system messages into pending reminders.
  const out: Msg[] = [];
  let pending: Block[] = [];
  for (const raw of messages as readonly Msg[]) {
    if (raw.role === 'system') {
      const r = reminder(raw.content);
      if (r) pending.push(r);
      continue;
    }
    let content: string | Block[];
    if (typeof raw.content === 'string') content = raw.content;
    else {
      const cleaned = cleanBlocks(raw.content, raw.role, ownUnsigned);
      content = cleaned.length === raw.content.length && cleaned.every((b, i) => b === raw.content[i]) ? raw.content : cleaned;
    }
    if (pending.length && raw.role === 'user') {
      content = joinUser(pending, asBlocks(content));
      pending = [];
    } else if (pending.length) {
      // A system message before an assistant turn: attach it to the user turn before it.
      attachToPrevious(out, pending);
      pending = [];
    }
    if (content.length === 0) continue; // no blocks left, or "" (an empty text in string form)
    out.push(content === raw.content ? raw : { ...raw, content });
  }
  if (pending.length) attachToPrevious(out, pending);
  // Pass 2: merge neighbours with the same role (left by folding or by dropped empty messages).
  const merged: Msg[] = [];
  for (const m of out) {
    const prev = merged[merged.length - 1];
    if (prev && prev.role === m.role) {
      const a = asBlocks(prev.content);
      const b = asBlocks(m.content);
      merged[merged.length - 1] = { ...prev, content: m.role === 'user' ? joinUser(a, b) : [...a, ...b] };
    } else merged.push(m);
  }
  return merged as MessageParam[];
}

/**
 * thinking as Z.AI understands it: enabled/disabled. adaptive becomes a budget under max_tokens,
 * sized by the effort asked for (Z.AI drops output_config, so `--effort low` would go unheard).
 */
export function mapThinking(thinking: unknown, maxTokens: number, effort?: string): unknown {
  if (!isPlainObject(thinking)) return undefined;
  if (thinking.type === 'adaptive') {
    const budget = Math.min(maxTokens - 1, budgetForEffort(effort));
    return budget >= 1 ? { type: 'enabled', budget_tokens: budget } : { type: 'disabled' };
  }
  if (thinking.type === 'enabled' || thinking.type === 'disabled') return thinking;
  return undefined;
}

/**
 * Anthropic-defined client tools (bash, text editor, memory) as custom tools with their documented
 * inputs: they come by type alone, and GLM knows no such types, so it could not call them with the
 * right input (the client runs them, so a schema is all it takes). The same array when there is none.
 */
function withClientToolSchemas(tools: MessagesRequest['tools']): MessagesRequest['tools'] {
  if (!tools?.some((t) => asCustomTool(t))) return tools;
  return tools.map((t) => {
    const custom: Tool | null = asCustomTool(t);
    if (!custom) return t;
    const cache = (t as Tool).cache_control;
    if (cache !== undefined) custom.cache_control = cache;
    return custom;
  });
}

/** The system prompt without empty text (Z.AI refuses it there too); undefined when nothing is left. */
function cleanSystem(system: MessagesRequest['system']): MessagesRequest['system'] | undefined {
  if (typeof system === 'string') return system === '' ? undefined : system;
  if (!Array.isArray(system)) return system;
  const kept = system.filter((b) => !isEmptyText(b as Block));
  if (!kept.length) return undefined;
  return kept.length === system.length ? system : kept;
}

/**
 * The upstream body: a shallow copy of the client's with Z.AI's needs applied. Always streams. Its
 * strings are byte strings (anthropic/byte-strings.ts), the model id made one here.
 */
export function toZaiBody(req: MessagesRequest, model: string, ownUnsigned?: OwnUnsignedThinking): Record<string, unknown> {
  const body: Record<string, unknown> = { ...req, model: toByteString(model), messages: foldMessages(req.messages, ownUnsigned), stream: true };
  for (const f of DROPPED_FIELDS) delete body[f];
  const sys = cleanSystem(req.system);
  if (sys === undefined) delete body.system;
  else body.system = sys;
  // output_config is not for Z.AI: a schema it was to enforce is asked for in the system prompt.
  const schema = jsonSchemaOf(req);
  if (schema) {
    const hint = jsonOnlyInstruction(schema);
    body.system = typeof sys === 'string' && sys ? `${sys}\n\n${hint}` : Array.isArray(sys) && sys.length ? [...sys, { type: 'text', text: hint }] : hint;
  }
  const tools = withClientToolSchemas(req.tools);
  if (tools !== req.tools) body.tools = tools;
  if ('thinking' in body) {
    const t = mapThinking(body.thinking, req.max_tokens, effortOf(req));
    if (t === undefined) delete body.thinking;
    else body.thinking = t;
  }
  return body;
}

/** Headers for one Messages call: Z.AI key both ways and Claude Code's own headers. */
export function zaiHeaders(apiKey: string, ctx: Pick<SendContext, 'headers'>, opts: { stripBetas?: boolean } = {}): Record<string, string> {
  const h: Record<string, string> = {
    authorization: `Bearer ${apiKey}`,
    'x-api-key': apiKey,
    'content-type': 'application/json',
    accept: 'text/event-stream',
  };
  for (const name of FORWARDED_HEADERS) {
    if (opts.stripBetas && name === 'anthropic-beta') continue;
    const v = ctx.headers[name];
    if (v) h[name] = v;
  }
  if (!h['anthropic-version']) h['anthropic-version'] = '2023-06-01';
  return h;
}
