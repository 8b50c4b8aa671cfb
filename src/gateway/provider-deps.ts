// The providers' seam to the store (ProviderDeps): account changes they learn (fresh tokens,
// project ids), queued while the store refuses them, and the hashes of the thinking signatures and
// the signatures of Gemini calls and drawn pictures they issue, written in batches off the request path.
import type { Database } from 'bun:sqlite';
import { log, maskSecrets } from '../log.ts';
import type { KeptCallSignature, KeptImageSignature, ProviderDeps, ProviderId } from '../providers/provider.ts';
import { ISSUED_HASHES_KEPT } from '../providers/issued-hashes.ts';
import type { Account, AccountPatch } from '../store/accounts.ts';
import { updateAccount } from '../store/accounts.ts';
import { briefly, isBusyError, isClosedError, LOCK_WARN_AFTER_MS } from '../store/db.ts';
import { loadCallSignatures, loadImageSignatures, loadIssued, saveCallSignatures, saveImageSignatures, saveIssued } from '../store/signatures.ts';

// Provider writes (fresh tokens, project ids) go to the store on the server's own connection, which
// does not move its own data_version: the pool of that database is told directly so its cached
// account (the one handed to send()) never carries stale credentials.
const accountListeners = new WeakMap<Database, Set<(a: Account) => void>>();

export function listenersOf(db: Database): Set<(a: Account) => void> {
  let s = accountListeners.get(db);
  if (!s) accountListeners.set(db, (s = new Set()));
  return s;
}

/** A change as the log names it: the account and the fields, never their values (tokens). */
function changeOf(id: string, patch: AccountPatch): string {
  return `the change to account ${id} (${Object.keys(patch).join(', ')})`;
}

/** How soon a provider's write the store refused under another process's lock is tried again. */
const PROVIDER_WRITE_RETRY_MS = 1_000;
/** How often a write the store refused for another reason (read-only, a full disk) is tried again. */
export const PROVIDER_WRITE_REFUSED_RETRY_MS = 30_000;
/** Writes kept per account while the store is locked: a refresh an hour, a project id once. */
const PROVIDER_WRITES_KEPT = 8;

/** How often the hashes of newly issued thinking signatures are written: a restart loses at most this much. */
const ISSUED_FLUSH_MS = 1_000;
/** Hashes kept in the store per provider: as many as a provider remembers. */
const ISSUED_KEEP = ISSUED_HASHES_KEPT;
/** As long as a session binding: a conversation idle longer has moved on. */
const ISSUED_KEEP_MS = 7 * 24 * 60 * 60 * 1000;

/**
 * Gemini function-call signatures kept in the store: as long as the provider's memory keeps them
 * (antigravity/signatures.ts, 2 h), and no more than it holds (a signature runs to 5.5 KB).
 */
const CALLS_KEEP_MS = 2 * 60 * 60 * 1000;
const CALLS_KEEP = 2_000;

/**
 * Drawn pictures' signatures kept in the store: as long as the provider's memory keeps them
 * (antigravity/signatures.ts, 2 h), and no more than it holds: the pictures' 2 MB share of it holds
 * ~1 000 signatures of ~1.8 KB, ~360 of 5.5 KB (no capture tells their size). Loaded oldest first,
 * any the memory cannot hold push out only older ones.
 */
const IMAGES_KEEP_MS = 2 * 60 * 60 * 1000;
const IMAGES_KEEP = 1_000;

export interface ServerProviderDeps extends ProviderDeps {
  /**
   * Writes what is still waiting (account changes a lock refused, then hashes), waiting out a lock:
   * the last write, at stop, before the database closes. Hashes remembered after it (a stream still
   * ending) are not written; idempotent.
   */
  flush(): void;
  /**
   * Why account changes a provider learnt (fresh tokens, project ids) cannot be stored, with how many
   * wait; null while they are. A lock counts once it has lasted LOCK_WARN_AFTER_MS.
   */
  writeTrouble(): string | null;
}

