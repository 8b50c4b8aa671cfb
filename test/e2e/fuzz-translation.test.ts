// Generative fuzz of the translation: seeded, valid Messages requests (test/fuzz/generate-request.ts)
// sent through the real server and providers, in process, to Claude and Gemini on the fake Google
// (which refuses what antigravity.md says the backend refuses, signatures checked strictly) and to
// GLM on the fake Z.AI. A valid request must be served (200), its answer must parse with
// @anthropic-ai/sdk, and that answer fed back as history (thinking, tool_use and their results) must
// be served too (a third of the time by another family), and count_tokens must take the same body.
// A failure names the seed and the case. FUZZ_SEED and FUZZ_CASES pick another run; FUZZ_DUMP=<dir>
// writes each failing request there, to replay it by hand.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import Anthropic from '@anthropic-ai/sdk';
import type { AnthropicEvent } from '../../src/anthropic/events.ts';
import { type Config, loadConfig } from '../../src/config.ts';
import { log } from '../../src/log.ts';
import { upsertAccount } from '../../src/store/accounts.ts';
import { openDatabase } from '../../src/store/db.ts';
import { type FakeGoogle, startFakeGoogle } from '../fakes/google.ts';
import { type FakeZai, startFakeZai } from '../fakes/zai.ts';
import { generateRequest, rng, type SignaturePool } from '../fuzz/generate-request.ts';
import { assertValidSequence } from '../providers/zai/invariants.ts';
import { cleanupTempDirs, googleEnv, tempDir, zaiEnv } from './helpers.ts';
import { type InProcessServer, serveInProcess } from './in-process.ts';

const PROXY_KEY = ['proxy', 'key', 'FAKE', 'fuzz', '0123456789'].join('-');
const ZAI_KEY = ['zai', 'FAKE', 'fuzz', 'key', '000001'].join('-');
const EMAIL = 'fuzz@example.com';

const MODELS = [
  { model: 'claude-opus-4-6-thinking', family: 'claude' as const },
  { model: 'gemini-3-flash', family: 'gemini' as const },
  { model: 'glm-4.6', family: 'zai' as const },
];
const SEED = Number(process.env.FUZZ_SEED ?? 20261205);
const CASES = Number(process.env.FUZZ_CASES ?? 200);
/** A directory to write each failing request to, as JSON, for replaying it by hand. */
const DUMP = process.env.FUZZ_DUMP;
/** Prints how many blocks of each type the answers held (is the fuzz reaching tool loops?). */
const STATS = process.env.FUZZ_STATS;

let zai: FakeZai;
let google: FakeGoogle;
let server: InProcessServer;
let client: Anthropic;
let config: Config;

let logLevel: number;

beforeAll(async () => {
  // A line per request would be thousands of lines; warnings and errors still show.
  logLevel = log.level;
  log.level = 1;
  zai = startFakeZai({ keys: [ZAI_KEY] });
  google = startFakeGoogle({ strictSignatures: true });
  const dir = tempDir('mcp-fuzz-');
  config = loadConfig({ PROXY_API_KEY: PROXY_KEY, MCP_DATA_DIR: dir, ...zaiEnv(zai), ...googleEnv(google) });
  const db = openDatabase(config.dbPath);
  upsertAccount(db, { provider: 'zai', label: 'z', credentials: { kind: 'api_key', apiKey: ZAI_KEY } }, Date.now());
  upsertAccount(db, { provider: 'antigravity', email: EMAIL, label: 'g', credentials: { kind: 'oauth', refreshToken: google.refreshTokenFor(EMAIL) } }, Date.now() + 1);
  db.close();
  await start();
});

async function start(): Promise<void> {
  server = await serveInProcess(config, openDatabase(config.dbPath));
  client = new Anthropic({ baseURL: server.url, apiKey: PROXY_KEY, maxRetries: 0, timeout: 20_000 });
}
afterAll(async () => {
  await server?.stop();
  await zai?.stop();
  await google?.stop();
  cleanupTempDirs();
  log.level = logLevel;
});

