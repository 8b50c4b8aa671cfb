// A conversation the pool served from one provider and then another (a fallback, a /model switch)
// carries the first one's thinking blocks. Their signatures mean nothing to the next upstream, and
// forwarding them leaks one provider's signed reasoning to another (anthropic-claude-code-zai.md
// §2.5, §3.7, Part 4): a thinking block whose signature the target did not issue is dropped before
// the call. Redacted thinking is left to the providers (Google and Z.AI drop it; no provider here emits it).
import type { MessagesRequest } from '../anthropic/schema.ts';
import type { Provider } from '../providers/provider.ts';

type Block = { type: string; signature?: unknown; [k: string]: unknown };

/**
 * `req` without the thinking blocks whose signature `foreign` claims; `req` itself (no copy) when
 * none is. Only assistant turns carry thinking; the others are passed on as they are.
 */
export function withoutForeignThinking(req: MessagesRequest, foreign: (signature: string) => boolean): MessagesRequest {
  let messages: MessagesRequest['messages'] | null = null;
  const source = req.messages;
  for (let i = 0; i < source.length; i++) {
    const m = source[i]!;
    if (m.role !== 'assistant' || typeof m.content === 'string') continue;
    const blocks = m.content as readonly Block[];
    let kept: Block[] | null = null;
    for (let j = 0; j < blocks.length; j++) {
      const b = blocks[j]!;
      const drop = b.type === 'thinking' && typeof b.signature === 'string' && b.signature !== '' && foreign(b.signature);
      if (drop) kept ??= blocks.slice(0, j);
      else kept?.push(b);
    }
    if (!kept) continue;
    messages ??= source.slice();
    // A turn left with nothing (it only thought) stays, empty: each provider already mends empty
    // turns its own way (Z.AI folds them away, Google pads them), and no words are put in its mouth.
    messages[i] = { ...m, content: kept } as (typeof source)[number];
  }
  return messages ? { ...req, messages } : req;
}

type Signer = Pick<Provider, 'issuedThinking'>;

/**
 * Which signatures are foreign to `target`: any it did not issue, when it can tell (a signature lost
 * from its memory costs reasoning continuity, while forwarding another's, e.g. a Gemini signature
 * after a restart, leaks it); else any that another provider of the pool claims.
 */
export function foreignTo(target: Signer, others: readonly Signer[]): (signature: string) => boolean {
  if (target.issuedThinking) {
    const own = target.issuedThinking.bind(target);
    return (sig) => !own(sig);
  }
  return (sig) => others.some((p) => p.issuedThinking?.(sig) === true);
}

/** Whether any assistant turn holds a thinking block: the cheap test before asking who signed it. */
export function hasThinking(req: MessagesRequest): boolean {
  for (const m of req.messages) {
    if (m.role !== 'assistant' || typeof m.content === 'string') continue;
    for (const b of m.content as readonly Block[]) if (b.type === 'thinking') return true;
  }
  return false;
}
