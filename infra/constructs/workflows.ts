/**
 * The state machines: each ASL file of the catalog deployed as it is, its placeholders filled by
 * DefinitionSubstitutions, created after the machines it starts (catalog stateMachineOrder); and
 * the EventBridge rules of EXECUTION_STATUS_RULES on their executions' status changes.
 */
import { join } from 'node:path';
import {
  ArnFormat,
  Duration,
  Stack,
  aws_events as events,
  aws_events_targets as targets,
  aws_iam as iam,
  type aws_kms as kms,
  type aws_lambda as lambda,
  aws_logs as logs,
  aws_stepfunctions as sfn,
} from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import {
  EXECUTION_STATUS_RULES,
  STATE_MACHINES,
  executionStatusPattern,
  functionArnKey,
  stateMachineArnKey,
  stateMachineOrder,
  type FunctionId,
  type FunctionsById,
  type ExecutionStatusRuleSpec,
  type StateMachineId,
} from '../../functions/catalog.ts';
import { ROOT } from './functions.ts';
import { Layer } from './layer.ts';

export class Workflows extends Layer {
  readonly byId = {} as Record<StateMachineId, sfn.StateMachine>;

  constructor(
    scope: Construct,
    id: string,
    private readonly props: { functions: FunctionsById<lambda.IFunction>; key: kms.IKey },
  ) {
    super(scope, id);
    for (const machineId of stateMachineOrder(STATE_MACHINES)) this.byId[machineId] = this.createMachine(machineId);
    for (const [ruleId, rule] of Object.entries(EXECUTION_STATUS_RULES)) this.statusRule(ruleId, rule);
  }

  /**
   * Status changes of the rule's machines' executions go to its function. A failing target is
   * retried for a day (EventBridge's longest), so a brief outage of the function loses no event.
   */
  private statusRule(id: string, rule: ExecutionStatusRuleSpec): events.Rule {
    const pattern = executionStatusPattern(rule, (m) => this.byId[m].stateMachineArn);
    return new events.Rule(this, id, {
      description: rule.description,
      eventPattern: { source: pattern.source, detailType: pattern['detail-type'], detail: pattern.detail },
      targets: [new targets.LambdaFunction(this.fn(rule.fn), { retryAttempts: 185, maxEventAge: Duration.hours(24) })],
    });
  }

  /** A function a machine references; a conditional one that was not created fails the synth by name. */
  private fn(id: FunctionId): lambda.IFunction {
    const fn = (this.props.functions as Partial<Record<FunctionId, lambda.IFunction>>)[id];
    if (!fn) throw new Error(`a state machine references ${id}, which this stack does not create`);
    return fn;
  }

  private createMachine(id: StateMachineId): sfn.StateMachine {
    const spec = STATE_MACHINES[id];
    const { key } = this.props;
    const substitutions: Record<string, string> = {};
    for (const f of spec.functions) substitutions[functionArnKey(f)] = this.fn(f).functionArn;
    for (const m of spec.stateMachines) substitutions[stateMachineArnKey(m)] = this.byId[m].stateMachineArn;
    const machine = new sfn.StateMachine(this, `${id}StateMachine`, {
      stateMachineName: `kmod-${id}`,
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromFile(join(ROOT, spec.file)),
      definitionSubstitutions: substitutions,
      tracingEnabled: true,
      logs: {
        destination: new logs.LogGroup(this, `${id}StateMachineLogs`, { retention: logs.RetentionDays.ONE_YEAR, encryptionKey: key }),
        level: sfn.LogLevel.ALL,
        includeExecutionData: false,
      },
    });
    for (const f of spec.functions) this.fn(f).grantInvoke(machine);
    for (const m of spec.stateMachines) this.allowChild(machine, m);
    if (spec.stateMachines.length) {
      // `.sync` integrations watch child executions through this managed EventBridge rule.
      machine.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
          resources: [Stack.of(this).formatArn({ service: 'events', resource: 'rule', resourceName: 'StepFunctionsGetEventsForStepFunctionsExecutionRule' })],
        }),
      );
    }
    return machine;
  }

  /** Start a child machine, and describe or stop its executions (names unknown in advance). */
  private allowChild(machine: sfn.StateMachine, child: StateMachineId): void {
    this.byId[child].grantStartExecution(machine);
    const executions = Stack.of(this).formatArn({
      service: 'states',
      resource: 'execution',
      resourceName: `kmod-${child}:*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    machine.addToRolePolicy(new iam.PolicyStatement({ actions: ['states:DescribeExecution', 'states:StopExecution'], resources: [executions] }));
  }
}
