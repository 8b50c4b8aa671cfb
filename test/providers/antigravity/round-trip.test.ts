// A Claude Code conversation across turns: the previous response (translated by fromGoogleStream
// and accumulated by the SDK, as Claude Code would keep it) comes back as history, and the next
// request must carry the right signatures for whichever family serves it now.
import { describe, expect, test } from 'bun:test';
import type { MessagesRequest } from '../../../src/anthropic/schema.ts';
import type { ModelFamily } from '../../../src/providers/provider.ts';
import { createSignatureStore, type SignatureStore } from '../../../src/providers/antigravity/signatures.ts';
import { familyOf, INTERLEAVED_HINT, SKIP_SIGNATURE, toGoogleRequest } from '../../../src/providers/antigravity/to-google.ts';
import firstTurn from '../../fixtures/antigravity/claude-code-first-turn.json';
import sigs from '../../fixtures/antigravity/signatures.json';
import { assertValidSequence } from '../zai/invariants.ts';
import { accumulate, readSseFixture, translate } from './stream-helpers.ts';

type Json = Record<string, any>;
const SESSION = 'conv-db93e56b';

function toGoogle(req: MessagesRequest, model: string, signatures: SignatureStore, projectId = 'proj-a'): Json {
  return toGoogleRequest(req, {
    model,
    family: familyOf(model),
    projectId,
    sessionId: '-3750763034362895579',
    requestId: 'agent-1',
    signatures,
    sessionKey: SESSION,
  }) as Json;
}

/** One upstream turn: fixture stream -> Anthropic events -> the message Claude Code keeps. */
async function respond(fixture: string, family: ModelFamily, signatures: SignatureStore) {
  const events = await translate(await readSseFixture(fixture), { clientModel: 'claude-opus-4-8', family, sessionKey: SESSION, signatures });
  assertValidSequence(events);
  return accumulate(events);
}

function nextTurn(prev: MessagesRequest, assistantContent: unknown[], results: Json[]): MessagesRequest {
  return {
    ...prev,
    messages: [...prev.messages, { role: 'assistant', content: assistantContent as any }, { role: 'user', content: results as any }],
  };
}

const turn1 = firstTurn.body as unknown as MessagesRequest;

describe('Claude tool loop', () => {
  test('turn 1 is a clean envelope; turn 2 replays signed thinking first and answers the call by id and name', async () => {
    const store = createSignatureStore();
    const env1 = toGoogle(turn1, 'claude-opus-4-6-thinking', store);
    expect(env1.request.systemInstruction.parts.map((p: Json) => p.text)).toEqual([
      "You are a Claude agent, built on Anthropic's Claude Agent SDK.",
      '\nYou are an interactive agent that helps users with software engineering tasks.',
      `Available agent types for the Agent tool:\n- Explore: Read-only search agent.\n\n${INTERLEAVED_HINT}`,
    ]);
    expect(JSON.stringify(env1)).not.toMatch(/cache_control|context_management|billing-header|\$schema/);
    expect(env1.request.toolConfig).toEqual({ functionCallingConfig: { mode: 'VALIDATED' } });
    expect(env1.request.generationConfig.thinkingConfig).toEqual({ includeThoughts: true, thinkingBudget: 31999 });

    const msg = await respond('claude-thinking-tool.sse', 'claude', store);
    const call = msg.content.find((b) => b.type === 'tool_use') as Json;
    const turn2 = nextTurn(turn1, msg.content, [{ type: 'tool_result', tool_use_id: call.id, content: 'a.txt\nb.txt', cache_control: { type: 'ephemeral' } }]);
    const env2 = toGoogle(turn2, 'claude-opus-4-6-thinking', store);
    expect(env2.request.contents).toEqual([
      env1.request.contents[0],
      {
        role: 'model',
        parts: [
          { text: 'The user wants the file list.', thought: true, thoughtSignature: sigs.claude },
          { text: "I'll list the files." },
          { functionCall: { name: 'Bash', args: { command: 'ls', description: 'List files' }, id: 'toolu_vrtx_01FixtureBashCall' } },
        ],
      },
      { role: 'user', parts: [{ functionResponse: { name: 'Bash', id: 'toolu_vrtx_01FixtureBashCall', response: { output: 'a.txt\nb.txt' } } }] },
    ]);
  });

  test('a resumed session (new process, empty store) still replays Claude thinking, without recovery', async () => {
    const msg = await respond('claude-thinking-tool.sse', 'claude', createSignatureStore());
    const turn2 = nextTurn(turn1, msg.content, [{ type: 'tool_result', tool_use_id: 'toolu_vrtx_01FixtureBashCall', content: 'ok' }]);
    const env = toGoogle(turn2, 'claude-opus-4-6-thinking', createSignatureStore());
    expect(env.request.contents[1].parts[0]).toEqual({ text: 'The user wants the file list.', thought: true, thoughtSignature: sigs.claude });
    expect(env.request.contents).toHaveLength(3);
  });

  test('switching the same conversation to Gemini drops Claude thinking, signs the call with the sentinel and closes the loop', async () => {
    const store = createSignatureStore();
    const msg = await respond('claude-thinking-tool.sse', 'claude', store);
    const turn2 = nextTurn(turn1, msg.content, [{ type: 'tool_result', tool_use_id: 'toolu_vrtx_01FixtureBashCall', content: 'ok' }]);
    const env = toGoogle(turn2, 'gemini-3-pro-high', store);
    expect(JSON.stringify(env)).not.toContain(sigs.claude);
    expect(env.request.contents[1].parts).toEqual([
      { text: "I'll list the files." },
      { functionCall: { name: 'Bash', args: { command: 'ls', description: 'List files' }, id: 'toolu_vrtx_01FixtureBashCall' }, thoughtSignature: SKIP_SIGNATURE },
    ]);
    expect(env.request.contents.slice(3)).toEqual([
      { role: 'model', parts: [{ text: '[Tool execution completed.]' }] },
      { role: 'user', parts: [{ text: '[Continue]' }] },
    ]);
  });
});

