import { describe, expect, test } from 'bun:test';
import { toByteString } from '../../../src/anthropic/byte-strings.ts';
import type { MessageParam, MessagesRequest } from '../../../src/anthropic/schema.ts';
import { foldMessages, mapThinking, toObjectInput, toZaiBody, zaiHeaders } from '../../../src/providers/zai/request.ts';
import firstTurn from '../../fixtures/zai/first-turn.json';
import toolTurn from '../../fixtures/zai/tool-turn.json';
import anthropicTools from '../../fixtures/anthropic-defined-tools.json';

const text = (t: string) => ({ type: 'text', text: t });
const rem = (t: string) => text(`<system-reminder>\n${t}\n</system-reminder>`);
const m = (role: string, content: unknown) => ({ role, content }) as MessageParam;
const img = { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } };

describe('foldMessages', () => {
  test("GLM's own unsigned thinking is known in the request's byte strings too, so a non-ASCII one is kept", () => {
    // Z.AI streams text decoded as UTF-8; the server reads the client's body as byte strings.
    const text = 'Réflexion — 思考 step by step';
    const own = (t: string) => t === text;
    const input = [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: [{ type: 'thinking', thinking: toByteString(text), signature: '' }, { type: 'text', text: 'ok' }] },
      { role: 'user', content: 'go on' },
    ] as MessageParam[];
    const out = foldMessages(input, own);
    expect((out[1]!.content as Array<{ type: string }>).map((b) => b.type)).toEqual(['thinking', 'text']);
  });

  const cases: Array<[string, MessageParam[], unknown[]]> = [
    ['leaves a plain conversation alone', [m('user', 'hi'), m('assistant', [text('yo')]), m('user', 'ok')], [m('user', 'hi'), m('assistant', [text('yo')]), m('user', 'ok')]],
    ['folds a trailing system message into the previous user turn', [m('user', [text('run')]), m('system', 'agents')], [m('user', [text('run'), rem('agents')])]],
    ['folds a leading system message into the next user turn, before its text', [m('system', 'ctx'), m('user', 'hi')], [m('user', [rem('ctx'), text('hi')])]],
    [
      'attaches a system message before an assistant turn to the user turn before it',
      [m('user', 'run'), m('system', 'agents'), m('assistant', [text('ok')]), m('user', 'next')],
      [m('user', [text('run'), rem('agents')]), m('assistant', [text('ok')]), m('user', 'next')],
    ],
    [
      'keeps tool_result blocks first when a reminder joins their user turn',
      [m('assistant', [{ type: 'tool_use', id: 't1', name: 'Bash', input: {} }]), m('system', 's'), m('user', [{ type: 'tool_result', tool_use_id: 't1', content: 'x' }])],
      [m('assistant', [{ type: 'tool_use', id: 't1', name: 'Bash', input: {} }]), m('user', [{ type: 'tool_result', tool_use_id: 't1', content: 'x' }, rem('s')])],
    ],
    ['makes a user turn when only assistants surround the system message', [m('assistant', [text('a')]), m('system', 's')], [m('assistant', [text('a')]), m('user', [rem('s')])]],
    ['reads system messages given as text blocks', [m('user', 'q'), m('system', [text('a'), text('b')])], [m('user', [text('q'), rem('a\nb')])]],
    ['drops blank system messages', [m('user', 'q'), m('system', '  ')], [m('user', 'q')]],
    ['drops empty text blocks', [m('user', [text(''), text('q')])], [m('user', [text('q')])]],
    ['drops a message whose content is an empty string, like an empty text block', [m('user', 'q'), m('assistant', '')], [m('user', 'q')]],

    [
      'drops empty text blocks inside a tool result, and a content left empty',
      [m('user', [{ type: 'tool_result', tool_use_id: 't1', content: [text(''), text('out')] }, { type: 'tool_result', tool_use_id: 't2', content: [text('')] }])],
      [m('user', [{ type: 'tool_result', tool_use_id: 't1', content: [text('out')] }, { type: 'tool_result', tool_use_id: 't2' }])],
    ],

    [
      'drops thinking blocks without a signature, keeps signed ones',
      [m('assistant', [{ type: 'thinking', thinking: 'a', signature: '' }, { type: 'thinking', thinking: 'b', signature: 's' }, text('t')])],
      [m('assistant', [{ type: 'thinking', thinking: 'b', signature: 's' }, text('t')])],
    ],
    [
      'removes a message left empty and merges the neighbours it separated',
      [m('user', 'a'), m('assistant', [text('')]), m('user', 'b')],
      [m('user', [text('a'), text('b')])],
    ],
    [
      "drops a picture from an assistant turn (a Gemini image model drew it) but keeps the user's own",
      [
        m('user', [img, text('draw a cat')]),
        m('assistant', [text('here'), img]),
        m('user', 'again'),
        m('assistant', [img]),
        m('user', 'thanks'),
      ],
      [m('user', [img, text('draw a cat')]), m('assistant', [text('here')]), m('user', [text('again'), text('thanks')])],
    ],
    ['forces tool_use input to an object', [m('assistant', [{ type: 'tool_use', id: 't', name: 'X', input: '{"a":1}' }])], [m('assistant', [{ type: 'tool_use', id: 't', name: 'X', input: { a: 1 } }])]],
  ];
  for (const [name, input, expected] of cases) {
    test(name, () => {
      expect(foldMessages(input)).toEqual(expected as MessageParam[]);
    });
  }

  test('never mutates the client request', () => {
    const input = [m('user', [text('run')]), m('system', 'agents')];
    const copy = structuredClone(input);
    foldMessages(input);
    expect(input).toEqual(copy);
  });

  test('the captured second turn comes out alternating, without system roles', () => {
    const out = foldMessages(toolTurn.body.messages as MessageParam[]);
    expect(out.map((x) => x.role)).toEqual(['user', 'assistant', 'user']);
    const assistant = out[1]!.content as Array<Record<string, unknown>>;
    expect(assistant.map((b) => b.type)).toEqual(['thinking', 'text', 'tool_use']);
    expect(assistant[2]!.input).toEqual({ command: 'echo ZAI-FIXTURE-1', description: 'Print a marker string' });
  });
});

