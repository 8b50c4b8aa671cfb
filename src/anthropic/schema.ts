// TypeBox schemas of the Messages API request, as much as the proxy needs to trust.
// Unknown top-level fields and unknown fields inside blocks are kept (additionalProperties is
// left open) so they can be passed on to upstreams that accept them.
import { Type, type Static } from '@sinclair/typebox';

const CacheControl = Type.Optional(Type.Unknown());

export const TextBlock = Type.Object({ type: Type.Literal('text'), text: Type.String(), cache_control: CacheControl });

export const ImageSource = Type.Union([
  Type.Object({ type: Type.Literal('base64'), media_type: Type.String(), data: Type.String() }),
  Type.Object({ type: Type.Literal('url'), url: Type.String() }),
  Type.Object({ type: Type.Literal('file'), file_id: Type.String() }),
]);
export const ImageBlock = Type.Object({ type: Type.Literal('image'), source: ImageSource, cache_control: CacheControl });

export const DocumentBlock = Type.Object({
  type: Type.Literal('document'),
  source: Type.Object({ type: Type.String() }),
  cache_control: CacheControl,
});

export const ThinkingBlock = Type.Object({
  type: Type.Literal('thinking'),
  thinking: Type.String(),
  signature: Type.Optional(Type.String()),
});
export const RedactedThinkingBlock = Type.Object({ type: Type.Literal('redacted_thinking'), data: Type.String() });

export const ToolUseBlock = Type.Object({
  type: Type.Literal('tool_use'),
  id: Type.String({ minLength: 1 }),
  name: Type.String({ minLength: 1 }),
  // Upstreams have been seen emitting arrays; such history is repaired by providers, so accept any JSON here.
  input: Type.Unknown(),
  cache_control: CacheControl,
});

export const ToolResultBlock = Type.Object({
  type: Type.Literal('tool_result'),
  tool_use_id: Type.String({ minLength: 1 }),
  content: Type.Optional(Type.Union([Type.String(), Type.Array(Type.Object({ type: Type.String() }))])),
  is_error: Type.Optional(Type.Boolean()),
  cache_control: CacheControl,
});

/** Block types that exist in the API but that the proxy only passes through. */
export const PASSTHROUGH_BLOCK_TYPES = [
  'search_result',
  'server_tool_use',
  'web_search_tool_result',
  'web_fetch_tool_result',
  'code_execution_tool_result',
  'bash_code_execution_tool_result',
  'text_editor_code_execution_tool_result',
  'tool_search_tool_result',
  'container_upload',
  'mcp_tool_use',
  'mcp_tool_result',
] as const;

export const PassthroughBlock = Type.Object({
  type: Type.Union(PASSTHROUGH_BLOCK_TYPES.map((t) => Type.Literal(t))),
});

export const ContentBlockParam = Type.Union([
  TextBlock,
  ImageBlock,
  DocumentBlock,
  ThinkingBlock,
  RedactedThinkingBlock,
  ToolUseBlock,
  ToolResultBlock,
  PassthroughBlock,
]);

export const MessageParam = Type.Object({
  role: Type.Union([Type.Literal('user'), Type.Literal('assistant'), Type.Literal('system')]),
  content: Type.Union([Type.String(), Type.Array(ContentBlockParam)]),
});

export const Tool = Type.Object({
  name: Type.String({ minLength: 1 }),
  description: Type.Optional(Type.String()),
  input_schema: Type.Optional(Type.Unknown()),
  type: Type.Optional(Type.String()),
});

export const ToolChoice = Type.Object({
  type: Type.Union([Type.Literal('auto'), Type.Literal('any'), Type.Literal('tool'), Type.Literal('none')]),
  name: Type.Optional(Type.String()),
  disable_parallel_tool_use: Type.Optional(Type.Boolean()),
});

