import { describe, expect, test } from 'bun:test';
import type { MessagesRequest } from '../../../src/anthropic/schema.ts';
import { inlineBase64 } from '../../../src/providers/antigravity/inline-data.ts';
import { createSignatureStore } from '../../../src/providers/antigravity/signatures.ts';
import { toGoogleRequest } from '../../../src/providers/antigravity/to-google.ts';

describe('base64 of image and document blocks reaches Google without whitespace', () => {
  test.each([
    ['MIME line breaks', 'iVBORw0KGgo\r\nAAAANSUhEUg\r\nAAAA', 'iVBORw0KGgoAAAANSUhEUgAAAA'],
    ['bare newlines, tabs and spaces', ' iVBOR w0KG\n\tgoAA==\n', 'iVBORw0KGgoAA=='],
    ['clean data', 'iVBORw0KGgoAA==', 'iVBORw0KGgoAA=='],
  ])('%s', (_name, data, expected) => {
    expect(inlineBase64(data)).toBe(expected);
  });

  test('an image and a document with line-wrapped base64 are sent as one clean string each', () => {
    const req = {
      model: 'client-model',
      max_tokens: 100,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0K\nGgoAAAAN\n' } },
            { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBERi0x\r\nLjQK' } },
            { type: 'text', text: 'What is this?' },
          ],
        },
      ],
    } as unknown as MessagesRequest;
    const env = toGoogleRequest(req, {
      model: 'gemini-3-flash',
      family: 'gemini',
      projectId: 'proj-1',
      sessionId: '-42',
      requestId: 'agent-req-1',
      signatures: createSignatureStore(),
      sessionKey: 'sess-1',
    }) as { request: { contents: Array<{ parts: unknown[] }> } };
    expect(env.request.contents[0]!.parts).toEqual([
      { inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgoAAAAN' } },
      { inlineData: { mimeType: 'application/pdf', data: 'JVBERi0xLjQK' } },
      { text: 'What is this?' },
    ]);
  });
});