describe('toObjectInput', () => {
  const cases: Array<[unknown, unknown]> = [
    [{ a: 1 }, { a: 1 }],
    [[{ a: 1 }], { a: 1 }],
    [[], {}],
    [null, {}],
    [undefined, {}],
    ['', {}],
    ['{"a":2}', { a: 2 }],
    ['[{"a":3}]', { a: 3 }],
    ['not json', { value: 'not json' }],
    [[1, 2], { value: [1, 2] }],
    [7, { value: 7 }],
  ];
  for (const [input, out] of cases) {
    test(`${JSON.stringify(input) ?? 'undefined'} -> ${JSON.stringify(out)}`, () => {
      expect(toObjectInput(input)).toEqual(out as Record<string, unknown>);
    });
  }
});

describe('tool input kept as a JSON string, in the byte strings of a request', () => {
  test('its \\u escapes beyond ASCII become the bytes of their text, as the rest of the body', () => {
    // The body goes up written as Latin-1: a parsed "é" or "—" would be one wrong byte, not its UTF-8.
    const input = toByteString('{"path":"caf\\u00e9 \\u2014 déjà"}');
    const body = toZaiBody(
      {
        model: 'glm-4.6',
        max_tokens: 100,
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'call_1', name: 'Read', input }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_1', content: 'ok' }] },
        ],
      } as unknown as MessagesRequest,
      'glm-4.6',
    );
    const call = (body.messages as Array<{ content: Array<{ input?: unknown }> }>)[1]!.content[0]!;
    expect(call.input).toEqual({ path: toByteString('café — déjà') });
  });
});

describe('mapThinking', () => {
  // Claude Code's --effort: adaptive thinking sized by the effort, which Z.AI would not hear otherwise.
  const efforts: Array<[string | undefined, number, number]> = [
    ['low', 32000, 8192],
    ['medium', 32000, 16384],
    ['high', 32000, 31999],
    ['max', 64000, 31999],
    ['xhigh', 32000, 31999],
    [undefined, 32000, 31999],
    ['some-new-level', 32000, 31999],
    ['low', 4096, 4095],
  ];
  for (const [effort, max, budget] of efforts) {
    test(`adaptive with effort ${effort} and max_tokens ${max} -> a budget of ${budget}`, () => {
      expect(mapThinking({ type: 'adaptive' }, max, effort)).toEqual({ type: 'enabled', budget_tokens: budget });
    });
  }
  const cases: Array<[unknown, number, unknown]> = [
    [{ type: 'adaptive' }, 32000, { type: 'enabled', budget_tokens: 31999 }],
    [{ type: 'adaptive' }, 64000, { type: 'enabled', budget_tokens: 31999 }],
    [{ type: 'adaptive' }, 4096, { type: 'enabled', budget_tokens: 4095 }],
    [{ type: 'adaptive' }, 1, { type: 'disabled' }],
    [{ type: 'enabled', budget_tokens: 8000 }, 32000, { type: 'enabled', budget_tokens: 8000 }],
    [{ type: 'disabled' }, 32000, { type: 'disabled' }],
    [{ type: 'between_tools' }, 32000, undefined],
  ];
  for (const [input, max, out] of cases) {
    test(`${JSON.stringify(input)} with max_tokens ${max} -> ${JSON.stringify(out)}`, () => {
      expect(mapThinking(input, max)).toEqual(out);
    });
  }
});

