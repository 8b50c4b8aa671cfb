// One conversation (tool use + thinking, Claude Code's shape) whose model changes family at every
// step: Gemini, GPT-OSS, Claude, and back, through the provider and the strict fake Google, which
// refuses what Google refuses (foreign or forged signatures, an unsigned Gemini call of the current
// turn, a Claude tool loop without its thinking). Each request sent upstream is also checked against
// the protocol's rules for its family (antigravity.md §7.3–§7.10).
import { afterAll, describe, expect, test } from 'bun:test';
import type { MessagesRequest } from '../../../src/anthropic/schema.ts';
import { loadConfig } from '../../../src/config.ts';
import { createAntigravityProvider } from '../../../src/providers/antigravity/index.ts';
import { SKIP_SIGNATURE } from '../../../src/providers/antigravity/to-google.ts';
import type { Account } from '../../../src/store/accounts.ts';
import { startFakeGoogle } from '../../fakes/google.ts';
import { sendAll } from '../send.ts';
import { accumulate } from './stream-helpers.ts';

type Json = Record<string, any>;

const fake = startFakeGoogle({ strictSignatures: true });
afterAll(() => fake.stop());

const configFor = (replay: 'inline' | 'split') =>
  loadConfig(
    { ANTIGRAVITY_ENDPOINTS: fake.endpoints.join(','), GOOGLE_OAUTH_TOKEN_URL: fake.tokenUrl, UPSTREAM_IDLE_TIMEOUT_SEC: '2', ANTIGRAVITY_THINKING_REPLAY: replay },
    {},
    { requireApiKey: false },
  );
let config = configFor('inline');
const newProvider = () => createAntigravityProvider(config, { updateAccount: () => {}, now: () => Date.now() }, { emptyBackoffMs: 5 });
let provider = newProvider();
const ACCOUNT: Account = {
  id: 'acc_switch',
  provider: 'antigravity',
  label: 'switch@example.com',
  email: 'switch@example.com',
  status: 'active',
  statusReason: null,
  verifyUrl: null,
  credentials: { kind: 'oauth', refreshToken: fake.refreshTokenFor('switch@example.com') },
  meta: { projectId: 'aicode-consumers' },
  createdAt: 0,
  updatedAt: 0,
  lastUsedAt: null,
};

const BASH = {
  name: 'Bash',
  description: 'Run a shell command',
  input_schema: { type: 'object', properties: { command: { type: 'string' }, description: { type: 'string' } }, required: ['command'] },
};

/** Sends the conversation to `model`; returns the assistant message and the envelope that went up. */
async function turn(model: string, messages: MessagesRequest['messages'], thinking: string) {
  const before = fake.generations().length;
  const req = { model: 'claude-opus-4-8', max_tokens: 32000, thinking: { type: thinking }, tools: [BASH], messages } as unknown as MessagesRequest;
  const events = await sendAll(provider, req, {
    account: ACCOUNT,
    model,
    clientModel: 'claude-opus-4-8',
    sessionKey: 'family-switch',
    requestId: 'req_switch',
    signal: new AbortController().signal,
    headers: {},
  });
  const gens = fake.generations().slice(before);
  expect(gens.map((g) => g.mode)).toEqual(['ok']); // the strict fake accepted the history
  const message = await accumulate(events);
  return { content: message.content as Json[], stopReason: message.stop_reason, sent: gens[0]!.body as Json };
}

/** The protocol's per-family rules for a request, as plain findings (empty when valid). */
function violations(model: string, env: Json): string[] {
  const out: string[] = [];
  const contents = env.request.contents as Json[];
  const parts = contents.flatMap((c) => c.parts as Json[]);
  const cfg = env.request.generationConfig as Json;
  if (contents[0]?.role !== 'user') out.push('contents do not open with a user turn');
  if (JSON.stringify(env).includes('cache_control')) out.push('cache_control sent');
  for (const p of parts) {
    const named = p.functionCall ?? p.functionResponse;
    if (named && named.name !== 'Bash') out.push(`call or result named ${named.name}, not the tool's name`);
  }
  const budget = cfg.thinkingConfig?.thinkingBudget;
  if (model.startsWith('claude')) {
    if (parts.some((p) => p.thoughtSignature === SKIP_SIGNATURE)) out.push('sentinel sent to Claude');
    if (env.request.toolConfig?.functionCallingConfig?.mode !== 'VALIDATED') out.push('Claude tools without VALIDATED');
    if (parts.some((p) => (p.functionCall ?? p.functionResponse) && !(p.functionCall ?? p.functionResponse).id)) out.push('Claude call or result without its id');
    if (budget !== undefined && (budget < 1024 || cfg.maxOutputTokens <= budget)) out.push(`Claude budget ${budget} / max ${cfg.maxOutputTokens}`);
  }
  if (model.startsWith('gpt')) {
    if (cfg.thinkingConfig) out.push('thinkingConfig sent to GPT-OSS');
    if (cfg.maxOutputTokens > 32768) out.push('GPT-OSS output over its cap');
  }
  // Strict alternation, no empty content, every call answered by id (or by name+order when id-less) in the next content.
  contents.forEach((c, i) => {
    if (!c.parts.length) out.push(`content ${i} is empty`);
    if (i > 0 && contents[i - 1]!.role === c.role) out.push(`contents ${i - 1} and ${i} share a role`);
    const calls = (c.parts as Json[]).filter((p) => p.functionCall).map((p) => p.functionCall);
    if (!calls.length || i === contents.length - 1) return;
    const answers = (contents[i + 1]!.parts as Json[]).filter((p) => p.functionResponse).map((p) => p.functionResponse);
    calls.forEach((call, k) => {
      const a = answers[k];
      if (!a || a.id !== call.id || a.name !== call.name) out.push(`call ${call.name}/${call.id} in content ${i} not answered in order`);
    });
  });
  return out;
}

