import { describe, expect, it } from 'vitest';
import { STATE_MACHINES, strategyStateMachines } from '../../../functions/catalog.ts';
import { ENVIRONMENT_PROFILES, STRATEGIES } from '../../../functions/domain/environments.ts';
import { planBatches } from '../../../functions/domain/strategy.ts';
import { BUILT_IN_STRATEGIES, StrategyRegistry, strategies, strategyFor } from '../../../functions/strategies/registry.ts';
import { defineStrategy, ENVIRONMENT_STEPS } from '../../../functions/strategies/types.ts';
import { expectModuleMatchesAsl, fleet, settings } from './conformance.ts';

/** A fifth strategy, as docs/extending.md adds one: one module, one ASL file, one registry line. */
const trickle = defineStrategy({
  name: 'Trickle',
  description: 'one node at a time',
  stateMachine: { id: 'Trickle', file: 'test/unit/strategies/trickle.asl.json', functions: ENVIRONMENT_STEPS },
  mapConcurrency: { DeployBatchesInTurn: 1 },
  usesColours: false,
  plan: (nodes) => ({
    batches: planBatches(
      nodes.map((n) => n.nodeId),
      1,
    ),
  }),
});

describe('the strategy registry', () => {
  it('holds the four built-in strategies, and the Strategy names come from it', () => {
    expect(strategies.names()).toEqual(['Direct', 'Rolling', 'BlueGreen', 'Canary']);
    expect([...STRATEGIES]).toEqual(strategies.names());
    for (const p of Object.values(ENVIRONMENT_PROFILES)) expect(strategyFor(p.strategy).name).toBe(p.strategy);
  });

  it('lists each strategy state machine in the catalog, before the pipeline that starts them', () => {
    expect(Object.keys(STATE_MACHINES)).toEqual(['Direct', 'Rolling', 'BlueGreen', 'Canary', 'Pipeline', 'Rollback']);
    for (const s of BUILT_IN_STRATEGIES)
      expect(STATE_MACHINES[s.name]).toEqual({ file: s.stateMachine.file, functions: [...s.stateMachine.functions], stateMachines: [] });
  });

  it('dispatches to a fifth registered strategy: planning, state machine list, ASL agreement', () => {
    const registry = new StrategyRegistry(BUILT_IN_STRATEGIES).register(trickle);
    expect(registry.names()).toEqual(['Direct', 'Rolling', 'BlueGreen', 'Canary', 'Trickle']);
    expect(registry.plan('Trickle', fleet(3), settings).batches).toEqual([['n-1'], ['n-2'], ['n-3']]);
    // The built-ins still plan through the same registry.
    expect(registry.plan('Rolling', fleet(3), settings).batches).toEqual([['n-1', 'n-2'], ['n-3']]);
    expect(Object.keys(strategyStateMachines(registry))).toEqual(['Direct', 'Rolling', 'BlueGreen', 'Canary', 'Trickle']);
    expect(strategyStateMachines(registry).Trickle).toEqual({
      file: 'test/unit/strategies/trickle.asl.json',
      functions: [...ENVIRONMENT_STEPS],
      stateMachines: [],
    });
    expectModuleMatchesAsl(trickle);
    // Registering on a new registry leaves the application's registry as it was.
    expect(strategies.names()).not.toContain('Trickle');
  });

  it('refuses duplicate names and shared state machines, and unknown names', () => {
    const registry = new StrategyRegistry(BUILT_IN_STRATEGIES);
    expect(() => registry.register(strategyFor('Direct'))).toThrow(/Direct is already registered/);
    expect(() => registry.register({ ...trickle, stateMachine: { ...trickle.stateMachine, id: 'Rolling' } })).toThrow(/share its state machine with Rolling/);
    expect(() => registry.register({ ...trickle, stateMachine: { ...trickle.stateMachine, file: 'statemachines/canary.asl.json' } })).toThrow(/with Canary/);
    expect(() => (registry as StrategyRegistry<string>).get('Nope')).toThrow(/no strategy named Nope/);
  });
});
