import { afterAll, beforeEach, describe, expect, test } from 'bun:test';
import { loginNoBrowser, loginWithBrowser, loginWithRefreshToken, parsePastedRedirect } from '../../src/cli/google-login.ts';
import { loadConfig } from '../../src/config.ts';
import { startFakeGoogle } from '../fakes/google.ts';

const fake = startFakeGoogle({ loginEmail: 'login@example.com' });
afterAll(() => fake.stop());
const config = loadConfig(
  {
    ANTIGRAVITY_ENDPOINTS: fake.endpoints.join(','),
    GOOGLE_OAUTH_TOKEN_URL: fake.tokenUrl,
    GOOGLE_OAUTH_AUTH_URL: fake.authUrl,
    GOOGLE_USERINFO_URL: fake.userinfoUrl,
  },
  {},
  { requireApiKey: false },
);

beforeEach(() => {
  fake.clearModes();
  fake.setLoginEmail('login@example.com');
  fake.setLoginScopes(null);
});

/** A port that was free a moment ago. */
function freePort(): number {
  const s = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('') });
  const p = s.port as number;
  s.stop(true);
  return p;
}

describe('--refresh-token', () => {
  test('returns e-mail, fresh tokens and the discovered project', async () => {
    const rt = fake.refreshTokenFor('rt@example.com');
    const r = await loginWithRefreshToken({ config, refreshToken: `  ${rt}  ` });
    expect(r.email).toBe('rt@example.com');
    expect(r.credentials.kind).toBe('oauth');
    expect(r.credentials.refreshToken).toBe(rt);
    expect(r.credentials.accessToken).toStartWith('ya29.');
    expect(r.credentials.expiresAt).toBeGreaterThan(Date.now());
    // projectFor: the own-project setting it was found under (none), replacing any stored before.
    expect(r.meta).toEqual({ projectId: 'aicode-consumers', projectFor: null, tier: 'pro', tierId: 'g1-pro-tier' });
  });

  test("the Node proxy's composite token is accepted (only the first part is sent)", async () => {
    const rt = fake.refreshTokenFor('composite@example.com');
    const r = await loginWithRefreshToken({ config, refreshToken: `${rt}|rising-fact-p41fc|` });
    expect(r.credentials.refreshToken).toBe(rt);
  });

  test('Cloud Code down during the login: the account is added without a project, and the user is told', async () => {
    fake.setMode({ kind: 'http500' }, { rpc: 'loadCodeAssist' });
    const said: string[] = [];
    const r = await loginWithRefreshToken({ config, refreshToken: fake.refreshTokenFor('cc-down@example.com'), say: (l) => said.push(l) });
    expect(r.email).toBe('cc-down@example.com');
    expect(r.meta.projectId).toBeUndefined();
    expect(said.join('\n')).toContain('project discovery failed');
    expect(said.join('\n')).toContain('retried on first use');
  });

  test('Cloud Code refusing the account (VALIDATION_REQUIRED) fails the login with one line that gives the verify link', async () => {
    fake.setMode({ kind: 'validation_required' }, { rpc: 'loadCodeAssist' });
    const err = (await loginWithRefreshToken({ config, refreshToken: fake.refreshTokenFor('unverified@example.com') }).catch((e) => e)) as Error;
    expect(err.message).toContain('Cloud Code refused the account');
    expect(err.message).toContain('https://accounts.google.com/signin/continue?');
    expect(err.message).not.toContain('\n');
  });

  test('an account Google lists as needing verification (loadCodeAssist ineligibleTiers) fails the login with the verify link', async () => {
    fake.setAccount('tier-verify@example.com', {
      projectId: null,
      paidTierId: null,
      ineligibleTiers: [
        { reasonCode: 'VALIDATION_REQUIRED', reasonMessage: 'Verify your account to continue.', tierId: 'free-tier', validationUrl: 'https://accounts.google.com/FAKE-verify?x=1' },
      ],
    });
    const err = (await loginWithRefreshToken({ config, refreshToken: fake.refreshTokenFor('tier-verify@example.com') }).catch((e) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toContain('verify the account at https://accounts.google.com/FAKE-verify?x=1');
    expect(err.message).not.toContain('\n');
  });

  test("an account Google gives no project (ineligible): added, and the user is told Google's reason and that the shared project stands in", async () => {
    fake.setAccount('no-tier@example.com', {
      projectId: null,
      paidTierId: null,
      ineligibleTiers: [{ reasonCode: 'UNSUPPORTED_LOCATION', reasonMessage: 'Not available in your country.', tierId: 'free-tier' }],
    });
    const said: string[] = [];
    const r = await loginWithRefreshToken({ config, refreshToken: fake.refreshTokenFor('no-tier@example.com'), say: (l) => said.push(l) });
    expect(r.meta.projectId).toBeUndefined();
    const out = said.join('\n');
    expect(out).toContain('UNSUPPORTED_LOCATION: Not available in your country.');
    expect(out).toContain('rising-fact-p41fc');
  });

  test.each(['token_http500', 'token_down'] as const)('%s at the token endpoint is not reported as a refused token', async (kind) => {
    fake.setMode({ kind });
    const rt = fake.refreshTokenFor('token-trouble@example.com');
    const err = (await loginWithRefreshToken({ config, refreshToken: rt }).catch((e) => e)) as Error;
    expect(err.message).not.toContain('refused');
    expect(err.message).toContain('try again');
    expect(err.message).not.toContain(rt);
  });

  test('while Google provisions a project for a new account, the user is told the wait may be long', async () => {
    fake.setAccount('provisioned@example.com', { projectId: null, paidTierId: null, onboardPolls: 2, onboardProject: 'cogent-snow-prov1' });
    const said: string[] = [];
    const r = await loginWithRefreshToken({
      config,
      refreshToken: fake.refreshTokenFor('provisioned@example.com'),
      say: (l) => said.push(l),
      onboard: { pollDelayMs: 1 },
    });
    expect(r.meta.projectId).toBe('cogent-snow-prov1');
    expect(said.filter((l) => l.includes('provisioning'))).toHaveLength(1);
  });

  test('a refused OAuth client is reported as the configuration to fix, not as something to try again', async () => {
    fake.setMode({ kind: 'token_invalid_client' });
    const rt = fake.refreshTokenFor('bad-client@example.com');
    const err = (await loginWithRefreshToken({ config, refreshToken: rt }).catch((e) => e)) as Error;
    expect(err.message).toContain('GOOGLE_CLIENT_ID');
    expect(err.message).not.toContain('try again');
    expect(err.message).not.toContain('refused the refresh token');
    expect(err.message).not.toContain(rt);
  });

  test('a revoked token fails with one clear line that does not echo it', async () => {
    const bad = ['1/', '/FAKE-definitely-not-known-0123456789'].join('');
    const err = (await loginWithRefreshToken({ config, refreshToken: bad }).catch((e) => e)) as Error;
    expect(err.message).toContain('Google refused the refresh token');
    expect(err.message.split('Google refused').length - 1).toBe(1);
    expect(err.message).toContain('invalid_grant');
    expect(err.message).not.toContain(bad);
    expect(err.message).not.toContain('\n');
  });
});

describe('--no-browser', () => {
  async function consent(url: string): Promise<string> {
    const res = await fetch(url, { redirect: 'manual' });
    return res.headers.get('location')!;
  }

  test('prints the URL and takes the pasted redirect URL', async () => {
    const said: string[] = [];
    const r = await loginNoBrowser({
      config,
      say: (l) => said.push(l),
      readLine: async () => consent(said.find((l) => l.startsWith(fake.authUrl))!),
    });
    expect(r.email).toBe('login@example.com');
    const u = new URL(said.find((l) => l.startsWith(fake.authUrl))!);
    expect(u.searchParams.get('redirect_uri')).toBe('http://localhost:51121/oauth-callback');
    expect(u.searchParams.get('code_challenge_method')).toBe('S256');
  });

  test('a login with the Google Cloud permission unticked on the consent page fails at once, saying which one to keep', async () => {
    fake.setLoginScopes(['https://www.googleapis.com/auth/userinfo.email', 'https://www.googleapis.com/auth/userinfo.profile']);
    const said: string[] = [];
    const err = (await loginNoBrowser({
      config,
      say: (l) => said.push(l),
      readLine: async () => consent(said.find((l) => l.startsWith(fake.authUrl))!),
    }).catch((e) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toContain('https://www.googleapis.com/auth/cloud-platform');
    expect(err.message).toContain('log in again');
    expect(err.message).not.toContain('\n');
  });

  test('optional permissions unticked (cclog, experimentsandconfigs) do not stop the login', async () => {
    fake.setLoginScopes(['https://www.googleapis.com/auth/cloud-platform', 'https://www.googleapis.com/auth/userinfo.email']);
    const said: string[] = [];
    const r = await loginNoBrowser({
      config,
      say: (l) => said.push(l),
      readLine: async () => consent(said.find((l) => l.startsWith(fake.authUrl))!),
    });
    expect(r.email).toBe('login@example.com');
  });

  test('takes a bare code as well', async () => {
    const said: string[] = [];
    const r = await loginNoBrowser({
      config,
      say: (l) => said.push(l),
      readLine: async () => new URL(await consent(said.find((l) => l.startsWith(fake.authUrl))!)).searchParams.get('code')!,
    });
    expect(r.credentials.refreshToken).toStartWith('1//');
  });

  test('a redirect from another attempt (state mismatch) is refused and never exchanged', async () => {
    const said: string[] = [];
    const answers = [async () => (await consent(said.find((l) => l.startsWith(fake.authUrl))!)).replace(/state=[^&]+/, 'state=other'), async () => null];
    const before = fake.stats.codeExchanges;
    const err = (await loginNoBrowser({ config, say: (l) => said.push(l), readLine: () => answers.shift()!() }).catch((e) => e)) as Error;
    expect(said.join('\n')).toContain('state mismatch');
    expect(err.message).toContain('no redirect URL');
    expect(fake.stats.codeExchanges).toBe(before);
  });

  test('a pasted consent refusal ends the login at once', async () => {
    let asked = 0;
    const err = (await loginNoBrowser({
      config,
      say: () => {},
      readLine: async () => (asked++ ? null : 'http://localhost:51121/oauth-callback?error=access_denied'),
    }).catch((e) => e)) as Error;
    expect(err.message).toContain('access_denied');
    expect(asked).toBe(1);
  });

  test('a bad code is reported as a refused authorization code, not as a refresh token', async () => {
    const err = (await loginNoBrowser({ config, say: () => {}, readLine: async () => '4/0Anot-a-code-this-fake-issued' }).catch((e) => e)) as Error;
    expect(err.message).toContain('authorization code');
    expect(err.message).not.toContain('refresh token');
  });

  test('a refused OAuth client during the code exchange names the settings to fix, not a new login', async () => {
    fake.setMode({ kind: 'token_invalid_client' });
    const err = (await loginNoBrowser({ config, say: () => {}, readLine: async () => '4/0Aany-code-FAKE-0123456789' }).catch((e) => e)) as Error;
    expect(err.message).toContain('GOOGLE_CLIENT_ID');
    expect(err.message).not.toContain('start the login again');
  });

  test('a code exchange that brings no refresh token says so, not that Google refused the code', async () => {
    const said: string[] = [];
    fake.setMode({ kind: 'token_no_refresh' });
    const err = (await loginNoBrowser({
      config,
      say: (l) => said.push(l),
      readLine: async () => consent(said.find((l) => l.startsWith(fake.authUrl))!),
    }).catch((e) => e)) as Error;
    expect(err.message).toContain('no refresh token');
    expect(err.message).not.toContain('refused');
  });

  test('the token endpoint down during the code exchange is not reported as a refused code', async () => {
    const said: string[] = [];
    const err = (await loginNoBrowser({
      config,
      say: (l) => said.push(l),
      readLine: async () => {
        const url = await consent(said.find((l) => l.startsWith(fake.authUrl))!);
        fake.setMode({ kind: 'token_http500' });
        return url;
      },
    }).catch((e) => e)) as Error;
    expect(err.message).not.toContain('refused');
    expect(err.message).toContain('HTTP 500');
  });

  test('a blank line or a bad paste asks again instead of ending the login', async () => {
    const said: string[] = [];
    const answers: Array<() => Promise<string | null>> = [
      async () => '',
      async () => 'http://localhost:51121/oauth-callback?code=4/0Aother&state=not-this-one',
      async () => consent(said.find((l) => l.startsWith(fake.authUrl))!),
    ];
    const r = await loginNoBrowser({ config, say: (l) => said.push(l), readLine: () => answers.shift()!() });
    expect(r.email).toBe('login@example.com');
    expect(said.join('\n')).toContain('state mismatch');
  });

  test('the end of input without a valid paste fails with one line', async () => {
    const err = (await loginNoBrowser({ config, say: () => {}, readLine: async () => null }).catch((e) => e)) as Error;
    expect(err.message).toContain('no redirect URL');
  });

  test('a code copied out of the address bar (still URL-encoded) is decoded', () => {
    expect(parsePastedRedirect(' 4%2F0A-FAKE-auth-code ', 's')).toBe('4/0A-FAKE-auth-code');
  });

  test('an address without its http:// (as some browsers show it) is read as a URL', () => {
    expect(parsePastedRedirect('localhost:51121/oauth-callback?state=s&code=4%2F0A-FAKE-auth-code&scope=x', 's')).toBe('4/0A-FAKE-auth-code');
    expect(() => parsePastedRedirect('localhost:51121/oauth-callback?state=other&code=4%2F0A-FAKE-auth-code', 's')).toThrow('state mismatch');
  });

  test('a code or an address pasted twice on one line is read once', () => {
    expect(parsePastedRedirect('4/0A-FAKE-auth-code4/0A-FAKE-auth-code', 's')).toBe('4/0A-FAKE-auth-code');
    const url = 'http://localhost:51121/oauth-callback?state=s&code=4/0A-FAKE-auth-code&scope=x';
    expect(parsePastedRedirect(url + url, 's')).toBe('4/0A-FAKE-auth-code');
    const stateLast = 'http://localhost:51121/oauth-callback?code=4/0A-FAKE-auth-code&scope=x&state=s';
    expect(parsePastedRedirect(stateLast + stateLast, 's')).toBe('4/0A-FAKE-auth-code');
  });

  test('the query alone (code=…&state=…) is read as well', () => {
    expect(parsePastedRedirect('?state=s&code=4/0A-FAKE-auth-code', 's')).toBe('4/0A-FAKE-auth-code');
  });

  test.each([
    ['http://localhost:51121/oauth-callback?error=access_denied&state=s', 'access_denied'],
    ['http://localhost:51121/oauth-callback?state=s', 'no code'],
    ['short', 'does not look like'],
  ])('pasted %s is refused', (input, why) => {
    expect(() => parsePastedRedirect(input, 's')).toThrow(why);
  });
});

describe('browser login', () => {
  const browser = (url: string) => {
    // The fake consent page redirects to the callback, which the "browser" then loads.
    void fetch(url).catch(() => {});
    return true;
  };

  test('the callback server receives the code and the login completes', async () => {
    const port = freePort();
    const said: string[] = [];
    const r = await loginWithBrowser({ config, callbackPort: port, openBrowser: browser, say: (l) => said.push(l), timeoutMs: 5000 });
    expect(r.email).toBe('login@example.com');
    const url = new URL(said.find((l) => l.startsWith(fake.authUrl))!);
    expect(url.searchParams.get('redirect_uri')).toBe(`http://localhost:${port}/oauth-callback`);
  });

  test('a taken port moves to the next one and the redirect names the port really bound', async () => {
    const port = freePort();
    const squatter = Bun.serve({ port, hostname: '127.0.0.1', fetch: () => new Response('busy') });
    try {
      const said: string[] = [];
      const r = await loginWithBrowser({ config, callbackPort: port, openBrowser: browser, say: (l) => said.push(l), timeoutMs: 5000 });
      expect(r.email).toBe('login@example.com');
      const redirect = new URL(said.find((l) => l.startsWith(fake.authUrl))!).searchParams.get('redirect_uri')!;
      expect(Number(new URL(redirect).port)).toBeGreaterThan(port);
    } finally {
      squatter.stop(true);
    }
  });

  test('a port taken on [::1] only is taken too: `localhost` in the redirect may reach that one first', async () => {
    const port = freePort();
    let squatter: ReturnType<typeof Bun.serve>;
    try {
      squatter = Bun.serve({ port, hostname: '::1', fetch: () => new Response('another program') });
    } catch {
      return; // no IPv6 loopback here: nothing to protect
    }
    try {
      const said: string[] = [];
      const r = await loginWithBrowser({ config, callbackPort: port, openBrowser: browser, say: (l) => said.push(l), timeoutMs: 5000 });
      expect(r.email).toBe('login@example.com');
      const redirect = new URL(said.find((l) => l.startsWith(fake.authUrl))!).searchParams.get('redirect_uri')!;
      expect(Number(new URL(redirect).port)).not.toBe(port);
    } finally {
      squatter.stop(true);
    }
  });

  test('the requested port and the next ones all taken: one clear line naming the way out', async () => {
    let squatters: ReturnType<typeof Bun.serve>[] = [];
    for (let tries = 0; tries < 20 && squatters.length < 6; tries++) {
      for (const s of squatters) s.stop(true);
      squatters = [];
      const base = 20000 + Math.floor(Math.random() * 40000);
      try {
        for (let p = base; p < base + 6; p++) squatters.push(Bun.serve({ port: p, hostname: '127.0.0.1', fetch: () => new Response('busy') }));
      } catch {
        // one of them was in use: another range
      }
    }
    expect(squatters.length).toBe(6);
    try {
      const err = (await loginWithBrowser({ config, callbackPort: squatters[0]!.port as number, openBrowser: () => true, say: () => {}, timeoutMs: 1000 }).catch(
        (e) => e,
      )) as Error;
      expect(err.message).toContain('cannot listen for the Google callback');
      expect(err.message).toContain('--no-browser');
      expect(err.message).not.toContain('\n');
    } finally {
      for (const s of squatters) s.stop(true);
    }
  });

  test('a callback with the wrong state is refused and the real one still completes', async () => {
    const port = freePort();
    const said: string[] = [];
    const forged: number[] = [];
    const r = await loginWithBrowser({
      config,
      callbackPort: port,
      openBrowser: (url) => {
        void (async () => {
          const res = await fetch(`http://127.0.0.1:${port}/oauth-callback?code=4/0Aforged-code-xyz&state=wrong`);
          forged.push(res.status);
          await fetch(url);
        })();
        return true;
      },
      say: (l) => said.push(l),
      timeoutMs: 5000,
    });
    expect(forged).toEqual([400]);
    expect(r.email).toBe('login@example.com');
  });

  test('consent denied ends the login with a clear message', async () => {
    const port = freePort();
    const err = (await loginWithBrowser({
      config,
      callbackPort: port,
      openBrowser: (url) => {
        const state = new URL(url).searchParams.get('state');
        void fetch(`http://127.0.0.1:${port}/oauth-callback?error=access_denied&state=${state}`).catch(() => {});
        return true;
      },
      say: () => {},
      timeoutMs: 5000,
    }).catch((e) => e)) as Error;
    expect(err.message).toContain('access_denied');
  });

  test('an error callback with a foreign state does not end the login', async () => {
    const port = freePort();
    const forged: number[] = [];
    const r = await loginWithBrowser({
      config,
      callbackPort: port,
      openBrowser: (url) => {
        void (async () => {
          // Any web page can make the browser load this: it must not cancel the user's login.
          const res = await fetch(`http://127.0.0.1:${port}/oauth-callback?error=access_denied`);
          forged.push(res.status);
          await fetch(url);
        })();
        return true;
      },
      say: () => {},
      timeoutMs: 5000,
    });
    expect(forged).toEqual([400]);
    expect(r.email).toBe('login@example.com');
  });

  test('the callback server is closed once the login is over, whatever the outcome', async () => {
    const port = freePort();
    await loginWithBrowser({ config, callbackPort: port, openBrowser: browser, say: () => {}, timeoutMs: 5000 });
    const timedOut = freePort();
    await loginWithBrowser({ config, callbackPort: timedOut, openBrowser: () => false, say: () => {}, timeoutMs: 50 }).catch(() => {});
    const denied = freePort();
    await loginWithBrowser({
      config,
      callbackPort: denied,
      openBrowser: (url) => void fetch(`http://127.0.0.1:${denied}/oauth-callback?error=access_denied&state=${new URL(url).searchParams.get('state')}`).catch(() => {}),
      say: () => {},
      timeoutMs: 5000,
    }).catch(() => {});
    await Bun.sleep(20);
    for (const p of [port, timedOut, denied]) {
      for (const host of ['127.0.0.1', '[::1]']) {
        const res = await fetch(`http://${host}:${p}/oauth-callback`).catch((e) => e);
        expect(res).toBeInstanceOf(Error);
      }
    }
  });

  test('the pages the browser sees never carry a token or the code', async () => {
    const port = freePort();
    const pages: string[] = [];
    await loginWithBrowser({
      config,
      callbackPort: port,
      openBrowser: (url) => {
        void (async () => {
          const res = await fetch(url, { redirect: 'manual' });
          const to = res.headers.get('location')!;
          // What a browser also asks for, and a stale tab of an earlier attempt with its own code.
          pages.push(await (await fetch(`http://127.0.0.1:${port}/favicon.ico`)).text());
          pages.push(await (await fetch(to.replace(/state=[^&]+/, 'state=stale'))).text());
          pages.push(await (await fetch(to)).text());
        })();
        return true;
      },
      say: () => {},
      timeoutMs: 5000,
    });
    expect(pages.length).toBe(3);
    for (const p of pages) {
      expect(p).not.toMatch(/ya29\.|1\/\/|4\/0A/);
    }
  });

  test('a browser on another machine (SSH): the address it landed on, pasted here, completes the login', async () => {
    const port = freePort();
    let landed!: (line: string) => void;
    const pasted = new Promise<string>((r) => (landed = r));
    const said: string[] = [];
    const r = await loginWithBrowser({
      config,
      callbackPort: port,
      // The remote browser signs in, then lands on a localhost that is not this machine: nothing reaches the callback.
      openBrowser: (url) => {
        void fetch(url, { redirect: 'manual' }).then((res) => landed(`  ${res.headers.get('location')!}  `));
        return true;
      },
      readLine: async () => pasted,
      say: (l) => said.push(l),
      timeoutMs: 5000,
    });
    expect(r.email).toBe('login@example.com');
    expect(said.join('\n')).toContain('paste');
  });

  test('a pasted address from another login attempt is refused and the wait goes on', async () => {
    const port = freePort();
    const answers = ['http://localhost:1/oauth-callback?code=4/0Aother&state=not-this-one'];
    const said: string[] = [];
    const r = await loginWithBrowser({
      config,
      callbackPort: port,
      openBrowser: browser,
      readLine: async () => answers.shift() ?? new Promise<string | null>(() => {}),
      say: (l) => said.push(l),
      timeoutMs: 5000,
    });
    expect(r.email).toBe('login@example.com');
    expect(said.join('\n')).toContain('state mismatch');
  });

  test('a pasted consent refusal ends the browser login too, without waiting for the timeout', async () => {
    const answers = ['http://localhost:1/oauth-callback?error=access_denied'];
    const t0 = Date.now();
    const err = (await loginWithBrowser({
      config,
      callbackPort: freePort(),
      openBrowser: () => true,
      readLine: async () => answers.shift() ?? new Promise<string | null>(() => {}),
      say: () => {},
      timeoutMs: 3000,
    }).catch((e) => e)) as Error;
    expect(err.message).toContain('access_denied');
    expect(err.message).not.toContain('timed out');
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  test('no callback within the timeout fails with a hint', async () => {
    const err = (await loginWithBrowser({ config, callbackPort: freePort(), openBrowser: () => false, say: () => {}, timeoutMs: 100 }).catch((e) => e)) as Error;
    expect(err.message).toContain('timed out');
    expect(err.message).toContain('--no-browser');
  });
});
