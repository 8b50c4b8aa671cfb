import { describe, expect, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { classifyGoogleError, delayFromText, parseGoDuration, resetAtOf } from '../../../src/providers/antigravity/errors.ts';

const NOW = Date.parse('2026-06-01T00:00:00Z');
const DIR = join(import.meta.dir, '../../fixtures/antigravity/errors');

interface Case {
  status: number;
  headers: Record<string, string>;
  body: unknown;
  expect: { kind: string; code?: string | null; resetInMs?: number | null; verifyUrl?: string; messageIncludes?: string; messageExcludes?: string };
}

const cases = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => [f, JSON.parse(readFileSync(join(DIR, f), 'utf8')) as Case] as const);

describe('classifyGoogleError over the error fixtures', () => {
  test('there are fixtures to classify', () => {
    expect(cases.length).toBeGreaterThan(15);
  });
  for (const [file, c] of cases) {
    test(`${file} -> ${c.expect.kind}`, () => {
      const text = typeof c.body === 'string' ? c.body : JSON.stringify(c.body);
      const e = classifyGoogleError(c.status, text, new Headers(c.headers), NOW);
      expect(e.kind).toBe(c.expect.kind as typeof e.kind);
      expect(e.status).toBe(c.status);
      if (c.expect.code !== undefined) expect(e.code).toBe(c.expect.code);
      if (c.expect.resetInMs !== undefined) expect(e.resetAt === null ? null : e.resetAt - NOW).toBe(c.expect.resetInMs);
      if (c.expect.verifyUrl) expect(e.verifyUrl).toBe(c.expect.verifyUrl);
      if (c.expect.messageIncludes) expect(e.message).toContain(c.expect.messageIncludes);
      if (c.expect.messageExcludes) expect(e.message).not.toContain(c.expect.messageExcludes);
      expect(e.message.length).toBeGreaterThan(0);
      expect(e.message).not.toContain('<html');
    });
  }
});

