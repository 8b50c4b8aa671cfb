// Image models (antigravity.md §12; `imageGenerationModelIds` of the catalog, e.g.
// gemini-3.1-flash-image). The request is an ordinary conversation, so it is translated like any
// Gemini one, then sent the way CLIProxyAPI sends image requests: requestType "image_gen", no
// tools, thinking or sessionId, and a generationConfig that asks for images. The answer's
// inlineData parts come back as Anthropic image blocks (from-google.ts), as the Node proxy does.
// Pure.
import type { MessagesRequest } from '../../anthropic/schema.ts';

type Json = Record<string, unknown>;

/** Image model ids as Google names them (gemini-3-pro-image, gemini-2.5-flash-image-preview…). */
const IMAGE_MODEL_ID = /-image(?:-preview)?$/i;

/** Whether `id` draws images: the catalog says so, or its id does (Google's image ids end in -image). */
export function isImageGenerationModel(id: string, listed: readonly unknown[] | undefined): boolean {
  return listed?.includes(id) === true || IMAGE_MODEL_ID.test(id);
}

/** Sampling settings an image model takes; the rest of an agent request's generationConfig is not for it. */
const KEPT = ['temperature', 'topP', 'topK', 'stopSequences', 'seed'] as const;

/**
 * The agent envelope toGoogleRequest made for `req`, turned into an image request. `requestId`
 * follows the image_gen form (`image_gen/<ms>/<uuid>/12`).
 */
export function toImageGenerationEnvelope(agent: Json, req: Pick<MessagesRequest, 'image_config'>, requestId: string): Json {
  const request: Json = { ...(agent.request as Json) };
  delete request.tools;
  delete request.toolConfig;
  delete request.sessionId;
  const from = (request.generationConfig ?? {}) as Json;
  const gen: Json = { responseModalities: ['TEXT', 'IMAGE'], candidateCount: 1 };
  for (const k of KEPT) if (from[k] !== undefined) gen[k] = from[k];
  const cfg = req.image_config;
  if (cfg?.aspect_ratio || cfg?.image_size) {
    const imageConfig: Json = {};
    if (cfg.aspect_ratio) imageConfig.aspectRatio = cfg.aspect_ratio;
    if (cfg.image_size) imageConfig.imageSize = cfg.image_size;
    gen.imageConfig = imageConfig;
  }
  request.generationConfig = gen;
  return { ...agent, request, requestType: 'image_gen', requestId };
}
