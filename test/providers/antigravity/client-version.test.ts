// Google's version gate (antigravity.md §4.3): an answer that is the backend's "please update" line
// moves the User-Agent on to the version Antigravity's updater manifest names, once, and a gate that
// stays is a clear error about ANTIGRAVITY_USER_AGENT rather than an answer from "the model".
import { afterAll, beforeEach, describe, expect, test } from 'bun:test';
import type { AnthropicEvent } from '../../../src/anthropic/events.ts';
import type { MessagesRequest } from '../../../src/anthropic/schema.ts';
import { loadConfig } from '../../../src/config.ts';
import {
  compareClientVersions,
  createClientVersion,
  isRetiredModelNotice,
  isVersionGate,
  MANIFEST_RECHECK_MS,
  parseManifestVersion,
  versionGateIn,
  withClientVersion,
} from '../../../src/providers/antigravity/client-version.ts';
import { createAntigravityProvider } from '../../../src/providers/antigravity/index.ts';
import type { Account } from '../../../src/store/accounts.ts';
import { startFakeGoogle } from '../../fakes/google.ts';
import { sendAll, sendFailure, textOf } from '../send.ts';

describe('reading the version', () => {
  test.each([
    ['electron-builder YAML', "version: 3.1.4\nfiles:\n  - url: x.zip\nreleaseDate: '2026-11-30'\n", '3.1.4'],
    ['quoted YAML', "version: '3.1.4'\n", '3.1.4'],
    ['JSON', '{"url":"https://x/1.0.0/a.zip","version":"3.2.0","sha512":"abc"}', '3.2.0'],
    ['plain text', 'Antigravity 3.0.7\n', '3.0.7'],
    ['nothing like a version', '<html>maintenance</html>', null],
  ])('%s', (_, body, want) => {
    expect(parseManifestVersion(body)).toBe(want);
  });

  test('versions order by number, not by text', () => {
    expect(compareClientVersions('2.10.0', '2.9.1')).toBeGreaterThan(0);
    expect(compareClientVersions('antigravity/hub/2.9.1 darwin/arm64', '2.9.1')).toBe(0);
    expect(compareClientVersions('3.0.0', 'no version')).toBeGreaterThan(0);
  });

  test('the User-Agent keeps its shape with the new version', () => {
    expect(withClientVersion('antigravity/hub/2.9.1 darwin/arm64', '3.1.4')).toBe('antigravity/hub/3.1.4 darwin/arm64');
    expect(withClientVersion('my-client', '3.1.4')).toBeNull();
  });
});

describe('telling the gate from an answer', () => {
  const start = { type: 'message_start' } as unknown as AnthropicEvent;
  const text = (t: string) => ({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: t } }) as AnthropicEvent;
  const block = (type: string) => ({ type: 'content_block_start', index: 0, content_block: { type } }) as unknown as AnthropicEvent;
  const GATE = 'This version of Antigravity is no longer supported. Please update to receive the latest features!';

  test.each([
    ['the gate line', [start, block('text'), text(GATE)], GATE],
    ['the "out of date" line', [text('Your current version of Antigravity is out of date. Please visit …')], 'Your current version of Antigravity is out of date. Please visit …'],
    ['an ordinary answer', [start, block('text'), text('Hello')], null],
    ['an answer that quotes the gate later', [text('Sure. '), text(GATE)], null],
    ['thinking first', [start, block('thinking'), text(GATE)], null],
    ['nothing yet', [start], undefined],
    ['only whitespace yet', [text(' ')], undefined],
  ])('%s', (_, events, want) => {
    expect(versionGateIn(events as AnthropicEvent[])).toBe(want as string | null | undefined);
  });

  test('the gate text alone', () => {
    expect(isVersionGate(GATE)).toBe(true);
    expect(isVersionGate('This version of the code is no longer supported')).toBe(false);
  });

  // The backend's wording for a retired model (antigravity.md §11.5), with a dotted version on either side.
  const RETIRED = 'Gemini 3 Pro is no longer available. Please switch to Gemini 3.1 Pro in the latest version of Antigravity.';
  test('a retired-model notice as the first text is told from an answer; an answer about another retirement is not one', () => {
    expect(versionGateIn([start, block('text'), text(RETIRED)])).toBe(RETIRED);
    expect(isRetiredModelNotice('Claude Sonnet 4.5 is no longer available. Please switch to Claude Sonnet 4.6 in the latest version of Antigravity.')).toBe(true);
    expect(isRetiredModelNotice('Python 2 is no longer available. Please switch to Python 3 in your Dockerfile.')).toBe(false);
    expect(isRetiredModelNotice('Gemini 3 Pro is no longer available. Please switch to Gemini 3.1 Pro.')).toBe(false);
    expect(versionGateIn([text('Note: '), text(RETIRED)])).toBeNull();
  });
});

describe('createClientVersion', () => {
  test('a pinned User-Agent or no manifest URL is never moved on', async () => {
    const pinned = createClientVersion({ userAgent: 'antigravity/hub/1.0.0 x', pinned: true, manifestUrl: 'http://127.0.0.1:9/none', now: () => 0 });
    expect(await pinned.update()).toBe(false);
    const off = createClientVersion({ userAgent: 'antigravity/hub/1.0.0 x', pinned: false, manifestUrl: null, now: () => 0 });
    expect(await off.update()).toBe(false);
    expect(off.userAgent()).toBe('antigravity/hub/1.0.0 x');
  });
});

