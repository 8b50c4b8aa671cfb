// Checks the ad-hoc code signature of a macOS executable (64-bit Mach-O) without macOS. macOS kills
// an executable whose signature does not match its bytes before it runs a line ("Killed: 9", exit
// 137), and `bun build --compile` has written such signatures for darwin targets in some releases;
// the release checks each darwin file, signs a broken one again, ad hoc, and never ships one that
// still fails. Pure: bytes in, problems (or the signed bytes) out.

const MH_MAGIC_64 = 0xfeedfacf;
const LC_CODE_SIGNATURE = 0x1d;
const CSMAGIC_EMBEDDED_SIGNATURE = 0xfade0cc0;
const CSMAGIC_CODEDIRECTORY = 0xfade0c02;
const CSSLOT_CODEDIRECTORY = 0;
const HASHES: Record<number, string> = { 1: 'sha1', 2: 'sha256', 3: 'sha256' };

/** What is wrong with the code signature of `bytes` (empty: every page hash matches). */
export function machoSignatureProblems(bytes: Uint8Array): string[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 32 || b.readUInt32LE(0) !== MH_MAGIC_64) return ['not a 64-bit Mach-O executable'];
  const ncmds = b.readUInt32LE(16);
  let off = 32;
  let sig: { at: number; size: number } | null = null;
  for (let i = 0; i < ncmds && off + 8 <= b.length; i++) {
    const cmd = b.readUInt32LE(off);
    const size = b.readUInt32LE(off + 4);
    if (cmd === LC_CODE_SIGNATURE && off + 16 <= b.length) sig = { at: b.readUInt32LE(off + 8), size: b.readUInt32LE(off + 12) };
    if (size < 8) return ['a load command is malformed'];
    off += size;
  }
  if (!sig) return ['no code signature'];
  if (sig.at + sig.size > b.length) return ['the code signature runs past the end of the file'];
  const problems: string[] = [];
  // codesign --strict refuses bytes after the signature (a stale tail of the runtime's own one).
  if (sig.at + sig.size < b.length) problems.push(`${b.length - sig.at - sig.size} bytes follow the code signature`);
  const sb = b.subarray(sig.at, sig.at + sig.size);
  if (sb.length < 12 || sb.readUInt32BE(0) !== CSMAGIC_EMBEDDED_SIGNATURE) return [...problems, 'the code signature is not an embedded signature'];
  let cdAt = -1;
  for (let i = 0; i < sb.readUInt32BE(8) && 20 + i * 8 <= sb.length; i++) {
    if (sb.readUInt32BE(12 + i * 8) === CSSLOT_CODEDIRECTORY) cdAt = sb.readUInt32BE(16 + i * 8);
  }
  if (cdAt < 0 || cdAt + 40 > sb.length || sb.readUInt32BE(cdAt) !== CSMAGIC_CODEDIRECTORY) return [...problems, 'the code signature has no code directory'];
  const cd = sb.subarray(cdAt);
  const hashOffset = cd.readUInt32BE(16);
  const nCodeSlots = cd.readUInt32BE(28);
  const codeLimit = cd.readUInt32BE(32);
  const hashSize = cd[36]!;
  const algorithm = HASHES[cd[37]!];
  const pageSize = cd[39]! === 0 ? codeLimit : 2 ** cd[39]!;
  if (!algorithm) return [...problems, `unknown hash type ${cd[37]}`];
  // Everything before the signature is code the kernel checks.
  if (codeLimit !== sig.at) problems.push(`the signature covers ${codeLimit} bytes, but ${sig.at} come before it`);
  const slots = Math.ceil(codeLimit / pageSize);
  if (nCodeSlots !== slots) problems.push(`the signature has ${nCodeSlots} page hashes for ${slots} pages`);
  if (hashOffset + nCodeSlots * hashSize > cd.length) return [...problems, 'the page hashes run past the code directory'];
  let wrong = 0;
  let first = -1;
  for (let i = 0; i < Math.min(nCodeSlots, slots); i++) {
    const start = i * pageSize;
    const page = b.subarray(start, Math.min(start + pageSize, codeLimit));
    const want = cd.subarray(hashOffset + i * hashSize, hashOffset + (i + 1) * hashSize);
    const got = new Bun.CryptoHasher(algorithm as 'sha1' | 'sha256').update(page).digest().subarray(0, hashSize);
    if (!got.equals(want)) {
      wrong++;
      if (first < 0) first = i;
    }
  }
  if (wrong) problems.push(`${wrong} of ${slots} page hashes do not match the bytes (the first: page ${first})`);
  return problems;
}

const LC_SEGMENT_64 = 0x19;
const MH_EXECUTE = 2;
const CS_ADHOC = 0x2;
const CS_EXECSEG_MAIN_BINARY = 0x1;
const CD_VERSION = 0x20400;
const CD_HEADER = 88;
const PAGE_SHIFT = 12;

const roundUp = (n: number, to: number) => Math.ceil(n / to) * to;

