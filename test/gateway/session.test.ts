import { describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { parseJsonAsByteStrings } from '../../src/anthropic/byte-strings.ts';
import type { MessagesRequest } from '../../src/anthropic/schema.ts';
import { escapedJson } from '../fixtures/escaped-json.ts';
import { historyKeyOf, sessionKeyOf } from '../../src/gateway/session.ts';

function body(over: Record<string, unknown> = {}): MessagesRequest {
  return { model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'hello there' }], ...over } as MessagesRequest;
}

test("Claude Code's JSON user_id carries the session id", () => {
  const b = body({ metadata: { user_id: JSON.stringify({ device_id: 'abc', account_uuid: '', session_id: '5f0c-uuid-1234' }) } });
  expect(sessionKeyOf(b, {})).toBe('5f0c-uuid-1234');
});

test('two conversations of one Claude Code process (/clear gives a new session id, the device stays) are two conversations', () => {
  const of = (session: string) =>
    body({ metadata: { user_id: JSON.stringify({ device_id: '1e50301d4e0176b1', account_uuid: '', session_id: session }) } });
  // The same first message in both: only the session id may tell them apart.
  const [a, b] = [sessionKeyOf(of('477be4ad-0bef'), {}), sessionKeyOf(of('9b7caaa6-290c'), {})];
  expect(a).not.toBe(b);
});

test('the legacy user_…_session_<uuid> form is understood', () => {
  const b = body({ metadata: { user_id: 'user_0123abcd_account__session_1b2c3d4e-aaaa-bbbb-cccc-1234567890ab' } });
  expect(sessionKeyOf(b, {})).toBe('1b2c3d4e-aaaa-bbbb-cccc-1234567890ab');
});

test('the x-claude-code-session-id header is used when metadata has none', () => {
  expect(sessionKeyOf(body(), { 'x-claude-code-session-id': 'hdr-session-1' })).toBe('hdr-session-1');
});

test('without an id, the first user message keys the conversation on every turn', () => {
  const t1 = body();
  const t2 = body({
    messages: [
      { role: 'user', content: [{ type: 'text', text: 'hello there' }] },
      { role: 'assistant', content: 'hi' },
      { role: 'user', content: 'next' },
    ],
  });
  expect(sessionKeyOf(t1, {})).toBe(sessionKeyOf(t2, {}));
  expect(sessionKeyOf(body({ messages: [{ role: 'user', content: 'another chat' }] }), {})).not.toBe(sessionKeyOf(t1, {}));
});

test('without an id, conversations that open with no text (an image alone) are still told apart, and each keeps its key', () => {
  const image = (data: string) => ({ type: 'image', source: { type: 'base64', media_type: 'image/png', data } });
  const a1 = body({ messages: [{ role: 'user', content: [image('iVBORw0KGgoAAAA-first')] }] });
  const a2 = body({
    messages: [
      { role: 'user', content: [image('iVBORw0KGgoAAAA-first')] },
      { role: 'assistant', content: 'a cat' },
      { role: 'user', content: 'and the colour?' },
    ],
  });
  const b = body({ messages: [{ role: 'user', content: [image('iVBORw0KGgoAAAA-second')] }] });
  const url = body({ messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'https://example.com/c.png' } }] }] });
  expect(sessionKeyOf(a1, {})).toBe(sessionKeyOf(a2, {}));
  expect(new Set([a1, b, url].map((x) => sessionKeyOf(x, {}))).size).toBe(3);
});

test('a user_id that is neither form falls back to the message hash', () => {
  const k = sessionKeyOf(body({ metadata: { user_id: 'plain-user' } }), {});
  expect(k).toBe(sessionKeyOf(body(), {}));
  expect(k).toMatch(/^[0-9a-f]{32}$/);
});

test('each sub-agent of a session is a conversation of its own', () => {
  const b = body({ metadata: { user_id: JSON.stringify({ session_id: 'main-session' }) } });
  expect(sessionKeyOf(b, { 'x-claude-code-agent-id': 'agent-1' })).toBe('main-session:agent-1');
  expect(sessionKeyOf(b, { 'x-claude-code-agent-id': 'agent-2' })).toBe('main-session:agent-2');
  expect(sessionKeyOf(b, {})).toBe('main-session');
});

test('a first message beyond ASCII keys the conversation by its UTF-8, whether the body had it raw or \\u-escaped', () => {
  const text = 'bonjour — où es-tu ? 🤖 voilà';
  const body = { model: 'm', max_tokens: 1, messages: [{ role: 'user', content: text }] };
  const [raw, escaped] = [JSON.stringify(body), escapedJson(body)];
  const key = (json: string) => sessionKeyOf(parseJsonAsByteStrings(Buffer.from(json)) as MessagesRequest, {});
  // The same key as before request text became byte strings: existing conversations keep their account.
  const expected = createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 32);
  expect(key(raw)).toBe(expected);
  expect(key(escaped)).toBe(expected);
});

test('a client-chosen session id of any length keys the conversation in a short key (the bindings and caches hold 20 000 of them)', () => {
  const long = 's'.repeat(100_000);
  const a = sessionKeyOf(body({ metadata: { user_id: JSON.stringify({ session_id: long }) } }), {});
  const b = sessionKeyOf(body({ metadata: { user_id: JSON.stringify({ session_id: `${long}x` }) } }), {});
  const c = sessionKeyOf(body(), { 'x-claude-code-session-id': long, 'x-claude-code-agent-id': 'a'.repeat(50_000) });
  for (const k of [a, b, c]) expect(k.length).toBeLessThanOrEqual(128);
  expect(a).not.toBe(b);
  // The same long id keys the same conversation on every turn.
  expect(sessionKeyOf(body({ metadata: { user_id: JSON.stringify({ session_id: long }) } }), {})).toBe(a);
});

describe('historyKeyOf: the key a fork shares with the conversation it came from', () => {
  const cc = (session: string, messages: unknown[]) =>
    body({ metadata: { user_id: JSON.stringify({ device_id: 'd', account_uuid: '', session_id: session }) }, messages });
  const signed = (sig: string) => ({ role: 'assistant', content: [{ type: 'thinking', thinking: 'hmm', signature: sig }, { type: 'tool_use', id: 'toolu_1', name: 'Bash', input: {} }] });
  const history = (sig: string) => [{ role: 'user', content: 'run it' }, signed(sig), { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'ok' }] }];

  test('a first turn has none (nothing to inherit yet)', () => {
    expect(historyKeyOf(body())).toBeNull();
  });

  test('a fork (new session id, same history, more turns) has the original conversation\'s key', () => {
    const original = cc('sess-a', history('R'.repeat(60)));
    const fork = cc('sess-b', [...history('R'.repeat(60)), { role: 'assistant', content: 'done' }, { role: 'user', content: 'more' }]);
    expect(sessionKeyOf(fork, {})).not.toBe(sessionKeyOf(original, {}));
    expect(historyKeyOf(fork)).toBe(historyKeyOf(original));
  });

  test('two conversations with the same first prompt differ by their first answer', () => {
    expect(historyKeyOf(cc('a', history('R'.repeat(60))))).not.toBe(historyKeyOf(cc('b', history('S'.repeat(60)))));
  });
});
