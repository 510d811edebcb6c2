/**
 * The web console on AWS (infra/constructs/console.ts, docs/adr/0035-web-console.md): a nested stack
 * with the private bucket served by CloudFront through Origin Access Control, the console's CSP, the
 * API on the console's own origin under /api/* (never cached, the Authorization header passed on),
 * the Cognito app client for the hosted UI's code flow with PKCE (public, callback = the
 * distribution), the API accepting that client's tokens, the bundle and its config.json deployed,
 * cdk-nag, and the main stack's room under CloudFormation's 500 resources.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildConsoleSync } from '../../console/build.ts';
import type { OrchestratorStack } from '../../infra/stack.ts';
import { synthStack } from './synth.ts';

type Resource = { Type: string; Properties: Record<string, any>; DeletionPolicy?: string };

let stack: OrchestratorStack;
let parent: Record<string, Resource>;
let nested: Record<string, Resource>;
let outputs: Record<string, unknown>;

beforeAll(() => {
  stack = synthStack({ trustedRootsPem: 'PEM', cognitoDomainPrefix: 'acme-kmod' });
  parent = Template.fromStack(stack).toJSON().Resources;
  const t = Template.fromStack(stack.console!).toJSON();
  nested = t.Resources;
  outputs = Object.fromEntries(Object.entries(t.Outputs as Record<string, { Value: unknown }>).map(([k, v]) => [k, v.Value]));
}, 180_000);

const ofType = (resources: Record<string, Resource>, type: string) => Object.values(resources).filter((r) => r.Type === type);
const one = (resources: Record<string, Resource>, type: string) => {
  const found = ofType(resources, type);
  expect(found).toHaveLength(1);
  return found[0];
};
const nestedIdOf = (c: IConstruct) => stack.console!.getLogicalId(c.node.defaultChild as CfnElement);
/** The nested-stack parameter a nested template's Ref names, as the parent passes it. */
function parameterValue(ref: unknown): unknown {
  const name = (ref as { Ref?: string }).Ref;
  const nestedStack = ofType(parent, 'AWS::CloudFormation::Stack').find((r) => JSON.stringify(r.Properties.Parameters ?? {}).includes(`"${name}"`));
  return nestedStack?.Properties.Parameters[name!];
}

describe('the console bucket and distribution', () => {
  it('keeps the bucket private: every public access blocked, TLS only, read by this distribution only (OAC)', () => {
    const bucketId = nestedIdOf(stack.console!.bucket);
    const bucket = nested[bucketId];
    expect(bucket.Properties.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(bucket.Properties.LoggingConfiguration.LogFilePrefix).toBe('bucket/');
    const policy = ofType(nested, 'AWS::S3::BucketPolicy').find((p) => JSON.stringify(p.Properties.Bucket) === JSON.stringify({ Ref: bucketId }))!;
    const statements = policy.Properties.PolicyDocument.Statement as any[];
    expect(statements.find((s) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false')).toBeDefined();
    const read = statements.find((s) => s.Principal?.Service === 'cloudfront.amazonaws.com');
    expect(read.Action).toBe('s3:GetObject');
    expect(JSON.stringify(read.Condition.StringEquals['AWS:SourceArn'])).toContain(nestedIdOf(stack.console!.distribution));
    const oac = one(nested, 'AWS::CloudFront::OriginAccessControl');
    expect(oac.Properties.OriginAccessControlConfig).toMatchObject({
      OriginAccessControlOriginType: 's3',
      SigningBehavior: 'always',
      SigningProtocol: 'sigv4',
    });
  });

  it('serves index.html over HTTPS with the console CSP, and the API under /api/* on the same origin, never cached', () => {
    const d = one(nested, 'AWS::CloudFront::Distribution').Properties.DistributionConfig;
    expect(d.DefaultRootObject).toBe('index.html');
    expect(d.DefaultCacheBehavior.ViewerProtocolPolicy).toBe('redirect-to-https');
    expect(d.Logging.Prefix).toBe('cloudfront/');
    const s3Origin = d.Origins.find((o: any) => o.S3OriginConfig);
    expect(s3Origin.OriginAccessControlId).toBeDefined();
    const api = d.CacheBehaviors.find((b: any) => b.PathPattern === '/api/*');
    expect(api).toMatchObject({
      ViewerProtocolPolicy: 'https-only',
      AllowedMethods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'PATCH', 'POST', 'DELETE'],
      CachePolicyId: '4135ea2d-6df8-44a3-9df3-4b5a84be39ad', // Managed-CachingDisabled
      OriginRequestPolicyId: 'b689b0a8-53d0-40ab-baf2-68738e2966ac', // Managed-AllViewerExceptHostHeader
    });
    const apiOrigin = d.Origins.find((o: any) => o.Id === api.TargetOriginId);
    expect(apiOrigin.OriginPath).toBe('/v1');
    expect(apiOrigin.CustomOriginConfig.OriginProtocolPolicy).toBe('https-only');
    // The execute-api host of the main stack's RestApi, passed in by id (not by the stage URL: no cycle through the functions).
    expect(JSON.stringify(apiOrigin.DomainName)).toContain('.execute-api.');
    expect(JSON.stringify(apiOrigin.DomainName)).toMatch(/Ref/);
    const csp = one(nested, 'AWS::CloudFront::ResponseHeadersPolicy').Properties.ResponseHeadersPolicyConfig.SecurityHeadersConfig;
    const text = JSON.stringify(csp.ContentSecurityPolicy.ContentSecurityPolicy);
    for (const part of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", 'connect-src', 'cognito-idp.'])
      expect(text).toContain(part);
    expect(text).not.toMatch(/unsafe-inline|unsafe-eval/);
    expect(csp.FrameOptions.FrameOption).toBe('DENY');
  });
});

describe('signing in', () => {
  it('the console app client is public, authorization code only, called back at the distribution', () => {
    const client = nested[nestedIdOf(stack.console!.client)].Properties;
    expect(client.GenerateSecret).toBe(false);
    expect(client.AllowedOAuthFlows).toEqual(['code']);
    expect(client.AllowedOAuthFlowsUserPoolClient).toBe(true);
    expect(client.AllowedOAuthScopes).toEqual(expect.arrayContaining(['openid', 'email', 'profile']));
    expect(client.SupportedIdentityProviders).toEqual(['COGNITO']);
    expect(client.EnableTokenRevocation).toBe(true);
    const distribution = nestedIdOf(stack.console!.distribution);
    expect(client.CallbackURLs).toEqual([{ 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [distribution, 'DomainName'] }, '/']] }]);
    expect(client.LogoutURLs).toEqual(client.CallbackURLs);
    // The pool is the main stack's: the nested stack gets its id as a parameter.
    expect(parameterValue(client.UserPoolId)).toEqual({
      Ref: stack.getLogicalId(stack.node.findAll().find((c) => c.node.path.endsWith('Identity/Users/Resource')) as CfnElement),
    });
  });

  it("the API's token verifiers accept the console client's tokens", () => {
    const authorizer = Object.values(parent).find((r) => r.Type === 'AWS::Lambda::Function' && r.Properties.FunctionName === 'kmod-Authorizer')!;
    const ids = authorizer.Properties.Environment.Variables.JWT_CLIENT_IDS['Fn::Join'][1] as any[];
    const fromNested = ids.find((x) => x['Fn::GetAtt']?.[1]?.startsWith('Outputs.'));
    expect(outputs[fromNested['Fn::GetAtt'][1].slice('Outputs.'.length)]).toEqual({ Ref: nestedIdOf(stack.console!.client) });
  });
});

