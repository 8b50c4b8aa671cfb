// Anthropic's web search server tool (`web_search_20250305` and later versions). Claude Code's
// WebSearch tool sends it in a request of its own: one user message ("Perform a web search for the
// query: …"), the typed tool as the only tool, and tool_choice forcing it. Upstreams without
// Anthropic's server tools serve such a request with their own search.
import type { MessagesRequest, Tool } from './schema.ts';

export interface WebSearchTool {
  type: string;
  name: string;
  allowed_domains?: string[];
  blocked_domains?: string[];
  max_uses?: number;
}

const WEB_SEARCH_TYPE = /^web_search_\d{8}$/;

function strings(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x.trim() !== '') : undefined;
}

/** The request's web search tool when it is the request's only tool, else null. */
export function webSearchToolOf(req: Pick<MessagesRequest, 'tools'>): WebSearchTool | null {
  const tools = req.tools;
  if (!tools || tools.length !== 1) return null;
  const t = tools[0] as Tool;
  if (typeof t.type !== 'string' || !WEB_SEARCH_TYPE.test(t.type)) return null;
  const out: WebSearchTool = { type: t.type, name: t.name };
  const allowed = strings(t.allowed_domains);
  const blocked = strings(t.blocked_domains);
  if (allowed?.length) out.allowed_domains = allowed;
  if (blocked?.length) out.blocked_domains = blocked;
  if (typeof t.max_uses === 'number') out.max_uses = t.max_uses;
  return out;
}

const CLAUDE_CODE_PREFIX = /^\s*Perform a web search for the query:\s*/i;

/** The text of the last user message: what to search for. */
export function searchTextOf(req: Pick<MessagesRequest, 'messages'>): string {
  for (let i = req.messages.length - 1; i >= 0; i--) {
    const m = req.messages[i]!;
    if (m.role !== 'user') continue;
    if (typeof m.content === 'string') return m.content.trim();
    const texts: string[] = [];
    for (const b of m.content) if (b.type === 'text' && typeof b.text === 'string' && b.text.trim()) texts.push(b.text.trim());
    if (texts.length) return texts.join('\n');
  }
  return '';
}

/** The query itself: Claude Code's wording taken off, the rest as it is. */
export function searchQueryOf(text: string): string {
  return text.replace(CLAUDE_CODE_PREFIX, '').trim();
}

/** Whether a result's host may be shown under the tool's domain rules (a domain covers its subdomains). */
export function domainAllowed(host: string, tool: Pick<WebSearchTool, 'allowed_domains' | 'blocked_domains'>): boolean {
  const h = host.toLowerCase().replace(/^www\./, '');
  const covers = (d: string): boolean => {
    const dom = d.toLowerCase().replace(/^(https?:\/\/)?(www\.)?/, '').replace(/\/.*$/, '');
    return h === dom || h.endsWith(`.${dom}`);
  };
  if (tool.blocked_domains?.some(covers)) return false;
  if (tool.allowed_domains?.length) return tool.allowed_domains.some(covers);
  return true;
}
