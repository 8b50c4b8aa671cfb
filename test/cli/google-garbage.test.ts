// `accounts add --provider antigravity` when what answers at Google's token or userinfo address is
// not Google's JSON (a captive portal, a proxy's page, a bare `null`): one line that says Google
// could not be asked, with no JavaScript error in it, and nothing stored.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runCaptured, useTempDataDir } from './run-cli.ts';
import { type FakeGoogle, startFakeGoogle } from '../fakes/google.ts';

const dataDirOf = useTempDataDir('mcp-cli-google-garbage-');
const VARS = ['GOOGLE_OAUTH_TOKEN_URL', 'GOOGLE_USERINFO_URL', 'ANTIGRAVITY_ENDPOINTS'];
const saved = Object.fromEntries(VARS.map((k) => [k, process.env[k]]));
let google: FakeGoogle;
let garbage: ReturnType<typeof Bun.serve>;

const BODIES: Record<string, string> = { null: 'null', empty: '', array: '[1,2]', html: '<html>sign in to the wifi</html>' };

beforeAll(() => {
  google = startFakeGoogle();
  // /token/<kind> answers every POST with that body; /userinfo/<kind> every GET.
  garbage = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: (req) => new Response(BODIES[new URL(req.url).pathname.split('/')[2]!] ?? '', { headers: { 'content-type': 'application/json' } }) });
  process.env.ANTIGRAVITY_ENDPOINTS = google.endpoints.join(',');
});
afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  garbage.stop(true);
  await google.stop();
});

describe('a token or userinfo answer that is not a JSON object', () => {
  for (const kind of Object.keys(BODIES)) {
    test(`token endpoint answering ${kind}: "could not check", try again; nothing stored`, async () => {
      process.env.GOOGLE_OAUTH_TOKEN_URL = `http://127.0.0.1:${garbage.port}/token/${kind}`;
      process.env.GOOGLE_USERINFO_URL = google.userinfoUrl;
      const r = await runCaptured(['accounts', 'add', '--provider', 'antigravity', '--refresh-token', google.refreshTokenFor('g@example.com')]);
      expect(r.code).toBe(1);
      expect(r.err).toBe('mcp: could not check the refresh token with Google (Google token endpoint answered without an access token); try again\n');
      expect(existsSync(join(dataDirOf(), 'proxy.db'))).toBe(false);
    });

    test(`userinfo answering ${kind}: no e-mail, said as such; nothing stored`, async () => {
      process.env.GOOGLE_OAUTH_TOKEN_URL = google.tokenUrl;
      process.env.GOOGLE_USERINFO_URL = `http://127.0.0.1:${garbage.port}/userinfo/${kind}`;
      const r = await runCaptured(['accounts', 'add', '--provider', 'antigravity', '--refresh-token', google.refreshTokenFor('g@example.com')]);
      expect(r.code).toBe(1);
      expect(r.err).toBe('mcp: could not read the Google account e-mail: Google userinfo returned no e-mail\n');
      expect(existsSync(join(dataDirOf(), 'proxy.db'))).toBe(false);
    });
  }
});
