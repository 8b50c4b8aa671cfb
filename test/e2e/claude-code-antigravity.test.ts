// The real Claude Code CLI, headless, through `mcp serve` in front of the fake Google (protocol
// reference §1.10; antigravity.md §7.7–§7.8): a Bash tool loop on a Gemini model and on a Claude
// thinking model, then a second turn of the same session (--resume). The fake checks signatures like
// Google does (strictSignatures: one it never issued fails the call), and its record shows that the
// second turn replayed exactly the signatures it issued in the first, each to its own family only.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type FakeGoogle, type RecordedGoogleRequest, startFakeGoogle } from '../fakes/google.ts';
import {
  CHILD_PROCESS_HOOK_MS,
  addGoogleAccounts,
  type ClaudeRun,
  cleanupTempDirs,
  type Env,
  googleEnv,
  mcpEnv,
  runClaude,
  randomMarker,
  runMcp,
  type ServeHandle,
  startServe,
  tempDir,
} from './helpers.ts';

const PROXY_KEY = 'proxy-key-e2e-claude-agy-0123456789';
const EMAIL = 'claude-code-user@example.com';
/** What the provider sends for a Gemini call it has no signature for (§7.8); the fake accepts it. */
const SENTINEL = 'skip_thought_signature_validator';
let google: FakeGoogle;
let server: ServeHandle;

beforeAll(async () => {
  google = startFakeGoogle({ strictSignatures: true });
  google.setAccount(EMAIL, { projectId: 'fake-project-cc' });
  const env = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ...googleEnv(google) });
  await addGoogleAccounts(env, google, [EMAIL]);
  server = await startServe({ env });
}, CHILD_PROCESS_HOOK_MS);

afterAll(async () => {
  await server?.stop();
  await google?.stop();
  cleanupTempDirs();
}, CHILD_PROCESS_HOOK_MS);

/** Claude Code's WebSearch tool runs its own request with Anthropic's web_search tool; the proxy answers it with Google Search grounding. */
describe('Claude Code WebSearch through mcp serve on Antigravity', () => {
  test("the search request goes to the search model with googleSearch, and Claude Code gets the hits and the grounded text", async () => {
    const before = google.generations().length;
    const run = await runClaude({
      baseUrl: server.url,
      apiKey: PROXY_KEY,
      prompt: 'search the web for: bun 1.4 release notes',
      model: 'opus',
      allowedTools: ['WebSearch'],
      maxRetries: 1,
      timeoutMs: 40_000,
    });
    const diag = () => `claude exit ${run.code}\n${run.stdout.slice(-4000)}\n${run.stderr.slice(-2000)}\n${server.output().slice(-3000)}`;
    const use = run.toolUses.find((t) => t.name === 'WebSearch');
    expect(use, diag()).toBeDefined();
    expect(use!.input.query).toBe('bun 1.4 release notes');
    const result = run.toolResults.find((r) => r.toolUseId === use!.id);
    expect(result?.isError, diag()).toBe(false);
    // What Claude Code made of the search answer: the grounded text and the hits' titles and links.
    expect(result?.text, diag()).toContain('FAKE_SEARCH_RESULT for "bun 1.4 release notes"');
    expect(result?.text).toContain('docs.example.org');
    expect(result?.text).toContain('https://docs.example.org/fake-search-page');
    expect(run.result?.is_error, diag()).toBe(false);
    expect(String(run.result?.result)).toContain('FINAL_ANSWER: tool said');
    // Upstream: the chat turns on the Claude model, the search alone on the search model.
    const gens = google.generations().slice(before);
    const searches = gens.filter((g) => (g.body as { requestType?: string }).requestType === 'web_search');
    expect(searches.map(modelOf), diag()).toEqual(['gemini-3.1-flash-lite']);
    expect(JSON.stringify(searches[0]!.body)).toContain('"googleSearch"');
    const chat = gens.filter((g) => !searches.includes(g));
    expect(chat.length).toBeGreaterThanOrEqual(2); // the turn that called WebSearch and the one after its result
    expect(chat.map(modelOf).filter((m) => m !== 'claude-opus-4-6-thinking')).toEqual([]);
    expect(gens.map((g) => g.mode).filter((m) => m !== 'ok')).toEqual([]);
  }, 60_000);
});

