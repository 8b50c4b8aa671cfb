// Shared pieces for the routing tests: a private database, a clock the test moves, a sleep that
// moves it, and a scripted Provider whose answer per call the test decides (events or an
// UpstreamError before or after the first event). No network.
import type { Database } from 'bun:sqlite';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blockDelta, blockStart, blockStop, MESSAGE_STOP, messageDelta, messageStart, type AnthropicEvent } from '../../src/anthropic/events.ts';
import type { MessagesRequest } from '../../src/anthropic/schema.ts';
import { type Config, loadConfig } from '../../src/config.ts';
import { createRouting, providerDepsFor, type Routing } from '../../src/gateway/index.ts';
import { createZaiProvider } from '../../src/providers/zai/index.ts';
import type { Dispatched } from '../../src/gateway/types.ts';
import type { ModelInfo, Provider, ProviderId, QuotaInfo, SendContext } from '../../src/providers/provider.ts';
import { UpstreamError } from '../../src/providers/provider.ts';
import { type Account, upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';

export const T0 = Date.UTC(2026, 10, 25, 12, 0, 0);

const dirs: string[] = [];
export function tempDb(): { db: Database; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-gw-'));
  dirs.push(dir);
  const path = join(dir, 'proxy.db');
  return { db: openDatabase(path), path };
}
export function cleanupDbs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function testConfig(over: Partial<Config> = {}, env: Record<string, string> = {}): Config {
  return { ...loadConfig({ PROXY_API_KEY: 'test-key-123456', ...env }), ...over };
}

export interface Clock {
  now(): number;
  advance(ms: number): void;
  set(t: number): void;
  /** Sleeps only move the clock; they record what was asked. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  sleeps: number[];
}

export function fakeClock(start = T0): Clock {
  let t = start;
  const sleeps: number[] = [];
  return {
    now: () => t,
    advance(ms) {
      t += ms;
    },
    set(v) {
      t = v;
    },
    async sleep(ms, signal) {
      if (signal?.aborted) throw new Error('aborted');
      sleeps.push(ms);
      t += ms;
    },
    sleeps,
  };
}

export function textEvents(text: string, model: string): AnthropicEvent[] {
  return [
    messageStart(model, { input_tokens: 10, output_tokens: 1 }),
    blockStart(0, { type: 'text', text: '' }),
    blockDelta(0, { type: 'text_delta', text }),
    blockStop(0),
    messageDelta('end_turn', { output_tokens: 5 }),
    MESSAGE_STOP,
  ];
}

export interface Call {
  accountId: string;
  label: string;
  model: string;
  clientModel: string;
  sessionKey: string;
}

/** What one send() does: stream these events, throw before the first one, or throw after `after` events. */
export interface Answer {
  events?: AnthropicEvent[];
  error?: UpstreamError;
  /** With error: thrown after this many events instead of before the first. */
  after?: number;
  /** Never answers until the call is aborted. */
  hang?: boolean;
  /** Stops after this many events and waits until the call is aborted. */
  hangAfter?: number;
}

export interface ScriptedProvider extends Provider {
  calls: Call[];
  refreshes: string[];
  /** Decides each call's answer; default: a text reply naming the account. */
  answer: (call: Call, n: number) => Answer;
  quotas: Map<string, QuotaInfo[]>;
  models: (account: Account) => Promise<ModelInfo[]>;
  /** Make refresh() fail for these labels. */
  refreshFails: Set<string>;
  /** Make refresh() fail as if the token endpoint were unreachable. */
  refreshDown: Set<string>;
}

export function scriptedProvider(id: ProviderId, models: string[] = []): ScriptedProvider {
  const p: ScriptedProvider = {
    id,
    calls: [],
    refreshes: [],
    quotas: new Map(),
    refreshFails: new Set(),
    refreshDown: new Set(),
    answer: () => ({}),
    send(req: MessagesRequest, ctx: SendContext): AsyncIterable<AnthropicEvent> {
      const call: Call = {
        accountId: ctx.account.id,
        label: ctx.account.label,
        model: ctx.model,
        clientModel: ctx.clientModel,
        sessionKey: ctx.sessionKey,
      };
      p.calls.push(call);
      const a = p.answer(call, p.calls.length);
      const signal = ctx.signal;
      return (async function* () {
        if (a.hang) {
          await new Promise<void>((_, reject) => {
            signal.addEventListener('abort', () => reject(new UpstreamError('transient', 'aborted')), { once: true });
          });
        }
        if (a.error && a.after === undefined) throw a.error;
        const events = a.events ?? textEvents(`hello from ${call.label}`, ctx.clientModel);
        let n = 0;
        for (const ev of events) {
          if (a.error && n === a.after) throw a.error;
          if (n === a.hangAfter) {
            await new Promise<void>((_, reject) => {
              signal.addEventListener('abort', () => reject(new UpstreamError('transient', 'aborted')), { once: true });
            });
          }
          n++;
          yield ev;
        }
      })();
    },
    async models() {
      return models.map((m) => ({ id: m, displayName: m, family: 'other' as const }));
    },
    async quota(account) {
      return p.quotas.get(account.label) ?? [];
    },
    async refresh(account) {
      p.refreshes.push(account.label);
      if (p.refreshFails.has(account.label)) throw new UpstreamError('auth', 'invalid_grant', { status: 400 });
      if (p.refreshDown.has(account.label)) throw new UpstreamError('transient', 'token endpoint unreachable');
    },
    async verify() {
      return { ok: true, detail: 'ok' };
    },
  };
  return p;
}

export function addZai(db: Database, label: string, at = T0): Account {
  return upsertAccount(db, { provider: 'zai', label, credentials: { kind: 'api_key', apiKey: `key-${label}-000000` } }, at).account;
}

export function request(model: string, over: Partial<MessagesRequest> = {}): MessagesRequest {
  return { model, max_tokens: 100, messages: [{ role: 'user', content: 'hi' }], stream: true, ...over } as MessagesRequest;
}

export function sessionBody(model: string, session: string, turn = 0): MessagesRequest {
  const messages: MessagesRequest['messages'] = [{ role: 'user', content: `first message of ${session}` }];
  for (let i = 0; i < turn; i++) {
    messages.push({ role: 'assistant', content: `answer ${i}` }, { role: 'user', content: `turn ${i + 1}` });
  }
  return request(model, { messages, metadata: { user_id: JSON.stringify({ device_id: 'd', account_uuid: '', session_id: session }) } });
}

export async function drain(d: Dispatched): Promise<AnthropicEvent[]> {
  const out: AnthropicEvent[] = [];
  for await (const ev of d.events) out.push(ev);
  return out;
}

/** The event types a stream hands out before it fails, and what it throws (null if it ends cleanly). */
export async function readToFailure(d: Dispatched): Promise<{ seen: string[]; thrown: unknown }> {
  const seen: string[] = [];
  try {
    for await (const ev of d.events) seen.push(ev.type);
  } catch (err) {
    return { seen, thrown: err };
  }
  return { seen, thrown: null };
}

export function dispatchReq(body: MessagesRequest, headers: Record<string, string> = {}, signal = new AbortController().signal) {
  return { body, requestId: `req_${Math.random().toString(36).slice(2)}`, headers, signal };
}

export interface Rig {
  db: Database;
  path: string;
  clock: Clock;
  zai: ScriptedProvider;
  routing: Routing;
  accounts: Account[];
  config: Config;
}

export function rig(opts: { labels?: string[]; config?: Partial<Config>; models?: string[] } = {}): Rig {
  const { db, path } = tempDb();
  const clock = fakeClock();
  const accounts = (opts.labels ?? ['a', 'b', 'c']).map((l, i) => addZai(db, l, T0 + i));
  const zai = scriptedProvider('zai', opts.models ?? ['glm-4.7', 'glm-5.1', 'glm-4.6']);
  const config = testConfig(opts.config);
  const routing = createRouting({ db, config, providers: { zai }, now: clock.now, sleep: clock.sleep });
  return { db, path, clock, zai, routing, accounts, config };
}

/**
 * A pool database with a Google account and then a Z.AI key ('key-z-000000'), closed: the servers
 * of a restart test open it in turn.
 */
export function mixedPoolDb(): string {
  const { db, path } = tempDb();
  upsertAccount(db, { provider: 'antigravity', label: 'g', email: 'g@example.com', credentials: { kind: 'oauth', refreshToken: 'FAKE-refresh-g' } }, T0);
  addZai(db, 'z', T0 + 1);
  db.close();
  return path;
}

/**
 * A server over the database at `path`: Z.AI behind `zaiFake`, and a Google account beside it whose
 * provider claims no thinking (so the gateway keeps Z.AI to the thinking Z.AI issued). stop() stores
 * what waits and closes the database, as serve does.
 */
export function zaiBesideGoogle(path: string, zaiFake: { url: string; quotaUrl: string }) {
  const db = openDatabase(path);
  const config = testConfig({}, { ZAI_BASE_URL: zaiFake.url, ZAI_QUOTA_URL: zaiFake.quotaUrl });
  const deps = providerDepsFor(db, () => T0);
  const zai = createZaiProvider(config, deps);
  const antigravity = { ...scriptedProvider('antigravity', ['claude-sonnet-4-6']), issuedThinking: () => false };
  const routing = createRouting({ db, config, providers: { zai, antigravity }, now: () => T0 });
  return {
    routing,
    async stop() {
      await routing.stop();
      deps.flush();
      db.close();
    },
  };
}
