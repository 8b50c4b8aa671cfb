// Stub Gateway/Ops and a running app on an ephemeral loopback port, for the server tests.
// No provider is involved: each test scripts what dispatch() does.
import { ApiError } from '../../src/anthropic/errors.ts';
import {
  blockDelta,
  blockStart,
  blockStop,
  MESSAGE_STOP,
  messageDelta,
  messageStart,
  type AnthropicEvent,
} from '../../src/anthropic/events.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import type { DispatchRequest, Dispatched, Gateway, ModelEntry, Ops } from '../../src/gateway/types.ts';
import { createApp, type RequestRecord } from '../../src/server/app.ts';

export const KEY = 'test-proxy-key-123';

export function testConfig(env: Record<string, string> = {}, over: Partial<Config> = {}): Config {
  return { ...loadConfig({ PROXY_API_KEY: KEY, ...env }), ...over };
}

/** The §1.8-shaped answer: thinking + signature, text, a tool_use with streamed input. */
export function toolUseEvents(model = 'claude-test-1'): AnthropicEvent[] {
  return [
    messageStart(model, { input_tokens: 120, output_tokens: 1, cache_read_input_tokens: 7, cache_creation_input_tokens: 3 }, 'msg_test1'),
    blockStart(0, { type: 'thinking', thinking: '', signature: '' }),
    blockDelta(0, { type: 'thinking_delta', thinking: 'Let me think ' }),
    blockDelta(0, { type: 'thinking_delta', thinking: 'step by step.' }),
    blockDelta(0, { type: 'signature_delta', signature: 'c2lnbmF0dXJl' }),
    blockStop(0),
    blockStart(1, { type: 'text', text: '' }),
    blockDelta(1, { type: 'text_delta', text: 'I will run ' }),
    blockDelta(1, { type: 'text_delta', text: 'a command.' }),
    blockStop(1),
    blockStart(2, { type: 'tool_use', id: 'toolu_abc', name: 'Bash', input: {} }),
    blockDelta(2, { type: 'input_json_delta', partial_json: '' }),
    blockDelta(2, { type: 'input_json_delta', partial_json: '{"command"' }),
    blockDelta(2, { type: 'input_json_delta', partial_json: ':"echo hi"}' }),
    blockStop(2),
    messageDelta('tool_use', { output_tokens: 30 }),
    MESSAGE_STOP,
  ];
}

export function textEvents(text = 'Hello!', model = 'claude-test-1'): AnthropicEvent[] {
  return [
    messageStart(model, { input_tokens: 10, output_tokens: 1 }, 'msg_text1'),
    blockStart(0, { type: 'text', text: '' }),
    blockDelta(0, { type: 'text_delta', text }),
    blockStop(0),
    messageDelta('end_turn', { output_tokens: 5 }),
    MESSAGE_STOP,
  ];
}

export type Step = AnthropicEvent | { wait: number } | { throw: Error };

/** An event stream that follows `steps`, waits where told, and stops when the signal aborts. */
export async function* scripted(steps: Step[], signal: AbortSignal): AsyncGenerator<AnthropicEvent> {
  for (const s of steps) {
    if ('wait' in s) {
      await new Promise<void>((resolve, reject) => {
        if (signal.aborted) return reject(new ApiError('api_error', 'aborted'));
        const t = setTimeout(resolve, s.wait);
        signal.addEventListener('abort', () => {
          clearTimeout(t);
          reject(new ApiError('api_error', 'aborted'));
        }, { once: true });
      });
      continue;
    }
    if ('throw' in s) throw s.throw;
    if (signal.aborted) throw new ApiError('api_error', 'aborted');
    yield s;
  }
}

export const MODELS: ModelEntry[] = Array.from({ length: 5 }, (_, i) => ({
  type: 'model',
  id: `claude-model-${i}`,
  display_name: `Model ${i}`,
  created_at: '2026-01-01T00:00:00Z',
}));

export interface Harness {
  base: string;
  calls: DispatchRequest[];
  records: RequestRecord[];
  /** What the next dispatch does: return steps, or throw. */
  dispatch: (req: DispatchRequest) => Promise<Dispatched>;
  /** What gateway.imageModel() answers. */
  imageModel: string | null;
  /** What gateway.drawsImages() answers, per model; unlisted models are unknown (null). */
  draws: Record<string, boolean>;
  refreshCalls: Array<string | undefined>;
  /** What a refresh waits for before it answers (Google's token endpoint being slow); none: answers at once. */
  refreshGate: Promise<void> | null;
  stop(): void;
  /** Stops taking connections and resolves once the open ones are done (as on SIGTERM). */
  stopGracefully(): Promise<void>;
}

