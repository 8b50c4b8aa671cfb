// Image generation through `mcp serve` with two Google accounts and the fake's image model
// (gemini-3.1-flash-image, the catalog's imageGenerationModelIds; antigravity.md §12):
// /v1/images/generate (the Go proxy's shape), /v1/images/generations (OpenAI's), and /v1/messages
// with an image model, which answers with image blocks. The PNGs are the fake's, sized by the
// aspect ratio and size that reached it.
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type FakeGoogle, startFakeGoogle } from '../fakes/google.ts';
import { pngSize, solidPng } from '../fakes/png.ts';
import { CHILD_PROCESS_HOOK_MS, addGoogleAccounts, cleanupTempDirs, googleEnv, mcpEnv, type ServeHandle, startServe, tempDir } from './helpers.ts';

const KEY = 'proxy-key-e2e-images-0123456789';
const ONE = 'painter-one@example.com';
const TWO = 'painter-two@example.com';
const IMAGE_MODEL = 'gemini-3.1-flash-image';
let google: FakeGoogle;
let server: ServeHandle;
let env: Record<string, string>;

beforeAll(async () => {
  google = startFakeGoogle();
  // No waiting for a reset: the failover test leaves one account limited for a minute.
  env = mcpEnv(tempDir(), { PROXY_API_KEY: KEY, MAX_WAIT_SEC: '0', ...googleEnv(google) });
  await addGoogleAccounts(env, google, [ONE, TWO]);
  server = await startServe({ env });
}, CHILD_PROCESS_HOOK_MS);

afterAll(async () => {
  await server?.stop();
  await google?.stop();
  cleanupTempDirs();
}, CHILD_PROCESS_HOOK_MS);

async function post(path: string, body: unknown): Promise<{ status: number; json: Record<string, any>; headers: Headers }> {
  const res = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, any>, headers: res.headers };
}

function sizeOf(b64: string): { width: number; height: number } {
  return pngSize(new Uint8Array(Buffer.from(b64, 'base64')));
}

function imageCalls(since: number) {
  return google.generations().slice(since).filter((g) => (g.body as { requestType?: string }).requestType === 'image_gen');
}

