import { afterEach, beforeEach, describe, expect, test } from 'bun:test';
import type { AnthropicEvent } from '../../../src/anthropic/events.ts';
import { configureLog, log } from '../../../src/log.ts';
import { createGoogleTranslator, fromGoogleStream, type FromGoogleOptions } from '../../../src/providers/antigravity/from-google.ts';
import { createSignatureStore, type SignatureStore } from '../../../src/providers/antigravity/signatures.ts';
import { UpstreamError, type ModelFamily } from '../../../src/providers/provider.ts';
import sigs from '../../fixtures/antigravity/signatures.json';
import { assertValidSequence } from '../zai/invariants.ts';
import { accumulate, iterate, readSseFixture, translate } from './stream-helpers.ts';

function options(family: ModelFamily, signatures: SignatureStore = createSignatureStore(), extra: Partial<FromGoogleOptions> = {}): FromGoogleOptions {
  return { clientModel: 'claude-opus-4-6', family, sessionKey: 'sess-1', signatures, ...extra };
}

async function run(fixture: string, family: ModelFamily, signatures?: SignatureStore) {
  const events = await translate(await readSseFixture(fixture), options(family, signatures));
  assertValidSequence(events);
  const message = await accumulate(events);
  return { events, message };
}

const types = (events: AnthropicEvent[]) => events.map((e) => (e.type === 'content_block_delta' ? `delta:${e.delta.type}` : e.type));

