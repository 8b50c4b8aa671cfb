// Image generation endpoints, for clients that want a picture rather than a conversation:
// POST /v1/images/generate (the Go multi-claude-proxy's shape) and POST /v1/images/generations
// (OpenAI's, which many tools speak). Both become ordinary Messages requests to an image model,
// so they take the one path every request takes: the gateway picks the account, fails over and
// records limits; the images come back as the answer's image blocks.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Elysia } from 'elysia';
import { collectMessage } from '../anthropic/collect.ts';
import { ApiError } from '../anthropic/errors.ts';
import type { Message } from '../anthropic/events.ts';
import { IMAGE_ASPECT_RATIOS, IMAGE_SIZES, type ImageAspectRatio, type ImageConfig, type MessagesRequest } from '../anthropic/schema.ts';
import type { Config } from '../config.ts';
import type { Gateway } from '../gateway/types.ts';
import { errorResponse, jsonResponse, toApiError } from './errors.ts';
import { CLIENT_CLOSED, forwardHeaders, newRequestRecord, noteDispatch, type RequestRecord } from './messages.ts';
import { readJsonBody, validateBody, validateMessagesRequest } from './validate.ts';

/** More pictures per request than this is a batch job, not a request (the Go proxy's cap too). */
export const MAX_IMAGES = 4;

const AspectRatio = Type.Union(IMAGE_ASPECT_RATIOS.map((r) => Type.Literal(r)));

export const GenerateImageRequest = Type.Object({
  prompt: Type.String({ minLength: 1 }),
  model: Type.Optional(Type.String({ minLength: 1 })),
  aspect_ratio: Type.Optional(AspectRatio),
  image_size: Type.Optional(Type.Union(IMAGE_SIZES.map((s) => Type.Literal(s)))),
  count: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_IMAGES })),
  /** An image to edit: base64, or a data: URL. */
  input_image: Type.Optional(Type.String({ minLength: 1 })),
  session_id: Type.Optional(Type.String({ minLength: 1 })),
});

export const OpenAiImageRequest = Type.Object({
  prompt: Type.String({ minLength: 1 }),
  model: Type.Optional(Type.String({ minLength: 1 })),
  n: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_IMAGES })),
  size: Type.Optional(Type.String({ pattern: '^(auto|[1-9][0-9]{0,4}x[1-9][0-9]{0,4})$' })),
  response_format: Type.Optional(Type.Union([Type.Literal('b64_json'), Type.Literal('url')])),
});

/** What one image request asks for, whichever endpoint it came through. */
export interface ImageJob {
  prompt: string;
  /** Null: the gateway's image model. */
  model: string | null;
  config: ImageConfig;
  count: number;
  input: { media_type: string; data: string } | null;
  sessionId: string | null;
}

export interface DrawnImage {
  media_type: string;
  data: string;
}

export interface ImageResult {
  /** The model that drew (the one asked for, or the gateway's image model). */
  model: string;
  images: DrawnImage[];
  /** What the model said besides drawing, if anything. */
  text: string;
  usage: { input_tokens: number; output_tokens: number };
}

const DATA_URL = /^data:(image\/[a-z0-9.+-]+);base64,/i;

/** An input image as base64 + media type: a data: URL says its type, bare base64 is sniffed (PNG when unknown). */
export function inputImageOf(value: string): { media_type: string; data: string } {
  const m = DATA_URL.exec(value);
  if (m) return { media_type: m[1]!.toLowerCase(), data: value.slice(m[0].length) };
  const data = value.trim();
  const media_type = data.startsWith('/9j/') ? 'image/jpeg' : data.startsWith('R0lGOD') ? 'image/gif' : data.startsWith('UklGR') ? 'image/webp' : 'image/png';
  return { media_type, data };
}

/** OpenAI's WxH size as the nearest aspect ratio image models draw ("auto" and none: the model's choice). */
export function aspectRatioOfSize(size: string | undefined): ImageAspectRatio | undefined {
  const m = size ? /^(\d+)x(\d+)$/.exec(size) : null;
  if (!m) return undefined;
  const want = Math.log(Number(m[1]) / Number(m[2]));
  let best: ImageAspectRatio = '1:1';
  let gap = Infinity;
  for (const r of IMAGE_ASPECT_RATIOS) {
    const [w, h] = r.split(':').map(Number) as [number, number];
    const d = Math.abs(Math.log(w / h) - want);
    if (d < gap) [best, gap] = [r, d];
  }
  return best;
}

