// Anthropic's web search tool served by Google Search grounding (antigravity.md §13.2, as CLIProxyAPI
// does): the search goes to a search model (`webSearchModelIds` of the catalog) with the googleSearch
// tool and requestType "web_search", and the grounded answer comes back in the blocks Anthropic's API
// sends for its own search: server_tool_use (the query), web_search_tool_result (title + url of each
// source), then the answer as text. Claude Code's WebSearch reads exactly those (count, hits, text).
// Pure: the provider does the call.
import {
  blockDelta,
  blockStart,
  blockStop,
  MESSAGE_STOP,
  messageDelta,
  messageStart,
  type AnthropicEvent,
} from '../../anthropic/events.ts';
import { domainAllowed, searchQueryOf, type WebSearchTool } from '../../anthropic/web-search.ts';
import { UpstreamError } from '../provider.ts';
import { blockOf, isFilterFinish, readUsage, throwIfStreamError, type TokenCounts, unwrapChunk } from './from-google.ts';

type Json = Record<string, unknown>;

const SYSTEM =
  'You are a search engine bot. Search the web for what the user asks, then answer with the facts the ' +
  'results give: briefly, in plain text, naming the sources.';

/** The Cloud Code envelope of one grounded search. No sessionId or requestId, like the official client's. */
export function webSearchEnvelope(tool: WebSearchTool, text: string, opts: { model: string; projectId: string }): Json {
  let system = SYSTEM;
  if (tool.allowed_domains?.length) system += ` Use only results from these sites: ${tool.allowed_domains.join(', ')}.`;
  if (tool.blocked_domains?.length) system += ` Never use results from these sites: ${tool.blocked_domains.join(', ')}.`;
  return {
    project: opts.projectId,
    model: opts.model,
    userAgent: 'antigravity',
    requestType: 'web_search',
    request: {
      contents: [{ role: 'user', parts: [{ text }] }],
      systemInstruction: { role: 'user', parts: [{ text: system }] },
      tools: [{ googleSearch: {} }],
      generationConfig: { candidateCount: 1 },
    },
  };
}

export interface SearchSource {
  url: string;
  title: string;
}

export interface Grounding {
  text: string;
  queries: string[];
  sources: SearchSource[];
  promptTokens: number;
  cachedTokens: number;
  outputTokens: number;
  /** Whether any answer text or search (queries, sources) arrived (none: an empty answer, retried). */
  any: boolean;
  /** The content filter's verdict (promptFeedback.blockReason or a filter finishReason), or null. */
  blocked: string | null;
  /** The last finishReason Google gave (null: the stream ended without one, so it was cut short). */
  finishReason: string | null;
}

/** Gathers the streamed chunks of a grounded answer: text, queries, sources and usage. */
export function createGroundingCollector(): { feed(raw: unknown): void; result(): Grounding } {
  let text = '';
  let any = false;
  let blocked: string | null = null;
  let finishReason: string | null = null;
  const queries: string[] = [];
  const sources: SearchSource[] = [];
  const seen = new Set<string>();
  const n: TokenCounts = { prompt: 0, candidates: 0, cached: 0, thoughts: 0, total: 0 };
  return {
    feed(raw) {
      const resp = unwrapChunk(raw);
      if (!resp) return;
      throwIfStreamError(resp);
      readUsage(resp.usageMetadata, n);
      const block = blockOf(resp.promptFeedback);
      if (block) blocked = `blockReason ${block.reason}${block.message ? `: ${block.message}` : ''}`;
      const cand = Array.isArray(resp.candidates) && isObject(resp.candidates[0]) ? resp.candidates[0] : null;
      if (!cand) return;
      if (typeof cand.finishReason === 'string') finishReason = cand.finishReason;
      if (isFilterFinish(cand.finishReason)) blocked = `finishReason ${String(cand.finishReason)}`;
      const parts = isObject(cand.content) && Array.isArray(cand.content.parts) ? cand.content.parts : [];
      for (const p of parts) {
        if (!isObject(p) || p.thought === true || typeof p.text !== 'string') continue;
        text += p.text;
        // Empty parts (Claude's leading one, the closing one with STOP) are what an empty answer is made of.
        if (p.text.trim()) any = true;
      }
      const g = cand.groundingMetadata;
      if (!isObject(g)) return;
      for (const q of Array.isArray(g.webSearchQueries) ? g.webSearchQueries : []) {
        if (typeof q === 'string' && q.trim() && !queries.includes(q.trim())) queries.push(q.trim());
      }
      // A search that ran and found nothing is an answer; an empty groundingMetadata is not.
      if (queries.length > 0) any = true;
      for (const c of Array.isArray(g.groundingChunks) ? g.groundingChunks : []) {
        const web = isObject(c) && isObject(c.web) ? c.web : null;
        if (!web || typeof web.uri !== 'string' || seen.has(web.uri)) continue;
        seen.add(web.uri);
        sources.push({ url: web.uri, title: typeof web.title === 'string' && web.title ? web.title : hostOf(web.uri) });
        any = true;
      }
    },
    result: () => ({ text: text.trim(), queries, sources, promptTokens: n.prompt, cachedTokens: n.cached, outputTokens: n.candidates + n.thoughts, any, blocked, finishReason }),
  };
}

