// The pixel size of a base64 image (PNG, JPEG, GIF, WebP), read from its header alone, so that a
// token estimate can follow the picture's size. Pure; null for anything it cannot read.

export interface ImageSize {
  width: number;
  height: number;
}

/** JPEG headers (EXIF, ICC profiles) can be long; the frame header is looked for this far in. */
const JPEG_SCAN_BYTES = 256 * 1024;

/** The first `bytes` bytes of base64 data (whitespace allowed, as the API allows it). */
function head(base64: string, bytes: number): Uint8Array {
  let chars = Math.ceil(bytes / 3) * 4;
  let s = base64.slice(0, chars);
  if (/\s/.test(s)) {
    // Whitespace takes room: strip it from a longer piece, then cut back to whole quanta.
    s = base64.slice(0, chars * 2).replace(/\s+/g, '');
    chars = Math.min(chars, s.length - (s.length % 4));
    s = s.slice(0, chars);
  }
  return new Uint8Array(Buffer.from(s, 'base64'));
}

function ascii(b: Uint8Array, at: number, len: number): string {
  return String.fromCharCode(...b.subarray(at, at + len));
}

function sized(width: number, height: number): ImageSize | null {
  return width > 0 && height > 0 ? { width, height } : null;
}

function pngSize(b: Uint8Array): ImageSize | null {
  if (b.length < 24 || ascii(b, 12, 4) !== 'IHDR') return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return sized(v.getUint32(16), v.getUint32(20));
}

function gifSize(b: Uint8Array): ImageSize | null {
  return b.length < 10 ? null : sized(b[6]! | (b[7]! << 8), b[8]! | (b[9]! << 8));
}

function webpSize(b: Uint8Array): ImageSize | null {
  if (b.length < 30) return null;
  const kind = ascii(b, 12, 4);
  if (kind === 'VP8 ') return sized((b[26]! | (b[27]! << 8)) & 0x3fff, (b[28]! | (b[29]! << 8)) & 0x3fff);
  if (kind === 'VP8L') {
    const bits = b[21]! | (b[22]! << 8) | (b[23]! << 16) | (b[24]! << 24);
    return sized((bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1);
  }
  if (kind === 'VP8X') return sized(1 + (b[24]! | (b[25]! << 8) | (b[26]! << 16)), 1 + (b[27]! | (b[28]! << 8) | (b[29]! << 16)));
  return null;
}

/** Walks the JPEG's segments to its frame header (SOF0-SOF15 but DHT, JPG and DAC). */
function jpegSize(b: Uint8Array): ImageSize | null {
  let at = 2;
  while (at + 9 < b.length) {
    if (b[at] !== 0xff) return null;
    const marker = b[at + 1]!;
    // Fill bytes, and the markers that stand alone (no length).
    if (marker === 0xff) {
      at++;
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      at += 2;
      continue;
    }
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return sized((b[at + 7]! << 8) | b[at + 8]!, (b[at + 5]! << 8) | b[at + 6]!);
    }
    if (marker === 0xda || marker === 0xd9) return null; // image data or the end, and no frame header
    at += 2 + ((b[at + 2]! << 8) | b[at + 3]!);
  }
  return null;
}

/** Width and height of base64 image data, or null when it is no PNG, JPEG, GIF or WebP it can read. */
export function imageSizeOf(base64: string): ImageSize | null {
  const start = head(base64, 32);
  if (start.length < 10) return null;
  if (start[0] === 0x89 && ascii(start, 1, 3) === 'PNG') return pngSize(start);
  if (ascii(start, 0, 4) === 'GIF8') return gifSize(start);
  if (ascii(start, 0, 4) === 'RIFF' && ascii(start, 8, 4) === 'WEBP') return webpSize(start);
  if (start[0] === 0xff && start[1] === 0xd8) return jpegSize(head(base64, JPEG_SCAN_BYTES));
  return null;
}