/** OpenAI's own image model names mean "whatever draws here". */
const OPENAI_IMAGE_MODEL = /^(dall-e|gpt-image)/i;

export function jobOfGenerate(b: Static<typeof GenerateImageRequest>): ImageJob {
  const config: ImageConfig = {};
  if (b.aspect_ratio) config.aspect_ratio = b.aspect_ratio;
  if (b.image_size) config.image_size = b.image_size;
  return {
    prompt: b.prompt,
    model: b.model ?? null,
    config,
    count: b.count ?? 1,
    input: b.input_image ? inputImageOf(b.input_image) : null,
    sessionId: b.session_id ?? null,
  };
}

export function jobOfOpenAi(b: Static<typeof OpenAiImageRequest>): ImageJob {
  const config: ImageConfig = {};
  const ratio = aspectRatioOfSize(b.size);
  if (ratio) config.aspect_ratio = ratio;
  return {
    prompt: b.prompt,
    model: b.model && !OPENAI_IMAGE_MODEL.test(b.model) ? b.model : null,
    config,
    count: b.n ?? 1,
    input: null,
    sessionId: null,
  };
}

/** The Messages request that draws one picture for `job`. */
export function messagesRequestOf(job: ImageJob, model: string): MessagesRequest {
  const content: MessagesRequest['messages'][number]['content'] = [{ type: 'text', text: job.prompt }];
  if (job.input) content.push({ type: 'image', source: { type: 'base64', media_type: job.input.media_type, data: job.input.data } });
  const req: MessagesRequest = { model, max_tokens: 32_768, stream: false, messages: [{ role: 'user', content }] };
  if (job.config.aspect_ratio || job.config.image_size) req.image_config = job.config;
  // The same session id keeps the same account, and so the same upstream session (the Go proxy's "character consistency").
  if (job.sessionId) req.metadata = { user_id: JSON.stringify({ session_id: job.sessionId }) };
  return req;
}

/** The built request checked like any other; a bad input image is named as the client named it. */
function checked(req: MessagesRequest): MessagesRequest {
  try {
    return validateMessagesRequest(req);
  } catch (err) {
    if (err instanceof ApiError && err.message.startsWith('messages.0.content.1')) {
      throw new ApiError('invalid_request_error', `input_image${err.message.slice('messages.0.content.1'.length).replace(/^\.source(\.data)?/, '')}`);
    }
    throw err;
  }
}

function imagesOf(msg: Message): DrawnImage[] {
  const out: DrawnImage[] = [];
  for (const b of msg.content) {
    const src = b.type === 'image' ? (b.source as { type?: unknown; media_type?: unknown; data?: unknown } | undefined) : undefined;
    if (src?.type === 'base64' && typeof src.data === 'string' && src.data) {
      out.push({ media_type: typeof src.media_type === 'string' ? src.media_type : 'image/png', data: src.data });
    }
  }
  return out;
}

function textOf(msg: Message): string {
  return msg.content
    .map((b) => (b.type === 'text' && typeof b.text === 'string' ? b.text : ''))
    .join('')
    .trim();
}

export interface ImageDeps {
  config: Config;
  gateway: Gateway;
  /** Called once per picture drawn (or failed), like a /v1/messages request. */
  done(record: RequestRecord): void;
}

/**
 * Draws `job.count` pictures, one upstream request each, side by side (each may land on another
 * account). All or nothing: the first failure is the answer, and the others are stopped.
 */
