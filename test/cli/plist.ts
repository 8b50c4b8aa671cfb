// A tiny reader for XML property lists (the subset launchd agents use: dict, array, string, integer,
// true, false), so the generated plist is parsed for real even where plutil is missing.
export type PlistValue = string | number | boolean | PlistValue[] | { [k: string]: PlistValue };

export function parsePlist(text: string): PlistValue {
  const body = /<plist version="1\.0">([\s\S]*)<\/plist>\s*$/.exec(text.replace(/^<\?xml[^>]*\?>\s*<!DOCTYPE[^>]*>\s*/, ''));
  if (!body) throw new Error('not a plist document');
  const tokens = body[1]!.match(/<[^>]+>|[^<]+/g)!.filter((t) => t.trim() !== '' || false);
  let i = 0;
  const unescape = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&amp;/g, '&');
  const textUntil = (close: string): string => {
    let out = '';
    while (tokens[i] !== close) {
      if (i >= tokens.length || tokens[i]!.startsWith('<')) throw new Error(`expected ${close}, got ${tokens[i]}`);
      out += tokens[i++];
    }
    i++;
    return unescape(out);
  };
  const value = (): PlistValue => {
    const t = tokens[i++];
    switch (t) {
      case '<string>':
        if (tokens[i] === '</string>') {
          i++;
          return '';
        }
        return textUntil('</string>');
      case '<integer>': {
        const n = textUntil('</integer>');
        if (!/^-?\d+$/.test(n)) throw new Error(`bad integer ${n}`);
        return Number(n);
      }
      case '<true/>':
        return true;
      case '<false/>':
        return false;
      case '<array>': {
        const arr: PlistValue[] = [];
        while (tokens[i] !== '</array>') arr.push(value());
        i++;
        return arr;
      }
      case '<dict>': {
        const obj: Record<string, PlistValue> = {};
        while (tokens[i] !== '</dict>') {
          if (tokens[i++] !== '<key>') throw new Error(`expected <key>, got ${tokens[i - 1]}`);
          const k = textUntil('</key>');
          obj[k] = value();
        }
        i++;
        return obj;
      }
      default:
        throw new Error(`unexpected token ${t}`);
    }
  };
  const v = value();
  if (i !== tokens.length) throw new Error(`trailing content: ${tokens.slice(i).join('')}`);
  return v;
}
