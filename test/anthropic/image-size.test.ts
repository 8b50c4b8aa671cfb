import { describe, expect, test } from 'bun:test';
import { imageSizeOf } from '../../src/anthropic/image-size.ts';
import { solidPng } from '../fakes/png.ts';

const b64 = (bytes: Uint8Array | number[]): string => Buffer.from(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)).toString('base64');
const le16 = (n: number) => [n & 0xff, n >> 8];
const be16 = (n: number) => [n >> 8, n & 0xff];
const latin = (s: string) => [...s].map((c) => c.charCodeAt(0));

/** A JPEG's head as cameras write it: SOI, JFIF APP0, a long EXIF APP1, a DHT, then a progressive frame header (SOF2). */
function jpegHead(width: number, height: number, exifBytes = 60_000): number[] {
  const app0 = [0xff, 0xe0, ...be16(16), ...latin('JFIF'), 0, 1, 1, 0, 0, 1, 0, 1, 0, 0];
  const app1 = [0xff, 0xe1, ...be16(exifBytes + 2), ...new Array<number>(exifBytes).fill(0x41)];
  const dht = [0xff, 0xc4, ...be16(5), 0, 0, 0];
  const sof2 = [0xff, 0xc2, ...be16(17), 8, ...be16(height), ...be16(width), 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1];
  return [0xff, 0xd8, ...app0, ...app1, ...app1, ...dht, ...sof2, 0xff, 0xda];
}

/** RIFF/WEBP with one image chunk header of `kind` and its size fields (WebP container spec). */
function webpHead(kind: 'VP8 ' | 'VP8L' | 'VP8X', width: number, height: number): number[] {
  const riff = [...latin('RIFF'), 0, 0, 0, 0, ...latin('WEBP'), ...latin(kind), 10, 0, 0, 0];
  if (kind === 'VP8X') return [...riff, 0, 0, 0, 0, ...le16(width - 1), 0, ...le16(height - 1), 0];
  if (kind === 'VP8 ') return [...riff, 0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, ...le16(width), ...le16(height)];
  const bits = (width - 1) | ((height - 1) << 14);
  return [...riff, 0x2f, bits & 0xff, (bits >>> 8) & 0xff, (bits >>> 16) & 0xff, (bits >>> 24) & 0xff, 0, 0, 0, 0, 0];
}

describe('imageSizeOf', () => {
  test('PNG, GIF and the three WebP kinds from their first bytes', () => {
    expect(imageSizeOf(b64(solidPng(37, 11)))).toEqual({ width: 37, height: 11 });
    expect(imageSizeOf(b64([...latin('GIF89a'), ...le16(300), ...le16(20), 0, 0, 0]))).toEqual({ width: 300, height: 20 });
    expect(imageSizeOf(b64(webpHead('VP8X', 1920, 1080)))).toEqual({ width: 1920, height: 1080 });
    expect(imageSizeOf(b64(webpHead('VP8 ', 640, 480)))).toEqual({ width: 640, height: 480 });
    expect(imageSizeOf(b64(webpHead('VP8L', 100, 3000)))).toEqual({ width: 100, height: 3000 });
  });

  test("a JPEG's frame header past long EXIF segments", () => {
    expect(imageSizeOf(b64(jpegHead(4032, 3024)))).toEqual({ width: 4032, height: 3024 });
  });

  test('base64 broken by line breaks reads the same', () => {
    const wrapped = b64(solidPng(50, 60)).replace(/(.{8})/g, '$1\n');
    expect(imageSizeOf(wrapped)).toEqual({ width: 50, height: 60 });
  });

  test('anything else is null', () => {
    for (const s of ['', 'AAAA', b64(latin('%PDF-1.7 and more bytes here')), b64([0xff, 0xd8, 0xff, 0xda, 0, 0, 0, 0, 0, 0, 0, 0]), '!!!!']) {
      expect(imageSizeOf(s)).toBeNull();
    }
  });
});
