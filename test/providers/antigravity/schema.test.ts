import { describe, expect, test } from 'bun:test';
import { toGoogleSchema, toGoogleToolSchema } from '../../../src/providers/antigravity/schema.ts';
import fixture from '../../fixtures/antigravity/claude-code-tools.json';
import emptyEnumFixture from '../../fixtures/antigravity/mcp-empty-enum-tool.json';

type Json = Record<string, unknown>;
const tools = fixture.tools as Array<{ name: string; input_schema: unknown }>;
const schemaOf = (name: string) => tools.find((t) => t.name === name)!.input_schema;

// What Google's protobuf Schema knows (plus nothing else): any other key is a 400.
const ALLOWED = new Set(['type', 'description', 'properties', 'required', 'items', 'enum']);
const TYPES = new Set(['STRING', 'NUMBER', 'INTEGER', 'BOOLEAN', 'ARRAY', 'OBJECT']);

function assertGoogleSchema(s: unknown, path = '$'): void {
  expect(typeof s).toBe('object');
  const node = s as Json;
  for (const k of Object.keys(node)) if (!ALLOWED.has(k)) throw new Error(`${path}: unknown keyword ${k}`);
  expect(TYPES.has(node.type as string)).toBe(true);
  if (node.description !== undefined) expect(typeof node.description).toBe('string');
  if (node.enum !== undefined) {
    expect(node.type).toBe('STRING');
    for (const v of node.enum as unknown[]) expect(typeof v).toBe('string');
  }
  if (node.properties) {
    expect(node.type).toBe('OBJECT');
    for (const [k, v] of Object.entries(node.properties as Json)) assertGoogleSchema(v, `${path}.${k}`);
  }
  if (node.required) {
    const req = node.required as string[];
    expect(req.length).toBeGreaterThan(0);
    for (const r of req) expect(Object.keys((node.properties ?? {}) as Json)).toContain(r);
  }
  if (node.type === 'ARRAY') assertGoogleSchema(node.items, `${path}[]`);
}

describe('toGoogleToolSchema on Claude Code 2.1.197 tool schemas', () => {
  test.each(tools.map((t) => [t.name, t.input_schema] as const))('%s becomes a plain Google Schema', (_name, schema) => {
    const { parameters } = toGoogleToolSchema(schema);
    assertGoogleSchema(parameters);
    expect(parameters.type).toBe('OBJECT');
  });

  test('keywords Google rejects are gone, and property names that look like keywords survive', () => {
    const keys = new Set<string>();
    const walk = (n: Json): void => {
      for (const [k, v] of Object.entries(n)) {
        keys.add(k);
        if (k === 'properties') for (const sub of Object.values(v as Json)) walk(sub as Json);
        else if (k === 'items') walk(v as Json);
      }
    };
    for (const t of tools) walk(toGoogleToolSchema(t.input_schema).parameters);
    expect([...keys].sort()).toEqual(['description', 'enum', 'items', 'properties', 'required', 'type']);
    const workflow = toGoogleToolSchema(schemaOf('Workflow')).parameters.properties as Json;
    expect(Object.keys(workflow)).toEqual(['script', 'name', 'description', 'title', 'args', 'scriptPath', 'resumeFromRunId']);
  });

  test('Read: integer bounds kept as hints, zod 2^53-1 noise dropped, required kept', () => {
    const p = toGoogleToolSchema(schemaOf('Read')).parameters as Json;
    const props = p.properties as Record<string, Json>;
    expect(props.limit).toEqual({
      type: 'INTEGER',
      description: 'The number of lines to read. Only provide if the file is too large to read at once. (exclusiveMinimum: 0)',
    });
    expect(props.offset!.description).toEndWith('(minimum: 0)');
    expect(p.required).toEqual(['file_path']);
  });

  test('TaskUpdate.status: anyOf of enum and const becomes one string enum', () => {
    const props = toGoogleToolSchema(schemaOf('TaskUpdate')).parameters.properties as Record<string, Json>;
    expect(props.status).toEqual({
      type: 'STRING',
      description: 'New status for the task',
      enum: ['pending', 'in_progress', 'completed', 'deleted'],
    });
    // propertyNames + additionalProperties:{} -> a bare object, no placeholder nested inside.
    expect(props.metadata).toEqual({ type: 'OBJECT', description: 'Metadata keys to merge into the task. Set a key to null to delete it.' });
  });

  test('WebFetch format and WebSearch minLength become hints', () => {
    const fetch = toGoogleToolSchema(schemaOf('WebFetch')).parameters.properties as Record<string, Json>;
    expect(fetch.url!.description).toBe('The URL to fetch content from (format: uri)');
    const search = toGoogleToolSchema(schemaOf('WebSearch')).parameters.properties as Record<string, Json>;
    expect(search.query!.description).toBe('The search query to use (minLength: 2)');
    expect(search.allowed_domains!.items).toEqual({ type: 'STRING' });
  });

  test('an argument-less tool gets the placeholder property Claude VALIDATED mode needs', () => {
    const r = toGoogleToolSchema(schemaOf('CronList'));
    expect(r.placeholder).toBe(true);
    expect(r.parameters).toEqual({
      type: 'OBJECT',
      properties: { reason: { type: 'STRING', description: 'Reason for calling this tool' } },
      required: ['reason'],
    });
    expect(toGoogleToolSchema(schemaOf('Bash')).placeholder).toBe(false);
  });

  test('MCP-style schema: $ref inlined, type arrays and nullable, oneOf, allOf merged', () => {
    const p = toGoogleToolSchema(schemaOf('mcp__db.query')).parameters as Json;
    const props = p.properties as Record<string, Json>;
    expect(props.sql).toEqual({ type: 'STRING' });
    expect(props.limit).toEqual({ type: 'INTEGER', description: '(nullable)' });
    expect(p.required).toEqual(['sql']); // nullable `limit` is no longer required
    expect(props.filter).toEqual({
      type: 'OBJECT',
      properties: { column: { type: 'STRING' }, op: { type: 'STRING', enum: ['=', '<', '>'] } },
      required: ['column'],
    });
    expect(props.mode).toEqual({ type: 'STRING', description: '(Accepts: string | number)' });
    expect(props.opts).toEqual({
      type: 'OBJECT',
      properties: { a: { type: 'BOOLEAN' }, b: { type: 'STRING' } },
      required: ['b'],
    });
  });
});

