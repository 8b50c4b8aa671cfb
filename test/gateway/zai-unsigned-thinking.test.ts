// Whether real Z.AI signs its thinking is not known (protocol Part 3: "expect a signature to be
// missing"); Claude Code then echoes `signature: ""`. Such thinking was dropped before Z.AI, so GLM
// lost its reasoning between turns in every conversation. What Z.AI streamed unsigned is now kept
// for Z.AI (which does not check signatures), across a restart too; another model's unsigned
// thinking is still dropped.
import { afterAll, afterEach, expect, test } from 'bun:test';
import type { AnthropicEvent } from '../../src/anthropic/events.ts';
import type { MessagesRequest } from '../../src/anthropic/schema.ts';
import { startFakeZai } from '../fakes/zai.ts';
import { cleanupDbs, dispatchReq, drain, mixedPoolDb, zaiBesideGoogle } from './helpers.ts';

const fake = startFakeZai({ keys: ['key-z-000000'], unsignedThinking: true });
afterAll(() => fake.stop());
afterEach(cleanupDbs);

const server = (path: string) => zaiBesideGoogle(path, fake);

const thinkingOn = { type: 'enabled', budget_tokens: 2000 } as const;

/** The thinking block as Claude Code keeps it: the deltas' text, and "" for the signature none came for. */
function thinkingOf(events: AnthropicEvent[]): { type: 'thinking'; thinking: string; signature: string } {
  let thinking = '';
  let signature = '';
  for (const e of events) {
    if (e.type !== 'content_block_delta') continue;
    if (e.delta.type === 'thinking_delta') thinking += e.delta.thinking;
    if (e.delta.type === 'signature_delta') signature += e.delta.signature;
  }
  return { type: 'thinking', thinking, signature };
}

function sentThinking(): unknown[] {
  const sent = fake.messages().at(-1)!.body as { messages: Array<{ role: string; content: unknown }> };
  return sent.messages.flatMap((m) => (Array.isArray(m.content) ? (m.content as Array<{ type: string }>).filter((b) => b.type === 'thinking') : []));
}

test("GLM's unsigned thinking goes back to Z.AI on the next turn and after a restart; another model's unsigned thinking does not", async () => {
  const path = mixedPoolDb();

  const turn1 = { model: 'glm-4.7', max_tokens: 4000, thinking: thinkingOn, stream: true, messages: [{ role: 'user', content: 'hi' }] } as MessagesRequest;
  const first = server(path);
  const own = thinkingOf(await drain(await first.routing.gateway.dispatch(dispatchReq(turn1))));
  expect(own.thinking).not.toBe('');
  expect(own.signature).toBe('');
  // GPT-OSS on Google reasons unsigned too: its thinking is not GLM's.
  const other = { type: 'thinking', thinking: 'GPT-OSS reasoning, unsigned', signature: '' };
  const turn2 = {
    ...turn1,
    messages: [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: [other, { type: 'text', text: 'earlier' }] },
      { role: 'user', content: 'go on' },
      { role: 'assistant', content: [own, { type: 'text', text: 'hello' }] },
      { role: 'user', content: 'and now?' },
    ],
  } as MessagesRequest;
  try {
    await drain(await first.routing.gateway.dispatch(dispatchReq(turn2)));
    expect(sentThinking()).toEqual([own]);
  } finally {
    await first.stop();
  }

  const second = server(path);
  try {
    await drain(await second.routing.gateway.dispatch(dispatchReq(turn2)));
    expect(sentThinking()).toEqual([own]);
  } finally {
    await second.stop();
  }
});
