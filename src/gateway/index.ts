// Wires the routing brain for `mcp serve`: pool (state), catalog (models), quota poller, gateway
// (dispatch) and ops (health, limits, metrics), all over one database and one clock.
import type { Database } from 'bun:sqlite';
import type { Config } from '../config.ts';
import { log } from '../log.ts';
import { createPool, type Pool } from '../pool/pool.ts';
import { KNOWN_ZAI_MODELS } from '../providers/zai/models.ts';
import type { Account } from '../store/accounts.ts';
import { createCatalog, type Catalog, type Route } from './catalog.ts';
import { createGateway, defaultSleep, type Providers, type Sleep } from './gateway.ts';
import { createOps, quotaAsOf, servesPastQuotaOf } from './ops.ts';
import { listenersOf } from './provider-deps.ts';
import { createQuotaPoller, type QuotaPoller } from './quota.ts';
import type { Gateway, Ops } from './types.ts';

export type { Providers } from './gateway.ts';
export { createCatalog } from './catalog.ts';
export { createGateway } from './gateway.ts';
export { providerDepsFor, type ServerProviderDeps } from './provider-deps.ts';
export { sessionKeyOf } from './session.ts';

export interface Routing {
  gateway: Gateway;
  ops: Ops;
  pool: Pool;
  catalog: Catalog;
  quota: QuotaPoller;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createRouting(opts: {
  db: Database;
  config: Readonly<Config>;
  providers: Providers;
  now?: () => number;
  sleep?: Sleep;
  /** Why usage rows cannot be written (the recorder's trouble), for /health; none: never. */
  usageTrouble?: () => string | null;
  /** Why provider account changes cannot be stored (ServerProviderDeps.writeTrouble), for /health. */
  accountWriteTrouble?: () => string | null;
}): Routing {
  const { db, config, providers } = opts;
  const now = opts.now ?? (() => Date.now());
  const pool = createPool({
    db,
    now,
    defaultCooldownSec: config.defaultCooldownSec,
    softLimitThreshold: config.softLimitEnabled ? config.softLimitThreshold : null,
    maxConcurrentPerAccount: config.maxConcurrentPerAccount || null,
    servesPastQuota: servesPastQuotaOf(config),
  });
  const onAccount = (a: Account): void => pool.replaceAccount(a);
  listenersOf(db).add(onAccount);
  const catalog = createCatalog(config, { zai: KNOWN_ZAI_MODELS });
  const quota = createQuotaPoller({ config, pool, catalog, providers, now });

  function modelExtras(route: Route): Record<string, unknown> {
    // Per account the tightest window; over the pool the best account (what can still be served).
    const model = route.upstreamModel.toLowerCase();
    let best: number | null = null;
    let accounts = 0;
    const t = now();
    for (const s of pool.state()) {
      if (s.account.provider !== route.provider || s.account.status !== 'active') continue;
      let tightest: number | null = null;
      for (const raw of s.quotas) {
        if (raw.remainingFraction === null) continue;
        if (raw.model !== '*' && raw.model.toLowerCase() !== model) continue;
        const q = quotaAsOf(raw, t);
        if (tightest === null || q.remainingFraction! < tightest) tightest = q.remainingFraction;
      }
      if (tightest === null) continue;
      accounts++;
      if (best === null || tightest > best) best = tightest;
    }
    return best === null ? {} : { quota: { remaining_fraction: best, accounts } };
  }

  const gateway = createGateway({
    config,
    pool,
    catalog,
    providers,
    now,
    sleep: opts.sleep ?? defaultSleep,
    onRateLimited: (id) => quota.afterRateLimit(id),
    onServed: (lease) => quota.afterUse(lease.account.id, lease.remaining ?? null),
    modelExtras,
  });
  const ops = createOps({
    pool,
    providers,
    now,
    pollQuota: (id) => quota.pollAccount(id),
    ...(opts.usageTrouble ? { usageTrouble: opts.usageTrouble } : {}),
    ...(opts.accountWriteTrouble ? { accountWriteTrouble: opts.accountWriteTrouble } : {}),
  });
  let started = false;

  return {
    gateway,
    ops,
    pool,
    catalog,
    quota,
    async start() {
      if (started) return;
      started = true;
      pool.start();
      quota.start();
    },
    async stop() {
      listenersOf(db).delete(onAccount);
      if (!started) return;
      started = false;
      await quota.stop();
      pool.stop();
      ops.dispose();
    },
  };
}
