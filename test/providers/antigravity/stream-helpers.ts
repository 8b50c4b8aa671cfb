// Shared by the Antigravity translation tests: read an SSE fixture into the parsed `data:` objects
// the transport hands to fromGoogleStream, run it, and accumulate the result with the SDK.
import { MessageStream } from '@anthropic-ai/sdk/lib/MessageStream';
import type { AnthropicEvent } from '../../../src/anthropic/events.ts';
import { fromGoogleStream, type FromGoogleOptions } from '../../../src/providers/antigravity/from-google.ts';

const FIXTURES = new URL('../../fixtures/antigravity/', import.meta.url);

/** `data:` lines of an SSE fixture as JSON; comment (`:`) and blank lines skipped, as the transport does. */
export async function readSseFixture(name: string): Promise<unknown[]> {
  const text = await Bun.file(new URL(name, FIXTURES)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('data:'))
    .map((l) => JSON.parse(l.slice(5).trim()));
}

export async function* iterate<T>(items: T[]): AsyncGenerator<T> {
  for (const i of items) yield i;
}

export async function translate(chunks: unknown[], opts: FromGoogleOptions): Promise<AnthropicEvent[]> {
  const events: AnthropicEvent[] = [];
  for await (const e of fromGoogleStream(iterate(chunks), opts)) events.push(e);
  return events;
}

/** The final message @anthropic-ai/sdk's MessageStream accumulates from these events. */
export async function accumulate(events: AnthropicEvent[]) {
  const body = events.map((e) => `${JSON.stringify(e)}\n`).join('');
  const stream = MessageStream.fromReadableStream(new Response(body).body!);
  return stream.finalMessage();
}
