import { afterAll, beforeEach, describe, expect, test } from 'bun:test';
import type { CloudCodeOptions } from '../../../src/providers/antigravity/client.ts';
import { refreshAccessToken } from '../../../src/providers/antigravity/oauth.ts';
import {
  discoverProject,
  FALLBACK_PROJECT_ID,
  isProjectId,
  onboardTierId,
  parseLoadCodeAssist,
  projectIdOf,
  tierFromId,
} from '../../../src/providers/antigravity/project.ts';
import { UpstreamError } from '../../../src/providers/provider.ts';
import { startFakeGoogle } from '../../fakes/google.ts';
import loadCodeAssistPro from '../../fixtures/antigravity/load-code-assist-pro.json';

const fake = startFakeGoogle();
afterAll(() => fake.stop());
const cfg = { clientId: 'cid', clientSecret: 'cs', authUrl: fake.authUrl, tokenUrl: fake.tokenUrl, userinfoUrl: fake.userinfoUrl };
const cc: CloudCodeOptions = { endpoints: fake.endpoints, userAgent: 'antigravity/hub/2.9.1 darwin/arm64', now: Date.now };
const tokenFor = async (email: string) => (await refreshAccessToken(cfg, fake.refreshTokenFor(email))).accessToken;

beforeEach(() => {
  fake.clearModes();
  fake.requests.length = 0;
});

describe('parsing loadCodeAssist', () => {
  test('a Pro consumer account: shared project, tier from paidTier', () => {
    const { _comment, ...body } = loadCodeAssistPro;
    expect(parseLoadCodeAssist(body)).toEqual({ projectId: 'aicode-consumers', tierId: 'g1-pro-tier', tier: 'pro' });
  });

  test('the project may be an object with an id', () => {
    expect(projectIdOf({ id: 'cogent-snow-4mnnp', name: 'x', projectNumber: '1' })).toBe('cogent-snow-4mnnp');
    expect(projectIdOf('hybrid-factor-rc5ww')).toBe('hybrid-factor-rc5ww');
    expect(projectIdOf(undefined)).toBeNull();
    expect(projectIdOf({})).toBeNull();
  });

  test.each([
    ['g1-ultra-tier', 'ultra'],
    ['g1-pro-tier', 'pro'],
    ['standard-tier', 'pro'],
    ['free-tier', 'free'],
    ['legacy-tier', 'unknown'],
    [null, 'unknown'],
  ] as const)('tier id %s -> %s', (id, tier) => {
    expect(tierFromId(id)).toBe(tier);
  });

  test('onboarding uses the default allowed tier, never the paid one', () => {
    expect(onboardTierId({ paidTier: { id: 'g1-pro-tier' }, allowedTiers: [{ id: 'standard-tier' }, { id: 'free-tier', isDefault: true }] })).toBe('free-tier');
    expect(onboardTierId({ allowedTiers: [{ id: 'standard-tier' }] })).toBe('standard-tier');
    expect(onboardTierId({})).toBe('free-tier');
  });
});