type Json = Record<string, any>;
const TOOL_ID = /^[a-zA-Z0-9_-]+$/;
const STOP_REASONS = new Set(['end_turn', 'max_tokens', 'stop_sequence', 'tool_use', 'pause_turn', 'refusal']);

/**
 * One call through the SDK: streamed (MessageStream accumulates it, and the events themselves are
 * held to the §2.8 invariants) or not, as the request says.
 */
async function send(body: Json): Promise<Json> {
  if (body.stream) {
    const { stream: _s, ...rest } = body;
    const events: AnthropicEvent[] = [];
    const stream = client.messages.stream(rest as never);
    // Copied as they come: the SDK builds its snapshot inside message_start's message.
    stream.on('streamEvent', (e) => events.push(structuredClone(e) as unknown as AnthropicEvent));
    const message = (await stream.finalMessage()) as unknown as Json;
    try {
      assertValidSequence(events);
    } catch (err) {
      throw new Error(`stream breaks §2.8: ${(err as Error).message.split('\n')[0]}`);
    }
    return message;
  }
  return (await client.messages.create(body as never)) as unknown as Json;
}

/** What is wrong with the answer as a Message (protocol §2.6, §2.8), or null. */
function messageProblem(req: Json, msg: Json): string | null {
  if (msg.type !== 'message' || msg.role !== 'assistant' || !Array.isArray(msg.content)) return 'not a Message';
  if (typeof msg.usage?.input_tokens !== 'number' || typeof msg.usage?.output_tokens !== 'number') return 'usage numbers missing';
  if (!STOP_REASONS.has(msg.stop_reason)) return `stop_reason ${msg.stop_reason}`;
  const names = new Set(((req.tools ?? []) as Json[]).map((t) => t.name));
  for (const b of msg.content as Json[]) {
    if (b.type === 'text' && (typeof b.text !== 'string' || b.text === '')) return 'empty text block';
    if (b.type === 'tool_use') {
      if (!TOOL_ID.test(b.id)) return `tool_use id ${b.id}`;
      if (!names.has(b.name)) return `tool_use names undeclared tool ${b.name}`;
      if (typeof b.input !== 'object' || b.input === null || Array.isArray(b.input)) return 'tool_use input not an object';
    }
    if (b.type === 'thinking' && typeof b.signature !== 'string') return 'thinking without signature field';
  }
  return null;
}

function dump(where: string, body: Json): void {
  if (DUMP) writeFileSync(`${DUMP}/${where.replace(/\W+/g, '_')}.json`, JSON.stringify(body, null, 1));
}

function describeError(err: unknown): string {
  if (err instanceof Anthropic.APIError) return `${err.status} ${err.message}`;
  return String((err as Error)?.stack ?? err);
}

/** The next turn: the answer as history, every call answered, then a word from the user. */
function nextTurn(req: Json, answer: Json): Json {
  const calls = (answer.content as Json[]).filter((b) => b.type === 'tool_use');
  const results = calls.map((c, i) => ({ type: 'tool_result', tool_use_id: c.id, content: i % 2 ? [{ type: 'text', text: `out ${i}` }] : `out ${i}` }));
  const user = results.length ? results : [{ type: 'text', text: 'And then?' }];
  // After a closing role:"system" message too: it stays where the client put it.
  return { ...req, messages: [...req.messages, { role: 'assistant', content: answer.content }, { role: 'user', content: user }] };
}

/** The user's last words as the client sent them: each must reach the upstream unchanged. */
function lastUserTexts(req: Json): string[] {
  const last = (req.messages as Json[]).findLast((m) => m.role === 'user')!;
  const blocks = typeof last.content === 'string' ? [{ type: 'text', text: last.content }] : (last.content as Json[]);
  return blocks.filter((b) => b.type === 'text' && /\S/.test(b.text)).map((b) => b.text as string);
}

/** The body the upstream got for the last call (the fakes keep them; emptied after each look). */
function upstreamBody(family: 'claude' | 'gemini' | 'zai'): string {
  const body = JSON.stringify((family === 'zai' ? zai.messages() : google.generations()).at(-1)?.body ?? null);
  zai.requests.length = 0;
  google.requests.length = 0;
  return body;
}

