// The real server and routing run inside the test process (createApp + createRouting with the real
// providers, on an ephemeral port), for end-to-end tests that also reach into the pool or the store.
import type { Database } from 'bun:sqlite';
import type { Config } from '../../src/config.ts';
import { createRouting, providerDepsFor, type Routing } from '../../src/gateway/index.ts';
import { createAntigravityProvider } from '../../src/providers/antigravity/index.ts';
import { createZaiProvider } from '../../src/providers/zai/index.ts';
import { createApp } from '../../src/server/app.ts';

export interface InProcessServer {
  url: string;
  routing: Routing;
  /** Stops the server and the routing, then closes `db`. */
  stop(): Promise<void>;
}

/** Serves `db` as the caller seeded it; resolves once the first quota round is over. */
export async function serveInProcess(config: Readonly<Config>, db: Database, now: () => number = () => Date.now()): Promise<InProcessServer> {
  const deps = providerDepsFor(db, now);
  const routing = createRouting({
    db,
    config,
    now,
    providers: { zai: createZaiProvider(config, deps), antigravity: createAntigravityProvider(config, deps) },
  });
  const app = createApp({ config, gateway: routing.gateway, ops: routing.ops });
  app.listen({ port: 0, hostname: '127.0.0.1' });
  await routing.start();
  await routing.quota.pollAll();
  return {
    url: `http://127.0.0.1:${app.server!.port}`,
    routing,
    async stop() {
      await app.server?.stop(true);
      await routing.stop();
      // As serve does: the signatures the last answers streamed are stored before the database closes.
      deps.flush();
      db.close();
    },
  };
}