describe('fixture streams through fromGoogleStream and the SDK accumulator', () => {
  test('Claude thinking + text + tool call: signature_delta closes the thinking block, stop_reason tool_use', async () => {
    const store = createSignatureStore();
    const { events, message } = await run('claude-thinking-tool.sse', 'claude', store);
    expect(message.model).toBe('claude-opus-4-6');
    expect(message.content).toEqual([
      { type: 'thinking', thinking: 'The user wants the file list.', signature: sigs.claude },
      { type: 'text', text: "I'll list the files." },
      { type: 'tool_use', id: 'toolu_vrtx_01FixtureBashCall', name: 'Bash', input: { command: 'ls', description: 'List files' } },
    ] as any);
    expect(message.stop_reason).toBe('tool_use');
    expect(message.usage).toMatchObject({ input_tokens: 18431, output_tokens: 61, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 });
    // The whitespace-only thought delta " " is kept, and the signature comes right before the block stop.
    expect(types(events).slice(0, 7)).toEqual([
      'message_start',
      'content_block_start',
      'delta:thinking_delta',
      'delta:thinking_delta',
      'delta:thinking_delta',
      'delta:signature_delta',
      'content_block_stop',
    ]);
    expect(store.thinkingFamily(sigs.claude)).toBe('claude');
    expect(store.toolCall('toolu_vrtx_01FixtureBashCall')).toEqual({ name: 'Bash', signature: null, family: 'claude' });
  });

  test('Gemini text with thoughtSignature: the signature signs the thinking block; usage splits cached tokens and counts thoughts', async () => {
    const store = createSignatureStore();
    const { message } = await run('gemini-text-signature.sse', 'gemini', store);
    expect(message.content).toEqual([
      { type: 'thinking', thinking: '**Planning the answer**\n\nThe user asks for a greeting.\n\n', signature: sigs.gemini },
      { type: 'text', text: 'Hello there!' },
    ] as any);
    expect(message.stop_reason).toBe('end_turn');
    expect(message.usage).toMatchObject({ input_tokens: 15640 - 8137, cache_read_input_tokens: 8137, output_tokens: 3 + 457 });
    expect(store.thinkingFamily(sigs.gemini)).toBe('gemini');
  });

  test('Gemini parallel calls: ids kept or minted, names restored, placeholder stripped, signatures cached per call', async () => {
    const store = createSignatureStore();
    store.rememberTools('sess-1', { original: new Map([['mcp__db_query', 'mcp__db.query']]), placeholders: new Set(['mcp__db_query']) });
    const { message } = await run('gemini-parallel-calls.sse', 'gemini', store);
    expect(message.content.map((b) => b.type)).toEqual(['thinking', 'tool_use', 'tool_use']);
    const [thinking, read, query] = message.content as any[];
    expect(thinking.signature).toBe(''); // Gemini never signs its thoughts; the call carries the signature
    expect(read).toEqual({ type: 'tool_use', id: 'call_1421923', name: 'Read', input: { file_path: '/tmp/a.txt' } });
    expect(query.name).toBe('mcp__db.query');
    expect(query.id).toMatch(/^toolu_[0-9a-f]{24}$/);
    expect(query.input).toEqual({ sql: 'select 1' });
    expect(message.stop_reason).toBe('tool_use'); // although Google said STOP
    expect(message.usage).toMatchObject({ input_tokens: 7503, cache_read_input_tokens: 8137, output_tokens: 993 });
    expect(store.toolCall('call_1421923')).toEqual({ name: 'Read', signature: sigs.gemini2, family: 'gemini' });
    expect(store.toolCall(query.id)).toEqual({ name: 'mcp__db_query', signature: null, family: 'gemini', minted: true });
  });

  test('GPT-OSS: part-less first and finish chunks, usage from the candidate-less last chunk', async () => {
    const { events, message } = await run('gpt-oss.sse', 'gpt');
    expect(message.content).toEqual([
      { type: 'thinking', thinking: 'The user wants one sentence.', signature: '' },
      { type: 'text', text: 'The average speed is 80 km/h.' },
    ] as any);
    expect(message.stop_reason).toBe('end_turn');
    expect(message.usage).toMatchObject({ input_tokens: 13058, output_tokens: 59, cache_read_input_tokens: 0 });
    expect(events.filter((e) => e.type === 'message_delta')).toHaveLength(1);
  });

  test('a signature-only part without thought:true is attached to the open thinking block', async () => {
    const { message } = await run('signature-only.sse', 'claude');
    expect(message.content).toEqual([
      { type: 'thinking', thinking: 'Short thought.', signature: sigs.claude },
      { type: 'text', text: 'Done.' },
    ] as any);
  });

  test('whitespace-only text deltas are all kept', async () => {
    const { events, message } = await run('whitespace-deltas.sse', 'claude');
    expect(message.content).toEqual([{ type: 'text', text: 'a b\n\nc\t' }] as any);
    expect(events.filter((e) => e.type === 'content_block_delta')).toHaveLength(6);
  });

  // Every Cloud Code stream names a finishReason (all captures do, GPT-OSS one chunk before its
  // usage-only last chunk): an answer that ends without one was cut short, not finished.
  test('a stream that ends without finishReason after content throws a transient error after the content', async () => {
    const got: AnthropicEvent[] = [];
    let err: unknown = null;
    try {
      for await (const e of fromGoogleStream(iterate(await readSseFixture('no-finish-reason.sse')), options('claude'))) got.push(e);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).kind).toBe('transient');
    expect((err as UpstreamError).code).toBe('TRUNCATED_STREAM');
    expect((err as UpstreamError).message).toContain('finish reason');
    expect(types(got)[0]).toBe('message_start');
    expect(types(got)).not.toContain('message_delta');
    expect(types(got)).not.toContain('message_stop');
  });

  test('MAX_TOKENS becomes max_tokens', async () => {
    const { message } = await run('max-tokens.sse', 'gemini');
    expect(message.stop_reason).toBe('max_tokens');
    expect(message.content).toEqual([{ type: 'text', text: 'A long answer that stops' }] as any);
  });

  test('an empty response throws EMPTY_RESPONSE before yielding anything', async () => {
    const it = fromGoogleStream(iterate(await readSseFixture('empty-response.sse')), options('claude'));
    const err = await it.next().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).kind).toBe('transient');
    expect((err as UpstreamError).code).toBe('EMPTY_RESPONSE');
  });
});

