// The Anthropic streaming vocabulary every room speaks. Providers yield these; the server writes
// them as SSE or collects them into one Message. Unknown fields are allowed to ride along.

export type StopReason =
  | 'end_turn'
  | 'max_tokens'
  | 'stop_sequence'
  | 'tool_use'
  | 'pause_turn'
  | 'refusal'
  | 'model_context_window_exceeded';

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  [extra: string]: unknown;
}

export type ContentBlock =
  | { type: 'text'; text: string; citations?: unknown[] | null; [extra: string]: unknown }
  | { type: 'thinking'; thinking: string; signature: string; [extra: string]: unknown }
  | { type: 'redacted_thinking'; data: string; [extra: string]: unknown }
  | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown>; [extra: string]: unknown }
  | { type: string; [extra: string]: unknown };

export interface Message {
  id: string;
  type: 'message';
  role: 'assistant';
  model: string;
  content: ContentBlock[];
  stop_reason: StopReason | null;
  stop_sequence: string | null;
  usage: Usage;
  [extra: string]: unknown;
}

export type Delta =
  | { type: 'text_delta'; text: string }
  | { type: 'thinking_delta'; thinking: string }
  | { type: 'signature_delta'; signature: string }
  | { type: 'input_json_delta'; partial_json: string }
  | { type: 'citations_delta'; citation: unknown }
  | { type: string; [extra: string]: unknown };

export interface MessageStartEvent { type: 'message_start'; message: Message }
export interface ContentBlockStartEvent { type: 'content_block_start'; index: number; content_block: ContentBlock }
export interface ContentBlockDeltaEvent { type: 'content_block_delta'; index: number; delta: Delta }
export interface ContentBlockStopEvent { type: 'content_block_stop'; index: number }
export interface MessageDeltaEvent {
  type: 'message_delta';
  delta: { stop_reason: StopReason | null; stop_sequence: string | null; [extra: string]: unknown };
  usage: Partial<Usage> & { output_tokens: number };
}
export interface MessageStopEvent { type: 'message_stop' }
export interface PingEvent { type: 'ping' }
export interface ErrorEvent { type: 'error'; error: { type: string; message: string } }

export type AnthropicEvent =
  | MessageStartEvent
  | ContentBlockStartEvent
  | ContentBlockDeltaEvent
  | ContentBlockStopEvent
  | MessageDeltaEvent
  | MessageStopEvent
  | PingEvent
  | ErrorEvent;

const HEX = '0123456789abcdef';
function randomHex(n: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  let s = '';
  for (const b of bytes) s += HEX[b >> 4]! + HEX[b & 15]!;
  return s;
}

export function newMessageId(): string {
  return `msg_${randomHex(12)}`;
}

export function newToolUseId(): string {
  return `toolu_${randomHex(12)}`;
}

export function messageStart(model: string, usage: Usage, id = newMessageId()): MessageStartEvent {
  return {
    type: 'message_start',
    message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage },
  };
}

export function blockStart(index: number, content_block: ContentBlock): ContentBlockStartEvent {
  return { type: 'content_block_start', index, content_block };
}

export function blockDelta(index: number, delta: Delta): ContentBlockDeltaEvent {
  return { type: 'content_block_delta', index, delta };
}

export function blockStop(index: number): ContentBlockStopEvent {
  return { type: 'content_block_stop', index };
}

export function messageDelta(
  stop_reason: StopReason | null,
  usage: MessageDeltaEvent['usage'],
  stop_sequence: string | null = null,
): MessageDeltaEvent {
  return { type: 'message_delta', delta: { stop_reason, stop_sequence }, usage };
}

export const MESSAGE_STOP: MessageStopEvent = Object.freeze({ type: 'message_stop' }) as MessageStopEvent;
export const PING: PingEvent = Object.freeze({ type: 'ping' }) as PingEvent;