describe('the provider against a gating backend', () => {
  const fake = startFakeGoogle();
  afterAll(() => fake.stop());
  let t = 1_000_000;
  const env = (extra: Record<string, string> = {}) => ({
    ANTIGRAVITY_ENDPOINTS: fake.endpoints.join(','),
    GOOGLE_OAUTH_TOKEN_URL: fake.tokenUrl,
    GOOGLE_OAUTH_AUTH_URL: fake.authUrl,
    GOOGLE_USERINFO_URL: fake.userinfoUrl,
    ANTIGRAVITY_VERSION_URL: fake.versionUrl,
    ...extra,
  });
  const providerWith = (extra: Record<string, string> = {}) =>
    createAntigravityProvider(loadConfig(env(extra), {}, { requireApiKey: false }), { updateAccount: () => {}, now: () => t });
  const email = 'gate@example.com';
  const acc: Account = {
    id: 'acc_gate',
    provider: 'antigravity',
    label: email,
    email,
    status: 'active',
    statusReason: null,
    verifyUrl: null,
    credentials: { kind: 'oauth', refreshToken: fake.refreshTokenFor(email) },
    meta: { projectId: 'aicode-consumers' },
    createdAt: 0,
    updatedAt: 0,
    lastUsedAt: null,
  };
  const ctx = () => ({ account: acc, model: 'claude-sonnet-4-6', clientModel: 'claude-sonnet-4-6', sessionKey: 's', requestId: 'r', signal: new AbortController().signal, headers: {} });
  const req = { model: 'claude-sonnet-4-6', max_tokens: 256, messages: [{ role: 'user', content: 'hi' }] } as MessagesRequest;
  const agents = () => fake.generations().map((r) => r.headers['user-agent']);
  const manifestReads = () => fake.requests.filter((r) => r.path === '/manifest/latest-arm64-mac.yml').length;

  beforeEach(() => {
    fake.requests.length = 0;
    fake.setClientVersions({ min: null, latest: '2.9.1' });
  });

  test('the gate moves the User-Agent to the manifest version and the same request is answered', async () => {
    fake.setClientVersions({ min: '3.0.0', latest: '3.1.4' });
    const provider = providerWith();
    const events = await sendAll(provider, req, ctx());
    expect(textOf(events)).not.toContain('no longer supported');
    expect(textOf(events).length).toBeGreaterThan(0);
    expect(agents()).toEqual(['antigravity/hub/2.9.1 darwin/arm64', 'antigravity/hub/3.1.4 darwin/arm64']);
    // The next request goes as the new version at once, and the manifest is not read again.
    await sendAll(provider, req, ctx());
    expect(agents().at(-1)).toBe('antigravity/hub/3.1.4 darwin/arm64');
    expect(agents()).toHaveLength(3);
    expect(manifestReads()).toBe(1);
  });

  test('a gate the manifest cannot lift is an error naming ANTIGRAVITY_USER_AGENT, not the answer', async () => {
    fake.setClientVersions({ min: '3.0.0', latest: '2.9.1' });
    const provider = providerWith();
    const { error, yielded } = await sendFailure(provider, req, ctx());
    expect(yielded).toBe(0);
    expect(error.kind).toBe('bad_request');
    expect(error.message).toContain('ANTIGRAVITY_USER_AGENT');
    expect(error.message).toContain('no longer supported');
    expect(manifestReads()).toBe(1);
    // Within the recheck interval the manifest is not asked again for every request.
    await sendFailure(provider, req, ctx());
    expect(manifestReads()).toBe(1);
    t += MANIFEST_RECHECK_MS;
    fake.setClientVersions({ min: '3.0.0', latest: '3.0.2' });
    expect(textOf(await sendAll(provider, req, ctx())).length).toBeGreaterThan(0);
    expect(agents().at(-1)).toBe('antigravity/hub/3.0.2 darwin/arm64');
  });

  test("the user's own User-Agent is kept: the gate is an error and the manifest is never read", async () => {
    fake.setClientVersions({ min: '3.0.0', latest: '3.1.4' });
    const provider = providerWith({ ANTIGRAVITY_USER_AGENT: 'antigravity/hub/2.9.9 darwin/arm64' });
    const { error } = await sendFailure(provider, req, ctx());
    expect(error.message).toContain('antigravity/hub/2.9.9 darwin/arm64');
    expect(agents()).toEqual(['antigravity/hub/2.9.9 darwin/arm64']);
    expect(manifestReads()).toBe(0);
  });

  test('ANTIGRAVITY_VERSION_URL=off never reads a manifest', async () => {
    fake.setClientVersions({ min: '3.0.0', latest: '3.1.4' });
    const provider = providerWith({ ANTIGRAVITY_VERSION_URL: 'off' });
    expect((await sendFailure(provider, req, ctx())).error.kind).toBe('bad_request');
    expect(manifestReads()).toBe(0);
  });

  // The notice of a retired model is no answer, and no newer client version brings the model back.
  test("a retired model's canned notice is a not_found error quoting Google, not the model's answer, and moves no User-Agent", async () => {
    fake.setMode({ kind: 'retired_model' }, { times: 1 });
    try {
      const { error, yielded } = await sendFailure(providerWith(), req, ctx());
      expect(yielded).toBe(0);
      expect(error.kind).toBe('not_found');
      expect(error.code).toBe('MODEL_RETIRED');
      expect(error.message).toContain('claude-sonnet-4-6');
      expect(error.message).toContain('Please switch to Gemini 3.1 Pro');
      expect(manifestReads()).toBe(0);
      expect(agents()).toEqual(['antigravity/hub/2.9.1 darwin/arm64']);
    } finally {
      fake.clearModes();
    }
  });

  test('without a gate nothing changes: no manifest read, the default User-Agent', async () => {
    await sendAll(providerWith(), req, ctx());
    expect(agents()).toEqual(['antigravity/hub/2.9.1 darwin/arm64']);
    expect(manifestReads()).toBe(0);
  });
});
