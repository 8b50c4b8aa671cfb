// What a restart (a new provider over the same database) keeps of a Gemini conversation. Gemini's
// thinking signatures were known from memory only: after a restart its thinking was dropped from
// the history (to-google keeps only thinking of a known family) and, in a pool with Z.AI too, the
// gateway took it for another provider's. Their hashes now go through the store.
import { afterAll, afterEach, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MessagesRequest } from '../../../src/anthropic/schema.ts';
import { loadConfig } from '../../../src/config.ts';
import { providerDepsFor } from '../../../src/gateway/index.ts';
import { createAntigravityProvider } from '../../../src/providers/antigravity/index.ts';
import type { Account } from '../../../src/store/accounts.ts';
import { openDatabase } from '../../../src/store/db.ts';
import { startFakeGoogle } from '../../fakes/google.ts';
import { sendAll } from '../send.ts';
import { accumulate } from './stream-helpers.ts';

type Json = Record<string, any>;

// Strict: a thought signature it did not issue to the same family fails the call, as Google's does.
const fake = startFakeGoogle({ strictSignatures: true });
afterAll(() => fake.stop());
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const config = loadConfig(
  { ANTIGRAVITY_ENDPOINTS: fake.endpoints.join(','), GOOGLE_OAUTH_TOKEN_URL: fake.tokenUrl, UPSTREAM_IDLE_TIMEOUT_SEC: '2' },
  {},
  { requireApiKey: false },
);
const ACCOUNT: Account = {
  id: 'acc_restart',
  provider: 'antigravity',
  label: 'restart@example.com',
  email: 'restart@example.com',
  status: 'active',
  statusReason: null,
  verifyUrl: null,
  credentials: { kind: 'oauth', refreshToken: fake.refreshTokenFor('restart@example.com') },
  meta: { projectId: 'aicode-consumers' },
  createdAt: 0,
  updatedAt: 0,
  lastUsedAt: null,
};

/** A server's provider over the database at `path`; stop() flushes and closes as serve does. */
function server(path: string) {
  const db = openDatabase(path);
  const deps = providerDepsFor(db, () => Date.now());
  const provider = createAntigravityProvider(config, deps, { emptyBackoffMs: 5 });
  return {
    provider,
    stop() {
      deps.flush();
      db.close();
    },
  };
}

const BASH = {
  name: 'Bash',
  description: 'Run a shell command',
  input_schema: { type: 'object', properties: { command: { type: 'string' } }, required: ['command'] },
};

async function turn(provider: ReturnType<typeof server>['provider'], model: string, messages: MessagesRequest['messages']) {
  const before = fake.generations().length;
  const req = { model: 'claude-opus-4-8', max_tokens: 32000, thinking: { type: 'adaptive' }, tools: [BASH], messages } as unknown as MessagesRequest;
  const events = await sendAll(provider, req, {
    account: ACCOUNT,
    model,
    clientModel: 'claude-opus-4-8',
    sessionKey: 'restart',
    requestId: 'req_restart',
    signal: new AbortController().signal,
    headers: {},
  });
  const gens = fake.generations().slice(before);
  expect(gens.map((g) => g.mode)).toEqual(['ok']); // the strict fake accepted the history
  return { content: (await accumulate(events)).content as Json[], sent: gens[0]!.body as Json, issued: gens[0]!.issuedSignatures ?? [] };
}

function tempPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-ag-restart-'));
  dirs.push(dir);
  return join(dir, 'proxy.db');
}

test("Gemini's thinking is replayed to Gemini after a restart, and the provider still claims it", async () => {
  const path = tempPath();

  const first = server(path);
  const answer = await turn(first.provider, 'gemini-3-flash', [{ role: 'user', content: 'hello' }]);
  first.stop();
  const thinking = answer.content.find((b) => b.type === 'thinking')!;
  expect(typeof thinking.signature).toBe('string');

  const second = server(path);
  try {
    expect(second.provider.issuedThinking?.(thinking.signature)).toBe(true);
    const next = await turn(second.provider, 'gemini-3-flash', [
      { role: 'user', content: 'hello' },
      { role: 'assistant', content: answer.content as never },
      { role: 'user', content: 'and then?' },
    ]);
    const parts = (next.sent.request.contents as Json[]).flatMap((c) => c.parts as Json[]);
    // Gemini gets its signature back on the part after its thinking (§7.5, the official client's shape).
    expect(parts.filter((p) => p.thoughtSignature).map((p) => p.thoughtSignature)).toEqual([thinking.signature]);
  } finally {
    second.stop();
  }
});

test('a Gemini tool loop resumed after a restart gets its own call signature back, not the skip sentinel', async () => {
  const path = tempPath();
  const first = server(path);
  const ask = { role: 'user' as const, content: 'run exactly: echo restart' };
  const call = await turn(first.provider, 'gemini-3-flash', [ask]);
  first.stop();
  const use = call.content.find((b) => b.type === 'tool_use')!;
  expect(call.issued.length).toBeGreaterThan(0);

  const second = server(path);
  try {
    const done = await turn(second.provider, 'gemini-3-flash', [
      ask,
      { role: 'assistant', content: call.content as never },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'restart' }] },
    ]);
    const parts = (done.sent.request.contents as Json[]).flatMap((c) => c.parts as Json[]);
    const replayed = parts.find((p) => p.functionCall)!;
    // The very signature Gemini put on the call: its reasoning goes on.
    expect(call.issued).toContain(replayed.thoughtSignature);
    // And no §7.8 recovery exchange was needed to close the loop.
    expect(JSON.stringify(done.sent.request.contents)).not.toContain('[Tool execution completed.]');
  } finally {
    second.stop();
  }
});

// The picture's signature was kept in memory only: after a restart the picture went back unsigned,
// and the image model refused every later turn of a conversation that had drawn something.
test('a picture a Gemini image model drew goes back with its own signature after a restart, and the model takes the next turn', async () => {
  const path = tempPath();
  const first = server(path);
  const ask = { role: 'user' as const, content: 'A boat' };
  const drawn = await turn(first.provider, 'gemini-3.1-flash-image', [ask]);
  first.stop();
  expect(drawn.content.map((b) => b.type)).toContain('image');

  const second = server(path);
  try {
    const next = await turn(second.provider, 'gemini-3.1-flash-image', [
      ask,
      { role: 'assistant', content: drawn.content as never },
      { role: 'user', content: 'Now at night' },
    ]);
    const picture = (next.sent.request.contents as Json[]).flatMap((c) => c.parts as Json[]).find((p) => p.inlineData)!;
    // The very signature the model put on its picture (the fake's second: the text's comes first).
    expect(picture.thoughtSignature).toBe(drawn.issued[1]);
    expect(next.content.map((b) => b.type)).toContain('image');
  } finally {
    second.stop();
  }
});
