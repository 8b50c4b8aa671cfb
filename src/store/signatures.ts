// Which thinking signatures each provider streamed, as hashes (never the signatures themselves),
// and the signatures of recent Gemini function calls and drawn pictures, which Gemini must get back
// as they were.
// Written in batches off the request path; read once when a provider is made.
import type { Database } from 'bun:sqlite';
import { immediate } from './db.ts';

export interface IssuedSignature {
  hash: number;
  issuedAt: number;
}

/** The newest `limit` hashes `provider` issued at or after `since`, oldest first (its memory's age order). */
export function loadIssued(db: Database, provider: string, since: number, limit: number): number[] {
  const rows = db
    .query('SELECT hash FROM issued_signatures WHERE provider = ? AND issued_at >= ? ORDER BY issued_at DESC LIMIT ?')
    .values(provider, since, limit) as Array<[number]>;
  return rows.reverse().map((r) => r[0]);
}

/**
 * Writes `batch` and forgets hashes older than `since` and beyond the newest `keep`, so the table
 * stays as small as the provider's memory of them.
 */
export function saveIssued(db: Database, provider: string, batch: readonly IssuedSignature[], since: number, keep: number): void {
  if (batch.length === 0) return;
  immediate(db, () => {
    const put = db.query(
      `INSERT INTO issued_signatures (provider, hash, issued_at) VALUES (?, ?, ?)
       ON CONFLICT (provider, hash) DO UPDATE SET issued_at = excluded.issued_at`,
    );
    for (const s of batch) put.run(provider, s.hash, s.issuedAt);
    db.query('DELETE FROM issued_signatures WHERE provider = ? AND issued_at < ?').run(provider, since);
    db.query(
      `DELETE FROM issued_signatures WHERE provider = ?1 AND issued_at <
         (SELECT issued_at FROM issued_signatures WHERE provider = ?1 ORDER BY issued_at DESC LIMIT 1 OFFSET ?2)`,
    ).run(provider, Math.max(0, keep - 1));
  });
}

/** What a Gemini function call needs back when it is history: its thought signature, and whether its id was made up. */
export interface CallSignature {
  toolUseId: string;
  signature: string | null;
  minted: boolean;
}

/** The newest `limit` calls kept at or after `since`, oldest first. */
export function loadCallSignatures(db: Database, since: number, limit: number): CallSignature[] {
  const rows = db
    .query('SELECT tool_use_id, signature, minted FROM call_signatures WHERE issued_at >= ? ORDER BY issued_at DESC LIMIT ?')
    .values(since, limit) as Array<[string, string | null, number]>;
  return rows.reverse().map(([toolUseId, signature, minted]) => ({ toolUseId, signature, minted: minted === 1 }));
}

/** Writes `batch` and forgets calls older than `since` and beyond the newest `keep`. */
export function saveCallSignatures(db: Database, batch: ReadonlyArray<CallSignature & { issuedAt: number }>, since: number, keep: number): void {
  if (batch.length === 0) return;
  immediate(db, () => {
    const put = db.query(
      `INSERT INTO call_signatures (tool_use_id, signature, minted, issued_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (tool_use_id) DO UPDATE SET signature = excluded.signature, minted = excluded.minted, issued_at = excluded.issued_at`,
    );
    for (const c of batch) put.run(c.toolUseId, c.signature, c.minted ? 1 : 0, c.issuedAt);
    forgetOld(db, 'call_signatures', since, keep);
  });
}

/** Forgets the rows of a signature table older than `since` and beyond the newest `keep` (inside the caller's transaction). */
function forgetOld(db: Database, table: 'call_signatures' | 'image_signatures', since: number, keep: number): void {
  db.query(`DELETE FROM ${table} WHERE issued_at < ?`).run(since);
  db.query(
    `DELETE FROM ${table} WHERE issued_at <
       (SELECT issued_at FROM ${table} ORDER BY issued_at DESC LIMIT 1 OFFSET ?)`,
  ).run(Math.max(0, keep - 1));
}

/** A picture a Gemini image model drew: a hash of its base64 (never the picture) and the signature it came with. */
export interface ImageSignature {
  hash: number;
  signature: string;
}

/** The newest `limit` pictures' signatures kept at or after `since`, oldest first. */
export function loadImageSignatures(db: Database, since: number, limit: number): ImageSignature[] {
  const rows = db
    .query('SELECT hash, signature FROM image_signatures WHERE issued_at >= ? ORDER BY issued_at DESC LIMIT ?')
    .values(since, limit) as Array<[number, string]>;
  return rows.reverse().map(([hash, signature]) => ({ hash, signature }));
}

/** Writes `batch` and forgets pictures' signatures older than `since` and beyond the newest `keep`. */
export function saveImageSignatures(db: Database, batch: ReadonlyArray<ImageSignature & { issuedAt: number }>, since: number, keep: number): void {
  if (batch.length === 0) return;
  immediate(db, () => {
    const put = db.query(
      `INSERT INTO image_signatures (hash, signature, issued_at) VALUES (?, ?, ?)
       ON CONFLICT (hash) DO UPDATE SET signature = excluded.signature, issued_at = excluded.issued_at`,
    );
    for (const i of batch) put.run(i.hash, i.signature, i.issuedAt);
    forgetOld(db, 'image_signatures', since, keep);
  });
}
