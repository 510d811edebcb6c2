/**
 * Facts the ASL files state again, pinned to where they are stated first: the catalog (function
 * timeouts, state machine ids) and the environment profiles (strategy, approval gate).
 */
import { describe, expect, it } from 'vitest';
import { FUNCTIONS, STATE_MACHINES, stateMachineArnKey, type FunctionId, type StateMachineId } from '../../functions/catalog.ts';
import { ENVIRONMENTS, ENVIRONMENT_PROFILES, GATED_ENVIRONMENTS } from '../../functions/domain/environments.ts';
import { strategyFor } from '../../functions/strategies/registry.ts';
import { allStates, readAsl, type AslState } from './asl.ts';

const pipeline = readAsl(STATE_MACHINES.Pipeline.file).States;
/** Where the pipeline enters an environment: its approval gate if it has one, else its deployment. */
const entryOf = (env: (typeof ENVIRONMENTS)[number]) => (ENVIRONMENT_PROFILES[env].requiresApproval ? `Request${env}Approval` : `Deploy${env}`);
const lambdaOf = (s: AslState) => /^\$\{([A-Za-z0-9]+)FunctionArn\}$/.exec(s.Resource ?? '')?.[1] as FunctionId | undefined;

describe('Task timeouts', () => {
  /*
   * The rule: a Lambda Task state's TimeoutSeconds equals its function's timeoutSeconds in the
   * catalog. Shorter, Step Functions would give up (and retry) while the first invocation still
   * runs; longer, the state timeout can never fire and only misleads the reader. The catalog is
   * the source (it sets the Lambda timeout), the ASL repeats it because ASL cannot import it.
   * Tasks whose timeout is a runtime value (TimeoutSecondsPath) are the listed exceptions.
   */
  const RUNTIME_TIMEOUT = new Set(['SmokeTest']); // the configured smoke-test window, from the plan

  it.each(Object.entries(STATE_MACHINES))('%s: every Lambda Task times out with its function', (_id, spec) => {
    for (const [name, state] of allStates(spec.file)) {
      const fn = lambdaOf(state);
      if (state.Type !== 'Task' || !fn) continue;
      if (RUNTIME_TIMEOUT.has(name)) {
        expect(state.TimeoutSecondsPath, name).toBeDefined();
        continue;
      }
      expect(state.TimeoutSeconds, `${spec.file} ${name}`).toBe(FUNCTIONS[fn].timeoutSeconds);
    }
  });

  it("approval gates wait for the approval's expiry, not a fixed time", () => {
    for (const [name, state] of allStates(STATE_MACHINES.Pipeline.file)) {
      if (state.Resource?.endsWith('.waitForTaskToken')) {
        expect(state.TimeoutSeconds, name).toBeUndefined();
        expect(state.TimeoutSecondsPath, name).toMatch(/^\$\.approvalTimeoutSeconds\./);
      }
    }
  });
});

describe('the pipeline follows the environment profiles', () => {
  it.each(ENVIRONMENTS)('Deploy%s starts the state machine of its strategy, for that environment', (env) => {
    const deploy = pipeline[`Deploy${env}`];
    expect(deploy.Resource).toBe('arn:aws:states:::states:startExecution.sync:2');
    const machine = strategyFor(ENVIRONMENT_PROFILES[env].strategy).stateMachine.id;
    expect(deploy.Parameters?.StateMachineArn).toBe(`\${${stateMachineArnKey(machine as StateMachineId)}}`);
    expect(deploy.Parameters?.Input.environment).toBe(env);
    expect(deploy.Parameters?.['Name.$']).toBe(`States.Format('{}-${env}', $.executionId)`);
  });

  it('promotes in order: each environment after the previous one, stopping at the target', () => {
    expect(readAsl(STATE_MACHINES.Pipeline.file).StartAt).toBe('Build');
    expect(pipeline.SecurityScan.Next).toBe(entryOf(ENVIRONMENTS[0]));
    for (const [i, env] of ENVIRONMENTS.entries()) {
      const next = ENVIRONMENTS[i + 1];
      if (!next) {
        expect(pipeline[`Deploy${env}`].Next).toBe('Validation');
        continue;
      }
      const after = pipeline[`Deploy${env}`].Next!;
      expect(pipeline[after].Choices).toEqual([{ Variable: '$.targetEnvironment', StringEquals: env, Next: 'Validation' }]);
      expect(pipeline[after].Default).toBe(entryOf(next));
    }
  });

  it('gates exactly the environments the approval task accepts', () => {
    expect(ENVIRONMENTS.filter((e) => pipeline[`Request${e}Approval`])).toEqual(GATED_ENVIRONMENTS);
  });

  it.each(ENVIRONMENTS)('%s has an approval gate exactly when its profile requires approval', (env) => {
    const gate = pipeline[`Request${env}Approval`];
    const close = pipeline[`Close${env}Gate`];
    if (!ENVIRONMENT_PROFILES[env].requiresApproval) {
      expect(gate).toBeUndefined();
      expect(close).toBeUndefined();
      return;
    }
    expect(gate.Resource).toBe('arn:aws:states:::lambda:invoke.waitForTaskToken');
    expect(gate.Parameters?.Payload.environment).toBe(env);
    expect(gate.TimeoutSecondsPath).toBe(`$.approvalTimeoutSeconds.${env}`);
    expect(gate.Next).toBe(`Deploy${env}`);
    expect(gate.Catch?.map((c) => c.Next)).toEqual([`Close${env}Gate`]);
    expect(close.Parameters?.environment).toBe(env);
  });
});

