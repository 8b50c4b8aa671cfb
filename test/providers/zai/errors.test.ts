import { describe, expect, test } from 'bun:test';
import { classifyZaiError, nextChinaMidnight, parseZaiResetAt, retryAfterAt } from '../../../src/providers/zai/errors.ts';

const NOW = Date.UTC(2026, 7, 31, 7, 0, 0); // 2026-08-31 15:00:00 in China
const H = (h: Record<string, string> = {}) => new Headers(h);
const anth = (type: string, code: string, text: string) =>
  JSON.stringify({ type: 'error', error: { type, code, message: `[${code}][${text}][20260831150427d7cd9f9634d84ecc]` } });
const nat = (code: string | number, message: string) => JSON.stringify({ error: { code, message }, request_id: '20260411084842f31e68d233e444ad' });

describe('parseZaiResetAt', () => {
  test('reads the reset time as China time (UTC+8)', () => {
    expect(parseZaiResetAt('Usage limit reached for 5 hour. Your limit will reset at 2026-08-31 18:19:41')).toBe(
      Date.UTC(2026, 7, 31, 10, 19, 41),
    );
  });
  test('crosses the date line back into the previous UTC day', () => {
    expect(parseZaiResetAt('Your limit will reset at 2026-08-01 03:00:00')).toBe(Date.UTC(2026, 6, 31, 19, 0, 0));
  });
  test('gives null when there is no reset time', () => {
    expect(parseZaiResetAt('Usage limit reached')).toBeNull();
  });
});

describe('nextChinaMidnight', () => {
  test('is 16:00 UTC of the same day before China midnight', () => {
    expect(nextChinaMidnight(NOW)).toBe(Date.UTC(2026, 7, 31, 16, 0, 0));
  });
  test('rolls to the next day once China midnight has passed', () => {
    expect(nextChinaMidnight(Date.UTC(2026, 7, 31, 17, 0, 0))).toBe(Date.UTC(2026, 8, 1, 16, 0, 0));
  });
});

describe('retryAfterAt', () => {
  test('seconds', () => expect(retryAfterAt(H({ 'retry-after': '7' }), NOW)).toBe(NOW + 7000));
  test('milliseconds win', () => expect(retryAfterAt(H({ 'retry-after-ms': '1500', 'retry-after': '7' }), NOW)).toBe(NOW + 1500));
  test('HTTP date', () => expect(retryAfterAt(H({ 'retry-after': new Date(NOW + 60_000).toUTCString() }), NOW)).toBe(NOW + 60_000));
  test('absent', () => expect(retryAfterAt(H(), NOW)).toBeNull());
});

type Row = [string, number, string, Record<string, string>, { kind: string; code?: string | null; resetAt?: number | null; scope?: string; status?: number }];

