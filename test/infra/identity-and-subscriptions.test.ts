/**
 * The default (Cognito) stack's identity wiring, and the email-subscription sync: the deploy-time
 * custom resource and who may change subscriptions. Bundling is skipped: resources and policies only.
 */
import type { CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { FUNCTIONS, type FunctionId, type FunctionSpec } from '../../functions/catalog.ts';
import type { OrchestratorStack } from '../../infra/stack.ts';
import { synthStack } from './synth.ts';

type Resource = { Type: string; Properties: Record<string, any>; DependsOn?: string[] };
const APPROVERS = '{"Staging":["0f8b1c2d-0000-4000-8000-000000000001"],"Production":["0f8b1c2d-0000-4000-8000-000000000002"]}';
let stack: OrchestratorStack;
let resources: Record<string, Resource>;

beforeAll(() => {
  stack = synthStack({ trustedRootsPem: 'PEM', approvers: APPROVERS, cognitoDomainPrefix: 'acme-kmod' });
  resources = Template.fromStack(stack).toJSON().Resources;
}, 180_000);

const logicalIdOf = (c: { node: { defaultChild?: unknown } }) => stack.getLogicalId(c.node.defaultChild as CfnElement);
const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const managers = (Object.entries(FUNCTIONS) as [FunctionId, FunctionSpec][]).filter(([, s]) => s.managesSubscriptions).map(([id]) => id);
const topicIds = () => ofType('AWS::SNS::Topic').map(([id]) => id);

/** Every IAM statement attached to a function's role. */
function statementsOf(id: FunctionId): { Action: string | string[]; Resource: unknown }[] {
  const role = logicalIdOf(stack.functions[id]!.role! as never);
  return ofType('AWS::IAM::Policy')
    .filter(([, p]) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === role))
    .flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
}
const actionsOf = (s: { Action: string | string[] }) => [s.Action].flat();
const refsIn = (v: unknown): string[] =>
  JSON.stringify(v)
    .match(/"(?:Ref|Fn::GetAtt)":\s*\[?"(\w+)"/g)
    ?.map((m) => m.replace(/.*"(\w+)"$/, '$1')) ?? [];

describe('tokens on the default stack', () => {
  it('are verified by the authorizer only: no API function verifies them itself unless verifyTokensInFunctions is set', () => {
    for (const [id, spec] of Object.entries(FUNCTIONS) as [FunctionId, FunctionSpec][]) {
      if (!stack.functions[id]) continue;
      const env = resources[logicalIdOf(stack.functions[id]!)].Properties.Environment.Variables;
      expect(env.API_VERIFIES_TOKENS, id).toBeUndefined();
      expect('COGNITO_USER_POOL_ID' in env && 'JWT_CLIENT_IDS' in env, id).toBe(Boolean(spec.verifiesTokens));
      expect(env.JWT_ISSUER, id).toBeUndefined();
    }
  });
});

describe('email subscriptions on AWS', () => {
  it('are synchronised on deploy by a custom resource carrying the approver lists, served by the syncsSubscriptionsOnDeploy function', () => {
    expect(managers.sort()).toEqual(['ApiAdmin', 'SyncSubscriptions']);
    const [[, custom]] = ofType('Custom::EmailSubscriptions');
    // Its properties change exactly when the approver lists (or the topics) do: that is when it runs again.
    expect(custom.Properties.Approvers).toBe(APPROVERS);
    expect(refsIn([custom.Properties.ApproverTopicArn, custom.Properties.NotificationTopicArn]).sort()).toEqual(topicIds().sort());
    // The service token is the provider framework's function, which invokes ours.
    const [framework] = refsIn(custom.Properties.ServiceToken);
    expect(resources[framework].Type).toBe('AWS::Lambda::Function');
    expect(refsIn(resources[framework].Properties.Environment.Variables.USER_ON_EVENT_FUNCTION_ARN)).toEqual([logicalIdOf(stack.functions.SyncSubscriptions)]);
  });

  it('gives the subscription managers the approver lists, both topics and the user pool, and nothing that would let them publish', () => {
    for (const id of managers) {
      const env = resources[logicalIdOf(stack.functions[id]!)].Properties.Environment.Variables;
      expect(env.APPROVERS, id).toBe(APPROVERS);
      expect(refsIn([env.APPROVER_TOPIC_ARN, env.NOTIFICATION_TOPIC_ARN]).sort(), id).toEqual(topicIds().sort());
      expect(env.COGNITO_USER_POOL_ID, id).toBeDefined();
      expect(statementsOf(id).flatMap(actionsOf), id).not.toContain('sns:Publish');
    }
  });

  it('lets only them subscribe (on the two topics) and change or remove subscriptions, and look users up in the pool', () => {
    for (const [id] of Object.entries(FUNCTIONS) as [FunctionId, FunctionSpec][]) {
      if (!stack.functions[id]) continue;
      const statements = statementsOf(id);
      const subscribe = statements.filter((s) => actionsOf(s).includes('sns:Subscribe'));
      const change = statements.filter((s) => actionsOf(s).includes('sns:Unsubscribe'));
      if (!managers.includes(id)) {
        expect(subscribe.length + change.length, id).toBe(0);
        continue;
      }
      expect(
        subscribe.map((s) => [actionsOf(s).sort(), refsIn(s.Resource).sort()]),
        id,
      ).toEqual([[['sns:ListSubscriptionsByTopic', 'sns:Subscribe'], topicIds().sort()]]);
      // SNS has no resource-level permissions for these; nothing else rides on the '*'.
      expect(
        change.map((s) => [actionsOf(s).sort(), s.Resource]),
        id,
      ).toEqual([[['sns:GetSubscriptionAttributes', 'sns:SetSubscriptionAttributes', 'sns:Unsubscribe'], '*']]);
      const lookup = statements.filter((s) => actionsOf(s).includes('cognito-idp:ListUsers'));
      expect(
        lookup.map((s) => refsIn(s.Resource)),
        id,
      ).toEqual([[ofType('AWS::Cognito::UserPool')[0][0]]]);
    }
  });

  it('with cognitoDomainPrefix, gives the pool its hosted domain and outputs its token endpoint for client credentials', () => {
    const [[domainId, domain]] = ofType('AWS::Cognito::UserPoolDomain');
    expect(domain.Properties.Domain).toBe('acme-kmod');
    const tokenUrl = JSON.stringify(Template.fromStack(stack).toJSON().Outputs.TokenUrl.Value);
    expect(tokenUrl).toContain('https://');
    expect(tokenUrl).toContain(domainId);
    expect(tokenUrl).toContain('/oauth2/token');
  });

  it('stays cdk-nag clean with the provider framework', () => {
    const report = new AwsSolutionsChecks().validateScope(stack);
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
  });
});
