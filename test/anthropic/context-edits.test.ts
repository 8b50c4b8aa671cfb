import { describe, expect, test } from 'bun:test';
import { CLEARED_RESULT, clearOldToolUses } from '../../src/anthropic/context-edits.ts';
import type { MessagesRequest } from '../../src/anthropic/schema.ts';
import { agentLoop } from '../fixtures/agent-loop.ts';

type Block = { type: string; [k: string]: unknown };

function results(req: MessagesRequest): unknown[] {
  return req.messages.flatMap((m) => (Array.isArray(m.content) ? (m.content as Block[]).filter((b) => b.type === 'tool_result').map((b) => b.content) : []));
}

describe('context_management clear_tool_uses_20250919', () => {
  test('past the trigger, all but the latest `keep` tool results are cleared; the client request is left as it was', () => {
    const req = agentLoop(6, 4000, { type: 'clear_tool_uses_20250919', trigger: { type: 'input_tokens', value: 3000 }, keep: { type: 'tool_uses', value: 2 } });
    const copy = structuredClone(req);
    const { req: out, applied } = clearOldToolUses(req);
    const r = results(out);
    expect(r.slice(0, 4)).toEqual([CLEARED_RESULT, CLEARED_RESULT, CLEARED_RESULT, CLEARED_RESULT]);
    expect(String(r[4])).toStartWith('out-4 ');
    expect(String(r[5])).toStartWith('out-5 ');
    expect(applied).toMatchObject({ type: 'clear_tool_uses_20250919', cleared_tool_uses: 4 });
    expect(applied!.cleared_input_tokens).toBeGreaterThan(3000);
    expect(req).toEqual(copy);
  });

  test('under the trigger nothing changes (the default trigger is 100 000 input tokens)', () => {
    const small = agentLoop(6, 400, { type: 'clear_tool_uses_20250919' });
    expect(clearOldToolUses(small)).toEqual({ req: small, applied: null });
    // Past 100 000 tokens the defaults act, keeping the 3 latest.
    const big = agentLoop(6, 100_000, { type: 'clear_tool_uses_20250919' });
    expect(results(clearOldToolUses(big).req).filter((c) => c === CLEARED_RESULT)).toHaveLength(3);
  });

  test('a tool_uses trigger counts calls; excluded tools keep their results; clear_tool_inputs empties the calls too', () => {
    const req = agentLoop(5, 10, { type: 'clear_tool_uses_20250919', trigger: { type: 'tool_uses', value: 4 }, keep: { type: 'tool_uses', value: 1 }, exclude_tools: ['Read'], clear_tool_inputs: true }, (i) => (i === 1 ? 'Read' : 'Bash'));
    const out = clearOldToolUses(req).req;
    expect(results(out).map((c) => (c === CLEARED_RESULT ? 'cleared' : 'kept'))).toEqual(['cleared', 'kept', 'cleared', 'cleared', 'kept']);
    const inputs = out.messages.flatMap((m) => (m.role === 'assistant' ? (m.content as Block[]).filter((b) => b.type === 'tool_use').map((b) => b.input) : []));
    expect(inputs).toEqual([{}, { command: 'step 1' }, {}, {}, { command: 'step 4' }]);
    // Four calls do not pass a trigger of four.
    expect(clearOldToolUses(agentLoop(4, 10, { type: 'clear_tool_uses_20250919', trigger: { type: 'tool_uses', value: 4 } })).applied).toBeNull();
  });

  test('when clearing would free less than clear_at_least, nothing is cleared', () => {
    const edit = { type: 'clear_tool_uses_20250919', trigger: { type: 'input_tokens', value: 100 }, keep: { type: 'tool_uses', value: 2 }, clear_at_least: { type: 'input_tokens', value: 50_000 } };
    const req = agentLoop(6, 400, edit);
    expect(clearOldToolUses(req)).toEqual({ req, applied: null });
  });

  test('no edit, or only clear_thinking (what Claude Code sends), leaves the request untouched', () => {
    const req = agentLoop(6, 100_000, { type: 'clear_thinking_20251015', keep: 'all' });
    expect(clearOldToolUses(req).req).toBe(req);
    const { context_management: _cm, ...bare } = req as MessagesRequest & { context_management?: unknown };
    expect(clearOldToolUses(bare as MessagesRequest).req).toBe(bare);
  });
});