export async function generateImages(deps: ImageDeps, job: ImageJob, requestId: string, request: Request): Promise<ImageResult> {
  const model = job.model ?? deps.gateway.imageModel();
  if (!model) {
    throw new ApiError('not_found_error', 'no account in the pool can draw images: image models are served by Antigravity accounts (`mcp accounts add`)');
  }
  const body = checked(messagesRequestOf(job, model));
  const abort = new AbortController();
  const onClientGone = (): void => abort.abort();
  request.signal.addEventListener('abort', onClientGone, { once: true });
  const { writeTimeoutSec } = deps.config;
  let timedOut = false;
  const deadline = setTimeout(() => {
    timedOut = true;
    abort.abort();
  }, writeTimeoutSec * 1000);
  const headers = forwardHeaders(request.headers);
  try {
    const drawings = Array.from({ length: job.count }, async (_, i) => {
      try {
        return await drawOne(deps, body, job.count > 1 ? `${requestId}-${i + 1}` : requestId, headers, abort.signal);
      } catch (err) {
        abort.abort(); // the first failure stops the others' upstream calls
        throw err;
      }
    });
    const messages = await Promise.all(drawings);
    const images: DrawnImage[] = [];
    const texts: string[] = [];
    const usage = { input_tokens: 0, output_tokens: 0 };
    for (const msg of messages) {
      const drawn = imagesOf(msg);
      const text = textOf(msg);
      if (!drawn.length) throw new ApiError('invalid_request_error', `${model} answered without an image${text ? `: ${text.slice(0, 500)}` : ''}`);
      images.push(...drawn);
      if (text) texts.push(text);
      usage.input_tokens += Number(msg.usage.input_tokens) || 0;
      usage.output_tokens += Number(msg.usage.output_tokens) || 0;
    }
    return { model, images, text: texts.join('\n\n'), usage };
  } catch (err) {
    if (timedOut) throw new ApiError('timeout_error', `the images took longer than WRITE_TIMEOUT_SEC (${writeTimeoutSec}s); the upstream calls were stopped`);
    throw err;
  } finally {
    clearTimeout(deadline);
    request.signal.removeEventListener('abort', onClientGone);
  }
}

async function drawOne(deps: ImageDeps, body: MessagesRequest, requestId: string, headers: Record<string, string>, signal: AbortSignal): Promise<Message> {
  const t0 = performance.now();
  const rec = newRequestRecord(requestId, body.model);
  try {
    const d = await deps.gateway.dispatch({ body, requestId, headers, signal });
    noteDispatch(rec, d);
    const msg = await collectMessage(d.events);
    rec.inputTokens = Number(msg.usage.input_tokens) || 0;
    rec.outputTokens = Number(msg.usage.output_tokens) || 0;
    rec.status = 200;
    return msg;
  } catch (err) {
    const api = toApiError(err);
    rec.status = signal.aborted ? CLIENT_CLOSED : api.status;
    rec.errorType = signal.aborted ? 'client_closed' : api.type;
    throw err;
  } finally {
    rec.latencyMs = Math.round(performance.now() - t0);
    deps.done(rec);
  }
}

function requestIdOf(set: { headers: Record<string, unknown> }): string {
  return String(set.headers['request-id'] ?? '');
}

/** One image endpoint: its body schema, how the body becomes a job, and how the pictures are answered. */
function imageHandler<B>(deps: ImageDeps, schema: TSchema, jobOf: (body: B) => ImageJob, answer: (r: ImageResult, body: B, requestId: string) => unknown) {
  return async ({ request, set }: { request: Request; set: { headers: Record<string, unknown> } }): Promise<Response> => {
    const requestId = requestIdOf(set);
    try {
      const body = validateBody<B>(schema, await readJsonBody(request, deps.config.bodyLimitBytes));
      return jsonResponse(answer(await generateImages(deps, jobOf(body), requestId, request), body, requestId));
    } catch (err) {
      return errorResponse(toApiError(err), requestId);
    }
  };
}

export function imageRoutes(deps: ImageDeps) {
  const goShape = imageHandler<Static<typeof GenerateImageRequest>>(deps, GenerateImageRequest, jobOfGenerate, (r, _body, requestId) => ({
    id: `img_${requestId.slice(4)}`,
    type: 'image_generation',
    model: r.model,
    images: r.images.map((im, index) => ({ index, media_type: im.media_type, data: im.data })),
    ...(r.text ? { text: r.text } : {}),
    usage: r.usage,
  }));
  const openAiShape = imageHandler<Static<typeof OpenAiImageRequest>>(deps, OpenAiImageRequest, jobOfOpenAi, (r, body) => ({
    created: Math.floor(Date.now() / 1000),
    // There is nowhere to host a picture, so a "url" is a data: URL.
    data: r.images.map((im) => (body.response_format === 'url' ? { url: `data:${im.media_type};base64,${im.data}` } : { b64_json: im.data })),
    usage: { input_tokens: r.usage.input_tokens, output_tokens: r.usage.output_tokens, total_tokens: r.usage.input_tokens + r.usage.output_tokens },
  }));
  return new Elysia({ name: 'images' })
    .post('/v1/images/generate', goShape, { parse: 'none' })
    .post('/v1/images/generations', openAiShape, { parse: 'none' });
}