describe('POST /v1/images/generate', () => {
  test('draws with the catalog image model and sends it the aspect ratio and size', async () => {
    const before = google.generations().length;
    const r = await post('/v1/images/generate', { prompt: 'A lighthouse at dusk', aspect_ratio: '16:9', image_size: '2K' });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ type: 'image_generation', model: IMAGE_MODEL, text: 'Here is your picture.' });
    expect(r.json.id).toMatch(/^img_/);
    expect(r.json.images).toHaveLength(1);
    expect(r.json.images[0]).toMatchObject({ index: 0, media_type: 'image/png' });
    // The finished image, not the draft the model showed while thinking (8 x 8).
    expect(sizeOf(r.json.images[0].data)).toEqual({ width: 128, height: 72 });
    expect(r.json.usage.output_tokens).toBe(1290);

    const [call] = imageCalls(before);
    const env = call!.body as Record<string, any>;
    expect(env.model).toBe(IMAGE_MODEL);
    expect(env.requestId).toMatch(/^image_gen\/\d+\/[0-9a-f-]{36}\/12$/);
    expect(env.request.generationConfig).toEqual({ responseModalities: ['TEXT', 'IMAGE'], candidateCount: 1, imageConfig: { aspectRatio: '16:9', imageSize: '2K' } });
    expect(env.request.tools).toBeUndefined();
    expect(env.request.sessionId).toBeUndefined();
    expect(env.request.contents).toEqual([{ role: 'user', parts: [{ text: 'A lighthouse at dusk' }] }]);
  });

  test('a prompt beyond ASCII reaches the image model as the client wrote it', async () => {
    const before = google.generations().length;
    const prompt = 'Un phare au crépuscule — 灯台 🌅, voilà';
    expect((await post('/v1/images/generate', { prompt })).status).toBe(200);
    const [call] = imageCalls(before);
    expect((call!.body as Record<string, any>).request.contents).toEqual([{ role: 'user', parts: [{ text: prompt }] }]);
  });

  test('a big picture (~4 MB of base64 on one upstream line) arrives whole', async () => {
    const r = await post('/v1/images/generate', { prompt: 'A detailed city map' });
    expect(r.status).toBe(200);
    const bytes = Buffer.from(r.json.images[0].data, 'base64');
    expect(bytes.length).toBeGreaterThan(3_000_000);
    expect(sizeOf(r.json.images[0].data)).toEqual({ width: 1024, height: 1024 });
    // A PNG ends with its IEND chunk: nothing was cut.
    expect(bytes.subarray(-8, -4).toString('latin1')).toBe('IEND');
  });

  test('count draws that many pictures, one upstream request each, each one a request in the metrics', async () => {
    const served = async (): Promise<number> => {
      const text = await (await fetch(`${server.url}/metrics`, { headers: { 'x-api-key': KEY } })).text();
      return Number(new RegExp(`mcp_requests_total\\{model="${IMAGE_MODEL}",provider="antigravity",status="200"\\} (\\d+)`).exec(text)?.[1] ?? 0);
    };
    const before = google.generations().length;
    const counted = await served();
    const r = await post('/v1/images/generate', { prompt: 'Three pears', count: 3 });
    expect(r.status).toBe(200);
    expect(r.json.images.map((im: { index: number }) => im.index)).toEqual([0, 1, 2]);
    for (const im of r.json.images) expect(sizeOf(im.data)).toEqual({ width: 64, height: 64 });
    expect(imageCalls(before)).toHaveLength(3);
    expect((await served()) - counted).toBe(3);
  });

  test('an input image is sent along to be edited (bare base64 or a data: URL)', async () => {
    const png = Buffer.from(solidPng(10, 10)).toString('base64');
    for (const input of [png, `data:image/png;base64,${png}`]) {
      const before = google.generations().length;
      const r = await post('/v1/images/generate', { prompt: 'Make it blue', input_image: input });
      expect(r.status).toBe(200);
      expect(r.json.text).toBe('Here is your picture, edited from the 1 you sent.');
      const parts = (imageCalls(before)[0]!.body as Record<string, any>).request.contents[0].parts;
      expect(parts).toEqual([{ text: 'Make it blue' }, { inlineData: { mimeType: 'image/png', data: png } }]);
    }
  });

  test('the same session_id stays on one account', async () => {
    const before = google.generations().length;
    for (let i = 0; i < 4; i++) expect((await post('/v1/images/generate', { prompt: `Panel ${i} of the comic`, session_id: 'comic-7' })).status).toBe(200);
    const emails = new Set(imageCalls(before).map((g) => g.email));
    expect(emails.size).toBe(1);
  });

  test('a limited account fails over to the other, which draws; the limit is recorded', async () => {
    google.setMode({ kind: 'rate_limited', resetMs: 60_000 }, { email: ONE, model: IMAGE_MODEL });
    try {
      const before = google.generations().length;
      const r = await post('/v1/images/generate', { prompt: 'A fox in snow' });
      expect(r.status).toBe(200);
      expect(sizeOf(r.json.images[0].data)).toEqual({ width: 64, height: 64 });
      expect(imageCalls(before).filter((g) => g.mode === 'ok').map((g) => g.email)).toEqual([TWO]);
      const limits = (await (await fetch(`${server.url}/account-limits`, { headers: { 'x-api-key': KEY } })).json()) as unknown;
      expect(JSON.stringify(limits)).toContain(IMAGE_MODEL);
    } finally {
      google.clearModes();
    }
  });
});

describe('bad image requests get a clear 4xx and reach no upstream', () => {
  const cases: Array<[string, unknown, string]> = [
    ['no prompt', { aspect_ratio: '1:1' }, 'prompt: field required'],
    ['an empty prompt', { prompt: '' }, 'prompt: must not be empty'],
    ['an aspect ratio no model draws', { prompt: 'x', aspect_ratio: '7:3' }, 'aspect_ratio: invalid value "7:3"'],
    ['an unknown size', { prompt: 'x', image_size: '8K' }, 'image_size: invalid value "8K"'],
    ['too many pictures', { prompt: 'x', count: 5 }, 'count: must be <= 4, got 5'],
    ['an input image that is not base64', { prompt: 'x', input_image: 'not base64!' }, 'input_image: invalid base64 data'],
    ['a body that is not JSON', '{"prompt": ', 'request body is not valid JSON'],
  ];
  for (const [what, body, message] of cases) {
    test(`${what}: 400 invalid_request_error`, async () => {
      const before = google.generations().length;
      const r = await post('/v1/images/generate', body);
      expect(r.status).toBe(400);
      expect(r.json.type).toBe('error');
      expect(r.json.error.type).toBe('invalid_request_error');
      expect(r.json.error.message).toContain(message);
      expect(google.generations().length).toBe(before);
    });
  }

  test('OpenAI endpoint: a size that is not WxH is refused', async () => {
    const r = await post('/v1/images/generations', { prompt: 'x', size: 'huge' });
    expect(r.status).toBe(400);
    expect(r.json.error.message).toContain('size');
  });
});

