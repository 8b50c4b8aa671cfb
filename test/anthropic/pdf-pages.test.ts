import { expect, test } from 'bun:test';
import { pdfPageCount } from '../../src/anthropic/pdf-pages.ts';
import { pdfWithoutCount, plainPdf } from '../fixtures/pdf/make-pdf.ts';

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

test("the page tree root's /Count is the page count", () => {
  expect(pdfPageCount(b64(plainPdf(1)))).toBe(1);
  expect(pdfPageCount(b64(plainPdf(37)))).toBe(37);
});

test('without a readable /Count, the /Page objects are counted (a /Pages node is not a page)', () => {
  expect(pdfPageCount(b64(pdfWithoutCount(5)))).toBe(5);
});

test('base64 broken into lines reads the same', () => {
  expect(pdfPageCount(b64(plainPdf(4)).replace(/(.{76})/g, '$1\n'))).toBe(4);
});

test('no PDF, or no page tree in plain sight: null', () => {
  expect(pdfPageCount('')).toBeNull();
  expect(pdfPageCount(b64(new TextEncoder().encode('not a pdf /Type /Page')))).toBeNull();
  expect(pdfPageCount(b64(new TextEncoder().encode('%PDF-1.7\n1 0 obj\n<< /Type /ObjStm /N 40 >>\nstream\n...\n')))).toBeNull();
});
