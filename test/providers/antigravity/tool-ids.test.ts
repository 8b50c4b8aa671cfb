import { describe, expect, test } from 'bun:test';
import { clientToolId, googleToolIds, sanitizedToolId } from '../../../src/providers/antigravity/tool-ids.ts';

const FINE = /^[a-zA-Z0-9_-]+$/;

describe('googleToolIds', () => {
  test('ids that fit are kept; a request with only such ids maps nothing', () => {
    const map = googleToolIds(['toolu_vrtx_01A', 'call_1421923', 'toolu_x-y']);
    expect(['toolu_vrtx_01A', 'call_1421923', 'toolu_x-y'].map(map)).toEqual(['toolu_vrtx_01A', 'call_1421923', 'toolu_x-y']);
  });

  test('an id whose rewrite another id of the request already has gets another one', () => {
    // A client id that happens to be exactly what 'a.b' would become.
    const squatter = sanitizedToolId('a.b');
    const map = googleToolIds([squatter, 'a.b', 'a:b']);
    const ids = [squatter, 'a.b', 'a:b'].map(map);
    expect(ids[0]).toBe(squatter);
    expect(new Set(ids).size).toBe(3);
    for (const id of ids) expect(id).toMatch(FINE);
  });

  test('the same id maps the same way wherever it appears (a call and its result)', () => {
    const map = googleToolIds(['fn.1', 'fn.1', 'fn.2']);
    expect(map('fn.1')).toBe(map('fn.1'));
    expect(map('fn.1')).not.toBe(map('fn.2'));
  });
});

describe('clientToolId', () => {
  test.each(['call.7:x', 'a b', 'é', 'x/y'])('%s becomes an id the client can send back', (id) => {
    expect(clientToolId(id)).toMatch(FINE);
    expect(clientToolId(id)).toBe(clientToolId(id));
  });

  test('an id that fits is unchanged', () => expect(clientToolId('call_1421923')).toBe('call_1421923'));

  test('ids from Google that differ only in a Latin-1 letter stay apart (they are text, not byte strings)', () => {
    const ids = ['call.é', 'call.è', 'call.ü'].map(clientToolId);
    expect(new Set(ids).size).toBe(3);
    for (const id of ids) expect(id).toMatch(FINE);
  });
});
