// A local estimate for /v1/messages/count_tokens. No upstream is asked: a failure there would make
// the SDK retry, and Claude Code only needs a reasonable number. Latin text runs ~4 chars per token,
// CJK ~1 char per token; images cost by their pixel size, documents by their length.
import { imageSizeOf } from './image-size.ts';
import { pdfPageCount } from './pdf-pages.ts';

/** Per-message framing (role markers). */
const MESSAGE_OVERHEAD = 3;
/** Hidden system prompt the API adds when tools are present. */
const TOOLS_OVERHEAD = 300;
const PER_TOOL_OVERHEAD = 10;
/** An image of unknown size: the most one costs once scaled down (about 1.15 megapixels / 750). */
const IMAGE_TOKENS = 1600;
/** Anthropic scales an image down to this long edge, and then bills width × height / 750 tokens. */
const IMAGE_MAX_EDGE = 1568;
const PIXELS_PER_TOKEN = 750;
/** Rough cost of one PDF page (text + page image). */
const PDF_PAGE_TOKENS = 1500;
/** ~Bytes per PDF page, to guess a page count from the base64 size when the page tree is not readable. */
const PDF_BYTES_PER_PAGE = 60_000;

/** Tokens of a piece of text. */
export function textTokens(text: string): number {
  let ascii = 0;
  let wide = 0;
  let other = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) ascii++;
    // CJK, Hangul, kana and the like: about one token each.
    else if (c >= 0x2e80 && c < 0xd800) wide++;
    // Surrogate halves, accented letters, Cyrillic…: about two characters per token.
    else other++;
  }
  return Math.ceil(ascii / 4 + wide + other / 2);
}

/** An image's tokens from its pixel size when its header tells it (an icon is not a screenshot), else the most. */
function imageTokens(block: Record<string, unknown>): number {
  const src = isObj(block.source) ? block.source : {};
  const size = src.type === 'base64' && typeof src.data === 'string' ? imageSizeOf(src.data) : null;
  if (!size) return IMAGE_TOKENS;
  const scale = Math.min(1, IMAGE_MAX_EDGE / Math.max(size.width, size.height));
  const tokens = Math.ceil((size.width * scale * size.height * scale) / PIXELS_PER_TOKEN);
  return Math.max(1, Math.min(IMAGE_TOKENS, tokens));
}

function jsonTokens(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value === 'string') return textTokens(value);
  try {
    return textTokens(JSON.stringify(value) ?? '');
  } catch {
    return 0;
  }
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function documentTokens(block: Record<string, unknown>): number {
  const src = isObj(block.source) ? block.source : {};
  const n = jsonTokens(block.title) + jsonTokens(block.context);
  if (src.type === 'text' && typeof src.data === 'string') return n + textTokens(src.data);
  if (src.type === 'content') return n + contentTokens(src.content);
  if (src.type === 'base64' && typeof src.data === 'string') {
    // Pages as the PDF's page tree counts them; failing that, guessed from its size.
    const pages = pdfPageCount(src.data) ?? Math.ceil((src.data.length * 3) / 4 / PDF_BYTES_PER_PAGE);
    return n + Math.max(1, pages) * PDF_PAGE_TOKENS;
  }
  return n + PDF_PAGE_TOKENS;
}

function blockTokens(block: unknown, countThinking: boolean): number {
  if (!isObj(block)) return 0;
  switch (block.type) {
    case 'text':
      return textTokens(typeof block.text === 'string' ? block.text : '');
    case 'image':
      return imageTokens(block);
    case 'document':
      return documentTokens(block);
    case 'thinking':
      return countThinking && typeof block.thinking === 'string' ? textTokens(block.thinking) : 0;
    case 'redacted_thinking':
      return countThinking && typeof block.data === 'string' ? Math.ceil(block.data.length / 8) : 0;
    case 'tool_use':
    case 'server_tool_use':
    case 'mcp_tool_use':
      return 5 + jsonTokens(block.name) + jsonTokens(block.input);
    case 'tool_result':
    case 'mcp_tool_result':
      return 5 + contentTokens(block.content);
    case 'search_result':
      return 5 + jsonTokens(block.title) + jsonTokens(block.source) + contentTokens(block.content);
    default:
      // Server-tool results and the like: their JSON is a fair proxy.
      return jsonTokens(block);
  }
}

function contentTokens(content: unknown, countThinking = true): number {
  if (typeof content === 'string') return textTokens(content);
  if (!Array.isArray(content)) return 0;
  let n = 0;
  for (const b of content) n += blockTokens(b, countThinking);
  return n;
}

/** What count_tokens looks at; other fields are ignored. */
export interface TokenCountInput {
  system?: unknown;
  messages?: unknown;
  tools?: unknown;
  [extra: string]: unknown;
}

function onlyToolResults(content: unknown): boolean {
  return Array.isArray(content) && content.length > 0 && content.every((b) => isObj(b) && b.type === 'tool_result');
}

/** Index of the first message of the current turn: just after the last user message that is not only tool results. */
function currentTurnStart(messages: readonly unknown[]): number {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (isObj(m) && m.role === 'user' && !onlyToolResults(m.content)) return i + 1;
  }
  return 0;
}

/** Estimated input tokens of a request (system, messages and tools). Never throws; at least 1. */
export function estimateInputTokens(req: TokenCountInput): number {
  let n = 0;
  n += contentTokens(req.system);
  if (Array.isArray(req.messages)) {
    // Thinking from earlier assistant turns does not count towards the context (Anthropic drops it);
    // that of the current turn does: everything after the user last said something other than tool
    // results (a tool loop sends its thinking back).
    const turnStart = currentTurnStart(req.messages);
    req.messages.forEach((m, i) => {
      if (!isObj(m)) return;
      n += MESSAGE_OVERHEAD + contentTokens(m.content, i >= turnStart);
    });
  }
  if (Array.isArray(req.tools) && req.tools.length > 0) {
    n += TOOLS_OVERHEAD;
    for (const t of req.tools) {
      if (!isObj(t)) continue;
      n += PER_TOOL_OVERHEAD + jsonTokens(t.name) + jsonTokens(t.description) + jsonTokens(t.input_schema);
      // Server tools (web_search_…) carry config instead of a schema.
      if (t.input_schema === undefined && typeof t.type === 'string') n += jsonTokens(t);
    }
  }
  return Math.max(1, n);
}