describe('the bundle', () => {
  it('is deployed with a config.json naming the console origin, the WebSocket API and the Cognito pool, and invalidates the distribution', () => {
    const deployment = one(nested, 'Custom::CDKBucketDeployment').Properties;
    expect(deployment.SourceObjectKeys).toHaveLength(2);
    expect(deployment.Prune).toBe(true);
    expect(deployment.DistributionPaths).toEqual(['/*']);
    // config.json's deploy-time values (markers the deployment replaces in the file): the console's
    // origin (its API), the WebSocket API's endpoint, the pool, the console client and the hosted domain.
    const values = Object.values(deployment.SourceMarkers[1] as Record<string, unknown>).map((v) => JSON.stringify(v));
    expect(values).toEqual(
      expect.arrayContaining([
        JSON.stringify({ 'Fn::GetAtt': [nestedIdOf(stack.console!.distribution), 'DomainName'] }),
        expect.stringMatching(/WebSocketApi\w*ApiEndpoint.*\/ws/),
        expect.stringMatching(/IdentityUsers\w*Ref/),
        JSON.stringify({ Ref: nestedIdOf(stack.console!.client) }),
        expect.stringMatching(/IdentityUsersTokenDomain\w*Ref/),
      ]),
    );
  });

  it('is built offline by esbuild: index.html, app.js, app.css, no remote URL in the page', () => {
    const dir = buildConsoleSync(mkdtempSync(join(tmpdir(), 'kmod-console-test-')));
    for (const f of ['index.html', 'app.js', 'app.css']) expect(existsSync(join(dir, f))).toBe(true);
    const html = readFileSync(join(dir, 'index.html'), 'utf8');
    expect(html).toContain('src="app.js"');
    expect(html).not.toMatch(/https?:\/\//);
    expect(readFileSync(join(dir, 'app.js'), 'utf8').length).toBeGreaterThan(10_000);
  });
});

describe('the stacks', () => {
  it('are cdk-nag (AwsSolutions) clean, the console nested stack included', () => {
    const report = new AwsSolutionsChecks().validateScope(stack);
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
  });

  it('the console adds one resource to the main stack, which stays under 500', () => {
    expect(Stack.of(stack.console!.bucket)).toBe(stack.console);
    expect(ofType(parent, 'AWS::CloudFormation::Stack').length).toBeGreaterThanOrEqual(3);
    expect(ofType(parent, 'AWS::CloudFront::Distribution')).toEqual([]);
    expect(Object.keys(parent).length).toBeLessThan(490);
  });
});
