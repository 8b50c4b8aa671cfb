// Request-level Prometheus series, fed from the server's one record per finished /v1/messages
// request: requests by provider, model and status; tokens in, out and cached; end-to-end duration.
// (Upstream latency, 429s, failovers, fallbacks, account states and quota are the gateway's.)
import { defineCounter, defineHistogram, modelLabels } from './metrics.ts';
import type { UsageRecord } from './store/usage.ts';

const requests = defineCounter('mcp_requests_total', 'Finished /v1/messages requests (and pictures drawn for /v1/images) by provider, model and HTTP status');
const tokens = defineCounter(
  'mcp_tokens_total',
  'Tokens by provider, model and type (input, output, cache_read, cache_creation)',
);
const duration = defineHistogram(
  'mcp_request_duration_seconds',
  'Time from request start to the end of the response, by provider',
  // A Claude Code turn with long thinking streams for many minutes (Z.AI advises a 50 min timeout):
  // without the long buckets they would all read as +Inf.
  [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3000],
);
const streamErrors = defineCounter(
  'mcp_stream_errors_total',
  'Streams that broke after their 200 (an error event, or cut at shutdown: server_stopped), by provider and error type',
);
const modelLabel = modelLabels();

/**
 * Counts one finished request. The model label is the upstream model, or "-" when none was chosen
 * (bad request, no account), so a client cannot grow the label set with made-up model names (and
 * past 200 names, "other").
 */
export function observeRequest(r: UsageRecord & { sent200?: boolean }): void {
  const provider = r.provider ?? '-';
  const model = modelLabel(r.upstreamModel);
  // Label names in sorted order, so the registry keys them without sorting.
  requests({ model, provider, status: r.status });
  if (r.inputTokens) tokens({ model, provider, type: 'input' }, r.inputTokens);
  if (r.outputTokens) tokens({ model, provider, type: 'output' }, r.outputTokens);
  if (r.cacheReadTokens) tokens({ model, provider, type: 'cache_read' }, r.cacheReadTokens);
  if (r.cacheCreationTokens) tokens({ model, provider, type: 'cache_creation' }, r.cacheCreationTokens);
  duration({ provider }, r.latencyMs / 1000);
  // A client that went away is no error of the stream's. The type is one of Anthropic's few error
  // types, or server_stopped: a stream cut at shutdown is recorded as a 503, but it broke after its 200.
  if (r.stream && (r.status === 200 || r.sent200 === true) && r.errorType !== null && r.errorType !== 'client_closed') {
    streamErrors({ provider, type: r.errorType });
  }
}