describe('state machine details', () => {
  const chunk = (parts: unknown[] | undefined, finishReason?: string, usageMetadata?: unknown) => ({
    candidates: [{ content: { role: 'model', ...(parts ? { parts } : {}) }, ...(finishReason ? { finishReason } : {}) }],
    ...(usageMetadata ? { usageMetadata } : {}),
  });
  const events = (chunks: unknown[], family: ModelFamily = 'claude', extra: Partial<FromGoogleOptions> = {}) =>
    translate(chunks, options(family, createSignatureStore(), extra));

  test('message_start echoes the client model and the given message id, with zero output so far', async () => {
    const ev = await events([chunk([{ text: 'hi' }], 'STOP', { promptTokenCount: 10, cachedContentTokenCount: 4 })], 'claude', { messageId: 'msg_fixed' });
    expect(ev[0]).toEqual({
      type: 'message_start',
      message: {
        id: 'msg_fixed',
        type: 'message',
        role: 'assistant',
        model: 'claude-opus-4-6',
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 6, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 4 },
      },
    });
  });

  test("an image model's finished picture becomes an image block; its drafts while thinking do not", async () => {
    const msg = await accumulate(
      await events(
        [
          chunk([{ text: 'Sketching.', thought: true }, { inlineData: { mimeType: 'image/png', data: 'RFJBRlQ=' }, thought: true }]),
          chunk([{ text: 'Here it is.' }, { inlineData: { mimeType: 'image/webp', data: 'RklOQUw=' } }], 'STOP'),
        ],
        'gemini',
      ),
    );
    expect(msg.content as unknown[]).toEqual([
      { type: 'thinking', thinking: 'Sketching.', signature: '' },
      { type: 'text', text: 'Here it is.' },
      { type: 'image', source: { type: 'base64', media_type: 'image/webp', data: 'RklOQUw=' } },
    ]);
  });

  test("a drawn picture's signature is kept for when the picture comes back as history", async () => {
    const store = createSignatureStore();
    const sig = `Ep0g${'i'.repeat(80)}`;
    await translate([chunk([{ inlineData: { mimeType: 'image/png', data: 'UElDVFVSRQ==' }, thoughtSignature: sig }], 'STOP')], options('gemini', store));
    expect(store.imageSignature('UElDVFVSRQ==')).toBe(sig);
    expect(store.imageSignature('T1RIRVI=')).toBeUndefined();
  });

  test('output tokens fall back to total minus prompt when only totalTokenCount is given', async () => {
    const msg = await accumulate(await events([chunk([{ text: 'hi' }], 'STOP', { promptTokenCount: 10, totalTokenCount: 25 })]));
    expect(msg.usage.output_tokens).toBe(15);
  });

  test('a tool call keeps stop_reason tool_use even when the turn then hits MAX_TOKENS', async () => {
    const ev = await events([chunk([{ functionCall: { name: 'Bash', args: { command: 'ls' }, id: 'toolu_vrtx_1' } }]), chunk([{ text: ' trailing' }], 'MAX_TOKENS')]);
    assertValidSequence(ev);
    const msg = await accumulate(ev);
    expect(msg.stop_reason).toBe('tool_use');
    expect(msg.content.map((b) => b.type)).toEqual(['tool_use', 'text']);
  });

  test('with disable_parallel_tool_use the answer keeps only its first call (Google has no such switch)', async () => {
    const store = createSignatureStore();
    const sig = `Ep0g${'c'.repeat(80)}`;
    const calls = [
      chunk([{ functionCall: { name: 'Bash', args: { command: 'ls' }, id: 'call_a' }, thoughtSignature: sig }]),
      chunk([{ functionCall: { name: 'Bash', args: { command: 'pwd' }, id: 'call_b' } }], 'STOP'),
    ];
    const single = await events(calls, 'gemini', { singleToolCall: true, signatures: store });
    assertValidSequence(single);
    const msg = await accumulate(single);
    expect(msg.content).toEqual([{ type: 'tool_use', id: 'call_a', name: 'Bash', input: { command: 'ls' } }] as any);
    expect(msg.stop_reason).toBe('tool_use');
    expect(store.toolCall('call_b')).toBeUndefined();
    const parallel = await accumulate(await events(calls, 'gemini'));
    expect(parallel.content.map((b) => (b as any).id)).toEqual(['call_a', 'call_b']);
  });

  test('a call with no args yields an empty input object', async () => {
    const msg = await accumulate(await events([chunk([{ functionCall: { name: 'TaskList' } }], 'STOP')], 'gemini'));
    expect((msg.content[0] as any).input).toEqual({});
  });

  test('inline image output becomes an image block', async () => {
    const ev = await events([chunk([{ inlineData: { mimeType: 'image/png', data: 'iVBOR' } }, { text: 'Here.' }], 'STOP')], 'gemini');
    expect(ev.filter((e) => e.type === 'content_block_start').map((e) => (e as any).content_block)).toEqual([
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBOR' } },
      { type: 'text', text: '' },
    ]);
    const msg = await accumulate(ev);
    expect(msg.content).toHaveLength(2);
  });

  test('a signature-only part opens no thinking block for a client that did not ask for thinking', async () => {
    const ev = await events([chunk([{ text: '', thoughtSignature: sigs.claude }]), chunk([{ text: 'x' }], 'STOP')], 'gpt', { thoughts: false });
    assertValidSequence(ev);
    expect((await accumulate(ev)).content).toEqual([{ type: 'text', text: 'x' }] as any);
  });

  test('a signature-only part before any block opens a signed empty thinking block', async () => {
    const msg = await accumulate(await events([chunk([{ text: '', thoughtSignature: sigs.claude }]), chunk([{ text: 'x' }], 'STOP')]));
    expect(msg.content).toEqual([
      { type: 'thinking', thinking: '', signature: sigs.claude },
      { type: 'text', text: 'x' },
    ] as any);
  });

  // A Claude signature is the last thing of its thinking block: thought text after it is another block,
  // and merging the two would put one block's signature on both texts (rejected when replayed).
  test('thought text after a signed thought opens a new thinking block, each with its own signature', async () => {
    const second = `${sigs.claude.slice(0, -4)}QQ==`;
    const ev = await events([
      chunk([{ thought: true, text: 'first' }, { thought: true, text: '', thoughtSignature: sigs.claude }]),
      chunk([{ thought: true, text: 'second' }, { text: '', thoughtSignature: second }]),
      chunk([{ text: 'answer' }], 'STOP'),
    ]);
    assertValidSequence(ev);
    expect((await accumulate(ev)).content).toEqual([
      { type: 'thinking', thinking: 'first', signature: sigs.claude },
      { type: 'thinking', thinking: 'second', signature: second },
      { type: 'text', text: 'answer' },
    ] as any);
  });

  test('junk lines (non-objects, part-less candidates) are skipped', async () => {
    const ev = await events([null, 'x', 42, [], chunk(undefined), chunk([null, 7, { text: 'ok' }], 'STOP')]);
    assertValidSequence(ev);
    expect((await accumulate(ev)).content).toEqual([{ type: 'text', text: 'ok' }] as any);
  });

  test('an error object inside the stream throws an UpstreamError', async () => {
    const run = events([chunk([{ text: 'partial' }]), { error: { code: 503, message: 'overloaded', status: 'UNAVAILABLE' } }]);
    await expect(run).rejects.toBeInstanceOf(UpstreamError);
  });

  test('events of a chunk are yielded as soon as the chunk is read (streaming, not buffered to the end)', async () => {
    let pulled = 0;
    async function* source() {
      pulled++;
      yield chunk([{ text: 'first' }]);
      pulled++;
      yield chunk([{ text: 'second' }], 'STOP');
    }
    const it = fromGoogleStream(source(), options('claude'));
    expect((await it.next()).value?.type).toBe('message_start');
    expect(pulled).toBe(1);
  });
});

