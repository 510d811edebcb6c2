/**
 * The strategies, in one list. Everything that varies by strategy is reached through here: the
 * Strategy names (environment profiles, input schemas, OpenAPI), the strategy state machines in
 * the catalog, planning in the PlanEnvironment task. Adding a strategy is one module and one line
 * in BUILT_IN_STRATEGIES (docs/extending.md).
 */
import type { EnvironmentPlan, StrategySettings } from '../domain/strategy.ts';
import { blueGreen } from './blueGreen.ts';
import { canary } from './canary.ts';
import { direct } from './direct.ts';
import { rolling } from './rolling.ts';
import type { PlanContext, PlanNode, StrategyModule } from './types.ts';

export class StrategyRegistry<N extends string = string> {
  private readonly byName = new Map<string, StrategyModule>();

  constructor(strategies: readonly StrategyModule<N>[] = []) {
    for (const s of strategies) this.register(s);
  }

  /** Adds a strategy; a second one with the same name or state machine is refused. */
  register<M extends string>(strategy: StrategyModule<M>): StrategyRegistry<N | M> {
    if (this.byName.has(strategy.name)) throw new Error(`strategy ${strategy.name} is already registered`);
    const clash = this.list().find((s) => s.stateMachine.id === strategy.stateMachine.id || s.stateMachine.file === strategy.stateMachine.file);
    if (clash) throw new Error(`strategy ${strategy.name} would share its state machine with ${clash.name}`);
    this.byName.set(strategy.name, strategy);
    return this as StrategyRegistry<N | M>;
  }

  /** The strategy of that name; an unknown name is a programming error, not a user input. */
  get(name: N): StrategyModule<N> {
    const s = this.byName.get(name);
    if (!s) throw new Error(`no strategy named ${name}`);
    return s as StrategyModule<N>;
  }

  /** In registration order. */
  list(): StrategyModule<N>[] {
    return [...this.byName.values()] as StrategyModule<N>[];
  }

  names(): N[] {
    return this.list().map((s) => s.name);
  }

  /** Which nodes of an environment a strategy changes, and in which groups (pure). */
  plan(name: N, nodes: readonly PlanNode[], settings: StrategySettings, context: PlanContext = {}): EnvironmentPlan {
    return this.get(name).plan(nodes, settings, context);
  }
}

/** The built-in strategies, in the order their state machines are listed (and created). */
export const BUILT_IN_STRATEGIES = [direct, rolling, blueGreen, canary] as const;

type NamesOf<T extends readonly StrategyModule[]> = { [K in keyof T]: T[K]['name'] };

/**
 * The strategy names, as a tuple (zod enums and the OpenAPI document take it as it is). `map`
 * cannot keep a tuple type, hence the cast; the mapped type keeps it true to the list above.
 */
export const STRATEGIES = BUILT_IN_STRATEGIES.map((s) => s.name) as unknown as NamesOf<typeof BUILT_IN_STRATEGIES>;
export type Strategy = (typeof STRATEGIES)[number];

export const strategies = new StrategyRegistry<Strategy>(BUILT_IN_STRATEGIES);
export const strategyFor = (name: Strategy): StrategyModule<Strategy> => strategies.get(name);
