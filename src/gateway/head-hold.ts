// What of an answer's first events the gateway holds back before it hands anything on. Until the
// first byte reaches the client, a failure is one it never saw, and the request moves to another
// account; after it, the failure reaches the client as an `error` event after content, which ends an
// SDK stream and which Claude Code takes as fatal (protocol §1.6). So the head is held:
// - message_start and pings, until something follows them (Z.AI sends message_start alone);
// - an answer that opens with a tool call (GLM with thinking off and Claude without thinking often
//   answer with the call alone), until the call's block stops and one more event follows, or the
//   stream ends: a stream cut inside the call or right after it then fails over.
// Any other first block (text, thinking) is handed on at once.

import type { AnthropicEvent } from '../anthropic/events.ts';

/**
 * How much tool input (input_json_delta characters) an opening call may hold back. The client gets
 * no byte while it waits (180 s of silence and Claude Code gives up), on top of GLM's time to first
 * token on a long context: ~1 100 tokens, under a minute at GLM's slow hours. Common calls (Bash,
 * Read, Grep, most Edits) are below it.
 */
export const HELD_TOOL_INPUT_MAX = 4 * 1024;

/**
 * The hold as a decision per event: feed it the head's events in order; it says whether what was
 * read so far must still be held back. Pure; the caller reads the stream.
 */
export function createHeadHold(maxCallInput = HELD_TOOL_INPUT_MAX): (ev: AnthropicEvent) => boolean {
  let phase: 'opening' | 'call' | 'after_call' | 'released' = 'opening';
  let input = 0;
  return (ev) => {
    if (phase === 'released') return false;
    // A ping says nothing about the answer: a cut after it is as unseen as one before it.
    if (ev.type === 'ping') return true;
    if (phase === 'opening') {
      if (ev.type === 'message_start') return true;
      if (ev.type === 'content_block_start' && ev.content_block.type === 'tool_use') {
        phase = 'call';
        return true;
      }
    } else if (phase === 'call') {
      if (ev.type === 'content_block_stop') {
        phase = 'after_call';
        return true;
      }
      // Past the bound the call's next piece lets it go: a call that streams long still streams, while
      // one that arrives whole in one piece (Antigravity's), however large, is held to the next event.
      if (ev.type === 'content_block_delta' && ev.delta.type === 'input_json_delta' && input <= maxCallInput) {
        input += String(ev.delta.partial_json).length;
        return true;
      }
    }
    phase = 'released';
    return false;
  };
}
