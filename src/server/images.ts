// Image generation endpoints, for clients that want a picture rather than a conversation:
// POST /v1/images/generate (the Go multi-claude-proxy's shape) and POST /v1/images/generations
// (OpenAI's, which many tools speak). Both become ordinary Messages requests to an image model,
// so they take the one path every request takes: the gateway picks the account, fails over and
// records limits; the images come back as the answer's image blocks.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Elysia } from 'elysia';
import { toByteStrings } from '../anthropic/byte-strings.ts';
import { collectMessage } from '../anthropic/collect.ts';
import { ApiError } from '../anthropic/errors.ts';
import type { Message } from '../anthropic/events.ts';
import { IMAGE_ASPECT_RATIOS, IMAGE_SIZES, type ImageAspectRatio, type ImageConfig, type MessagesRequest } from '../anthropic/schema.ts';
import type { Config } from '../config.ts';
import type { Gateway } from '../gateway/types.ts';
import { errorResponse, jsonResponse, serverStoppedError, toApiError } from './errors.ts';
import { keyNumberOf } from './auth.ts';
import { attemptNoter, CLIENT_CLOSED, forwardHeaders, newRequestRecord, noteDispatch, readBodyInTime, requestIdOf, restoreIdleTimeout, type RequestRecord, type ServerLike } from './messages.ts';
import { isBase64, parseJsonBytes, readLimitedBytes, validateBody, validateMessagesRequest } from './validate.ts';

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
  /** Pictures to work from (edits); `field` is how the client named each, for error messages. */
  inputs: InputImage[];
  sessionId: string | null;
}

