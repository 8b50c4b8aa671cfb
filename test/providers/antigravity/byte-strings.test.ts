// The request reaches the translator as byte strings (src/anthropic/byte-strings.ts) and its
// envelope is written out one byte per character. These tests hold that to the plain reading: for
// requests with text beyond ASCII in every field the translator copies, the bytes sent are exactly
// the UTF-8 of the envelope the same request would make as text.
import { describe, expect, test } from 'bun:test';
import { parseJsonAsByteStrings } from '../../../src/anthropic/byte-strings.ts';
import type { MessagesRequest } from '../../../src/anthropic/schema.ts';
import { createSignatureStore } from '../../../src/providers/antigravity/signatures.ts';
import { familyOf, toGoogleRequest } from '../../../src/providers/antigravity/to-google.ts';

type Json = Record<string, any>;

const CLAUDE_SIG = btoa('EoYCCpQBCBEQAhgCKkDOjlfrEVQrQ1/QSlU4i+gbZDPY56rmSK5ThHiuV8ABYKUyjcbMDrcpRy94bRZYRbY4');
const GEMINI_SIG = 'Ep0gCpogARFNMg/GvDds9Ycb2rTNeHYNZEOsj8KYyukLELb5RbE3ssWQ0s8RfGox4U9ge5pv/JqRLqB0aWo9cyOgaLwk';
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

/** Text as Claude Code's turns have it: dashes, arrows, accents, CJK, emoji, and "à" (last byte 0xA0). */
const T = (what: string): string => `${what} — « voilà » → 中文 🤖 Ünïcödé à`;

/** A conversation that puts non-ASCII text in every field the translator copies (modelled on fixtures/claude-code turns). */
function conversation(): Json {
  return {
    model: 'claude-opus-4-8',
    max_tokens: 2000,
    stream: true,
    system: [
      { type: 'text', text: 'x-anthropic-billing-header: cc_version=2.1.197; cc_entrypoint=cli' },
      { type: 'text', text: T('system'), cache_control: { type: 'ephemeral' } },
    ],
    tools: [
      {
        name: 'Édition',
        description: T('tool description'),
        input_schema: {
          type: 'object',
          properties: {
            chemin: { type: 'string', description: T('path') },
            'clé—ü': { type: 'string', enum: ['oui', 'non — jamais', '是'] },
            choix: { anyOf: [{ type: 'string', description: T('either') }, { type: 'null' }] },
            liste: { type: 'array', items: { type: 'string', description: T('item') } },
          },
          required: ['chemin'],
        },
      },
      { name: 'Bash', description: T('bash'), input_schema: { type: 'object', properties: { command: { type: 'string' } } } },
    ],
    tool_choice: { type: 'auto' },
    stop_sequences: ['—END—'],
    metadata: { user_id: '{"device_id":"d","session_id":"s-é"}' },
    messages: [
      {
        role: 'user',
        content: [
          { type: 'text', text: T('first user text') },
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } },
          { type: 'document', source: { type: 'text', media_type: 'text/plain', data: T('document') } },
          { type: 'search_result', source: 'https://example.com/ü', title: T('title'), content: [{ type: 'text', text: T('search result') }] },
        ],
      },
      {
        role: 'assistant',
        content: [
          { type: 'thinking', thinking: T('thinking'), signature: CLAUDE_SIG },
          { type: 'text', text: T('assistant text') },
          { type: 'tool_use', id: 'toolu_vrtx_01', name: 'Édition', input: { chemin: T('arg'), 'clé—ü': 'non — jamais', liste: [T('a'), T('b')] } },
          { type: 'tool_use', id: 'toolu_vrtx_02', name: 'Bash', input: JSON.stringify({ command: T('echo') }) },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_vrtx_01', content: T('tool result') },
          {
            type: 'tool_result',
            tool_use_id: 'toolu_vrtx_02',
            is_error: true,
            content: [
              { type: 'text', text: T('error part 1') },
              { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } },
              { type: 'text', text: T('error part 2') },
            ],
          },
          { type: 'tool_result', tool_use_id: 'toolu_gone', content: T('orphan result') },
          { type: 'text', text: T('and then') },
        ],
      },
      { role: 'system', content: T('mid-conversation system message') },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: T('searched') },
          { type: 'web_search_tool_result', tool_use_id: 'srvtoolu_1', content: [{ type: 'web_search_result', url: 'https://example.com/é', title: T('web title') }] },
          { type: 'tool_use', id: 'toolu_vrtx_03', name: 'Bash', input: { command: T('unanswered') } },
        ],
      },
      { role: 'user', content: T('last user text ends in à') },
    ],
  };
}

