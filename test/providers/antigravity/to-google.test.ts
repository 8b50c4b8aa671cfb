import { describe, expect, test } from 'bun:test';
import { toByteString } from '../../../src/anthropic/byte-strings.ts';
import type { MessagesRequest } from '../../../src/anthropic/schema.ts';
import { UpstreamError, type ModelFamily } from '../../../src/providers/provider.ts';
import { createSignatureStore, type SignatureStore } from '../../../src/providers/antigravity/signatures.ts';
import {
  familyOf,
  INTERLEAVED_HINT,
  sameJson,
  sanitizeToolName,
  SKIP_SIGNATURE,
  toGoogleRequest,
} from '../../../src/providers/antigravity/to-google.ts';
import tools from '../../fixtures/antigravity/claude-code-tools.json';
import anthropicTools from '../../fixtures/anthropic-defined-tools.json';
import docs from '../../fixtures/custom-content-documents.json';
import urlImages from '../../fixtures/url-images.json';
import withTools from '../../fixtures/antigravity/structured-output-with-tools.json';
import { accumulate, translate as translateStream } from './stream-helpers.ts';

type Json = Record<string, any>;

// A Claude R-form signature (base64 of an "E…" Anthropic signature), shaped like the capture's.
export const CLAUDE_SIG = btoa('EoYCCpQBCBEQAhgCKkDOjlfrEVQrQ1/QSlU4i+gbZDPY56rmSK5ThHiuV8ABYKUyjcbMDrcpRy94bRZYRbY4');
// A Gemini signature (single base64 of binary), shaped like stream_turn1_initial's.
export const GEMINI_SIG = 'Ep0gCpogARFNMg/GvDds9Ycb2rTNeHYNZEOsj8KYyukLELb5RbE3ssWQ0s8RfGox4U9ge5pv/JqRLqB0aWo9cyOgaLwk';

function opts(model: string, signatures: SignatureStore = createSignatureStore(), family: ModelFamily = familyOf(model)) {
  return { model, family, projectId: 'proj-1', sessionId: '-42', requestId: 'agent-req-1', signatures, sessionKey: 'sess-1' };
}

function req(partial: Json): MessagesRequest {
  return { model: 'client-model', max_tokens: 16000, messages: [{ role: 'user', content: 'hi' }], ...partial } as MessagesRequest;
}

function translate(r: Json, model = 'claude-opus-4-6-thinking', store?: SignatureStore): Json {
  return toGoogleRequest(req(r), opts(model, store)) as Json;
}

describe('familyOf', () => {
  test.each([
    ['claude-opus-4-6-thinking', 'claude'],
    ['claude-sonnet-4-6', 'claude'],
    ['gemini-3-pro-high', 'gemini'],
    ['gemini-3.8-flash-low', 'gemini'],
    ['gpt-oss-120b-medium', 'gpt'],
    ['something-else', 'other'],
  ])('%s -> %s', (model, family) => expect(familyOf(model)).toBe(family as ModelFamily));
});

describe('envelope (§5.1)', () => {
  test('carries project, model, ids, userAgent and requestType, and the session id inside request', () => {
    const env = translate({});
    expect(env.project).toBe('proj-1');
    expect(env.model).toBe('claude-opus-4-6-thinking');
    expect(env.userAgent).toBe('antigravity');
    expect(env.requestType).toBe('agent');
    expect(env.requestId).toBe('agent-req-1');
    expect(env.request.sessionId).toBe('-42');
    expect(env.request.contents).toEqual([{ role: 'user', parts: [{ text: 'hi' }] }]);
  });

  test('unknown request fields are ignored, not forwarded', () => {
    const env = translate({ context_management: { edits: [] }, metadata: { user_id: 'u' }, service_tier: 'auto', stream: true } as Json);
    expect(Object.keys(env.request).sort()).toEqual(['contents', 'generationConfig', 'sessionId']);
    expect(JSON.stringify(env)).not.toContain('context_management');
  });
});

describe('system instruction (§5.3)', () => {
  test('string system becomes one part with role user', () => {
    expect(translate({ system: 'Be brief.' }, 'gemini-3-pro-high').request.systemInstruction).toEqual({ role: 'user', parts: [{ text: 'Be brief.' }] });
  });

  test('system blocks: billing header and blank blocks dropped, cache_control gone, role:system messages folded in', () => {
    const env = translate(
      {
        system: [
          { type: 'text', text: 'x-anthropic-billing-header: cc_version=2.1.197.4c0; cc_entrypoint=sdk-cli;' },
          { type: 'text', text: 'You are a Claude agent.', cache_control: { type: 'ephemeral' } },
          { type: 'text', text: '  ' },
        ],
        messages: [
          { role: 'user', content: 'hi' },
          { role: 'system', content: 'Available agent types: …' },
          { role: 'system', content: [{ type: 'text', text: 'More rules.' }] },
        ],
      },
      'gemini-3-pro-high',
    );
    expect(env.request.systemInstruction.parts).toEqual([{ text: 'You are a Claude agent.' }, { text: 'Available agent types: …' }, { text: 'More rules.' }]);
    expect(env.request.contents).toEqual([{ role: 'user', parts: [{ text: 'hi' }] }]);
    expect(JSON.stringify(env)).not.toContain('cache_control');
  });

  test('phrases known to trigger a false 429 are defused with a zero-width space, in the system instruction only', () => {
    const env = translate({ system: 'Follow RFC 2119 and the system-conventions and System_Directive rules.', messages: [{ role: 'user', content: 'RFC 2119?' }] });
    // Request strings are byte strings (src/anthropic/byte-strings.ts): so is the space put in.
    const zwsp = Buffer.from('\u200b').toString('latin1');
    expect(env.request.systemInstruction.parts[0].text).toBe(`Follow R${zwsp}FC 2119 and the s${zwsp}ystem-conventions and S${zwsp}ystem_Directive rules.`);
    expect(env.request.contents[0].parts[0].text).toBe('RFC 2119?');
    expect(translate({ system: 'Plain text.' }).request.systemInstruction.parts[0].text).toBe('Plain text.');
  });

  test('Claude thinking with tools appends the interleaved-thinking hint to the last system part', () => {
    const env = translate({ system: 'Rules.', thinking: { type: 'adaptive' }, tools: [tools.tools[0]!] as any });
    expect(env.request.systemInstruction.parts).toEqual([{ text: `Rules.\n\n${INTERLEAVED_HINT}` }]);
    expect(translate({ system: 'Rules.', thinking: { type: 'adaptive' } }).request.systemInstruction.parts).toEqual([{ text: 'Rules.' }]);
  });
});