describe('Gemini tool loop', () => {
  async function geminiTurn2(store: SignatureStore) {
    toGoogle(turn1, 'gemini-3-pro-high', store); // remembers the sanitized tool names for this session
    const msg = await respond('gemini-parallel-calls.sse', 'gemini', store);
    const [, read, query] = msg.content as Json[];
    expect(query!.name).toBe('mcp__db.query'); // the client's own name comes back
    // That tool has real properties, so no placeholder was declared and an extra `reason` arg is the model's own.
    expect(query!.input).toEqual({ sql: 'select 1', reason: 'placeholder value' });
    // Claude Code answers in its own order.
    return nextTurn(turn1, msg.content, [
      { type: 'tool_result', tool_use_id: query!.id, content: [{ type: 'text', text: '1' }] },
      { type: 'tool_result', tool_use_id: read!.id, content: 'file a', is_error: false },
    ]);
  }

  test('turn 2 puts the cached signature back on the first call, drops unsigned thinking, keeps call order, echoes ids as Gemini gave them', async () => {
    const store = createSignatureStore();
    const turn2 = await geminiTurn2(store);
    const env = toGoogle(turn2, 'gemini-3-pro-high', store);
    const [, model, user] = env.request.contents;
    expect(model.parts).toEqual([
      { functionCall: { name: 'Read', args: { file_path: '/tmp/a.txt' }, id: 'call_1421923' }, thoughtSignature: sigs.gemini2 },
      { functionCall: { name: 'mcp__db_query', args: { sql: 'select 1', reason: 'placeholder value' } } },
    ]);
    expect(user.parts).toEqual([
      { functionResponse: { name: 'Read', id: 'call_1421923', response: { output: 'file a' } } },
      { functionResponse: { name: 'mcp__db_query', response: { output: '1' } } },
    ]);
    // The call Gemini made without an id goes back without one (the toolu_ id is the proxy's own).
    expect('id' in model.parts[1].functionCall).toBe(false);
    expect('id' in user.parts[1].functionResponse).toBe(false);
    expect(env.request.contents).toHaveLength(3);
  });

  test('another account (other project) gets the same history: signatures are not tied to an account', async () => {
    const store = createSignatureStore();
    const turn2 = await geminiTurn2(store);
    expect(toGoogle(turn2, 'gemini-3-pro-high', store, 'proj-b').request.contents).toEqual(toGoogle(turn2, 'gemini-3-pro-high', store, 'proj-a').request.contents);
  });

  test('switching to Claude never sends Gemini signatures and closes the loop Claude cannot continue', async () => {
    const store = createSignatureStore();
    const turn2 = await geminiTurn2(store);
    const env = toGoogle(turn2, 'claude-opus-4-6-thinking', store);
    const text = JSON.stringify(env);
    expect(text).not.toContain(sigs.gemini2);
    expect(text).not.toContain(SKIP_SIGNATURE);
    expect(env.request.contents[1].parts.every((p: Json) => p.functionCall && !p.thoughtSignature)).toBe(true);
    // Claude matches results by id, so even the proxy-minted id is sent.
    expect(env.request.contents[1].parts[1].functionCall.id).toMatch(/^toolu_[0-9a-f]{24}$/);
    expect(env.request.contents[2].parts[1].functionResponse.id).toBe(env.request.contents[1].parts[1].functionCall.id);
    expect(env.request.contents.slice(3)).toEqual([
      { role: 'model', parts: [{ text: '[Tool execution completed.]' }] },
      { role: 'user', parts: [{ text: '[Continue]' }] },
    ]);
  });

  test('after a restart (empty store) Gemini calls fall back to the sentinel', async () => {
    const turn2 = await geminiTurn2(createSignatureStore());
    const env = toGoogle(turn2, 'gemini-3-pro-high', createSignatureStore());
    expect(env.request.contents[1].parts.map((p: Json) => p.thoughtSignature)).toEqual([SKIP_SIGNATURE, SKIP_SIGNATURE]);
  });
});

