// Sizes of the long-lived in-memory structures (bindings, caches, pools), by name, for soak runs
// (scripts/soak.ts) and tests: a structure that grows without end over days shows here first.
// Read only when asked: nothing on the request path.

const sizes = new Map<string, () => number>();

/** Registers (or replaces: the latest instance of a name wins) how to count a structure. */
export function trackSize(name: string, count: () => number): void {
  sizes.set(name, count);
}

/** The current size of every tracked structure. */
export function trackedSizes(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, count] of sizes) out[name] = count();
  return out;
}