const result = (id: string, text: string) => ({ role: 'user' as const, content: [{ type: 'tool_result' as const, tool_use_id: id, content: text }] });

describe('a tool-using, thinking conversation that changes model family at every step', () => {
  test.each([
    ['adaptive thinking', 'adaptive', false, 'inline'],
    ['thinking disabled', 'disabled', false, 'inline'],
    ['adaptive thinking, a restart (empty signature store) before every request', 'adaptive', true, 'inline'],
    ['adaptive thinking, Claude thinking replayed split (ANTIGRAVITY_THINKING_REPLAY=split)', 'adaptive', false, 'split'],
  ] as const)('%s: every request is accepted by the strict fake and valid for its family; every tool loop completes', async (_n, thinking, restart, replay) => {
    config = configFor(replay);
    provider = newProvider();
    const families = ['gemini-3.8-flash-high', 'gpt-oss-120b-medium', 'claude-opus-4-6-thinking', 'gemini-pro-agent', 'claude-sonnet-4-6', 'gpt-oss-120b-medium', 'gemini-3-flash'];
    const messages: MessagesRequest['messages'] = [];
    for (let step = 0; step < families.length; step++) {
      const asker = families[step]!;
      const answerer = families[(step + 1) % families.length]!;
      // The user asks; `asker` makes the call.
      messages.push({ role: 'user', content: `run exactly: echo step-${step}` });
      if (restart) provider = newProvider();
      const call = await turn(asker, messages, thinking);
      expect(violations(asker, call.sent), `${asker} asks (step ${step})`).toEqual([]);
      expect(call.stopReason).toBe('tool_use');
      const use = call.content.find((b) => b.type === 'tool_use')!;
      expect(use.input.command).toBe(`echo step-${step}`);
      messages.push({ role: 'assistant', content: call.content as never });
      messages.push(result(use.id, `step-${step}`));
      // Another family answers the tool result and ends the loop.
      if (restart) provider = newProvider();
      const done = await turn(answerer, messages, thinking);
      expect(violations(answerer, done.sent), `${answerer} answers (step ${step})`).toEqual([]);
      expect(done.stopReason).toBe('end_turn');
      // The result reaches the model (after the §7.8 recovery exchange when the loop's thinking could not follow).
      const responses = (done.sent.request.contents as Json[]).flatMap((c) => c.parts as Json[]).filter((p) => p.functionResponse);
      expect(responses.at(-1)?.functionResponse.response.output).toBe(`step-${step}`);
      messages.push({ role: 'assistant', content: done.content as never });
    }
  }, 30_000);
});

describe('the signatures the provider says it issued (the gateway keeps them from Z.AI)', () => {
  test("Claude's survive a restart by their shape, Gemini's are known from memory, others are not claimed", async () => {
    config = configFor('inline');
    provider = newProvider();
    const sigOf = (content: Json[]) => content.find((b) => b.type === 'thinking')?.signature as string;
    const claude = sigOf((await turn('claude-opus-4-6-thinking', [{ role: 'user', content: 'hello' }], 'adaptive')).content);
    const gemini = sigOf((await turn('gemini-3-flash', [{ role: 'user', content: 'hello' }], 'adaptive')).content);
    expect([typeof claude, typeof gemini]).toEqual(['string', 'string']);
    expect(provider.issuedThinking?.(claude)).toBe(true);
    expect(provider.issuedThinking?.(gemini)).toBe(true);
    expect(provider.issuedThinking?.(['zai', 'sig', 'FAKE', '0123456789abcdef0123456789abcdef0123456789'].join('-'))).toBe(false);
    provider = newProvider();
    expect(provider.issuedThinking?.(claude)).toBe(true);
  });
});

describe('redacted_thinking from Anthropic in the history', () => {
  // Cloud Code has no part for Anthropic's encrypted reasoning and cannot check it: the block is
  // dropped, and a tool loop that leaned on it is closed so Claude's thinking rule still holds.
  const redacted = { type: 'redacted_thinking', data: ['FAKE', 'redacted', 'y'.repeat(60)].join('-') };
  const history = (): MessagesRequest['messages'] =>
    [
      { role: 'user', content: 'Run echo hi' },
      { role: 'assistant', content: [redacted, { type: 'tool_use', id: 'toolu_01RED', name: 'Bash', input: { command: 'echo hi' } }] },
      result('toolu_01RED', 'hi'),
    ] as MessagesRequest['messages'];

  test.each([
    ['claude-opus-4-6-thinking', 'adaptive'],
    ['claude-opus-4-6-thinking', 'disabled'],
    ['gemini-3-flash', 'adaptive'],
    ['gemini-3-flash', 'disabled'],
  ] as const)('%s, thinking %s: the strict fake accepts the turn, and the encrypted data is not sent', async (model, thinking) => {
    provider = newProvider();
    const { sent, content } = await turn(model, history(), thinking);
    expect(JSON.stringify(sent)).not.toContain('redacted');
    expect(violations(model, sent)).toEqual([]);
    expect(content.length).toBeGreaterThan(0);
  });
});
