// Structured output (`output_config.format`, a JSON schema): Claude Code asks for it in side
// requests such as title generation, and parses the answer text as JSON. Upstreams that cannot
// enforce a schema are asked for the same JSON in words (protocol §1.5: "providers without
// structured output must still return plain JSON text").
import { blockDelta, type AnthropicEvent } from './events.ts';
import type { MessagesRequest } from './schema.ts';

/**
 * The schema the request wants its answer to match, or null. The structured-outputs beta's first
 * form (top-level `output_format`, still sent by older SDKs) counts too, so no provider loses it.
 */
export function jsonSchemaOf(req: Pick<MessagesRequest, 'output_config'>): Record<string, unknown> | null {
  const legacy = (req as { output_format?: unknown }).output_format;
  const format = (req.output_config?.format ?? legacy) as { type?: unknown; schema?: unknown } | undefined;
  if (format?.type !== 'json_schema') return null;
  const s = format.schema;
  return typeof s === 'object' && s !== null && !Array.isArray(s) ? (s as Record<string, unknown>) : null;
}

/** The system instruction standing in for an enforced schema. */
export function jsonOnlyInstruction(schema: Record<string, unknown>): string {
  return (
    'Answer with one JSON value that matches this JSON Schema, and nothing else: no prose before or ' +
    `after it, no code fence.\n${JSON.stringify(schema)}`
  );
}

// A whole answer in one Markdown code fence (```json … ```): what models asked for JSON in words
// often send. The fence alone is removed; any other text is left as it is.
const FENCED = /^\s*```[\w-]*[ \t]*\r?\n([\s\S]*?)\r?\n[ \t]*```\s*$/;

/** The text without a code fence around all of it (unchanged when it has none, or nothing inside). */
export function unfenceJson(text: string): string {
  const m = FENCED.exec(text);
  return m && m[1]!.trim() ? m[1]!.trim() : text;
}

export interface JsonTextUnfence {
  /** Events in, events out: a text block is held until its stop, then sent whole without its fence. */
  feed(events: readonly AnthropicEvent[]): AnthropicEvent[];
}

/**
 * For an upstream asked for JSON in words only: Claude Code parses a structured answer (a session
 * title) as JSON, and a fenced one fails. Text blocks are held whole (structured answers are short);
 * other blocks pass as they come.
 */
export function createJsonTextUnfence(): JsonTextUnfence {
  let held: { start: AnthropicEvent; index: number; text: string } | null = null;
  const release = (out: AnthropicEvent[], unfence: boolean): void => {
    if (!held) return;
    const { start, index, text } = held;
    held = null;
    out.push(start);
    const t = unfence ? unfenceJson(text) : text;
    if (t) out.push(blockDelta(index, { type: 'text_delta', text: t }));
  };
  return {
    feed(events) {
      const out: AnthropicEvent[] = [];
      for (const ev of events) {
        if (ev.type === 'content_block_start' && ev.content_block.type === 'text') {
          release(out, false);
          // The shell's text is sent as the delta, with the rest.
          held = { start: { ...ev, content_block: { ...ev.content_block, text: '' } }, index: ev.index, text: String(ev.content_block.text ?? '') };
        } else if (held && ev.type === 'content_block_delta' && ev.index === held.index && ev.delta.type === 'text_delta') {
          held.text += String((ev.delta as { text?: unknown }).text ?? '');
        } else if (held && ev.type === 'content_block_stop' && ev.index === held.index) {
          release(out, true);
          out.push(ev);
        } else {
          release(out, false); // anything else before the stop: the block is passed on as it came
          out.push(ev);
        }
      }
      return out;
    },
  };
}
