// Conformance for programs written against the official @anthropic-ai/sdk pointed at mcp (baseURL):
// one `mcp serve` child process per provider (the fake Z.AI, the fake Google), driven only through
// the SDK's public surface, so what is checked is what a developer's program reads.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import Anthropic from '@anthropic-ai/sdk';
import { type FakeGoogle, startFakeGoogle } from '../fakes/google.ts';
import { solidPng } from '../fakes/png.ts';
import { type FakeZai, startFakeZai } from '../fakes/zai.ts';
import { plainPdf } from '../fixtures/pdf/make-pdf.ts';
import { CHILD_PROCESS_HOOK_MS, addGoogleAccounts, cleanupTempDirs, googleEnv, mcpEnv, runMcp, type ServeHandle, startServe, tempDir, zaiEnv } from './helpers.ts';

const PROXY_KEY = ['proxy', 'key', 'FAKE', 'sdk', '0123456789'].join('-');
const ZAI_KEY = ['zai', 'key', 'FAKE', 'sdk', '0123456789'].join('-');
const EMAIL = 'sdk-user@example.com';

let zai: FakeZai;
let google: FakeGoogle;
let zaiServer: ServeHandle;
let agServer: ServeHandle;
let zaiClient: Anthropic;
let agClient: Anthropic;

beforeAll(async () => {
  zai = startFakeZai({ keys: [ZAI_KEY] });
  google = startFakeGoogle({});
  google.setAccount(EMAIL, { projectId: 'fake-project-sdk' });
  const zEnv = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ...zaiEnv(zai) });
  const gEnv = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ...googleEnv(google) });
  const add = await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', ZAI_KEY], { env: zEnv });
  expect(add.code, add.stderr).toBe(0);
  await addGoogleAccounts(gEnv, google, [EMAIL]);
  [zaiServer, agServer] = await Promise.all([startServe({ env: zEnv }), startServe({ env: gEnv })]);
  zaiClient = new Anthropic({ baseURL: zaiServer.url, apiKey: PROXY_KEY, maxRetries: 0, timeout: 10_000 });
  agClient = new Anthropic({ baseURL: agServer.url, apiKey: PROXY_KEY, maxRetries: 0, timeout: 10_000 });
}, CHILD_PROCESS_HOOK_MS);

afterAll(async () => {
  await Promise.all([zaiServer?.stop(), agServer?.stop()]);
  await Promise.all([zai?.stop(), google?.stop()]);
  cleanupTempDirs();
});

/** A Z.AI server of its own, for faults that bench the only account (the shared one must stay usable). */
async function withOwnZai(fn: (fake: FakeZai, url: string) => Promise<void>): Promise<void> {
  const fake = startFakeZai({ keys: [ZAI_KEY] });
  const env = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ...zaiEnv(fake) });
  expect((await runMcp(['accounts', 'add', '--provider', 'zai', '--api-key', ZAI_KEY], { env })).code).toBe(0);
  const server = await startServe({ env });
  try {
    await fn(fake, server.url);
  } finally {
    await server.stop();
    await fake.stop();
  }
}

const cases = () => [
  { name: 'Z.AI glm', client: zaiClient, model: 'glm-4.6' },
  { name: 'Antigravity Claude', client: agClient, model: 'claude-sonnet-4-6' },
  { name: 'Antigravity Gemini', client: agClient, model: 'gemini-3-flash' },
  { name: 'Antigravity GPT-OSS', client: agClient, model: 'gpt-oss-120b-medium' },
];
const NAMES = ['Z.AI glm', 'Antigravity Claude', 'Antigravity Gemini', 'Antigravity GPT-OSS'];
const pick = (name: string) => cases().find((c) => c.name === name)!;

const BASH_TOOL = {
  name: 'Bash',
  description: 'Run a shell command',
  input_schema: { type: 'object' as const, properties: { command: { type: 'string' } }, required: ['command'] },
};

