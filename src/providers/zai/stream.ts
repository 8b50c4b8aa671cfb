// Z.AI's event stream -> a stream that keeps the invariants the SDK accumulator and Claude Code
// rely on (§2.8): one message_start first with a usage object and the client's model name, blocks
// indexed 0..n-1 and closed in order, empty block shells (their content comes as deltas), no empty
// text blocks, tool input that accumulates to an object, a message_delta with usage before message_stop. Pure and incremental: one event in,
// zero or more events out; a stream that cannot be repaired throws UpstreamError('transient').
import {
  MESSAGE_STOP,
  blockDelta,
  blockStart,
  blockStop,
  messageDelta,
  messageStart,
  newMessageId,
  newToolUseId,
  type AnthropicEvent,
  type ContentBlock,
  type Delta,
  type Message,
  type StopReason,
  type Usage,
} from '../../anthropic/events.ts';
import { UpstreamError } from '../provider.ts';
import { toObjectInput } from '../../anthropic/tool-input.ts';

type Raw = Record<string, unknown>;

interface OpenBlock {
  upstreamIndex: number;
  /** Our index; null while a text block has produced no text yet (it may stay empty). */
  index: number | null;
  type: string;
  shell: ContentBlock;
  /** tool_use input: 'wait' until the first non-blank JSON char tells if it is an object. */
  json: 'wait' | 'stream' | 'buffer' | null;
  buffered: string;
  /** tool_use input Z.AI gave whole in content_block_start; sent as a delta if none follows. */
  given: string | null;
}

const STOP_REASONS: Record<string, StopReason> = {
  end_turn: 'end_turn',
  max_tokens: 'max_tokens',
  stop_sequence: 'stop_sequence',
  tool_use: 'tool_use',
  pause_turn: 'pause_turn',
  refusal: 'refusal',
  model_context_window_exceeded: 'model_context_window_exceeded',
  // OpenAI-style finish reasons some GLM surfaces use.
  stop: 'end_turn',
  length: 'max_tokens',
  tool_calls: 'tool_use',
  content_filter: 'refusal',
  sensitive: 'refusal',
};

/**
 * The deltas each block kind takes. Claude Code throws on any other ("Content block is not a text
 * block"); kinds not listed here are passed as they come.
 */
const DELTAS_OF: Record<string, readonly string[]> = {
  text: ['text_delta', 'citations_delta'],
  thinking: ['thinking_delta', 'signature_delta'],
  tool_use: ['input_json_delta'],
  server_tool_use: ['input_json_delta'],
};

