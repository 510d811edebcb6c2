import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { STATE_MACHINES, stateMachineOrder } from '../../functions/catalog.ts';
import { ContextError, settingsFromContext } from '../../infra/settings.ts';

const from = (context: Record<string, unknown>) => () => settingsFromContext((k) => context[k]);

describe('settings from CDK context', () => {
  it('requires the trusted roots, saying what to pass', () => {
    expect(from({})).toThrow(ContextError);
    expect(from({})).toThrow(/pass -c trustedRootsPemFile=<path to the PEM bundle/);
  });

  it('reads the roots from a file, or inline; an unreadable file names itself', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmod-roots-'));
    writeFileSync(join(dir, 'roots.pem'), '-----BEGIN CERTIFICATE-----\n');
    expect(from({ trustedRootsPemFile: join(dir, 'roots.pem') })().trustedRootsPem).toBe('-----BEGIN CERTIFICATE-----\n');
    expect(from({ trustedRootsPem: 'PEM' })().trustedRootsPem).toBe('PEM');
    expect(from({ trustedRootsPemFile: join(dir, 'missing.pem') })).toThrow(/trustedRootsPemFile=.*missing\.pem cannot be read/);
  });

  it('keeps the documented defaults for the optional keys', () => {
    expect(from({ trustedRootsPem: 'PEM' })()).toEqual({
      agentAllowedHosts: '10.0.0.0/8',
      trustedRootsPem: 'PEM',
      approvers: '{}',
      publicApiUrl: undefined,
      throttleRateLimit: 50,
      throttleBurstLimit: 100,
      authorizerCacheSeconds: 0,
      domainName: undefined,
      certificateArn: undefined,
      corsAllowedOrigins: '',
      keyRotationDays: 30,
      nodeKeyMaxAgeDays: 30,
      nodeKeyOverlapSeconds: 900,
      agentNetwork: undefined,
      etcd: undefined,
      externalIssuer: undefined,
      verifyTokensInFunctions: false,
      cognitoDomainPrefix: undefined,
      revocationListUrls: '',
      waf: { ratePerAddress: 1000, windowSeconds: 60 },
      traffic: { kinds: {}, alb: {}, route53: {} },
      alarmEmails: [],
      auditRetention: { deployment: 400, stage: 180, node: 90, module: 400, approval: 1095, security: 1095, config: 1095 },
      auditExportRetentionDays: 2557,
    });
  });

  it('takes alarm email addresses comma-separated, trimmed and once each; refuses anything else', () => {
    const base = { trustedRootsPem: 'PEM' };
    expect(from({ ...base, alarmEmail: 'oncall@example.com' })().alarmEmails).toEqual(['oncall@example.com']);
    expect(from({ ...base, alarmEmail: ' oncall@example.com, ops@example.org,oncall@example.com ' })().alarmEmails).toEqual([
      'oncall@example.com',
      'ops@example.org',
    ]);
    expect(from({ ...base, alarmEmail: '' })().alarmEmails).toEqual([]);
    expect(from({ ...base, alarmEmail: 'oncall' })).toThrow(ContextError);
    expect(from({ ...base, alarmEmail: 'oncall@example.com;ops@example.com' })).toThrow(/alarmEmail must be comma-separated email addresses/);
  });

  it('takes CRL URLs and the web ACL rate within WAF’s bounds (issue 15 defects 4 and 10)', () => {
    const base = { trustedRootsPem: 'PEM' };
    expect(from({ ...base, revocationListUrls: 'http://pki.example.com/root.crl, https://pki.example.com/issuing.crl' })().revocationListUrls).toBe(
      'http://pki.example.com/root.crl,https://pki.example.com/issuing.crl',
    );
    expect(from({ ...base, revocationListUrls: '/etc/kmod/root.crl' })).toThrow(/revocationListUrls must be comma-separated http\(s\) URLs of CRLs/);
    expect(from({ ...base, wafRateLimitPerAddress: '5000', wafRateWindowSeconds: '300' })().waf).toEqual({ ratePerAddress: 5000, windowSeconds: 300 });
    expect(from({ ...base, wafRateLimitPerAddress: '5' })).toThrow(/wafRateLimitPerAddress must be a whole number from 10/);
    expect(from({ ...base, wafRateWindowSeconds: '30' })).toThrow(/wafRateWindowSeconds must be one of 60, 120, 300, 600/);
  });

  it('takes an authorizer cache TTL within API Gateway’s bounds (issue 14)', () => {
    const base = { trustedRootsPem: 'PEM' };
    expect(from({ ...base, authorizerCacheSeconds: '30' })().authorizerCacheSeconds).toBe(30);
    expect(from({ ...base, authorizerCacheSeconds: '3601' })).toThrow(/authorizerCacheSeconds must be a whole number of seconds from 0 to 3600/);
    expect(from({ ...base, authorizerCacheSeconds: '1.5' })).toThrow(/authorizerCacheSeconds must be a whole number/);
  });

  it('trusts an external issuer only with its keys and its clients, and verifies tokens in functions only when asked', () => {
    const base = { trustedRootsPem: 'PEM' };
    const issuer = { jwtIssuer: 'https://id.example.com', jwtJwksUri: 'https://id.example.com/.well-known/jwks.json', jwtClientIds: 'web, ci ' };
    expect(from({ ...base, ...issuer })().externalIssuer).toEqual({
      issuer: 'https://id.example.com',
      jwksUri: 'https://id.example.com/.well-known/jwks.json',
      clientIds: 'web,ci',
    });
    expect(from({ ...base, jwtIssuer: 'https://id.example.com' })).toThrow(/jwtIssuer, jwtJwksUri and jwtClientIds go together: pass all three/);
    expect(from({ ...base, ...issuer, jwtJwksUri: 'id.example.com/jwks' })).toThrow(/jwtJwksUri must be an http\(s\) URL/);
    expect(from({ ...base, ...issuer, jwtClientIds: ' , ' })).toThrow(/jwtClientIds must name at least one client id/);
    expect(from({ ...base, verifyTokensInFunctions: 'true' })().verifyTokensInFunctions).toBe(true);
    // cdk.json may hold a real boolean.
    expect(from({ ...base, verifyTokensInFunctions: true })().verifyTokensInFunctions).toBe(true);
    expect(from({ ...base, verifyTokensInFunctions: 'yes' })).toThrow(/verifyTokensInFunctions must be true or false/);
  });

  it('takes a Cognito domain prefix by Cognito rules, and only with the user pool', () => {
    const base = { trustedRootsPem: 'PEM' };
    expect(from({ ...base, cognitoDomainPrefix: 'acme-kmod' })().cognitoDomainPrefix).toBe('acme-kmod');
    expect(from({ ...base, cognitoDomainPrefix: 'Acme_KMOD' })).toThrow(/cognitoDomainPrefix must be lower-case letters, digits and hyphens/);
    expect(from({ ...base, cognitoDomainPrefix: 'acme-cognito' })).toThrow(/without "aws", "amazon" or "cognito"/);
    const issuer = { jwtIssuer: 'https://id.example.com', jwtJwksUri: 'https://id.example.com/jwks', jwtClientIds: 'web' };
    expect(from({ ...base, ...issuer, cognitoDomainPrefix: 'acme-kmod' })).toThrow(/cognitoDomainPrefix needs the Cognito user pool/);
  });

  it('takes etcd discovery endpoints (prefix defaulted), refusing what is not a client URL and a prefix alone', () => {
    expect(from({ trustedRootsPem: 'PEM', etcdEndpoints: 'http://10.0.0.5:2379, https://etcd-2.internal:2379' })().etcd).toEqual({
      endpoints: 'http://10.0.0.5:2379,https://etcd-2.internal:2379',
      prefix: '/kmod/nodes/',
    });
    expect(from({ trustedRootsPem: 'PEM', etcdEndpoints: 'http://10.0.0.5:2379', etcdPrefix: '/fleet/' })().etcd?.prefix).toBe('/fleet/');
    expect(from({ trustedRootsPem: 'PEM', etcdEndpoints: '10.0.0.5:2379' })).toThrow(
      /etcdEndpoints must be comma-separated http\(s\):\/\/host:port client URLs/,
    );
    expect(from({ trustedRootsPem: 'PEM', etcdEndpoints: 'http://10.0.0.5:2379', etcdPrefix: 'kmod' })).toThrow(/etcdPrefix must start with "\/"/);
    expect(from({ trustedRootsPem: 'PEM', etcdPrefix: '/kmod/' })).toThrow(/etcdPrefix needs etcdEndpoints/);
  });

  it('refuses half-given combinations and malformed values instead of ignoring them', () => {
    const base = { trustedRootsPem: 'PEM' };
    expect(from({ ...base, domainName: 'deploy.example.com' })).toThrow(/pass both \(-c domainName=<host> -c certificateArn=/);
    expect(from({ ...base, agentVpcId: 'vpc-1' })).toThrow(/pass -c agentSubnetIds=.* -c agentAvailabilityZones=/);
    expect(from({ ...base, agentSubnetIds: 'subnet-a' })).toThrow(/need agentVpcId/);
    expect(from({ ...base, approvers: '{"Staging":"dana"}' })).toThrow(/approvers must be JSON of user ids per environment/);
    // A node's previous key must outlive every agent-calling task that may have read it.
    expect(from({ ...base, nodeKeyOverlapSeconds: '60' })).toThrow(/nodeKeyOverlapSeconds must be at least 900/);
    expect(from({ ...base, nodeKeyOverlapSeconds: '1800', nodeKeyMaxAgeDays: '7' })()).toMatchObject({ nodeKeyOverlapSeconds: 1800, nodeKeyMaxAgeDays: 7 });
    expect(from({ ...base, throttleRateLimit: 'fast' })).toThrow(/throttleRateLimit must be a positive number/);
    // cdk.json may give the approvers map as an object.
    expect(from({ ...base, approvers: { Staging: ['s-1'] } })().approvers).toBe('{"Staging":["s-1"]}');
  });

  it('makes `cdk synth` fail with that message when the context is missing', () => {
    // The app as the CDK CLI runs it (cdk.json "app"), with the context the CLI would hand over.
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'infra/app.ts'], {
      env: { ...process.env, CDK_CONTEXT_JSON: '{}' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('Missing context trustedRootsPemFile: pass -c trustedRootsPemFile=');
  });
});

describe('state machine creation order', () => {
  it('puts every catalog state machine after the ones it starts', () => {
    const order = stateMachineOrder(STATE_MACHINES);
    expect([...order].sort()).toEqual(Object.keys(STATE_MACHINES).sort());
    for (const [id, spec] of Object.entries(STATE_MACHINES))
      for (const child of spec.stateMachines) expect(order.indexOf(child), `${child} before ${id}`).toBeLessThan(order.indexOf(id as never));
  });

  it('keeps declaration order where dependencies allow, and refuses cycles and undeclared machines', () => {
    expect(
      stateMachineOrder<string>({ Parent: { stateMachines: ['B', 'A'] }, A: { stateMachines: [] }, B: { stateMachines: [] }, C: { stateMachines: [] } }),
    ).toEqual(['B', 'A', 'Parent', 'C']);
    expect(() => stateMachineOrder<string>({ A: { stateMachines: ['B'] }, B: { stateMachines: ['A'] } })).toThrow(/cycle: A -> B -> A/);
    expect(() => stateMachineOrder<string>({ A: { stateMachines: ['Missing'] } })).toThrow(/A starts Missing/);
  });
});
