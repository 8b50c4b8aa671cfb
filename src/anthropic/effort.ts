// `output_config.effort` as a thinking budget, for upstreams that take a budget and have no effort
// knob of their own (Claude on Google's backend, GLM on Z.AI). The tiers are opencode's; the top one
// is Anthropic's advice for an unspecified budget, min(max_tokens - 1, 31999).
import type { MessagesRequest } from './schema.ts';

export const TOP_EFFORT_BUDGET = 31_999;

const BUDGET: Readonly<Record<string, number>> = { low: 8192, medium: 16_384, high: TOP_EFFORT_BUDGET, xhigh: TOP_EFFORT_BUDGET, max: TOP_EFFORT_BUDGET };

/** The effort the client asked for, if any. */
export function effortOf(req: Pick<MessagesRequest, 'output_config'>): string | undefined {
  const e = req.output_config?.effort;
  return typeof e === 'string' ? e : undefined;
}

/** The budget an effort stands for; none or one we do not know is the default, high. */
export function budgetForEffort(effort: string | undefined): number {
  return (effort !== undefined ? BUDGET[effort] : undefined) ?? TOP_EFFORT_BUDGET;
}
