// The gateway's filter for thinking another provider signed (a conversation that moved between them).
import { describe, expect, test } from 'bun:test';
import type { MessagesRequest } from '../../src/anthropic/schema.ts';
import { foreignTo, hasThinking, withoutForeignThinking } from '../../src/gateway/foreign-thinking.ts';
import { toZaiBody } from '../../src/providers/zai/request.ts';

const FOREIGN = ['foreign', 'sig', 'FAKE'].join('-');
const OWN = ['own', 'sig', 'FAKE'].join('-');
const claims = (s: string) => s === FOREIGN;

function req(messages: unknown[]): MessagesRequest {
  return { model: 'glm-5.1', max_tokens: 100, messages } as MessagesRequest;
}

describe('withoutForeignThinking', () => {
  test('drops thinking another provider claims and keeps its own, unsigned and redacted blocks', () => {
    const r = req([
      { role: 'user', content: 'hi' },
      {
        role: 'assistant',
        content: [
          { type: 'thinking', thinking: 'a', signature: FOREIGN },
          { type: 'thinking', thinking: 'b', signature: OWN },
          { type: 'redacted_thinking', data: 'x' },
          { type: 'text', text: 'ok' },
        ],
      },
      { role: 'user', content: 'more' },
    ]);
    const out = withoutForeignThinking(r, claims);
    expect(out.messages[1]!.content).toEqual([
      { type: 'thinking', thinking: 'b', signature: OWN },
      { type: 'redacted_thinking', data: 'x' },
      { type: 'text', text: 'ok' },
    ]);
    // The client's request is not touched.
    expect((r.messages[1]!.content as unknown[]).length).toBe(4);
  });

  test('returns the request itself when nothing is foreign (no copy on the hot path)', () => {
    const r = req([{ role: 'user', content: 'hi' }, { role: 'assistant', content: [{ type: 'thinking', thinking: 'b', signature: OWN }] }]);
    expect(withoutForeignThinking(r, claims)).toBe(r);
  });

  test('a turn that only thought is left empty, in its place, for the provider to mend', () => {
    const r = req([
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: [{ type: 'thinking', thinking: 'a', signature: FOREIGN }] },
      { role: 'user', content: 'again' },
    ]);
    const out = withoutForeignThinking(r, claims).messages;
    expect(out.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(out[1]!.content).toEqual([]);
    // Z.AI, for one, sends no empty message: the turn goes and the user turns around it merge.
    const sent = toZaiBody({ ...r, messages: out }, 'glm-5.1').messages as Array<{ role: string }>;
    expect(sent.map((m) => m.role)).toEqual(['user']);
  });

  test('hasThinking looks only at assistant turns', () => {
    expect(hasThinking(req([{ role: 'user', content: [{ type: 'text', text: 'thinking' }] }]))).toBe(false);
    expect(hasThinking(req([{ role: 'assistant', content: [{ type: 'thinking', thinking: '', signature: '' }] }]))).toBe(true);
  });
});

describe('foreignTo', () => {
  const zai = { issuedThinking: (s: string) => s === OWN };
  const google = { issuedThinking: (s: string) => s === FOREIGN };
  const UNKNOWN = ['nobody', 'remembers', 'FAKE'].join('-');

  test('a target that can tell its signatures keeps only its own, even one no provider remembers (after a restart)', () => {
    const foreign = foreignTo(zai, [google]);
    expect([OWN, FOREIGN, UNKNOWN].map(foreign)).toEqual([false, true, true]);
  });

  test('a target that cannot tell drops only what another provider claims', () => {
    const foreign = foreignTo({}, [google]);
    expect([OWN, FOREIGN, UNKNOWN].map(foreign)).toEqual([false, true, false]);
  });
});
