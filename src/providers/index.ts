// The provider registry: one Provider per upstream kind, built from the config. The gateway and the
// CLI (`accounts verify`) get their providers here and nowhere else.
import type { Config } from '../config.ts';
import { createAntigravityProvider } from './antigravity/index.ts';
import type { Provider, ProviderDeps, ProviderId } from './provider.ts';
import { createZaiProvider } from './zai/index.ts';

export type Providers = Partial<Record<ProviderId, Provider>>;

export function createProviders(config: Readonly<Config>, deps: ProviderDeps): Providers {
  return {
    zai: createZaiProvider(config, deps),
    antigravity: createAntigravityProvider(config, deps),
  };
}
