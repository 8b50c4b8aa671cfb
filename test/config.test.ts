// The config is the one place flags and environment become settings: flags beat environment, the
// environment beats defaults, and every bad value is refused with a message naming its variable.
import { describe, expect, test } from 'bun:test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, dataDirFrom, exposureWarning, loadConfig } from '../src/config.ts';

const KEY = { PROXY_API_KEY: 'k-0123456789' };

describe('defaults', () => {
  test('the original project\'s defaults, with the key the only requirement', () => {
    const c = loadConfig({ ...KEY, HOME: '/home/u' });
    expect(c).toMatchObject({
      port: 8080,
      bindAddress: '0.0.0.0',
      debug: false,
      fallback: false,
      softLimitEnabled: true,
      softLimitThreshold: 0.2,
      idleTimeoutSec: 120,
      upstreamIdleTimeoutSec: 120,
      pingIntervalSec: 15,
      maxWaitSec: 120,
      maxAttempts: 5,
      maxConcurrentPerAccount: 0,
      quotaPollIntervalSec: 300,
      logFormat: 'pretty',
    });
    expect(c.dbPath).toBe('/home/u/.config/multi-claude-proxy/proxy.db');
    expect(c.antigravity.endpoints).toEqual(['https://daily-cloudcode-pa.googleapis.com', 'https://cloudcode-pa.googleapis.com']);
    expect(c.antigravity.claudeThinkingReplay).toBe('inline');
    expect(c.antigravity.aiCredits).toBe(false); // spending credits costs money: only when asked
    expect(Object.isFrozen(c)).toBe(true);
  });

  test('PROXY_API_KEY: one key, or several separated by commas (trimmed; blanks and repeats dropped)', () => {
    expect(loadConfig(KEY).proxyApiKeys).toEqual(['k-0123456789']);
    expect(loadConfig({ PROXY_API_KEY: ' key with spaces & $dollar ' }).proxyApiKeys).toEqual(['key with spaces & $dollar']);
    expect(loadConfig({ PROXY_API_KEY: 'old-key-1234, new-key-5678,,old-key-1234 ,' }).proxyApiKeys).toEqual(['old-key-1234', 'new-key-5678']);
  });

  test('the data directory: MCP_DATA_DIR, else XDG_CONFIG_HOME, else ~/.config', () => {
    expect(dataDirFrom({ MCP_DATA_DIR: '/d', XDG_CONFIG_HOME: '/x', HOME: '/h' })).toBe('/d');
    expect(dataDirFrom({ XDG_CONFIG_HOME: '/x', HOME: '/h' })).toBe('/x/multi-claude-proxy');
    expect(dataDirFrom({ HOME: '/h' })).toBe('/h/.config/multi-claude-proxy');
  });

  test('a leading ~ in a path setting is the home directory, as a .env or the service env file (no shell) give it', () => {
    expect(dataDirFrom({ MCP_DATA_DIR: '~/mcp-data', HOME: '/h' })).toBe('/h/mcp-data');
    expect(dataDirFrom({ MCP_DATA_DIR: '~', HOME: '/h' })).toBe('/h');
    expect(dataDirFrom({ MCP_DATA_DIR: '~/mcp-data' })).toBe(join(homedir(), 'mcp-data'));
    // Only a ~ that starts the path and stands alone: another user's home, or a ~ inside a name, stays.
    expect(dataDirFrom({ MCP_DATA_DIR: '~bob/data', HOME: '/h' })).toBe('~bob/data');
    expect(dataDirFrom({ MCP_DATA_DIR: '/srv/~/data', HOME: '/h' })).toBe('/srv/~/data');
    const c = loadConfig({ ...KEY, HOME: '/h', MCP_DATA_DIR: '~/d', ACCOUNTS_CONFIG_PATH: '~/.config/multi-claude-proxy/accounts.json' });
    expect(c.dbPath).toBe('/h/d/proxy.db');
    expect(c.accountsConfigPath).toBe('/h/.config/multi-claude-proxy/accounts.json');
    const dir = mkdtempSync(join(tmpdir(), 'mcp-config-home-'));
    try {
      writeFileSync(join(dir, 'model.json'), '{"sonnet":"gemini-3-flash"}');
      expect(loadConfig({ ...KEY, HOME: dir, MODEL_MAP: '~/model.json' }).modelMap).toEqual({ sonnet: 'gemini-3-flash' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('upgrading from an mcp that took the ~ of MCP_DATA_DIR literally', () => {
  // Before ~ meant home, MCP_DATA_DIR=~/mcp from a .env file kept the database in <cwd>/~/mcp.
  test('is refused while the accounts are there and not in the home directory, saying where they are and what to do', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'mcp-config-cwd-'));
    const home = mkdtempSync(join(tmpdir(), 'mcp-config-home-'));
    try {
      mkdirSync(join(cwd, '~', 'mcp'), { recursive: true });
      writeFileSync(join(cwd, '~', 'mcp', 'proxy.db'), '');
      const env = { ...KEY, HOME: home, MCP_DATA_DIR: '~/mcp' };
      const left = join(cwd, '~', 'mcp');
      expect(() => loadConfig(env, {}, { cwd })).toThrow(
        new ConfigError(
          `MCP_DATA_DIR=~/mcp is ${join(home, 'mcp')} (a leading ~ is the home directory), which holds no proxy.db, but ${join(left, 'proxy.db')} holds the accounts an older mcp kept there, taking the ~ as a directory name: move ${left} to ${join(home, 'mcp')}, or set MCP_DATA_DIR=${left}`,
        ),
      );
      // Once moved (or with a database in the home directory already), nothing is said.
      mkdirSync(join(home, 'mcp'));
      writeFileSync(join(home, 'mcp', 'proxy.db'), '');
      expect(loadConfig(env, {}, { cwd }).dbPath).toBe(join(home, 'mcp', 'proxy.db'));
      // With no database left behind, a ~ path is simply the home directory's.
      expect(loadConfig({ ...env, MCP_DATA_DIR: '~/other' }, {}, { cwd }).dbPath).toBe(join(home, 'other', 'proxy.db'));
    } finally {
      rmSync(cwd, { recursive: true, force: true });
      rmSync(home, { recursive: true, force: true });
    }
  });
});

describe('precedence', () => {
  test('flags beat the environment, which beats the defaults', () => {
    const env = { ...KEY, PORT: '9000', DEBUG: 'false', ENABLE_FALLBACK: '0', SOFT_LIMIT_THRESHOLD: '0.3' };
    expect(loadConfig(env)).toMatchObject({ port: 9000, debug: false, fallback: false, softLimitThreshold: 0.3 });
    const c = loadConfig(env, { port: '7000', debug: true, fallback: true, softLimit: '0.5' });
    expect(c).toMatchObject({ port: 7000, debug: true, fallback: true, softLimitThreshold: 0.5 });
    expect(loadConfig(env, { noSoftLimit: true }).softLimitEnabled).toBe(false);
  });

  test('--soft-limit with a threshold turns soft limits on even when SOFT_LIMIT_ENABLED=false', () => {
    const c = loadConfig({ ...KEY, SOFT_LIMIT_ENABLED: 'false' }, { softLimit: '0.3' });
    expect(c).toMatchObject({ softLimitEnabled: true, softLimitThreshold: 0.3 });
    expect(loadConfig({ ...KEY, SOFT_LIMIT_ENABLED: 'false' }).softLimitEnabled).toBe(false);
  });

  test('UPSTREAM_HTTP_CLIENT: native by default, fetch when asked or when an HTTP(S)_PROXY is set (http1.ts ignores proxies)', () => {
    expect(loadConfig({ ...KEY }).upstreamHttpClient).toBe('native');
    expect(loadConfig({ ...KEY, UPSTREAM_HTTP_CLIENT: 'fetch' }).upstreamHttpClient).toBe('fetch');
    expect(loadConfig({ ...KEY, HTTPS_PROXY: 'http://127.0.0.1:3128' }).upstreamHttpClient).toBe('fetch');
    expect(loadConfig({ ...KEY, HTTPS_PROXY: 'http://127.0.0.1:3128', UPSTREAM_HTTP_CLIENT: 'native' }).upstreamHttpClient).toBe('native');
  });

  test('the Antigravity User-Agent: pinned only when the user set it; the version manifest off on request', () => {
    const plain = loadConfig({ PROXY_API_KEY: 'k' });
    expect(plain.antigravity).toMatchObject({ userAgentPinned: false, versionUrl: expect.stringMatching(/^https:\/\/.*\.yml$/) });
    const own = loadConfig({ PROXY_API_KEY: 'k', ANTIGRAVITY_USER_AGENT: ' antigravity/hub/3.0.0 linux/amd64 ', ANTIGRAVITY_VERSION_URL: 'OFF' });
    expect(own.antigravity).toMatchObject({ userAgent: 'antigravity/hub/3.0.0 linux/amd64', userAgentPinned: true, versionUrl: null });
  });

  test('ANTIGRAVITY_ENDPOINTS is a comma-separated list in fallback order', () => {
    const c = loadConfig({ ...KEY, ANTIGRAVITY_ENDPOINTS: ' http://127.0.0.1:1/a , http://127.0.0.1:2/b ' });
    expect(c.antigravity.endpoints).toEqual(['http://127.0.0.1:1/a', 'http://127.0.0.1:2/b']);
  });

  test("ZAI_BASE_URL for the China region (bigmodel.cn) takes the quota endpoint with it: keys are region-bound, and the quota call checks them", () => {
    const cn = loadConfig({ ...KEY, ZAI_BASE_URL: 'https://open.bigmodel.cn/api/anthropic/' });
    expect(cn.zai.baseUrl).toBe('https://open.bigmodel.cn/api/anthropic');
    expect(cn.zai.quotaUrl).toBe('https://open.bigmodel.cn/api/monitor/usage/quota/limit');
    // An explicit ZAI_QUOTA_URL wins; a base URL of another shape (a relay) leaves the default.
    expect(loadConfig({ ...KEY, ZAI_BASE_URL: 'https://open.bigmodel.cn/api/anthropic', ZAI_QUOTA_URL: 'http://127.0.0.1:9/q' }).zai.quotaUrl).toBe('http://127.0.0.1:9/q');
    expect(loadConfig({ ...KEY, ZAI_BASE_URL: 'https://relay.example/glm' }).zai.quotaUrl).toBe('https://api.z.ai/api/monitor/usage/quota/limit');
    expect(loadConfig({ ...KEY }).zai.quotaUrl).toBe('https://api.z.ai/api/monitor/usage/quota/limit');
  });

  test('ZAI_BASE_URL written the way other tools take it (ending in /v1 or /v1/messages) is the same endpoint, not a 404 on /v1/v1/messages', () => {
    for (const raw of ['https://api.z.ai/api/anthropic/v1', 'https://api.z.ai/api/anthropic/v1/', 'https://api.z.ai/api/anthropic/v1/messages']) {
      const c = loadConfig({ ...KEY, ZAI_BASE_URL: raw });
      expect(c.zai.baseUrl).toBe('https://api.z.ai/api/anthropic');
      expect(c.zai.quotaUrl).toBe('https://api.z.ai/api/monitor/usage/quota/limit');
    }
  });

  test('MODEL_MAP and FALLBACK_MAP take inline JSON or a path to a JSON file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-config-'));
    try {
      const file = join(dir, 'fallbacks.json');
      writeFileSync(file, JSON.stringify({ 'glm-5': 'glm-4.6' }));
      const c = loadConfig({ ...KEY, MODEL_MAP: '{"sonnet":"gemini-3-flash"}', FALLBACK_MAP: file });
      expect(c.modelMap).toEqual({ sonnet: 'gemini-3-flash' });
      expect(c.fallbackMap).toEqual({ 'glm-5': 'glm-4.6' });
      // A file saved by an editor that writes a byte-order mark, with space around the ids.
      writeFileSync(file, '\uFEFF{"opus": " gemini-pro-agent "}\n');
      expect(loadConfig({ ...KEY, MODEL_MAP: file }).modelMap).toEqual({ opus: 'gemini-pro-agent' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('BIND_ADDRESS', () => {
  test('takes IPv4, IPv6 (bracketed or not) and host names', () => {
    for (const a of ['0.0.0.0', '127.0.0.1', '::', '::1', '[::1]', 'localhost', 'proxy.internal', 'host-1.example.com']) {
      expect(loadConfig({ ...KEY, BIND_ADDRESS: a }).bindAddress).toBe(a);
    }
  });
});

describe('bad values are refused, naming the variable', () => {
  // `export` does nothing useful in PowerShell or cmd: a Windows user was told a command they cannot run.
  test('no key: the way to set it is the one of the shell this platform has', () => {
    expect(() => loadConfig({}, {}, { platform: 'win32' })).toThrow('PROXY_API_KEY is not set: $env:PROXY_API_KEY = "<a secret of your choice>" in PowerShell');
    expect(() => loadConfig({}, {}, { platform: 'darwin' })).toThrow('PROXY_API_KEY is not set: export PROXY_API_KEY=<a secret of your choice>');
  });

  const cases: Array<[string, Record<string, string>, Record<string, string | boolean>, RegExp]> = [
    ['no key', {}, {}, /PROXY_API_KEY is not set/],
    ['only commas and blanks for a key', { PROXY_API_KEY: ' , ,' }, {}, /PROXY_API_KEY is not set/],
    ['port 70000', { PORT: '70000' }, {}, /PORT must be between 0 and 65535, got 70000/],
    ['port "http"', { PORT: 'http' }, {}, /PORT must be a whole number/],
    ['--port beats PORT and is named', { PORT: '80' }, { port: '-1' }, /--port must be between/],
    ['threshold "abc"', { SOFT_LIMIT_THRESHOLD: 'abc' }, {}, /SOFT_LIMIT_THRESHOLD must be a number between 0 and 1/],
    ['threshold 1.5', { SOFT_LIMIT_THRESHOLD: '1.5' }, {}, /SOFT_LIMIT_THRESHOLD must be between 0 and 1, got 1.5/],
    ['--soft-limit 2', {}, { softLimit: '2' }, /--soft-limit must be between 0 and 1/],
    ['DEBUG "maybe"', { DEBUG: 'maybe' }, {}, /DEBUG must be true or false/],
    ['IDLE_TIMEOUT_SEC 0', { IDLE_TIMEOUT_SEC: '0' }, {}, /IDLE_TIMEOUT_SEC must be between 1 and 255/],
    ['IDLE_TIMEOUT_SEC 1000 (Bun caps it)', { IDLE_TIMEOUT_SEC: '1000' }, {}, /IDLE_TIMEOUT_SEC must be between 1 and 255/],
    ['READ_TIMEOUT_SEC 1.5', { READ_TIMEOUT_SEC: '1.5' }, {}, /READ_TIMEOUT_SEC must be a whole number/],
    ['MAX_ATTEMPTS 0', { MAX_ATTEMPTS: '0' }, {}, /MAX_ATTEMPTS must be between 1 and 50/],
    ['MAX_CONCURRENT_PER_ACCOUNT -1', { MAX_CONCURRENT_PER_ACCOUNT: '-1' }, {}, /MAX_CONCURRENT_PER_ACCOUNT must be/],
    ['MAX_CONCURRENT_PER_ACCOUNT "two"', { MAX_CONCURRENT_PER_ACCOUNT: 'two' }, {}, /MAX_CONCURRENT_PER_ACCOUNT must be a whole number/],
    ['CORS_ENABLED "sure"', { CORS_ENABLED: 'sure' }, {}, /CORS_ENABLED must be true or false/],
    ['ANTIGRAVITY_AI_CREDITS "lots"', { ANTIGRAVITY_AI_CREDITS: 'lots' }, {}, /ANTIGRAVITY_AI_CREDITS must be true or false/],
    ['ZAI_BASE_URL not a URL', { ZAI_BASE_URL: 'api.z.ai' }, {}, /ZAI_BASE_URL must be an http\(s\) URL/],
    ['ANTIGRAVITY_VERSION_URL not a URL', { ANTIGRAVITY_VERSION_URL: 'manifest.yml' }, {}, /ANTIGRAVITY_VERSION_URL must be an http\(s\) URL/],
    ['ZAI_STRIP_BETAS "some"', { ZAI_STRIP_BETAS: 'some' }, {}, /ZAI_STRIP_BETAS must be true or false/],
    ['an endpoint not a URL', { ANTIGRAVITY_ENDPOINTS: 'https://ok.example,ftp://no' }, {}, /ANTIGRAVITY_ENDPOINTS must be an http\(s\) URL/],
    ['MODEL_MAP not JSON', { MODEL_MAP: '{sonnet: x}' }, {}, /MODEL_MAP/],
    // "must be a JSON object of strings" alone left a user hunting for the stray comma.
    ['MODEL_MAP with a trailing comma says what JSON found wrong', { MODEL_MAP: '{"sonnet":"gemini-pro-agent",}' }, {}, /^MODEL_MAP is not valid JSON \(JSON Parse error: [^)]+\): give a JSON object of strings, or a path to one$/],
    ['MODEL_MAP with a number', { MODEL_MAP: '{"sonnet": 5}' }, {}, /MODEL_MAP: value for "sonnet" must be a string/],
    ['MODEL_MAP with an empty target (would send "" upstream)', { MODEL_MAP: '{"sonnet": " "}' }, {}, /MODEL_MAP: value for "sonnet" must be a model id/],
    ['FALLBACK_MAP with an empty target', { FALLBACK_MAP: '{"glm-5": ""}' }, {}, /FALLBACK_MAP: value for "glm-5" must be a model id/],
    ['LOG_FORMAT "xml"', { LOG_FORMAT: 'xml' }, {}, /LOG_FORMAT must be "pretty" or "json"/],
    ['ANTIGRAVITY_THINKING_REPLAY "both"', { ANTIGRAVITY_THINKING_REPLAY: 'both' }, {}, /ANTIGRAVITY_THINKING_REPLAY/],
    ['BIND_ADDRESS 999.1.1.1 (not an IPv4 address)', { BIND_ADDRESS: '999.1.1.1' }, {}, /^BIND_ADDRESS must be an IP address \(0\.0\.0\.0 for every interface, 127\.0\.0\.1 for this machine only\) or a host name, got "999\.1\.1\.1"$/],
    ['BIND_ADDRESS ::g (not an IPv6 address)', { BIND_ADDRESS: '::g' }, {}, /^BIND_ADDRESS must be an IP address/],
    ['BIND_ADDRESS "my host" (not a host name)', { BIND_ADDRESS: 'my host' }, {}, /^BIND_ADDRESS must be an IP address/],
    ['UPSTREAM_HTTP_CLIENT "curl"', { UPSTREAM_HTTP_CLIENT: 'curl' }, {}, /UPSTREAM_HTTP_CLIENT must be "native" or "fetch"/],
  ];
  for (const [name, env, flags, message] of cases) {
    test(name, () => {
      const withKey = name === 'no key' ? env : { ...KEY, ...env };
      let err: unknown;
      try {
        loadConfig(withKey, flags);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain(KEY.PROXY_API_KEY);
      expect((err as Error).message.split('\n')).toHaveLength(1);
    });
  }
});

test('a URL setting refused for its form does not quote a user and password written in it', () => {
  const password = ['FAKE', 'url', 'password', '0123'].join('-');
  for (const raw of [`user:${password}@api.z.ai/api/anthropic`, `ftp://user:${password}@api.z.ai/`]) {
    let err: unknown;
    try {
      loadConfig({ ...KEY, ZAI_BASE_URL: raw });
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).toStartWith('ZAI_BASE_URL must be an http(s) URL, got "');
    expect((err as Error).message).toContain('***@api.z.ai');
    expect((err as Error).message).not.toContain(password);
  }
});

test('every bad setting is named in one refusal, on one line, the flags typed first', () => {
  let err: unknown;
  try {
    loadConfig({ DEBUG: 'maybe', LOG_FORMAT: 'xml' }, { port: '70000' });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  const message = (err as Error).message;
  expect(message.split('\n')).toHaveLength(1);
  expect(message).toStartWith('--port must be between 0 and 65535, got 70000; ');
  expect(message).toContain('PROXY_API_KEY is not set');
  expect(message).toContain('DEBUG must be true or false');
  expect(message).toContain('LOG_FORMAT must be "pretty" or "json"');
});

describe('exposureWarning: a short key on an address other machines reach', () => {
  const long = ['FAKE', 'long', 'random', 'proxy', 'key', '0123'].join('-');
  test("the README's example key on the default 0.0.0.0 is warned about, naming the fixes", () => {
    const w = exposureWarning(loadConfig({ PROXY_API_KEY: 'change-me' }));
    expect(w).toContain('PROXY_API_KEY');
    expect(w).toContain('0.0.0.0');
    expect(w).toContain('BIND_ADDRESS=127.0.0.1');
  });
  test('each short key of several counts; a host name or LAN address is exposed too', () => {
    expect(exposureWarning(loadConfig({ PROXY_API_KEY: `${long},k-1`, BIND_ADDRESS: '192.168.1.10' }))).toContain('1 of the 2 keys');
    expect(exposureWarning(loadConfig({ PROXY_API_KEY: 'short', BIND_ADDRESS: 'myhost.lan' }))).not.toBeNull();
    expect(exposureWarning(loadConfig({ PROXY_API_KEY: 'short', BIND_ADDRESS: '::' }))).not.toBeNull();
  });
  test('no warning for a long key, or for a loopback address', () => {
    expect(exposureWarning(loadConfig({ PROXY_API_KEY: long }))).toBeNull();
    for (const addr of ['127.0.0.1', '127.0.1.1', '::1', '[::1]', 'localhost']) {
      expect(exposureWarning(loadConfig({ PROXY_API_KEY: 'short', BIND_ADDRESS: addr }))).toBeNull();
    }
  });
});