describe('discovery against the fake', () => {
  test('an account with a project needs one loadCodeAssist with the ANTIGRAVITY metadata', async () => {
    const info = await discoverProject(cc, await tokenFor('has-project@example.com'));
    expect(info).toEqual({ projectId: 'aicode-consumers', tier: 'pro', tierId: 'g1-pro-tier' });
    const calls = fake.requests.filter((r) => r.endpoint);
    expect(calls.map((r) => r.rpc)).toEqual(['loadCodeAssist']);
    expect(calls[0]!.body).toEqual({ metadata: { ideType: 'ANTIGRAVITY' } });
  });

  test('an account without a project is onboarded, polling until the operation is done', async () => {
    fake.setAccount('new@example.com', { projectId: null, paidTierId: null, onboardPolls: 2, onboardProject: 'cogent-snow-4mnnp' });
    const info = await discoverProject(cc, await tokenFor('new@example.com'), undefined, { pollDelayMs: 5 });
    expect(info.projectId).toBe('cogent-snow-4mnnp');
    expect(info.tier).toBe('free');
    const onboard = fake.requests.filter((r) => r.rpc === 'onboardUser');
    expect(onboard.length).toBe(3);
    expect(onboard[0]!.body).toEqual({ tierId: 'free-tier', metadata: { ideType: 'ANTIGRAVITY' } });
  });

  test('when onboarding never finishes the shared fallback project is used and flagged', async () => {
    fake.setAccount('stuck@example.com', { projectId: null, onboardPolls: 100 });
    const info = await discoverProject(cc, await tokenFor('stuck@example.com'), undefined, { pollDelayMs: 1, attempts: 3 });
    expect(info.projectId).toBe(FALLBACK_PROJECT_ID);
    expect(info.fallback).toBe(true);
  });

  test('loadCodeAssist refused by daily (403) is asked of prod', async () => {
    fake.setMode({ kind: 'project_denied' }, { rpc: 'loadCodeAssist', endpoint: 'daily' });
    const info = await discoverProject(cc, await tokenFor('daily-403@example.com'));
    expect(info.projectId).toBe('aicode-consumers');
    expect(fake.requests.filter((r) => r.rpc === 'loadCodeAssist').map((r) => r.endpoint)).toEqual(['daily', 'prod']);
  });

  test('loadCodeAssist failing on both hosts (403, then an HTML 502) is one clear error, never the fallback', async () => {
    fake.setMode({ kind: 'project_denied' }, { rpc: 'loadCodeAssist', endpoint: 'daily' });
    fake.setMode({ kind: 'html502' }, { rpc: 'loadCodeAssist', endpoint: 'prod' });
    const err = await discoverProject(cc, await tokenFor('both-down@example.com')).catch((e) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err.message).not.toContain('<');
    expect(err.message).not.toContain('\n');
  });

  test('onboarding refused by daily (404) is polled on prod and completes', async () => {
    fake.setAccount('onboard-prod@example.com', { projectId: null, paidTierId: null, onboardPolls: 1, onboardProject: 'hybrid-factor-rc5ww' });
    fake.setMode({ kind: 'not_found' }, { rpc: 'onboardUser', endpoint: 'daily' });
    const info = await discoverProject(cc, await tokenFor('onboard-prod@example.com'), undefined, { pollDelayMs: 1 });
    expect(info).toEqual({ projectId: 'hybrid-factor-rc5ww', tier: 'free', tierId: 'free-tier' });
  });

  test('a legacy free account (currentTier only, no paidTier) is onboarded with its default tier', async () => {
    fake.setAccount('legacy@example.com', { projectId: null, paidTierId: null, onboardPolls: 0, onboardProject: 'cogent-snow-legacy' });
    const info = await discoverProject(cc, await tokenFor('legacy@example.com'), undefined, { pollDelayMs: 1 });
    expect(info).toEqual({ projectId: 'cogent-snow-legacy', tier: 'free', tierId: 'free-tier' });
  });

  test('onboarding that keeps failing with 500 ends at the bound with the fallback, not in a loop', async () => {
    fake.setAccount('onboard-500@example.com', { projectId: null, paidTierId: null });
    fake.setMode({ kind: 'http500' }, { rpc: 'onboardUser' });
    const info = await discoverProject(cc, await tokenFor('onboard-500@example.com'), undefined, { pollDelayMs: 1, attempts: 3 });
    expect(info.fallback).toBe(true);
    expect(fake.requests.filter((r) => r.rpc === 'onboardUser').length).toBeLessThanOrEqual(6);
  });

  test('an account Google wants verified (ineligibleTiers VALIDATION_REQUIRED) is invalid with the link, not onboarded or sent to the fallback', async () => {
    fake.setAccount('must-verify@example.com', {
      projectId: null,
      paidTierId: null,
      ineligibleTiers: [
        {
          reasonCode: 'VALIDATION_REQUIRED',
          reasonMessage: 'Verify your account to continue.',
          tierId: 'free-tier',
          tierName: 'Antigravity',
          validationUrl: 'https://accounts.google.com/FAKE-verify?for=must-verify',
        },
      ],
    });
    const err = await discoverProject(cc, await tokenFor('must-verify@example.com'), undefined, { pollDelayMs: 1, attempts: 2 }).catch((e) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err.kind).toBe('invalid_account');
    expect(err.verifyUrl).toBe('https://accounts.google.com/FAKE-verify?for=must-verify');
    expect(err.message).toContain('Verify your account to continue.');
    expect(fake.requests.filter((r) => r.rpc === 'onboardUser').length).toBe(0);
  });

  test("an ineligible account that cannot be onboarded falls back with Google's reason attached", async () => {
    fake.setAccount('ineligible@example.com', {
      projectId: null,
      paidTierId: null,
      ineligibleTiers: [{ reasonCode: 'UNSUPPORTED_LOCATION', reasonMessage: 'Antigravity is not available in your country.', tierId: 'free-tier', tierName: 'Antigravity' }],
    });
    const info = await discoverProject(cc, await tokenFor('ineligible@example.com'), undefined, { pollDelayMs: 1, attempts: 2 });
    expect(info.projectId).toBe(FALLBACK_PROJECT_ID);
    expect(info.fallback).toBe(true);
    expect(info.reason).toContain('Antigravity is not available in your country.');
    expect(info.reason).toContain('UNSUPPORTED_LOCATION');
  });

  test("an onboarding operation that ends in an error stops polling and the fallback carries Google's message", async () => {
    fake.setAccount('onboard-error@example.com', {
      projectId: null,
      paidTierId: null,
      onboardPolls: 1,
      onboardError: { code: 9, status: 'FAILED_PRECONDITION', message: 'User is not eligible for this tier.' },
    });
    const info = await discoverProject(cc, await tokenFor('onboard-error@example.com'), undefined, { pollDelayMs: 1, attempts: 5 });
    expect(info.fallback).toBe(true);
    expect(info.reason).toContain('User is not eligible for this tier.');
    expect(fake.requests.filter((r) => r.rpc === 'onboardUser').length).toBe(2);
  });

  test('a rejected token surfaces as auth instead of falling back', async () => {
    const err = await discoverProject(cc, 'ya29.bogus').catch((e) => e);
    expect(err.kind).toBe('auth');
  });
});

