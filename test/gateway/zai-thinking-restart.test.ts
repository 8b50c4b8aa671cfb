// A pool with Google and Z.AI accounts sends Z.AI only the thinking Z.AI issued. What it issued was
// known from memory only, so a restart dropped every GLM thinking block of a conversation that never
// left Z.AI; the hashes of its signatures are now stored and read back.
import { afterAll, afterEach, expect, test } from 'bun:test';
import type { AnthropicEvent } from '../../src/anthropic/events.ts';
import type { MessagesRequest } from '../../src/anthropic/schema.ts';
import { startFakeZai } from '../fakes/zai.ts';
import { cleanupDbs, dispatchReq, drain, mixedPoolDb, zaiBesideGoogle } from './helpers.ts';

const fake = startFakeZai({ keys: ['key-z-000000'] });
afterAll(() => fake.stop());
afterEach(cleanupDbs);

const server = (path: string) => zaiBesideGoogle(path, fake);

const thinkingOn = { type: 'enabled', budget_tokens: 2000 } as const;

function signatureOf(events: AnthropicEvent[]): string {
  for (const e of events) if (e.type === 'content_block_delta' && e.delta.type === 'signature_delta') return String(e.delta.signature);
  throw new Error('no signature streamed');
}

test("a conversation that stays on Z.AI keeps its thinking across a restart; another's thinking is still dropped", async () => {
  const path = mixedPoolDb();

  const first = server(path);
  const turn1 = { model: 'glm-4.7', max_tokens: 4000, thinking: thinkingOn, stream: true, messages: [{ role: 'user', content: 'hi' }] } as MessagesRequest;
  const signature = signatureOf(await drain(await first.routing.gateway.dispatch(dispatchReq(turn1))));
  await first.stop();

  const second = server(path);
  try {
    const unknown = ['nobody', 'issued', 'this', 'FAKE'].join('-');
    const turn2 = {
      ...turn1,
      messages: [
        { role: 'user', content: 'hi' },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'Let me think about this request step by step.', signature },
            { type: 'thinking', thinking: 'not mine', signature: unknown },
            { type: 'text', text: 'hello' },
          ],
        },
        { role: 'user', content: 'and now?' },
      ],
    } as MessagesRequest;
    await drain(await second.routing.gateway.dispatch(dispatchReq(turn2)));
    const sent = fake.messages().at(-1)!.body as { messages: Array<{ role: string; content: unknown }> };
    const thinking = (sent.messages[1]!.content as Array<{ type: string; signature?: string }>).filter((b) => b.type === 'thinking');
    expect(thinking.map((b) => b.signature)).toEqual([signature]);
  } finally {
    await second.stop();
  }
});