const table: Row[] = [
  // Throttles: short cool-down, the key is the unit.
  ['1302 concurrency', 429, anth('rate_limit_error', '1302', 'High concurrency usage of this API'), {}, { kind: 'rate_limited', code: '1302', resetAt: NOW + 5000, scope: 'account' }],
  ['1303 frequency, retry-after wins', 429, anth('rate_limit_error', '1303', 'High frequency usage'), { 'retry-after': '2' }, { kind: 'rate_limited', code: '1303', resetAt: NOW + 2000 }],
  ['1305 as HTTP 529', 529, anth('overloaded_error', '1305', 'The service may be temporarily overloaded, please try again later'), {}, { kind: 'capacity', code: '1305', resetAt: null }],
  ['1304 daily limit until China midnight', 429, anth('rate_limit_error', '1304', 'daily call limit reached'), {}, { kind: 'quota_exhausted', code: '1304', resetAt: Date.UTC(2026, 7, 31, 16), scope: 'account' }],
  [
    '1308 five-hour quota with its reset time',
    429,
    anth('rate_limit_error', '1308', 'Usage limit reached for 5 hour. Your limit will reset at 2026-08-31 18:19:41'),
    {},
    { kind: 'quota_exhausted', code: '1308', resetAt: Date.UTC(2026, 7, 31, 10, 19, 41), scope: 'account' },
  ],
  [
    '1310 weekly quota, envelope without top-level type',
    429,
    JSON.stringify({ error: { type: 'rate_limit_error', code: '1310', message: '[1310][Weekly/Monthly Limit Exhausted. Your limit will reset at 2026-09-03 10:03:40][202607280616391a9088331cb844d2]' } }),
    {},
    { kind: 'quota_exhausted', code: '1310', resetAt: Date.UTC(2026, 8, 3, 2, 3, 40), scope: 'account' },
  ],
  // open.bigmodel.cn (the China region) words it in Chinese; the time is still the reset.
  ['1308 in Chinese with its reset time', 429, anth('rate_limit_error', '1308', '已达到 5 小时的使用上限。您的限额将在 2026-08-31 18:19:41 重置。'), {}, { kind: 'quota_exhausted', code: '1308', resetAt: Date.UTC(2026, 7, 31, 10, 19, 41) }],
  ['1113 balance (native shape)', 429, nat('1113', 'Insufficient balance or no resource package. Please recharge.'), {}, { kind: 'invalid_account', code: '1113', scope: 'account' }],
  ['1309 plan expired', 429, anth('rate_limit_error', '1309', 'Your GLM Coding Plan package has expired'), {}, { kind: 'invalid_account', code: '1309' }],
  ['1313 fair use', 403, anth('permission_error', '1313', 'fair use'), {}, { kind: 'invalid_account', code: '1313' }],
  ['1110 inactive', 403, nat(1110, 'account inactive'), {}, { kind: 'invalid_account', code: '1110' }],
  ['1111 missing account', 403, nat(1111, 'no account'), {}, { kind: 'invalid_account', code: '1111' }],
  ['1112 locked', 403, nat(1112, 'locked'), {}, { kind: 'invalid_account', code: '1112' }],
  ['1121 irregular activity', 403, nat(1121, 'locked'), {}, { kind: 'invalid_account', code: '1121' }],
  // Codes of Z.AI's current api-code table (docs.z.ai/api-reference/api-code), all on HTTP 429: a
  // plain 429 reading would rest one model for a minute and retry a week-long limit in vain.
  ['1311 plan without the model rests that model on the key, for an hour', 429, anth('rate_limit_error', '1311', 'Your current subscription plan does not yet include access to GLM-5'), {}, { kind: 'no_access', code: '1311', scope: 'model', resetAt: NOW + 3_600_000 }],
  ['1314 enterprise package expired', 429, nat('1314', 'Your enterprise package has expired. Please contact your enterprise administrator.'), {}, { kind: 'invalid_account', code: '1314', scope: 'account' }],
  ['1315 key of another product type', 429, nat('1315', 'This API Key is limited to enterprise coding package scenarios.'), {}, { kind: 'invalid_account', code: '1315', scope: 'account' }],
  [
    '1316 five-hour limit without extra-usage balance, until its "Resets at"',
    429,
    anth('rate_limit_error', '1316', 'Usage limit reached for the past 5 hours. Insufficient balance for extra usage. Resets at 2026-08-31 18:19:41.'),
    {},
    { kind: 'quota_exhausted', code: '1316', resetAt: Date.UTC(2026, 7, 31, 10, 19, 41), scope: 'account' },
  ],
  [
    '1317 seven-day limit without extra-usage balance',
    429,
    nat('1317', 'Usage limit reached for the past 7 days. Insufficient balance for extra usage. Resets at 2026-09-03 10:03:40.'),
    {},
    { kind: 'quota_exhausted', code: '1317', resetAt: Date.UTC(2026, 8, 3, 2, 3, 40), scope: 'account' },
  ],
  ['1318 five-hour limit, monthly spend limit', 429, nat('1318', 'Usage limit reached for the past 5 hours. Extra usage is not available due to monthly spend limit. Resets at 2026-08-31 18:19:41.'), {}, { kind: 'quota_exhausted', code: '1318', resetAt: Date.UTC(2026, 7, 31, 10, 19, 41), scope: 'account' }],
  ['1321 seven-day limit, monthly spend limit', 429, nat(1321, 'Usage limit reached for the past 7 days. Extra usage is not available due to monthly spend limit. Resets at 2026-09-03 10:03:40.'), {}, { kind: 'quota_exhausted', code: '1321', resetAt: Date.UTC(2026, 8, 3, 2, 3, 40), scope: 'account' }],
  // A time that names its zone is read in it, not as China time.
  ['a reset time written in UTC is read as UTC', 429, nat('1310', 'Weekly/Monthly Limit Exhausted. Your limit will reset at 2026-09-03T00:00:00Z'), {}, { kind: 'quota_exhausted', resetAt: Date.UTC(2026, 8, 3, 0, 0, 0) }],
  ['1002 on 401 is auth', 401, nat('1002', 'Authorization Token is invalid'), {}, { kind: 'auth', code: '1002' }],
  ['1000 on 401 is auth', 401, nat('1000', 'Authentication failed'), {}, { kind: 'auth', code: '1000' }],
  // An auth code is about the key whatever the status: 'auth', so the client hears a retryable
  // api_error, never a permission_error it would take for its own key's problem.
  ['1003 without 401 is still auth', 400, nat('1003', 'token expired'), {}, { kind: 'auth', code: '1003', scope: 'account' }],
  // 1220 "You do not have permission to access ${API_name}": on the Anthropic surface the API is the
  // model (a plan without glm-5). The key still serves its other models: only that model rests.
  ['1220 no access to one model limits that model only, for an hour', 403, nat('1220', 'You do not have permission to access glm-5'), {}, { kind: 'no_access', code: '1220', scope: 'model', resetAt: NOW + 3_600_000 }],
  ['1220 in the Anthropic envelope', 403, anth('permission_error', '1220', 'You do not have permission to access glm-5'), {}, { kind: 'no_access', code: '1220', scope: 'model' }],
  ['1004 on 401', 401, nat(1004, 'auth failed'), {}, { kind: 'auth', code: '1004' }],
  ['1001 on 401', 401, nat(1001, 'no auth header'), {}, { kind: 'auth', code: '1001' }],
  ['1211 unknown model (numeric code)', 400, nat(1211, '模型不存在，请检查模型代码。'), {}, { kind: 'not_found', code: '1211' }],
  ['1210 bad parameters', 400, nat('1210', 'bad params'), {}, { kind: 'bad_request', code: '1210' }],
  ['1213 field missing', 400, nat('1213', 'messages not received'), {}, { kind: 'bad_request', code: '1213' }],
  ['1214 invalid field', 400, anth('invalid_request_error', '1214', 'Input cannot be empty'), {}, { kind: 'bad_request', code: '1214' }],
  ['1215 exclusive fields', 400, nat('1215', 'both set'), {}, { kind: 'bad_request', code: '1215' }],
  ['1200 api call error', 400, nat('1200', 'call error'), {}, { kind: 'bad_request', code: '1200' }],
  ['1212 unsupported call', 400, nat('1212', 'unsupported'), {}, { kind: 'bad_request', code: '1212' }],
  ['1300 policy', 400, nat('1300', 'blocked'), {}, { kind: 'bad_request', code: '1300' }],
  ['1301 unsafe content', 400, nat('1301', 'unsafe'), {}, { kind: 'bad_request', code: '1301' }],
  ['500 api_error', 500, anth('api_error', '500', "'ClaudeContentBlockToolResult' object has no attribute 'id'"), {}, { kind: 'transient', code: '500' }],
  ['1230 process error', 500, nat('1230', 'process error'), {}, { kind: 'transient', code: '1230' }],
  ['1234 network error', 200, nat('1234', 'network error'), {}, { kind: 'transient', code: '1234' }],
  ['code only in the message prefix', 429, JSON.stringify({ error: { message: '[1308][Usage limit reached for 5 hour. Your limit will reset at 2026-08-31 18:19:41][x]' } }), {}, { kind: 'quota_exhausted', code: '1308' }],
  ['plain 429 with retry-after', 429, JSON.stringify({ type: 'error', error: { type: 'rate_limit_error', message: 'Rate limit exceeded' } }), { 'retry-after': '30' }, { kind: 'rate_limited', code: null, resetAt: NOW + 30_000 }],
  ['plain 429 without retry-after', 429, '', {}, { kind: 'rate_limited', resetAt: null }],
  ['HTML 502', 502, '<html><body><h1>502 Bad Gateway</h1></body></html>', {}, { kind: 'transient', status: 502 }],
  ['503 text', 503, 'upstream connect error', {}, { kind: 'capacity' }],
  ['bare 401', 401, '', {}, { kind: 'auth' }],
  ['bare 403', 403, '', {}, { kind: 'invalid_account' }],
  // Z.AI's own refusals are JSON with a code; a page is a firewall in front of it, not a verdict on the key.
  ['HTML 403 (a firewall page) is transient, not a dead account', 403, '<html><body><h1>403 Forbidden</h1></body></html>', {}, { kind: 'transient', code: null }],
  // Z.AI names an unknown model with a code (1211); a 404 without one is a path it does not serve,
  // a wrong ZAI_BASE_URL: not a model to change, and no other key would answer differently.
  ['bare 404 (a wrong ZAI_BASE_URL)', 404, '', {}, { kind: 'bad_request', code: null }],
  ['HTML 404 (a wrong ZAI_BASE_URL)', 404, '<html><body><h1>404 Not Found</h1></body></html>', {}, { kind: 'bad_request', code: null }],
  ['404 in the Anthropic envelope without a code is still an unknown model', 404, JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: 'model: glm-9' } }), {}, { kind: 'not_found' }],
  ['bare 400', 400, 'bad', {}, { kind: 'bad_request' }],
  ['in-stream overloaded error', 200, JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }), {}, { kind: 'capacity' }],
  ['in-stream api_error', 200, JSON.stringify({ type: 'error', error: { type: 'api_error', message: 'boom' } }), {}, { kind: 'transient' }],
  // In-stream, after the 200: the key was refused mid-answer. 'auth' makes the gateway mark the key
  // and send the client an api_error, not the authentication_error that means its own proxy key.
  ['in-stream authentication_error', 200, JSON.stringify({ type: 'error', error: { type: 'authentication_error', message: 'invalid api key' } }), {}, { kind: 'auth', scope: 'account' }],
  ['in-stream authentication_error with an auth code', 200, anth('authentication_error', '1002', 'Authorization Token is invalid'), {}, { kind: 'auth', code: '1002', scope: 'account' }],
  ['in-stream permission_error without a code', 200, JSON.stringify({ type: 'error', error: { type: 'permission_error', message: 'forbidden' } }), {}, { kind: 'auth', scope: 'account' }],
  ['in-stream rate_limit_error without a code', 200, JSON.stringify({ type: 'error', error: { type: 'rate_limit_error', message: 'slow down' } }), {}, { kind: 'rate_limited' }],
  ['in-stream invalid_request_error', 200, JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message: 'bad' } }), {}, { kind: 'bad_request' }],
  ['in-stream error with a Z.AI code', 200, anth('rate_limit_error', '1308', 'Usage limit reached. Your limit will reset at 2026-08-31 18:19:41'), {}, { kind: 'quota_exhausted', code: '1308' }],
];