export const Thinking = Type.Union([
  Type.Object({ type: Type.Literal('enabled'), budget_tokens: Type.Integer({ minimum: 0 }) }),
  Type.Object({ type: Type.Literal('disabled') }),
  Type.Object({ type: Type.Literal('adaptive') }),
  Type.Object({ type: Type.Literal('between_tools') }),
]);

/** Aspect ratios image models draw (antigravity.md §12). */
export const IMAGE_ASPECT_RATIOS = ['1:1', '2:3', '3:2', '3:4', '4:3', '4:5', '5:4', '9:16', '16:9', '21:9'] as const;
export const IMAGE_SIZES = ['1K', '2K', '4K'] as const;

/**
 * Our extension, not Anthropic's: how an image model should draw (ignored by other models).
 * /v1/images/generate fills it in; a /v1/messages client may send it too.
 */
export const ImageConfig = Type.Object({
  aspect_ratio: Type.Optional(Type.Union(IMAGE_ASPECT_RATIOS.map((r) => Type.Literal(r)))),
  image_size: Type.Optional(Type.Union(IMAGE_SIZES.map((r) => Type.Literal(r)))),
});

export const MessagesRequest = Type.Object({
  model: Type.String({ minLength: 1 }),
  messages: Type.Array(MessageParam),
  // 0 asks only to fill the prompt cache, no answer (the SDK's max_tokens doc): the server answers it.
  max_tokens: Type.Integer({ minimum: 0 }),
  system: Type.Optional(Type.Union([Type.String(), Type.Array(TextBlock)])),
  metadata: Type.Optional(Type.Object({ user_id: Type.Optional(Type.Union([Type.String(), Type.Null()])) })),
  stop_sequences: Type.Optional(Type.Array(Type.String())),
  stream: Type.Optional(Type.Boolean()),
  temperature: Type.Optional(Type.Number()),
  top_p: Type.Optional(Type.Number()),
  top_k: Type.Optional(Type.Integer()),
  tools: Type.Optional(Type.Array(Tool)),
  tool_choice: Type.Optional(ToolChoice),
  thinking: Type.Optional(Thinking),
  output_config: Type.Optional(
    Type.Object({
      effort: Type.Optional(Type.String()),
      format: Type.Optional(Type.Unknown()),
    }),
  ),
  image_config: Type.Optional(ImageConfig),
});

/** count_tokens takes the same body minus max_tokens. */
export const CountTokensRequest = Type.Composite([
  Type.Omit(MessagesRequest, ['max_tokens']),
  Type.Object({ max_tokens: Type.Optional(Type.Integer({ minimum: 0 })) }),
]);

type Open<T> = T & { [extra: string]: unknown };
export type TextBlockParam = Open<Static<typeof TextBlock>>;
export type ImageBlockParam = Open<Static<typeof ImageBlock>>;
export type DocumentBlockParam = Open<Static<typeof DocumentBlock>> & { source: Record<string, unknown> };
export type ThinkingBlockParam = Open<Static<typeof ThinkingBlock>>;
export type RedactedThinkingBlockParam = Open<Static<typeof RedactedThinkingBlock>>;
export type ToolUseBlockParam = Open<Static<typeof ToolUseBlock>>;
export type ToolResultBlockParam = Open<Static<typeof ToolResultBlock>> & {
  content?: string | Array<{ type: string; [extra: string]: unknown }>;
};
export type ContentBlockParam = Open<Static<typeof ContentBlockParam>>;
export type MessageParam = Open<Static<typeof MessageParam>>;
export type Tool = Open<Static<typeof Tool>>;
export type ToolChoice = Static<typeof ToolChoice>;
export type Thinking = Static<typeof Thinking>;
export type MessagesRequest = Open<Static<typeof MessagesRequest>>;
export type ImageConfig = Static<typeof ImageConfig>;
export type ImageAspectRatio = (typeof IMAGE_ASPECT_RATIOS)[number];
export type CountTokensRequest = Open<Static<typeof CountTokensRequest>>;
