// The page count of a base64 PDF, read from its page tree, so that a token estimate can follow the
// document's length rather than its byte size (a scanned page weighs far more than a page of text).
// Pure; null when the count is not in plain sight (a page tree inside compressed object streams).

/** A page tree node (`/Type /Pages`) without nested dictionaries: its `/Count` is the pages below it. */
const PAGE_TREE = /<<([^<>]*\/Type\s*\/Pages(?![A-Za-z])[^<>]*)>>/g;
const COUNT = /\/Count\s+(\d+)/;
/** One page object. */
const PAGE = /\/Type\s*\/Page(?![A-Za-z])/g;

export function pdfPageCount(base64: string): number | null {
  const bytes = Buffer.from(base64, 'base64');
  if (bytes.length < 5 || bytes.toString('latin1', 0, 5) !== '%PDF-') return null;
  const text = bytes.toString('latin1');
  // The root node counts every page; the largest count is the root's, even after incremental updates.
  let root = 0;
  for (const m of text.matchAll(PAGE_TREE)) {
    const n = Number(COUNT.exec(m[1]!)?.[1] ?? 0);
    if (n > root) root = n;
  }
  if (root > 0) return root;
  let pages = 0;
  for (const _ of text.matchAll(PAGE)) pages++;
  return pages > 0 ? pages : null;
}
