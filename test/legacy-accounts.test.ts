// Parsing the accounts.json of the Go multi-claude-proxy and the Node antigravity-claude-proxy.
import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { detectLegacyFormat, LegacyFormatError, parseLegacyAccounts } from '../src/legacy-accounts.ts';

const fixture = (name: string) => readFileSync(join(import.meta.dir, 'fixtures', 'legacy', name), 'utf8');

describe('the Go multi-claude-proxy file', () => {
  const parsed = parseLegacyAccounts(fixture('go-accounts.json'));

  test('is recognised as the Go format', () => {
    expect(parsed.format).toBe('go');
  });

  test('an Antigravity OAuth account keeps its email, refresh token and project', () => {
    const alice = parsed.accounts.find((a) => a.legacyName === 'alice@example.com');
    expect(alice?.account).toEqual({
      provider: 'antigravity',
      email: 'alice@example.com',
      credentials: { kind: 'oauth', refreshToken: '1//0gFAKEgoAliceRefreshToken0123456789' },
      meta: { importedFrom: 'accounts.json', projectId: 'sunny-pier-12345' },
    });
    expect(alice?.status).toBeUndefined();
  });

  test('a Z.AI key becomes a zai api_key account labelled with the old zai-<hash> name', () => {
    const zai = parsed.accounts.find((a) => a.account.provider === 'zai');
    expect(zai?.account).toEqual({
      provider: 'zai',
      label: 'zai-1a2b3c4d',
      credentials: { kind: 'api_key', apiKey: 'fakezaikey0123456789.GoProjectKey' },
    });
  });

  test('access-token-only and Copilot entries are skipped with a reason', () => {
    expect(parsed.accounts).toHaveLength(2);
    expect(parsed.skipped.map((s) => s.entry)).toEqual(['#3 (manual@example.com)', '#4 (octocat)']);
    expect(parsed.skipped[0]!.reason).toContain('mcp accounts add --provider antigravity');
    expect(parsed.skipped[1]!.reason).toContain('copilot');
  });
});

describe('the Node antigravity-claude-proxy file', () => {
  const parsed = parseLegacyAccounts(fixture('node-accounts.json'));

  test('is recognised as the Node format', () => {
    expect(parsed.format).toBe('node');
  });

  test('the composite refreshToken|projectId|managedProjectId is split; only the token is a credential', () => {
    const bob = parsed.accounts.find((a) => a.legacyName === 'bob@example.com')!;
    expect(bob.account.credentials).toEqual({ kind: 'oauth', refreshToken: '1//0gFAKEnodeBobRefreshToken0123456789' });
    expect(bob.account.meta).toEqual({
      importedFrom: 'accounts.json',
      projectId: 'bob-project-777',
      managedProjectId: 'managed-bob-888',
      tier: 'pro',
    });
  });

  test('a disabled account stays disabled, and an invalid one with a verify URL stays invalid', () => {
    const carol = parsed.accounts.find((a) => a.legacyName === 'carol@example.com')!;
    expect(carol.status?.status).toBe('disabled');
    const dave = parsed.accounts.find((a) => a.legacyName === 'dave@example.com')!;
    expect(dave.status).toEqual({
      status: 'invalid',
      reason: 'VALIDATION_REQUIRED',
      verifyUrl: 'https://accounts.google.com/signin/continue?fake=1',
    });
  });

  test('an invalid reason quoting the refresh token is stored with the token masked', () => {
    const token = ['1//0g', 'FAKE', 'quotedInReason', '0123456789'].join('');
    const text = JSON.stringify({
      accounts: [
        {
          email: 'erin@example.com',
          source: 'oauth',
          enabled: true,
          refreshToken: token,
          isInvalid: true,
          invalidReason: `invalid_grant for refresh_token=${token}`,
          verifyUrl: 'https://accounts.google.com/signin/continue?fake=2',
        },
      ],
    });
    const erin = parseLegacyAccounts(text).accounts[0]!;
    expect(erin.status?.status).toBe('invalid');
    expect(erin.status?.reason).toStartWith('invalid_grant');
    expect(erin.status?.reason).not.toContain('quotedInReason');
  });

  test('the IDE-database entry is skipped', () => {
    expect(parsed.skipped).toEqual([
      { entry: '#4 (ide@example.com)', reason: expect.stringContaining('source "database"') },
    ]);
  });
});

