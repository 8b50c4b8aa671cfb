// Request text as byte strings: strings whose characters are the bytes of the text's UTF-8, one
// character per byte (0-255), as reading the bytes as Latin-1 gives them. Why: JavaScriptCore keeps
// a string that holds any character beyond Latin-1 in UTF-16, and JSON.parse and JSON.stringify are
// several times slower on such strings. In real Claude Code turns three quarters of the text is in
// them ("—", "→", emoji), and with them a 90 KB turn cost the proxy ~40 % more CPU and ~13 MB more
// peak memory (docs/benchmarks.md, "Real turns are not ASCII"). Read as Latin-1, every string of
// the body is 8-bit; the translators copy strings without looking at their characters, and the
// upstream body, written out as Latin-1, carries the client's exact bytes.
//
// The rule that keeps this safe: a /v1/messages body is byte strings from the server to the
// upstream socket. What the proxy adds to an upstream body is ASCII or goes through toByteString;
// what goes back to the client, to a log or to the database goes through fromByteString.

const NON_ASCII = /[^\x00-\x7f]/;
const HIGH_BYTE = /[\x80-\xff]/;
const BEYOND_LATIN1 = /[^\x00-\xff]/;

/** The byte string of `text` (ASCII comes back as it is). */
export function toByteString(text: string): string {
  return NON_ASCII.test(text) ? Buffer.from(text, 'utf8').toString('latin1') : text;
}

/**
 * The text a byte string holds. A string with a character beyond Latin-1 is not a byte string and
 * comes back as it is; a cut UTF-8 sequence becomes U+FFFD.
 */
export function fromByteString(s: string): string {
  if (!HIGH_BYTE.test(s) || BEYOND_LATIN1.test(s)) return s;
  return Buffer.from(s, 'latin1').toString('utf8');
}

/**
 * Turns every string (keys too) in a parsed JSON value into its byte string, in place, and returns
 * the value. Iterative: the value may be nested as deep as JSON.parse allows.
 */
export function toByteStrings(root: unknown): unknown {
  if (typeof root === 'string') return toByteString(root);
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const x: unknown = v[i];
        if (typeof x === 'string') v[i] = toByteString(x);
        else if (typeof x === 'object' && x !== null) stack.push(x);
      }
    } else if (typeof v === 'object' && v !== null) {
      const o = v as Record<string, unknown>;
      let renamed = false;
      for (const k in o) {
        const x = o[k];
        if (typeof x === 'string') o[k] = toByteString(x);
        else if (typeof x === 'object' && x !== null) stack.push(x);
        if (!renamed && NON_ASCII.test(k)) renamed = true;
      }
      if (renamed) {
        // Re-added in their order (the model sees tool arguments in it); defineProperty keeps a
        // "__proto__" key a plain key, as JSON.parse made it.
        const entries = Object.entries(o);
        for (const [k] of entries) delete o[k];
        for (const [k, x] of entries) Object.defineProperty(o, toByteString(k), { value: x, enumerable: true, writable: true, configurable: true });
      }
    }
  }
  return root;
}

/**
 * Whether a JSON text holds a \u escape of a character beyond ASCII. Such an escape would parse to
 * a real character among the bytes; \u0000-\u007f are ASCII either way. Conservative: an escaped
 * backslash followed by "u" counts too, which only costs the slower parse.
 */
function hasWideEscape(json: string): boolean {
  for (let i = json.indexOf('\\u'); i >= 0; i = json.indexOf('\\u', i + 2)) {
    const c = json.charCodeAt(i + 4);
    if (json.charCodeAt(i + 2) !== 0x30 || json.charCodeAt(i + 3) !== 0x30 || c < 0x30 || c > 0x37) return true;
  }
  return false;
}

/**
 * JSON.parse of UTF-8 bytes, with every string in the result a byte string. `bytes` must be valid
 * UTF-8 (the caller checks, to name the problem). Throws what JSON.parse throws.
 */
export function parseJsonAsByteStrings(bytes: Uint8Array): unknown {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // A byte order mark is not part of the JSON; TextDecoder drops it too.
  const start = buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0;
  const json = buf.toString('latin1', start);
  if (!hasWideEscape(json)) return JSON.parse(json);
  // Clients that escape everything beyond ASCII (Python's json.dumps does by default): parsed as
  // text, then converted. Lone surrogates become U+FFFD, as they would in any UTF-8 encoding.
  return toByteStrings(JSON.parse(buf.toString('utf8', start)));
}

/**
 * JSON.parse of a JSON text held in a byte string (a tool input a client kept as a string), with
 * every string in the result a byte string: a \u escape beyond ASCII would otherwise parse to a real
 * character among the bytes, and reach the upstream as a wrong byte.
 */
export function parseByteStringJson(json: string): unknown {
  return hasWideEscape(json) ? toByteStrings(JSON.parse(fromByteString(json))) : JSON.parse(json);
}

/** A copy of a small value of byte strings, with the text in its strings (through JSON). */
export function textCopyOf<T>(value: T): T {
  return JSON.parse(Buffer.from(JSON.stringify(value), 'latin1').toString('utf8')) as T;
}