export function dispatchSteps(steps: Step[], extra: Partial<Dispatched> = {}) {
  return async (req: DispatchRequest): Promise<Dispatched> => ({
    events: scripted(steps, req.signal),
    accountId: 'acct-1',
    provider: 'stub',
    upstreamModel: 'upstream-model-x',
    fallbackFrom: null,
    failovers: 0,
    ...extra,
  });
}

/**
 * `cutting`: what the app is told of a shutdown cutting the connections still open (serve.ts);
 * `stopping`: the signal serve.ts aborts when the shutdown grace is over.
 */
export function startHarness(config: Config = testConfig(), opts: { cutting?: () => boolean; stopping?: AbortSignal } = {}): Harness {
  const h: Harness = {
    base: '',
    calls: [],
    records: [],
    refreshCalls: [],
    refreshGate: null,
    dispatch: dispatchSteps(textEvents()),
    imageModel: 'image-model-x',
    draws: { 'image-model-x': true },
    stop: () => {},
    stopGracefully: async () => {},
  };
  const gateway: Gateway = {
    dispatch: (req) => {
      h.calls.push(req);
      return h.dispatch(req);
    },
    listModels: () => MODELS,
    getModel: (id) => MODELS.find((m) => m.id === id),
    imageModel: () => h.imageModel,
    drawsImages: (model) => h.draws[model] ?? null,
  };
  const ops: Ops = {
    health: (detailed) => (detailed ? { status: 'ok', accounts: [{ id: 'acct-1', state: 'ok' }] } : { status: 'ok' }),
    accountLimits: () => ({ accounts: [{ id: 'acct-1', remaining: 0.5 }] }),
    accountLimitsTable: () => 'ACCOUNT  REMAINING\nacct-1   50%\n',
    refresh: async (id) => {
      h.refreshCalls.push(id);
      if (h.refreshGate) await h.refreshGate;
      if (id === 'missing') throw new ApiError('not_found_error', 'no account "missing"');
      return { refreshed: id ? [id] : ['acct-1'] };
    },
    metrics: () => '# HELP mcp_requests_total x\n# TYPE mcp_requests_total counter\nmcp_requests_total 1\n',
  };
  const app = createApp({ config, gateway, ops, onRequestDone: (r) => h.records.push({ ...r }), ...(opts.cutting ? { cutting: opts.cutting } : {}), ...(opts.stopping ? { stopping: opts.stopping } : {}) });
  app.listen({ port: 0, hostname: '127.0.0.1' });
  h.base = `http://127.0.0.1:${app.server!.port}`;
  h.stop = () => void app.stop(true);
  h.stopGracefully = async () => {
    await app.stop(false);
  };
  return h;
}

export const AUTH = { 'x-api-key': KEY, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' };

export function body(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: 'claude-test-1', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }], ...extra };
}

export function post(h: Harness, path: string, payload: unknown, headers: Record<string, string> = AUTH): Promise<Response> {
  return fetch(h.base + path, {
    method: 'POST',
    headers,
    body: typeof payload === 'string' || payload instanceof Uint8Array ? payload : JSON.stringify(payload),
  });
}

/** Waits until `cond` holds (polling), or fails after `ms`. */
export async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await Bun.sleep(5);
  }
}

/** A response's JSON body, untyped (the tests assert its shape). */
export async function read(r: Response | Promise<Response>): Promise<any> {
  return (await r).json();
}

/** A raw TCP connection to the harness, for requests fetch() cannot send; `reply()` is all it got so far. */
export async function rawConnection(h: Harness): Promise<{ sock: Awaited<ReturnType<typeof Bun.connect>>; reply: () => string; closed: () => boolean }> {
  let reply = '';
  let closed = false;
  const sock = await Bun.connect({
    hostname: '127.0.0.1',
    port: Number(new URL(h.base).port),
    socket: {
      data(_s, d) {
        reply += new TextDecoder().decode(d);
      },
      close() {
        closed = true;
      },
    },
  });
  return { sock, reply: () => reply, closed: () => closed };
}