describe('POST /v1/images/generations (OpenAI)', () => {
  test('n pictures as b64_json, the size as the nearest aspect ratio, an OpenAI model name meaning the image model', async () => {
    const before = google.generations().length;
    const r = await post('/v1/images/generations', { model: 'gpt-image-1', prompt: 'A teapot', n: 2, size: '1536x1024' });
    expect(r.status).toBe(200);
    expect(typeof r.json.created).toBe('number');
    expect(r.json.data).toHaveLength(2);
    for (const d of r.json.data) expect(sizeOf(d.b64_json)).toEqual({ width: 64, height: 43 });
    const calls = imageCalls(before);
    expect(calls.map((g) => (g.body as Record<string, any>).model)).toEqual([IMAGE_MODEL, IMAGE_MODEL]);
    expect((calls[0]!.body as Record<string, any>).request.generationConfig.imageConfig).toEqual({ aspectRatio: '3:2' });
  });

  test('response_format url gives data: URLs', async () => {
    const r = await post('/v1/images/generations', { prompt: 'A teapot', response_format: 'url' });
    expect(r.status).toBe(200);
    expect(r.json.data[0].url).toMatch(/^data:image\/png;base64,iVBOR/);
  });
});

describe('POST /v1/images/edits (OpenAI, multipart)', () => {
  async function edit(form: FormData): Promise<{ status: number; json: Record<string, any> }> {
    const res = await fetch(`${server.url}/v1/images/edits`, { method: 'POST', headers: { 'x-api-key': KEY }, body: form });
    return { status: res.status, json: (await res.json()) as Record<string, any> };
  }
  const png = (w: number, h: number) => new Blob([solidPng(w, h)], { type: 'image/png' });

  test('the image files and the prompt reach the model; n and size as in generations', async () => {
    const form = new FormData();
    form.append('prompt', 'Put the two side by side');
    form.append('image[]', png(10, 10), 'a.png');
    form.append('image[]', new Blob([solidPng(12, 6)]), 'b.bin'); // no type: sniffed
    form.append('n', '2');
    form.append('size', '1792x1024');
    const before = google.generations().length;
    const r = await edit(form);
    expect(r.status).toBe(200);
    expect(r.json.data).toHaveLength(2);
    expect(sizeOf(r.json.data[0].b64_json)).toEqual({ width: 64, height: 36 });
    const calls = imageCalls(before);
    expect(calls).toHaveLength(2);
    const parts = (calls[0]!.body as Record<string, any>).request.contents[0].parts as Array<Record<string, any>>;
    expect(parts[0]).toEqual({ text: 'Put the two side by side' });
    expect(parts.slice(1).map((p) => [p.inlineData.mimeType, sizeOf(p.inlineData.data)])).toEqual([
      ['image/png', { width: 10, height: 10 }],
      ['image/png', { width: 12, height: 6 }],
    ]);
  });

  test('a mask, no image, no prompt, a JSON body: each a clear 400, nothing sent upstream', async () => {
    const before = google.generations().length;
    const withMask = new FormData();
    withMask.append('prompt', 'x');
    withMask.append('image', png(4, 4), 'a.png');
    withMask.append('mask', png(4, 4), 'm.png');
    const refused = async (form: FormData): Promise<string> => {
      const r = await edit(form);
      expect(r.status).toBe(400);
      expect(r.json.error.type).toBe('invalid_request_error');
      return r.json.error.message;
    };
    expect(await refused(withMask)).toContain('mask:');
    const noImage = new FormData();
    noImage.append('prompt', 'x');
    expect(await refused(noImage)).toBe('image: field required (one or more image files)');
    const noPrompt = new FormData();
    noPrompt.append('image', png(4, 4), 'a.png');
    expect(await refused(noPrompt)).toBe('prompt: field required');
    const asJson = await post('/v1/images/edits', { prompt: 'x' });
    expect(asJson.status).toBe(400);
    expect(asJson.json.error.message).toContain('multipart/form-data');
    expect(google.generations().length).toBe(before);
  });
});