describe('the Message shape a program reads', () => {
  for (const name of NAMES) {
    test(`${name}: messages.create has msg_ id, the asked model, usage numbers and request-id`, async () => {
      const { client, model } = pick(name);
      const { data, request_id } = await client.messages
        .create({ model, max_tokens: 256, messages: [{ role: 'user', content: 'Say hello.' }] })
        .withResponse();
      expect(data.id).toMatch(/^msg_/);
      expect(data.type).toBe('message');
      expect(data.role).toBe('assistant');
      expect(data.model).toBe(model);
      expect(data.stop_reason).toBe('end_turn');
      expect(data.stop_sequence).toBeNull();
      expect(typeof data.usage.input_tokens).toBe('number');
      expect(typeof data.usage.output_tokens).toBe('number');
      // A program sums input + cache_creation + cache_read for the prompt's size: NaN if one is missing.
      expect(typeof data.usage.cache_creation_input_tokens).toBe('number');
      expect(typeof data.usage.cache_read_input_tokens).toBe('number');
      expect(request_id).toBeTruthy();
      expect((data as { _request_id?: string | null })._request_id).toBe(request_id);
      for (const b of data.content) {
        if (b.type === 'text') expect(typeof b.text).toBe('string');
        if (b.type === 'thinking') expect(typeof b.signature).toBe('string');
      }
    });

    test(`${name}: messages.stream() finalMessage, on('text') and the same shape`, async () => {
      const { client, model } = pick(name);
      let texted = '';
      const stream = client.messages.stream({ model, max_tokens: 256, messages: [{ role: 'user', content: 'Say hello.' }] });
      stream.on('text', (d) => {
        texted += d;
      });
      const msg = await stream.finalMessage();
      expect(msg.id).toMatch(/^msg_/);
      expect(msg.model).toBe(model);
      expect(msg.stop_reason).toBe('end_turn');
      expect(msg.stop_sequence).toBeNull();
      const text = msg.content.flatMap((b) => (b.type === 'text' ? [b.text] : [])).join('');
      expect(text.length).toBeGreaterThan(0);
      expect(texted).toBe(text);
      expect(msg.usage.output_tokens).toBeGreaterThan(0);
      expect(typeof msg.usage.cache_creation_input_tokens).toBe('number');
      expect(typeof msg.usage.cache_read_input_tokens).toBe('number');
    });

    test(`${name}: a tool call streams as inputJson and accumulates to the parsed input`, async () => {
      const { client, model } = pick(name);
      let json = '';
      const stream = client.messages.stream({
        model,
        max_tokens: 512,
        tools: [BASH_TOOL],
        tool_choice: { type: 'any' },
        messages: [{ role: 'user', content: 'Run this command exactly: echo sdk-probe' }],
      });
      stream.on('inputJson', (d) => {
        json += d;
      });
      const msg = await stream.finalMessage();
      expect(msg.stop_reason).toBe('tool_use');
      const use = msg.content.find((b) => b.type === 'tool_use');
      expect(use).toBeDefined();
      if (use?.type !== 'tool_use') return;
      // Upstream call ids are kept (they round-trip to Google); the SDK only needs a non-empty string.
      expect(use.id.length).toBeGreaterThan(0);
      expect(use.input).toMatchObject({ command: 'echo sdk-probe' });
      expect(JSON.parse(json)).toEqual(use.input);

      // The loop's next turn: an is_error result, then a normal answer.
      const next = await client.messages.create({
        model,
        max_tokens: 512,
        tools: [BASH_TOOL],
        messages: [
          { role: 'user', content: 'Run this command exactly: echo sdk-probe' },
          { role: 'assistant', content: msg.content },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'command failed', is_error: true }] },
        ],
      });
      expect(next.stop_reason).toBe('end_turn');
    });

    test(`${name}: countTokens answers a number`, async () => {
      const { client, model } = pick(name);
      const r = await client.messages.countTokens({ model, messages: [{ role: 'user', content: 'Say hello to the world.' }] });
      expect(r.input_tokens).toBeGreaterThan(0);
    });
  }
});

