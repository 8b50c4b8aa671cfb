// A Google Search grounded answer -> the blocks of Anthropic's own web search. Chunks modelled on
// Vertex AI's groundingMetadata (webSearchQueries, groundingChunks[].web{uri,title} with redirect
// links titled by domain, groundingSupports) as antigravity.md §13.2 describes it.
import { describe, expect, test } from 'bun:test';
import type { AnthropicEvent } from '../../../src/anthropic/events.ts';
import { createGroundingCollector, isGroundingRedirect, sourceHost, webSearchEnvelope, webSearchEvents } from '../../../src/providers/antigravity/web-search.ts';
import { UpstreamError } from '../../../src/providers/provider.ts';
import { readSseFixture } from './stream-helpers.ts';

const TOOL = { type: 'web_search_20250305', name: 'web_search', max_uses: 8 };
const redirect = (n: number) => `https://vertexaisearch.cloud.google.com/grounding-api-redirect/AUZIYQ${n}`;
const chunk = (parts: unknown[], extra: Record<string, unknown> = {}) => ({ response: { candidates: [{ content: { role: 'model', parts }, ...extra }], modelVersion: 'gemini-3.1-flash-lite' } });
const grounded = {
  webSearchQueries: ['bun 1.4 release', 'bun 1.4 changelog'],
  groundingChunks: [{ web: { uri: redirect(1), title: 'bun.sh' } }, { web: { uri: redirect(2), title: 'github.com' } }, { web: { uri: redirect(1), title: 'bun.sh' } }, { retrievedContext: {} }],
  groundingSupports: [{ segment: { startIndex: 0, endIndex: 10 }, groundingChunkIndices: [0] }],
};

function collect(chunks: unknown[]) {
  const c = createGroundingCollector();
  for (const x of chunks) c.feed(x);
  return c.result();
}

const blocks = (evs: AnthropicEvent[]) => evs.filter((e) => e.type === 'content_block_start').map((e) => (e as { content_block: { type: string } }).content_block);

describe('createGroundingCollector', () => {
  test('text across chunks, queries, unique sources and the last usage', () => {
    const g = collect([
      chunk([{ text: 'Bun 1.4 ' }, { text: 'thinking', thought: true }]),
      { response: { ...chunk([{ text: 'shipped.' }], { finishReason: 'STOP', groundingMetadata: grounded }).response, usageMetadata: { promptTokenCount: 40, cachedContentTokenCount: 10, candidatesTokenCount: 12, thoughtsTokenCount: 3 } } },
    ]);
    expect(g).toEqual({
      text: 'Bun 1.4 shipped.',
      queries: ['bun 1.4 release', 'bun 1.4 changelog'],
      sources: [{ url: redirect(1), title: 'bun.sh' }, { url: redirect(2), title: 'github.com' }],
      promptTokens: 40,
      cachedTokens: 10,
      outputTokens: 15,
      any: true,
      blocked: null,
      finishReason: 'STOP',
    });
  });

  test('an error chunk in the stream is an upstream error', () => {
    const c = createGroundingCollector();
    expect(() => c.feed({ error: { code: 503, status: 'UNAVAILABLE', message: 'overloaded' } })).toThrow(UpstreamError);
  });

  test('a source without a title is named by its host', () => {
    expect(collect([chunk([], { groundingMetadata: { groundingChunks: [{ web: { uri: 'https://docs.example.org/a' } }] } })]).sources).toEqual([
      { url: 'https://docs.example.org/a', title: 'docs.example.org' },
    ]);
  });
});

describe('isGroundingRedirect', () => {
  test("only Google's redirect path on Google's redirect host, or on a host the caller trusts", () => {
    expect(isGroundingRedirect(redirect(1))).toBe(true);
    expect(isGroundingRedirect('https://vertexaisearch.cloud.google.com/other/x')).toBe(false);
    expect(isGroundingRedirect('https://evil.example/grounding-api-redirect/x')).toBe(false);
    expect(isGroundingRedirect('http://127.0.0.1:9/grounding-api-redirect/x', ['http://127.0.0.1:9'])).toBe(true);
    expect(isGroundingRedirect('not a url')).toBe(false);
  });
});

