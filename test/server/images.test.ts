// The image endpoints' pure parts: how each endpoint's body becomes one job, and the job a
// Messages request. The endpoints themselves run against the fake in test/e2e/images.test.ts.
import { afterEach, describe, expect, test } from 'bun:test';
import { ApiError } from '../../src/anthropic/errors.ts';
import { blockStart, blockStop, MESSAGE_STOP, messageDelta, messageStart, type AnthropicEvent } from '../../src/anthropic/events.ts';
import { aspectRatioOfSize, inputImageOf, jobOfGenerate, jobOfOpenAi, messagesRequestOf } from '../../src/server/images.ts';
import { validateMessagesRequest } from '../../src/server/validate.ts';
import { AUTH, dispatchSteps, post, read, startHarness, until, type Harness } from './stubs.ts';

describe('aspectRatioOfSize', () => {
  const cases: Array<[string | undefined, string | undefined]> = [
    ['1024x1024', '1:1'],
    ['1792x1024', '16:9'],
    ['1024x1792', '9:16'],
    ['1536x1024', '3:2'],
    ['1024x1536', '2:3'],
    ['2520x1080', '21:9'],
    ['1280x1024', '5:4'],
    ['auto', undefined],
    [undefined, undefined],
  ];
  for (const [size, want] of cases) test(`${size} -> ${want}`, () => expect(aspectRatioOfSize(size)).toBe(want as never));
});

describe('inputImageOf', () => {
  test('a data: URL says its type; bare base64 is known by its first bytes', () => {
    const f = 'input_image';
    expect(inputImageOf('data:image/JPEG;base64,/9j/AAA=')).toEqual({ media_type: 'image/jpeg', data: '/9j/AAA=', field: f });
    expect(inputImageOf('/9j/4AAQ')).toEqual({ media_type: 'image/jpeg', data: '/9j/4AAQ', field: f });
    expect(inputImageOf('R0lGODlh')).toEqual({ media_type: 'image/gif', data: 'R0lGODlh', field: f });
    expect(inputImageOf('UklGRiQAAABXRUJQVlA4IA==')).toEqual({ media_type: 'image/webp', data: 'UklGRiQAAABXRUJQVlA4IA==', field: f });
    expect(inputImageOf(' iVBORw0K ', 'image')).toEqual({ media_type: 'image/png', data: 'iVBORw0K', field: 'image' });
  });
});

describe('what is not a picture', () => {
  test('bare base64 that is no PNG, JPEG, GIF or WebP is a 400 naming the field, not a PNG label on other bytes', () => {
    const notAPicture = Buffer.from('just some text, not a picture').toString('base64');
    expect(() => inputImageOf(notAPicture)).toThrow(new ApiError('invalid_request_error', 'input_image: not a PNG, JPEG, GIF or WebP image (a data: URL can name its type)'));
    expect(inputImageOf('iVBORw0KGgoAAAANSUhEUg==').media_type).toBe('image/png');
  });
});

describe('jobs', () => {
  test('the Go shape: every field carried', () => {
    expect(jobOfGenerate({ prompt: 'p', model: 'gemini-3-pro-image', aspect_ratio: '16:9', image_size: '2K', count: 2, input_image: 'iVBORw0KGgo=', session_id: 's' })).toEqual({
      prompt: 'p',
      model: 'gemini-3-pro-image',
      config: { aspect_ratio: '16:9', image_size: '2K' },
      count: 2,
      inputs: [{ media_type: 'image/png', data: 'iVBORw0KGgo=', field: 'input_image' }],
      sessionId: 's',
    });
    expect(jobOfGenerate({ prompt: 'p' })).toEqual({ prompt: 'p', model: null, config: {}, count: 1, inputs: [], sessionId: null });
  });

  test("OpenAI's shape: its own model names mean the image model here; other names are kept", () => {
    expect(jobOfOpenAi({ prompt: 'p', model: 'dall-e-3', n: 3, size: '1792x1024' })).toMatchObject({ model: null, count: 3, config: { aspect_ratio: '16:9' } });
    expect(jobOfOpenAi({ prompt: 'p', model: 'gpt-image-1' }).model).toBeNull();
    expect(jobOfOpenAi({ prompt: 'p', model: 'gemini-3-pro-image' }).model).toBe('gemini-3-pro-image');
  });

  test('a job becomes a valid non-streaming Messages request; the session id the way Claude Code sends its own', () => {
    const req = messagesRequestOf(jobOfGenerate({ prompt: 'p', aspect_ratio: '1:1', input_image: 'iVBORw0KGgo=', session_id: 'comic' }), 'img-model');
    expect(req).toEqual({
      model: 'img-model',
      max_tokens: 32768,
      stream: false,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'p' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } }] }],
      image_config: { aspect_ratio: '1:1' },
      metadata: { user_id: '{"session_id":"comic"}' },
    });
    expect(validateMessagesRequest(req)).toBe(req);
  });
});