describe('content blocks (§7.1–§7.4)', () => {
  test('text, images and documents; empty and blank text dropped; empty messages get a placeholder', () => {
    const env = translate(
      {
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: '' },
              { type: 'text', text: 'look', cache_control: { type: 'ephemeral' } },
              { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBOR' } },
              { type: 'image', source: { type: 'url', url: 'https://x/y.jpg' } },
              { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBER' } },
              { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'plain doc' } },
            ],
          },
          { role: 'assistant', content: [{ type: 'text', text: ' \n' }] },
          { role: 'user', content: 'next' },
        ],
      },
      'gemini-3-pro-high',
    );
    expect(env.request.contents).toEqual([
      {
        role: 'user',
        parts: [
          { text: 'look' },
          { inlineData: { mimeType: 'image/png', data: 'iVBOR' } },
          { fileData: { mimeType: 'image/jpeg', fileUri: 'https://x/y.jpg' } },
          { inlineData: { mimeType: 'application/pdf', data: 'JVBER' } },
          { text: 'plain doc' },
        ],
      },
      { role: 'model', parts: [{ text: '.' }] },
      { role: 'user', parts: [{ text: 'next' }] },
    ]);
  });

  test('tool loop: calls with ids, results reordered to call order, nested content, images after responses, a failed tool sent like the official client (error text in output)', () => {
    const env = translate(
      {
        messages: [
          { role: 'user', content: 'go' },
          {
            role: 'assistant',
            content: [
              { type: 'tool_use', id: 'toolu_vrtx_A', name: 'Bash', input: { command: 'echo one' } },
              { type: 'text', text: 'Running.' },
              { type: 'tool_use', id: 'toolu_vrtx_B', name: 'Read', input: { file_path: '/p.png' } },
              { type: 'tool_use', id: 'toolu_vrtx_C', name: 'Bash', input: { command: 'exit 3' } },
            ],
          },
          {
            role: 'user',
            content: [
              { type: 'tool_result', tool_use_id: 'toolu_vrtx_C', content: 'Exit code 3', is_error: true, cache_control: { type: 'ephemeral' } },
              { type: 'text', text: '<system-reminder>note</system-reminder>' },
              {
                type: 'tool_result',
                tool_use_id: 'toolu_vrtx_B',
                content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBOR' } }],
              },
              { type: 'tool_result', tool_use_id: 'toolu_vrtx_A', content: [{ type: 'text', text: 'one' }, { type: 'text', text: 'two' }], is_error: false },
            ],
          },
        ],
        thinking: { type: 'disabled' },
      },
      'claude-sonnet-4-6',
    );
    const [, model, user] = env.request.contents;
    expect(model).toEqual({
      role: 'model',
      parts: [
        { text: 'Running.' },
        { functionCall: { name: 'Bash', args: { command: 'echo one' }, id: 'toolu_vrtx_A' } },
        { functionCall: { name: 'Read', args: { file_path: '/p.png' }, id: 'toolu_vrtx_B' } },
        { functionCall: { name: 'Bash', args: { command: 'exit 3' }, id: 'toolu_vrtx_C' } },
      ],
    });
    expect(user).toEqual({
      role: 'user',
      parts: [
        { functionResponse: { name: 'Bash', id: 'toolu_vrtx_A', response: { output: 'one\ntwo' } } },
        { functionResponse: { name: 'Read', id: 'toolu_vrtx_B', response: { output: 'Image attached' } } },
        { functionResponse: { name: 'Bash', id: 'toolu_vrtx_C', response: { output: 'Exit code 3' } } },
        { inlineData: { mimeType: 'image/png', data: 'iVBOR' } },
        { text: '<system-reminder>note</system-reminder>' },
      ],
    });
  });

  test('same-role neighbours (left by folded system messages) are merged into one content', () => {
    const env = translate({
      messages: [
        { role: 'user', content: 'first' },
        { role: 'system', content: 'rules' },
        { role: 'user', content: [{ type: 'text', text: 'second' }] },
        { role: 'assistant', content: 'a' },
        { role: 'assistant', content: [{ type: 'text', text: '' }] },
        { role: 'user', content: 'third' },
      ],
      thinking: { type: 'disabled' },
    });
    expect(env.request.contents).toEqual([
      { role: 'user', parts: [{ text: 'first' }, { text: 'second' }] },
      { role: 'model', parts: [{ text: 'a' }] },
      { role: 'user', parts: [{ text: 'third' }] },
    ]);
  });

  // Anthropic merges consecutive same-role turns; pairing calls with results must see them merged,
  // or a real result in the second user message is replaced by "[Tool call was interrupted.]".
  test('a tool_result in the second of two consecutive user messages answers its call', () => {
    const env = translate({
      messages: [
        { role: 'user', content: 'go' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_vrtx_A', name: 'Bash', input: { command: 'ls' } }] },
        { role: 'user', content: [{ type: 'text', text: '<system-reminder>note</system-reminder>' }] },
        { role: 'system', content: 'rules' },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_vrtx_A', content: 'a.txt' }] },
      ],
      thinking: { type: 'disabled' },
    });
    expect(env.request.contents).toEqual([
      { role: 'user', parts: [{ text: 'go' }] },
      { role: 'model', parts: [{ functionCall: { name: 'Bash', args: { command: 'ls' }, id: 'toolu_vrtx_A' } }] },
      {
        role: 'user',
        parts: [
          { functionResponse: { name: 'Bash', id: 'toolu_vrtx_A', response: { output: 'a.txt' } } },
          { text: '<system-reminder>note</system-reminder>' },
        ],
      },
    ]);
    expect(JSON.stringify(env)).not.toContain('interrupted');
  });

  test('tool_use blocks split over two consecutive assistant messages are answered by the next user message', () => {
    const env = translate({
      messages: [
        { role: 'user', content: 'go' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_vrtx_A', name: 'Bash', input: { command: 'ls' } }] },
        { role: 'assistant', content: [{ type: 'text', text: 'And:' }, { type: 'tool_use', id: 'toolu_vrtx_B', name: 'Read', input: { file_path: '/x' } }] },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_vrtx_B', content: 'x' },
            { type: 'tool_result', tool_use_id: 'toolu_vrtx_A', content: 'a.txt' },
          ],
        },
      ],
      thinking: { type: 'disabled' },
    });
    expect(env.request.contents.slice(1)).toEqual([
      {
        role: 'model',
        parts: [
          { text: 'And:' },
          { functionCall: { name: 'Bash', args: { command: 'ls' }, id: 'toolu_vrtx_A' } },
          { functionCall: { name: 'Read', args: { file_path: '/x' }, id: 'toolu_vrtx_B' } },
        ],
      },
      {
        role: 'user',
        parts: [
          { functionResponse: { name: 'Bash', id: 'toolu_vrtx_A', response: { output: 'a.txt' } } },
          { functionResponse: { name: 'Read', id: 'toolu_vrtx_B', response: { output: 'x' } } },
        ],
      },
    ]);
    expect(JSON.stringify(env)).not.toContain('interrupted');
  });

  test('merging consecutive messages leaves the request untouched', () => {
    const first = [{ type: 'text', text: 'one' }];
    const r = req({ messages: [{ role: 'user', content: first }, { role: 'user', content: [{ type: 'text', text: 'two' }] }], thinking: { type: 'disabled' } });
    const before = JSON.stringify(r);
    toGoogleRequest(r, opts('claude-sonnet-4-6'));
    expect(JSON.stringify(r)).toBe(before);
    expect(first).toHaveLength(1);
  });

  test('gemini: a history that starts with the model gets a leading user turn', () => {
    const env = translate({ messages: [{ role: 'assistant', content: 'hello' }, { role: 'user', content: 'hi' }] }, 'gemini-3-flash');
    expect(env.request.contents[0]).toEqual({ role: 'user', parts: [{ text: '.' }] });
    expect(env.request.contents[1].role).toBe('model');
  });

  test('tool_use input that is not an object is repaired; a result without its call becomes text', () => {
    const env = translate(
      {
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_vrtx_A', name: 'Bash', input: '{"command":"ls"}' }] },
          {
            role: 'user',
            content: [
              { type: 'tool_result', tool_use_id: 'toolu_vrtx_A', content: 'ok' },
              { type: 'tool_result', tool_use_id: 'toolu_lost', content: 'orphan' },
            ],
          },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_vrtx_B', name: 'Bash', input: [1, 2] }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_vrtx_B' }] },
        ],
        thinking: { type: 'disabled' },
      },
      'claude-sonnet-4-6',
    );
    const c = env.request.contents;
    expect(c[1].parts[0].functionCall.args).toEqual({ command: 'ls' });
    expect(c[2].parts).toEqual([
      { functionResponse: { name: 'Bash', id: 'toolu_vrtx_A', response: { output: 'ok' } } },
      { text: '[Tool result toolu_lost]\norphan' },
    ]);
    expect(c[3].parts[0].functionCall.args).toEqual({ value: [1, 2] });
    expect(c[4].parts).toEqual([{ functionResponse: { name: 'Bash', id: 'toolu_vrtx_B', response: { output: '' } } }]);
  });
});

describe('image URL sources', () => {
  test("a URL image's type is taken from its extension (Anthropic's URL source names none), JPEG when the URL does not say", () => {
    const env = translate({ messages: [{ role: 'user', content: urlImages.content }], thinking: { type: 'disabled' } }, 'gemini-3-flash');
    expect(env.request.contents[0].parts).toEqual([
      { fileData: { mimeType: 'image/png', fileUri: 'https://example.com/charts/latency.PNG?size=large#top' } },
      { fileData: { mimeType: 'image/gif', fileUri: 'https://example.com/anim/loader.gif' } },
      { fileData: { mimeType: 'image/webp', fileUri: 'https://example.com/photos/team.webp' } },
      { fileData: { mimeType: 'image/jpeg', fileUri: 'https://example.com/render?id=42' } },
      { text: 'What do these show?' },
    ]);
  });
});