/** One headless turn whose session is kept (same HOME and cwd across turns) so a later turn can --resume it. */
function claudeTurn(opts: {
  home: string;
  cwd: string;
  prompt: string;
  model: string;
  resume?: string;
  maxTurns?: number;
  via?: ServeHandle;
}): Promise<ClaudeRun> {
  const { via, ...turn } = opts;
  return runClaude({ ...turn, baseUrl: (via ?? server).url, apiKey: PROXY_KEY, persist: true, maxRetries: 1, timeoutMs: 40_000 });
}

type Part = Record<string, unknown>;

function partsOf(r: RecordedGoogleRequest): Part[] {
  const contents = ((r.body as { request?: { contents?: Array<{ parts?: Part[] }> } }).request?.contents ?? []);
  return contents.flatMap((c) => c.parts ?? []);
}

function modelOf(r: RecordedGoogleRequest): string {
  return String((r.body as { model?: unknown }).model ?? '');
}

/** The tool loop of one turn worked: the marker ran in Bash, came back, and is in the final answer. */
function expectToolLoop(run: ClaudeRun, marker: string, diagnostics: () => string): void {
  expect(run.events[0]?.type, diagnostics()).toBe('system');
  const bash = run.toolUses.find((t) => t.name === 'Bash');
  expect(bash, diagnostics()).toBeDefined();
  expect(String(bash!.input.command)).toContain(marker);
  const result = run.toolResults.find((r) => r.toolUseId === bash!.id);
  expect(result?.isError, diagnostics()).toBe(false);
  expect(result?.text).toContain(marker);
  expect(run.result?.is_error, diagnostics()).toBe(false);
  expect(Number(run.result?.num_turns)).toBeGreaterThanOrEqual(2);
  expect(String(run.result?.result)).toContain(`FINAL_ANSWER: tool said ${marker}`);
}

const cases = [
  // fallback: the built-in fallback of the upstream model (gateway/catalog.ts), of the other family.
  { name: 'a Gemini model', model: 'gemini-3-flash', upstream: 'gemini-3-flash', family: 'gemini' as const, fallback: 'claude-sonnet-4-6' },
  { name: 'a Claude thinking model (opus)', model: 'opus', upstream: 'claude-opus-4-6-thinking', family: 'claude' as const, fallback: 'gemini-pro-agent' },
];

/** Generations this test sent to the fake itself (not the proxy's). */
const notFromProxy = new Set<RecordedGoogleRequest>();
/** Sessions of the two-turn tests, for the family switch afterwards. */
const sessions = new Map<'claude' | 'gemini', { home: string; cwd: string; id: string }>();