function harvest(pool: SignaturePool, family: 'claude' | 'gemini' | 'zai', answer: Json): void {
  for (const b of answer.content as Json[]) {
    if (b.type === 'thinking' && typeof b.signature === 'string' && b.signature && pool[family].length < 50) pool[family].push(b.signature);
  }
}

describe(`translation fuzz, seed ${SEED}`, () => {
  test(`${CASES} generated requests per model family are served, parse with the SDK, and round-trip (seed ${SEED})`, async () => {
    const pool: SignaturePool = { claude: [], gemini: [], zai: [] };
    const failures: string[] = [];
    const seen: Record<string, number> = {};
    for (let i = 0; i < CASES; i++) {
      // Halfway, a restart: the proxy forgets what it held in memory, the pools' signatures stay valid upstream.
      if (i === Math.floor(CASES / 2)) {
        await server.stop();
        await start();
      }
      for (const [m, { model, family }] of MODELS.entries()) {
        const r = rng(SEED * 1000 + i * 10 + m);
        const req = generateRequest(r, { model, pool, askForTool: r.chance(0.3) });
        const where = `seed ${SEED} case ${i} ${model}`;
        // The same body counted (count_tokens takes it without max_tokens and stream, §2.11).
        try {
          const { max_tokens: _m, stream: _s, ...countable } = req;
          const counted = await client.messages.countTokens(countable as never);
          if (!Number.isInteger(counted.input_tokens) || counted.input_tokens < 0) failures.push(`${where} (count_tokens): input_tokens ${counted.input_tokens}`);
        } catch (err) {
          failures.push(`${where} (count_tokens): ${describeError(err)}`);
          dump(`${where} count_tokens`, req);
        }
        let answer: Json;
        try {
          answer = await send(req);
        } catch (err) {
          failures.push(`${where}: ${describeError(err)}`);
          dump(where, req);
          continue;
        }
        const p = messageProblem(req, answer);
        if (p) {
          failures.push(`${where}: ${p}\n${JSON.stringify(answer).slice(0, 2000)}`);
          continue;
        }
        const sent = upstreamBody(family);
        // Not a search: its query is taken from those words, trimmed (anthropic/web-search.ts).
        const tools = (req.tools ?? []) as Json[];
        const search = tools.length === 1 && /^web_search_/.test(String(tools[0]!.type));
        // Client tools' descriptions go up unchanged too (Google declares them as they are).
        const described = tools.filter((t) => t.input_schema !== undefined && typeof t.description === 'string' && t.description).map((t) => t.description as string);
        const lost = search ? undefined : [...lastUserTexts(req), ...described].find((t) => !sent.includes(JSON.stringify(t).slice(1, -1)));
        if (lost !== undefined) {
          failures.push(`${where}: the client's text ${JSON.stringify(lost.slice(0, 200))} did not reach the upstream as sent`);
          dump(where, req);
        }
        harvest(pool, family, answer);
        for (const b of answer.content as Json[]) seen[`${family}:${b.type}`] = (seen[`${family}:${b.type}`] ?? 0) + 1;
        // A third of the follow-ups go to another family, as a /model switch or a fallback does.
        const then = MODELS[(m + (r.chance(0.33) ? r.int(1, 2) : 0)) % MODELS.length]!;
        const next = { ...nextTurn(req, answer), model: then.model };
        try {
          const again = await send(next);
          const p2 = messageProblem(next, again);
          if (p2) failures.push(`${where} (round trip to ${then.model}): ${p2}`);
          else harvest(pool, then.family, again);
        } catch (err) {
          failures.push(`${where} (round trip to ${then.model}): ${describeError(err)}`);
          dump(`${where} round trip`, next);
        }
      }
      if (failures.length >= 5) break;
    }
    if (failures.length) console.error(failures.join('\n\n'));
    if (STATS) console.log(seen, pool.claude.length, pool.gemini.length, pool.zai.length);
    expect(failures.map((f) => f.split('\n')[0])).toEqual([]);
  }, 120_000);
});