describe("the user's own Google Cloud project (Workspace, paid Gemini Code Assist)", () => {
  test.each([
    ['my-project-123', true],
    ['abcdef', true],
    ['a'.repeat(30), true],
    ['abcde', false],
    ['a'.repeat(31), false],
    ['1project', false],
    ['My-Project', false],
    ['my_project', false],
    ['my-project-', false],
  ] as const)('project id %s is valid: %p', (id, ok) => {
    expect(isProjectId(id)).toBe(ok);
  });

  test('it goes to loadCodeAssist and onboardUser as metadata.duetProject, and is the project when Google names none', async () => {
    fake.setAccount('workspace@example.com', { projectId: null, paidTierId: null, userProject: 'acme-gca-prod' });
    const info = await discoverProject(cc, await tokenFor('workspace@example.com'), undefined, { pollDelayMs: 1 }, { userProject: 'acme-gca-prod' });
    expect(info).toEqual({ projectId: 'acme-gca-prod', tier: 'pro', tierId: 'standard-tier' });
    expect(info.fallback).toBeUndefined();
    const calls = fake.requests.filter((r) => r.endpoint);
    expect(calls.map((r) => r.rpc)).toEqual(['loadCodeAssist', 'onboardUser']);
    expect(calls[0]!.body).toEqual({ metadata: { ideType: 'ANTIGRAVITY', duetProject: 'acme-gca-prod' } });
    expect(calls[1]!.body).toEqual({ tierId: 'standard-tier', metadata: { ideType: 'ANTIGRAVITY', duetProject: 'acme-gca-prod' } });
  });

  test('an account already on its tier is not onboarded again: its own project stands', async () => {
    fake.setAccount('workspace-2@example.com', { projectId: null, paidTierId: null, userProject: 'acme-gca-two' });
    const token = await tokenFor('workspace-2@example.com');
    await discoverProject(cc, token, undefined, { pollDelayMs: 1 }, { userProject: 'acme-gca-two' });
    fake.requests.length = 0;
    const info = await discoverProject(cc, token, undefined, { pollDelayMs: 1 }, { userProject: 'acme-gca-two' });
    expect(info).toEqual({ projectId: 'acme-gca-two', tier: 'pro', tierId: 'standard-tier' });
    expect(fake.requests.filter((r) => r.endpoint).map((r) => r.rpc)).toEqual(['loadCodeAssist']);
  });

  test('a tier that needs its own project, with none set, is an invalid account naming `mcp accounts set <label> --project`, not the fallback', async () => {
    fake.setAccount('workspace-unset@example.com', { projectId: null, paidTierId: null, userProject: 'acme-gca-three' });
    const err = await discoverProject(cc, await tokenFor('workspace-unset@example.com'), undefined, { pollDelayMs: 1 }, { label: 'work' }).catch((e) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err.kind).toBe('invalid_account');
    expect(err.code).toBe('PROJECT_REQUIRED');
    expect(err.message).toContain('standard-tier');
    expect(err.message).toContain('mcp accounts set work --project');
    expect(fake.requests.filter((r) => r.rpc === 'onboardUser').length).toBe(0);
  });

  test('a consumer account with a project set keeps the one Google gives (Google decides), but was told of the setting', async () => {
    const info = await discoverProject(cc, await tokenFor('consumer-set@example.com'), undefined, {}, { userProject: 'my-own-project' });
    expect(info.projectId).toBe('aicode-consumers');
    expect(fake.requests.find((r) => r.rpc === 'loadCodeAssist')!.body).toEqual({ metadata: { ideType: 'ANTIGRAVITY', duetProject: 'my-own-project' } });
  });

  test("an ineligible account whose only tier takes the user's project: the fallback's reason names the setting", async () => {
    fake.setAccount('ineligible-own@example.com', {
      projectId: null,
      paidTierId: null,
      ineligibleTiers: [{ reasonCode: 'UNSUPPORTED_LOCATION', reasonMessage: 'Antigravity is not available in your country.', tierId: 'free-tier', tierName: 'Antigravity' }],
    });
    const info = await discoverProject(cc, await tokenFor('ineligible-own@example.com'), undefined, { pollDelayMs: 1, attempts: 2 }, { label: 'abroad' });
    expect(info.fallback).toBe(true);
    expect(info.reason).toContain('UNSUPPORTED_LOCATION');
    expect(info.reason).toContain('mcp accounts set abroad --project');
  });

  test('a project Google refuses for the account (a typo) is an error naming the project and the command to fix it', async () => {
    fake.setAccount('workspace-typo@example.com', { projectId: null, paidTierId: null, userProject: 'acme-real-proj' });
    const err = await discoverProject(cc, await tokenFor('workspace-typo@example.com'), undefined, {}, { userProject: 'acme-typo-proj', label: 'work' }).catch((e) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err.status).toBe(403);
    expect(err.message).toContain("Google refused this account's own project acme-typo-proj");
    expect(err.message).toContain('mcp accounts set work --project');
  });

  test('with a project set, a failed onboarding uses that project instead of the shared fallback', async () => {
    fake.setAccount('own-onboard-500@example.com', { projectId: null, paidTierId: null });
    fake.setMode({ kind: 'http500' }, { rpc: 'onboardUser' });
    const info = await discoverProject(cc, await tokenFor('own-onboard-500@example.com'), undefined, { pollDelayMs: 1, attempts: 2 }, { userProject: 'acme-fallback-free' });
    expect(info.projectId).toBe('acme-fallback-free');
    expect(info.fallback).toBeUndefined();
  });
});