describe('Claude Code through mcp serve on Antigravity', () => {
  // The proof below means something only if the fake refuses what Google refuses.
  test('the strict fake refuses histories Google refuses, and accepts the sentinel', async () => {
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: google.refreshTokenFor(EMAIL), client_id: 'x', client_secret: 'y' });
    const token = ((await (await fetch(google.tokenUrl, { method: 'POST', body: form })).json()) as { access_token: string }).access_token;
    const call = async (model: string, contents: unknown[], thinking = true) => {
      const res = await fetch(`${google.endpoints[0]}/v1internal:generateContent`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model, project: 'fake-project-cc', request: { contents, generationConfig: thinking ? { thinkingConfig: { includeThoughts: true } } : {} } }),
      });
      notFromProxy.add(google.generations().at(-1)!);
      return { status: res.status, text: await res.text() };
    };
    const user = (text: string) => ({ role: 'user', parts: [{ text }] });
    const bash = { name: 'Bash', args: { command: 'echo hi' }, id: 'call_1' };
    const result = { role: 'user', parts: [{ functionResponse: { name: 'Bash', id: 'call_1', response: { output: 'hi' } } }] };
    // Real signatures to misuse: one from each family.
    const claudeSig = (await call('claude-opus-4-6-thinking', [user('hi')])).text.match(/"thoughtSignature":"([^"]+)"/)![1]!;
    const geminiSig = (await call('gemini-3-flash', [user('hi')])).text.match(/"thoughtSignature":"([^"]+)"/)![1]!;
    const forged = Buffer.from(`Eo${'A'.repeat(90)}`).toString('base64');

    const refused = [
      ['a forged Claude signature', 'claude-opus-4-6-thinking', [user('hi'), { role: 'model', parts: [{ text: 'hm', thought: true, thoughtSignature: forged }, { text: 'yo' }] }, user('again')]],
      ['a Gemini signature sent to Claude', 'claude-opus-4-6-thinking', [user('hi'), { role: 'model', parts: [{ text: 'hm', thought: true, thoughtSignature: geminiSig }, { text: 'yo' }] }, user('again')]],
      ['a Claude signature sent to Gemini', 'gemini-3-flash', [user('hi'), { role: 'model', parts: [{ functionCall: bash, thoughtSignature: claudeSig }] }, result]],
      ['an unsigned Gemini call of the current turn', 'gemini-3-flash', [user('hi'), { role: 'model', parts: [{ functionCall: bash }] }, result]],
      ['a Claude tool loop whose call lost its thinking', 'claude-opus-4-6-thinking', [user('hi'), { role: 'model', parts: [{ functionCall: bash }] }, result]],
    ] as const;
    for (const [what, model, contents] of refused) expect((await call(model, [...contents])).status, what).toBe(400);

    const accepted = [
      ['the sentinel on a Gemini call', 'gemini-3-flash', [user('hi'), { role: 'model', parts: [{ functionCall: bash, thoughtSignature: SENTINEL }] }, result]],
      ['its own signature on a Gemini call', 'gemini-3-flash', [user('hi'), { role: 'model', parts: [{ functionCall: bash, thoughtSignature: geminiSig }] }, result]],
      ['a Claude tool loop opened by its signed thinking', 'claude-opus-4-6-thinking', [user('hi'), { role: 'model', parts: [{ text: 'hm', thought: true, thoughtSignature: claudeSig }, { functionCall: bash }] }, result]],
    ] as const;
    for (const [what, model, contents] of accepted) expect((await call(model, [...contents])).status, what).toBe(200);
  });

  for (const c of cases) {
    test(`${c.name}: a Bash tool loop, then a resumed second turn that replays the first turn's signatures`, async () => {
      const home = tempDir('mcp-claude-home-');
      const cwd = tempDir('mcp-claude-cwd-');
      const diag = (run: ClaudeRun) => () =>
        `claude exit ${run.code}\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-2000)}\n${server.output().slice(-3000)}`;

      // Turn 1.
      const before1 = google.generations().length;
      const marker1 = randomMarker();
      const turn1 = await claudeTurn({ home, cwd, prompt: `run exactly: echo ${marker1}`, model: c.model });
      expectToolLoop(turn1, marker1, diag(turn1));
      const gens1 = google.generations().slice(before1);
      expect(gens1.length).toBeGreaterThanOrEqual(2);
      expect(gens1.every((g) => modelOf(g) === c.upstream)).toBe(true);
      const sessionId = String(turn1.events[0]?.session_id ?? '');
      expect(sessionId).not.toBe('');
      sessions.set(c.family, { home, cwd, id: sessionId });

      // What the fake signed in turn 1: the answer that made the call.
      const callAnswer = gens1.find((g) => (g.issuedSignatures?.length ?? 0) > 0 && !partsOf(g).some((p) => p.functionResponse));
      expect(callAnswer, 'the fake signed the tool-call answer of turn 1').toBeDefined();
      const signed1 = callAnswer!.issuedSignatures!;

      // Turn 2: the same session, resumed.
      const before2 = google.generations().length;
      const marker2 = randomMarker();
      const turn2 = await claudeTurn({ home, cwd, prompt: `run exactly: echo ${marker2}`, model: c.model, resume: sessionId });
      expectToolLoop(turn2, marker2, diag(turn2));
      const gens2 = google.generations().slice(before2);
      expect(gens2.every((g) => modelOf(g) === c.upstream)).toBe(true);
      // The first request of turn 2 carries turn 1 as history (its tool result holds marker1).
      const first2 = gens2[0]!;
      expect(JSON.stringify(first2.body)).toContain(marker1);
      const history = partsOf(first2);
      if (c.family === 'claude') {
        // The thinking part of turn 1's call answer goes back with the signature exactly as issued.
        const thought = history.find((p) => p.thought === true && p.thoughtSignature === signed1[0]);
        expect(thought, JSON.stringify(history).slice(0, 3000)).toBeDefined();
      } else {
        // Gemini's signature rode on the functionCall part; it goes back on that call, not the sentinel.
        const call = history.find((p) => p.functionCall && p.thoughtSignature === signed1[0]);
        expect(call, JSON.stringify(history).slice(0, 3000)).toBeDefined();
        expect((call!.functionCall as { args?: { command?: string } }).args?.command).toContain(marker1);
      }
      // Not only the call's: every signature of turn 1 (the final answer's too) comes back in turn 2.
      const sent = new Set(history.map((p) => p.thoughtSignature).filter((s) => typeof s === 'string'));
      const issued1 = gens1.flatMap((g) => g.issuedSignatures ?? []);
      expect(issued1.length).toBeGreaterThanOrEqual(2);
      expect(issued1.filter((s) => !sent.has(s))).toEqual([]);
      expect(sent.has(SENTINEL)).toBe(false);
      // The strict fake refused nothing in either turn.
      expect([...gens1, ...gens2].map((g) => g.mode).filter((m) => m !== 'ok')).toEqual([]);
    }, 60_000);
  }

  for (const c of cases) {
    const other = cases.find((o) => o.family !== c.family)!;
    test(`a third turn of the ${c.family} session on ${other.name} completes its tool loop`, async () => {
      const s = sessions.get(c.family);
      expect(s, 'the two-turn test above ran').toBeDefined();
      const before = google.generations().length;
      const marker = randomMarker();
      const run = await claudeTurn({ home: s!.home, cwd: s!.cwd, prompt: `run exactly: echo ${marker}`, model: other.model, resume: s!.id });
      expectToolLoop(run, marker, () => `claude exit ${run.code}\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-2000)}\n${server.output().slice(-3000)}`);
      const gens = google.generations().slice(before);
      expect(gens.every((g) => modelOf(g) === other.upstream)).toBe(true);
      expect(gens.map((g) => g.mode).filter((m) => m !== 'ok')).toEqual([]);
    }, 60_000);
  }
});

