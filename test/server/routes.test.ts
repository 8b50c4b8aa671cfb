import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { connect } from 'node:net';
import { AUTH, KEY, startHarness, testConfig, read, type Harness } from './stubs.ts';

let h: Harness;
beforeAll(() => {
  h = startHarness();
});
afterAll(() => h.stop());

async function get(path: string, headers: Record<string, string> = { 'x-api-key': KEY }, method = 'GET') {
  return fetch(h.base + path, { method, headers });
}

function expectEnvelope(json: any, type: string) {
  expect(json.type).toBe('error');
  expect(json.error.type).toBe(type);
  expect(typeof json.error.message).toBe('string');
  expect(json.request_id).toMatch(/^req_[A-Za-z0-9]{24}$/);
}

describe('auth', () => {
  test('x-api-key is accepted', async () => {
    expect((await get('/v1/models', { 'x-api-key': KEY })).status).toBe(200);
  });
  test('Authorization: Bearer is accepted', async () => {
    expect((await get('/v1/models', { authorization: `Bearer ${KEY}` })).status).toBe(200);
  });
  test('a wrong x-api-key beside the right Bearer token is accepted (an SDK sends both)', async () => {
    expect((await get('/v1/models', { 'x-api-key': 'an-unrelated-api-key', authorization: `Bearer ${KEY}` })).status).toBe(200);
  });
  test('a wrong key is 401 authentication_error with request-id header', async () => {
    const r = await get('/v1/models', { 'x-api-key': 'nope' });
    expect(r.status).toBe(401);
    const j = await read(r);
    expectEnvelope(j, 'authentication_error');
    expect(r.headers.get('request-id')).toBe(j.request_id);
    expect(JSON.stringify(j)).not.toContain(KEY);
  });
  test('a missing key is 401 on every protected route', async () => {
    for (const [m, p] of [
      ['POST', '/v1/messages'],
      ['POST', '/v1/messages/count_tokens'],
      ['GET', '/v1/models'],
      ['GET', '/v1/models/claude-model-1'],
      ['GET', '/account-limits'],
      ['POST', '/refresh-token'],
      ['GET', '/metrics'],
      ['POST', '/api/event_logging/batch'],
    ] as const) {
      const r = await fetch(h.base + p, { method: m });
      expect(r.status).toBe(401);
      expectEnvelope(await read(r), 'authentication_error');
    }
  });
  test('Basic auth, which a browser replays by itself after the dashboard, opens GET routes but no POST (no cross-site request spends the pool)', async () => {
    const basic = { authorization: `Basic ${btoa(`me:${KEY}`)}` };
    expect((await get('/account-limits', basic)).status).toBe(200);
    expect((await get('/metrics', basic)).status).toBe(200);
    for (const p of ['/v1/messages', '/v1/messages/count_tokens', '/refresh-token', '/v1/images/generate']) {
      // text/plain: what a plain HTML form on a foreign page can send without a preflight.
      const r = await fetch(h.base + p, { method: 'POST', headers: { ...basic, 'content-type': 'text/plain' }, body: '{"model":"claude-model-1","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}' });
      expect(r.status).toBe(401);
      const j = await read(r);
      expectEnvelope(j, 'authentication_error');
      expect(j.error.message).toContain('Basic auth is accepted on GET requests only');
    }
  });
  test('a wrong bearer token is refused', async () => {
    expect((await get('/v1/models', { authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await get('/v1/models', { authorization: KEY })).status).toBe(401);
  });
});

describe('open routes', () => {
  test('HEAD / and GET / answer 200 without a key', async () => {
    expect((await get('/', {}, 'HEAD')).status).toBe(200);
    const r = await get('/', {});
    expect(r.status).toBe(200);
    expect(r.headers.get('request-id')).toMatch(/^req_/);
  });
  test('/health without a key shows only the status', async () => {
    const r = await get('/health', {});
    expect(r.status).toBe(200);
    expect(await read(r)).toEqual({ status: 'ok' });
  });
  test('/health with a wrong key shows only the status', async () => {
    expect(await read(get('/health', { 'x-api-key': 'bad' }))).toEqual({ status: 'ok' });
  });
  test('/health with the key shows account details', async () => {
    const j = await read(get('/health'));
    expect(j.accounts).toHaveLength(1);
  });
});

describe('ops routes', () => {
  test('/account-limits answers JSON', async () => {
    const r = await get('/account-limits');
    expect(r.headers.get('content-type')).toContain('application/json');
    expect((await read(r)).accounts[0].id).toBe('acct-1');
  });
  test('/account-limits?format=table answers a text table', async () => {
    const r = await get('/account-limits?format=table');
    expect(r.headers.get('content-type')).toContain('text/plain');
    expect(await r.text()).toContain('acct-1   50%');
  });
  test('/account-limits with a format it does not know is a 400 envelope naming the ones it does', async () => {
    const r = await get('/account-limits?format=tabel');
    expect(r.status).toBe(400);
    const j = await read(r);
    expectEnvelope(j, 'invalid_request_error');
    expect(j.error.message).toContain('table');
    expect((await get('/account-limits?format=json')).status).toBe(200);
  });
  test('/refresh-token passes the account id on', async () => {
    const r = await fetch(`${h.base}/refresh-token?account=acct-1`, { method: 'POST', headers: { 'x-api-key': KEY } });
    expect(r.status).toBe(200);
    expect(await read(r)).toEqual({ refreshed: ['acct-1'] });
    const all = await fetch(`${h.base}/refresh-token`, { method: 'POST', headers: { 'x-api-key': KEY } });
    expect(await read(all)).toEqual({ refreshed: ['acct-1'] });
    expect(h.refreshCalls.slice(-2)).toEqual(['acct-1', undefined]);
  });
  test('/refresh-token errors from ops keep their envelope', async () => {
    const r = await fetch(`${h.base}/refresh-token?account=missing`, { method: 'POST', headers: { 'x-api-key': KEY } });
    expect(r.status).toBe(404);
    expectEnvelope(await read(r), 'not_found_error');
  });
  test('/metrics answers Prometheus text', async () => {
    const r = await get('/metrics');
    expect(r.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    expect(await r.text()).toContain('mcp_requests_total 1');
  });
  test('the text answers a Basic-auth browser may be made to load cross-site are never sniffed into a script or a page', async () => {
    const basic = { authorization: `Basic ${btoa(`me:${KEY}`)}` };
    for (const p of ['/metrics', '/account-limits?format=table', '/dashboard']) {
      const r = await get(p, basic);
      expect(r.status).toBe(200);
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    }
    const d = await get('/dashboard', basic);
    expect(d.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(d.headers.get('referrer-policy')).toBe('no-referrer');
  });
  test('telemetry batch is accepted and ignored', async () => {
    const r = await fetch(`${h.base}/api/event_logging/batch`, {
      method: 'POST',
      headers: AUTH,
      body: JSON.stringify({ events: [1, 2] }),
    });
    expect(r.status).toBe(200);
    expect(await read(r)).toEqual({ status: 'ok' });
  });
});

describe('models', () => {
  test('lists models in the Anthropic shape', async () => {
    const j = await read(get('/v1/models?limit=1000&beta=true'));
    expect(j.data).toHaveLength(5);
    expect(j).toMatchObject({ has_more: false, first_id: 'claude-model-0', last_id: 'claude-model-4' });
  });
  test('pages forward with limit and after_id', async () => {
    const p1 = await read(get('/v1/models?limit=2'));
    expect(p1.data.map((m: any) => m.id)).toEqual(['claude-model-0', 'claude-model-1']);
    expect(p1.has_more).toBe(true);
    const p2 = await read(get(`/v1/models?limit=2&after_id=${p1.last_id}`));
    expect(p2.data.map((m: any) => m.id)).toEqual(['claude-model-2', 'claude-model-3']);
    const p3 = await read(get(`/v1/models?limit=2&after_id=${p2.last_id}`));
    expect(p3.data.map((m: any) => m.id)).toEqual(['claude-model-4']);
    expect(p3.has_more).toBe(false);
  });
  test('pages backward with before_id', async () => {
    const j = await read(get('/v1/models?limit=2&before_id=claude-model-4'));
    expect(j.data.map((m: any) => m.id)).toEqual(['claude-model-2', 'claude-model-3']);
    expect(j.has_more).toBe(true);
  });
  test('a bad limit is 400', async () => {
    for (const l of ['0', '1001', 'abc', '1.5']) {
      const r = await get(`/v1/models?limit=${l}`);
      expect(r.status).toBe(400);
      expectEnvelope(await read(r), 'invalid_request_error');
    }
  });
  test('gets one model by id', async () => {
    const r = await get('/v1/models/claude-model-3');
    expect(r.status).toBe(200);
    expect((await read(r)).id).toBe('claude-model-3');
  });
  test('an unknown model id is 404 not_found_error', async () => {
    const r = await get('/v1/models/nope');
    expect(r.status).toBe(404);
    expectEnvelope(await read(r), 'not_found_error');
  });
  test('a model id that is not valid percent-encoding is a 404 envelope, not a 500', async () => {
    const r = await get('/v1/models/%E0%A4%A');
    expect(r.status).toBe(404);
    expectEnvelope(await read(r), 'not_found_error');
  });
});

describe('unknown routes and methods', () => {
  test('an unknown route is a 404 envelope', async () => {
    const r = await get('/v2/nothing');
    expect(r.status).toBe(404);
    const j = await read(r);
    expectEnvelope(j, 'not_found_error');
    expect(r.headers.get('request-id')).toBe(j.request_id);
  });
  // A base URL set to http://host:8080/v1 (as for OpenAI clients) makes the SDK ask for /v1/v1/messages,
  // one without it in a tool that appends /messages asks for /messages, and an OpenAI client asks for
  // /v1/chat/completions: "POST /v1/v1/messages not found" alone left the user guessing.
  test('a 404 for a path a client reaches by mistake says which path was meant', async () => {
    const message = async (p: string) => ((await read(await get(p, { 'x-api-key': KEY, 'content-type': 'application/json' }, 'POST'))) as any).error.message;
    expect(await message('/v1/v1/messages')).toBe(
      'POST /v1/v1/messages not found: did you mean /v1/messages? (a base URL such as ANTHROPIC_BASE_URL is the server alone, e.g. http://127.0.0.1:8080, without /v1)',
    );
    expect(await message('/messages')).toBe('POST /messages not found: did you mean /v1/messages?');
    expect(await message('/v1/chat/completions')).toBe(
      "POST /v1/chat/completions not found: this is Anthropic's Messages API (POST /v1/messages), not OpenAI's",
    );
    expect(await message('/v2/nothing')).toBe('POST /v2/nothing not found');
  });
  test('a base URL that already ends in /v1 (the SDKs add it) is named as the cause of the 404', async () => {
    const r = await get('/v1/v1/messages?beta=true', { 'x-api-key': KEY, 'content-type': 'application/json' }, 'POST');
    expect(r.status).toBe(404);
    const j = await read(r);
    expectEnvelope(j, 'not_found_error');
    expect(j.error.message).toContain('POST /v1/v1/messages not found');
    expect(j.error.message).toMatch(/base URL .*without .*\/v1/);
    // Only the doubled prefix gets the hint.
    expect((await read(await get('/v2/nothing'))).error.message).toBe('GET /v2/nothing not found');
  });
  // The README says so: the key is checked first, so a caller without it learns nothing of the routes.
  test('without the key, an unknown route and a wrong method are a 401 like any other request', async () => {
    for (const [path, method] of [['/v2/nothing', 'GET'], ['/v1/messages', 'DELETE']] as const) {
      const r = await get(path, {}, method);
      expect(r.status).toBe(401);
      expectEnvelope(await read(r), 'authentication_error');
    }
  });
  test('a wrong method on a known route is a 405 envelope with allow', async () => {
    const r = await get('/v1/messages');
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('POST');
    expectEnvelope(await read(r), 'invalid_request_error');
  });
  test("the 405's allow names HEAD wherever GET is allowed, since HEAD is answered there too", async () => {
    for (const p of ['/v1/models', '/v1/models/claude-model-1', '/metrics', '/account-limits']) {
      expect((await get(p, { 'x-api-key': KEY }, 'HEAD')).status).toBe(200);
      const r = await get(p, { 'x-api-key': KEY }, 'PUT');
      expect(r.status).toBe(405);
      expect(r.headers.get('allow')).toBe('GET, HEAD');
    }
  });
  test('a trailing slash is the same path to auth and to the 405 as it is to the router', async () => {
    // The router serves /health/ as /health: it is as open, and /dashboard/ asks the browser for the key as well.
    const h2 = await get('/health/', {});
    expect(h2.status).toBe(200);
    expect(await read(h2)).toEqual({ status: 'ok' });
    const d = await get('/dashboard/', {});
    expect(d.status).toBe(401);
    expect(d.headers.get('www-authenticate')).toStartWith('Basic ');
    const r = await get('/metrics/', { 'x-api-key': KEY }, 'PUT');
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('GET, HEAD');
    expect((await get('/v1/models/', {})).status).toBe(401);
  });
  test('a short Host header (a bare service name like "api") routes by the real path', async () => {
    // The router used to look for the path from the 12th character of the URL on, which assumed a
    // host of 4+ characters: behind `Host: api`, /v1/models/{id} was a 404 and /health/ served /.
    const port = Number(new URL(h.base).port);
    const raw = (method: string, path: string, headers = `x-api-key: ${KEY}\r\n`): Promise<string> =>
      new Promise((resolve, reject) => {
        let out = '';
        const s = connect(port, '127.0.0.1', () =>
          s.write(`${method} ${path} HTTP/1.1\r\nHost: api\r\n${headers}Content-Length: 0\r\nConnection: close\r\n\r\n`),
        );
        s.on('data', (d) => (out += d));
        s.on('close', () => resolve(out));
        s.on('error', reject);
      });
    const statusOf = (res: string): string => res.slice(0, res.indexOf('\r\n'));
    const bodyOf = (res: string): string => res.slice(res.indexOf('\r\n\r\n') + 4);
    const model = await raw('GET', '/v1/models/claude-model-1');
    expect(statusOf(model)).toBe('HTTP/1.1 200 OK');
    expect(JSON.parse(bodyOf(model)).id).toBe('claude-model-1');
    expect(JSON.parse(bodyOf(await raw('GET', '/health/', '')))).toEqual({ status: 'ok' });
    const put = await raw('PUT', '/v1/messages?beta=true');
    expect(statusOf(put)).toStartWith('HTTP/1.1 405');
    expect(JSON.parse(bodyOf(put)).error.message).toBe('method PUT is not allowed on /v1/messages');
  });
  test('every response gets a fresh request-id', async () => {
    const a = (await get('/')).headers.get('request-id');
    const b = (await get('/')).headers.get('request-id');
    expect(a).not.toBe(b);
  });
});

describe('cors', () => {
  test('preflight is answered when CORS is enabled', async () => {
    const c = startHarness(testConfig({ CORS_ENABLED: 'true', CORS_ALLOW_ORIGIN: 'https://x.example' }));
    try {
      const r = await fetch(`${c.base}/v1/messages`, { method: 'OPTIONS' });
      expect(r.status).toBe(204);
      expect(r.headers.get('access-control-allow-origin')).toBe('https://x.example');
      expect(r.headers.get('access-control-allow-headers')).toContain('x-api-key');
      const g = await fetch(`${c.base}/v1/models`, { headers: { 'x-api-key': KEY } });
      expect(g.headers.get('access-control-allow-origin')).toBe('https://x.example');
      const e = await fetch(`${c.base}/v1/models`);
      expect(e.status).toBe(401);
      expect(e.headers.get('access-control-allow-origin')).toBe('https://x.example');
    } finally {
      c.stop();
    }
  });
  test("the preflight allows the headers Anthropic's browser SDK sends (x-stainless-*, direct-browser-access) unless CORS_ALLOW_HEADERS narrows them", async () => {
    const asked = 'anthropic-dangerous-direct-browser-access,anthropic-version,content-type,x-api-key,x-stainless-arch,x-stainless-retry-count';
    const preflight = (base: string) =>
      fetch(`${base}/v1/messages`, {
        method: 'OPTIONS',
        headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': asked },
      });
    const open = startHarness(testConfig({ CORS_ENABLED: 'true' }));
    const narrow = startHarness(testConfig({ CORS_ENABLED: 'true', CORS_ALLOW_HEADERS: 'content-type, x-api-key' }));
    try {
      const r = await preflight(open.base);
      expect(r.status).toBe(204);
      expect(r.headers.get('access-control-allow-headers')).toBe(asked);
      expect(r.headers.get('vary')).toContain('access-control-request-headers');
      // Nothing asked: the usual ones.
      const plain = await fetch(`${open.base}/v1/messages`, { method: 'OPTIONS' });
      expect(plain.headers.get('access-control-allow-headers')).toContain('x-api-key');
      expect((await preflight(narrow.base)).headers.get('access-control-allow-headers')).toBe('content-type, x-api-key');
    } finally {
      open.stop();
      narrow.stop();
    }
  });
  test('without CORS no allow-origin header is sent', async () => {
    const r = await get('/v1/models');
    expect(r.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('answers that leave an upload unread', () => {
  // Bun keeps a connection whose body was never read, and a graceful stop (SIGTERM) then waited out
  // its whole grace period for a client that had long had its 404.
  for (const [name, path, headers] of [
    ['an unknown route (the Files API)', '/v1/files', AUTH],
    ['a wrong proxy key', '/v1/messages', { ...AUTH, 'x-api-key': 'FAKE-wrong' }],
    ['a wrong content-type', '/v1/messages', { ...AUTH, 'content-type': 'application/octet-stream' }],
  ] as const) {
    test(`${name}: the connection is closed, so a graceful stop is not held up`, async () => {
      const own = startHarness();
      try {
        const r = await fetch(own.base + path, { method: 'POST', headers, body: new Uint8Array(1 << 20) });
        expect(r.status).toBeGreaterThanOrEqual(400);
        await r.text();
        const stopped = await Promise.race([own.stopGracefully().then(() => true), Bun.sleep(2_000).then(() => false)]);
        expect(stopped).toBe(true);
      } finally {
        own.stop();
      }
    });
  }
});
