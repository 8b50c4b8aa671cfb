// One HTTP call to an upstream through the configured client: our HTTP/1.1 client on the main
// event loop (http1.ts), or Bun's fetch behind the same few members. Both providers read answers
// through this one shape, so their stream code does not care which client carried the bytes.
import { http1Request, type Http1RequestInit, type Http1Response } from './http1.ts';

/** `native`: http1.ts (less CPU per call; ignores HTTP(S)_PROXY); `fetch`: Bun's fetch. */
export type HttpClientKind = 'native' | 'fetch';

/** `read` is one promise per piece of body, with no reader or result object in between. */
export type UpstreamResponse = Http1Response;

function fromFetch(res: Response): UpstreamResponse {
  let reader: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> } | undefined;
  return {
    status: res.status,
    ok: res.ok,
    headers: res.headers,
    text: () => res.text(),
    async read(): Promise<Uint8Array | null> {
      reader ??= res.body?.getReader();
      if (!reader) return null;
      const c = await reader.read();
      return c.done || !c.value ? null : c.value;
    },
    cancel(): void {
      (reader ? reader.cancel() : res.body?.cancel())?.catch(() => {});
    },
  };
}

/**
 * Sends one request with `client`. `poolKey` (the credential) keeps native connections apart per
 * account; fetch pools by itself. Rejects like fetch does on a connection failure or an abort.
 */
export function upstreamCall(client: HttpClientKind, url: string, init: Http1RequestInit): Promise<UpstreamResponse> {
  // Not async: the native call's promise is handed back as it is, without another one around it.
  if (client === 'native') return http1Request(url, init);
  const body = init.latin1 && typeof init.body === 'string' ? Buffer.from(init.body, 'latin1') : init.body;
  // A redirect is an answer, as on the native client: followed, it would carry the body and the
  // x-api-key header (fetch drops only authorization) to whatever origin the location names.
  return fetch(url, { method: init.method, headers: init.headers, body, signal: init.signal, redirect: 'manual' }).then(fromFetch);
}
