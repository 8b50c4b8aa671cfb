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
/**
 * Nodes one conversion may emit. Shared `$defs` referenced twice per level double the tree at every
 * level without any cycle, so the depth cap alone allows 2^32 nodes; the largest Claude Code tool
 * schema is well under 100 nodes. Past the cap a node degrades to a loose OBJECT.
 */
const MAX_NODES = 2000;
const TRUNCATED = { type: 'OBJECT', description: '(Schema truncated: too large)' };

interface Ctx {
  defs: Json;
  /** Nodes still allowed (counts down). */
  nodes: number;
}

export interface ToolSchemaResult {
  /** The cleaned schema for `functionDeclarations[].parameters`. */
  parameters: Json;
  /** True when the placeholder property was added (its value is stripped from calls on the way back). */
  placeholder: boolean;
}

/** Cleans one tool's `input_schema` into `parameters`. Never throws; junk becomes an empty object. */
export function toGoogleToolSchema(inputSchema: unknown): ToolSchemaResult {
  const root = isObject(inputSchema) ? inputSchema : {};
  const parameters = cleanNode(root, contextOf(root), 0, new Set());
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
  return cleanNode(root, contextOf(root), 0, new Set());
}

function contextOf(root: Json): Ctx {
  return { defs: { ...asObject(root.definitions), ...asObject(root.$defs) }, nodes: MAX_NODES };
}