describe('blocked and content-less answers end as a message, not a retried error', () => {
  // Google's content filters are deterministic: asking again (or on another account) gets the same
  // answer. So these must be finished messages the SDK accepts, never EMPTY_RESPONSE.
  const usageMeta = { promptTokenCount: 120, candidatesTokenCount: 0, totalTokenCount: 120 };
  const finished = (finishReason: string, extra: Record<string, unknown> = {}) => ({
    candidates: [{ content: { role: 'model' }, finishReason }],
    usageMetadata: usageMeta,
    ...extra,
  });
  const lines: string[] = [];
  beforeEach(() => {
    lines.length = 0;
    log.setReporters([{ log: (o) => void lines.push(`${o.type}: ${o.args.join(' ')}`) }]);
  });
  afterEach(() => configureLog({ format: 'pretty' }));

  async function message(chunks: unknown[], family: ModelFamily = 'gemini') {
    const ev = await translate(chunks, options(family));
    assertValidSequence(ev);
    return { ev, msg: await accumulate(ev) };
  }

  for (const reason of ['SAFETY', 'RECITATION', 'BLOCKLIST', 'PROHIBITED_CONTENT', 'SPII', 'IMAGE_SAFETY', 'IMAGE_PROHIBITED_CONTENT', 'IMAGE_RECITATION']) {
    test(`finishReason ${reason} with no parts: an empty message with stop_reason refusal, and one log line naming it`, async () => {
      const { ev, msg } = await message([{ candidates: [{ content: { role: 'model' } }] }, finished(reason)]);
      expect(types(ev)).toEqual(['message_start', 'message_delta', 'message_stop']);
      expect(msg.content).toEqual([]);
      expect(msg.stop_reason).toBe('refusal' as never);
      expect(msg.usage).toMatchObject({ input_tokens: 120, output_tokens: 0 });
      expect(lines.filter((l) => l.includes(reason))).toHaveLength(1);
    });
  }

  test('a prompt blocked by promptFeedback (no candidates at all): refusal, and the log names the reason and its message', async () => {
    const { msg } = await message([
      { promptFeedback: { blockReason: 'PROHIBITED_CONTENT', blockReasonMessage: 'The prompt was blocked.' }, usageMetadata: { promptTokenCount: 42, totalTokenCount: 42 } },
    ]);
    expect(msg.content).toEqual([]);
    expect(msg.stop_reason).toBe('refusal' as never);
    expect(msg.usage).toMatchObject({ input_tokens: 42, output_tokens: 0 });
    expect(lines).toEqual([expect.stringMatching(/PROHIBITED_CONTENT.*The prompt was blocked\./)]);
  });

  test('a prompt blocked with blockReason OTHER inside the {response} wrapper is a refusal too', async () => {
    const { msg } = await message([{ response: { promptFeedback: { blockReason: 'OTHER' } } }]);
    expect(msg.stop_reason).toBe('refusal' as never);
  });

  test('text cut off by a filter keeps its text and ends with refusal', async () => {
    const { msg } = await message([
      { candidates: [{ content: { role: 'model', parts: [{ text: 'Here is the first verse' }] } }] },
      finished('RECITATION'),
    ]);
    expect(msg.content).toEqual([{ type: 'text', text: 'Here is the first verse' }] as never);
    expect(msg.stop_reason).toBe('refusal' as never);
  });

  // Anthropic's stop_details (type refusal) carries the verdict, so /v1/images can say why no picture came.
  test.each([
    ['IMAGE_SAFETY', "Blocked by Google's safety filter (IMAGE_SAFETY)"],
    ['SAFETY', "Blocked by Google's safety filter (SAFETY)"],
    ['RECITATION', "Blocked by Google's recitation filter (RECITATION)"],
    ['IMAGE_PROHIBITED_CONTENT', "Blocked by Google's prohibited-content filter (IMAGE_PROHIBITED_CONTENT)"],
  ])('finishReason %s: stop_details names the filter and the reason', async (reason, explanation) => {
    const { ev, msg } = await message([{ candidates: [{ content: { role: 'model', parts: [{ text: "I can't draw that." }] } }] }, finished(reason)]);
    expect(msg.stop_reason).toBe('refusal' as never);
    expect((msg as unknown as Record<string, unknown>).stop_details).toEqual({ type: 'refusal', category: null, explanation });
    expect((ev.find((e) => e.type === 'message_delta') as any).delta.stop_details).toEqual({ type: 'refusal', category: null, explanation });
  });

  test('a blocked prompt: stop_details names the blockReason and Google\'s message', async () => {
    const { msg } = await message([
      { promptFeedback: { blockReason: 'PROHIBITED_CONTENT', blockReasonMessage: 'The prompt was blocked.' }, usageMetadata: { promptTokenCount: 42, totalTokenCount: 42 } },
    ]);
    expect((msg as unknown as Record<string, unknown>).stop_details).toEqual({
      type: 'refusal',
      category: null,
      explanation: "The prompt was blocked by Google's prohibited-content filter (PROHIBITED_CONTENT): The prompt was blocked.",
    });
  });

  test('an ordinary end has no stop_details', async () => {
    const { ev } = await message([{ candidates: [{ content: { role: 'model', parts: [{ text: 'Hi' }] }, finishReason: 'STOP' }] }]);
    expect((ev.find((e) => e.type === 'message_delta') as any).delta.stop_details).toBeUndefined();
  });

  test('MAX_TOKENS with no parts (the budget went on thinking): stop_reason max_tokens, thought tokens counted as output', async () => {
    const { ev, msg } = await message([
      { candidates: [{ content: { role: 'model' }, finishReason: 'MAX_TOKENS' }], usageMetadata: { promptTokenCount: 50, thoughtsTokenCount: 4096, totalTokenCount: 4146 } },
    ]);
    expect(types(ev)).toEqual(['message_start', 'message_delta', 'message_stop']);
    expect(msg.content).toEqual([]);
    expect(msg.stop_reason).toBe('max_tokens');
    expect(msg.usage).toMatchObject({ input_tokens: 50, output_tokens: 4096 });
  });

  // LANGUAGE (an unsupported language) is Gemini's verdict on the request: asked again it says the same.
  test('finishReason LANGUAGE with nothing emitted is a bad_request naming it, not a retried EMPTY_RESPONSE', async () => {
    const err = await translate([finished('LANGUAGE')], options('gemini')).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).kind).toBe('bad_request');
    expect((err as UpstreamError).code).toBe('LANGUAGE');
    expect((err as UpstreamError).message).toContain('LANGUAGE');
    expect((err as UpstreamError).message).toContain('language');
  });

  test('finishReason LANGUAGE after some text keeps the text and ends the message', async () => {
    const { msg } = await message([{ candidates: [{ content: { role: 'model', parts: [{ text: 'Partial' }] } }] }, finished('LANGUAGE')]);
    expect(msg.content).toEqual([{ type: 'text', text: 'Partial' }] as never);
    expect(msg.stop_reason).toBe('end_turn');
  });

  // Gemini's newer abnormal ends: the answer so far is kept, and the log says why the turn stopped there.
  for (const reason of ['MALFORMED_FUNCTION_CALL', 'UNEXPECTED_TOOL_CALL', 'TOO_MANY_TOOL_CALLS', 'MALFORMED_RESPONSE', 'MISSING_THOUGHT_SIGNATURE']) {
    test(`finishReason ${reason} after some text keeps the text, ends the turn, and logs the reason`, async () => {
      const { msg } = await message([{ candidates: [{ content: { role: 'model', parts: [{ text: 'Partial' }] } }] }, finished(reason)]);
      expect(msg.stop_reason).toBe('end_turn');
      expect(lines.filter((l) => l.includes(`finishReason ${reason}`))).toHaveLength(1);
    });
  }

  // A malformed call is a sampling accident: asked again, Gemini usually gets it right, so it stays retryable.
  test('MALFORMED_FUNCTION_CALL with nothing emitted stays a retryable EMPTY_RESPONSE whose message names it', async () => {
    const err = await translate([finished('MALFORMED_FUNCTION_CALL')], options('gemini')).then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as UpstreamError).kind).toBe('transient');
    expect((err as UpstreamError).code).toBe('EMPTY_RESPONSE');
    expect((err as UpstreamError).message).toContain('MALFORMED_FUNCTION_CALL');
  });

  for (const reason of [null, 'STOP', 'OTHER', 'FINISH_REASON_UNSPECIFIED', 'SOMETHING_NEW']) {
    test(`finishReason ${reason} with nothing emitted stays a retryable EMPTY_RESPONSE`, async () => {
      const chunks = [reason === null ? { candidates: [{ content: { role: 'model' } }], usageMetadata: usageMeta } : finished(reason)];
      const err = await translate(chunks, options('gemini')).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(UpstreamError);
      expect((err as UpstreamError).kind).toBe('transient');
      expect((err as UpstreamError).code).toBe('EMPTY_RESPONSE');
    });
  }

  test('a blockReason of BLOCK_REASON_UNSPECIFIED blocks nothing: still EMPTY_RESPONSE', async () => {
    const run = translate([{ promptFeedback: { blockReason: 'BLOCK_REASON_UNSPECIFIED' } }], options('gemini'));
    await expect(run).rejects.toMatchObject({ code: 'EMPTY_RESPONSE' });
  });
});

