// A small Prometheus registry: counters, gauges and histograms with labels, rendered as text.
// Kept cheap: label sets are joined into one map key per series.
import { maskSecrets } from './log.ts';

type Labels = Record<string, string | number>;

interface Family {
  kind: 'counter' | 'gauge' | 'histogram';
  help: string;
  series: Map<string, { labels: Labels; value: number; buckets?: number[]; sum?: number; count?: number }>;
  bounds?: number[];
}

const families = new Map<string, Family>();
const collectors: Array<() => void> = [];

const DEFAULT_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

function key(labels: Labels): string {
  // Call sites pass their labels in a fixed order, usually already sorted: no array, no sort then.
  let k = '';
  let prev = '';
  for (const name in labels) {
    if (name < prev) return sortedKey(labels);
    prev = name;
    k += `${name}=${labels[name]}\u0000`;
  }
  return k;
}

// Reused for the names of one unsorted label set (a handful): insertion sort, no new array per call.
const names: string[] = [];

function sortedKey(labels: Labels): string {
  names.length = 0;
  for (const name in labels) {
    let i = names.length;
    names.push(name);
    while (i > 0 && names[i - 1]! > name) {
      names[i] = names[i - 1]!;
      i--;
    }
    names[i] = name;
  }
  let k = '';
  for (let i = 0; i < names.length; i++) k += `${names[i]}=${labels[names[i]!]}\u0000`;
  return k;
}

function family(name: string, kind: Family['kind'], help: string, bounds?: number[]): Family {
  let f = families.get(name);
  if (!f) {
    f = { kind, help, series: new Map(), ...(kind === 'histogram' ? { bounds: bounds ?? DEFAULT_BOUNDS } : {}) };
    families.set(name, f);
  }
  return f;
}

export function defineCounter(name: string, help: string) {
  const f = family(name, 'counter', help);
  return (labels: Labels = {}, by = 1): void => {
    const k = key(labels);
    const s = f.series.get(k);
    if (s) s.value += by;
    else f.series.set(k, { labels, value: by });
  };
}

export function defineGauge(name: string, help: string) {
  const f = family(name, 'gauge', help);
  return {
    set(labels: Labels, value: number): void {
      const k = key(labels);
      const s = f.series.get(k);
      if (s) s.value = value;
      else f.series.set(k, { labels, value });
    },
    add(labels: Labels, by: number): void {
      const k = key(labels);
      const s = f.series.get(k);
      if (s) s.value += by;
      else f.series.set(k, { labels, value: by });
    },
    reset(): void {
      f.series.clear();
    },
  };
}

export function defineHistogram(name: string, help: string, bounds?: number[]) {
  const f = family(name, 'histogram', help, bounds);
  const b = f.bounds!;
  return (labels: Labels, value: number): void => {
    const k = key(labels);
    let s = f.series.get(k);
    if (!s) {
      s = { labels, value: 0, buckets: new Array(b.length).fill(0), sum: 0, count: 0 };
      f.series.set(k, s);
    }
    for (let i = 0; i < b.length; i++) if (value <= b[i]!) s.buckets![i]!++;
    s.sum! += value;
    s.count!++;
  };
}

const MAX_LABEL_LENGTH = 128;

/**
 * A label that takes model names (at most 128 characters): up to `max` distinct values, later ones counted as "other", and
 * null as "-". An upstream model is usually one of the catalog's, but some names go upstream as
 * asked (claude-* to Z.AI, which maps them itself): a client must not grow the series without end.
 */
export function modelLabels(max = 200): (model: string | null) => string {
  const seen = new Set<string>();
  return (model) => {
    if (model === null) return '-';
    if (seen.has(model)) return model;
    // No real model id is this long; one that is would bloat every scrape of every series it is on.
    // A key pasted as the model (ANTHROPIC_MODEL by mistake) goes upstream as asked: never a label.
    if (seen.size >= max || model.length > MAX_LABEL_LENGTH || maskSecrets(model) !== model) return 'other';
    seen.add(model);
    return model;
  };
}

/** Registers a function that refreshes gauges just before rendering (account states, quotas). */
export function onCollect(fn: () => void): void {
  collectors.push(fn);
}

function esc(v: string | number): string {
  return String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function fmt(labels: Labels, extra?: [string, string]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${esc(v)}"`);
  if (extra) parts.push(`${extra[0]}="${extra[1]}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

export function renderMetrics(): string {
  for (const c of collectors) c();
  const out: string[] = [];
  for (const [name, f] of families) {
    out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.kind}`);
    for (const s of f.series.values()) {
      if (f.kind !== 'histogram') {
        out.push(`${name}${fmt(s.labels)} ${s.value}`);
        continue;
      }
      f.bounds!.forEach((le, i) => out.push(`${name}_bucket${fmt(s.labels, ['le', String(le)])} ${s.buckets![i]}`));
      out.push(`${name}_bucket${fmt(s.labels, ['le', '+Inf'])} ${s.count}`);
      out.push(`${name}_sum${fmt(s.labels)} ${s.sum}`, `${name}_count${fmt(s.labels)} ${s.count}`);
    }
  }
  return `${out.join('\n')}\n`;
}
