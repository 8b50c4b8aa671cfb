import { afterEach, expect, test } from 'bun:test';
import { CLEARED_RESULT } from '../../src/anthropic/context-edits.ts';
import type { MessagesRequest } from '../../src/anthropic/schema.ts';
import { agentLoop } from '../fixtures/agent-loop.ts';
import { cleanupDbs, dispatchReq, drain, rig } from './helpers.ts';

afterEach(cleanupDbs);

type Block = { type: string; [k: string]: unknown };

test('the provider gets the history with the tool results context_management asked to clear; session routing sees the client request', async () => {
  const r = rig({ labels: ['a'] });
  const sent: MessagesRequest[] = [];
  const send = r.zai.send;
  r.zai.send = (req, ctx) => {
    sent.push(req);
    return send(req, ctx);
  };
  const body = agentLoop(5, 4000, { type: 'clear_tool_uses_20250919', trigger: { type: 'input_tokens', value: 2000 }, keep: { type: 'tool_uses', value: 1 } });
  await drain(await r.routing.gateway.dispatch(dispatchReq(body)));
  const results = sent[0]!.messages.flatMap((m) => (Array.isArray(m.content) ? (m.content as Block[]).filter((b) => b.type === 'tool_result').map((b) => b.content) : []));
  expect(results.slice(0, 4)).toEqual([CLEARED_RESULT, CLEARED_RESULT, CLEARED_RESULT, CLEARED_RESULT]);
  expect(String(results[4])).toStartWith('out-4 ');
  // The same conversation with nothing to clear has the same session key: the edit does not move it.
  const plain = agentLoop(5, 4000, { type: 'clear_thinking_20251015', keep: 'all' });
  await drain(await r.routing.gateway.dispatch(dispatchReq(plain)));
  expect(r.zai.calls[1]!.sessionKey).toBe(r.zai.calls[0]!.sessionKey);
});
