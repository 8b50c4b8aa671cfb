// Structured output (`output_config.format`, a JSON schema): Claude Code asks for it in side
// requests such as title generation, and parses the answer text as JSON. Upstreams that cannot
// enforce a schema are asked for the same JSON in words (protocol §1.5: "providers without
// structured output must still return plain JSON text").
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