/** `refs` is the resolution stack: the `$defs` names being expanded above this node. */
function cleanNode(input: unknown, ctx: Ctx, depth: number, refs: ReadonlySet<string>): Json {
  // `true`/`{}` mean "anything"; Google has no such type, OBJECT is what the seed proxies send.
  if (!isObject(input) || depth > MAX_DEPTH) return { type: 'OBJECT' };
  if (--ctx.nodes < 0) return { ...TRUNCATED };
  let node: Json = input;
  const hints: string[] = [];

  if (typeof node.$ref === 'string') {
    const r = resolveRef(node, ctx.defs, refs);
    if (r.cut !== undefined) return { type: 'OBJECT', description: joinHint(descriptionOf(node), `See: ${r.cut}`) };
    const resolved = cleanNode(r.schema, ctx, depth + 1, withNames(refs, r.names));
    const desc = descriptionOf(node);
    return desc ? { ...resolved, description: desc } : resolved;
  }

  // Refs inlined by allOf/anyOf/oneOf below join the stack for this node's subtree, so a cycle
  // through a union stops like a direct `$ref` cycle does.
  // (Copied only when one is: this runs for every node of every tool on every turn.)
  let stack = refs;
  // Options whose `$ref` was cut stand in as a bare object; the name they pointed at becomes a hint.
  const cutNames = new Map<Json, string>();
  const inline = (o: unknown): Json | null => {
    if (!isObject(o)) return null;
    const r = resolveRef(o, ctx.defs, refs);
    if (r.cut !== undefined) {
      const stub: Json = { type: 'object' };
      cutNames.set(stub, r.cut);
      return stub;
    }
    stack = withNames(stack, r.names);
    return r.schema;
  };

  // allOf: merge every branch into one object (the parent's own keys win).
  if (Array.isArray(node.allOf)) {
    const merged: Json = { ...node };
    delete merged.allOf;
    const props: Json = { ...asObject(node.properties) };
    const required = new Set<string>(stringArray(node.required));
    for (const branch of node.allOf) {
      const b = inline(branch);
      if (!b) continue;
      const cut = cutNames.get(b);
      if (cut !== undefined) hints.push(`See: ${cut}`);
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
    const options = union.map(inline).filter((o): o is Json => o !== null);
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
      const cut = cutNames.get(best);
      if (cut !== undefined) hints.push(`See: ${cut}`);
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
  if (typeof type !== 'string') {
    type = node.properties ? 'object' : node.items ? 'array' : Array.isArray(node.enum) ? typeOfValues(node.enum) : 'const' in node ? typeOfValues([node.const]) : 'object';
  }
  const gtype = TYPE_NAMES[(type as string).toLowerCase()] ?? 'STRING';

  const out: Json = { type: gtype };
  let description = typeof node.description === 'string' ? node.description : '';

  let enumValues: unknown[] | null = Array.isArray(node.enum) ? node.enum : 'const' in node ? [node.const] : null;
  if (enumValues) {
    enumValues = enumValues.filter((v) => v !== null);
    if (gtype === 'STRING' && enumValues.length > 0) {
      const values = enumValues.map((v) => (typeof v === 'string' ? v : JSON.stringify(v)));
      // Gemini refuses the whole request over an empty value ("enum[3]: cannot be empty"), and over
      // an empty list: "" is said in the description instead.
      const nonEmpty = values.filter((v) => v !== '');
      if (nonEmpty.length > 0) out.enum = nonEmpty;
      if (nonEmpty.length < values.length) hints.push('or an empty string');
    } else if (enumValues.length > 0) hints.push(`Allowed: ${enumValues.map((v) => JSON.stringify(v)).join(', ')}`);
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
      const cleaned = cleanNode(sub, ctx, depth + 1, stack);
      // A parameter named __proto__ (an own key from JSON.parse) would set the prototype instead.
      if (name === '__proto__') Object.defineProperty(cleanedProps, name, { value: cleaned, enumerable: true, writable: true, configurable: true });
      else cleanedProps[name] = cleaned;
      if (isNullableSchema(sub)) nullableProps.add(name);
    }
    if (Object.keys(cleanedProps).length > 0) {
      out.properties = cleanedProps;
      const required = stringArray(node.required).filter((r) => Object.hasOwn(cleanedProps, r) && !nullableProps.has(r));
      if (required.length > 0) out.required = [...new Set(required)];
    }
  } else if (gtype === 'ARRAY') {
    const items = Array.isArray(node.items) ? node.items[0] : node.items;
    out.items = items === undefined ? { type: 'STRING' } : cleanNode(items, ctx, depth + 1, stack);
  }
  return out;
}

/**
 * The JSON type of an untyped enum's values. Google's enums are strings only, so numbers and
 * booleans keep their own type (the call then carries 5, not "5") and their values become a hint;
 * strings, and a mix of kinds, stay a STRING enum.
 */
function typeOfValues(values: unknown[]): string {
  const vs = values.filter((v) => v !== null);
  if (vs.length === 0) return 'string';
  if (vs.every((v) => typeof v === 'boolean')) return 'boolean';
  if (vs.every((v) => Number.isInteger(v))) return 'integer';
  if (vs.every((v) => typeof v === 'number' && Number.isFinite(v))) return 'number';
  return 'string';
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

interface Resolved {
  /** The target schema (the ref's own description wins), or the input when it is no `$ref`. */
  schema: Json;
  /** `$defs` names followed to get there (a ref to a ref follows the chain). */
  names: string[];
  /** Set instead when the ref cannot be followed: already on the stack, or not a local `$defs` name. */
  cut?: string;
}

/** Every `$ref` goes through here so none can be expanded inside its own expansion. */
function resolveRef(o: Json, defs: Json, stack: ReadonlySet<string>): Resolved {
  const names: string[] = [];
  let node = o;
  while (typeof node.$ref === 'string') {
    const name = refName(node.$ref);
    const target = name !== null && !stack.has(name) && !names.includes(name) ? defs[name] : undefined;
    if (!isObject(target)) return { schema: o, names, cut: name ?? node.$ref };
    names.push(name!);
    node = target;
  }
  const desc = descriptionOf(o);
  return { schema: desc && node !== o ? { ...node, description: desc } : node, names };
}

function withNames(refs: ReadonlySet<string>, names: string[]): ReadonlySet<string> {
  return names.length === 0 ? refs : new Set([...refs, ...names]);
}

function descriptionOf(o: Json): string {
  return typeof o.description === 'string' ? o.description : '';
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
