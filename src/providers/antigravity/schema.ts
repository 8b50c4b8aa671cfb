// JSON Schema (2020-12, as Claude Code and MCP servers send it) -> the protobuf `Schema` that
// Cloud Code validates tool declarations against (protocol §7.13). Google rejects any keyword it
// does not know ("Unknown name \"exclusiveMinimum\" … Cannot find field"), unions, `$ref` and
// type arrays, so this produces a plain tree of `type/description/properties/required/items/enum`
// with uppercase types. Constraints that would be lost are kept as hints in the description so the
// model still sees them. Only schemas go through here, never replayed arguments (§7.13, last note).

type Json = Record<string, unknown>;

/** Property added to argument-less tools: Claude's VALIDATED mode wants ≥ 1 property (§7.11). */
export const PLACEHOLDER_PROPERTY = 'reason';
const PLACEHOLDER_SCHEMA = { type: 'STRING', description: 'Reason for calling this tool' };

const TYPE_NAMES: Record<string, string> = {
  string: 'STRING',
  number: 'NUMBER',
  integer: 'INTEGER',
  boolean: 'BOOLEAN',
  array: 'ARRAY',
  object: 'OBJECT',
  null: 'STRING',
};

// Constraints Google's Schema cannot take (or that break the Claude translation); shown as hints.
const HINT_KEYS = [
  'minLength',
  'maxLength',
  'pattern',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minItems',
  'maxItems',
  'format',
] as const;

const MAX_DEPTH = 32;

export interface ToolSchemaResult {
  /** The cleaned schema for `functionDeclarations[].parameters`. */
  parameters: Json;
  /** True when the placeholder property was added (its value is stripped from calls on the way back). */
  placeholder: boolean;
}

/** Cleans one tool's `input_schema` into `parameters`. Never throws; junk becomes an empty object. */
export function toGoogleToolSchema(inputSchema: unknown): ToolSchemaResult {
  const root = isObject(inputSchema) ? inputSchema : {};
  const defs = { ...asObject(root.definitions), ...asObject(root.$defs) };
  const parameters = cleanNode(root, defs, 0, new Set());
  if (parameters.type !== 'OBJECT') {
    // A top-level non-object cannot be a function's arguments; wrap it.
    return {
      parameters: { type: 'OBJECT', properties: { value: parameters }, required: ['value'] },
      placeholder: false,
    };
  }
  const props = parameters.properties as Json | undefined;
  if (!props || Object.keys(props).length === 0) {
    parameters.properties = { [PLACEHOLDER_PROPERTY]: { ...PLACEHOLDER_SCHEMA } };
    parameters.required = [PLACEHOLDER_PROPERTY];
    return { parameters, placeholder: true };
  }
  return { parameters, placeholder: false };
}

/** Cleans any JSON Schema into Google's Schema shape (no placeholder); used for response schemas too. */
export function toGoogleSchema(schema: unknown): Json {
  const root = isObject(schema) ? schema : {};
  const defs = { ...asObject(root.definitions), ...asObject(root.$defs) };
  return cleanNode(root, defs, 0, new Set());
}

