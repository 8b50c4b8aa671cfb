// What the signature store (src/providers/antigravity/signatures.ts) holds in memory when every map
// is at its entry cap, with signatures of the sizes the captures show: a Gemini thoughtSignature on a
// function call is 5,506 characters (shared/fixtures agy_cli_1.2.0 stream_turn1_initial.resp.sse),
// a Claude R-form one 478 (stream_turn8_claude_thinking.resp.sse). Half the signatures come from a
// chunk with a character beyond Latin-1, which JavaScriptCore keeps in UTF-16 (two bytes a character).
// Prints the heap the filled store keeps (Bun.gc(true) before and after) and, where the store has
// it, its own byte count.
//
//   bun run scripts/signatures-memory.ts [entries per map = 20000]
// Not a CI test: it allocates a few hundred MB on the old, entry-bounded store.
import { heapStats } from 'bun:jsc';
import { createSignatureStore } from '../src/providers/antigravity/signatures.ts';

const N = Number(process.argv[2] ?? 20_000);
const GEMINI_LEN = 5_506;
const CLAUDE_LEN = 478;

/** A base64 signature of `len` characters, unique by `i`; UTF-16 when `wide`, as if parsed from such a chunk. */
function signature(len: number, i: number, wide: boolean, head = 'Ep0g'): string {
  const tail = `${i.toString(36)}x`;
  const body = head + 'A'.repeat(len - head.length - tail.length) + tail;
  if (!wide) return Buffer.from(body, 'latin1').toString('latin1');
  return (JSON.parse(JSON.stringify({ t: '—', s: body })) as { s: string }).s;
}
/** A Claude R-form signature: base64 of an "E…" base64 signature (§6.3). */
function claudeSignature(i: number, wide: boolean): string {
  const e = `EqQBCkgIBxABGAIqQH${'B'.repeat(340)}${i.toString(36)}`;
  const r = btoa(e).slice(0, CLAUDE_LEN);
  return wide ? (JSON.parse(JSON.stringify({ t: '—', s: r })) as { s: string }).s : r;
}

function heap(): number {
  Bun.gc(true);
  return heapStats().heapSize;
}

const before = heap();
const store = createSignatureStore();
for (let i = 0; i < N; i++) {
  const wide = i % 2 === 1;
  // Thinking: Gemini and Claude conversations alike.
  store.rememberThinking(signature(GEMINI_LEN, i, wide), 'gemini');
  store.rememberThinking(claudeSignature(i, wide), 'claude');
  store.rememberToolCall(`call_${i}`, { name: 'run_command', signature: signature(GEMINI_LEN, i, wide, 'EpMC'), family: 'gemini' });
  store.rememberTools(`session-${i.toString(16).padStart(32, '0')}`, {
    original: new Map(Array.from({ length: 8 }, (_, k) => [`mcp__server_${k}__tool_name_${k}`, `mcp__server.${k}__tool-name.${k}`])),
    placeholders: new Set(['mcp__server_0__tool_name_0']),
  });
  store.rememberImage(`picture-${i}`, signature(GEMINI_LEN, i, wide, 'ErAD'));
}
const after = heap();
const own = (store as { bytes?: () => number }).bytes?.();
const mb = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MB`;
console.log(`entries per map offered: ${N}; entries held: ${store.size()}`);
console.log(`heap kept by the store: ${mb(after - before)}${own === undefined ? '' : `; the store's own count: ${mb(own)}`}`);