export function providerDepsFor(db: Database, now: () => number): ServerProviderDeps {
  // Hashes of thinking signatures the providers streamed, written in batches off the request path.
  const issuedPending = new Map<ProviderId, Map<number, number>>();
  let issuedTimer: ReturnType<typeof setTimeout> | undefined;
  // Gemini function calls' signatures by tool_use id, written with the hashes.
  const callsPending = new Map<string, KeptCallSignature & { issuedAt: number }>();
  // Drawn pictures' signatures by the picture's hash, written with them.
  const imagesPending = new Map<number, KeptImageSignature & { issuedAt: number }>();
  /** Set by the last flush, or by a database found closed: nothing is scheduled after it. */
  let issuedDone = false;
  /** The tables ('issued', 'calls', 'images') whose refusal for good was said since a write to them last landed: once is enough. */
  const refusalsSaid = new Set<string>();

  function flushIssued(wait: boolean): void {
    if (issuedTimer) clearTimeout(issuedTimer);
    issuedTimer = undefined;
    if (issuedDone) return;
    const writes: Array<{ table: string; what: string; save: () => void; done: () => void }> = [];
    for (const [provider, batch] of issuedPending) {
      const rows = [...batch].map(([hash, issuedAt]) => ({ hash, issuedAt }));
      writes.push({
        table: 'issued',
        what: `${rows.length} thinking signature hash(es) of ${provider}`,
        save: () => saveIssued(db, provider, rows, now() - ISSUED_KEEP_MS, ISSUED_KEEP),
        done: () => issuedPending.delete(provider),
      });
    }
    if (callsPending.size) {
      const rows = [...callsPending.values()];
      writes.push({
        table: 'calls',
        what: `${rows.length} Gemini function call signature(s)`,
        save: () => saveCallSignatures(db, rows, now() - CALLS_KEEP_MS, CALLS_KEEP),
        done: () => callsPending.clear(),
      });
    }
    if (imagesPending.size) {
      const rows = [...imagesPending.values()];
      writes.push({
        table: 'images',
        what: `${rows.length} drawn picture signature(s)`,
        save: () => saveImageSignatures(db, rows, now() - IMAGES_KEEP_MS, IMAGES_KEEP),
        done: () => imagesPending.clear(),
      });
    }
    for (const { table, what, save, done } of writes) {
      try {
        if (wait) save();
        else briefly(db, save);
        done();
        refusalsSaid.delete(table);
      } catch (err) {
        // A closed database never opens again: retrying it each second would fail for ever.
        if (isClosedError(err)) {
          issuedDone = true;
          issuedPending.clear();
          callsPending.clear();
          imagesPending.clear();
          return;
        }
        // Locked: kept for the next round (bounded below), when the other process may have let go.
        if (isBusyError(err)) {
          if (!wait) scheduleIssued();
          return;
        }
        // Anything else (read-only, full, a damaged table) would fail the same way each second:
        // dropped, said once. At worst a restart costs these conversations their older thinking, as
        // before hashes were stored. The store's words name tables, never the hashes or signatures.
        done();
        if (!refusalsSaid.has(table)) {
          refusalsSaid.add(table);
          log.warn(`could not store ${what}: dropped, as later ones will be while the database refuses them: ${maskSecrets((err as Error)?.message ?? String(err))}`);
        }
      }
    }
  }

  /** Queues a signature for the next batch, newest last, the oldest dropped past `keep` (a store refusing for long). */
  function queueSignature<K, V>(pending: Map<K, V & { issuedAt: number }>, key: K, value: V, keep: number): void {
    if (issuedDone) return;
    pending.delete(key);
    pending.set(key, { ...value, issuedAt: now() });
    if (pending.size > keep) pending.delete(pending.keys().next().value!);
    scheduleIssued();
  }

  function scheduleIssued(): void {
    if (issuedTimer || issuedDone) return;
    issuedTimer = setTimeout(() => flushIssued(false), ISSUED_FLUSH_MS);
    issuedTimer.unref?.();
  }

  // Writes the store refused (a lock held past the brief wait, a read-only or full disk), per account
  // in order: a refreshed token (maybe a rotated refresh token, which a restart could not do
  // without) must still reach the store once it takes writes again.
  const queued = new Map<string, AccountPatch[]>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  /** When writes began to meet another process's lock; null once one lands. */
  let lockedSince: number | null = null;
  /** Whether the lock was warned about (its end is then worth a word too). */
  let lockWarned = false;
  /** Why the last account change was not stored (a lasting lock, a full disk); null once one is. */
  let accountTrouble: string | null = null;
  /** The last refusal was not a lock: retried at the slower pace, and said once until a write lands. */
  let refusedForLong = false;
  let refusalWarned = false;

  /** True once the patch is done with: stored, or the database closed. `wait`: the store's full wait (at stop). */
  function write(id: string, patch: AccountPatch, wait = false): boolean {
    let updated: Account | null;
    try {
      // Providers write on the request path (a token refresh), and the server is one thread: the
      // store's 5 s busy_timeout would freeze every request and stream while the CLI holds the lock.
      updated = wait ? updateAccount(db, id, patch, now()) : briefly(db, () => updateAccount(db, id, patch, now()));
    } catch (err) {
      if (isBusyError(err)) {
        refusedForLong = false;
        // A lock held a moment (the CLI writing) is routine; one that lasts is worth a word, once.
        lockedSince ??= now();
        if (now() - lockedSince >= LOCK_WARN_AFTER_MS) {
          accountTrouble = (err as Error)?.message ?? String(err);
          if (!lockWarned) {
            lockWarned = true;
            log.warn(`could not store ${changeOf(id, patch)} yet, the database has been locked for ${LOCK_WARN_AFTER_MS / 1000} s: will retry`);
          }
        }
        return false;
      }
      // A database closed at stop takes nothing more: said, as a rotated token may be among it.
      if (isClosedError(err)) {
        log.warn(`could not store ${changeOf(id, patch)}: the database is already closed`);
        return true;
      }
      // A store that refuses it (read-only, full) must not fail the request that asked for it: the
      // provider keeps what it learnt (a fresh token, a project id) in memory meanwhile, and the
      // change waits to be tried again, so a rotated refresh token still lands once space is freed.
      accountTrouble = (err as Error)?.message ?? String(err);
      refusedForLong = true;
      if (!refusalWarned) {
        refusalWarned = true;
        log.warn(`could not store ${changeOf(id, patch)}: ${accountTrouble}; kept in memory and tried again every ${PROVIDER_WRITE_REFUSED_RETRY_MS / 1000} s`);
      }
      return false;
    }
    lockedSince = null;
    accountTrouble = null;
    refusedForLong = false;
    if (updated) for (const fn of listenersOf(db)) fn(updated);
    return true;
  }

  function retry(): void {
    timer = undefined;
    for (const [id, list] of queued) {
      let stored = 0;
      while (list.length && write(id, list[0]!)) {
        list.shift();
        stored++;
      }
      if (list.length) break; // still refused: the rest would meet the same
      // Once per account, when all that waited for it is in, however many changes that was.
      if (stored && (lockWarned || refusalWarned)) log.info(`stored the ${stored === 1 ? 'change' : `${stored} changes`} to account ${id} after all`);
      queued.delete(id);
    }
    if (queued.size) schedule();
    else {
      // Nothing left waiting: the next lock or refusal is a new one.
      lockWarned = false;
      refusalWarned = false;
      lockedSince = null;
    }
  }

  function schedule(): void {
    if (timer) return;
    timer = setTimeout(retry, refusedForLong ? PROVIDER_WRITE_REFUSED_RETRY_MS : PROVIDER_WRITE_RETRY_MS);
    timer.unref?.();
  }

  return {
    updateAccount(id: string, patch: AccountPatch): void {
      const list = queued.get(id);
      // Behind one still waiting: the older must land first, or it would undo this one.
      if (list) {
        list.push(patch);
        if (list.length > PROVIDER_WRITES_KEPT) list.shift();
        // A refusal that was not a lock (a full disk) fails at once when it persists, so a new
        // change is a cheap moment to try the waiting ones again rather than up to 30 s later.
        if (refusedForLong) {
          clearTimeout(timer);
          retry();
        }
        return;
      }
      if (write(id, patch)) return;
      queued.set(id, [patch]);
      schedule();
    },
    now,
    issuedSignatures: {
      load: (provider) => loadIssued(db, provider, now() - ISSUED_KEEP_MS, ISSUED_KEEP),
      remember(provider, hash) {
        if (issuedDone) return;
        let batch = issuedPending.get(provider);
        if (!batch) issuedPending.set(provider, (batch = new Map()));
        batch.delete(hash);
        batch.set(hash, now());
        // A store refusing for long holds no more than the provider itself remembers.
        if (batch.size > ISSUED_KEEP) batch.delete(batch.keys().next().value!);
        scheduleIssued();
      },
    },
    callSignatures: {
      load: () => loadCallSignatures(db, now() - CALLS_KEEP_MS, CALLS_KEEP),
      remember: (call) => queueSignature(callsPending, call.toolUseId, call, CALLS_KEEP),
    },
    imageSignatures: {
      load: () => loadImageSignatures(db, now() - IMAGES_KEEP_MS, IMAGES_KEEP),
      remember: (image) => queueSignature(imagesPending, image.hash, image, IMAGES_KEEP),
    },
    writeTrouble() {
      if (accountTrouble === null) return null;
      let waiting = 0;
      for (const list of queued.values()) waiting += list.length;
      return waiting ? `${accountTrouble} (${waiting} account change(s) waiting in memory)` : `${accountTrouble} (an account change was not stored)`;
    },
    flush() {
      // Account writes the store refused (a refreshed, maybe rotated, token) are the ones a restart
      // cannot do without: written first, each waiting out a lock once more.
      if (timer) clearTimeout(timer);
      timer = undefined;
      // A lock that outlasted one full wait is not waited out again for each account: stopping goes on.
      let locked = false;
      for (const [id, list] of queued) {
        while (!locked && list.length && write(id, list[0]!, true)) list.shift();
        locked ||= list.length > 0;
        if (list.length) log.warn(`could not store ${changeOf(id, list[0]!)} before stopping: ${accountTrouble ?? 'the database stayed locked'}`);
      }
      queued.clear();
      flushIssued(true);
      issuedDone = true;
      issuedPending.clear();
      callsPending.clear();
      imagesPending.clear();
    },
  };
}
