// A pool with Google and Z.AI accounts sends Z.AI only the thinking Z.AI issued. What it issued was
// known from memory only, so a restart dropped every GLM thinking block of a conversation that never
// left Z.AI; the hashes of its signatures are now stored and read back.
import { afterAll, afterEach, expect, test } from 'bun:test';
import type { AnthropicEvent } from '../../src/anthropic/events.ts';
import type { MessagesRequest } from '../../src/anthropic/schema.ts';
import { createRouting, providerDepsFor } from '../../src/gateway/index.ts';
import { createZaiProvider } from '../../src/providers/zai/index.ts';
import { upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';
import { startFakeZai } from '../fakes/zai.ts';
import { addZai, cleanupDbs, dispatchReq, drain, scriptedProvider, T0, tempDb, testConfig } from './helpers.ts';

const fake = startFakeZai({ keys: ['key-z-000000'] });
afterAll(() => fake.stop());
afterEach(cleanupDbs);

/** A server over the database at `path`: a Z.AI key behind the fake, and a Google account beside it. */
function server(path: string) {
  const db = openDatabase(path);
  const config = testConfig({}, { ZAI_BASE_URL: fake.url, ZAI_QUOTA_URL: fake.quotaUrl });
  const deps = providerDepsFor(db, () => T0);
  const zai = createZaiProvider(config, deps);
  // Google can tell its own signatures: the gateway then keeps Z.AI to the thinking Z.AI issued.
  const antigravity = { ...scriptedProvider('antigravity', ['claude-sonnet-4-6']), issuedThinking: () => false };
  const routing = createRouting({ db, config, providers: { zai, antigravity }, now: () => T0 });
  return {
    routing,
    async stop() {
      await routing.stop();
      deps.flush();
      db.close();
    },
  };
}

const thinkingOn = { type: 'enabled', budget_tokens: 2000 } as const;

function signatureOf(events: AnthropicEvent[]): string {
  for (const e of events) if (e.type === 'content_block_delta' && e.delta.type === 'signature_delta') return String(e.delta.signature);
  throw new Error('no signature streamed');
}

test("a conversation that stays on Z.AI keeps its thinking across a restart; another's thinking is still dropped", async () => {
  const { db, path } = tempDb();
  upsertAccount(db, { provider: 'antigravity', label: 'g', email: 'g@example.com', credentials: { kind: 'oauth', refreshToken: 'FAKE-refresh-g' } }, T0);
  addZai(db, 'z', T0 + 1);
  db.close();

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
