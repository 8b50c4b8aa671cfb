// A tool_use input as the object every upstream requires. History can carry other shapes: glm-5.1
// streams its arguments wrapped in an array, some clients keep the input as a JSON string, and a
// bare value is still what the model said. Each becomes an object that keeps what it held.

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Any tool input -> an object: the input itself, its parsed JSON, its one object, or `{value}`.
 * `parse` reads a JSON string: a request's inputs are byte strings (byte-strings.ts), which need
 * parseByteStringJson; an upstream's are text.
 */
export function toObjectInput(input: unknown, parse: (json: string) => unknown = JSON.parse): Record<string, unknown> {
  if (isPlainObject(input)) return input;
  if (input === undefined || input === null || input === '') return {};
  if (typeof input === 'string') {
    try {
      return toObjectInput(parse(input), parse);
    } catch {
      return { value: input };
    }
  }
  // glm-5.1 has been seen wrapping the arguments object in an array.
  if (Array.isArray(input) && input.length === 1 && isPlainObject(input[0])) return input[0];
  if (Array.isArray(input) && input.length === 0) return {};
  return { value: input };
}
