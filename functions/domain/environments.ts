import { STRATEGIES, type Strategy } from '../strategies/registry.ts';

/** The four environments, in promotion order, with their default fleet size and strategy. */
export const ENVIRONMENTS = ['Development', 'QA', 'Staging', 'Production'] as const;
export type Environment = (typeof ENVIRONMENTS)[number];

// The strategy names come from the strategy registry (one module per strategy).
export { STRATEGIES, type Strategy };

export interface EnvironmentProfile {
  name: Environment;
  defaultNodes: number;
  strategy: Strategy;
  requiresApproval: boolean;
}

export const ENVIRONMENT_PROFILES: Record<Environment, EnvironmentProfile> = {
  Development: { name: 'Development', defaultNodes: 3, strategy: 'Direct', requiresApproval: false },
  QA: { name: 'QA', defaultNodes: 5, strategy: 'Rolling', requiresApproval: false },
  Staging: { name: 'Staging', defaultNodes: 10, strategy: 'BlueGreen', requiresApproval: true },
  Production: { name: 'Production', defaultNodes: 20, strategy: 'Canary', requiresApproval: true },
};

/** Environments behind a human approval gate, in promotion order (the pipeline's gates match, pinned by a test). */
export const GATED_ENVIRONMENTS: Environment[] = ENVIRONMENTS.filter((e) => ENVIRONMENT_PROFILES[e].requiresApproval);

export function isEnvironment(value: unknown): value is Environment {
  return typeof value === 'string' && (ENVIRONMENTS as readonly string[]).includes(value);
}

/** Environments a deployment to `target` passes through, in order. */
export function environmentsUpTo(target: Environment): Environment[] {
  return ENVIRONMENTS.slice(0, ENVIRONMENTS.indexOf(target) + 1);
}
