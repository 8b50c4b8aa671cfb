// Context editing's tool-result clearing (`context_management.edits[].type` clear_tool_uses_20250919,
// beta context-management-2025-06-27): once the prompt passes a trigger, the API replaces the
// results of the oldest tool calls with a placeholder, so a long agent loop stays inside the
// context window. No upstream here does it, and a client that relies on it would otherwise run
// into "prompt is too long"; so it is done here, the same for every provider.
// (clear_thinking_20251015 with keep "all", what Claude Code sends, clears nothing; its other forms
// and compact_20260112 are not applied.)
import type { MessageParam, MessagesRequest } from './schema.ts';
import { estimateInputTokens } from './tokens.ts';

const CLEAR_TOOL_USES = 'clear_tool_uses_20250919';
/** The API's defaults: act past 100 000 input tokens, keep the 3 latest tool uses. */
const DEFAULT_TRIGGER_TOKENS = 100_000;
const DEFAULT_KEEP = 3;
export const CLEARED_RESULT = '[This tool result was cleared to save context.]';

type Block = { type: string; [k: string]: unknown };

export interface ToolUsesCleared {
  type: typeof CLEAR_TOOL_USES;
  cleared_tool_uses: number;
  cleared_input_tokens: number;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `{type, value}` with the type asked for: its value, else undefined. */
function valueOf(v: unknown, type: string): number | undefined {
  return isObj(v) && v.type === type && typeof v.value === 'number' && v.value >= 0 ? v.value : undefined;
}

function clearEditOf(req: MessagesRequest): Record<string, unknown> | null {
  const cm = (req as { context_management?: unknown }).context_management;
  if (!isObj(cm) || !Array.isArray(cm.edits)) return null;
  return (cm.edits as unknown[]).find((e): e is Record<string, unknown> => isObj(e) && e.type === CLEAR_TOOL_USES) ?? null;
}

/**
 * The request with clear_tool_uses applied, and what was cleared; the same request (and null) when
 * it asks for no such edit or its trigger is not reached. The client's objects are never changed.
 */
export function clearOldToolUses(req: MessagesRequest): { req: MessagesRequest; applied: ToolUsesCleared | null } {
  const edit = clearEditOf(req);
  if (!edit) return { req, applied: null };

  // Every tool call of the history, oldest first.
  const calls: Array<{ id: string; name: string }> = [];
  for (const m of req.messages) {
    if (m.role !== 'assistant' || !Array.isArray(m.content)) continue;
    for (const b of m.content as Block[]) if (b?.type === 'tool_use') calls.push({ id: String(b.id), name: String(b.name) });
  }
  const triggerUses = valueOf(edit.trigger, 'tool_uses');
  const triggerTokens = triggerUses === undefined ? (valueOf(edit.trigger, 'input_tokens') ?? DEFAULT_TRIGGER_TOKENS) : undefined;
  if (triggerUses !== undefined && calls.length <= triggerUses) return { req, applied: null };
  const before = estimateInputTokens(req);
  if (triggerTokens !== undefined && before <= triggerTokens) return { req, applied: null };

  const keep = valueOf(edit.keep, 'tool_uses') ?? DEFAULT_KEEP;
  const exclude = new Set(Array.isArray(edit.exclude_tools) ? edit.exclude_tools.map(String) : []);
  const clearInputs = edit.clear_tool_inputs === true;
  const oldest = calls.slice(0, Math.max(0, calls.length - keep)).filter((c) => !exclude.has(c.name));
  if (oldest.length === 0) return { req, applied: null };

  const ids = new Set(oldest.map((c) => c.id));
  let cleared = 0;
  const messages: MessageParam[] = req.messages.map((m) => {
    if (!Array.isArray(m.content)) return m;
    let changed = false;
    const content = (m.content as Block[]).map((b) => {
      if (m.role === 'user' && b?.type === 'tool_result' && ids.has(String(b.tool_use_id)) && b.content !== CLEARED_RESULT) {
        changed = true;
        cleared++;
        return { ...b, content: CLEARED_RESULT };
      }
      if (clearInputs && m.role === 'assistant' && b?.type === 'tool_use' && ids.has(String(b.id)) && !(isObj(b.input) && Object.keys(b.input).length === 0)) {
        changed = true;
        return { ...b, input: {} };
      }
      return b;
    });
    return changed ? ({ ...m, content } as MessageParam) : m;
  });
  if (cleared === 0) return { req, applied: null };
  const out = { ...req, messages };
  const saved = Math.max(0, before - estimateInputTokens(out));
  // Too little to be worth a new prompt-cache prefix: the client asked to leave it then.
  const atLeast = valueOf(edit.clear_at_least, 'input_tokens');
  if (atLeast !== undefined && saved < atLeast) return { req, applied: null };
  return { req: out, applied: { type: CLEAR_TOOL_USES, cleared_tool_uses: cleared, cleared_input_tokens: saved } };
}
