/**
 * The stack as `npm run localstack:deploy` synthesizes it for LocalStack's community edition
 * (scripts/localstack.ts localStackContext): no Cognito (not emulated), the local issuer trusted
 * instead, and the API functions verifying tokens themselves (Lambda authorizers are not run).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { FUNCTIONS, ROUTES, type FunctionId, type FunctionSpec } from '../../functions/catalog.ts';
import { TABLES } from '../../functions/lib/tables.ts';
import type { OrchestratorStack } from '../../infra/stack.ts';
import { loadOrCreatePki } from '../../localcloud/devPki.ts';
import { DEV_CLIENT_ID, DEV_ISSUER } from '../../localcloud/identity.ts';
import { localStackContext } from '../../scripts/localstack.ts';
import { synthStack } from './synth.ts';

type Resource = { Type: string; Properties: Record<string, any> };
let stack: OrchestratorStack;
let template: Record<string, any>;
let resources: Record<string, Resource>;
let context: Record<string, string>;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kmod-localstack-'));
  await loadOrCreatePki(join(dir, 'pki'));
  context = localStackContext(dir);
  // With an explicit environment, as the CDK CLI gives the app whenever it has credentials (cdklocal, cdk deploy).
  stack = synthStack(context, 'KmodOrchestrator', { env: { account: '000000000000', region: 'us-east-1' } });
  template = Template.fromStack(stack).toJSON();
  resources = template.Resources;
}, 180_000);

const envOf = (id: FunctionId) => resources[stack.getLogicalId(stack.functions[id]!.node.defaultChild as CfnElement)].Properties.Environment.Variables;
const behindAuthorizer = (id: FunctionId) => ROUTES.some((r) => r.fn === id && r.auth);

describe('the LocalStack deployment (npm run localstack:deploy)', () => {
  it('creates no Cognito resource and no user-pool outputs, and names the REST API for the scripts', () => {
    expect(Object.values(resources).filter((r) => r.Type.startsWith('AWS::Cognito::'))).toEqual([]);
    expect(Object.keys(template.Outputs)).not.toContain('UserPoolId');
    expect(Object.keys(template.Outputs)).toContain('RestApiId');
  });

  it('trusts the local issuer, whose keys LocalStack S3 serves, in the authorizer and in every function behind it', () => {
    expect(context.jwtJwksUri).toBe('http://s3.localhost.localstack.cloud:4566/kmod-localstack-issuer/.well-known/jwks.json');
    const verifier = { JWT_ISSUER: DEV_ISSUER, JWT_JWKS_URI: context.jwtJwksUri, JWT_CLIENT_IDS: DEV_CLIENT_ID };
    for (const [id, spec] of Object.entries(FUNCTIONS) as [FunctionId, FunctionSpec][]) {
      if (!stack.functions[id]) continue;
      const env = envOf(id);
      expect(env.COGNITO_USER_POOL_ID, id).toBeUndefined();
      if (spec.verifiesTokens || behindAuthorizer(id)) expect(env, id).toMatchObject(verifier);
      // The functions check the token themselves exactly where the gateway would have run the authorizer.
      expect(env.API_VERIFIES_TOKENS, id).toBe(behindAuthorizer(id) ? 'true' : undefined);
      // Refusing disabled principals needs the directory.
      if (behindAuthorizer(id)) expect(Object.keys(env), id).toContain(TABLES.users.envVar);
    }
  });

  it('grants no Cognito action to any function', () => {
    const actions = Object.values(resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy')
      .flatMap((p) => p.Properties.PolicyDocument.Statement.flatMap((s: { Action: string | string[] }) => [s.Action].flat()));
    expect(actions.filter((a: string) => a.startsWith('cognito-idp:'))).toEqual([]);
  });

  it('lets the functions call agents on this host as seen from Lambda containers (host.docker.internal), and no other host', () => {
    for (const [id, spec] of Object.entries(FUNCTIONS) as [FunctionId, FunctionSpec][])
      if (spec.callsAgents && stack.functions[id]) expect(envOf(id).AGENT_ALLOWED_HOSTS, id).toBe('host.docker.internal');
  });

  it('stays cdk-nag clean, with the account and Region literal in the ARNs', () => {
    const report = new AwsSolutionsChecks().validateScope(stack);
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
  });
});