function withStructuredOutput(r: Json): Json {
  return {
    ...r,
    tools: undefined,
    tool_choice: undefined,
    output_config: { format: { type: 'json_schema', schema: { type: 'object', properties: { 'titre—é': { type: 'string', description: T('title') } } } } },
  };
}

function envelope(req: Json, model: string): Json {
  return toGoogleRequest(req as MessagesRequest, {
    model,
    family: familyOf(model),
    projectId: 'proj-1',
    sessionId: '-42',
    requestId: 'agent-1',
    signatures: createSignatureStore(),
    sessionKey: 'sess-1',
  });
}

/** The request as the server hands it on: its JSON's bytes parsed into byte strings. */
function asReceived(req: Json): Json {
  return parseJsonAsByteStrings(Buffer.from(JSON.stringify(req))) as Json;
}

const MODELS = ['claude-opus-4-6-thinking', 'claude-sonnet-4-6', 'gemini-3-pro-high', 'gemini-3.1-flash-image', 'gpt-oss-120b-medium'];

describe('the envelope of a byte-string request', () => {
  test.each(MODELS)('%s: its bytes are the UTF-8 of the envelope the text makes', (model) => {
    const text = conversation();
    const sent = Buffer.from(JSON.stringify(envelope(asReceived(text), model)), 'latin1');
    const plain = Buffer.from(JSON.stringify(envelope(text, model)), 'utf8');
    expect(sent.toString('utf8')).toBe(plain.toString('utf8'));
    expect(sent.equals(plain)).toBe(true);
    // The text really went through: nothing was dropped on both sides alike.
    expect(sent.toString('utf8')).toContain(T('last user text ends in à'));
    expect(sent.toString('utf8')).toContain(T('tool result'));
  });

  test.each(['claude-sonnet-4-6', 'gemini-3-pro-high'])('%s with structured output: same bytes', (model) => {
    const text = withStructuredOutput(conversation());
    const sent = Buffer.from(JSON.stringify(envelope(asReceived(text), model)), 'latin1');
    expect(sent.equals(Buffer.from(JSON.stringify(envelope(text, model)), 'utf8'))).toBe(true);
    expect(sent.toString('utf8')).toContain('titre—é');
  });

  test('every string of the envelope is 8-bit, so nothing is lost in the Latin-1 write', () => {
    for (const model of MODELS) expect(/[^\x00-\xff]/.test(JSON.stringify(envelope(asReceived(conversation()), model)))).toBe(false);
  });

  test('a phrase defused with a zero-width space gets its UTF-8 bytes', () => {
    const env = envelope(asReceived({ ...conversation(), system: 'Suivez la RFC 2119 — toujours.' }), 'claude-sonnet-4-6');
    const sent = Buffer.from(JSON.stringify(env), 'latin1').toString('utf8');
    expect(sent).toContain('Suivez la R\u200bFC 2119 — toujours.');
  });

  test('a model id the catalog does not know goes upstream as UTF-8', () => {
    const env = envelope(asReceived(conversation()), 'gemini-modèle-x');
    expect(Buffer.from(JSON.stringify(env), 'latin1').toString('utf8')).toContain('"model":"gemini-modèle-x"');
  });

  test('a renamed tool is remembered by its text name, for the answer', () => {
    const store = createSignatureStore();
    toGoogleRequest(asReceived(conversation()) as MessagesRequest, {
      model: 'claude-sonnet-4-6',
      family: 'claude',
      projectId: 'p',
      sessionId: '-1',
      requestId: 'r',
      signatures: store,
      sessionKey: 'sess-names',
    });
    const original = [...store.tools('sess-names')!.original.values()];
    expect(original).toEqual(['Édition']);
  });
});
