// Request counters and token counters are fed from the per-request record and rendered by /metrics.
import { expect, test } from 'bun:test';
import { modelLabels, renderMetrics } from '../src/metrics.ts';
import { observeRequest } from '../src/request-metrics.ts';
import { FAKE_ZAI_KEY_ID, FAKE_ZAI_KEY_SECRET } from './fixtures/fake-zai-key.ts';
import { usageRecord } from './usage-record.ts';

function series(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inside = line.slice(name.length + 1, line.lastIndexOf('}'));
    const have = Object.fromEntries(inside.split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 2, -1)]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v) && Object.keys(have).length === Object.keys(labels).length) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return undefined;
}

test('a finished request counts by provider, upstream model and status, with its tokens by type', () => {
  const before = renderMetrics();
  // The registry is process-wide (every test file, every --rerun-each round): compare with before.
  const at = (text: string, name: string, labels: Record<string, string>) => series(text, name, { provider: 'zai', model: 'glm-metrics-test', ...labels }) ?? 0;
  const tokens = (text: string, type: string) => at(text, 'mcp_tokens_total', { type });
  const base = at(before, 'mcp_requests_total', { status: '200' });
  observeRequest(
    usageRecord({ upstreamModel: 'glm-metrics-test', inputTokens: 100, outputTokens: 40, cacheReadTokens: 7, cacheCreationTokens: 3 }),
  );
  observeRequest(usageRecord({ upstreamModel: 'glm-metrics-test', inputTokens: 1, outputTokens: 2 }));
  const text = renderMetrics();
  expect(text).toContain('# TYPE mcp_requests_total counter');
  expect(series(text, 'mcp_requests_total', { provider: 'zai', model: 'glm-metrics-test', status: '200' })).toBe(base + 2);
  expect(tokens(text, 'input') - tokens(before, 'input')).toBe(101);
  expect(tokens(text, 'output') - tokens(before, 'output')).toBe(42);
  expect(tokens(text, 'cache_read') - tokens(before, 'cache_read')).toBe(7);
  expect(tokens(text, 'cache_creation') - tokens(before, 'cache_creation')).toBe(3);
  expect(text).toContain('# TYPE mcp_request_duration_seconds histogram');
});

test('a request that never reached an upstream is labelled "-" rather than with the client-supplied model', () => {
  observeRequest(usageRecord({ provider: null, upstreamModel: null, clientModel: 'made-up-model-xyz', status: 400 }));
  const text = renderMetrics();
  expect(text).not.toContain('made-up-model-xyz');
  expect(series(text, 'mcp_requests_total', { provider: '-', model: '-', status: '400' })).toBeGreaterThanOrEqual(1);
});

test('names passed through to an upstream as asked (claude-* to Z.AI) cannot grow the label set without end', () => {
  for (let i = 0; i < 400; i++) observeRequest(usageRecord({ upstreamModel: `claude-made-up-${i}` }));
  const models = new Set<string>();
  for (const line of renderMetrics().split('\n')) {
    const m = /^mcp_requests_total\{.*model="([^"]*)"/.exec(line);
    if (m) models.add(m[1]!);
  }
  expect(models.size).toBeLessThanOrEqual(202);
  expect(models.has('other')).toBe(true);
});

test('a model name longer than any real id (128 characters) is labelled "other", not carried into every scrape', () => {
  const label = modelLabels();
  expect(label('m'.repeat(128))).toBe('m'.repeat(128));
  expect(label('m'.repeat(129))).toBe('other');
  expect(label(`claude-${'x'.repeat(5000)}`)).toBe('other');
});

// A client with its key in ANTHROPIC_MODEL by mistake: the name goes upstream as asked (a model no
// account lists is tried on any) and /metrics, scraped into another system, must not carry it.
test('a model name that is a key or token is labelled "other", never shown in /metrics', () => {
  const label = modelLabels();
  const key = `${FAKE_ZAI_KEY_ID}.${FAKE_ZAI_KEY_SECRET}`;
  expect(label(key)).toBe('other');
  expect(label(`claude-${key}`)).toBe('other');
  expect(label('glm-4.6')).toBe('glm-4.6');
});

test('a stream that broke after its 200 counts in mcp_stream_errors_total by provider and type; one the client left does not', () => {
  const count = (type: string) => series(renderMetrics(), 'mcp_stream_errors_total', { provider: 'zai', type }) ?? 0;
  const [overloaded, closed] = [count('overloaded_error'), count('client_closed')];
  observeRequest(usageRecord({ stream: true, status: 200, errorType: 'overloaded_error' }));
  observeRequest(usageRecord({ stream: true, status: 200, errorType: 'client_closed' }));
  observeRequest(usageRecord({ stream: true, status: 200, errorType: null }));
  observeRequest(usageRecord({ stream: true, status: 529, errorType: 'overloaded_error' }));
  expect(count('overloaded_error')).toBe(overloaded + 1);
  expect(count('client_closed')).toBe(closed);
});

test('the request duration has buckets up to 50 minutes, for long thinking streams', () => {
  observeRequest(usageRecord({ latencyMs: 900_000 }));
  const text = renderMetrics();
  expect(text).toMatch(/^mcp_request_duration_seconds_bucket\{provider="zai",le="1200"\} \d+$/m);
  expect(text).toMatch(/^mcp_request_duration_seconds_bucket\{provider="zai",le="3000"\} \d+$/m);
});
