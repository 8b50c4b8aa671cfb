// generationConfig per model family (§7.9–§7.10): output caps, sampling, and how the client's
// `thinking` / `output_config.effort` become Google's thinkingConfig.
import type { MessagesRequest } from '../../anthropic/schema.ts';
import type { ModelFamily } from '../provider.ts';

/** Output caps per family when the catalog gives none (§7.14). */
export const DEFAULT_OUTPUT_CAP: Record<ModelFamily, number> = {
  claude: 64_000,
  gemini: 65_536,
  gpt: 32_768,
  glm: 32_768,
  other: 32_768,
};

const DEFAULT_MAX_TOKENS = 4096;
const CLAUDE_MIN_BUDGET = 1024;
/** Head room left for the visible answer when the budget would eat all of max_tokens ([NODE]). */
const ANSWER_ROOM = 8192;

// Claude has no effort knob on this backend; effort becomes a budget (opencode's tiers, NODE's 32000 default).
const CLAUDE_EFFORT_BUDGET: Record<string, number> = { low: 8192, medium: 16_384, high: 32_000, xhigh: 32_000, max: 32_000 };
// Gemini: the official client's integers (flash low 1000 / medium 4000 / high -1 = dynamic).
const GEMINI_EFFORT_BUDGET: Record<string, number> = { low: 1024, medium: 8192, high: -1, xhigh: -1, max: -1 };
const GEMINI_25_MAX_BUDGET = 24_576;

export interface GenerationPlan {
  generationConfig: Record<string, unknown>;
  /** Whether thinking was asked of the upstream (drives history filtering and recovery). */
  thinking: boolean;
}

export function planGeneration(req: MessagesRequest, family: ModelFamily, model: string, outputCap?: number): GenerationPlan {
  const cap = outputCap && outputCap > 0 ? outputCap : DEFAULT_OUTPUT_CAP[family];
  let maxOutputTokens = Math.min(req.max_tokens > 0 ? req.max_tokens : DEFAULT_MAX_TOKENS, cap);
  const config: Record<string, unknown> = {};
  const mode = req.thinking?.type;
  const effort = typeof req.output_config?.effort === 'string' ? req.output_config.effort : undefined;
  let thinking = false;

  if (family === 'claude') {
    // "-thinking" ids think even when the client said nothing, or Claude writes <thinking> XML as text.
    thinking = mode === 'enabled' || mode === 'adaptive' || mode === 'between_tools' || (mode === undefined && model.includes('thinking'));
    if (thinking) {
      let budget =
        req.thinking?.type === 'enabled' ? req.thinking.budget_tokens : (CLAUDE_EFFORT_BUDGET[effort ?? 'high'] ?? 32_000);
      budget = Math.max(CLAUDE_MIN_BUDGET, budget);
      if (maxOutputTokens <= budget) maxOutputTokens = Math.min(cap, budget + ANSWER_ROOM);
      if (maxOutputTokens <= budget) budget = maxOutputTokens - ANSWER_ROOM;
      if (budget >= CLAUDE_MIN_BUDGET) config.thinkingConfig = { includeThoughts: true, thinkingBudget: budget };
      else thinking = false;
    }
  } else if (family === 'gemini') {
    thinking = mode === 'enabled' || mode === 'adaptive' || mode === 'between_tools';
    if (thinking) {
      let budget = req.thinking?.type === 'enabled' ? req.thinking.budget_tokens : (GEMINI_EFFORT_BUDGET[effort ?? 'high'] ?? -1);
      if (model.startsWith('gemini-2.5') && budget > GEMINI_25_MAX_BUDGET) budget = GEMINI_25_MAX_BUDGET;
      if (budget > 0 && maxOutputTokens <= budget) maxOutputTokens = Math.min(cap, budget + ANSWER_ROOM);
      config.thinkingConfig = { includeThoughts: true, thinkingBudget: budget };
    }
  }
  // gpt-oss (and unknown families): no thinking config; GPT-OSS sends unsigned thoughts anyway.

  config.maxOutputTokens = maxOutputTokens;
  // Anthropic's thinking rules hold behind Google too: only temperature 1, no top_k, top_p ≥ 0.95.
  const claudeThinking = family === 'claude' && thinking;
  if (typeof req.temperature === 'number' && (!claudeThinking || req.temperature === 1)) config.temperature = req.temperature;
  if (typeof req.top_p === 'number' && (!claudeThinking || req.top_p >= 0.95)) config.topP = req.top_p;
  if (typeof req.top_k === 'number' && !claudeThinking) config.topK = req.top_k;
  if (Array.isArray(req.stop_sequences) && req.stop_sequences.length > 0) config.stopSequences = req.stop_sequences;
  return { generationConfig: config, thinking };
}
