// The Host header is part of request.url, but Bun routes by the request line alone: a Host with a
// `/`, `?` or `#` in it used to make the auth check see an open path (`/health`, `/`) while the
// router served /metrics, /dashboard or /refresh-token without the key.
import { afterEach, describe, expect, test } from 'bun:test';
import { KEY, rawConnection, startHarness, type Harness } from './stubs.ts';

let h: Harness | undefined;
afterEach(() => {
  h?.stop();
  h = undefined;
});

/** Sends one raw HTTP/1.1 request and returns the status line's code and the body. */
async function raw(h: Harness, head: string): Promise<{ status: number; text: string }> {
  const c = await rawConnection(h);
  c.sock.write(`${head}\r\n`);
  const t0 = Date.now();
  while (!c.closed() && !/\r\n\r\n/.test(c.reply()) && Date.now() - t0 < 3000) await Bun.sleep(10);
  await Bun.sleep(30);
  c.sock.end();
  const reply = c.reply();
  return { status: Number(reply.slice(9, 12)), text: reply.slice(reply.indexOf('\r\n\r\n') + 4) };
}

describe('a Host header that is not a host', () => {
  const routes = [
    'GET /metrics',
    'GET /dashboard',
    'GET /account-limits',
    'GET /v1/models',
    'POST /refresh-token',
    'POST /api/event_logging/batch',
  ];
  const hosts = ['x/health?', 'x/?', 'x/health#', 'a//b/health?', 'x/health/?'];
  for (const route of routes) {
    test(`opens nothing without the key: ${route}`, async () => {
      h = startHarness();
      for (const host of hosts) {
        const r = await raw(h, `${route} HTTP/1.1\r\nhost: ${host}\r\ncontent-length: 0\r\n`);
        expect({ host, status: r.status }).toEqual({ host, status: 400 });
        expect(JSON.parse(r.text).error.type).toBe('invalid_request_error');
        expect(r.text).not.toContain('mcp_requests_total');
      }
      expect(h.refreshCalls).toEqual([]);
    });
  }

  // Without a Host (HTTP/1.0) or with an empty one, request.url is the bare path (`/metrics`), which
  // the auth hook used to read as `/`, an open path.
  for (const route of routes) {
    test(`no Host or an empty Host opens nothing without the key: ${route}`, async () => {
      h = startHarness();
      for (const head of [`${route} HTTP/1.0\r\ncontent-length: 0\r\n`, `${route} HTTP/1.1\r\nhost:\r\ncontent-length: 0\r\n`]) {
        const r = await raw(h, head);
        expect({ head, status: r.status }).toEqual({ head, status: 401 });
        expect(r.text).not.toContain('mcp_requests_total');
      }
      expect(h.refreshCalls).toEqual([]);
    });
  }

  test('no Host or an empty Host still reaches the open paths, and the others with the key', async () => {
    h = startHarness();
    expect((await raw(h, 'GET /health HTTP/1.0\r\n')).status).toBe(200);
    expect((await raw(h, 'GET /health HTTP/1.1\r\nhost:\r\n')).status).toBe(200);
    expect((await raw(h, `GET /metrics HTTP/1.0\r\nx-api-key: ${KEY}\r\n`)).status).toBe(200);
  });

  test('the open paths are refused with it too, with a clear error in the envelope', async () => {
    h = startHarness();
    const r = await raw(h, 'GET /health HTTP/1.1\r\nhost: x/health?\r\n');
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text).error.message).toContain('Host');
  });

  test('real hosts still work: a name, a service name with _, an IPv4 or IPv6 address with a port', async () => {
    h = startHarness();
    for (const host of ['localhost', 'mcp_proxy:8080', '127.0.0.1:8080', '[::1]:8080', 'proxy.example.com']) {
      const open = await raw(h, `GET /health HTTP/1.1\r\nhost: ${host}\r\n`);
      expect({ host, status: open.status }).toEqual({ host, status: 200 });
      const keyed = await raw(h, `GET /metrics HTTP/1.1\r\nhost: ${host}\r\nx-api-key: ${KEY}\r\n`);
      expect({ host, status: keyed.status }).toEqual({ host, status: 200 });
    }
  });
});
