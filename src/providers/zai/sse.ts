// Incremental Server-Sent Events decoding: text chunks in, complete events out. Tolerates CRLF or
// CR line ends (also split between chunks), events split across reads, comments and stray
// non-SSE lines (ignored, as the SDK and Claude Code do).

export interface SseEvent {
  /** The `event:` name, null when the event had none. */
  event: string | null;
  data: string;
}

export interface SseDecoder {
  /** Feeds one chunk of text; returns the events it completed. */
  push(chunk: string): SseEvent[];
  /** End of input: returns a last event that was not followed by a blank line, if any. */
  end(): SseEvent[];
}

export function createSseDecoder(): SseDecoder {
  let buffer = '';
  let skipLeadingLf = false;
  let event: string | null = null;
  let data: string[] = [];

  function dispatch(out: SseEvent[]): void {
    if (data.length) out.push({ event, data: data.join('\n') });
    event = null;
    data = [];
  }

  function line(l: string, out: SseEvent[]): void {
    if (l === '') return dispatch(out);
    if (l.charCodeAt(0) === 58 /* ':' */) return; // comment
    const colon = l.indexOf(':');
    // A line without a colon is a field name with an empty value; none we use, so garbage is ignored.
    if (colon < 0) return;
    const field = l.slice(0, colon);
    let value = l.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
  }

  function drain(out: SseEvent[]): void {
    let start = 0;
    const n = buffer.length;
    for (let i = 0; i < n; i++) {
      const c = buffer.charCodeAt(i);
      if (c === 10 /* \n */ || c === 13 /* \r */) {
        line(buffer.slice(start, i), out);
        if (c === 13) {
          if (i + 1 < n) {
            if (buffer.charCodeAt(i + 1) === 10) i++;
          } else skipLeadingLf = true; // "\r" ended the chunk: a "\n" may open the next one
        }
        start = i + 1;
      }
    }
    buffer = start === 0 ? buffer : buffer.slice(start);
  }

  return {
    push(chunk: string): SseEvent[] {
      const out: SseEvent[] = [];
      if (!chunk) return out;
      if (skipLeadingLf) {
        skipLeadingLf = false;
        if (chunk.charCodeAt(0) === 10) chunk = chunk.slice(1);
      }
      buffer += chunk;
      drain(out);
      return out;
    },
    end(): SseEvent[] {
      const out: SseEvent[] = [];
      if (buffer) {
        line(buffer, out);
        buffer = '';
      }
      dispatch(out);
      return out;
    },
  };
}
