// Recognising Anthropic's web search tool the way Claude Code's WebSearch sends it (its own request:
// one user message, the typed tool alone, tool_choice forcing it), and the domain rules of its hits.
import { describe, expect, test } from 'bun:test';
import type { MessagesRequest } from '../../src/anthropic/schema.ts';
import { domainAllowed, searchQueryOf, searchTextOf, webSearchToolOf } from '../../src/anthropic/web-search.ts';

const req = (tools: unknown[] | undefined, messages: unknown[] = [{ role: 'user', content: 'Perform a web search for the query: bun' }]) =>
  ({ model: 'm', max_tokens: 10, messages, tools }) as MessagesRequest;

describe('webSearchToolOf', () => {
  const rows: Array<[string, unknown[] | undefined, ReturnType<typeof webSearchToolOf>]> = [
    ['Claude Code WebSearch (2025-03-05, max_uses 8)', [{ type: 'web_search_20250305', name: 'web_search', max_uses: 8 }], { type: 'web_search_20250305', name: 'web_search', max_uses: 8 }],
    ['a newer version with domain rules', [{ type: 'web_search_20260209', name: 'web_search', allowed_domains: ['a.com', ''], blocked_domains: [] }], { type: 'web_search_20260209', name: 'web_search', allowed_domains: ['a.com'] }],
    ['no tools', undefined, null],
    ['a custom tool', [{ name: 'Bash', input_schema: { type: 'object' } }], null],
    ['web search beside a custom tool', [{ type: 'web_search_20250305', name: 'web_search' }, { name: 'Bash', input_schema: {} }], null],
    ['web fetch (another server tool)', [{ type: 'web_fetch_20250910', name: 'web_fetch' }], null],
    ['a look-alike type', [{ type: 'web_search', name: 'web_search' }], null],
  ];
  for (const [name, tools, want] of rows) test(name, () => expect(webSearchToolOf(req(tools))).toEqual(want));
});

describe('what to search for', () => {
  test("the last user message's text, in parts or whole", () => {
    expect(searchTextOf(req(undefined))).toBe('Perform a web search for the query: bun');
    const parts = [
      { role: 'user', content: 'old question' },
      { role: 'assistant', content: 'ok' },
      { role: 'user', content: [{ type: 'text', text: ' first ' }, { type: 'image', source: {} }, { type: 'text', text: 'second' }] },
    ];
    expect(searchTextOf(req(undefined, parts))).toBe('first\nsecond');
    expect(searchTextOf(req(undefined, [{ role: 'assistant', content: 'x' }]))).toBe('');
  });

  test("Claude Code's wording is taken off the query, anything else kept", () => {
    expect(searchQueryOf('Perform a web search for the query: bun 1.4 release notes')).toBe('bun 1.4 release notes');
    expect(searchQueryOf('  latest TypeScript version ')).toBe('latest TypeScript version');
  });
});

describe('domainAllowed', () => {
  const rows: Array<[string, Parameters<typeof domainAllowed>[1], boolean]> = [
    ['example.com', {}, true],
    ['docs.example.com', { allowed_domains: ['example.com'] }, true],
    ['www.example.com', { allowed_domains: ['https://www.example.com/path'] }, true],
    ['notexample.com', { allowed_domains: ['example.com'] }, false],
    ['other.org', { allowed_domains: ['example.com'] }, false],
    ['ads.example.com', { blocked_domains: ['example.com'] }, false],
    ['example.com', { blocked_domains: ['ads.example.com'] }, true],
    ['EXAMPLE.com', { allowed_domains: ['example.COM'], blocked_domains: ['example.com'] }, false],
  ];
  for (const [host, tool, want] of rows) test(`${host} with ${JSON.stringify(tool)}: ${want}`, () => expect(domainAllowed(host, tool)).toBe(want));
});