const REDIRECT_PATH = '/grounding-api-redirect/';
/** Where Google's grounding redirects live. */
export const GROUNDING_REDIRECT_ORIGIN = 'https://vertexaisearch.cloud.google.com';

/** Whether a source link is one of Google's grounding redirects (on one of `origins`) rather than the page. */
export function isGroundingRedirect(url: string, origins: readonly string[] = [GROUNDING_REDIRECT_ORIGIN]): boolean {
  try {
    const u = new URL(url);
    return u.pathname.startsWith(REDIRECT_PATH) && origins.includes(u.origin);
  } catch {
    return false;
  }
}

/**
 * The host a source is from. A grounding redirect's title is the site's domain (Vertex AI's
 * grounding format); a direct link speaks for itself.
 */
export function sourceHost(s: SearchSource): string {
  try {
    const u = new URL(s.url);
    return u.pathname.startsWith(REDIRECT_PATH) ? s.title : u.hostname;
  } catch {
    return s.title;
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return '';
  }
}

function srvToolUseId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `srvtoolu_${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * The Anthropic events of one search answer. Throws EMPTY_RESPONSE (retried) when nothing came back;
 * a filter's verdict is final and ends as stop_reason refusal, with no blocks if nothing came.
 */
export function webSearchEvents(g: Grounding, opts: { clientModel: string; tool: WebSearchTool; searchText: string }): AnthropicEvent[] {
  if (!g.any && !g.blocked) throw new UpstreamError('transient', 'empty response from upstream', { code: 'EMPTY_RESPONSE' });
  // Every Cloud Code answer ends with a finishReason, and the sources come with the last chunk: a
  // search cut before it would pass half an answer, often without its sources, off as whole.
  // Nothing has reached the client yet, so it is retried like any other failed call.
  if (g.finishReason === null && !g.blocked) {
    throw new UpstreamError('transient', 'Antigravity ended the web search answer without a finish reason: it was cut short', { code: 'TRUNCATED_STREAM' });
  }
  const start = messageStart(opts.clientModel, {
    input_tokens: Math.max(0, g.promptTokens - g.cachedTokens),
    output_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: g.cachedTokens,
  });
  if (!g.any) return [start, messageDelta('refusal', { output_tokens: g.outputTokens }), MESSAGE_STOP];
  const id = srvToolUseId();
  const query = g.queries[0] ?? searchQueryOf(opts.searchText);
  const results = g.sources
    .filter((s) => domainAllowed(sourceHost(s), opts.tool))
    .map((s) => ({ type: 'web_search_result', title: s.title, url: s.url, encrypted_content: '', page_age: null }));
  const out: AnthropicEvent[] = [
    start,
    blockStart(0, { type: 'server_tool_use', id, name: opts.tool.name || 'web_search', input: {} }),
    blockDelta(0, { type: 'input_json_delta', partial_json: JSON.stringify({ query }) }),
    blockStop(0),
    blockStart(1, { type: 'web_search_tool_result', tool_use_id: id, content: results }),
    blockStop(1),
  ];
  // Sources that all fall under the domain rules leave an answer made of excluded sites only: not passed on.
  const excludedOnly = g.sources.length > 0 && results.length === 0;
  if (g.text && !excludedOnly) {
    out.push(blockStart(2, { type: 'text', text: '' }), blockDelta(2, { type: 'text_delta', text: g.text }), blockStop(2));
  }
  out.push(messageDelta(g.blocked ? 'refusal' : 'end_turn', { output_tokens: g.outputTokens, server_tool_use: { web_search_requests: 1 } }), MESSAGE_STOP);
  return out;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
