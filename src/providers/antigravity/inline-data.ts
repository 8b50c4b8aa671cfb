// Base64 payloads of image and document blocks, as Google's inlineData.data wants them. Pure.

// Line breaks and spaces only: what MIME-style encoders (76-column lines) and pasted data add.
const BASE64_WHITESPACE = /[\t\n\r ]/;
const BASE64_WHITESPACE_ALL = /[\t\n\r ]+/g;

/**
 * `data` without whitespace: clients send base64 wrapped in lines (MIME encoders) or pasted with
 * spaces, and Google's bytes fields want one clean string. Unchanged, not copied, when it has none
 * (images are megabytes).
 */
export function inlineBase64(data: string): string {
  return BASE64_WHITESPACE.test(data) ? data.replace(BASE64_WHITESPACE_ALL, '') : data;
}
