// generationConfig per model family (§7.9–§7.10): output caps, sampling, and how the client's
// `thinking` / `output_config.effort` become Google's thinkingConfig.
import { budgetForEffort, effortOf } from '../../anthropic/effort.ts';
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

/** Only for a caller that bypassed the server (which answers max_tokens 0 itself, and refuses less). */
const DEFAULT_MAX_TOKENS = 4096;
const CLAUDE_MIN_BUDGET = 1024;
/** Head room left for the visible answer when an explicit budget would eat all of max_tokens ([NODE]). */
const ANSWER_ROOM = 8192;

// Claude has no effort knob on this backend: effort becomes a budget (anthropic/effort.ts).
// Gemini: the official client's integers (flash low 1000 / medium 4000 / high -1 = dynamic; protocol §7.10).
const GEMINI_EFFORT_BUDGET: Record<string, number> = { low: 1000, medium: 4000, high: -1, xhigh: -1, max: -1 };
const GEMINI_25_MAX_BUDGET = 24_576;
/** Gemini's documented limit ("up to 5"); Vertex answers 400 "supported range is from 1 to 6 (exclusive)". */
const GEMINI_MAX_STOP_SEQUENCES = 5;

/** Whether the client asked for thinking (enabled, adaptive, between_tools). */
export function asksForThinking(req: MessagesRequest): boolean {
  const mode = req.thinking?.type;
  return mode === 'enabled' || mode === 'adaptive' || mode === 'between_tools';
}

export interface GenerationPlan {
  generationConfig: Record<string, unknown>;
  /** Whether thinking was asked of the upstream (drives history filtering and recovery). */
  thinking: boolean;
}

/** agy's runtime ids carry the tier (`gemini-3.8-flash-low`, §7.10): its budget when the catalog has none. */
const GEMINI_TIER_SUFFIX = /-(low|medium|high)$/;

/**
 * The Gemini budget when the client names neither budget nor effort: the catalog's default for the
 * runtime id (what the official client sends), else the tier in the id, else dynamic.
 */
function geminiDefaultBudget(model: string, catalogBudget: number | undefined): number {
  if (catalogBudget !== undefined) return catalogBudget;
  const tier = GEMINI_TIER_SUFFIX.exec(model)?.[1];
  return tier ? GEMINI_EFFORT_BUDGET[tier]! : -1;
}

/** `catalogBudget`: the catalog's thinkingBudget for `model`, when listed (-1 = dynamic). */
export function planGeneration(req: MessagesRequest, family: ModelFamily, model: string, outputCap?: number, catalogBudget?: number): GenerationPlan {
  const cap = outputCap && outputCap > 0 ? outputCap : DEFAULT_OUTPUT_CAP[family];
  let maxOutputTokens = Math.min(req.max_tokens > 0 ? req.max_tokens : DEFAULT_MAX_TOKENS, cap);
  const config: Record<string, unknown> = {};
  const mode = req.thinking?.type;
  const effort = effortOf(req);
  let thinking = false;

  if (family === 'claude') {
    // "-thinking" ids think even when the client said nothing, or Claude writes <thinking> XML as text.
    thinking = asksForThinking(req) || (mode === undefined && model.includes('thinking'));
    if (thinking) {
      let budget: number;
      if (req.thinking?.type === 'enabled') {
        // The client chose this budget: honour it, raising the output above it when max_tokens is short.
        budget = Math.max(CLAUDE_MIN_BUDGET, req.thinking.budget_tokens);
        if (maxOutputTokens <= budget) maxOutputTokens = Math.min(cap, budget + ANSWER_ROOM);
        if (maxOutputTokens <= budget) budget = maxOutputTokens - ANSWER_ROOM;
      } else {
        // Our own budget fits under max_tokens: Claude Code retries a context overflow with a smaller
        // max_tokens, and raising the output back above it would overflow again. When max_tokens
        // leaves no room for Claude's minimum 1024 (max_tokens ≤ 1024, e.g. a 1-token probe),
        // thinking is off rather than the output raised past what the client allowed.
        budget = Math.min(budgetForEffort(effort), maxOutputTokens - 1);
      }
      if (budget >= CLAUDE_MIN_BUDGET) config.thinkingConfig = { includeThoughts: true, thinkingBudget: budget };
      else thinking = false;
    }
  } else if (family === 'gemini') {
    thinking = asksForThinking(req);
    if (thinking) {
      const explicit = req.thinking?.type === 'enabled';
      let budget =
        req.thinking?.type === 'enabled'
          ? req.thinking.budget_tokens
          : effort !== undefined
            ? (GEMINI_EFFORT_BUDGET[effort] ?? -1)
            : geminiDefaultBudget(model, catalogBudget);
      if (model.startsWith('gemini-2.5') && budget > GEMINI_25_MAX_BUDGET) budget = GEMINI_25_MAX_BUDGET;
      if (budget > 0 && maxOutputTokens <= budget) {
        // Only a budget the client chose raises the output. Our tier budget that does not fit goes
        // dynamic: Gemini counts thoughts inside maxOutputTokens, so -1 stays under max_tokens.
        if (explicit) {
          maxOutputTokens = Math.min(cap, budget + ANSWER_ROOM);
          // A budget past the model's cap would leave no room for the answer: it gives way to it
          // (dynamic when the cap is too small to leave that room at all).
          if (maxOutputTokens <= budget) budget = maxOutputTokens > ANSWER_ROOM ? maxOutputTokens - ANSWER_ROOM : -1;
        } else budget = -1;
      }
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
  if (Array.isArray(req.stop_sequences) && req.stop_sequences.length > 0) {
    // Gemini 400s the whole request over a sixth; the first five still stop it (Anthropic allows more).
    config.stopSequences = family === 'gemini' ? req.stop_sequences.slice(0, GEMINI_MAX_STOP_SEQUENCES) : req.stop_sequences;
  }
  return { generationConfig: config, thinking };
}
