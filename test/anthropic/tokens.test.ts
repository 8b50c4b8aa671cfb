import { describe, expect, test } from 'bun:test';
import { estimateInputTokens, textTokens } from '../../src/anthropic/tokens.ts';
import { solidPng } from '../fakes/png.ts';
import { plainPdf } from '../fixtures/pdf/make-pdf.ts';

describe('textTokens', () => {
  test('latin text runs about four characters per token', () => {
    expect(textTokens('a'.repeat(400))).toBe(100);
    expect(textTokens('')).toBe(0);
  });
  test('CJK text counts about one token per character', () => {
    expect(textTokens('日本語のテキスト')).toBe(8);
  });
});

describe('estimateInputTokens', () => {
  const base = { model: 'm', messages: [{ role: 'user', content: 'foo' }] };

  test('a tiny request is a small positive number', () => {
    const n = estimateInputTokens(base);
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThan(20);
  });

  test('grows with system, messages and tools', () => {
    const a = estimateInputTokens(base);
    const withSystem = estimateInputTokens({ ...base, system: [{ type: 'text', text: 'x'.repeat(4000) }] });
    expect(withSystem - a).toBeGreaterThanOrEqual(1000);
    const withTool = estimateInputTokens({
      ...base,
      tools: [{ name: 'Bash', description: 'd'.repeat(400), input_schema: { type: 'object', properties: {} } }],
    });
    expect(withTool - a).toBeGreaterThan(100);
    const twoTools = estimateInputTokens({
      ...base,
      tools: [
        { name: 'Bash', description: 'd'.repeat(400), input_schema: { type: 'object' } },
        { name: 'Read', description: 'd'.repeat(400), input_schema: { type: 'object' } },
      ],
    });
    expect(twoTools).toBeGreaterThan(withTool);
  });

  test('counts tool_use input, tool_result content, images and documents', () => {
    const n = estimateInputTokens({
      messages: [
        { role: 'user', content: 'go' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'Bash', input: { command: 'x'.repeat(400) } }] },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 't', content: [{ type: 'text', text: 'y'.repeat(400) }, { type: 'image', source: {} }] },
            { type: 'document', source: { type: 'text', data: 'z'.repeat(400) } },
          ],
        },
      ],
    });
    expect(n).toBeGreaterThan(100 + 100 + 1600 + 100);
  });

  test('thinking from earlier assistant turns is not counted, the last turn is', () => {
    const thinking = { type: 'thinking', thinking: 't'.repeat(4000), signature: 's' };
    const earlier = estimateInputTokens({
      messages: [{ role: 'assistant', content: [thinking] }, { role: 'user', content: 'x' }],
    });
    const last = estimateInputTokens({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: [thinking] }] });
    expect(last - earlier).toBeGreaterThanOrEqual(1000);
  });

  test('thinking of the turn still in a tool loop counts (the client must send it back), as Anthropic counts it', () => {
    const thinking = { type: 'thinking', thinking: 't'.repeat(4000), signature: 's' };
    const toolUse = { type: 'tool_use', id: 'tu_1', name: 'Bash', input: { command: 'ls' } };
    const result = { type: 'tool_result', tool_use_id: 'tu_1', content: 'a.txt' };
    const loop = (withThinking: boolean) =>
      estimateInputTokens({
        messages: [
          { role: 'user', content: 'list the files' },
          { role: 'assistant', content: withThinking ? [thinking, toolUse] : [toolUse] },
          { role: 'user', content: [result] },
        ],
      });
    expect(loop(true) - loop(false)).toBeGreaterThanOrEqual(1000);
    // Once the user speaks again, that turn is over and its thinking is dropped.
    const over = (withThinking: boolean) =>
      estimateInputTokens({
        messages: [
          { role: 'user', content: 'list the files' },
          { role: 'assistant', content: withThinking ? [thinking, toolUse] : [toolUse] },
          { role: 'user', content: [result] },
          { role: 'assistant', content: 'a.txt' },
          { role: 'user', content: 'thanks' },
        ],
      });
    expect(over(true)).toBe(over(false));
  });

  test("an image costs by its pixel size (width × height / 750, scaled to a 1568 px edge), as Anthropic bills it", () => {
    const withImage = (source: Record<string, unknown>) =>
      estimateInputTokens({ messages: [{ role: 'user', content: [{ type: 'image', source }] }] }) - estimateInputTokens({ messages: [{ role: 'user', content: [] }] });
    const png = (w: number, h: number) => ({ type: 'base64', media_type: 'image/png', data: Buffer.from(solidPng(w, h)).toString('base64') });
    expect(withImage(png(32, 32))).toBe(2); // an icon
    expect(withImage(png(1366, 639))).toBe(1164); // a screenshot
    expect(withImage(png(3136, 200))).toBe(210); // a long strip, scaled to 1568 × 100
    expect(withImage(png(1600, 1600))).toBe(1600); // the most, as for any large picture
    // Nothing to measure: the most an image costs.
    expect(withImage({ type: 'url', url: 'https://example.com/a.png' })).toBe(1600);
    expect(withImage({ type: 'base64', media_type: 'image/png', data: 'AAAA' })).toBe(1600);
  });

  test('a PDF costs by the pages its page tree counts, not by its byte size', () => {
    const withPdf = (pdf: Uint8Array) =>
      estimateInputTokens({ messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: Buffer.from(pdf).toString('base64') } }] }] }) -
      estimateInputTokens({ messages: [{ role: 'user', content: [] }] });
    // Twenty pages of text in a few kilobytes are twenty pages; one scanned page of 600 KB is one.
    expect(withPdf(plainPdf(20))).toBe(withPdf(plainPdf(1)) * 20);
    expect(withPdf(plainPdf(1, 600_000))).toBe(withPdf(plainPdf(1)));
  });

  test('never throws on odd shapes and answers at least 1', () => {
    expect(estimateInputTokens({})).toBe(1);
    expect(estimateInputTokens({ messages: [null, 5, { content: { weird: true } }], tools: [null], system: 7 })).toBeGreaterThanOrEqual(1);
    const cyclic: Record<string, unknown> = { type: 'mystery' };
    cyclic.self = cyclic;
    expect(estimateInputTokens({ messages: [{ role: 'user', content: [cyclic] }] })).toBeGreaterThanOrEqual(1);
  });
});
