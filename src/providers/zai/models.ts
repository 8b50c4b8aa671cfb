// Z.AI's models: what /v1/models lists, merged with the GLM models known to serve Claude Code
// (§3.2), so a failed or empty listing still leaves a usable catalogue.
import type { ModelInfo } from '../provider.ts';

const K = 1024;

export const KNOWN_ZAI_MODELS: readonly ModelInfo[] = [
  { id: 'glm-4.5', displayName: 'GLM-4.5', family: 'glm', contextWindow: 128 * K, maxOutputTokens: 96 * K, thinking: true },
  { id: 'glm-4.5-air', displayName: 'GLM-4.5-Air', family: 'glm', contextWindow: 128 * K, maxOutputTokens: 96 * K, thinking: true },
  { id: 'glm-4.6', displayName: 'GLM-4.6', family: 'glm', contextWindow: 200 * K, maxOutputTokens: 128 * K, thinking: true },
  { id: 'glm-4.7', displayName: 'GLM-4.7', family: 'glm', contextWindow: 200 * K, maxOutputTokens: 128 * K, thinking: true },
  { id: 'glm-5', displayName: 'GLM-5', family: 'glm', contextWindow: 200 * K, maxOutputTokens: 128 * K, thinking: true },
  { id: 'glm-5-turbo', displayName: 'GLM-5-Turbo', family: 'glm', contextWindow: 200 * K, maxOutputTokens: 128 * K, thinking: true },
  { id: 'glm-5.1', displayName: 'GLM-5.1', family: 'glm', contextWindow: 200 * K, maxOutputTokens: 128 * K, thinking: true },
  // The 1M-context generation (2026): a listing that names them bare must not cost them their window.
  { id: 'glm-5.2', displayName: 'GLM-5.2', family: 'glm', contextWindow: K * K, maxOutputTokens: 128 * K, thinking: true },
  { id: 'glm-5.3', displayName: 'GLM-5.3', family: 'glm', contextWindow: K * K, maxOutputTokens: 131_072, thinking: true },
  { id: 'glm-5.3-flash', displayName: 'GLM-5.3-Flash', family: 'glm', contextWindow: K * K, maxOutputTokens: 131_072, thinking: true },
];

function displayName(id: string): string {
  return id.replace(/^glm/i, 'GLM').replace(/-air$/i, '-Air').replace(/-turbo$/i, '-Turbo');
}

/** Reads an Anthropic-style `{data:[{id, display_name}]}` listing (or a bare array); unknown shapes give []. */
export function parseModelList(body: unknown): ModelInfo[] {
  const list = Array.isArray(body) ? body : body && typeof body === 'object' ? (body as { data?: unknown }).data : null;
  if (!Array.isArray(list)) return [];
  const out: ModelInfo[] = [];
  for (const m of list) {
    const id = typeof m === 'string' ? m : m && typeof m === 'object' ? (m as { id?: unknown }).id : null;
    if (typeof id !== 'string' || !id) continue;
    const name = m && typeof m === 'object' ? (m as { display_name?: unknown }).display_name : null;
    out.push({
      id,
      displayName: typeof name === 'string' && name ? name : displayName(id),
      family: /^glm/i.test(id) ? 'glm' : 'other',
    });
  }
  return out;
}

/** Listed models first (enriched with what we know of them), then known ones the listing lacked. */
export function mergeModels(listed: readonly ModelInfo[]): ModelInfo[] {
  const known = new Map(KNOWN_ZAI_MODELS.map((m) => [m.id, m]));
  const seen = new Set<string>();
  const out: ModelInfo[] = [];
  for (const m of listed) {
    const id = m.id;
    if (seen.has(id.toLowerCase())) continue;
    seen.add(id.toLowerCase());
    const k = known.get(id.toLowerCase());
    out.push(k ? { ...k, ...m, contextWindow: k.contextWindow, maxOutputTokens: k.maxOutputTokens, thinking: k.thinking } : m);
  }
  for (const k of KNOWN_ZAI_MODELS) if (!seen.has(k.id)) out.push({ ...k });
  return out;
}