describe('an answer that opens with a tool call', () => {
  // The translator yields the call as it comes; holding it until the answer says more is the
  // gateway's (src/gateway/head-hold.ts, test/gateway/head-hold.test.ts).
  const call = (id: string, finish?: string) => ({
    response: { candidates: [{ content: { role: 'model', parts: [{ functionCall: { name: 'Bash', args: { command: 'ls' }, id } }] }, ...(finish ? { finishReason: finish } : {}) }] },
  });
  const finish = { response: { candidates: [{ content: { role: 'model', parts: [{ text: '' }] }, finishReason: 'STOP' }], usageMetadata: { promptTokenCount: 5, candidatesTokenCount: 3 } } };
  const opening = { response: { candidates: [{ content: { role: 'model', parts: [{ text: '' }] } }] } };

  test('comes out as soon as its chunk arrives, and the finish closes it', () => {
    const tr = createGoogleTranslator(options('claude'));
    expect(tr.feed(opening)).toEqual([]);
    expect(types(tr.feed(call('toolu_vrtx_A')))).toEqual(['message_start', 'content_block_start', 'delta:input_json_delta']);
    const rest = [...tr.feed(finish), ...tr.end()];
    expect(types(rest)).toEqual(['content_block_stop', 'message_delta', 'message_stop']);
  });

  test('a stream cut after the call fails as truncated, so the gateway (holding the call) can fail over', () => {
    const tr = createGoogleTranslator(options('claude'));
    const out = [...tr.feed(opening), ...tr.feed(call('toolu_vrtx_A'))];
    expect(types(out)).toEqual(['message_start', 'content_block_start', 'delta:input_json_delta']);
    expect(() => tr.end()).toThrow(expect.objectContaining({ code: 'TRUNCATED_STREAM' }));
  });

  test('a call in the same chunk as the finish comes out at once', () => {
    const tr = createGoogleTranslator(options('gemini'));
    expect(types(tr.feed(call('call_1', 'STOP')))).toEqual(['message_start', 'content_block_start', 'delta:input_json_delta']);
  });

  test('parallel calls: the second closes the first and streams as usual', () => {
    const tr = createGoogleTranslator(options('claude'));
    expect(types(tr.feed(call('toolu_vrtx_A')))).toEqual(['message_start', 'content_block_start', 'delta:input_json_delta']);
    expect(types(tr.feed(call('toolu_vrtx_B')))).toEqual(['content_block_stop', 'content_block_start', 'delta:input_json_delta']);
  });

  test('an answer that opens with text comes out as it comes too', () => {
    const tr = createGoogleTranslator(options('claude'));
    const text = { response: { candidates: [{ content: { role: 'model', parts: [{ text: 'I will run it.' }] } }] } };
    expect(types(tr.feed(text))).toEqual(['message_start', 'content_block_start', 'delta:text_delta']);
  });
});