function isObj(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/**
 * Z.AI leaves out cache_creation_input_tokens; the SDK types both cache counts as number | null, so
 * a program summing the prompt's size would get NaN. A count Z.AI leaves out is reported as 0.
 */
function usageOf(u: unknown): Usage {
  const o = isObj(u) ? u : {};
  return {
    ...o,
    input_tokens: num(o.input_tokens),
    output_tokens: num(o.output_tokens),
    cache_creation_input_tokens: num(o.cache_creation_input_tokens),
    cache_read_input_tokens: num(o.cache_read_input_tokens),
  };
}

function broken(why: string): UpstreamError {
  return new UpstreamError('transient', `Z.AI stream broken: ${why}`);
}

export interface StreamRepair {
  accept(ev: Raw): AnthropicEvent[];
  /** The upstream ended: the closing events still owed, or a throw when it ended too early. */
  finish(): AnthropicEvent[];
  readonly started: boolean;
  readonly done: boolean;
}

export interface StreamRepairOptions {
  /**
   * The client set disable_parallel_tool_use, which Anthropic keeps to one tool call an answer and
   * GLM is not known to honour: calls after the first are dropped.
   */
  singleToolCall?: boolean;
}

export function createStreamRepair(clientModel: string, opts: StreamRepairOptions = {}): StreamRepair {
  let started = false;
  let done = false;
  let deltaSent = false;
  let next = 0;
  let sawToolUse = false;
  let open: OpenBlock | null = null;

  function close(out: AnthropicEvent[]): void {
    const b = open;
    if (!b) return;
    open = null;
    if (b.index === null) return; // an empty text block never existed
    if (b.json === 'wait' && b.given !== null) {
      out.push(blockDelta(b.index, { type: 'input_json_delta', partial_json: b.given }));
    } else if (b.json === 'buffer') {
      let parsed: unknown;
      try {
        parsed = JSON.parse(b.buffered);
      } catch {
        parsed = b.buffered;
      }
      out.push(blockDelta(b.index, { type: 'input_json_delta', partial_json: JSON.stringify(toObjectInput(parsed)) }));
    }
    out.push(blockStop(b.index));
  }

  function startBlock(ev: Raw, out: AnthropicEvent[]): void {
    close(out);
    const shell = (isObj(ev.content_block) ? ev.content_block : { type: 'text', text: '' }) as ContentBlock;
    const upstreamIndex = num(ev.index);
    if (shell.type === 'text' && (typeof shell.text !== 'string' || shell.text === '')) {
      open = { upstreamIndex, index: null, type: 'text', shell: { ...shell, text: '' }, json: null, buffered: '', given: null };
      return;
    }
    // Claude Code resets text, thinking and signature at content_block_start and builds them from
    // the deltas: what the shell carries is moved into deltas, or it would be lost.
    if (shell.type === 'text') {
      open = { upstreamIndex, index: next++, type: 'text', shell: { ...shell, text: '' }, json: null, buffered: '', given: null };
      out.push(blockStart(open.index!, open.shell), blockDelta(open.index!, { type: 'text_delta', text: shell.text as string }));
      return;
    }
    if (shell.type === 'thinking') {
      const { thinking, signature } = shell as Raw;
      open = { upstreamIndex, index: next++, type: 'thinking', shell: { ...shell, thinking: '', signature: '' }, json: null, buffered: '', given: null };
      out.push(blockStart(open.index!, open.shell));
      if (typeof thinking === 'string' && thinking) out.push(blockDelta(open.index!, { type: 'thinking_delta', thinking }));
      if (typeof signature === 'string' && signature) out.push(blockDelta(open.index!, { type: 'signature_delta', signature }));
      return;
    }
    if (shell.type === 'tool_use' && sawToolUse && opts.singleToolCall) {
      // No index: its deltas and its stop fall away as an empty text block's do.
      open = { upstreamIndex, index: null, type: 'tool_use', shell, json: null, buffered: '', given: null };
      return;
    }
    let block = shell;
    let json: OpenBlock['json'] = null;
    let given: string | null = null;
    if (shell.type === 'tool_use' || shell.type === 'server_tool_use') {
      sawToolUse ||= shell.type === 'tool_use';
      // Anthropic's shell has input {} and the arguments come as deltas; Claude Code reads only the
      // deltas, so input given in the shell moves to a delta (unless deltas bring it anyway).
      const input = toObjectInput((shell as Raw).input);
      if (Object.keys(input).length) given = JSON.stringify(input);
      if (!isObj((shell as Raw).input) || given !== null) block = { ...shell, input: {} };
      // Claude Code answers a call by its id: without one, the next turn's history is refused.
      const id = (shell as Raw).id;
      if (shell.type === 'tool_use' && (typeof id !== 'string' || id === '')) block = { ...block, id: newToolUseId() };
      json = 'wait';
    }
    open = { upstreamIndex, index: next++, type: shell.type, shell: block, json, buffered: '', given };
    out.push(blockStart(open.index!, block));
  }

  function delta(ev: Raw, out: AnthropicEvent[]): void {
    const b = open;
    const d = ev.delta;
    if (!b || num(ev.index) !== b.upstreamIndex || !isObj(d)) return; // stray delta: nothing to attach it to
    const fits = DELTAS_OF[b.type];
    if (fits && !fits.includes(String(d.type))) return; // another kind's delta: nothing to fit it into
    if (b.index === null) {
      if (d.type !== 'text_delta' || typeof d.text !== 'string' || d.text === '') return;
      b.index = next++;
      out.push(blockStart(b.index, b.shell));
    }
    if (b.json && d.type === 'input_json_delta') {
      const piece = typeof d.partial_json === 'string' ? d.partial_json : '';
      if (b.json === 'stream') {
        out.push(blockDelta(b.index, { type: 'input_json_delta', partial_json: piece }));
        return;
      }
      b.buffered += piece;
      if (b.json === 'wait') {
        const first = b.buffered.trimStart();
        if (!first) return;
        if (first[0] === '{') {
          b.json = 'stream';
          out.push(blockDelta(b.index, { type: 'input_json_delta', partial_json: b.buffered }));
          b.buffered = '';
        } else b.json = 'buffer'; // an array or a bare value: repaired whole at the block's end
      }
      return;
    }
    out.push(blockDelta(b.index, d as Delta));
  }

  function finalDelta(ev: Raw | null): AnthropicEvent {
    const d = ev && isObj(ev.delta) ? ev.delta : {};
    const raw = typeof d.stop_reason === 'string' ? d.stop_reason : null;
    // GLM's finish reason for a failed inference: the answer was cut, and must not pass for finished.
    if (raw === 'network_error') throw broken('network_error (the GLM inference failed mid-answer)');
    const said: StopReason = (raw && STOP_REASONS[raw]) || 'end_turn';
    // A turn that called a tool is a tool_use turn (SDK tool runners loop on nothing else), whatever
    // GLM says; max_tokens stays, as the call's input may be cut.
    const stop: StopReason = sawToolUse && said === 'end_turn' ? 'tool_use' : said;
    const usage = ev && isObj(ev.usage) ? ev.usage : {};
    const md = messageDelta(stop, { ...usage, output_tokens: num(usage.output_tokens) }, typeof d.stop_sequence === 'string' ? d.stop_sequence : null);
    md.delta = { ...d, stop_reason: stop, stop_sequence: md.delta.stop_sequence };
    return md;
  }

  return {
    get started() {
      return started;
    },
    get done() {
      return done;
    },
    accept: acceptEvent,
    finish: finishStream,
  };

  function acceptEvent(ev: Raw): AnthropicEvent[] {
    const out: AnthropicEvent[] = [];
    if (done) return out;
    const type = ev.type;
    if (type === 'ping') return out; // the server keeps the client alive itself
    if (type === 'message_start') {
      if (started) throw broken('second message_start');
      started = true;
      const m = isObj(ev.message) ? ev.message : {};
      const id = typeof m.id === 'string' && m.id ? m.id : newMessageId();
      const start = messageStart(clientModel, usageOf(m.usage), id);
      start.message = { ...m, ...start.message } as Message;
      out.push(start);
      return out;
    }
    if (!started) throw broken(`${String(type)} before message_start`);
    switch (type) {
      case 'content_block_start':
        startBlock(ev, out);
        break;
      case 'content_block_delta':
        delta(ev, out);
        break;
      case 'content_block_stop':
        if (open && num(ev.index) === open.upstreamIndex) close(out);
        break;
      case 'message_delta':
        close(out);
        out.push(finalDelta(ev));
        deltaSent = true;
        break;
      case 'message_stop':
        close(out);
        if (!deltaSent) out.push(finalDelta(null));
        out.push(MESSAGE_STOP);
        done = true;
        break;
      default:
        break; // unknown upstream events are not ours to forward
    }
    return out;
  }

  function finishStream(): AnthropicEvent[] {
    if (done) return [];
    if (!started) throw new UpstreamError('transient', 'Z.AI returned an empty response');
    if (!deltaSent) throw new UpstreamError('transient', 'upstream stream ended early');
    const out: AnthropicEvent[] = [];
    close(out);
    out.push(MESSAGE_STOP);
    done = true;
    return out;
  }
}

/** A complete Message (Z.AI ignoring stream:true) -> the events that would have carried it. */
export function messageToEvents(message: Raw): Raw[] {
  const { content, ...rest } = message;
  const events: Raw[] = [{ type: 'message_start', message: { ...rest, content: [], stop_reason: null, stop_sequence: null } }];
  const blocks = Array.isArray(content) ? (content as Raw[]) : [];
  blocks.forEach((b, index) => {
    if (b.type === 'text') {
      events.push({ type: 'content_block_start', index, content_block: { ...b, text: '' } });
      events.push({ type: 'content_block_delta', index, delta: { type: 'text_delta', text: String(b.text ?? '') } });
    } else if (b.type === 'thinking') {
      events.push({ type: 'content_block_start', index, content_block: { ...b, thinking: '', signature: '' } });
      events.push({ type: 'content_block_delta', index, delta: { type: 'thinking_delta', thinking: String(b.thinking ?? '') } });
      if (b.signature) events.push({ type: 'content_block_delta', index, delta: { type: 'signature_delta', signature: String(b.signature) } });
    } else if (b.type === 'tool_use') {
      events.push({ type: 'content_block_start', index, content_block: { ...b, input: {} } });
      events.push({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: JSON.stringify(toObjectInput(b.input)) } });
    } else events.push({ type: 'content_block_start', index, content_block: b });
    events.push({ type: 'content_block_stop', index });
  });
  events.push({
    type: 'message_delta',
    delta: { stop_reason: message.stop_reason ?? null, stop_sequence: message.stop_sequence ?? null },
    usage: isObj(message.usage) ? message.usage : { output_tokens: 0 },
  });
  events.push({ type: 'message_stop' });
  return events;
}
