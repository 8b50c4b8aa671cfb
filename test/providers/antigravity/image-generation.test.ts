import { describe, expect, test } from 'bun:test';
import { isImageGenerationModel, toImageGenerationEnvelope } from '../../../src/providers/antigravity/image-generation.ts';

describe('isImageGenerationModel', () => {
  const cases: Array<[string, string[] | undefined, boolean]> = [
    ['gemini-3.1-flash-image', undefined, true],
    ['gemini-3-pro-image', undefined, true],
    ['gemini-2.5-flash-image-preview', undefined, true],
    ['gemini-3-flash', undefined, false],
    ['claude-sonnet-4-6', undefined, false],
    ['gemini-imagen-next', ['gemini-imagen-next'], true], // the catalog's word wins over the id
    ['gemini-image-tuned', ['gemini-3.1-flash-image'], false],
  ];
  for (const [id, listed, want] of cases) test(`${id} -> ${want}`, () => expect(isImageGenerationModel(id, listed)).toBe(want));
});

describe('toImageGenerationEnvelope', () => {
  const agent = {
    project: 'proj-1',
    model: 'gemini-3.1-flash-image',
    userAgent: 'antigravity',
    requestType: 'agent',
    requestId: 'agent-1',
    request: {
      contents: [{ role: 'user', parts: [{ text: 'A kite' }] }],
      systemInstruction: { role: 'user', parts: [{ text: 'Draw simply.' }] },
      tools: [{ functionDeclarations: [{ name: 'x' }] }],
      toolConfig: { functionCallingConfig: { mode: 'AUTO' } },
      generationConfig: { maxOutputTokens: 32768, temperature: 0.4, thinkingConfig: { includeThoughts: true, thinkingBudget: -1 } },
      sessionId: '-123',
    },
  };

  test('asks for images; no tools, thinking or session; sampling and system prompt kept', () => {
    const env = toImageGenerationEnvelope(agent, { image_config: { aspect_ratio: '4:3', image_size: '4K' } }, 'image_gen/1/u/12');
    expect(env).toEqual({
      project: 'proj-1',
      model: 'gemini-3.1-flash-image',
      userAgent: 'antigravity',
      requestType: 'image_gen',
      requestId: 'image_gen/1/u/12',
      request: {
        contents: [{ role: 'user', parts: [{ text: 'A kite' }] }],
        systemInstruction: { role: 'user', parts: [{ text: 'Draw simply.' }] },
        generationConfig: { responseModalities: ['TEXT', 'IMAGE'], candidateCount: 1, temperature: 0.4, imageConfig: { aspectRatio: '4:3', imageSize: '4K' } },
      },
    });
    // The agent envelope it came from is left as it was.
    expect(agent.request.tools).toBeDefined();
  });

  test('no image_config: no imageConfig, the model picks', () => {
    const env = toImageGenerationEnvelope(agent, {}, 'r') as { request: { generationConfig: Record<string, unknown> } };
    expect(env.request.generationConfig.imageConfig).toBeUndefined();
    const onlySize = toImageGenerationEnvelope(agent, { image_config: { image_size: '1K' } }, 'r') as { request: { generationConfig: Record<string, unknown> } };
    expect(onlySize.request.generationConfig.imageConfig).toEqual({ imageSize: '1K' });
  });
});