function segment(b: Buffer, name: string): number {
  const ncmds = b.readUInt32LE(16);
  let off = 32;
  for (let i = 0; i < ncmds; i++) {
    if (b.readUInt32LE(off) === LC_SEGMENT_64 && b.subarray(off + 8, off + 24).toString('latin1').replace(/\0+$/, '') === name) return off;
    off += b.readUInt32LE(off + 4);
  }
  return -1;
}

/**
 * The executable with its signature replaced by a fresh ad-hoc one (what `codesign -s -` writes, as
 * Bun does for darwin-arm64): one code directory hashing every 4 KiB page before the signature. The
 * signature stays where it was, at the end of __LINKEDIT, which grows or shrinks to fit it.
 */
export function adhocSign(bytes: Uint8Array): Buffer {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 32 || b.readUInt32LE(0) !== MH_MAGIC_64) throw new Error('not a 64-bit Mach-O executable');
  const ncmds = b.readUInt32LE(16);
  let lc = -1;
  for (let i = 0, off = 32; i < ncmds; i++, off += b.readUInt32LE(off + 4)) if (b.readUInt32LE(off) === LC_CODE_SIGNATURE) lc = off;
  if (lc < 0) throw new Error('no code signature to replace');
  const codeLimit = b.readUInt32LE(lc + 8);
  // The identifier of the signature there, when it has one.
  let ident = 'mcp';
  const sb = b.subarray(codeLimit, Math.min(b.length, codeLimit + b.readUInt32LE(lc + 12)));
  if (sb.length >= 20 && sb.readUInt32BE(0) === CSMAGIC_EMBEDDED_SIGNATURE) {
    const cdAt = sb.readUInt32BE(16);
    if (cdAt + 40 <= sb.length && sb.readUInt32BE(cdAt) === CSMAGIC_CODEDIRECTORY) {
      const at = cdAt + sb.readUInt32BE(cdAt + 20);
      const end = sb.indexOf(0, at);
      if (end > at) ident = sb.subarray(at, end).toString('latin1');
    }
  }
  const identBytes = Buffer.from(`${ident}\0`, 'latin1');
  const slots = Math.ceil(codeLimit / 2 ** PAGE_SHIFT);
  const cdLength = CD_HEADER + identBytes.length + slots * 32;
  const size = roundUp(20 + cdLength, 16);
  const out = Buffer.alloc(codeLimit + size);
  b.copy(out, 0, 0, codeLimit);
  out.writeUInt32LE(size, lc + 12);
  const linkedit = segment(out, '__LINKEDIT');
  if (linkedit >= 0) {
    const fileoff = Number(out.readBigUInt64LE(linkedit + 40));
    const filesize = out.length - fileoff;
    out.writeBigUInt64LE(BigInt(filesize), linkedit + 48);
    out.writeBigUInt64LE(BigInt(Math.max(Number(out.readBigUInt64LE(linkedit + 32)), roundUp(filesize, 0x4000))), linkedit + 32);
  }
  const text = segment(out, '__TEXT');
  const s = codeLimit;
  out.writeUInt32BE(CSMAGIC_EMBEDDED_SIGNATURE, s);
  out.writeUInt32BE(20 + cdLength, s + 4);
  out.writeUInt32BE(1, s + 8);
  out.writeUInt32BE(CSSLOT_CODEDIRECTORY, s + 12);
  out.writeUInt32BE(20, s + 16);
  const cd = s + 20;
  out.writeUInt32BE(CSMAGIC_CODEDIRECTORY, cd);
  out.writeUInt32BE(cdLength, cd + 4);
  out.writeUInt32BE(CD_VERSION, cd + 8);
  out.writeUInt32BE(CS_ADHOC, cd + 12);
  out.writeUInt32BE(CD_HEADER + identBytes.length, cd + 16);
  out.writeUInt32BE(CD_HEADER, cd + 20);
  out.writeUInt32BE(0, cd + 24);
  out.writeUInt32BE(slots, cd + 28);
  out.writeUInt32BE(codeLimit, cd + 32);
  out[cd + 36] = 32;
  out[cd + 37] = 2; // SHA-256
  out[cd + 39] = PAGE_SHIFT;
  if (text >= 0) {
    out.writeBigUInt64BE(out.readBigUInt64LE(text + 40), cd + 64);
    out.writeBigUInt64BE(out.readBigUInt64LE(text + 48), cd + 72);
  }
  out.writeBigUInt64BE(out.readUInt32LE(12) === MH_EXECUTE ? BigInt(CS_EXECSEG_MAIN_BINARY) : 0n, cd + 80);
  identBytes.copy(out, cd + CD_HEADER);
  // Last: the pages hashed include the load commands changed above.
  const hashes = cd + CD_HEADER + identBytes.length;
  for (let i = 0; i < slots; i++) {
    const page = out.subarray(i << PAGE_SHIFT, Math.min((i + 1) << PAGE_SHIFT, codeLimit));
    new Bun.CryptoHasher('sha256').update(page).digest().copy(out, hashes + i * 32);
  }
  return out;
}
