// `accounts add --provider zai` when what answers at the quota address is not Z.AI's quota: the key
// is added with a warning that names the setting to look at, never as if it had been checked.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { runCaptured, useTempDataDir } from './run-cli.ts';
import { FAKE_ZAI_KEY } from '../fixtures/fake-zai-key.ts';

useTempDataDir('mcp-cli-zai-quota-garbage-');
const saved = process.env.ZAI_QUOTA_URL;
let garbage: ReturnType<typeof Bun.serve>;

beforeAll(() => {
  garbage = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: (req) => {
      const path = new URL(req.url).pathname;
      if (path === '/missing') return new Response('Not Found', { status: 404 });
      return new Response(path === '/array' ? '[1,2]' : '{}', { headers: { 'content-type': 'application/json' } });
    },
  });
});
afterAll(() => {
  if (saved === undefined) delete process.env.ZAI_QUOTA_URL;
  else process.env.ZAI_QUOTA_URL = saved;
  garbage.stop(true);
});

describe('a quota address that answers something else', () => {
  for (const path of ['/empty-object', '/array']) {
    test(`a 200 without a quota reading (${path}) is a warning, not a key taken as checked`, async () => {
      process.env.ZAI_QUOTA_URL = `http://127.0.0.1:${garbage.port}${path}`;
      const r = await runCaptured(['accounts', 'add', '--provider', 'zai', '--api-key', `${FAKE_ZAI_KEY}${path}`]);
      expect(r.code).toBe(0);
      expect(r.err).toBe('warning: could not check the key with Z.AI (Z.AI quota answer has no data (is ZAI_QUOTA_URL right?)); added anyway, `mcp accounts verify` checks it again\n');
    });
  }

  test('a 404 there names ZAI_QUOTA_URL, not ZAI_BASE_URL', async () => {
    process.env.ZAI_QUOTA_URL = `http://127.0.0.1:${garbage.port}/missing`;
    const r = await runCaptured(['accounts', 'add', '--provider', 'zai', '--api-key', `${FAKE_ZAI_KEY}-404`]);
    expect(r.err).toContain(`Z.AI's quota endpoint http://127.0.0.1:${garbage.port}/missing answered HTTP 404: ZAI_QUOTA_URL is probably wrong`);
    expect(r.err).not.toContain('ZAI_BASE_URL is probably wrong');
  });
});