describe('direct and rolling ASL (kept as two files, docs/adr/0007-strategy-modules.md)', () => {
  const outer = (file: string) => {
    const { DeployAllBatches, DeployBatchesInTurn, StartStabilisation, StabiliseBatches, AfterStabilisation, Stabilise, VerifyAllBatches, ...rest } =
      readAsl(file).States;
    const plan = rest.PlanEnvironment;
    return { ...rest, PlanEnvironment: { ...plan, Next: 'MAP', Parameters: { ...plan.Parameters, strategy: 'S' } } };
  };
  it('share planning, completion and rollback', () => {
    expect(outer(STATE_MACHINES.Rolling.file)).toEqual(outer(STATE_MACHINES.Direct.file));
  });
  it('stabilise before the health checks (docs/adr/0023): Direct once over every batch, Rolling each batch in turn, one Lambda for both', () => {
    const direct = readAsl(STATE_MACHINES.Direct.file).States;
    const rolling = readAsl(STATE_MACHINES.Rolling.file).States;
    const inner = (map: any) => map.ItemProcessor.States;
    // Direct: deploy every batch, then one stabilisation loop, then health checks two batches per call.
    expect(Object.keys(inner(direct.DeployAllBatches))).toEqual(['DeployBatch']);
    expect(direct.DeployAllBatches.Next).toBe('StartStabilisation');
    expect(direct.StabiliseBatches.Parameters).not.toHaveProperty('batch.$');
    expect(direct.AfterStabilisation.Default).toBe('VerifyAllBatches');
    expect((direct.VerifyAllBatches as { ItemsPath?: string }).ItemsPath).toBe('$.stabilising.groups');
    expect(Object.keys(inner(direct.VerifyAllBatches))).toEqual(['VerifyBatch']);
    // Rolling: each batch stabilises on its own before its check.
    const r = inner(rolling.DeployBatchesInTurn);
    expect(Object.keys(r)).toEqual(['DeployBatch', 'StartStabilisation', 'StabiliseBatches', 'AfterStabilisation', 'Stabilise', 'VerifyBatch']);
    expect(r.StabiliseBatches.Parameters['batch.$']).toBe('$.batch');
    expect(r.AfterStabilisation.Default).toBe('VerifyBatch');
    for (const loop of [direct, r]) {
      expect(loop.StabiliseBatches.Resource).toBe(['${', 'StabiliseBatchesFunctionArn}'].join(''));
      expect(loop.AfterStabilisation.Choices).toEqual([{ Variable: '$.stabilising.action', StringEquals: 'wait', Next: 'Stabilise' }]);
      expect(loop.Stabilise).toEqual({ Type: 'Wait', SecondsPath: '$.stabilising.waitSeconds', Next: 'StabiliseBatches' });
    }
  });
});

describe('the correlation id reaches every task (docs/adr/0030-telemetry.md)', () => {
  type Raw = {
    Type: string;
    Resource?: string;
    Parameters?: Record<string, any>;
    ItemSelector?: Record<string, any>;
    ItemProcessor?: { States: Record<string, Raw> };
  };
  /** Each state that hands input to a Lambda function or a child execution, with the object it builds (or the Map item it gets). */
  const inputs = (states: Record<string, Raw>, item?: Record<string, any>, path = ''): [string, Record<string, any> | undefined][] =>
    Object.entries(states).flatMap(([name, s]): [string, Record<string, any> | undefined][] => {
      const at = `${path}${name}`;
      if (s.Type === 'Map') return [[`${at} (items)`, s.ItemSelector], ...inputs(s.ItemProcessor?.States ?? {}, s.ItemSelector, `${at}/`)];
      if (s.Type !== 'Task') return [];
      if (s.Resource?.startsWith('arn:aws:states:::lambda:invoke')) return [[at, s.Parameters?.Payload]];
      if (s.Resource?.startsWith('arn:aws:states:::states:startExecution')) return [[at, s.Parameters?.Input]];
      return [[at, s.Parameters ?? item]];
    });

  for (const [id, spec] of Object.entries(STATE_MACHINES)) {
    it(`${id}: every task's input, child execution's input and Map item passes $.correlationId on`, () => {
      const found = inputs(readAsl(spec.file).States as Record<string, Raw>);
      expect(found.length).toBeGreaterThan(0);
      for (const [state, input] of found) expect(input?.['correlationId.$'], `${spec.file}: ${state}`).toBe('$.correlationId');
    });
  }
});