describe('models', () => {
  for (const name of ['Z.AI glm', 'Antigravity Claude']) {
    test(`${name}: models.list auto-paginates and models.retrieve finds each`, async () => {
      const { client } = pick(name);
      const ids: string[] = [];
      for await (const m of client.models.list({ limit: 2 })) {
        expect(m.type).toBe('model');
        ids.push(m.id);
      }
      expect(ids.length).toBeGreaterThan(2);
      expect(new Set(ids).size).toBe(ids.length);
      const one = await client.models.retrieve(ids[0]!);
      expect(one.id).toBe(ids[0]!);
      if (name !== 'Z.AI glm') {
        // Z.AI serves names it does not list (catalog.describeModel), Google only its catalog.
        const missing = await client.models.retrieve('no-such-model-xyz').catch((e: unknown) => e);
        expect(missing).toBeInstanceOf(Anthropic.NotFoundError);
      }
    });
  }
});

describe('endpoints mcp does not serve', () => {
  test('batches, files and /v1/complete fail as NotFoundError with the Anthropic envelope', async () => {
    const c = zaiClient;
    const errs = await Promise.all([
      c.messages.batches.list().catch((e: unknown) => e),
      c.messages.batches.retrieve('msgbatch_x').catch((e: unknown) => e),
      c.beta.files.list().catch((e: unknown) => e),
      c.post('/v1/complete', { body: { model: 'glm-4.6', max_tokens_to_sample: 5, prompt: '\n\nHuman: hi\n\nAssistant:' } }).catch((e: unknown) => e),
      c.messages.batches.create({ requests: [] }).catch((e: unknown) => e),
      c.beta.files.upload({ file: new File([new Uint8Array(1 << 20)], 'big.bin') }).catch((e: unknown) => e),
      c.beta.files.delete('file_x').catch((e: unknown) => e),
    ]);
    for (const e of errs) {
      expect(e).toBeInstanceOf(Anthropic.NotFoundError);
      expect((e as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
    }
  });
});

describe('errors, retries and the SDK retry rules', () => {
  const ask = (c: Anthropic, model = 'glm-4.6') => c.messages.create({ model, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });

  test('a request the API would refuse is a BadRequestError with invalid_request_error and a request id', async () => {
    const err = await zaiClient.messages
      // @ts-expect-error max_tokens is required: the point of the test
      .create({ model: 'glm-4.6', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    const e = err as InstanceType<typeof Anthropic.APIError>;
    expect(e.error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    expect(e.requestID).toBeTruthy();
  });

  test('a short upstream 429 is a RateLimitError with retry-after, which the SDK waits out and then succeeds', async () => {
    zai.setMode({ kind: 'http429', retryAfter: 1 }, { times: 1 });
    const before = zai.messages().length;
    const retrying = new Anthropic({ baseURL: zaiServer.url, apiKey: PROXY_KEY, maxRetries: 2, timeout: 10_000 });
    const t0 = Date.now();
    const msg = await ask(retrying);
    expect(msg.type).toBe('message');
    // Either mcp waited it out or the SDK did: in both cases no hammering before the second is up.
    expect(zai.messages().length - before).toBe(2);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
  });

  test('a spent 5-hour quota is final: x-should-retry false, so the SDK asks once and stops', async () => {
    // Its own server: the spent quota benches the only account for hours.
    await withOwnZai(async (fake, url) => {
      fake.setMode({ kind: 'error', code: '1316', resetAt: Date.now() + 3 * 3_600_000 });
      const retrying = new Anthropic({ baseURL: url, apiKey: PROXY_KEY, maxRetries: 2, timeout: 10_000 });
      const err = await ask(retrying).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Anthropic.RateLimitError);
      const e = err as InstanceType<typeof Anthropic.APIError>;
      expect(e.headers?.get('x-should-retry')).toBe('false');
      expect(fake.messages().length).toBe(1);
    });
  });

  test('a limit that resets after the client would give up is a 429 with retry-after at once, not a client timeout', async () => {
    await withOwnZai(async (fake, url) => {
      fake.setMode({ kind: 'http429', retryAfter: 30 });
      // The SDK tells the server how long it waits (x-stainless-timeout: 6).
      const impatient = new Anthropic({ baseURL: url, apiKey: PROXY_KEY, maxRetries: 0, timeout: 6_000 });
      const t0 = Date.now();
      const err = await ask(impatient).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Anthropic.RateLimitError);
      expect(Date.now() - t0).toBeLessThan(3_000);
      expect(Number((err as InstanceType<typeof Anthropic.APIError>).headers?.get('retry-after'))).toBeGreaterThan(20);
    });
  }, 15_000);

  test('an error event after text was streamed rejects finalMessage with an APIError, not a parse failure', async () => {
    // After a text delta: before any content mcp fails over (and waits) instead.
    zai.setMode({ kind: 'sse_error', afterEvents: 4, errorType: 'api_error', code: '500', message: 'boom' }, { times: 1 });
    const stream = zaiClient.messages.stream({ model: 'glm-4.6', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    const err = await stream.finalMessage().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
  });
});

describe('client aborts and timeouts end the upstream call', () => {
  test('stream.abort() during a slow answer closes the upstream request', async () => {
    zai.setMode({ kind: 'slow_chunks', chunks: 20, delayMs: 200 }, { times: 1 });
    const stream = zaiClient.messages.stream({ model: 'glm-4.6', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    await new Promise<void>((r) => stream.once('text', () => r()));
    const upstream = zai.messages().at(-1)!;
    stream.abort();
    await stream.done().catch(() => {});
    const t0 = Date.now();
    while (!upstream.aborted && Date.now() - t0 < 2_000) await Bun.sleep(20);
    expect(upstream.aborted).toBe(true);
  });

  test('an AbortController on a non-streaming create closes the upstream request', async () => {
    zai.setMode({ kind: 'slow_chunks', chunks: 20, delayMs: 200 }, { times: 1 });
    const ac = new AbortController();
    const p = zaiClient.messages
      .create({ model: 'glm-4.6', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }, { signal: ac.signal })
      .catch((e: unknown) => e);
    const before = zai.messages().length;
    const t0 = Date.now();
    while (zai.messages().length === before && Date.now() - t0 < 2_000) await Bun.sleep(10);
    const upstream = zai.messages().at(-1)!;
    await Bun.sleep(300);
    ac.abort();
    expect(await p).toBeInstanceOf(Anthropic.APIUserAbortError);
    while (!upstream.aborted && Date.now() - t0 < 3_000) await Bun.sleep(20);
    expect(upstream.aborted).toBe(true);
  });

  test('the SDK timeout gives APIConnectionTimeoutError and the upstream call is closed', async () => {
    zai.setMode({ kind: 'stall_before_first_byte', ms: 3_000 }, { times: 1 });
    const quick = new Anthropic({ baseURL: zaiServer.url, apiKey: PROXY_KEY, maxRetries: 0, timeout: 500 });
    const before = zai.requests.length;
    const err = await quick.messages.create({ model: 'glm-4.6', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.APIConnectionTimeoutError);
    const upstream = zai.requests.slice(before).find((r) => r.path.endsWith('/v1/messages'));
    expect(upstream).toBeDefined();
    const t0 = Date.now();
    while (!upstream!.aborted && Date.now() - t0 < 2_000) await Bun.sleep(20);
    expect(upstream!.aborted).toBe(true);
  });
});

describe('thinking through the SDK', () => {
  for (const name of NAMES) {
    test(`${name}: thinking blocks carry a string signature and the turn can be sent back`, async () => {
      const { client, model } = pick(name);
      const params = {
        model,
        max_tokens: 4096,
        thinking: { type: 'enabled' as const, budget_tokens: 1024 },
        tools: [BASH_TOOL],
        messages: [{ role: 'user' as const, content: 'Run this command exactly: echo think-probe' }],
      };
      const stream = client.messages.stream(params);
      let thinkingText = '';
      stream.on('thinking', (d) => {
        thinkingText += d;
      });
      const msg = await stream.finalMessage();
      for (const b of msg.content) {
        if (b.type === 'thinking') {
          expect(typeof b.signature).toBe('string');
          expect(typeof b.thinking).toBe('string');
        }
      }
      const blocks = msg.content.filter((b) => b.type === 'thinking');
      expect(thinkingText).toBe(blocks.map((b) => (b.type === 'thinking' ? b.thinking : '')).join(''));
      const use = msg.content.find((b) => b.type === 'tool_use');
      expect(use?.type).toBe('tool_use');
      if (use?.type !== 'tool_use') return;
      const next = await client.messages.create({
        ...params,
        messages: [
          ...params.messages,
          { role: 'assistant', content: msg.content },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: [{ type: 'text', text: 'think-probe' }] }] },
        ],
      });
      expect(next.stop_reason).toBe('end_turn');
      expect(next.content.some((b) => b.type === 'text' && b.text.includes('think-probe'))).toBe(true);
    });
  }
});

describe('every optional request field the SDK types offer is accepted', () => {
  for (const name of NAMES) {
    test(`${name}: create, stream and countTokens with all the optional fields`, async () => {
      const { client, model } = pick(name);
      const common = {
        model,
        system: [{ type: 'text' as const, text: 'Be brief.', cache_control: { type: 'ephemeral' as const, ttl: '1h' as const } }],
        messages: [
          { role: 'user' as const, content: [{ type: 'text' as const, text: 'Say hello.', cache_control: { type: 'ephemeral' as const } }] },
        ],
        tools: [{ ...BASH_TOOL, cache_control: { type: 'ephemeral' as const } }],
        tool_choice: { type: 'auto' as const, disable_parallel_tool_use: true },
        cache_control: { type: 'ephemeral' as const },
        output_config: { effort: 'low' as const },
        speed: 'standard' as const,
      };
      const full = {
        ...common,
        max_tokens: 256,
        metadata: { user_id: 'sdk-user-1' },
        service_tier: 'auto' as const,
        stop_sequences: ['NEVER-SEEN'],
        temperature: 0.5,
        top_p: 0.9,
        top_k: 40,
        inference_geo: 'us',
      };
      const msg = await client.messages.create(full);
      expect(msg.type).toBe('message');
      const streamed = await client.messages.stream(full).finalMessage();
      expect(streamed.type).toBe('message');
      const count = await client.messages.countTokens(common);
      expect(count.input_tokens).toBeGreaterThan(0);
    });
  }
});

describe('parallel tool calls', () => {
  for (const name of NAMES) {
    test(`${name}: parallel calls come as several tool_use blocks, all answered in one turn; disable_parallel_tool_use keeps one`, async () => {
      const { client, model } = pick(name);
      const ask = { role: 'user' as const, content: 'Run in parallel: echo one ;; echo two' };
      const msg = await client.messages.stream({ model, max_tokens: 512, tools: [BASH_TOOL], messages: [ask] }).finalMessage();
      const uses = msg.content.filter((b) => b.type === 'tool_use');
      expect(uses.map((u) => (u.type === 'tool_use' ? u.input : null))).toEqual([{ command: 'echo one' }, { command: 'echo two' }]);
      const next = await client.messages.create({
        model,
        max_tokens: 512,
        tools: [BASH_TOOL],
        messages: [
          ask,
          { role: 'assistant', content: msg.content },
          {
            role: 'user',
            content: uses.map((u, i) => ({ type: 'tool_result' as const, tool_use_id: u.type === 'tool_use' ? u.id : '', content: `out-${i}`, is_error: i === 1 })),
          },
        ],
      });
      expect(next.content.find((b) => b.type === 'text')).toMatchObject({ text: expect.stringContaining('out-0 out-1') });

      // Anthropic: "the model will output at most one tool use".
      for (const tool_choice of [{ type: 'auto' as const, disable_parallel_tool_use: true }, { type: 'any' as const, disable_parallel_tool_use: true }]) {
        const one = await client.messages.create({ model, max_tokens: 512, tools: [BASH_TOOL], tool_choice, messages: [ask] });
        expect(one.content.filter((b) => b.type === 'tool_use')).toHaveLength(1);
        expect(one.stop_reason).toBe('tool_use');
      }
    });
  }
});

describe('images and documents inside tool results', () => {
  for (const name of NAMES) {
    test(`${name}: a tool result holding text, an image and a PDF is answered`, async () => {
      const { client, model } = pick(name);
      const png = solidPng(8, 8);
      const pdf = plainPdf(1);
      const ask = { role: 'user' as const, content: 'Run this command exactly: cat chart.png' };
      const first = await client.messages.create({ model, max_tokens: 512, tools: [BASH_TOOL], messages: [ask] });
      const use = first.content.find((b) => b.type === 'tool_use');
      if (use?.type !== 'tool_use') throw new Error(`no tool call: ${JSON.stringify(first.content)}`);
      const next = await client.messages.create({
        model,
        max_tokens: 512,
        tools: [BASH_TOOL],
        messages: [
          ask,
          { role: 'assistant', content: first.content },
          {
            role: 'user',
            content: [
              {
                type: 'tool_result',
                tool_use_id: use.id,
                content: [
                  { type: 'text', text: 'here it is' },
                  { type: 'image', source: { type: 'base64', media_type: 'image/png', data: Buffer.from(png).toString('base64') } },
                  { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: Buffer.from(pdf).toString('base64') } },
                ],
              },
            ],
          },
        ],
      });
      expect(next.type).toBe('message');
      const said = next.content.flatMap((b) => (b.type === 'text' ? [b.text] : [])).join('');
      expect(said).toContain('here it is');
      // The fake Google names the media it got beside the tool's answer.
      if (name.startsWith('Antigravity')) expect(said).toContain(`SAW_IMAGE image/png ${png.length} bytes SAW_IMAGE application/pdf ${pdf.length} bytes`);
    });
  }
});

describe('the SDK beta surface (?beta=true, anthropic-beta)', () => {
  for (const name of ['Z.AI glm', 'Antigravity Gemini']) {
    test(`${name}: beta.messages create/stream/countTokens and beta.models list/retrieve`, async () => {
      const { client, model } = pick(name);
      const betas = ['interleaved-thinking-2025-05-14', 'context-1m-2025-08-07'];
      const msg = await client.beta.messages.create({ model, max_tokens: 128, betas, messages: [{ role: 'user', content: 'Say hello.' }] });
      expect(msg.type).toBe('message');
      expect(msg.model).toBe(model);
      const streamed = await client.beta.messages.stream({ model, max_tokens: 128, betas, messages: [{ role: 'user', content: 'Say hello.' }] }).finalMessage();
      expect(streamed.stop_reason).toBe('end_turn');
      const count = await client.beta.messages.countTokens({ model, betas, messages: [{ role: 'user', content: 'Say hello.' }] });
      expect(count.input_tokens).toBeGreaterThan(0);
      const ids: string[] = [];
      for await (const m of client.beta.models.list({ limit: 3 })) ids.push(m.id);
      expect(ids.length).toBeGreaterThan(3);
      expect((await client.beta.models.retrieve(ids[1]!)).id).toBe(ids[1]!);
    });
  }

  test('a message thread (server-held conversation) fails at once with the SDK\'s thread_unsupported_request error', async () => {
    const before = zai.messages().length;
    const thread = zaiClient.beta.messages.thread({ model: 'glm-4.6', max_tokens: 64 });
    const err = await thread.send({ role: 'user', content: 'hi' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    expect((err as { errorCode?: string }).errorCode).toBe('thread_unsupported_request');
    expect(zai.messages().length).toBe(before);
  });

  test('the streaming tool runner drives a tool loop on Z.AI too', async () => {
    const ran: string[] = [];
    const runner = zaiClient.beta.messages.toolRunner({
      model: 'glm-4.6',
      max_tokens: 512,
      stream: true,
      messages: [{ role: 'user', content: 'Run this command exactly: echo zai-runner' }],
      tools: [
        {
          ...BASH_TOOL,
          run: (input: unknown) => {
            ran.push((input as { command: string }).command);
            return 'zai-runner-out';
          },
        },
      ],
      max_iterations: 4,
    });
    const turns: string[] = [];
    for await (const stream of runner) turns.push((await stream.finalMessage()).stop_reason ?? 'null');
    expect(ran).toEqual(['echo zai-runner']);
    expect(turns).toEqual(['tool_use', 'end_turn']);
  });

  test('the tool runner drives a tool loop to its end', async () => {
    const { client, model } = pick('Antigravity Gemini');
    const ran: string[] = [];
    const runner = client.beta.messages.toolRunner({
      model,
      max_tokens: 512,
      messages: [{ role: 'user', content: 'Run this command exactly: echo runner-probe' }],
      tools: [
        {
          ...BASH_TOOL,
          run: (input: unknown) => {
            ran.push((input as { command: string }).command);
            return 'runner-probe';
          },
        },
      ],
      max_iterations: 4,
    });
    const final = await runner.runUntilDone();
    expect(ran).toEqual(['echo runner-probe']);
    expect(final.content.some((b) => b.type === 'text' && b.text.includes('runner-probe'))).toBe(true);
  });
});

describe('aborts on Antigravity', () => {
  test('breaking out of a raw stream (stream: true) closes the Google request', async () => {
    google.setMode({ kind: 'slow_chunks', chunks: 20, delayMs: 200 }, { times: 1 });
    const before = google.generations().length;
    const stream = await agClient.messages.create({ model: 'gemini-3-flash', max_tokens: 256, stream: true, messages: [{ role: 'user', content: 'Say hello.' }] });
    for await (const ev of stream) if (ev.type === 'content_block_delta') break;
    const upstream = google.generations()[before]!;
    const t0 = Date.now();
    while (!upstream.aborted && Date.now() - t0 < 2_000) await Bun.sleep(20);
    expect(upstream.aborted).toBe(true);
  });
});

describe('a model nobody serves', () => {
  for (const [name, model] of [
    ['Z.AI glm', 'glm-0-nope'],
    ['Antigravity Gemini', 'gemini-0-nope'],
  ] as const) {
    test(`${name}: create and stream both fail as NotFoundError naming the model`, async () => {
      const { client } = pick(name);
      const params = { model, max_tokens: 32, messages: [{ role: 'user' as const, content: 'hi' }] };
      const a = await client.messages.create(params).catch((e: unknown) => e);
      const b = await client.messages.stream(params).finalMessage().catch((e: unknown) => e);
      for (const e of [a, b]) {
        expect(e).toBeInstanceOf(Anthropic.NotFoundError);
        expect((e as Error).message).toContain(model);
      }
    });
  }
});

describe('client authentication styles', () => {
  test('authToken (Authorization: Bearer) is accepted like apiKey; a missing or wrong key is AuthenticationError', async () => {
    const bearer = new Anthropic({ baseURL: zaiServer.url, authToken: PROXY_KEY, apiKey: null, maxRetries: 0 });
    const msg = await bearer.messages.create({ model: 'glm-4.6', max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] });
    expect(msg.type).toBe('message');
    for (const c of [
      new Anthropic({ baseURL: zaiServer.url, authToken: 'FAKE-wrong', apiKey: null, maxRetries: 0 }),
      new Anthropic({ baseURL: zaiServer.url, apiKey: 'FAKE-wrong', maxRetries: 0 }),
    ]) {
      const err = await c.models.list().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
    }
  });
});

describe('a Claude model name served by another model', () => {
  for (const name of ['Z.AI glm', 'Antigravity Gemini']) {
    test(`${name}: the answer names the model asked for, streamed or not`, async () => {
      const { client } = pick(name);
      const model = 'claude-sonnet-4-5-20250929';
      const params = { model, max_tokens: 64, messages: [{ role: 'user' as const, content: 'Say hello.' }] };
      const { data, response } = await client.messages.create(params).withResponse();
      expect(data.model).toBe(model);
      expect(response.headers.get('x-proxy-upstream-model')).toBeTruthy();
      expect((await client.messages.stream(params).finalMessage()).model).toBe(model);
    });
  }
});

describe('adaptive thinking and effort', () => {
  for (const name of NAMES) {
    for (const thinking of [{ type: 'adaptive' as const }, { type: 'disabled' as const }]) {
      test(`${name}: thinking ${thinking.type} with output_config.effort is served, streamed and not`, async () => {
        const { client, model } = pick(name);
        const params = { model, max_tokens: 2048, thinking, output_config: { effort: 'high' as const }, messages: [{ role: 'user' as const, content: 'Say hello.' }] };
        const a = await client.messages.create(params);
        const b = await client.messages.stream(params).finalMessage();
        for (const m of [a, b]) {
          expect(m.stop_reason).toBe('end_turn');
          expect(m.content.some((c) => c.type === 'text' && c.text.length > 0)).toBe(true);
          if (thinking.type === 'disabled') expect(m.content.some((c) => c.type === 'thinking')).toBe(false);
        }
      });
    }
  }
});