describe('Gemini text turn', () => {
  test('the signature Gemini put on its first text part goes back on that part', async () => {
    const store = createSignatureStore();
    const msg = await respond('gemini-text-signature.sse', 'gemini', store);
    const req = { ...turn1, messages: [...turn1.messages, { role: 'assistant', content: msg.content }, { role: 'user', content: 'thanks' }] } as MessagesRequest;
    const env = toGoogle(req, 'gemini-3-pro-high', store);
    expect(env.request.contents[1]).toEqual({ role: 'model', parts: [{ text: 'Hello there!', thoughtSignature: sigs.gemini }] });
    // The same history sent to Claude carries no Gemini signature at all.
    expect(JSON.stringify(toGoogle(req, 'claude-opus-4-6-thinking', store))).not.toContain(sigs.gemini);
  });
});

describe('interrupted calls', () => {
  test('a call the user interrupted gets an error result so the history stays valid', () => {
    const req = {
      ...turn1,
      messages: [
        { role: 'user', content: 'go' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_vrtx_A', name: 'Bash', input: { command: 'sleep 99' } }] },
        { role: 'user', content: 'stop, do something else' },
      ],
      thinking: { type: 'disabled' },
    } as MessagesRequest;
    const env = toGoogle(req, 'claude-sonnet-4-6', createSignatureStore());
    expect(env.request.contents[2]).toEqual({
      role: 'user',
      parts: [
        { functionResponse: { name: 'Bash', id: 'toolu_vrtx_A', response: { output: '[Tool call was interrupted.]' } } },
        { text: 'stop, do something else' },
      ],
    });
  });
});

// Two client names that sanitize to the same upstream name used to lose the later tool silently.
describe('tool names that collide once sanitized', () => {
  const schema = { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] };
  const tools = [
    { name: 'mcp__srv.find', description: 'dot', input_schema: schema },
    { name: 'mcp__srv:find', description: 'colon', input_schema: schema },
    { name: 'mcp__srv_find', description: 'plain', input_schema: schema },
  ];
  const base = { model: 'claude-opus-4-8', max_tokens: 16000, messages: [{ role: 'user', content: 'find it' }], tools } as unknown as MessagesRequest;

  test('every tool is declared under its own name, the same one on every turn', () => {
    const names = (env: Json) => env.request.tools[0].functionDeclarations.map((d: Json) => d.name);
    const declared = names(toGoogle(base, 'gemini-3-pro-high', createSignatureStore()));
    expect(declared).toHaveLength(3);
    expect(new Set(declared).size).toBe(3);
    expect(declared[2]).toBe('mcp__srv_find'); // a name that needs no change keeps it
    for (const n of declared) expect(n).toMatch(/^[A-Za-z_][A-Za-z0-9_-]{0,63}$/);
    expect(names(toGoogle(base, 'claude-sonnet-4-6', createSignatureStore()))).toEqual(declared);
    // The order of the tools does not decide who is renamed (MCP servers list theirs in any order).
    const reversed = toGoogle({ ...base, tools: [...tools].reverse() } as MessagesRequest, 'gemini-3-pro-high', createSignatureStore());
    expect(names(reversed)).toEqual([...declared].reverse());
  });

  test('a call to the renamed tool comes back under the client name and goes up again under the declared one', async () => {
    const store = createSignatureStore();
    const env1 = toGoogle({ ...base, tool_choice: { type: 'tool', name: 'mcp__srv:find' } }, 'gemini-3-pro-high', store);
    const decls = env1.request.tools[0].functionDeclarations as Json[];
    const colon = decls.find((d) => d.description === 'colon')!.name as string;
    const plain = decls.find((d) => d.description === 'plain')!.name as string;
    expect(env1.request.toolConfig.functionCallingConfig.allowedFunctionNames).toEqual([colon]);

    const chunk = (parts: Json[], finishReason?: string) => ({
      response: { candidates: [{ content: { role: 'model', parts }, ...(finishReason ? { finishReason } : {}) }], modelVersion: 'gemini-3-pro', responseId: 'r1' },
    });
    const events = await translate(
      [chunk([{ functionCall: { name: colon, args: { q: 'a' }, id: 'call_1' } }, { functionCall: { name: plain, args: { q: 'b' }, id: 'call_2' } }]), chunk([], 'STOP')],
      { clientModel: 'claude-opus-4-8', family: 'gemini', sessionKey: SESSION, signatures: store },
    );
    assertValidSequence(events);
    const msg = await accumulate(events);
    expect((msg.content as Json[]).map((b) => b.name)).toEqual(['mcp__srv:find', 'mcp__srv_find']);

    const [c1, c2] = msg.content as Json[];
    const env2 = toGoogle(
      nextTurn(base, msg.content, [
        { type: 'tool_result', tool_use_id: c1!.id, content: 'A' },
        { type: 'tool_result', tool_use_id: c2!.id, content: 'B' },
      ]),
      'gemini-3-pro-high',
      store,
    );
    const [, model, user] = env2.request.contents;
    expect(model.parts.map((p: Json) => p.functionCall.name)).toEqual([colon, plain]);
    expect(user.parts.map((p: Json) => [p.functionResponse.name, p.functionResponse.response.output])).toEqual([
      [colon, 'A'],
      [plain, 'B'],
    ]);
  });
});