describe('an image model through /v1/messages', () => {
  test('the answer holds the picture as an image block (SDK, non-streaming and streaming)', async () => {
    const client = new Anthropic({ baseURL: server.url, apiKey: KEY, maxRetries: 0 });
    const req = { model: IMAGE_MODEL, max_tokens: 1000, messages: [{ role: 'user' as const, content: 'A boat' }], image_config: { aspect_ratio: '9:16' } };
    const msg = await client.messages.create(req as never);
    const blocks = (msg as Anthropic.Message).content as unknown as Array<Record<string, any>>;
    // The image model thinks first (its draft image is left out), then says a line and draws.
    expect(blocks.map((b) => b.type)).toEqual(['thinking', 'text', 'image']);
    expect(sizeOf(blocks[2]!.source.data)).toEqual({ width: 36, height: 64 });

    const streamed = await client.messages.stream(req as never).finalMessage();
    const sblocks = streamed.content as unknown as Array<Record<string, any>>;
    expect(sblocks.map((b) => b.type)).toEqual(['thinking', 'text', 'image']);
    expect(sblocks[2]!.source).toEqual(blocks[2]!.source);
    expect(streamed.stop_reason).toBe('end_turn');
  });

  test('a big picture streams whole through /v1/messages', async () => {
    const client = new Anthropic({ baseURL: server.url, apiKey: KEY, maxRetries: 0 });
    const msg = await client.messages.stream({ model: IMAGE_MODEL, max_tokens: 1000, messages: [{ role: 'user', content: 'A detailed forest' }] }).finalMessage();
    const image = (msg.content as unknown as Array<Record<string, any>>).find((b) => b.type === 'image')!;
    expect(sizeOf(image.source.data)).toEqual({ width: 1024, height: 1024 });
    expect(Buffer.from(image.source.data, 'base64').subarray(-8, -4).toString('latin1')).toBe('IEND');
  });

  test('the drawing is history the next turn can refer to', async () => {
    const client = new Anthropic({ baseURL: server.url, apiKey: KEY, maxRetries: 0 });
    const drawing = google.generations().length;
    const first = await client.messages.create({ model: IMAGE_MODEL, max_tokens: 1000, messages: [{ role: 'user', content: 'A boat' }] });
    const drawnBy = imageCalls(drawing)[0]!;
    const before = google.generations().length;
    const next = await client.messages.create({
      model: IMAGE_MODEL,
      max_tokens: 1000,
      messages: [
        { role: 'user', content: 'A boat' },
        { role: 'assistant', content: first.content as never },
        { role: 'user', content: 'Now at night' },
      ],
    });
    expect((next.content as unknown as Array<{ type: string }>).some((b) => b.type === 'image')).toBe(true);
    const contents = (imageCalls(before)[0]!.body as Record<string, any>).request.contents as Array<{ role: string; parts: Array<Record<string, unknown>> }>;
    expect(contents.map((c) => c.role)).toEqual(['user', 'model', 'user']);
    // The picture goes back with the signature the model gave it (Gemini image models refuse it without).
    expect(contents[1]!.parts.find((p) => p.inlineData)!.thoughtSignature).toBe(drawnBy.issuedSignatures![1]);
  });
});

describe('refusals and exhaustion', () => {
  test('a picture the model will not draw: 400 naming the filter and its reason, with what the model said', async () => {
    const r = await post('/v1/images/generate', { prompt: 'Something forbidden' });
    expect(r.status).toBe(400);
    expect(r.json.error).toEqual({
      type: 'invalid_request_error',
      message: `${IMAGE_MODEL} drew no image: Blocked by Google's safety filter (IMAGE_SAFETY). The model said: I can't draw that.`,
    });
  });

  test('a named model the catalog lists as not drawing: a 400 naming the image model, with no upstream call spent on it', async () => {
    const before = google.generations().length;
    const r = await post('/v1/images/generate', { prompt: 'A cat', model: 'gemini-3-flash' });
    expect(r.status).toBe(400);
    expect(r.json.error).toEqual({
      type: 'invalid_request_error',
      message: `model: gemini-3-flash does not draw images; name an image model (${IMAGE_MODEL}) or leave model out`,
    });
    expect(google.generations().length).toBe(before);
  });

  test('every account out of image quota: 429 rate_limit_error with retry-after, and no upstream call on the next try', async () => {
    google.setMode({ kind: 'quota_exhausted', resetMs: 3_600_000 }, { model: IMAGE_MODEL });
    try {
      const r = await post('/v1/images/generate', { prompt: 'A red kite' });
      expect(r.status).toBe(429);
      expect(r.json).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' } });
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      const before = google.generations().length;
      expect((await post('/v1/images/generate', { prompt: 'A red kite' })).status).toBe(429);
      expect(google.generations().length).toBe(before);
    } finally {
      google.clearModes();
      // Both accounts stay limited for the image model for the hour; the tests after this one do not draw.
    }
  });
});