describe('toZaiBody', () => {
  const body = toZaiBody(firstTurn.body as unknown as MessagesRequest, 'glm-4.6-upstream');

  test('uses the upstream model id and always streams', () => {
    expect(body.model).toBe('glm-4.6-upstream');
    expect(body.stream).toBe(true);
    expect(toZaiBody({ ...(firstTurn.body as unknown as MessagesRequest), stream: false }, 'x').stream).toBe(true);
  });

  test("Claude Code's --effort low reaches Z.AI as a smaller thinking budget, though output_config itself is dropped", () => {
    const low = toZaiBody({ ...(firstTurn.body as unknown as MessagesRequest), thinking: { type: 'adaptive' }, output_config: { effort: 'low' } }, 'x');
    expect(low).not.toHaveProperty('output_config');
    expect(low.thinking).toEqual({ type: 'enabled', budget_tokens: 8192 });
  });

  test('drops the fields Z.AI rejects or ignores and maps adaptive thinking', () => {
    expect(body).not.toHaveProperty('context_management');
    expect(body).not.toHaveProperty('output_config');
    expect(body.thinking).toEqual({ type: 'enabled', budget_tokens: 31999 });
    // Our own extension for Google's image models goes no further.
    const drawing = toZaiBody({ ...(firstTurn.body as unknown as MessagesRequest), image_config: { aspect_ratio: '16:9' } }, 'x');
    expect(drawing).not.toHaveProperty('image_config');
  });

  test('keeps everything else, including cache_control and metadata', () => {
    expect(body.system).toEqual(firstTurn.body.system);
    expect(body.tools).toEqual(firstTurn.body.tools);
    expect(body.metadata).toEqual(firstTurn.body.metadata);
    expect(JSON.stringify(body.messages)).toContain('"cache_control":{"type":"ephemeral"}');
  });

  // Z.AI refuses empty text (3.4.5), and the top-level system prompt is text too.
  test('drops empty text from the system prompt, and a system prompt left empty', () => {
    const base = firstTurn.body as unknown as MessagesRequest;
    expect(toZaiBody({ ...base, system: '' }, 'x')).not.toHaveProperty('system');
    expect(toZaiBody({ ...base, system: [{ type: 'text', text: '' }] } as MessagesRequest, 'x')).not.toHaveProperty('system');
    const kept = toZaiBody({ ...base, system: [{ type: 'text', text: '' }, { type: 'text', text: 'be brief' }] } as MessagesRequest, 'x');
    expect(kept.system).toEqual([{ type: 'text', text: 'be brief' }]);
  });

  test('leaves no role:"system" message', () => {
    expect((body.messages as MessageParam[]).map((x) => x.role)).toEqual(['user']);
  });

  test("a JSON schema it cannot enforce (title generation) is asked for in the system prompt, whatever the system's form", () => {
    const schema = { type: 'object', properties: { title: { type: 'string' } }, required: ['title'], additionalProperties: false };
    const base = { model: 'glm-4.6', max_tokens: 100, messages: [{ role: 'user', content: 'title?' }], output_config: { effort: 'high', format: { type: 'json_schema', schema } } } as unknown as MessagesRequest;
    const hint = `Answer with one JSON value that matches this JSON Schema, and nothing else: no prose before or after it, no code fence.\n${JSON.stringify(schema)}`;
    expect(toZaiBody(base, 'glm-4.6').system).toBe(hint);
    expect(toZaiBody({ ...base, system: 'Be brief.' }, 'glm-4.6').system).toBe(`Be brief.\n\n${hint}`);
    expect(toZaiBody({ ...base, system: [{ type: 'text', text: 'Be brief.' }] }, 'glm-4.6').system).toEqual([{ type: 'text', text: 'Be brief.' }, { type: 'text', text: hint }]);
    expect(toZaiBody(base, 'glm-4.6')).not.toHaveProperty('output_config');
    // Without a schema the system prompt is the client's, untouched.
    expect(body.system).toEqual(firstTurn.body.system);
  });

  // The structured-outputs beta's first form (top-level output_format), still sent by older SDKs.
  test('a schema in the older top-level output_format is asked for in the system prompt too, and the field dropped', () => {
    const schema = { type: 'object', properties: { ok: { type: 'boolean' } } };
    const req = { model: 'glm-4.6', max_tokens: 100, messages: [{ role: 'user', content: 'ok?' }], output_format: { type: 'json_schema', schema } } as unknown as MessagesRequest;
    const b = toZaiBody(req, 'glm-4.6');
    expect(b).not.toHaveProperty('output_format');
    expect(b.system).toContain(JSON.stringify(schema));
  });

  test('Anthropic-defined client tools go to Z.AI as custom tools with their documented inputs; server tools and custom tools as they are', () => {
    const req = { model: 'glm-4.6', max_tokens: 100, messages: [{ role: 'user', content: 'fix the bug' }], tools: [...firstTurn.body.tools.slice(0, 1), ...anthropicTools.tools] } as unknown as MessagesRequest;
    const tools = toZaiBody(req, 'glm-4.6').tools as Array<Record<string, any>>;
    expect(tools[0]).toEqual(firstTurn.body.tools[0]!);
    expect(tools.slice(1, 5).map((t) => [t.name, t.type, Object.keys(t.input_schema.properties).includes('command')])).toEqual([
      ['bash', undefined, true],
      ['str_replace_based_edit_tool', undefined, true],
      ['memory', undefined, true],
      ['str_replace_editor', undefined, true],
    ]);
    expect(tools[2]!.input_schema.properties.command.enum).toEqual(['view', 'create', 'str_replace', 'insert']);
    expect(tools[5]).toEqual(anthropicTools.tools[4]!);
    // The client's request is left as it was.
    expect((req.tools as Array<Record<string, unknown>>)[1]).toEqual({ type: 'bash_20250124', name: 'bash' });
  });

  test('removes a between_tools thinking setting', () => {
    const b = toZaiBody({ ...(firstTurn.body as unknown as MessagesRequest), thinking: { type: 'between_tools' } }, 'glm-4.6');
    expect(b).not.toHaveProperty('thinking');
  });
});