describe('sourceHost', () => {
  test("a grounding redirect is from the site its title names; a direct link from its own host", () => {
    expect(sourceHost({ url: redirect(1), title: 'bun.sh' })).toBe('bun.sh');
    expect(sourceHost({ url: 'https://github.com/oven-sh/bun', title: 'Bun on GitHub' })).toBe('github.com');
  });
});

describe('webSearchEvents', () => {
  const opts = { clientModel: 'claude-opus-4-6', tool: TOOL, searchText: 'Perform a web search for the query: bun news' };

  test('server_tool_use with the query, the hits, then the text; usage counts one search', () => {
    const evs = webSearchEvents(collect([chunk([{ text: 'Bun 1.4 shipped.' }], { groundingMetadata: grounded, finishReason: 'STOP' })]), opts);
    expect(evs.map((e) => e.type)).toEqual([
      'message_start',
      'content_block_start', 'content_block_delta', 'content_block_stop',
      'content_block_start', 'content_block_stop',
      'content_block_start', 'content_block_delta', 'content_block_stop',
      'message_delta', 'message_stop',
    ]);
    const [use, result, text] = blocks(evs) as Array<Record<string, unknown>>;
    expect(use).toEqual({ type: 'server_tool_use', id: expect.stringMatching(/^srvtoolu_/), name: 'web_search', input: {} });
    expect(evs[2]).toEqual({ type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '{"query":"bun 1.4 release"}' } });
    expect(result).toEqual({
      type: 'web_search_tool_result',
      tool_use_id: use!.id,
      content: [
        { type: 'web_search_result', title: 'bun.sh', url: redirect(1), encrypted_content: '', page_age: null },
        { type: 'web_search_result', title: 'github.com', url: redirect(2), encrypted_content: '', page_age: null },
      ],
    });
    expect(text).toEqual({ type: 'text', text: '' });
    expect(evs.at(-2)).toEqual({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 0, server_tool_use: { web_search_requests: 1 } } });
  });

  test('without queries from Google the query is the asked text; without text there is no text block', () => {
    const evs = webSearchEvents(collect([chunk([], { groundingMetadata: { groundingChunks: [{ web: { uri: redirect(1), title: 'bun.sh' } }] }, finishReason: 'STOP' })]), opts);
    expect(blocks(evs).map((b) => b.type)).toEqual(['server_tool_use', 'web_search_tool_result']);
    expect(JSON.stringify(evs)).toContain('{\\"query\\":\\"bun news\\"}');
  });

  test('the domain rules filter the hits', () => {
    const g = collect([chunk([{ text: 'x' }], { groundingMetadata: grounded, finishReason: 'STOP' })]);
    const hits = (tool: object) => (blocks(webSearchEvents(g, { ...opts, tool: { ...TOOL, ...tool } }))[1] as unknown as { content: Array<{ title: string }> }).content.map((h) => h.title);
    expect(hits({ blocked_domains: ['github.com'] })).toEqual(['bun.sh']);
    expect(hits({ allowed_domains: ['github.com'] })).toEqual(['github.com']);
  });

  test('an answer drawn only from sites the domain rules exclude is not passed on: no hits and no text', () => {
    const g = collect([chunk([{ text: 'What spam.example says.' }], { groundingMetadata: grounded, finishReason: 'STOP' })]);
    for (const rule of [{ blocked_domains: ['bun.sh', 'github.com'] }, { allowed_domains: ['docs.python.org'] }]) {
      const evs = webSearchEvents(g, { ...opts, tool: { ...TOOL, ...rule } });
      expect(blocks(evs).map((b) => b.type)).toEqual(['server_tool_use', 'web_search_tool_result']);
      expect(JSON.stringify(evs)).not.toContain('spam.example');
      expect(evs.at(-2)).toMatchObject({ delta: { stop_reason: 'end_turn' }, usage: { server_tool_use: { web_search_requests: 1 } } });
    }
    // One allowed source is enough for the answer to stand.
    expect(blocks(webSearchEvents(g, { ...opts, tool: { ...TOOL, blocked_domains: ['github.com'] } })).map((b) => b.type)).toContain('text');
  });

  // A filter's verdict is final: retried, the same search gets the same verdict.
  test('a search the filter stopped before any part is a finished refusal, not an empty response', () => {
    for (const g of [
      collect([{ response: { candidates: [{ content: { role: 'model' }, finishReason: 'SAFETY' }], usageMetadata: { promptTokenCount: 30 } } }]),
      collect([{ response: { promptFeedback: { blockReason: 'PROHIBITED_CONTENT' }, usageMetadata: { promptTokenCount: 30 } } }]),
    ]) {
      expect(g.blocked).not.toBeNull();
      const evs = webSearchEvents(g, opts);
      expect(evs.map((e) => e.type)).toEqual(['message_start', 'message_delta', 'message_stop']);
      expect(evs[1]).toMatchObject({ delta: { stop_reason: 'refusal' } });
      expect(evs[0]).toMatchObject({ message: { usage: { input_tokens: 30 } } });
    }
  });

  test('a grounded answer a filter cut short keeps what came and ends with refusal', () => {
    const evs = webSearchEvents(collect([chunk([{ text: 'Partial.' }], { groundingMetadata: grounded, finishReason: 'RECITATION' })]), opts);
    expect(blocks(evs).map((b) => b.type)).toEqual(['server_tool_use', 'web_search_tool_result', 'text']);
    expect(evs.at(-2)).toMatchObject({ delta: { stop_reason: 'refusal' } });
  });

  test('nothing at all is an empty response, which the provider retries', () => {
    try {
      webSearchEvents(collect([{ response: { candidates: [{ content: { role: 'model' } }] } }]), opts);
      throw new Error('expected EMPTY_RESPONSE');
    } catch (e) {
      expect(e).toBeInstanceOf(UpstreamError);
      expect((e as UpstreamError).code).toBe('EMPTY_RESPONSE');
    }
  });

  // The empty answer of §8.4 as it arrives: empty (or blank) text parts, an empty groundingMetadata, then STOP.
  test('an answer of only empty text parts and no search is an empty response, not a search that found nothing', () => {
    const g = collect([chunk([{ text: '' }]), chunk([{ text: ' ' }], { groundingMetadata: {} }), chunk([{ text: '' }], { finishReason: 'STOP' })]);
    expect(() => webSearchEvents(g, opts)).toThrow(expect.objectContaining({ code: 'EMPTY_RESPONSE' }));
  });

  // The sources come with the last chunk, the one with the finishReason: a stream cut before it is
  // half an answer with no sources, which must be retried, not passed on as the search's result.
  test('a grounded answer whose stream ends before its finishReason is a retryable truncation, not a source-less answer', async () => {
    const chunks = await readSseFixture('web-search-grounded.sse');
    const whole = webSearchEvents(collect(chunks), opts);
    expect(blocks(whole).map((b) => b.type)).toEqual(['server_tool_use', 'web_search_tool_result', 'text']);
    expect(whole.at(-2)).toMatchObject({ delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 14 } });
    const cut = collect(chunks.slice(0, -1));
    expect(() => webSearchEvents(cut, opts)).toThrow(expect.objectContaining({ kind: 'transient', code: 'TRUNCATED_STREAM' }));
  });

  test('a search that ran but found nothing is still an answer', () => {
    const g = collect([chunk([{ text: '' }], { groundingMetadata: { webSearchQueries: ['obscure thing'] }, finishReason: 'STOP' })]);
    const evs = webSearchEvents(g, opts);
    expect(blocks(evs).map((b) => b.type)).toEqual(['server_tool_use', 'web_search_tool_result']);
  });
});

test('the envelope: search model, web_search request type, googleSearch, domain rules in the instruction', () => {
  const env = webSearchEnvelope({ ...TOOL, allowed_domains: ['a.com', 'b.org'] }, 'Perform a web search for the query: x', { model: 'gemini-3.1-flash-lite', projectId: 'p-1' });
  expect(env).toMatchObject({ project: 'p-1', model: 'gemini-3.1-flash-lite', requestType: 'web_search', request: { tools: [{ googleSearch: {} }], generationConfig: { candidateCount: 1 } } });
  expect(JSON.stringify(env)).toContain('Use only results from these sites: a.com, b.org.');
  expect(env).not.toHaveProperty('requestId');
});