describe('reset time parsing', () => {
  test.each([
    ['0.479417207s', 479.417207],
    ['479.417207ms', 479.417207],
    ['108h48m20.795762633s', 391700795.762633],
    ['1h2m3s', 3723000],
    ['25m', 1500000],
    ['91226.179915352s', 91226179.915352],
  ])('Go duration %s', (s, ms) => {
    expect(parseGoDuration(s)).toBeCloseTo(ms, 3);
  });

  test('text that is not a Go duration is refused', () => {
    expect(parseGoDuration('soon')).toBeNull();
    expect(parseGoDuration('')).toBeNull();
    expect(parseGoDuration('12')).toBeNull();
  });

  test.each([
    ['Your quota will reset after 17s.', 17000],
    ['You have exhausted your capacity on this model. Your quota will reset after 25h20m26s.', 91226000],
    ['Individual quota reached. Resets in 108h48m29s.', 391709000],
    ['reset after 1h2m3s', 3723000],
    ['please retry after 30s', 30000],
    // Gemini's own 429 wording, and the spelled-out unit.
    ['You exceeded your current quota. Please retry in 39.575193018s.', 39575.193018],
    ['Too many requests, retry after 30 seconds', 30000],
  ])('delay from the message %s', (text, ms) => {
    expect(delayFromText(text)).toBe(ms);
  });

  test('a quotaResetTimeStamp already in the past is ignored', () => {
    const err = { details: [{ '@type': 'x.ErrorInfo', metadata: { quotaResetTimeStamp: '2026-05-01T00:00:00Z' } }] };
    expect(resetAtOf(err, '', new Headers(), NOW)).toBeNull();
  });

  test('Retry-After as an HTTP date and x-ratelimit-reset-after are read when the body says nothing', () => {
    const date = new Date(NOW + 90_000).toUTCString();
    expect(resetAtOf(null, '', new Headers({ 'retry-after': date }), NOW)).toBe(NOW + 90_000);
    expect(resetAtOf(null, '', new Headers({ 'x-ratelimit-reset-after': '12' }), NOW)).toBe(NOW + 12_000);
  });

  test('RetryInfo wins over quotaResetDelay, which wins over the text', () => {
    const err = {
      message: 'reset after 99s',
      details: [
        { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', metadata: { quotaResetDelay: '50s' } },
        { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '10s' },
      ],
    };
    expect(resetAtOf(err, '', new Headers(), NOW)).toBe(NOW + 10_000);
    expect(resetAtOf({ ...err, details: [err.details[0]!] }, '', new Headers(), NOW)).toBe(NOW + 50_000);
  });
});

describe('classification corner cases', () => {
  test('a RATE_LIMIT_EXCEEDED with an hours-long delay is exhausted quota, not a throttle', () => {
    const body = JSON.stringify({
      error: {
        code: 429,
        status: 'RESOURCE_EXHAUSTED',
        message: 'slow down',
        details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'RATE_LIMIT_EXCEEDED', metadata: { quotaResetDelay: '2h0m0s' } }],
      },
    });
    expect(classifyGoogleError(429, body, new Headers(), NOW).kind).toBe('quota_exhausted');
  });

  test('an error wrapped in an array (streaming endpoint) is read', () => {
    const body = JSON.stringify([{ error: { code: 404, message: 'Requested entity was not found.', status: 'NOT_FOUND' } }]);
    const e = classifyGoogleError(404, body, new Headers(), NOW);
    expect(e.kind).toBe('not_found');
    expect(e.message).toContain('Requested entity was not found.');
  });

  // The streaming call asks for text/event-stream, and an error may come framed as an event.
  test('an error body framed as an SSE data line is read like the bare JSON', () => {
    const error = { code: 429, message: 'Resource has been exhausted (e.g. check quota).', status: 'RESOURCE_EXHAUSTED', details: [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '3.5s' }] };
    const e = classifyGoogleError(429, `data: ${JSON.stringify({ error })}\r\n\r\n`, new Headers(), NOW);
    expect(e.kind).toBe('rate_limited');
    expect(e.code).toBe('RESOURCE_EXHAUSTED');
    expect(e.resetAt).toBe(NOW + 3500);
    expect(e.message).toBe('Antigravity: Resource has been exhausted (e.g. check quota).');
  });

  test('a 400 mentioning max_tokens is a bad request, never an auth problem', () => {
    const body = JSON.stringify({ error: { code: 400, status: 'INVALID_ARGUMENT', message: 'max_tokens must be greater than thinking.budget_tokens' } });
    expect(classifyGoogleError(400, body, new Headers(), NOW).kind).toBe('bad_request');
  });

  test('a 529 overloaded is capacity', () => {
    expect(classifyGoogleError(529, 'overloaded', new Headers(), NOW).kind).toBe('capacity');
  });

  test('account-level failures say so', () => {
    const e = classifyGoogleError(401, '', new Headers(), NOW);
    expect(e.kind).toBe('auth');
    expect(e.scope).toBe('account');
  });
});

describe('403: only verification and bans make an account invalid (protocol §9.2)', () => {
  const body = (message: string, reason?: string) =>
    JSON.stringify({
      error: {
        code: 403,
        message,
        status: 'PERMISSION_DENIED',
        ...(reason ? { details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason, domain: 'cloudcode-pa.googleapis.com' }] } : {}),
      },
    });
  test.each([
    ['VALIDATION_REQUIRED reason', 'invalid_account', 'account', body('Please complete account validation', 'VALIDATION_REQUIRED')],
    ['VALIDATION_REQUIRED in the text only', 'invalid_account', 'account', body('VALIDATION_REQUIRED: Please complete account validation')],
    ['terms-of-service ban', 'invalid_account', 'account', body('This service has been disabled in this account for violation of Terms of Service.')],
    ['account_disabled reason', 'invalid_account', 'account', body('The account is disabled.', 'account_disabled')],
    ['USER_DISABLED reason', 'invalid_account', 'account', body('The user is disabled.', 'USER_DISABLED')],
    // Wrong client metadata or project: the proxy's or the project's problem, not a dead account.
    ['no valid license', 'transient', 'model', body('You do not have a valid license of this product')],
    [
      'generateChat denied on the project',
      'transient',
      'model',
      body("Permission 'cloudaicompanion.companions.generateChat' denied on resource '//cloudaicompanion.googleapis.com/projects/rising-fact-p41fc/locations/global'"),
    ],
    ['one model denied', 'transient', 'model', body('Permission denied on model claude-opus-4-6-thinking.')],
    ['API disabled in the project', 'transient', 'model', body('Gemini for Google Cloud API has not been used in project 123 before or it is disabled.', 'SERVICE_DISABLED')],
    ['bare 403', 'transient', 'model', ''],
  ])('%s -> %s (%s)', (_name, kind, scope, text) => {
    const e = classifyGoogleError(403, text, new Headers(), NOW);
    expect(e.kind).toBe(kind as typeof e.kind);
    expect(e.scope).toBe(scope as typeof e.scope);
    expect(e.status).toBe(403);
    expect(e.message).toStartWith('Antigravity: ');
  });
});

