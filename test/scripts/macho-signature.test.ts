// The release's check of a darwin binary's ad-hoc code signature, on a small Mach-O built here. Its
// layout is modelled on `bun build --compile --target=bun-darwin-arm64` output: the signature (one
// embedded super-blob holding one code directory, version 0x20400, SHA-256 over 4 KiB pages) is the
// last thing in the file, and it covers every byte before it.
import { expect, test } from 'bun:test';
import { adhocSign, machoSignatureProblems } from '../../scripts/macho-signature.ts';

const PAGE = 4096;
const CD_HEADER = 88;

function sha256(b: Uint8Array): Buffer {
  return new Bun.CryptoHasher('sha256').update(b).digest();
}

/** A 64-bit Mach-O of `codeBytes` bytes (header included) ending in __LINKEDIT, then its signature. */
function fakeMacho(codeBytes: number, opts: { codeLimit?: number; padLastPage?: boolean } = {}): Buffer {
  const codeLimit = opts.codeLimit ?? codeBytes;
  const slots = Math.ceil(codeLimit / PAGE);
  const cdLength = CD_HEADER + slots * 32;
  const sigSize = 20 + cdLength;
  const b = Buffer.alloc(codeBytes + sigSize);
  for (let i = 120; i < codeBytes; i++) b[i] = (i * 31) & 0xff;
  b.writeUInt32LE(0xfeedfacf, 0);
  b.writeUInt32LE(0x0100000c, 4); // arm64
  b.writeUInt32LE(2, 12); // an executable
  b.writeUInt32LE(2, 16); // two load commands
  b.writeUInt32LE(88, 20);
  b.writeUInt32LE(0x19, 32); // LC_SEGMENT_64 __LINKEDIT: the last page of code and the signature
  b.writeUInt32LE(72, 36);
  b.write('__LINKEDIT', 40, 'latin1');
  b.writeBigUInt64LE(BigInt(codeBytes - PAGE), 72); // fileoff
  b.writeBigUInt64LE(BigInt(PAGE + sigSize), 80); // filesize
  b.writeBigUInt64LE(BigInt(Math.ceil((PAGE + sigSize) / 0x4000) * 0x4000), 64); // vmsize
  b.writeUInt32LE(0x1d, 104); // LC_CODE_SIGNATURE
  b.writeUInt32LE(16, 108);
  b.writeUInt32LE(codeBytes, 112);
  b.writeUInt32LE(sigSize, 116);
  const sb = codeBytes;
  b.writeUInt32BE(0xfade0cc0, sb);
  b.writeUInt32BE(sigSize, sb + 4);
  b.writeUInt32BE(1, sb + 8);
  b.writeUInt32BE(0, sb + 12); // the code directory slot
  b.writeUInt32BE(20, sb + 16);
  const cd = sb + 20;
  b.writeUInt32BE(0xfade0c02, cd);
  b.writeUInt32BE(cdLength, cd + 4);
  b.writeUInt32BE(0x20400, cd + 8);
  b.writeUInt32BE(0x20002, cd + 12); // adhoc, linker-signed
  b.writeUInt32BE(CD_HEADER, cd + 16);
  b.writeUInt32BE(slots, cd + 28);
  b.writeUInt32BE(codeLimit, cd + 32);
  b[cd + 36] = 32;
  b[cd + 37] = 2; // SHA-256
  b[cd + 39] = 12; // 4096-byte pages
  for (let i = 0; i < slots; i++) {
    const page = b.subarray(i * PAGE, Math.min((i + 1) * PAGE, codeLimit));
    const hashed = opts.padLastPage ? Buffer.concat([page, Buffer.alloc(PAGE - page.length)]) : page;
    sha256(hashed).copy(b, cd + CD_HEADER + i * 32);
  }
  return b;
}

test('a signature whose page hashes all match its bytes passes (the last, partial page hashed as it is)', () => {
  expect(machoSignatureProblems(fakeMacho(3 * PAGE + 1000))).toEqual([]);
});

test('a page whose hash does not match is found, as macOS would (it kills the binary)', () => {
  const b = fakeMacho(3 * PAGE + 1000);
  b[2 * PAGE + 5]! ^= 1;
  expect(machoSignatureProblems(b)).toEqual(['1 of 4 page hashes do not match the bytes (the first: page 2)']);
});

// What Bun 1.4.0's darwin-arm64 output did: the last, partial page hashed padded with zeros.
test('a last page hashed padded to a whole page is found', () => {
  expect(machoSignatureProblems(fakeMacho(3 * PAGE + 1000, { padLastPage: true }))).toEqual([
    '1 of 4 page hashes do not match the bytes (the first: page 3)',
  ]);
});

// What Bun 1.4.1's darwin-x64 output did: code past the signature's reach.
test('a signature that covers only part of the code is refused', () => {
  const problems = machoSignatureProblems(fakeMacho(3 * PAGE, { codeLimit: 2 * PAGE }));
  expect(problems).toContain(`the signature covers ${2 * PAGE} bytes, but ${3 * PAGE} come before it`);
});

test('bytes after the signature (which codesign --strict refuses) and files that are no Mach-O are reported', () => {
  const b = fakeMacho(PAGE);
  expect(machoSignatureProblems(Buffer.concat([b, Buffer.alloc(7)]))).toEqual(['7 bytes follow the code signature']);
  expect(machoSignatureProblems(Buffer.from('MZ not a mach-o at all, a Windows file........'))).toEqual(['not a 64-bit Mach-O executable']);
  const unsigned = Buffer.from(b);
  unsigned.writeUInt32LE(0x99, 104); // the load command is not LC_CODE_SIGNATURE any more
  expect(machoSignatureProblems(unsigned)).toEqual(['no code signature']);
});

// Bun 1.4.5's darwin-x64 output keeps the runtime's Developer ID signature, which covers neither the
// embedded app nor the changed load commands: the release signs such a file again, ad hoc.
test('a fresh ad-hoc signature matches every page, and __LINKEDIT still ends where the file does', () => {
  for (const broken of [
    fakeMacho(5 * PAGE + 123, { codeLimit: 3 * PAGE }),
    fakeMacho(5 * PAGE + 123, { padLastPage: true }),
    (() => {
      const b = fakeMacho(2 * PAGE);
      b[PAGE + 9]! ^= 1;
      return b;
    })(),
  ]) {
    expect(machoSignatureProblems(broken)).not.toEqual([]);
    const signed = adhocSign(broken);
    expect(machoSignatureProblems(signed)).toEqual([]);
    // The code before the signature is the same but for the sizes in the load commands.
    expect(signed.subarray(120, signed.readUInt32LE(112)).equals(broken.subarray(120, broken.readUInt32LE(112)))).toBe(true);
    expect(Number(signed.readBigUInt64LE(72) + signed.readBigUInt64LE(80))).toBe(signed.length);
    expect(Number(signed.readBigUInt64LE(64))).toBeGreaterThanOrEqual(Number(signed.readBigUInt64LE(80)));
  }
  expect(() => adhocSign(Buffer.from('not a mach-o'))).toThrow('not a 64-bit Mach-O executable');
});