describe('toGoogleToolSchema on enums with empty values', () => {
  // Gemini answers 400 "enum[3]: cannot be empty" for the whole request, so one such MCP tool broke every turn.
  test('an MCP tool whose enums hold "" declares no empty enum value, and says "" is allowed', () => {
    const { parameters } = toGoogleToolSchema(emptyEnumFixture.tool.input_schema);
    assertGoogleSchema(parameters);
    const props = parameters.properties as Record<string, Json>;
    expect(props.action).toEqual({ type: 'STRING', enum: ['read', 'write', 'clear'], description: '(or an empty string)' });
    // Nothing left but "": no enum at all (an empty list is a 400 too).
    expect(props.scope).toEqual({ type: 'STRING', description: '(or an empty string)' });
    const item = (props.cells!.items as Json).properties as Record<string, Json>;
    expect(item.format!.enum).toEqual(['number', 'text']);
    expect(JSON.stringify(parameters)).not.toContain('""');
  });
});

describe('toGoogleSchema edge cases', () => {
  test('parameters named __proto__ or constructor are kept as parameters, and required never names one that is not there', () => {
    // JSON.parse makes __proto__ an own key; copied into a plain {} it became the prototype and vanished,
    // and `in` found constructor on every object, so required named a parameter Google was never sent.
    const schema = JSON.parse(
      '{"type":"object","properties":{"__proto__":{"type":"string"},"a":{"type":"object","properties":{"__proto__":{"type":"number"}}}},"required":["__proto__","constructor","toString"]}',
    );
    const out = toGoogleSchema(schema) as any;
    expect(Object.keys(out.properties)).toEqual(['__proto__', 'a']);
    expect(Object.hasOwn(out.properties, '__proto__')).toBe(true);
    expect(out.properties.__proto__).toEqual({ type: 'STRING' });
    expect(JSON.parse(JSON.stringify(out)).properties.a.properties).toEqual(JSON.parse('{"__proto__":{"type":"NUMBER"}}'));
    expect(out.required).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).type).toBeUndefined();
  });
  test.each([
    ['missing schema', undefined, { type: 'OBJECT' }],
    ['array without items', { type: 'array' }, { type: 'ARRAY', items: { type: 'STRING' } }],
    ['tuple items take the first', { type: 'array', items: [{ type: 'number' }, { type: 'string' }] }, { type: 'ARRAY', items: { type: 'NUMBER' } }],
    ['numeric enum becomes a hint', { type: 'integer', enum: [1, 2] }, { type: 'INTEGER', description: '(Allowed: 1, 2)' }],
    ['null type', { type: 'null' }, { type: 'STRING' }],
    ['unresolvable $ref', { $ref: 'https://x/y.json', description: 'd' }, { type: 'OBJECT', description: 'd (See: https://x/y.json)' }],
    ['self-recursive $ref stops', { $defs: { N: { type: 'object', properties: { next: { $ref: '#/$defs/N' } } } }, $ref: '#/$defs/N' }, {
      type: 'OBJECT',
      properties: { next: { type: 'OBJECT', description: '(See: N)' } },
    }],
    ['boolean required ignored', { type: 'object', properties: { a: { type: 'string' } }, required: true }, { type: 'OBJECT', properties: { a: { type: 'STRING' } } }],
    ['required naming missing props filtered', { type: 'object', properties: { a: { type: 'string' } }, required: ['a', 'zz'] }, {
      type: 'OBJECT',
      properties: { a: { type: 'STRING' } },
      required: ['a'],
    }],
  ] as const)('%s', (_name, input, expected) => {
    expect(toGoogleSchema(input)).toEqual(expected as unknown as Json);
  });

  // Gemini enums are strings only: values of another type, with no `type` to say so, keep their own
  // type (so the call carries 5, not "5") and the allowed values move to the description.
  test.each([
    ['const integer', { const: 5 }, { type: 'INTEGER', description: '(Allowed: 5)' }],
    ['const number', { const: 0.5, description: 'ratio' }, { type: 'NUMBER', description: 'ratio (Allowed: 0.5)' }],
    ['integer enum', { enum: [1, 2] }, { type: 'INTEGER', description: '(Allowed: 1, 2)' }],
    ['mixed integer and fraction enum', { enum: [1, 2.5] }, { type: 'NUMBER', description: '(Allowed: 1, 2.5)' }],
    ['boolean enum', { enum: [true, false] }, { type: 'BOOLEAN', description: '(Allowed: true, false)' }],
    ['const true', { const: true }, { type: 'BOOLEAN', description: '(Allowed: true)' }],
    ['nullable integer enum', { enum: [1, 2, null] }, { type: 'INTEGER', description: '(Allowed: 1, 2)' }],
    ['anyOf of integer consts', { anyOf: [{ const: 1 }, { const: 2 }] }, { type: 'INTEGER', description: '(Allowed: 1, 2)' }],
    ['string enum stays a string enum', { enum: ['a', 'b'] }, { type: 'STRING', enum: ['a', 'b'] }],
    ['string const stays a string enum', { const: 'x' }, { type: 'STRING', enum: ['x'] }],
  ] as const)('untyped enum/const: %s', (_name, input, expected) => {
    expect(toGoogleSchema(input)).toEqual(expected as unknown as Json);
  });

  test('a non-object top-level tool schema is wrapped as one required property', () => {
    expect(toGoogleToolSchema({ type: 'string' }).parameters).toEqual({
      type: 'OBJECT',
      properties: { value: { type: 'STRING' } },
      required: ['value'],
    });
  });
});