describe('zaiHeaders', () => {
  const h = zaiHeaders('zk-secret', { headers: firstTurn.headers });

  test('authenticates both ways Z.AI accepts and asks for SSE', () => {
    expect(h.authorization).toBe('Bearer zk-secret');
    expect(h['x-api-key']).toBe('zk-secret');
    expect(h.accept).toBe('text/event-stream');
    expect(h['content-type']).toBe('application/json');
  });

  test("forwards Claude Code's own headers, as Claude Code pointed at Z.AI sends them, and invents none", () => {
    expect(h['user-agent']).toBe('claude-cli/2.1.197 (external, sdk-cli)');
    expect(h['x-app']).toBe('cli');
    expect(h['anthropic-version']).toBe('2023-06-01');
    expect(h['anthropic-beta']).toBe(firstTurn.headers['anthropic-beta']);
    expect(h['x-claude-code-session-id']).toBe(firstTurn.headers['x-claude-code-session-id']);
    expect(Object.keys(h).sort()).toEqual(
      ['accept', 'anthropic-beta', 'anthropic-version', 'authorization', 'content-type', 'user-agent', 'x-api-key', 'x-app', 'x-claude-code-session-id'].sort(),
    );
  });

  // Protocol 3.4.2/3.7.3: betas were reported to draw 1302s; ZAI_STRIP_BETAS is the switch to flip then.
  test('leaves anthropic-beta out when betas are stripped, and keeps the rest', () => {
    const stripped = zaiHeaders('zk-secret', { headers: firstTurn.headers }, { stripBetas: true });
    expect(stripped).not.toHaveProperty('anthropic-beta');
    expect(stripped['user-agent']).toBe('claude-cli/2.1.197 (external, sdk-cli)');
  });
});
