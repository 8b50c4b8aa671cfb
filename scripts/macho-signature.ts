// Checks the ad-hoc code signature of a macOS executable (64-bit Mach-O) without macOS. macOS kills
// an executable whose signature does not match its bytes before it runs a line ("Killed: 9", exit
// 137), and `bun build --compile` has written such signatures for darwin targets in some releases;
// the release checks each darwin file so a broken one is never shipped. Pure: bytes in, problems out.

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