describe('document title and context', () => {
  // Anthropic gives a document's title and context to the model; without them it cannot tell which
  // of several documents a question is about.
  test('go with the document: before a PDF as text, in front of a text document', () => {
    const env = translate(
      {
        messages: [
          {
            role: 'user',
            content: [
              { type: 'document', title: 'Q3 report', context: 'Board copy', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBER' } },
              { type: 'document', title: 'Notes', source: { type: 'text', media_type: 'text/plain', data: 'plain doc' } },
              { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'untitled' } },
              { type: 'text', text: 'compare them' },
            ],
          },
        ],
        thinking: { type: 'disabled' },
      },
      'gemini-3-flash',
    );
    expect(env.request.contents[0].parts).toEqual([
      { text: 'Document: Q3 report\nBoard copy' },
      { inlineData: { mimeType: 'application/pdf', data: 'JVBER' } },
      { text: 'Document: Notes\n\nplain doc' },
      { text: 'untitled' },
      { text: 'compare them' },
    ]);
  });

  // Custom content documents: a string, or text and image blocks (SDK ContentBlockSource).
  test('a document made of content reaches the model whole: string content, its text and its pictures', () => {
    const env = translate(
      {
        messages: [{ role: 'user', content: [docs.stringContent, docs.blocksContent, docs.imageOnly, { type: 'text', text: 'what changed?' }] }],
        thinking: { type: 'disabled' },
      },
      'gemini-3-flash',
    );
    expect(env.request.contents[0].parts).toEqual([
      { text: 'Document: Release notes\n\nVersion 2 drops the legacy API.' },
      { text: 'Document: Dashboard\nScreenshot with caption\n\nCaption: error rate after the deploy.' },
      { inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgo=' } },
      { text: 'Document: Diagram' },
      { inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgo=' } },
      { text: 'what changed?' },
    ]);
  });

  test('a document made of content inside a tool_result: its text in the response, its picture after it', () => {
    const env = translate(
      {
        messages: [
          { role: 'user', content: 'show the dashboard' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_doc', name: 'Bash', input: { command: 'dash' } }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_doc', content: [docs.blocksContent] }] },
        ],
        thinking: { type: 'disabled' },
      },
      'gemini-3-flash',
    );
    expect(env.request.contents[2].parts).toEqual([
      { functionResponse: { name: 'Bash', id: 'toolu_doc', response: { output: 'Document: Dashboard\nScreenshot with caption\n\nCaption: error rate after the deploy.' } } },
      { inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgo=' } },
    ]);
  });

  test('a titled PDF in a tool_result keeps its title in the response text', () => {
    const env = translate(
      {
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_vrtx_D', name: 'Fetch', input: {} }] },
          {
            role: 'user',
            content: [{ type: 'tool_result', tool_use_id: 'toolu_vrtx_D', content: [{ type: 'document', title: 'spec.pdf', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBER' } }] }],
          },
        ],
        thinking: { type: 'disabled' },
      },
      'claude-sonnet-4-6',
    );
    expect(env.request.contents[2].parts).toEqual([
      { functionResponse: { name: 'Fetch', id: 'toolu_vrtx_D', response: { output: 'Document: spec.pdf' } } },
      { inlineData: { mimeType: 'application/pdf', data: 'JVBER' } },
    ]);
  });
});

describe('search results', () => {
  // Anthropic shows the model a search_result's title and source: they say where a passage comes from.
  test('a search_result in a tool_result keeps its title and source with its text', () => {
    const env = translate(
      {
        messages: [
          { role: 'user', content: 'what do the docs say?' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_vrtx_S', name: 'kb_search', input: { q: 'retries' } }] },
          {
            role: 'user',
            content: [
              {
                type: 'tool_result',
                tool_use_id: 'toolu_vrtx_S',
                content: [
                  { type: 'search_result', title: 'Retry policy', source: 'https://docs.example.com/retries', content: [{ type: 'text', text: 'Three retries.' }, { type: 'text', text: 'Then give up.' }] },
                  { type: 'search_result', title: '', source: '', content: [{ type: 'text', text: 'bare' }] },
                ],
              },
            ],
          },
        ],
        thinking: { type: 'disabled' },
      },
      'gemini-3-flash',
    );
    expect(env.request.contents[2].parts[0].functionResponse.response.output).toBe(
      'Search result: Retry policy (https://docs.example.com/retries)\nThree retries.\nThen give up.\nbare',
    );
  });
});

describe('Files API sources', () => {
  // The proxy has no Files API and Google cannot read Anthropic's: dropping the block would let the
  // model answer as if no picture or PDF had been sent.
  test.each([
    ['an image', { type: 'image', source: { type: 'file', file_id: 'file_FAKE01' } }],
    ['a document', { type: 'document', source: { type: 'file', file_id: 'file_FAKE02' } }],
  ])('%s given by file_id is refused with a clear bad_request, not silently dropped', (_n, block) => {
    const run = (model: string) => () => translate({ messages: [{ role: 'user', content: [block, { type: 'text', text: 'what is this?' }] }] }, model);
    for (const model of ['claude-sonnet-4-6', 'gemini-3-flash']) {
      expect(run(model)).toThrow(UpstreamError);
      expect(run(model)).toThrow(/file_id/);
      try {
        run(model)();
      } catch (e) {
        expect((e as UpstreamError).kind).toBe('bad_request');
      }
    }
  });

  test('a file_id inside a tool_result is refused too', () => {
    const run = () =>
      translate({
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_vrtx_F', name: 'Read', input: {} }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_vrtx_F', content: [{ type: 'image', source: { type: 'file', file_id: 'file_FAKE03' } }] }] },
        ],
      });
    expect(run).toThrow(/file_id/);
  });
});

describe('files Claude Code\'s Read returns', () => {
  // A PDF read comes back as a tool_result holding only a document block: the response must not call it an image.
  test('a tool_result holding only a PDF says a document is attached, and the PDF follows as inlineData', () => {
    const env = translate(
      {
        messages: [
          { role: 'user', content: 'summarise spec.pdf' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_vrtx_P', name: 'Read', input: { file_path: '/w/spec.pdf' } }] },
          {
            role: 'user',
            content: [
              {
                type: 'tool_result',
                tool_use_id: 'toolu_vrtx_P',
                content: [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBERi0xLjQK' } }],
              },
            ],
          },
        ],
        thinking: { type: 'disabled' },
      },
      'claude-sonnet-4-6',
    );
    expect(env.request.contents[2].parts).toEqual([
      { functionResponse: { name: 'Read', id: 'toolu_vrtx_P', response: { output: 'Document attached' } } },
      { inlineData: { mimeType: 'application/pdf', data: 'JVBERi0xLjQK' } },
    ]);
  });
});

describe('pictures an image model drew', () => {
  const picture = { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgoPICTURE' } };
  const history = (model: string) =>
    ({ model, max_tokens: 100, messages: [{ role: 'user', content: 'a boat' }, { role: 'assistant', content: [{ type: 'text', text: 'Here.' }, picture] }, { role: 'user', content: 'at night' }] }) as MessagesRequest;
  const sig = `Ep0g${'s'.repeat(80)}`;

  test('go back to Gemini with the signature they came with', () => {
    const store = createSignatureStore();
    store.rememberImage('iVBORw0KGgoPICTURE', sig);
    const env = toGoogleRequest(history('gemini-3.1-flash-image'), opts('gemini-3.1-flash-image', store));
    const model = (env.request as { contents: Array<{ role: string; parts: Array<Record<string, unknown>> }> }).contents[1]!;
    expect(model.parts).toEqual([{ text: 'Here.' }, { inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgoPICTURE' }, thoughtSignature: sig }]);
  });

  test('an unknown picture, or another family, goes without one', () => {
    const store = createSignatureStore();
    const unknown = toGoogleRequest(history('gemini-3.1-flash-image'), opts('gemini-3.1-flash-image', store));
    expect(JSON.stringify(unknown)).not.toContain('thoughtSignature');
    store.rememberImage('iVBORw0KGgoPICTURE', sig);
    const claude = toGoogleRequest(history('claude-sonnet-4-6'), opts('claude-sonnet-4-6', store));
    expect(JSON.stringify(claude)).not.toContain(sig);
  });
});

describe('tools (§7.11–§7.13)', () => {
  const ccTools = tools.tools as any[];

  test('declarations in one wrapper, cleaned schemas, server tools skipped, names sanitized and remembered', () => {
    const store = createSignatureStore();
    const env = toGoogleRequest(
      req({ tools: [...ccTools, { type: 'web_search_20250305', name: 'web_search' }, { name: 'Bash', input_schema: {} }] as any, thinking: { type: 'disabled' } }),
      opts('gemini-3-pro-high', store),
    ) as Json;
    const decls = env.request.tools[0].functionDeclarations as Json[];
    expect(env.request.tools).toHaveLength(1);
    expect(decls.map((d) => d.name)).toEqual(ccTools.map((t) => sanitizeToolName(t.name)));
    expect(decls.find((d) => d.name === 'mcp__db_query')).toBeDefined();
    const naming = store.tools('sess-1')!;
    expect(naming.original.get('mcp__db_query')).toBe('mcp__db.query');
    expect(naming.placeholders.has('CronList')).toBe(true);
    expect(env.request.toolConfig).toBeUndefined();
    expect(JSON.stringify(decls)).not.toContain('$schema');
  });

  test.each([
    ['gemini, no choice', 'gemini-3-pro-high', undefined, undefined],
    ['gemini auto', 'gemini-3-pro-high', { type: 'auto' }, { mode: 'AUTO' }],
    ['gemini any', 'gemini-3-pro-high', { type: 'any' }, { mode: 'ANY' }],
    ['gemini tool', 'gemini-3-pro-high', { type: 'tool', name: 'mcp__db.query' }, { mode: 'ANY', allowedFunctionNames: ['mcp__db_query'] }],
    ['gemini none', 'gemini-3-pro-high', { type: 'none' }, { mode: 'NONE' }],
    ['claude auto', 'claude-sonnet-4-6', { type: 'auto' }, { mode: 'VALIDATED' }],
    ['claude no choice', 'claude-sonnet-4-6', undefined, { mode: 'VALIDATED' }],
    ['claude tool, no thinking', 'claude-sonnet-4-6', { type: 'tool', name: 'Bash' }, { mode: 'ANY', allowedFunctionNames: ['Bash'] }],
    ['claude none', 'claude-sonnet-4-6', { type: 'none' }, { mode: 'NONE' }],
  ] as const)('tool_choice: %s', (_n, model, choice, expected) => {
    const mcp = { name: 'mcp__db.query', input_schema: { type: 'object', properties: { sql: { type: 'string' } } } };
    const env = translate({ tools: [ccTools[0], mcp], tool_choice: choice as any, thinking: { type: 'disabled' } }, model);
    expect(env.request.toolConfig?.functionCallingConfig).toEqual(expected as any);
  });

  test.each([
    ['gemini', 'gemini-3-pro-high', undefined],
    ['claude', 'claude-sonnet-4-6', { mode: 'VALIDATED' }],
  ] as const)('tool_choice naming a tool that is not declared upstream (a server tool) forces nothing: %s', (_n, model, expected) => {
    // Google refuses allowedFunctionNames naming no declaration (fuzz seed 9 case 299).
    const fetcher = { type: 'web_fetch_20250910', name: 'web_fetch' };
    const env = translate({ tools: [ccTools[0], fetcher], tool_choice: { type: 'tool', name: fetcher.name }, thinking: { type: 'disabled' } }, model);
    expect(env.request.toolConfig?.functionCallingConfig).toEqual(expected as any);
  });

  test.each(['gemini-3-pro-high', 'claude-sonnet-4-6'])(
    'Anthropic-defined client tools (bash, text editor, memory) are declared with their documented inputs; server tools are not: %s',
    (model) => {
      const env = translate({ tools: anthropicTools.tools, thinking: { type: 'disabled' } }, model);
      const decls = env.request.tools[0].functionDeclarations as Json[];
      expect(decls.map((d) => d.name)).toEqual(['bash', 'str_replace_based_edit_tool', 'memory', 'str_replace_editor']);
      const byName = (n: string) => decls.find((d) => d.name === n)!;
      expect(Object.keys(byName('bash').parameters.properties)).toEqual(['command', 'restart']);
      expect(byName('str_replace_based_edit_tool').parameters.properties.command.enum).toEqual(['view', 'create', 'str_replace', 'insert']);
      expect(byName('str_replace_based_edit_tool').parameters.required).toEqual(['command', 'path']);
      // The first editor versions could undo; the memory tool renames and deletes.
      expect(byName('str_replace_editor').parameters.properties.command.enum).toContain('undo_edit');
      expect(byName('memory').parameters.properties.command.enum).toEqual(['view', 'create', 'str_replace', 'insert', 'delete', 'rename']);
      for (const d of decls) expect(d.description.length).toBeGreaterThan(20);
      // Anthropic's own tool options (max_characters) are not a schema Google should see.
      expect(JSON.stringify(decls)).not.toContain('max_characters');
    },
  );

  test('a tool_choice naming the text editor forces it, as Anthropic does', () => {
    const env = translate({ tools: anthropicTools.tools, tool_choice: { type: 'tool', name: 'str_replace_based_edit_tool' }, thinking: { type: 'disabled' } }, 'gemini-3-pro-high');
    expect(env.request.toolConfig?.functionCallingConfig).toEqual({ mode: 'ANY', allowedFunctionNames: ['str_replace_based_edit_tool'] });
  });

  test("a client's own description of an Anthropic-defined tool is kept", () => {
    const env = translate({ tools: [{ type: 'bash_20250124', name: 'bash', description: 'Runs in the CI sandbox only.' }], thinking: { type: 'disabled' } }, 'gemini-3-pro-high');
    expect(env.request.tools[0].functionDeclarations[0].description).toBe('Runs in the CI sandbox only.');
  });

  test('claude with thinking cannot be forced to a tool: stays VALIDATED', () => {
    const env = translate({ tools: [ccTools[0]], tool_choice: { type: 'any' }, thinking: { type: 'adaptive' } }, 'claude-opus-4-6-thinking');
    expect(env.request.toolConfig).toEqual({ functionCallingConfig: { mode: 'VALIDATED' } });
  });

  test('a tool whose schema changes under the same name is converted again, not served from the cache', () => {
    const schema = (desc: string) => ({ type: 'object', properties: { path: { type: 'string', description: desc } }, required: ['path'] });
    const declOf = (s: Json) => translate({ tools: [{ name: 'ReadFile', input_schema: s }], thinking: { type: 'disabled' } }, 'gemini-3-pro-high').request.tools[0].functionDeclarations[0];
    expect(declOf(schema('first')).parameters.properties.path.description).toBe('first');
    expect(declOf(schema('first')).parameters.properties.path.description).toBe('first');
    expect(declOf(schema('second')).parameters.properties.path.description).toBe('second');
    expect(declOf({ ...schema('second'), required: [] }).parameters.required).toBeUndefined();
  });

  const shared = { a: 1 };
  test.each([
    ['same object', shared, shared, true],
    ['same content, other key order', { a: 1, b: [1, { c: 'x' }] }, { b: [1, { c: 'x' }], a: 1 }, true],
    ['a changed leaf', { a: [1, 2] }, { a: [1, 3] }, false],
    ['an extra key', { a: 1 }, { a: 1, b: 2 }, false],
    ['a missing key', { a: 1, b: undefined }, { a: 1, c: undefined }, false],
    ['array vs object', { 0: 'x' }, ['x'], false],
    ['different lengths', [1], [1, 1], false],
    ['null vs object', null, {}, false],
  ])('sameJson: %s', (_name, a, b, expected) => expect(sameJson(a, b)).toBe(expected));

  test.each([
    ['Bash', 'Bash'],
    ['mcp__srv__do-it', 'mcp__srv__do-it'],
    ['a.b:c d', 'a_b_c_d'],
    ['9lives', '_9lives'],
    ['x'.repeat(80), 'x'.repeat(64)],
  ])('tool name %s -> %s', (name, expected) => expect(sanitizeToolName(name)).toBe(expected));
});

describe('generationConfig (§7.9–§7.10)', () => {
  test.each<[string, string, Partial<MessagesRequest>, Json]>([
    ['claude budget from client', 'claude-opus-4-6-thinking', { max_tokens: 32000, thinking: { type: 'enabled', budget_tokens: 8000 } }, {
      maxOutputTokens: 32000,
      thinkingConfig: { includeThoughts: true, thinkingBudget: 8000 },
    }],
    ['claude adaptive, effort high -> budget under max_tokens, max_tokens kept', 'claude-opus-4-6-thinking', { max_tokens: 32000, thinking: { type: 'adaptive' }, output_config: { effort: 'high' } }, {
      maxOutputTokens: 32000,
      thinkingConfig: { includeThoughts: true, thinkingBudget: 31999 },
    }],
    ['claude adaptive, effort low', 'claude-sonnet-4-6', { max_tokens: 32000, thinking: { type: 'adaptive' }, output_config: { effort: 'low' } }, {
      maxOutputTokens: 32000,
      thinkingConfig: { includeThoughts: true, thinkingBudget: 8192 },
    }],
    ['claude -thinking id with no thinking field still thinks', 'claude-opus-4-6-thinking', { max_tokens: 64000 }, {
      maxOutputTokens: 64000,
      thinkingConfig: { includeThoughts: true, thinkingBudget: 31999 },
    }],
    ['claude disabled, sampling passed', 'claude-opus-4-6-thinking', { max_tokens: 100000, thinking: { type: 'disabled' }, temperature: 0.2, top_p: 0.9, top_k: 40, stop_sequences: ['END'] }, {
      maxOutputTokens: 64000,
      temperature: 0.2,
      topP: 0.9,
      topK: 40,
      stopSequences: ['END'],
    }],
    ['claude thinking drops temperature≠1 and top_k', 'claude-sonnet-4-6', { max_tokens: 20000, thinking: { type: 'enabled', budget_tokens: 2048 }, temperature: 0.5, top_k: 5, top_p: 0.99 }, {
      maxOutputTokens: 20000,
      topP: 0.99,
      thinkingConfig: { includeThoughts: true, thinkingBudget: 2048 },
    }],
    ['gemini adaptive high -> dynamic budget', 'gemini-3-pro-high', { max_tokens: 32000, thinking: { type: 'adaptive' }, output_config: { effort: 'high' } }, {
      maxOutputTokens: 32000,
      thinkingConfig: { includeThoughts: true, thinkingBudget: -1 },
    }],
    ['gemini adaptive low', 'gemini-3-flash', { max_tokens: 32000, thinking: { type: 'adaptive' }, output_config: { effort: 'low' } }, {
      maxOutputTokens: 32000,
      thinkingConfig: { includeThoughts: true, thinkingBudget: 1000 },
    }],
    ['gemini adaptive medium', 'gemini-3-flash', { max_tokens: 32000, thinking: { type: 'adaptive' }, output_config: { effort: 'medium' } }, {
      maxOutputTokens: 32000,
      thinkingConfig: { includeThoughts: true, thinkingBudget: 4000 },
    }],
    ['gemini budget', 'gemini-3-flash', { max_tokens: 4000, thinking: { type: 'enabled', budget_tokens: 8000 } }, {
      maxOutputTokens: 16192,
      thinkingConfig: { includeThoughts: true, thinkingBudget: 8000 },
    }],
    ['gemini 2.5 budget clamp', 'gemini-2.5-pro', { max_tokens: 64000, thinking: { type: 'enabled', budget_tokens: 31999 } }, {
      maxOutputTokens: 64000,
      thinkingConfig: { includeThoughts: true, thinkingBudget: 24576 },
    }],
    ['gemini no thinking field', 'gemini-3-flash', { max_tokens: 100000, temperature: 1 }, { maxOutputTokens: 65536, temperature: 1 }],
    ['gpt-oss: no thinking config, capped', 'gpt-oss-120b-medium', { max_tokens: 64000, thinking: { type: 'adaptive' } }, { maxOutputTokens: 32768 }],
  ])('%s', (_n, model, r, expected) => {
    expect(translate(r, model).request.generationConfig).toEqual(expected);
  });

  // Claude Code retries a context overflow with a smaller max_tokens: an implicit budget (adaptive,
  // effort, "-thinking" id) must shrink with it, never push the output back above max_tokens.
  test.each<[string, Partial<MessagesRequest>, number, number | null]>([
    ['adaptive, max_tokens 64000', { max_tokens: 64000, thinking: { type: 'adaptive' } }, 64000, 31999],
    ['adaptive, max_tokens 32000', { max_tokens: 32000, thinking: { type: 'adaptive' } }, 32000, 31999],
    ['adaptive, max_tokens 20000', { max_tokens: 20000, thinking: { type: 'adaptive' } }, 20000, 19999],
    ['adaptive, max_tokens 8000', { max_tokens: 8000, thinking: { type: 'adaptive' } }, 8000, 7999],
    ['adaptive, max_tokens 1025 (smallest that thinks)', { max_tokens: 1025, thinking: { type: 'adaptive' } }, 1025, 1024],
    ['adaptive, max_tokens 1024: no room for 1024 of thinking', { max_tokens: 1024, thinking: { type: 'adaptive' } }, 1024, null],
    ['adaptive, max_tokens 1', { max_tokens: 1, thinking: { type: 'adaptive' } }, 1, null],
    ['between_tools, max_tokens 8000', { max_tokens: 8000, thinking: { type: 'between_tools' } as never }, 8000, 7999],
    ['no thinking field on a -thinking id, max_tokens 20000', { max_tokens: 20000 }, 20000, 19999],
    ['no thinking field on a -thinking id, max_tokens 1', { max_tokens: 1 }, 1, null],
    ['effort low under a big max_tokens keeps its tier', { max_tokens: 32000, thinking: { type: 'adaptive' }, output_config: { effort: 'low' } }, 32000, 8192],
    ['effort low over a small max_tokens shrinks', { max_tokens: 4000, thinking: { type: 'adaptive' }, output_config: { effort: 'low' } }, 4000, 3999],
    ['max_tokens above the cap: budget under the cap', { max_tokens: 100000, thinking: { type: 'adaptive' } }, 64000, 31999],
    ['explicit budget >= max_tokens still raises the output', { max_tokens: 4000, thinking: { type: 'enabled', budget_tokens: 8000 } }, 16192, 8000],
  ])('claude implicit budget follows max_tokens: %s', (_n, r, maxOutputTokens, budget) => {
    const env = translate(r, 'claude-opus-4-6-thinking');
    const config = env.request.generationConfig;
    expect(config.maxOutputTokens).toBe(maxOutputTokens);
    if (budget === null) expect(config.thinkingConfig).toBeUndefined();
    else expect(config.thinkingConfig).toEqual({ includeThoughts: true, thinkingBudget: budget });
  });

  // Gemini counts thinking inside maxOutputTokens: a tier budget that does not fit under max_tokens
  // becomes dynamic (bounded by maxOutputTokens) instead of raising the output past what the client allowed.
  test.each<[string, string, Partial<MessagesRequest>, number, number]>([
    ['effort low over max_tokens 500', 'gemini-3-flash', { max_tokens: 500, thinking: { type: 'adaptive' }, output_config: { effort: 'low' } }, 500, -1],
    ['effort medium over max_tokens 4000 (equal)', 'gemini-3-flash', { max_tokens: 4000, thinking: { type: 'adaptive' }, output_config: { effort: 'medium' } }, 4000, -1],
    ['effort medium under max_tokens 4001 keeps its tier', 'gemini-3-flash', { max_tokens: 4001, thinking: { type: 'adaptive' }, output_config: { effort: 'medium' } }, 4001, 4000],
    ['effort high stays dynamic under a small max_tokens', 'gemini-3-pro-high', { max_tokens: 300, thinking: { type: 'adaptive' }, output_config: { effort: 'high' } }, 300, -1],
    ['explicit budget >= max_tokens still raises the output', 'gemini-3-flash', { max_tokens: 500, thinking: { type: 'enabled', budget_tokens: 1000 } }, 9192, 1000],
    // The family cap (65,536) bounds the raise; the budget then leaves the answer its room under it.
    ['explicit budget over the output cap fits under it', 'gemini-3-flash', { max_tokens: 8000, thinking: { type: 'enabled', budget_tokens: 100_000 } }, 65_536, 57_344],
  ])('gemini implicit budget never raises the output above max_tokens: %s', (_n, model, r, maxOutputTokens, budget) => {
    const config = translate(r, model).request.generationConfig;
    expect(config.maxOutputTokens).toBe(maxOutputTokens);
    expect(config.thinkingConfig).toEqual({ includeThoughts: true, thinkingBudget: budget });
  });

  // Gemini refuses the whole request over more than five ("stopSequences value of 6 but the supported
  // range is from 1 (inclusive) to 6 (exclusive)"); Anthropic takes more, and Claude behind Google too.
  test('gemini gets at most five stop sequences, Claude all of them', () => {
    const stops = ['A', 'B', 'C', 'D', 'E', 'F', 'G'];
    expect(translate({ stop_sequences: stops }, 'gemini-3-flash').request.generationConfig.stopSequences).toEqual(['A', 'B', 'C', 'D', 'E']);
    expect(translate({ stop_sequences: stops, thinking: { type: 'disabled' } }, 'claude-sonnet-4-6').request.generationConfig.stopSequences).toEqual(stops);
  });

  // The user picked the tier by id (agy's runtime ids, §7.10): with no budget or effort from the
  // client, a "-low" id must not think as much as "-high" (dynamic). The catalog's thinkingBudget
  // for the id is the official client's value (models.resp: gemini-3.8-flash-low -> 1000).
  test.each<[string, string, Partial<MessagesRequest>, number | undefined, number]>([
    ['-low id, adaptive, no catalog yet: the tier from the id', 'gemini-3.8-flash-low', { thinking: { type: 'adaptive' } }, undefined, 1000],
    ['-medium id, adaptive, no catalog yet', 'gemini-3.8-flash-medium', { thinking: { type: 'adaptive' } }, undefined, 4000],
    ['-high id, adaptive: dynamic', 'gemini-3.8-flash-high', { thinking: { type: 'adaptive' } }, undefined, -1],
    ['-low id with the catalog default', 'gemini-3.8-flash-low', { thinking: { type: 'adaptive' } }, 1200, 1200],
    ['catalog says dynamic for an id without a tier', 'gemini-3-flash', { thinking: { type: 'adaptive' } }, -1, -1],
    ['an effort from the client wins over the id', 'gemini-3.8-flash-low', { thinking: { type: 'adaptive' }, output_config: { effort: 'medium' } }, 1000, 4000],
    ['an explicit budget wins over the id', 'gemini-3.8-flash-low', { thinking: { type: 'enabled', budget_tokens: 2048 } }, 1000, 2048],
  ])('gemini tier of the runtime id: %s', (_n, model, r, catalogBudget, budget) => {
    const o = catalogBudget === undefined ? opts(model) : { ...opts(model), thinkingBudget: catalogBudget };
    const env = toGoogleRequest(req({ max_tokens: 32000, ...r }), o) as Json;
    expect(env.request.generationConfig.thinkingConfig).toEqual({ includeThoughts: true, thinkingBudget: budget });
  });

  test('a catalog output cap overrides the family default', () => {
    const env = toGoogleRequest(req({ max_tokens: 100000 }), { ...opts('gemini-3-flash'), maxOutputTokens: 65535 }) as Json;
    expect(env.request.generationConfig.maxOutputTokens).toBe(65535);
  });

  test('structured output on gemini becomes a JSON response schema', () => {
    const env = translate(
      { output_config: { format: { type: 'json_schema', schema: { type: 'object', properties: { title: { type: 'string' } }, required: ['title'], additionalProperties: false } } } },
      'gemini-3-flash',
    );
    expect(env.request.generationConfig.responseMimeType).toBe('application/json');
    expect(env.request.generationConfig.responseSchema).toEqual({ type: 'OBJECT', properties: { title: { type: 'STRING' } }, required: ['title'] });
    expect(JSON.stringify(env.request.systemInstruction ?? '')).not.toContain('JSON Schema');
  });

  test('structured output on Claude and GPT-OSS (no response schema behind Google) is asked for in the system instruction', () => {
    const schema = { type: 'object', properties: { title: { type: 'string' } }, required: ['title'], additionalProperties: false };
    for (const model of ['claude-sonnet-4-6', 'gpt-oss-120b-medium']) {
      const env = translate({ system: 'Be brief.', output_config: { format: { type: 'json_schema', schema } } }, model);
      const texts = (env.request.systemInstruction.parts as Array<{ text: string }>).map((p) => p.text);
      expect(texts).toEqual(['Be brief.', `Answer with one JSON value that matches this JSON Schema, and nothing else: no prose before or after it, no code fence.\n${JSON.stringify(schema)}`]);
      expect(env.request.generationConfig.responseSchema).toBeUndefined();
    }
  });

  test('structured output beside tools: Gemini 3 keeps the response schema, Gemini 2.x (which refuses the pair) is asked in words', () => {
    const three = translate(withTools.request, 'gemini-3-flash');
    expect(three.request.generationConfig.responseMimeType).toBe('application/json');
    expect(three.request.tools[0].functionDeclarations).toHaveLength(1);
    const two = translate(withTools.request, 'gemini-2.5-flash');
    expect(two.request.generationConfig.responseMimeType).toBeUndefined();
    expect(two.request.generationConfig.responseSchema).toBeUndefined();
    expect(two.request.tools[0].functionDeclarations).toHaveLength(1);
    expect(JSON.stringify(two.request.systemInstruction)).toContain('JSON Schema');
    // Without tools Gemini 2.x takes the schema.
    const { tools: _t, ...alone } = withTools.request;
    expect(translate(alone, 'gemini-2.5-flash').request.generationConfig.responseMimeType).toBe('application/json');
  });

  // The structured-outputs beta's first form (top-level output_format), still sent by older SDKs;
  // the Z.AI side already honours it, so a schema must not be lost just because the pool picked Google.
  test('a schema in the older top-level output_format is honoured like output_config.format (gemini schema, Claude instruction)', () => {
    const schema = { type: 'object', properties: { title: { type: 'string' } }, required: ['title'] };
    const gemini = translate({ output_format: { type: 'json_schema', schema } } as Json, 'gemini-3-flash');
    expect(gemini.request.generationConfig.responseMimeType).toBe('application/json');
    expect(gemini.request.generationConfig.responseSchema).toEqual({ type: 'OBJECT', properties: { title: { type: 'STRING' } }, required: ['title'] });
    const claude = translate({ output_format: { type: 'json_schema', schema } } as Json, 'claude-sonnet-4-6');
    expect(JSON.stringify(claude.request.systemInstruction ?? '')).toContain('JSON Schema');
  });
});

describe('signatures in history (§7.3, §7.5, §7.7)', () => {
  const thinkingTurn = (signature: string) => ({
    role: 'assistant' as const,
    content: [
      { type: 'text', text: 'Answer.' },
      { type: 'thinking', thinking: 'Let me think.', signature },
    ],
  });

  test('claude target replays its own signed thinking first, as a thought part with its signature', () => {
    const env = translate({ messages: [{ role: 'user', content: 'q' }, thinkingTurn(CLAUDE_SIG) as any, { role: 'user', content: 'more' }], thinking: { type: 'adaptive' } });
    expect(env.request.contents[1].parts).toEqual([{ text: 'Let me think.', thought: true, thoughtSignature: CLAUDE_SIG }, { text: 'Answer.' }]);
  });

  test.each([
    ['a gemini signature sent to claude', 'claude-opus-4-6-thinking', GEMINI_SIG, 'gemini'],
    ['a claude signature sent to gemini', 'gemini-3-pro-high', CLAUDE_SIG, 'claude'],
    ['an unknown (fake) signature sent to claude', 'claude-opus-4-6-thinking', 'ZmFrZS1zaWduYXR1cmUtZm9yLXJlc2VhcmNo8b9b1bf4b68aabb6', null],
    ['any signature sent to gpt-oss', 'gpt-oss-120b-medium', CLAUDE_SIG, 'claude'],
    // A conversation that came from Z.AI: GLM's signatures mean nothing to Google.
    ['a GLM (Z.AI) signature sent to gemini', 'gemini-3-pro-high', 'zai-sig-FAKE-0123456789abcdef0123456789abcdef0123456789abcdef', null],
    ['a GLM (Z.AI) signature sent to claude', 'claude-opus-4-6-thinking', 'zai-sig-FAKE-0123456789abcdef0123456789abcdef0123456789abcdef', null],
  ] as const)('drops thinking: %s', (_n, model, sig, family) => {
    const store = createSignatureStore();
    if (family) store.rememberThinking(sig, family);
    const env = translate({ messages: [{ role: 'user', content: 'q' }, thinkingTurn(sig) as any, { role: 'user', content: 'more' }], thinking: { type: 'adaptive' } }, model, store);
    expect(env.request.contents[1].parts).toEqual([{ text: 'Answer.' }]);
    expect(JSON.stringify(env)).not.toContain(sig);
  });

  test('gemini target replays a gemini thinking signature on the first visible part, without thought text; unsigned and redacted thinking are dropped', () => {
    const store = createSignatureStore();
    store.rememberThinking(GEMINI_SIG, 'gemini');
    const env = translate(
      {
        messages: [
          { role: 'user', content: 'q' },
          {
            role: 'assistant',
            content: [
              { type: 'thinking', thinking: 'unsigned', signature: '' },
              { type: 'redacted_thinking', data: 'abc' },
              { type: 'thinking', thinking: 'signed', signature: GEMINI_SIG },
              { type: 'text', text: 'A.' },
            ],
          } as any,
          { role: 'user', content: 'more' },
        ],
        thinking: { type: 'adaptive' },
      },
      'gemini-3-pro-high',
      store,
    );
    expect(env.request.contents[1].parts).toEqual([{ text: 'A.', thoughtSignature: GEMINI_SIG }]);
  });

  const geminiLoop = (ids: string[]) => ({
    messages: [
      { role: 'user', content: 'go' },
      { role: 'assistant', content: ids.map((id) => ({ type: 'tool_use', id, name: 'Bash', input: { command: id } })) },
      { role: 'user', content: ids.map((id) => ({ type: 'tool_result', tool_use_id: id, content: 'ok' })) },
    ],
    thinking: { type: 'adaptive' },
  }) as Partial<MessagesRequest>;

  test('gemini function calls get their cached signature; later calls of a signed parallel batch stay bare', () => {
    const store = createSignatureStore();
    store.rememberToolCall('call_1', { name: 'Bash', signature: GEMINI_SIG, family: 'gemini' });
    store.rememberToolCall('call_2', { name: 'Bash', signature: null, family: 'gemini' });
    const env = translate(geminiLoop(['call_1', 'call_2']), 'gemini-3-pro-high', store);
    const parts = env.request.contents[1].parts;
    expect(parts[0]).toEqual({ functionCall: { name: 'Bash', args: { command: 'call_1' }, id: 'call_1' }, thoughtSignature: GEMINI_SIG });
    expect(parts[1]).toEqual({ functionCall: { name: 'Bash', args: { command: 'call_2' }, id: 'call_2' } });
    expect(env.request.contents).toHaveLength(3); // no recovery needed
  });

  test('gemini: unsigned calls (cache lost, or made by claude) get the sentinel, and the loop is closed (§7.8)', () => {
    const store = createSignatureStore();
    store.rememberToolCall('toolu_vrtx_1', { name: 'Bash', signature: null, family: 'claude' });
    const env = translate(geminiLoop(['toolu_vrtx_1', 'toolu_x2']), 'gemini-3-pro-high', store);
    const parts = env.request.contents[1].parts;
    expect(parts.map((p: Json) => p.thoughtSignature)).toEqual([SKIP_SIGNATURE, SKIP_SIGNATURE]);
    expect(env.request.contents.slice(3)).toEqual([
      { role: 'model', parts: [{ text: '[Tool execution completed.]' }] },
      { role: 'user', parts: [{ text: '[Continue]' }] },
    ]);
  });

  test('claude target never receives gemini call signatures, even from a non-standard block field', () => {
    const store = createSignatureStore();
    store.rememberToolCall('call_1', { name: 'Bash', signature: GEMINI_SIG, family: 'gemini' });
    const r = geminiLoop(['call_1']);
    (r.messages![1]!.content as Json[])[0]!.thoughtSignature = GEMINI_SIG;
    const env = translate(r, 'claude-opus-4-6-thinking', store);
    expect(JSON.stringify(env)).not.toContain(GEMINI_SIG);
    expect(JSON.stringify(env)).not.toContain(SKIP_SIGNATURE);
  });
});

describe('thinking recovery for Claude (§7.8)', () => {
  const loop = (assistant: Json[]) => ({
    messages: [
      { role: 'user', content: 'go' },
      { role: 'assistant', content: assistant },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_vrtx_A', content: 'ok' }] },
    ],
    thinking: { type: 'adaptive' },
  });
  const call = { type: 'tool_use', id: 'toolu_vrtx_A', name: 'Bash', input: { command: 'ls' } };
  const closing = [
    { role: 'model', parts: [{ text: '[Tool execution completed.]' }] },
    { role: 'user', parts: [{ text: '[Continue]' }] },
  ];

  test('a turn whose thinking had to be dropped (signature Claude cannot verify) closes the loop', () => {
    const env = translate(loop([{ type: 'thinking', thinking: 't', signature: 'ZmFrZS1zaWduYXR1cmUtZm9yLXJlc2VhcmNo787cbb9ba2e11d2c' }, call]));
    expect(env.request.contents.slice(3)).toEqual(closing);
  });

  test('a Claude turn that kept its signed thinking continues the loop untouched', () => {
    const env = translate(loop([{ type: 'thinking', thinking: 't', signature: CLAUDE_SIG }, call]));
    expect(env.request.contents).toHaveLength(3);
  });

  test('a Claude turn with no thinking to replay closes the loop: Claude refuses it with thinking on', () => {
    // It may have thought and lost it before the provider saw it: the gateway drops thinking signed
    // by another provider (fuzz seed 20261205 case 162: Z.AI's thinking, then Claude on Google).
    expect(translate(loop([{ type: 'text', text: 'Listing.' }, call])).request.contents.slice(3)).toEqual(closing);
  });

  test('a "-thinking" id the client asked no thinking of closes a loop whose last turn did not think, and thinks', () => {
    // Claude refuses such a history with thinking on ("a final assistant message must start with a
    // thinking block"); Anthropic, asked without thinking, would have served it (fuzz seed 20261205 case 86).
    // Closed, not served without thinking: a "-thinking" id without it writes its thinking as text, and
    // every later step of the loop would then have no thinking either.
    const r = loop([{ type: 'text', text: 'Listing.' }, call]);
    delete (r as Json).thinking;
    const env = translate(r, 'claude-opus-4-6-thinking');
    expect(env.request.generationConfig.thinkingConfig).toBeDefined();
    expect(env.request.contents.slice(3)).toEqual(closing);
  });

  test('a "-thinking" id still thinks on its own when the loop\'s last turn thought', () => {
    const r = loop([{ type: 'thinking', thinking: 't', signature: CLAUDE_SIG }, call]);
    delete (r as Json).thinking;
    expect(translate(r, 'claude-opus-4-6-thinking').request.generationConfig.thinkingConfig).toBeDefined();
  });

  test('no recovery when thinking is off', () => {
    const r = { ...loop([{ type: 'thinking', thinking: 't', signature: 'ZmFrZS1zaWduYXR1cmUtZm9yLXJlc2VhcmNo787cbb9ba2e11d2c' }, call]), thinking: { type: 'disabled' } };
    expect(translate(r).request.contents).toHaveLength(3);
  });

  test('calls made by Gemini earlier in the conversation close the loop for Claude', () => {
    const store = createSignatureStore();
    store.rememberToolCall('toolu_vrtx_A', { name: 'Bash', signature: GEMINI_SIG, family: 'gemini' });
    expect(translate(loop([call]), 'claude-opus-4-6-thinking', store).request.contents.slice(3)).toEqual(closing);
  });
});

describe('Claude thinking replay shape', () => {
  const history = (assistant: Json[]) => ({
    messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: assistant }, { role: 'user', content: 'more' }],
    thinking: { type: 'adaptive' },
  });
  const split = (r: Json) =>
    toGoogleRequest(req(r), { ...opts('claude-sonnet-4-6'), claudeThinkingReplay: 'split' }) as Json;

  test("'split' puts the signature on the next visible part, as the official client does", () => {
    const env = split(history([{ type: 'thinking', thinking: '120 ÷ 1.5 = 80', signature: CLAUDE_SIG }, { type: 'text', text: '**80 km/h**' }]));
    expect(env.request.contents[1].parts).toEqual([
      { text: '120 ÷ 1.5 = 80', thought: true },
      { text: '**80 km/h**', thoughtSignature: CLAUDE_SIG },
    ]);
  });

  test("'split' with only a call after the thinking signs the call", () => {
    const env = split(history([{ type: 'thinking', thinking: 't', signature: CLAUDE_SIG }, { type: 'tool_use', id: 'toolu_vrtx_A', name: 'Bash', input: {} }]));
    expect(env.request.contents[1].parts[1]).toEqual({ functionCall: { name: 'Bash', args: {}, id: 'toolu_vrtx_A' }, thoughtSignature: CLAUDE_SIG });
  });

  test("'split' with nothing visible keeps the signature on the thought", () => {
    const env = split(history([{ type: 'thinking', thinking: 't', signature: CLAUDE_SIG }]));
    expect(env.request.contents[1].parts).toEqual([{ text: 't', thought: true, thoughtSignature: CLAUDE_SIG }]);
  });

  test("'split' falls back to inline when a turn has several signed thinking blocks", () => {
    const sig2 = btoa(`Eq${'B'.repeat(80)}`);
    const env = split(history([
      { type: 'thinking', thinking: 'a', signature: CLAUDE_SIG },
      { type: 'text', text: 'x' },
      { type: 'thinking', thinking: 'b', signature: sig2 },
    ]));
    expect(env.request.contents[1].parts).toEqual([
      { text: 'a', thought: true, thoughtSignature: CLAUDE_SIG },
      { text: 'b', thought: true, thoughtSignature: sig2 },
      { text: 'x' },
    ]);
  });
});

describe('tool_use input that is not an object (toObjectInput)', () => {
  // History can hold inputs of any JSON shape (glm-5.1 wraps its arguments in an array, clients keep
  // JSON strings); Google takes only an object as functionCall.args, and what the input held must
  // still be there for the model to read.
  const table: Array<[string, unknown, Record<string, unknown>]> = [
    ['an object', { command: 'ls' }, { command: 'ls' }],
    ['a one-object array (glm-5.1)', [{ command: 'ls' }], { command: 'ls' }],
    ['an array of values', [1, 2], { value: [1, 2] }],
    ['an array of two objects', [{ a: 1 }, { b: 2 }], { value: [{ a: 1 }, { b: 2 }] }],
    ['an empty array', [], {}],
    ['a JSON object string', '{"command":"ls"}', { command: 'ls' }],
    ['a JSON one-object-array string', '[{"a":3}]', { a: 3 }],
    ['a plain string', 'ls -la', { value: 'ls -la' }],
    ['an empty string', '', {}],
    ['a number', 42, { value: 42 }],
    ['zero', 0, { value: 0 }],
    ['a boolean', false, { value: false }],
    ['null', null, {}],
  ];
  const conversation = (input: unknown): Json => ({
    messages: [
      { role: 'user', content: 'go' },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_vrtx_A', name: 'Bash', input }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_vrtx_A', content: 'ok' }] },
    ],
    thinking: { type: 'disabled' },
  });

  test.each(table)('%s reaches Google as a valid args object keeping its content', (_n, input, args) => {
    for (const model of ['claude-sonnet-4-6', 'gemini-3-flash']) {
      const r = conversation(structuredClone(input));
      const before = JSON.stringify(r);
      const call = translate(r, model).request.contents[1].parts[0].functionCall;
      expect(call.args).toEqual(args);
      expect(typeof call.args === 'object' && call.args !== null && !Array.isArray(call.args)).toBe(true);
      // The client's request is not rewritten on the way.
      expect(JSON.stringify(r)).toBe(before);
    }
  });

  test('a JSON string input with \\u escapes beyond ASCII reaches Google as the bytes of its text', () => {
    // The request is byte strings (byte-strings.ts) and goes up written as Latin-1: an escape parsed
    // to a real "é" or "—" would go up as one wrong byte (invalid UTF-8), not as its UTF-8.
    const input = toByteString('{"path":"caf\\u00e9 \\u2014 déjà","n":1}');
    for (const model of ['claude-sonnet-4-6', 'gemini-3-flash']) {
      const call = translate(conversation(input), model).request.contents[1].parts[0].functionCall;
      expect(call.args).toEqual({ path: toByteString('café — déjà'), n: 1 });
    }
  });

  test.each(table)('%s: the args Google echoes in a call come back to the client unchanged', async (_n, input) => {
    const store = createSignatureStore();
    const args = translate(conversation(input), 'claude-sonnet-4-6', store).request.contents[1].parts[0].functionCall.args;
    const chunk = { response: { candidates: [{ content: { role: 'model', parts: [{ functionCall: { name: 'Bash', args, id: 'toolu_vrtx_B' } }] }, finishReason: 'STOP' }] } };
    const msg = await accumulate(await translateStream([chunk], { clientModel: 'claude-sonnet-4-5', family: 'claude', sessionKey: 'sess-1', signatures: store }));
    const echoed = msg.content.find((b) => b.type === 'tool_use') as Json;
    expect(echoed.input).toEqual(args);
    // Sent back as history, it is the same args again.
    const again = translate(
      { messages: [{ role: 'user', content: 'go' }, { role: 'assistant', content: [echoed] }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: echoed.id, content: 'ok' }] }], thinking: { type: 'disabled' } },
      'claude-sonnet-4-6',
      store,
    );
    expect(again.request.contents[1].parts[0].functionCall.args).toEqual(args);
  });
});