describe('Claude Code on Antigravity when the family changes inside a tool loop', () => {
  let fallbackServe: ServeHandle;
  let fallbackEnv: Env;
  const FALLBACK_EMAIL = 'fallback-user@example.com';

  beforeAll(async () => {
    // Its own data dir and account: the exhaustion below must not limit the account of the tests above.
    const env = (fallbackEnv = mcpEnv(tempDir(), { PROXY_API_KEY: PROXY_KEY, ENABLE_FALLBACK: '1', ...googleEnv(google) }));
    await addGoogleAccounts(env, google, [FALLBACK_EMAIL]);
    fallbackServe = await startServe({ env });
  }, CHILD_PROCESS_HOOK_MS);

  afterAll(async () => {
    await fallbackServe?.stop();
    google.clearModes();
  }, CHILD_PROCESS_HOOK_MS);

  for (const c of cases) {
    const other = cases.find((o) => o.family !== c.family)!;
    test(`an interrupted ${c.family} tool loop resumed on ${other.name} completes`, async () => {
      const home = tempDir('mcp-claude-home-');
      const cwd = tempDir('mcp-claude-cwd-');
      // --max-turns 1: the run stops with the Bash call made and its result not yet sent back.
      const first = await claudeTurn({ home, cwd, prompt: `run exactly: echo ${randomMarker()}`, model: c.model, maxTurns: 1 });
      expect(first.toolUses.some((t) => t.name === 'Bash'), first.stdout.slice(-2000)).toBe(true);
      const before = google.generations().length;
      const marker = randomMarker();
      const run = await claudeTurn({ home, cwd, prompt: `run exactly: echo ${marker}`, model: other.model, resume: String(first.events[0]?.session_id) });
      expectToolLoop(run, marker, () => `claude exit ${run.code}\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-2000)}\n${server.output().slice(-3000)}`);
      const gens = google.generations().slice(before);
      expect(gens.every((g) => modelOf(g) === other.upstream)).toBe(true);
      expect(gens.map((g) => g.mode).filter((m) => m !== 'ok')).toEqual([]);
    }, 60_000);

    test(`${c.name} exhausted mid tool loop falls back to ${c.fallback} (ENABLE_FALLBACK) and the loop completes`, async () => {
      // The other case exhausted a whole quota group of this account: forget it, as a user would with `accounts reset`.
      google.clearModes();
      const reset = await runMcp(['accounts', 'reset'], { env: fallbackEnv });
      expect(reset.code, reset.stderr).toBe(0);
      await Bun.sleep(700); // the running server notices store changes within ~0.5 s
      const before = google.generations().length;
      const marker = randomMarker();
      const pending = claudeTurn({ home: tempDir('mcp-claude-home-'), cwd: tempDir('mcp-claude-cwd-'), prompt: `run exactly: echo ${marker}`, model: c.model, via: fallbackServe });
      // The first request (the one that makes the call) is served; everything after it is exhausted.
      while (google.generations().length === before) await Bun.sleep(5);
      google.setMode({ kind: 'quota_exhausted' }, { email: FALLBACK_EMAIL, model: c.upstream });
      const run = await pending;
      const diag = `claude exit ${run.code}\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-2000)}\n${fallbackServe.output().slice(-3000)}`;
      expect(run.result?.is_error, diag).toBe(false);
      const bash = run.toolUses.find((t) => t.name === 'Bash');
      expect(run.toolResults.find((r) => r.toolUseId === bash?.id)?.text, diag).toContain(marker);
      const gens = google.generations().slice(before);
      // The tool result went to the fallback model, in a history it accepted (strict fake).
      const served = gens.filter((g) => g.mode === 'ok');
      expect(served.map(modelOf)).toEqual([c.upstream, c.fallback]);
      expect(JSON.stringify(served[1]!.body)).toContain(marker);
      expect(gens.some((g) => g.mode === 'signature_error')).toBe(false);
    }, 60_000);
  }
});

describe('signatures across the whole file', () => {
  test('no signature ever crosses families, and none is made up', () => {
    const issuedBy = { claude: new Set<string>(), gemini: new Set<string>() };
    const gens = google.generations().filter((g) => !notFromProxy.has(g));
    expect(gens.length).toBeGreaterThanOrEqual(10);
    for (const g of gens) {
      const fam = modelOf(g).startsWith('claude') ? 'claude' : 'gemini';
      for (const s of g.issuedSignatures ?? []) issuedBy[fam].add(s);
    }
    expect(issuedBy.claude.size).toBeGreaterThan(0);
    expect(issuedBy.gemini.size).toBeGreaterThan(0);
    for (const g of gens) {
      const fam = modelOf(g).startsWith('claude') ? 'claude' : 'gemini';
      for (const p of partsOf(g)) {
        const s = p.thoughtSignature;
        if (typeof s !== 'string' || s === SENTINEL) continue;
        expect(issuedBy[fam].has(s), `${fam} request carried a signature ${issuedBy[fam === 'claude' ? 'gemini' : 'claude'].has(s) ? 'of the other family' : 'never issued'}`).toBe(true);
      }
    }
  });
});