function cleanNode(input: unknown, defs: Json, depth: number, refs: Set<string>): Json {
  // `true`/`{}` mean "anything"; Google has no such type, OBJECT is what the seed proxies send.
  if (!isObject(input) || depth > MAX_DEPTH) return { type: 'OBJECT' };
  let node: Json = input;
  const hints: string[] = [];

  if (typeof node.$ref === 'string') {
    const name = refName(node.$ref);
    const target = name !== null && !refs.has(name) ? defs[name] : undefined;
    if (isObject(target)) {
      const seen = new Set(refs).add(name!);
      const resolved = cleanNode(target, defs, depth + 1, seen);
      const desc = typeof node.description === 'string' ? node.description : undefined;
      return desc ? { ...resolved, description: desc } : resolved;
    }
    const desc = typeof node.description === 'string' ? node.description : '';
    return { type: 'OBJECT', description: joinHint(desc, `See: ${name ?? node.$ref}`) };
  }

  // allOf: merge every branch into one object (the parent's own keys win).
  if (Array.isArray(node.allOf)) {
    const merged: Json = { ...node };
    delete merged.allOf;
    const props: Json = { ...asObject(node.properties) };
    const required = new Set<string>(stringArray(node.required));
    for (const branch of node.allOf) {
      const b = derefShallow(branch, defs);
      if (!b) continue;
      Object.assign(props, asObject(b.properties));
      for (const r of stringArray(b.required)) required.add(r);
      for (const [k, v] of Object.entries(b)) if (!(k in merged) && k !== 'properties' && k !== 'required') merged[k] = v;
    }
    if (Object.keys(props).length > 0) merged.properties = props;
    if (required.size > 0) merged.required = [...required];
    node = merged;
  }

  let nullable = false;
  const union = Array.isArray(node.anyOf) ? node.anyOf : Array.isArray(node.oneOf) ? node.oneOf : null;
  if (union) {
    const options = union.map((o) => derefShallow(o, defs)).filter((o): o is Json => o !== null);
    const nonNull = options.filter((o) => o.type !== 'null');
    nullable = nonNull.length < options.length;
    const merged: Json = { ...node };
    delete merged.anyOf;
    delete merged.oneOf;
    const enumValues = unionEnum(nonNull);
    if (enumValues) {
      // e.g. Claude Code's TaskUpdate.status: anyOf [enum [...], const "deleted"] -> one enum.
      merged.type ??= nonNull[0]!.type;
      merged.enum = enumValues;
    } else if (nonNull.length > 0) {
      const best = nonNull.reduce((a, b) => (score(b) > score(a) ? b : a));
      for (const [k, v] of Object.entries(best)) if (!(k in merged)) merged[k] = v;
      const types = [...new Set(nonNull.map(typeLabel))];
      if (types.length > 1) hints.push(`Accepts: ${types.join(' | ')}`);
    }
    node = merged;
  }

  let type = node.type;
  if (Array.isArray(type)) {
    const names = type.filter((t): t is string => typeof t === 'string');
    const nonNull = names.filter((t) => t !== 'null');
    if (nonNull.length < names.length) nullable = true;
    if (nonNull.length > 1) hints.push(`Accepts: ${nonNull.join(' | ')}`);
    type = nonNull[0] ?? 'string';
  }
  if (typeof type !== 'string') type = node.properties ? 'object' : node.items ? 'array' : node.enum || 'const' in node ? 'string' : 'object';
  const gtype = TYPE_NAMES[(type as string).toLowerCase()] ?? 'STRING';

  const out: Json = { type: gtype };
  let description = typeof node.description === 'string' ? node.description : '';

  let enumValues: unknown[] | null = Array.isArray(node.enum) ? node.enum : 'const' in node ? [node.const] : null;
  if (enumValues) {
    enumValues = enumValues.filter((v) => v !== null);
    if (gtype === 'STRING' && enumValues.length > 0) out.enum = enumValues.map((v) => (typeof v === 'string' ? v : JSON.stringify(v)));
    else if (enumValues.length > 0) hints.push(`Allowed: ${enumValues.map((v) => JSON.stringify(v)).join(', ')}`);
  }

  for (const key of HINT_KEYS) {
    const v = node[key];
    if (v === undefined || v === null || typeof v === 'object') continue;
    // 2^53-1 bounds are zod's "any integer" noise, not a constraint worth reading.
    if (typeof v === 'number' && Math.abs(v) >= Number.MAX_SAFE_INTEGER) continue;
    hints.push(`${key}: ${v}`);
  }
  if (nullable) hints.push('nullable');
  for (const h of hints) description = joinHint(description, h);
  if (description) out.description = description;

  if (gtype === 'OBJECT') {
    const props = asObject(node.properties);
    const cleanedProps: Json = {};
    const nullableProps = new Set<string>();
    for (const [name, sub] of Object.entries(props)) {
      cleanedProps[name] = cleanNode(sub, defs, depth + 1, refs);
      if (isNullableSchema(sub)) nullableProps.add(name);
    }
    if (Object.keys(cleanedProps).length > 0) {
      out.properties = cleanedProps;
      const required = stringArray(node.required).filter((r) => r in cleanedProps && !nullableProps.has(r));
      if (required.length > 0) out.required = [...new Set(required)];
    }
  } else if (gtype === 'ARRAY') {
    const items = Array.isArray(node.items) ? node.items[0] : node.items;
    out.items = items === undefined ? { type: 'STRING' } : cleanNode(derefShallow(items, defs) ?? items, defs, depth + 1, refs);
  }
  return out;
}

function isNullableSchema(s: unknown): boolean {
  if (!isObject(s)) return false;
  if (Array.isArray(s.type)) return s.type.includes('null');
  const union = Array.isArray(s.anyOf) ? s.anyOf : Array.isArray(s.oneOf) ? s.oneOf : null;
  return union !== null && union.some((o) => isObject(o) && o.type === 'null');
}

/** Union of enum/const values when every option is a plain enum of one scalar type. */
function unionEnum(options: Json[]): unknown[] | null {
  if (options.length < 2) return null;
  const values: unknown[] = [];
  let type: unknown;
  for (const o of options) {
    if (o.type !== undefined && type !== undefined && o.type !== type) return null;
    type ??= o.type;
    if (Array.isArray(o.enum)) values.push(...o.enum);
    else if ('const' in o) values.push(o.const);
    else return null;
  }
  return [...new Set(values)];
}

function score(o: Json): number {
  if (o.type === 'object' || o.properties) return 3;
  if (o.type === 'array' || o.items) return 2;
  if (o.type !== undefined && o.type !== 'null') return 1;
  return 0;
}

function typeLabel(o: Json): string {
  if (typeof o.type === 'string') return o.type;
  if (o.properties) return 'object';
  if (o.items) return 'array';
  return 'any';
}

function derefShallow(o: unknown, defs: Json): Json | null {
  if (!isObject(o)) return null;
  if (typeof o.$ref === 'string') {
    const name = refName(o.$ref);
    const target = name !== null ? defs[name] : undefined;
    if (isObject(target)) return { ...target, ...(typeof o.description === 'string' ? { description: o.description } : {}) };
  }
  return o;
}

const LOCAL_REF = /^#\/(?:\$defs|definitions)\/(.+)$/;

function refName(ref: string): string | null {
  const m = LOCAL_REF.exec(ref);
  return m ? m[1]! : null;
}

function joinHint(description: string, hint: string): string {
  return description ? `${description} (${hint})` : `(${hint})`;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function asObject(v: unknown): Json {
  return isObject(v) ? v : {};
}

function stringArray(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}
