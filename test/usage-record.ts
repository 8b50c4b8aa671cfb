// A complete usage/request record with overridable fields, for the usage and metrics tests.
import type { UsageRecord } from '../src/store/usage.ts';

export function usageRecord(over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    ts: Date.now(),
    requestId: `req_${Math.random().toString(36).slice(2)}`,
    accountId: null,
    provider: 'zai',
    clientModel: 'claude-sonnet-4-5',
    upstreamModel: 'glm-4.6',
    status: 200,
    latencyMs: 120,
    inputTokens: 10,
    outputTokens: 5,
    cacheReadTokens: 0,
    cacheCreationTokens: 0,
    stream: true,
    fallbackFrom: null,
    failovers: 0,
    errorType: null,
    ...over,
  };
}