describe('classifyZaiError', () => {
  for (const [name, status, body, headers, want] of table) {
    test(name, () => {
      const e = classifyZaiError(status, body, H(headers), NOW);
      expect(e.name).toBe('UpstreamError');
      expect(e.kind).toBe(want.kind as typeof e.kind);
      if ('code' in want) expect(e.code).toBe(want.code ?? null);
      if ('resetAt' in want) expect(e.resetAt).toBe(want.resetAt ?? null);
      if (want.scope) expect(e.scope).toBe(want.scope as 'account');
      expect(e.status).toBe(want.status ?? status);
    });
  }

  test('a 404 without a business code says to check ZAI_BASE_URL, not to pick another model', () => {
    for (const body of ['', '<html><body><h1>404 Not Found</h1></body></html>', 'Not Found']) {
      const e = classifyZaiError(404, body, H(), NOW);
      expect(e.message).toContain('ZAI_BASE_URL');
      expect(e.message).toContain('/api/anthropic');
      expect(e.message).toContain('HTTP 404');
    }
  });

  // Z.AI's own word for a path it does not serve (its api-code table: 1222 "API does not exist").
  test('1222 (API does not exist) says to check ZAI_BASE_URL too, not to pick another model', () => {
    const e = classifyZaiError(404, JSON.stringify({ error: { code: '1222', message: 'API does not exist' } }), H(), NOW);
    expect(e.kind).toBe('bad_request');
    expect(e.code).toBe('1222');
    expect(e.message).toContain('ZAI_BASE_URL');
    expect(e.message).toContain('1222');
  });

  test('422 pydantic detail becomes a bad request naming the field', () => {
    const body = JSON.stringify({
      detail: [{ type: 'literal_error', loc: ['body', 'messages', 1, 'role'], msg: "Input should be 'user' or 'assistant'", input: 'system' }],
    });
    const e = classifyZaiError(422, body, H(), NOW);
    expect(e.kind).toBe('bad_request');
    expect(e.message).toBe("Invalid request: messages.1.role: Input should be 'user' or 'assistant'");
  });

  test('the message drops the bracket wrapping and the request id but keeps the code', () => {
    const e = classifyZaiError(429, anth('rate_limit_error', '1308', 'Usage limit reached for 5 hour. Your limit will reset at 2026-08-31 18:19:41'), H(), NOW);
    expect(e.message).toBe('[1308] Usage limit reached for 5 hour. Your limit will reset at 2026-08-31 18:19:41');
  });

  // A load balancer's page says nothing else: the status is what tells a 413 (too large) from a 502.
  test('an HTML error page is reported with its HTTP status', () => {
    expect(classifyZaiError(413, '<html><body><h1>413 Request Entity Too Large</h1></body></html>', H(), NOW).message).toContain('HTTP 413');
    expect(classifyZaiError(502, '<html><body><h1>502 Bad Gateway</h1></body></html>', H(), NOW).message).toContain('HTTP 502');
  });

  test('an HTML page is not copied into the message', () => {
    const e = classifyZaiError(502, '<html><body>' + 'x'.repeat(5000) + '</body></html>', H(), NOW);
    expect(e.message).not.toContain('<html>');
    expect(e.message.length).toBeLessThan(200);
  });

  test('the API key never appears in the message', () => {
    const e = classifyZaiError(401, nat('1002', 'Authorization Token zk-abcdef123456 is invalid'), H(), NOW, 'zk-abcdef123456');
    expect(e.message).not.toContain('zk-abcdef123456');
    expect(e.message).toContain('***');
  });

  // Claude Code offers /compact only when a 400 reads "prompt is too long"; Z.AI says it as 1261.
  test('1261 prompt too long is a bad request in the wording Claude Code recognises', () => {
    const e = classifyZaiError(400, nat('1261', 'Prompt exceeds max length'), H(), NOW);
    expect(e.kind).toBe('bad_request');
    expect(e.code).toBe('1261');
    expect(e.message.toLowerCase().startsWith('prompt is too long')).toBe(true);
    expect(e.message).toContain('[1261] Prompt exceeds max length');
  });

  test('a context-length 400 without the code is put in the same wording', () => {
    const e = classifyZaiError(400, anth('invalid_request_error', '1210', 'The input token count (210000) exceeds the maximum number of tokens allowed (202752)'), H(), NOW);
    expect(e.kind).toBe('bad_request');
    expect(e.message).toMatch(/^prompt is too long: 210000 tokens > 202752 maximum/);
  });

  test('a max_tokens complaint is not reworded as a prompt too long', () => {
    const text = 'The input tokens plus max_tokens (210000) exceeds the maximum number of tokens allowed (202752)';
    expect(classifyZaiError(400, anth('invalid_request_error', '1210', text), H(), NOW).message).toBe(`[1210] ${text}`);
  });

  // The surface is FastAPI (its 422s say so): its other refusals are {"detail": "<reason>"}.
  test("a FastAPI refusal's string detail, or a bare string error, is the message, not just the status", () => {
    expect(classifyZaiError(401, JSON.stringify({ detail: 'Not authenticated' }), H(), NOW).message).toBe('Not authenticated');
    expect(classifyZaiError(400, JSON.stringify({ error: 'Request body is not valid JSON' }), H(), NOW).message).toBe('Request body is not valid JSON');
    // A 404 saying only "Not Found" is still a path Z.AI does not serve.
    expect(classifyZaiError(404, JSON.stringify({ detail: 'Not Found' }), H(), NOW).message).toContain('ZAI_BASE_URL');
  });

  test('an ordinary 400 keeps its message', () => {
    expect(classifyZaiError(400, nat('1214', 'Input cannot be empty'), H(), NOW).message).toBe('[1214] Input cannot be empty');
  });

  test('long bodies are cut', () => {
    const e = classifyZaiError(400, nat('1210', 'y'.repeat(2000)), H(), NOW);
    expect(e.message.length).toBeLessThan(400);
  });
});
