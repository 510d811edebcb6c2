/**
 * What a deployment strategy is, in one object: its name, its state machine, how it groups nodes
 * (a pure function) and the hooks it needs around planning. Plain TypeScript: a hook that needs
 * I/O (the traffic router, agent metrics) gets it through `PlanDeps`, passed in by the task
 * handler, so strategy modules never import the AWS SDK.
 */
import type { FunctionId } from '../catalog.ts';
import type { CanaryBaseline } from '../domain/canary.ts';
import type { Environment } from '../domain/environments.ts';
import type { Colour, EnvironmentPlan, StrategySettings } from '../domain/strategy.ts';
import type { MetricsReport } from '../agent/protocol.ts';

/** A node as planning sees it. */
export interface PlanNode {
  nodeId: string;
  address: string;
  colour?: Colour;
}

/** What a strategy learned before planning (read by `prepare`, used by the pure `plan`). */
export interface PlanContext {
  /** Blue-Green: the colour serving traffic now. */
  activeColour?: Colour;
}

/** The I/O planning hooks may use; the task handler supplies the real ones, tests supply fakes. */
export interface PlanDeps {
  /** The colour serving an environment's traffic now (the traffic router). */
  activeColour(environment: Environment): Promise<Colour>;
  /** Metrics of these nodes; nodes that did not answer are left out. */
  metrics(
    nodes: PlanNode[],
  ): Promise<Pick<MetricsReport, 'nodeId' | 'cpuPercent' | 'memoryPercent' | 'latencyMs' | 'errorRatePercent' | 'requestsPerSecond' | 'window'>[]>;
}

export interface StrategyStateMachine<M extends string = string> {
  /** The catalog's state machine id (deployed as kmod-<id>, referenced as ${<id>StateMachineArn}). */
  id: M;
  file: string;
  /** Functions its ASL references as ${<Id>FunctionArn}. */
  functions: readonly FunctionId[];
}

export interface StrategyModule<N extends string = string> {
  name: N;
  /** One line for docs and the cluster view. */
  description: string;
  stateMachine: StrategyStateMachine;
  /** MaxConcurrency of each Map state of its ASL, by state name (pinned against the ASL by a test). */
  mapConcurrency: Readonly<Record<string, number>>;
  /** Whether the environment's nodes are split into blue and green (the fleet and cluster view follow it). */
  usesColours: boolean;
  /** Reads what planning needs from outside (e.g. the active colour) before the pure `plan`. */
  prepare?(environment: Environment, deps: PlanDeps): Promise<PlanContext>;
  /** Which nodes change and in which groups. Pure; throws when the fleet cannot be planned. */
  plan(nodes: readonly PlanNode[], settings: StrategySettings, context: PlanContext): EnvironmentPlan;
  /**
   * Captured at plan time and stored with the plan, for the strategy's later judgement (canary
   * metric baseline). Throws a StageRejection when it cannot be captured.
   */
  captureBaseline?(environment: Environment, nodes: readonly PlanNode[], deps: PlanDeps): Promise<CanaryBaseline>;
}

/** Keeps the literal name type (so the registry can derive the Strategy union from its modules). */
export const defineStrategy = <const N extends string>(s: StrategyModule<N>): StrategyModule<N> => s;

/** The functions every environment state machine runs: plan, deploy and verify batches, close or roll back. */
export const ENVIRONMENT_STEPS = [
  'PlanEnvironment',
  'DeployBatch',
  'VerifyBatch',
  'CompleteEnvironment',
  'RollbackEnvironment',
] as const satisfies readonly FunctionId[];