// A recursive schema used to expand through anyOf/oneOf/allOf/items without the cycle guard of
// a direct $ref: two such fields doubled the tree at each of 32 levels and hung the event loop.
describe('recursive and exploding schemas stay small and fast', () => {
  // Generous for a shared CI machine: the fixed code takes well under a millisecond here.
  const FAST_MS = 500;

  function timed<T>(fn: () => T): T {
    const t0 = performance.now();
    const out = fn();
    expect(performance.now() - t0).toBeLessThan(FAST_MS);
    return out;
  }

  function countNodes(n: Json): number {
    let c = 1;
    for (const sub of Object.values((n.properties ?? {}) as Json)) c += countNodes(sub as Json);
    if (n.items) c += countNodes(n.items as Json);
    return c;
  }

  const nullableRef = (name: string, kw: 'anyOf' | 'oneOf') => ({ [kw]: [{ $ref: `#/$defs/${name}` }, { type: 'null' }] });
  const unionNode = (kw: 'anyOf' | 'oneOf') => ({
    $defs: {
      Node: {
        type: 'object',
        properties: { value: { type: 'string' }, left: nullableRef('Node', kw), right: nullableRef('Node', kw) },
        required: ['value'],
      },
    },
    $ref: '#/$defs/Node',
  });
  const cutNullable = { type: 'OBJECT', description: '(See: Node) (nullable)' };

  test.each(['anyOf', 'oneOf'] as const)('a tree whose children are %s [Node, null] stops at the cycle', (kw) => {
    const expected = { type: 'OBJECT', properties: { value: { type: 'STRING' }, left: cutNullable, right: cutNullable }, required: ['value'] };
    expect(timed(() => toGoogleSchema(unionNode(kw)))).toEqual(expected);
    // The tool path (root object holding the tree) goes through the same guard.
    const tool = { type: 'object', $defs: unionNode(kw).$defs, properties: { root: { $ref: '#/$defs/Node' } } };
    const { parameters } = timed(() => toGoogleToolSchema(tool));
    expect((parameters.properties as Json).root).toEqual(expected);
  });

  test('allOf of the schema itself stops at the cycle', () => {
    const schema = {
      $defs: { Node: { type: 'object', properties: { a: { allOf: [{ $ref: '#/$defs/Node' }] }, b: { allOf: [{ $ref: '#/$defs/Node' }] } } } },
      $ref: '#/$defs/Node',
    };
    const cut = { type: 'OBJECT', description: '(See: Node)' };
    expect(timed(() => toGoogleSchema(schema))).toEqual({ type: 'OBJECT', properties: { a: cut, b: cut } });
  });

  test('array items of the schema itself stop at the cycle', () => {
    const list = { type: 'array', items: { $ref: '#/$defs/Node' } };
    const schema = { $defs: { Node: { type: 'object', properties: { a: list, b: list, c: list } } }, $ref: '#/$defs/Node' };
    const cutList = { type: 'ARRAY', items: { type: 'OBJECT', description: '(See: Node)' } };
    expect(timed(() => toGoogleSchema(schema))).toEqual({ type: 'OBJECT', properties: { a: cutList, b: cutList, c: cutList } });
  });

  test('a mutually recursive pair expands each once per path', () => {
    const schema = {
      $defs: {
        A: { type: 'object', properties: { b1: nullableRef('B', 'anyOf'), b2: nullableRef('B', 'oneOf') } },
        B: { type: 'object', properties: { a1: nullableRef('A', 'anyOf'), a2: { type: 'array', items: { $ref: '#/$defs/A' } } } },
      },
      $ref: '#/$defs/A',
    };
    const b = {
      type: 'OBJECT',
      description: '(nullable)',
      properties: {
        a1: { type: 'OBJECT', description: '(See: A) (nullable)' },
        a2: { type: 'ARRAY', items: { type: 'OBJECT', description: '(See: A)' } },
      },
    };
    expect(timed(() => toGoogleSchema(schema))).toEqual({ type: 'OBJECT', properties: { b1: b, b2: b } });
  });

  test('a recursive response schema on gemini structured output is bounded the same way', () => {
    const out = timed(() => toGoogleSchema({ ...unionNode('anyOf'), description: 'tree' }));
    expect((out.properties as Json).left).toEqual(cutNullable);
  });

  // No cycle at all: D0 -> D1 twice -> D2 twice ... doubles at every level.
  test.each([
    ['direct $ref', (next: string) => ({ $ref: next })],
    ['anyOf', (next: string) => ({ anyOf: [{ $ref: next }, { type: 'null' }] })],
    ['allOf', (next: string) => ({ allOf: [{ $ref: next }] })],
    ['array items', (next: string) => ({ type: 'array', items: { $ref: next } })],
  ] as const)('exponential fan-out through %s is capped to a loose object', (_n, link) => {
    const defs: Json = { D40: { type: 'string' } };
    for (let i = 0; i < 40; i++) defs[`D${i}`] = { type: 'object', properties: { x: link(`#/$defs/D${i + 1}`), y: link(`#/$defs/D${i + 1}`) } };
    const schema = { $defs: defs, $ref: '#/$defs/D0' };
    const out = timed(() => toGoogleSchema(schema));
    assertGoogleSchema(out);
    expect(countNodes(out)).toBeLessThanOrEqual(5000);
    expect(JSON.stringify(out)).toContain('(Schema truncated: too large)');
    const { parameters } = timed(() => toGoogleToolSchema(schema));
    expect(countNodes(parameters)).toBeLessThanOrEqual(5000);
  });

  test('a large schema under the cap is left whole', () => {
    const props: Json = {};
    for (let i = 0; i < 300; i++) props[`p${i}`] = { type: 'object', properties: { a: { type: 'string' }, b: { type: 'integer' } } };
    const out = toGoogleSchema({ type: 'object', properties: props });
    expect(countNodes(out)).toBe(901);
    expect(JSON.stringify(out)).not.toContain('truncated');
  });
});
