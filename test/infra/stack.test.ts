import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { FUNCTIONS, ROUTES, STATE_MACHINES } from '../../functions/catalog.ts';
import { TABLES } from '../../functions/lib/tables.ts';
import { OrchestratorStack, settingsFromContext } from '../../infra/stack.ts';

let stack: OrchestratorStack;
let template: Template;
let assemblyDir: string;
type Resource = { Type: string; Properties: Record<string, any> };
let resources: Record<string, Resource>;

beforeAll(() => {
  const app = new App();
  stack = new OrchestratorStack(app, 'KmodOrchestrator', settingsFromContext((k) => ({ trustedRootsPem: 'PEM' })[k]));
  template = Template.fromStack(stack);
  assemblyDir = app.synth().directory;
  resources = template.toJSON().Resources;
}, 180_000);

const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);

describe('the synthesized template', () => {
  it('carries each ASL file unchanged as its state machine definition, with every placeholder substituted', () => {
    const machines = ofType('AWS::StepFunctions::StateMachine');
    expect(machines).toHaveLength(Object.keys(STATE_MACHINES).length);
    for (const [id, spec] of Object.entries(STATE_MACHINES)) {
      const [, machine] = machines.find(([, r]) => r.Properties.StateMachineName === `kmod-${id}`)!;
      const text = readFileSync(spec.file, 'utf8');
      // DefinitionBody.fromFile ships the file as an asset; the asset deployed is the file, byte for byte.
      const key = machine.Properties.DefinitionS3Location.Key as string;
      expect(readFileSync(join(assemblyDir, `asset.${key}`), 'utf8')).toBe(text);
      const placeholders = new Set([...text.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]));
      expect(new Set(Object.keys(machine.Properties.DefinitionSubstitutions))).toEqual(placeholders);
      expect(machine.Properties.StateMachineType).toBe('STANDARD');
    }
  });

  it('exposes every catalog route, with the JWT authorizer exactly where auth is required', () => {
    const methods = ofType('AWS::ApiGateway::Method').filter(([, r]) => r.Properties.HttpMethod !== 'OPTIONS');
    const paths = new Map<string, string>();
    for (const [logical, r] of ofType('AWS::ApiGateway::Resource')) paths.set(logical, r.Properties.PathPart);
    const parentOf = new Map(ofType('AWS::ApiGateway::Resource').map(([logical, r]) => [logical, r.Properties.ParentId?.Ref as string | undefined]));
    const fullPath = (logical: string | undefined): string => (logical && paths.has(logical) ? `${fullPath(parentOf.get(logical))}/${paths.get(logical)}` : '');
    const seen = methods.map(([, r]) => ({ key: `${r.Properties.HttpMethod} ${fullPath(r.Properties.ResourceId?.Ref)}`, auth: r.Properties.AuthorizationType }));
    expect(seen.map((s) => s.key).sort()).toEqual(ROUTES.map((r) => `${r.method} ${r.path}`).sort());
    for (const route of ROUTES) {
      expect(seen.find((s) => s.key === `${route.method} ${route.path}`)!.auth, `${route.method} ${route.path}`).toBe(route.auth ? 'CUSTOM' : 'NONE');
    }
  });

  it('creates every table on demand with point-in-time recovery, TTL and encryption', () => {
    const tables = ofType('AWS::DynamoDB::Table');
    expect(tables).toHaveLength(Object.keys(TABLES).length);
    for (const [, t] of tables) {
      expect(t.Properties.BillingMode).toBe('PAY_PER_REQUEST');
      expect(t.Properties.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
      expect(t.Properties.TimeToLiveSpecification).toEqual({ AttributeName: 'expiresAt', Enabled: true });
      expect(t.Properties.SSESpecification).toMatchObject({ SSEEnabled: true, SSEType: 'KMS' });
    }
  });

  it('runs every function on nodejs22.x, with tracing, and one function per catalog entry', () => {
    const fns = ofType('AWS::Lambda::Function').filter(([, r]) => String(r.Properties.FunctionName ?? '').startsWith('kmod-'));
    expect(fns).toHaveLength(Object.keys(FUNCTIONS).length);
    for (const [, f] of fns) {
      expect(f.Properties.Runtime).toBe('nodejs22.x');
      expect(f.Properties.TracingConfig).toEqual({ Mode: 'Active' });
    }
  });

  it('grants no wildcard IAM actions', () => {
    const statements = ofType('AWS::IAM::Policy').flatMap(([, p]) => p.Properties.PolicyDocument.Statement as { Action: string | string[] }[]);
    expect(statements.length).toBeGreaterThan(20);
    const actions = statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
    expect(actions.filter((a) => a === '*' || /^[a-z0-9-]+:\*$/.test(a))).toEqual([]);
  });

  it('answers API Gateway errors as JSON { code, message }, with WWW-Authenticate on 401', () => {
    template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
      ResponseType: 'UNAUTHORIZED',
      StatusCode: '401',
      ResponseParameters: { 'gatewayresponse.header.WWW-Authenticate': "'Bearer realm=\"kmod-orchestrator\", error=\"invalid_token\"'" },
    });
  });

  it('is cdk-nag (AwsSolutions) clean: every finding is fixed or acknowledged with a reason', () => {
    const report = new AwsSolutionsChecks().validateScope(stack);
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
  });
});