describe('a CLIProxyAPI auth file (one account per file)', () => {
  test('an Antigravity one is its Google account, with its refresh token and project', () => {
    const parsed = parseLegacyAccounts(fixture('cpa-antigravity.json'));
    expect(parsed.format).toBe('cpa');
    expect(parsed.skipped).toEqual([]);
    expect(parsed.accounts.map((a) => [a.legacyName, a.account])).toEqual([
      [
        'carol@example.com',
        {
          provider: 'antigravity',
          email: 'carol@example.com',
          credentials: { kind: 'oauth', refreshToken: '1//0gFAKEcpaCarolRefreshToken0123456789' },
          meta: { importedFrom: 'CLIProxyAPI', projectId: 'brave-otter-67890' },
        },
      ],
    ]);
  });

  test('one for a provider mcp does not serve, or without a refresh token, is skipped with the reason', () => {
    const codex = parseLegacyAccounts(fixture('cpa-codex.json'));
    expect(codex.format).toBe('cpa');
    expect(codex.accounts).toEqual([]);
    expect(codex.skipped).toEqual([{ entry: '#1 (dave@example.com)', reason: 'provider "codex" is not supported by mcp' }]);
    const bare = parseLegacyAccounts(JSON.stringify({ type: 'antigravity', email: 'e@example.com', access_token: 'ya29.FAKE' }));
    expect(bare.skipped.map((s) => s.reason)).toEqual(['no refresh token']);
  });
});

describe('odd input', () => {
  test.each([
    ['not JSON', '{accounts'],
    ['no accounts array', '{"settings":{}}'],
    ['accounts is not a list', '{"accounts":{}}'],
  ])('%s is refused with a readable LegacyFormatError', (_name, text) => {
    expect(() => parseLegacyAccounts(text)).toThrow(LegacyFormatError);
  });

  test('a hand-written file with a key left unquoted is refused without the key in the message', () => {
    const key = 'FAKEzaiKey0123456789abcdef';
    const parse = () => parseLegacyAccounts(`{"accounts":[{"provider":"zai","apiKey": ${key}.x}]}`);
    expect(parse).toThrow(LegacyFormatError);
    expect(parse).toThrow(/^not JSON: /);
    expect(parse).not.toThrow(new RegExp(key.slice(4)));
  });

  test('a bare list of accounts is accepted; entries without email or token are skipped, not fatal', () => {
    const parsed = parseLegacyAccounts(
      JSON.stringify([{ email: 'x@example.com', refreshToken: ['1/', '/FAKEtok0123456789'].join('') }, { refreshToken: '1//tok' }, { email: 'y@example.com' }, 7]),
    );
    expect(parsed.accounts.map((a) => a.legacyName)).toEqual(['x@example.com']);
    expect(parsed.skipped.map((s) => s.reason)).toEqual([
      'no email (mcp identifies Google accounts by email)',
      'no refresh token',
      'not an object',
    ]);
  });

  test('one Google account listed twice with its e-mail in other capitals is one account: the last entry counts', () => {
    // mcp matches e-mails without case, so both entries would land on one account and the first would win.
    const parsed = parseLegacyAccounts(
      JSON.stringify([
        { email: 'Twice@Example.com', refreshToken: '1//first-FAKE' },
        { email: 'twice@example.com', refreshToken: '1//second-FAKE' },
      ]),
    );
    expect(parsed.accounts.map((a) => a.account.credentials)).toEqual([{ kind: 'oauth', refreshToken: '1//second-FAKE' }]);
    expect(parsed.skipped).toEqual([{ entry: '#1 (Twice@Example.com)', reason: 'listed again as #2, which is imported' }]);
  });

  test('a file with nothing distinctive is "unknown" but still imported', () => {
    expect(detectLegacyFormat([{ email: 'a@b.c', refreshToken: '1//x' }])).toBe('unknown');
  });
});