export interface InputImage {
  media_type: string;
  data: string;
  field: string;
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

const NOT_A_PICTURE = 'not a PNG, JPEG, GIF or WebP image';

/**
 * An input image as base64 + media type: a data: URL says its type, bare base64 is known by its
 * first bytes. Anything else would go upstream labelled as something it is not: refused here.
 */
export function inputImageOf(value: string, field = 'input_image'): InputImage {
  const m = DATA_URL.exec(value);
  if (m) return { media_type: m[1]!.toLowerCase(), data: value.slice(m[0].length), field };
  const data = value.trim();
  if (!isBase64(data)) throw new ApiError('invalid_request_error', `${field}: invalid base64 data`);
  const type = sniffBase64(data);
  if (!type) throw new ApiError('invalid_request_error', `${field}: ${NOT_A_PICTURE} (a data: URL can name its type)`);
  return { media_type: type, data, field };
}

/** The type of base64 data by its first bytes' encoding (PNG, JPEG, GIF, WebP), or null. */
function sniffBase64(data: string): string | null {
  if (data.startsWith('iVBORw')) return 'image/png';
  if (data.startsWith('/9j/')) return 'image/jpeg';
  if (data.startsWith('R0lGOD')) return 'image/gif';
  // RIFF, a size, then WEBP in bytes 8-11, which do not fall on base64 character boundaries: decode them.
  if (data.startsWith('UklGR') && Buffer.from(data.slice(0, 16), 'base64').subarray(8, 12).toString('latin1') === 'WEBP') return 'image/webp';
  return null;
}

/** The type of a file by its first bytes, or null. */
function sniffBytes(b: Uint8Array): string | null {
  if (b.length >= 4 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'image/png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length >= 4 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x38) return 'image/gif';
  if (b.length >= 12 && Buffer.from(b.subarray(0, 4)).toString('latin1') === 'RIFF' && Buffer.from(b.subarray(8, 12)).toString('latin1') === 'WEBP') return 'image/webp';
  return null;
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

const NOT_BLANK = /\S/;

/** The prompt as given; one of only whitespace passes minLength but asks for nothing, and would still spend quota. */
function promptOf(prompt: string): string {
  if (!NOT_BLANK.test(prompt)) throw new ApiError('invalid_request_error', 'prompt: must contain non-whitespace text');
  return prompt;
}

export function jobOfGenerate(b: Static<typeof GenerateImageRequest>): ImageJob {
  const config: ImageConfig = {};
  if (b.aspect_ratio) config.aspect_ratio = b.aspect_ratio;
  if (b.image_size) config.image_size = b.image_size;
  return {
    prompt: promptOf(b.prompt),
    model: b.model ?? null,
    config,
    count: b.count ?? 1,
    inputs: b.input_image ? [inputImageOf(b.input_image)] : [],
    sessionId: b.session_id ?? null,
  };
}

export function jobOfOpenAi(b: Static<typeof OpenAiImageRequest>): ImageJob {
  const config: ImageConfig = {};
  const ratio = aspectRatioOfSize(b.size);
  if (ratio) config.aspect_ratio = ratio;
  return {
    prompt: promptOf(b.prompt),
    model: b.model && !OPENAI_IMAGE_MODEL.test(b.model) ? b.model : null,
    config,
    count: b.n ?? 1,
    inputs: [],
    sessionId: null,
  };
}

/** The Messages request that draws one picture for `job`. */
export function messagesRequestOf(job: ImageJob, model: string): MessagesRequest {
  const content: MessagesRequest['messages'][number]['content'] = [{ type: 'text', text: job.prompt }];
  for (const im of job.inputs) content.push({ type: 'image', source: { type: 'base64', media_type: im.media_type, data: im.data } });
  const req: MessagesRequest = { model, max_tokens: 32_768, stream: false, messages: [{ role: 'user', content }] };
  if (job.config.aspect_ratio || job.config.image_size) req.image_config = job.config;
  // The same session id keeps the same account, and so the same upstream session (the Go proxy's "character consistency").
  if (job.sessionId) req.metadata = { user_id: JSON.stringify({ session_id: job.sessionId }) };
  return req;
}

/** More pictures to work from than this is not an edit any image model takes well. */
export const MAX_INPUT_IMAGES = 10;

function formText(form: Awaited<ReturnType<Request['formData']>>, name: string): string | undefined {
  const v = form.get(name);
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

/**
 * OpenAI's image edits (POST /v1/images/edits): multipart form with `image` (one or more files, also
 * as `image[]`), `prompt`, and `model`, `n`, `size`, `response_format` as in generations. Google's
 * models take no `mask`: the prompt says what to change.
 */
export async function editJobOf(request: Request, config: Config): Promise<{ job: ImageJob; responseFormat: string | undefined }> {
  const ct = request.headers.get('content-type') ?? '';
  if (!/^multipart\/form-data/i.test(ct)) throw new ApiError('invalid_request_error', `content-type must be multipart/form-data, got "${ct.slice(0, 100)}"`);
  // Read within the body limit and READ_TIMEOUT_SEC first: Bun's own cap is off (server/app.ts), so
  // request.formData() alone would take a chunked form of any size into memory.
  const bytes = await readBodyInTime(request, config, readLimitedBytes);
  let form: Awaited<ReturnType<Request['formData']>>;
  try {
    form = await new Response(bytes, { headers: { 'content-type': ct } }).formData();
  } catch {
    throw new ApiError('invalid_request_error', 'the multipart form could not be read');
  }
  if (form.has('mask')) throw new ApiError('invalid_request_error', "mask: Google's image models take no mask; say in the prompt what to change");
  const prompt = formText(form, 'prompt');
  if (!prompt) throw new ApiError('invalid_request_error', 'prompt: field required');
  const files = [...form.getAll('image'), ...form.getAll('image[]')].filter((f) => typeof f !== 'string') as unknown as Blob[];
  if (!files.length) throw new ApiError('invalid_request_error', 'image: field required (one or more image files)');
  if (files.length > MAX_INPUT_IMAGES) throw new ApiError('invalid_request_error', `image: at most ${MAX_INPUT_IMAGES} images, got ${files.length}`);
  const n = formText(form, 'n');
  const b = validateBody<Static<typeof OpenAiImageRequest>>(OpenAiImageRequest, {
    prompt,
    ...(formText(form, 'model') ? { model: formText(form, 'model') } : {}),
    ...(n !== undefined ? { n: /^\d+$/.test(n) ? Number(n) : n } : {}),
    ...(formText(form, 'size') ? { size: formText(form, 'size') } : {}),
    ...(formText(form, 'response_format') ? { response_format: formText(form, 'response_format') } : {}),
  });
  const inputs: InputImage[] = [];
  for (const [i, f] of files.entries()) {
    const bytes = Buffer.from(await f.arrayBuffer());
    const field = files.length > 1 ? `image.${i}` : 'image';
    if (!bytes.length) throw new ApiError('invalid_request_error', `${field}: the file is empty`);
    // The bytes say what it is: a browser names an upload by its file name, which may be wrong or missing.
    const type = sniffBytes(bytes);
    if (!type) throw new ApiError('invalid_request_error', `${field}: ${NOT_A_PICTURE}`);
    inputs.push({ media_type: type, data: bytes.toString('base64'), field });
  }
  return { job: { ...jobOfOpenAi(b), inputs }, responseFormat: b.response_format };
}

/**
 * The built request checked like any other, its strings made byte strings as a parsed /v1/messages
 * body's are; a bad input image is named as the client named it.
 */
function checked(req: MessagesRequest, job: ImageJob): MessagesRequest {
  try {
    return validateMessagesRequest(toByteStrings(req));
  } catch (err) {
    const m = err instanceof ApiError ? /^messages\.0\.content\.(\d+)(\.source)?(\.data)?/.exec(err.message) : null;
    const input = m ? job.inputs[Number(m[1]) - 1] : undefined;
    if (m && input) throw new ApiError('invalid_request_error', `${input.field}${err instanceof Error ? err.message.slice(m[0].length) : ''}`);
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

/** Why an answer has no picture: a refusal names its verdict (stop_details), and what the model said follows. */
function noImageMessage(model: string, msg: Message, text: string): string {
  const said = text.slice(0, 500);
  if (msg.stop_reason !== 'refusal') return `${model} answered without an image${said ? `: ${said}` : ''}`;
  const details = msg.stop_details as { explanation?: unknown } | null | undefined;
  const why = typeof details?.explanation === 'string' && details.explanation ? details.explanation : 'the model refused (stop_reason refusal)';
  return `${model} drew no image: ${why}${said ? `. The model said: ${said}` : ''}`;
}

export interface ImageDeps {
  config: Config;
  gateway: Gateway;
  /** Called once per picture drawn (or failed), like a /v1/messages request. */
  done(record: RequestRecord): void;
  /** Aborted when the shutdown grace is over: pictures still being drawn are stopped with a clean error. */
  stopping?: AbortSignal;
  /** Aborted when the server begins to stop (DispatchRequest.draining). */
  draining?: AbortSignal;
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
  // A model that cannot draw would only be found out by an upstream call spent on it.
  if (job.model && deps.gateway.drawsImages(job.model) === false) {
    const drawing = deps.gateway.imageModel();
    throw new ApiError('invalid_request_error', `model: ${job.model} does not draw images; ${drawing ? `name an image model (${drawing})` : 'name an image model'} or leave model out`);
  }
  const body = checked(messagesRequestOf(job, model), job);
  const abort = new AbortController();
  const onClientGone = (): void => abort.abort();
  request.signal.addEventListener('abort', onClientGone, { once: true });
  let stopped = false;
  const onStop = (): void => {
    stopped = true;
    abort.abort();
  };
  deps.stopping?.addEventListener('abort', onStop, { once: true });
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
        return await drawOne(deps, body, job.count > 1 ? `${requestId}-${i + 1}` : requestId, headers, abort.signal, keyNumberOf(request));
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
      if (!drawn.length) throw new ApiError('invalid_request_error', noImageMessage(model, msg, text));
      images.push(...drawn);
      if (text) texts.push(text);
      usage.input_tokens += Number(msg.usage.input_tokens) || 0;
      usage.output_tokens += Number(msg.usage.output_tokens) || 0;
    }
    return { model, images, text: texts.join('\n\n'), usage };
  } catch (err) {
    if (timedOut) throw new ApiError('timeout_error', `the images took longer than WRITE_TIMEOUT_SEC (${writeTimeoutSec}s); the upstream calls were stopped`);
    if (stopped && !request.signal.aborted) throw serverStoppedError();
    throw err;
  } finally {
    clearTimeout(deadline);
    request.signal.removeEventListener('abort', onClientGone);
    deps.stopping?.removeEventListener('abort', onStop);
  }
}

async function drawOne(
  deps: ImageDeps,
  body: MessagesRequest,
  requestId: string,
  headers: Record<string, string>,
  signal: AbortSignal,
  clientKey: number | undefined,
): Promise<Message> {
  const t0 = performance.now();
  const rec = newRequestRecord(requestId, body.model, clientKey);
  try {
    const d = await deps.gateway.dispatch({ body, requestId, headers, signal, ...(deps.draining ? { draining: deps.draining } : {}), onAttempt: attemptNoter(rec) });
    noteDispatch(rec, d);
    const msg = d.message ?? (await collectMessage(d.events));
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

/** OpenAI's images answer. There is nowhere to host a picture, so a "url" is a data: URL. */
function openAiAnswer(r: ImageResult, responseFormat: string | undefined): unknown {
  return {
    created: Math.floor(Date.now() / 1000),
    data: r.images.map((im) => (responseFormat === 'url' ? { url: `data:${im.media_type};base64,${im.data}` } : { b64_json: im.data })),
    usage: { input_tokens: r.usage.input_tokens, output_tokens: r.usage.output_tokens, total_tokens: r.usage.input_tokens + r.usage.output_tokens },
  };
}

interface HandlerContext {
  request: Request;
  set: { headers: Record<string, unknown> };
  server: unknown;
}

/**
 * A picture takes tens of seconds with nothing to send meanwhile, and IDLE_TIMEOUT_SEC is for idle
 * keep-alive connections, not this: as /v1/messages does, the socket's own timeout is turned off.
 * The function returned turns it back on once the answer is ready (Bun keeps it for the connection).
 */
function keepOpen(server: unknown, request: Request, idleTimeoutSec: number): () => void {
  (server as ServerLike | null)?.timeout(request, 0);
  return () => restoreIdleTimeout(server as ServerLike | null, request, idleTimeoutSec);
}

/** One image endpoint: its body schema, how the body becomes a job, and how the pictures are answered. */
function imageHandler<B>(deps: ImageDeps, schema: TSchema, jobOf: (body: B) => ImageJob, answer: (r: ImageResult, body: B, requestId: string) => unknown) {
  return async ({ request, set, server }: HandlerContext): Promise<Response> => {
    const requestId = requestIdOf(set);
    const idleAgain = keepOpen(server, request, deps.config.idleTimeoutSec);
    try {
      const body = validateBody<B>(schema, parseJsonBytes(await readBodyInTime(request, deps.config)));
      return jsonResponse(answer(await generateImages(deps, jobOf(body), requestId, request), body, requestId));
    } catch (err) {
      return errorResponse(toApiError(err), requestId, undefined, request);
    } finally {
      idleAgain();
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
  const openAiShape = imageHandler<Static<typeof OpenAiImageRequest>>(deps, OpenAiImageRequest, jobOfOpenAi, (r, body) => openAiAnswer(r, body.response_format));
  const openAiEdits = async ({ request, set, server }: HandlerContext): Promise<Response> => {
    const requestId = requestIdOf(set);
    const idleAgain = keepOpen(server, request, deps.config.idleTimeoutSec);
    try {
      const { job, responseFormat } = await editJobOf(request, deps.config);
      return jsonResponse(openAiAnswer(await generateImages(deps, job, requestId, request), responseFormat));
    } catch (err) {
      return errorResponse(toApiError(err), requestId, undefined, request);
    } finally {
      idleAgain();
    }
  };
  return new Elysia({ name: 'images' })
    .post('/v1/images/generate', goShape, { parse: 'none' })
    .post('/v1/images/generations', openAiShape, { parse: 'none' })
    .post('/v1/images/edits', openAiEdits, { parse: 'none' });
}