function pictureEvents(data: string): AnthropicEvent[] {
  return [
    messageStart('image-model-x', { input_tokens: 5, output_tokens: 1 }, 'msg_img'),
    blockStart(0, { type: 'image', source: { type: 'base64', media_type: 'image/png', data } }),
    blockStop(0),
    messageDelta('end_turn', { output_tokens: 1290 }),
    MESSAGE_STOP,
  ];
}

describe('the endpoints against a stub gateway', () => {
  let h: Harness;
  afterEach(() => h?.stop());

  test('a pool that cannot draw: 404 not_found_error naming what is missing, nothing dispatched', async () => {
    h = startHarness();
    h.imageModel = null;
    for (const path of ['/v1/images/generate', '/v1/images/generations']) {
      const r = await post(h, path, { prompt: 'a cat' });
      expect(r.status).toBe(404);
      expect((await read(r)).error.message).toContain('no account in the pool can draw images');
    }
    expect(h.calls).toHaveLength(0);
  });

  test('a named model that cannot draw (opus, glm-4.6): 400 at once, no upstream call spent on it', async () => {
    h = startHarness();
    h.draws = { 'image-model-x': true, opus: false, 'glm-4.6': false };
    for (const [path, model] of [
      ['/v1/images/generate', 'opus'],
      ['/v1/images/generations', 'glm-4.6'],
    ] as const) {
      const r = await post(h, path, { prompt: 'a cat', model });
      expect(r.status).toBe(400);
      expect((await read(r)).error).toEqual({
        type: 'invalid_request_error',
        message: `model: ${model} does not draw images; name an image model (image-model-x) or leave model out`,
      });
    }
    expect(h.calls).toHaveLength(0);
    // A model the catalog does not list is the upstream's to judge.
    h.dispatch = async (req) => dispatchSteps(pictureEvents('iVBORw0KGgo='))(req);
    expect((await post(h, '/v1/images/generate', { prompt: 'a cat', model: 'paint-9-preview' })).status).toBe(200);
  });

  test('a prompt of nothing but spaces is a 400 naming the field, nothing dispatched (it would only spend quota on a picture of nothing)', async () => {
    h = startHarness();
    for (const [path, body] of [
      ['/v1/images/generate', { prompt: ' \n\t ' }],
      ['/v1/images/generations', { prompt: '   ' }],
    ] as const) {
      const r = await post(h, path, body);
      expect(r.status).toBe(400);
      expect((await read(r)).error).toEqual({ type: 'invalid_request_error', message: 'prompt: must contain non-whitespace text' });
    }
    expect(h.calls).toHaveLength(0);
  });

  test('an edit of a file that is no PNG, JPEG, GIF or WebP (an iPhone HEIC, a text file) is a 400 naming it, nothing dispatched', async () => {
    h = startHarness();
    const edit = async (file: Blob) => {
      const form = new FormData();
      form.append('prompt', 'make it blue');
      form.append('image', file, 'photo');
      return fetch(`${h.base}/v1/images/edits`, { method: 'POST', headers: { 'x-api-key': AUTH['x-api-key'] }, body: form });
    };
    const heic = await edit(new Blob([new Uint8Array([0, 0, 0, 24, 0x66, 0x74, 0x79, 0x70, 0x68, 0x65, 0x69, 0x63])], { type: 'image/heic' }));
    expect(heic.status).toBe(400);
    expect((await read(heic)).error.message).toBe('image: not a PNG, JPEG, GIF or WebP image');
    const text = await edit(new Blob(['hello'], { type: 'text/plain' }));
    expect((await read(text)).error.message).toBe('image: not a PNG, JPEG, GIF or WebP image');
    expect(h.calls).toHaveLength(0);
    // A JPEG sent as application/octet-stream (or named wrongly) goes as what its bytes say it is.
    h.dispatch = async (req) => dispatchSteps(pictureEvents('iVBORw0KGgo='))(req);
    const jpeg = await edit(new Blob([new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46])], { type: 'image/png' }));
    expect(jpeg.status).toBe(200);
    const sent = h.calls[0]!.body.messages[0]!.content as Array<{ type: string; source?: { media_type: string } }>;
    expect(sent[1]!.source!.media_type).toBe('image/jpeg');
  });

  test('all or nothing: one picture failing fails the request, the others are stopped, each is recorded', async () => {
    h = startHarness();
    let n = 0;
    const signals: AbortSignal[] = [];
    h.dispatch = async (req) => {
      signals.push(req.signal);
      if (++n === 2) throw new ApiError('rate_limit_error', 'image-model-x is rate limited on every account', { headers: { 'retry-after': '30' } });
      return dispatchSteps([{ wait: 2000 }, ...pictureEvents('iVBORw0KGgo=')])(req);
    };
    const r = await post(h, '/v1/images/generate', { prompt: 'three cats', count: 3 });
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toBe('30');
    expect((await read(r)).error.type).toBe('rate_limit_error');
    expect(signals.every((s) => s.aborted)).toBe(true);
    // The stopped ones are recorded as they wind down, long before their 2 s would have passed.
    await until(() => h.records.length === 3, 1000);
    expect(h.records.map((x) => x.requestId.replace(/^req_\w+/, 'req'))).toEqual(expect.arrayContaining(['req-1', 'req-2', 'req-3']));
    expect(h.records.map((x) => x.status).sort()).toEqual([429, 499, 499]);
  });

  test('a picture a filter stopped: 400 naming the verdict (stop_details) and what the model said', async () => {
    h = startHarness();
    const refusal = messageDelta('refusal', { output_tokens: 3 });
    refusal.delta.stop_details = { type: 'refusal', category: null, explanation: "Blocked by Google's safety filter (IMAGE_SAFETY)" };
    h.dispatch = async (req) =>
      dispatchSteps([
        messageStart('image-model-x', { input_tokens: 5, output_tokens: 1 }, 'msg_img'),
        blockStart(0, { type: 'text', text: '' }),
        { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: "I can't draw that." } },
        blockStop(0),
        refusal,
        MESSAGE_STOP,
      ])(req);
    const r = await post(h, '/v1/images/generate', { prompt: 'something forbidden' });
    expect(r.status).toBe(400);
    expect((await read(r)).error).toEqual({
      type: 'invalid_request_error',
      message: "image-model-x drew no image: Blocked by Google's safety filter (IMAGE_SAFETY). The model said: I can't draw that.",
    });
  });

  test('a refusal without details still says it was refused', async () => {
    h = startHarness();
    h.dispatch = async (req) =>
      dispatchSteps([messageStart('image-model-x', { input_tokens: 5, output_tokens: 1 }, 'msg_img'), messageDelta('refusal', { output_tokens: 0 }), MESSAGE_STOP])(req);
    const r = await post(h, '/v1/images/generate', { prompt: 'something forbidden' });
    expect(r.status).toBe(400);
    expect((await read(r)).error.message).toBe('image-model-x drew no image: the model refused (stop_reason refusal)');
  });

  test('the images come back in order with the usage summed', async () => {
    h = startHarness();
    let n = 0;
    h.dispatch = async (req) => dispatchSteps(pictureEvents(`AAA${++n}`))(req);
    const r = await post(h, '/v1/images/generate', { prompt: 'cats', count: 2 }, AUTH);
    const j = await read(r);
    expect(r.status).toBe(200);
    expect(j.images.map((i: { index: number; data: string }) => [i.index, i.data])).toEqual([
      [0, 'AAA1'],
      [1, 'AAA2'],
    ]);
    expect(j.usage).toEqual({ input_tokens: 10, output_tokens: 2580 });
    expect(h.calls.map((c) => c.body.model)).toEqual(['image-model-x', 'image-model-x']);
  });
});