describe('403s about the project are tagged PROJECT_DENIED so the provider re-discovers it (§9.2 "fix discovery")', () => {
  const body = (message: string) => JSON.stringify({ error: { code: 403, message, status: 'PERMISSION_DENIED' } });
  test.each([
    ['generateChat denied on the project', body("Permission 'cloudaicompanion.companions.generateChat' denied on resource '//cloudaicompanion.googleapis.com/projects/rising-fact-p41fc/locations/global'"), 'PROJECT_DENIED'],
    ['no valid license (client metadata / project)', body('You do not have a valid license of this product'), 'PROJECT_DENIED'],
    ['one model denied', body('Permission denied on model claude-opus-4-6-thinking.'), 'PERMISSION_DENIED'],
    ['bare 403', '', null],
  ])('%s', (_name, text, code) => {
    const e = classifyGoogleError(403, text, new Headers(), NOW);
    expect(e.kind).toBe('transient');
    expect(e.code).toBe(code);
  });
});

describe('signature rejections are worded for Claude Code to heal itself', () => {
  // Claude Code strips thinking from the history and retries once when a 400 says "invalid signature" and
  // "thinking block" (backticks ignored, any case); any other wording ends the session.
  const healable = (m: string) => {
    const t = m.replaceAll('`', '').toLowerCase();
    return t.includes('thinking block') && t.includes('invalid signature');
  };
  const body = (message: string) => JSON.stringify({ error: { code: 400, message, status: 'INVALID_ARGUMENT' } });
  test.each([
    ['Claude, raw', true, 'messages.1.content.0: Invalid `signature` in `thinking` block'],
    ['Claude, missing signature', true, 'messages.3.content.0.thinking.signature: Field required'],
    ['Gemini, not valid', true, 'Unable to submit request because Thought signature is not valid.. Learn more: https://cloud.google.com/vertex-ai'],
    ['Gemini, corrupted', true, 'Corrupted thought signature.'],
    // Stripping thinking from the history cannot fix these; the message must stay what Google said.
    ['a tool schema with a "signature" property', false, 'Invalid JSON payload received. Unknown name "signature" at \'request.tools[0].function_declarations[3].parameters\': Cannot find field.'],
    ['a function call without its signature', false, 'Function call is missing a thought_signature in functionCall parts'],
    ['an argument named signature', false, 'GenerateContentRequest.contents[2].parts[0].function_call.args.signature: invalid value'],
  ])('%s -> healable: %p', (_name, heal, message) => {
    const e = classifyGoogleError(400, body(message), new Headers(), NOW);
    expect(e.kind).toBe('bad_request');
    expect(healable(e.message)).toBe(heal);
    if (!heal) expect(e.message).toBe(`Antigravity: ${message}`);
  });

  for (const file of ['400_claude_signature.json', '400_gemini_signature.json']) {
    test(`${file}: the client message matches Claude Code's signature pattern`, () => {
      const c = cases.find(([f]) => f === file)![1];
      const e = classifyGoogleError(c.status, JSON.stringify(c.body), new Headers(c.headers), NOW);
      expect(e.kind).toBe('bad_request');
      expect(healable(e.message)).toBe(true);
    });
  }
});

describe('prompt-too-long answers use the wording Claude Code parses', () => {
  const body = (message: string) => JSON.stringify({ error: { code: 400, message, status: 'INVALID_ARGUMENT' } });
  test.each([
    ['Prompt is too long: 215000 tokens > 200000 maximum', 'Prompt is too long: 215000 tokens > 200000 maximum'],
    [
      'The input token count (1048577) exceeds the maximum number of tokens allowed (1048576).',
      'prompt is too long: 1048577 tokens > 1048576 maximum',
    ],
  ])('%s', (message, expected) => {
    const e = classifyGoogleError(400, body(message), new Headers(), NOW);
    expect(e.kind).toBe('bad_request');
    expect(e.message.startsWith(expected)).toBe(true);
  });
});
