// Driving a Provider's send() in tests: everything it yields, or the UpstreamError it ends with.
import type { AnthropicEvent } from '../../src/anthropic/events.ts';
import type { MessagesRequest } from '../../src/anthropic/schema.ts';
import { type Provider, type SendContext, UpstreamError } from '../../src/providers/provider.ts';

export async function sendAll(provider: Provider, req: MessagesRequest, ctx: SendContext): Promise<AnthropicEvent[]> {
  const out: AnthropicEvent[] = [];
  for await (const e of provider.send(req, ctx)) out.push(e);
  return out;
}

/** The error a send must end with, and how many events came before it. */
export async function sendFailure(provider: Provider, req: MessagesRequest, ctx: SendContext): Promise<{ error: UpstreamError; yielded: number }> {
  let yielded = 0;
  try {
    for await (const _ of provider.send(req, ctx)) yielded++;
  } catch (e) {
    if (e instanceof UpstreamError) return { error: e, yielded };
    throw e;
  }
  throw new Error('expected the send to fail');
}

/** The text of all text deltas, in order. */
export function textOf(events: AnthropicEvent[]): string {
  return events.map((e) => (e.type === 'content_block_delta' && e.delta.type === 'text_delta' ? (e.delta as { text: string }).text : '')).join('');
}