describe('tool ids Claude would refuse (^[a-zA-Z0-9_-]+$)', () => {
  const FINE = /^[a-zA-Z0-9_-]+$/;
  // Ids made elsewhere: a GLM-style call id with a dot, one with a colon and slash, one beyond ASCII
  // (as the request's byte string), an empty one, and two that differ only in characters Claude refuses.
  const ids = ['call_9b2.e41', 'functions.Bash:0/1', toByteString('outil-é'), '', 'a.b', 'a:b'];
  const conversation = (): Json => ({
    tools: [{ name: 'Bash', input_schema: { type: 'object', properties: { command: { type: 'string' } } } }],
    messages: [
      { role: 'user', content: 'go' },
      // A fine id equal to what a naive rewrite of 'a.b' would give must not be taken over.
      { role: 'assistant', content: [...ids, 'a_b'].map((id, i) => ({ type: 'tool_use', id, name: 'Bash', input: { command: `echo ${i}` } })) },
      // Results in another order than the calls, as Claude Code sends them.
      { role: 'user', content: [...ids, 'a_b'].reverse().map((id) => ({ type: 'tool_result', tool_use_id: id, content: `out ${id}` })) },
    ],
    thinking: { type: 'disabled' },
  });

  test.each(['claude-sonnet-4-6', 'gemini-3-flash'])('%s: calls and results get the same fitting ids, all distinct, fine ones unchanged', (model) => {
    const c = translate(conversation(), model).request.contents;
    const calls = c[1].parts.map((p: Json) => p.functionCall);
    const results = c[2].parts.map((p: Json) => p.functionResponse);
    expect(calls).toHaveLength(7);
    expect(results.map((r: Json) => r.id)).toEqual(calls.map((f: Json) => f.id));
    for (const f of calls) expect(f.id).toMatch(FINE);
    expect(new Set(calls.map((f: Json) => f.id)).size).toBe(7);
    expect(calls[6].id).toBe('a_b');
    // Readable: the id keeps its fitting characters.
    expect(calls[0].id).toStartWith('call_9b2_e41_');
    expect(calls[2].id).toStartWith('outil-__');
  });

  test('the same history gets the same ids on every turn (Google keys its prompt cache on the contents)', () => {
    const a = translate(conversation(), 'claude-sonnet-4-6').request.contents;
    const b = translate(conversation(), 'claude-sonnet-4-6').request.contents;
    expect(b).toEqual(a);
  });

  test('an id that fits is sent as it is', () => {
    const c = translate(
      {
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_vrtx_01AbC-d_9', name: 'Bash', input: {} }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_vrtx_01AbC-d_9', content: 'ok' }] },
        ],
        thinking: { type: 'disabled' },
      },
      'claude-sonnet-4-6',
    ).request.contents;
    expect(c[1].parts[0].functionCall.id).toBe('toolu_vrtx_01AbC-d_9');
    expect(c[2].parts[0].functionResponse.id).toBe('toolu_vrtx_01AbC-d_9');
  });

  test("an id Google gives that the client could not send back becomes one it can, and the next turn replays the call with its signature", async () => {
    const store = createSignatureStore();
    const chunk = {
      response: {
        candidates: [{ content: { role: 'model', parts: [{ functionCall: { name: 'Bash', args: { command: 'ls' }, id: 'call.7:x' }, thoughtSignature: GEMINI_SIG }] }, finishReason: 'STOP' }],
      },
    };
    store.rememberThinking(GEMINI_SIG, 'gemini');
    const msg = await accumulate(await translateStream([chunk], { clientModel: 'gemini-3-flash', family: 'gemini', sessionKey: 'sess-1', signatures: store }));
    const call = msg.content.find((b) => b.type === 'tool_use') as Json;
    expect(call.id).toMatch(FINE);
    const c = translate(
      {
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', content: [call] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'a.txt' }] },
        ],
        thinking: { type: 'disabled' },
      },
      'gemini-3-flash',
      store,
    ).request.contents;
    expect(c[1].parts[0]).toEqual({ functionCall: { name: 'Bash', args: { command: 'ls' }, id: call.id }, thoughtSignature: GEMINI_SIG });
    expect(c[2].parts[0].functionResponse.id).toBe(call.id);
  });
});
