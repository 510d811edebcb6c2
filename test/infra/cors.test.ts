import { beforeAll, describe, expect, it } from 'vitest';
import type { CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { FUNCTIONS, ROUTES, type FunctionId, type FunctionSpec } from '../../functions/catalog.ts';
import type { OrchestratorStack } from '../../infra/stack.ts';
import { synthStack } from './synth.ts';

type Resource = { Type: string; Properties: Record<string, any> };
const ORIGINS = 'https://console.example.com, https://ops.example.com';
/** CloudFormation's own limit per stack; the main stack must stay under it with every option on. */
const CLOUDFORMATION_RESOURCE_LIMIT = 500;

let plain: { stack: OrchestratorStack; resources: Record<string, Resource> };
let withCors: { stack: OrchestratorStack; resources: Record<string, Resource> };

beforeAll(() => {
  const synth = (context: Record<string, string>) => {
    const stack = synthStack({ trustedRootsPem: 'PEM', ...context });
    return { stack, resources: Template.fromStack(stack).toJSON().Resources as Record<string, Resource> };
  };
  plain = synth({});
  // With corsAllowedOrigins the gateway adds an OPTIONS method per resource: this synth failed with
  // more than 500 resources when every method had two Lambda permissions of its own.
  withCors = synth({
    corsAllowedOrigins: ORIGINS,
    etcdEndpoints: 'http://10.0.0.5:2379',
    domainName: 'deploy.example.com',
    certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/0000',
  });
}, 300_000);

const ofType = (resources: Record<string, Resource>, type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const logicalIdOf = (stack: OrchestratorStack, id: FunctionId) => stack.getLogicalId(stack.functions[id]!.node.defaultChild as CfnElement);
const apiFunctions: FunctionId[] = [...new Set(ROUTES.map((r) => r.fn))];
const authorizer = (Object.keys(FUNCTIONS) as FunctionId[]).find((id) => (FUNCTIONS[id] as FunctionSpec).authorizesRequests)!;

describe('the REST API and its function permissions', () => {
  it('gives each route function one invoke permission, scoped to this API, and nothing for test invocations; the authorizer one for its authorizer', () => {
    const { stack, resources } = plain;
    const [[restApi]] = ofType(resources, 'AWS::ApiGateway::RestApi');
    const fromGateway = ofType(resources, 'AWS::Lambda::Permission').filter(([, p]) => p.Properties.Principal === 'apigateway.amazonaws.com');
    const restApiPermissions = fromGateway.filter(([, p]) => JSON.stringify(p.Properties.SourceArn).includes(`"Ref":"${restApi}"`));
    const byFunction = new Map<string, Resource[]>();
    for (const [, p] of restApiPermissions) {
      const fn = p.Properties.FunctionName['Fn::GetAtt']?.[0] as string;
      byFunction.set(fn, [...(byFunction.get(fn) ?? []), p]);
    }
    expect([...byFunction.keys()].sort()).toEqual([...apiFunctions, authorizer].map((id) => logicalIdOf(stack, id)).sort());
    expect(byFunction.get(logicalIdOf(stack, authorizer))).toHaveLength(1);
    expect(JSON.stringify(byFunction.get(logicalIdOf(stack, authorizer))![0].Properties.SourceArn)).toContain('/authorizers/');
    for (const [fn, permissions] of byFunction) {
      if (fn === logicalIdOf(stack, authorizer)) continue;
      expect(permissions, fn).toHaveLength(1);
      const arn = JSON.stringify(permissions[0].Properties.SourceArn);
      // arn:aws:execute-api:<region>:<account>:<api id>/*/*/* — any stage, method and path of this API only.
      expect(arn).toMatch(/execute-api/);
      expect(arn).toContain('/*/*/*');
      expect(arn).not.toContain('test-invoke-stage');
    }
  });

  it('stays well under CloudFormation resource limit', () => {
    expect(Object.keys(plain.resources).length).toBeLessThan(CLOUDFORMATION_RESOURCE_LIMIT - 100);
  });

  it('has no CORS unless origins are configured', () => {
    expect(ofType(plain.resources, 'AWS::ApiGateway::Method').filter(([, m]) => m.Properties.HttpMethod === 'OPTIONS')).toEqual([]);
    for (const [, fn] of ofType(plain.resources, 'AWS::Lambda::Function')) expect(fn.Properties.Environment?.Variables?.CORS_ALLOWED_ORIGINS).toBeUndefined();
  });
});

describe('with corsAllowedOrigins', () => {
  it('synthesises under the resource limit', () => {
    expect(Object.keys(withCors.resources).length).toBeLessThan(CLOUDFORMATION_RESOURCE_LIMIT);
  });

  it('answers the preflight of every API resource at the gateway, without the authorizer, for the allowed origins', () => {
    const { resources } = withCors;
    const options = ofType(resources, 'AWS::ApiGateway::Method').filter(([, m]) => m.Properties.HttpMethod === 'OPTIONS');
    const resourceIds = ofType(resources, 'AWS::ApiGateway::Resource').map(([logical]) => logical);
    const withPreflight = new Set(options.map(([, m]) => m.Properties.ResourceId?.Ref).filter(Boolean));
    expect([...withPreflight].sort()).toEqual(resourceIds.sort());
    for (const [, m] of options) {
      expect(m.Properties.AuthorizationType).toBe('NONE');
      expect(m.Properties.Integration.Type).toBe('MOCK');
      const headers = m.Properties.Integration.IntegrationResponses[0].ResponseParameters;
      expect(headers['method.response.header.Access-Control-Allow-Headers']).toBe("'Authorization,Content-Type,Idempotency-Key'");
      // More than one origin: the gateway answers the request's own Origin when it is on the list.
      expect(JSON.stringify(m.Properties.Integration.IntegrationResponses[0].ResponseTemplates)).toContain('https://ops.example.com');
    }
  });

  it('tells exactly the route functions the allowed origins, so their answers carry the origin too', () => {
    const { stack, resources } = withCors;
    for (const id of Object.keys(FUNCTIONS) as FunctionId[]) {
      if (!stack.functions[id]) continue;
      const env = resources[logicalIdOf(stack, id)].Properties.Environment?.Variables ?? {};
      expect(env.CORS_ALLOWED_ORIGINS, id).toBe(apiFunctions.includes(id) ? ORIGINS : undefined);
    }
  });
});
