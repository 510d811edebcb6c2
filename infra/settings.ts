/**
 * The stack's settings, from CDK context (cdk.json or -c key=value). Optional keys have the
 * defaults documented in docs/runbooks/deploy-to-aws.md; required ones, and combinations that
 * would deploy something silently broken, fail the synth with a message naming what to pass.
 */
import { readFileSync } from 'node:fs';
import { FUNCTIONS, type FunctionSpec } from '../functions/catalog.ts';
import { AUTHORIZER_CACHE_SECONDS_DEFAULT } from '../functions/gatewayResponses.ts';
import { WAF_WINDOWS, type WafWindowSeconds } from '../functions/webAcl.ts';
import { z } from 'zod';
import { ENVIRONMENTS } from '../functions/domain/environments.ts';
import { type AlarmsConfig, alarmsConfigSchema } from '../functions/domain/alarms.ts';
import { type AuditRetention, AuditRetentionError, resolveAuditRetention } from '../functions/domain/auditRetention.ts';
import { AWS_ROUTER_KINDS, albSettingsSchema, route53SettingsSchema, type AlbSettings, type Route53Settings } from '../functions/lib/routers/settings.ts';

export interface OrchestratorSettings {
  /** Hosts/CIDRs where agents may live (SSRF guard). */
  agentAllowedHosts: string;
  /** PEM bundle of trusted module-signing roots. */
  trustedRootsPem: string;
  /** Comma-separated http(s) URLs of CRLs the Security scan must consult (besides the certificates' distribution points). */
  revocationListUrls: string;
  /** The web ACL in front of the API (infra/constructs/webAcl.ts): requests per address per window, counted at the edge. */
  waf: { ratePerAddress: number; windowSeconds: WafWindowSeconds };
  /** Approver user ids per environment (JSON). */
  approvers: string;
  /** Public base URL of the API (for email links); default: the API's own stage URL. */
  publicApiUrl?: string;
  /** Stage throttling, the outer guard in front of the in-app limits. */
  throttleRateLimit: number;
  /**
   * How long API Gateway keeps an authorizer answer per bearer token (0: not at all). Longer saves
   * authorizer invocations, and delays a role change or a disabled principal by as long.
   */
  authorizerCacheSeconds: number;
  throttleBurstLimit: number;
  /** Optional custom domain (TLS 1.2+) with an ACM certificate ARN. */
  domainName?: string;
  certificateArn?: string;
  /** CORS allowlist (comma-separated origins); empty means no CORS. */
  corsAllowedOrigins: string;
  /** Days between scheduled rotations of the key-set secrets. */
  keyRotationDays: number;
  /** Enrolled nodes' own keys older than this many days are rotated by the hourly pass. */
  nodeKeyMaxAgeDays: number;
  /**
   * How long a node's previous key is still honoured after a rotation; at least the longest
   * agent-calling function timeout, since such a task may sign with a node record read before.
   */
  nodeKeyOverlapSeconds: number;
  /**
   * The network the agents live in: functions that call agents run in these private subnets (which
   * need a NAT gateway or VPC endpoints for DynamoDB, S3, Secrets Manager and Step Functions).
   * Without it they run outside any VPC and reach only public agent addresses.
   */
  agentNetwork?: { vpcId: string; subnetIds: string[]; availabilityZones: string[] };
  /**
   * etcd discovery (docs/adr/0009-discovery-sources.md): client URLs of the etcd cluster nodes are
   * registered in. Given, a scheduled function reconciles the Nodes table with it every minute.
   */
  etcd?: { endpoints: string; prefix: string };
  /**
   * Trust an OIDC issuer other than Cognito: no user pool is created, and the token verifiers check
   * this issuer's tokens (JWKS) instead. For LocalStack's community edition, which does not emulate
   * Cognito, and for organisations with their own issuer. Its access tokens must carry the claims a
   * Cognito access token does (functions/lib/auth.ts): sub, client_id, token_use "access", and
   * cognito:groups (roles) or scope.
   */
  externalIssuer?: { issuer: string; jwksUri: string; clientIds: string };
  /**
   * The API functions verify the bearer token themselves when the request carries no authorizer
   * context: for gateways that do not run Lambda authorizers (LocalStack's community edition).
   * Off by default; on AWS the authorizer always runs first.
   */
  verifyTokensInFunctions: boolean;
  /**
   * A Cognito domain prefix: the user pool gets its hosted domain, whose /oauth2/token endpoint is
   * what the service client (client credentials: CI pipelines, `npm run smoke`) gets tokens from.
   */
  cognitoDomainPrefix?: string;
  /**
   * Traffic routers per environment (docs/adr/0020-traffic-routers.md): `trafficRouters`
   * (`{"Staging":"alb","Production":"route53"}`; unnamed environments keep `cluster-table`) with
   * `albRouters` / `route53Routers` naming the listeners, target groups and hosted zones. The
   * routesTraffic functions get these settings and IAM on exactly those resources.
   */
  traffic: { kinds: Record<string, string>; alb: Record<string, AlbSettings>; route53: Record<string, Route53Settings> };
  /**
   * Alarms per environment that stop a deployment (context `alarms`, the same JSON as ALARMS:
   * metric conditions and CloudWatch alarms by name; functions/domain/alarms.ts).
   */
  alarms?: AlarmsConfig;
  /**
   * Email addresses subscribed to the alarm topic of the CloudWatch alarms (context `alarmEmail`,
   * comma-separated; none by default: subscribe anything else to the AlarmTopicArn output).
   * docs/runbooks/alarms.md.
   */
  alarmEmails: string[];
  /**
   * Days the Audit table keeps each category of event (context `auditRetentionDays`: a number for
   * every category, or JSON like {"default":400,"security":2555,"node":30}; unnamed categories keep
   * their defaults, functions/domain/auditRetention.ts). Every function that writes audit events gets it.
   */
  auditRetention: AuditRetention;
  /** Days the S3 export keeps each exported day (context `auditExportRetentionDays`, default 7 years). */
  auditExportRetentionDays: number;
}

/** A context value that is missing or unusable; the message says what to pass. */
export class ContextError extends Error {
  override name = 'ContextError';
}

/** Settings from CDK context, with the documented defaults; throws ContextError for what must be given. */
export function settingsFromContext(get: (key: string) => unknown): OrchestratorSettings {
  const opt = (k: string): string | undefined => {
    const v = get(k);
    return v === undefined || v === null || v === '' ? undefined : String(v);
  };
  const num = (k: string, d: number): number => {
    const n = Number(opt(k) ?? d);
    if (!Number.isFinite(n) || n <= 0) throw new ContextError(`Context ${k} must be a positive number, got "${opt(k)}": pass -c ${k}=<number>.`);
    return n;
  };
  const domainName = opt('domainName');
  const certificateArn = opt('certificateArn');
  // Either alone used to be ignored without a word: a custom domain that never came up.
  if (Boolean(domainName) !== Boolean(certificateArn)) {
    throw new ContextError(
      'Context domainName and certificateArn go together: pass both (-c domainName=<host> -c certificateArn=<ACM certificate ARN>) or neither.',
    );
  }
  return {
    agentAllowedHosts: opt('agentAllowedHosts') ?? '10.0.0.0/8',
    trustedRootsPem: trustedRootsPem(opt),
    // cdk.json may hold the map itself rather than its JSON text.
    approvers: approvers(typeof get('approvers') === 'object' && get('approvers') ? JSON.stringify(get('approvers')) : opt('approvers')),
    publicApiUrl: opt('publicApiUrl'),
    throttleRateLimit: num('throttleRateLimit', 50),
    authorizerCacheSeconds: authorizerCacheSeconds(opt),
    throttleBurstLimit: num('throttleBurstLimit', 100),
    domainName,
    certificateArn,
    corsAllowedOrigins: opt('corsAllowedOrigins') ?? '',
    keyRotationDays: num('keyRotationDays', 30),
    nodeKeyMaxAgeDays: num('nodeKeyMaxAgeDays', 30),
    nodeKeyOverlapSeconds: nodeKeyOverlapSeconds(num('nodeKeyOverlapSeconds', 900)),
    agentNetwork: agentNetwork(opt),
    etcd: etcd(opt),
    externalIssuer: externalIssuer(opt),
    verifyTokensInFunctions: flag(opt, 'verifyTokensInFunctions'),
    cognitoDomainPrefix: cognitoDomainPrefix(opt),
    revocationListUrls: revocationListUrls(opt('revocationListUrls')),
    waf: waf(opt, num),
    traffic: traffic(get),
    alarms: alarms(get),
    alarmEmails: alarmEmails(opt('alarmEmail')),
    ...auditRetention(get, num),
  };
}

/** Seven years and two leap days: what auditors commonly ask an archive to keep. */
export const AUDIT_EXPORT_RETENTION_DAYS_DEFAULT = 2557;

/**
 * Validated with the same rules the functions apply (a bad value fails the synth, not every audited
 * change), and the archive must outlive the table: an event must not leave the export before the table.
 */
function auditRetention(
  get: (key: string) => unknown,
  num: (k: string, d: number) => number,
): Pick<OrchestratorSettings, 'auditRetention' | 'auditExportRetentionDays'> {
  const raw = get('auditRetentionDays');
  let given: unknown = raw;
  if (typeof raw === 'string' && raw.trim().startsWith('{')) given = jsonContext(get, 'auditRetentionDays');
  const env: Record<string, string> = {};
  if (given !== undefined && given !== null && given !== '') {
    if (typeof given === 'object' && !Array.isArray(given)) {
      for (const [k, v] of Object.entries(given)) env[k === 'default' ? 'AUDIT_RETENTION_DAYS' : `AUDIT_RETENTION_DAYS_${k.toUpperCase()}`] = String(v);
    } else env.AUDIT_RETENTION_DAYS = String(given);
  }
  let retention: AuditRetention;
  try {
    retention = resolveAuditRetention(env);
  } catch (e) {
    if (!(e instanceof AuditRetentionError)) throw e;
    throw new ContextError(
      `Context auditRetentionDays is not valid (${e.message}): pass -c auditRetentionDays=<days> or '{"default":400,"security":2555}' (categories: deployment, stage, node, module, approval, security, config).`,
    );
  }
  const auditExportRetentionDays = num('auditExportRetentionDays', AUDIT_EXPORT_RETENTION_DAYS_DEFAULT);
  const longest = Math.max(...Object.values(retention));
  if (!Number.isInteger(auditExportRetentionDays) || auditExportRetentionDays < longest)
    throw new ContextError(
      `Context auditExportRetentionDays must be a whole number of days, at least the longest audit retention (${longest}), got "${auditExportRetentionDays}".`,
    );
  return { auditRetention: retention, auditExportRetentionDays };
}

/** A JSON context value: cdk.json may hold the object itself, -c passes its text. */
function jsonContext(get: (key: string) => unknown, key: string): unknown {
  const v = get(key);
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'object') return v;
  try {
    return JSON.parse(String(v));
  } catch {
    throw new ContextError(`Context ${key} must be JSON, got "${String(v)}": see docs/runbooks/traffic-router.md.`);
  }
}

/** Optional, comma-separated; each must look like an address, or SNS would refuse the subscription at deploy time. */
function alarmEmails(raw: string | undefined): string[] {
  const emails = (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = emails.filter((e) => !/^[^\s@,]+@[^\s@,]+\.[^\s@,]+$/.test(e));
  if (bad.length)
    throw new ContextError(`Context alarmEmail must be comma-separated email addresses, got "${bad.join(', ')}": pass -c alarmEmail=oncall@example.com.`);
  return [...new Set(emails)];
}

/** Validated here, so a malformed setting fails `cdk synth`, not the first deployment. */
function alarms(get: (key: string) => unknown): AlarmsConfig | undefined {
  const raw = jsonContext(get, 'alarms');
  if (raw === undefined) return undefined;
  const parsed = alarmsConfigSchema.safeParse(raw);
  if (!parsed.success)
    throw new ContextError(
      `Context alarms is not valid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')} (see docs/runbooks/traffic-router.md).`,
    );
  return parsed.data;
}

/** Every environment naming alb or route53 must have its resources named too, or the switch would fail at deploy time. */
function traffic(get: (key: string) => unknown): OrchestratorSettings['traffic'] {
  const kinds = z.partialRecord(z.enum(ENVIRONMENTS), z.enum(AWS_ROUTER_KINDS)).safeParse(jsonContext(get, 'trafficRouters') ?? {});
  if (!kinds.success)
    throw new ContextError(
      `Context trafficRouters must map environments to ${AWS_ROUTER_KINDS.join(' | ')}: ${kinds.error.issues[0]?.message} (e.g. -c trafficRouters='{"Staging":"alb"}').`,
    );
  const alb = albSettingsSchema.safeParse(jsonContext(get, 'albRouters') ?? {});
  if (!alb.success) throw new ContextError(`Context albRouters is not valid: ${alb.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}.`);
  const route53 = route53SettingsSchema.safeParse(jsonContext(get, 'route53Routers') ?? {});
  if (!route53.success)
    throw new ContextError(`Context route53Routers is not valid: ${route53.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}.`);
  for (const [env, kind] of Object.entries(kinds.data)) {
    if (kind === 'alb' && !alb.data[env])
      throw new ContextError(`Context trafficRouters gives ${env} the ALB router: name its listener and target groups in albRouters.`);
    if (kind === 'route53' && !route53.data[env])
      throw new ContextError(`Context trafficRouters gives ${env} the Route 53 router: name its hosted zone and records in route53Routers.`);
  }
  return { kinds: kinds.data as Record<string, string>, alb: alb.data, route53: route53.data };
}

/** Cognito's rules for a domain prefix; it has no meaning without a user pool. */
function cognitoDomainPrefix(opt: (k: string) => string | undefined): string | undefined {
  const prefix = opt('cognitoDomainPrefix');
  if (prefix === undefined) return undefined;
  if (opt('jwtIssuer')) throw new ContextError('Context cognitoDomainPrefix needs the Cognito user pool: drop it, or drop jwtIssuer.');
  if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(prefix) || /aws|amazon|cognito/.test(prefix))
    throw new ContextError(
      `Context cognitoDomainPrefix must be lower-case letters, digits and hyphens, without "aws", "amazon" or "cognito", got "${prefix}": pass -c cognitoDomainPrefix=<your-org>-kmod.`,
    );
  return prefix;
}

/** A boolean context value: absent is false; anything but true/false is refused. */
function flag(opt: (k: string) => string | undefined, key: string): boolean {
  const raw = opt(key);
  if (raw === undefined || raw === 'false') return false;
  if (raw === 'true') return true;
  throw new ContextError(`Context ${key} must be true or false, got "${raw}": pass -c ${key}=true.`);
}

/** Optional, all three together: an issuer without its keys or its clients could verify nothing. */
function externalIssuer(opt: (k: string) => string | undefined): OrchestratorSettings['externalIssuer'] {
  const keys = ['jwtIssuer', 'jwtJwksUri', 'jwtClientIds'] as const;
  const [issuer, jwksUri, clientIds] = keys.map((k) => opt(k));
  if (!issuer && !jwksUri && !clientIds) return undefined;
  if (!issuer || !jwksUri || !clientIds)
    throw new ContextError(
      'Context jwtIssuer, jwtJwksUri and jwtClientIds go together: pass all three (-c jwtIssuer=<iss claim> -c jwtJwksUri=<JWKS URL> -c jwtClientIds=<client ids, comma-separated>) or none (Cognito).',
    );
  if (!/^https?:\/\/\S+$/.test(jwksUri)) throw new ContextError(`Context jwtJwksUri must be an http(s) URL, got "${jwksUri}".`);
  const ids = clientIds
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!ids.length) throw new ContextError('Context jwtClientIds must name at least one client id.');
  return { issuer, jwksUri, clientIds: ids.join(',') };
}

/** Optional; each must be an http(s) URL the Security scan can fetch (a file path means nothing in Lambda). */
function revocationListUrls(raw: string | undefined): string {
  const urls = (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = urls.filter((u) => !/^https?:\/\/[^\s/]+\/\S*$/.test(u));
  if (bad.length)
    throw new ContextError(
      `Context revocationListUrls must be comma-separated http(s) URLs of CRLs, got "${bad.join(', ')}": pass -c revocationListUrls=http://pki.example.com/root.crl.`,
    );
  return urls.join(',');
}

/** API Gateway's own bounds for an authorizer's result cache: 0 to 3600 s. */
function authorizerCacheSeconds(opt: (k: string) => string | undefined): number {
  const v = Number(opt('authorizerCacheSeconds') ?? AUTHORIZER_CACHE_SECONDS_DEFAULT);
  if (!Number.isInteger(v) || v < 0 || v > 3600)
    throw new ContextError(`Context authorizerCacheSeconds must be a whole number of seconds from 0 to 3600, got "${opt('authorizerCacheSeconds')}".`);
  return v;
}

/** WAF's own bounds: a rate limit of at least 10 requests, over one of its evaluation windows. */
function waf(opt: (k: string) => string | undefined, num: (k: string, d: number) => number): OrchestratorSettings['waf'] {
  const ratePerAddress = num('wafRateLimitPerAddress', 1000);
  if (!Number.isInteger(ratePerAddress) || ratePerAddress < 10 || ratePerAddress > 2_000_000_000)
    throw new ContextError(`Context wafRateLimitPerAddress must be a whole number from 10 to 2,000,000,000, got "${opt('wafRateLimitPerAddress')}".`);
  const windowSeconds = num('wafRateWindowSeconds', 60);
  if (!(WAF_WINDOWS as readonly number[]).includes(windowSeconds))
    throw new ContextError(`Context wafRateWindowSeconds must be one of ${WAF_WINDOWS.join(', ')}, got "${opt('wafRateWindowSeconds')}".`);
  return { ratePerAddress, windowSeconds: windowSeconds as WafWindowSeconds };
}

/**
 * Required: without roots every deployment fails its security scan. There is no default, because a
 * placeholder deploys without complaint; offline `npm run synth` passes one explicitly.
 */
function trustedRootsPem(opt: (k: string) => string | undefined): string {
  const file = opt('trustedRootsPemFile');
  if (file) {
    try {
      return readFileSync(file, 'utf8');
    } catch (e) {
      throw new ContextError(
        `Context trustedRootsPemFile=${file} cannot be read (${(e as Error).message}): pass the path of the PEM bundle of module-signing roots.`,
      );
    }
  }
  const inline = opt('trustedRootsPem');
  if (inline) return inline;
  throw new ContextError(
    'Missing context trustedRootsPemFile: pass -c trustedRootsPemFile=<path to the PEM bundle of trusted module-signing roots> (or -c trustedRootsPem=<PEM text>).',
  );
}

/** Default {} (only Admins decide); anything given must be the JSON the gate parses. */
function approvers(raw: string | undefined): string {
  if (raw === undefined) return '{}';
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    parsed = undefined;
  }
  if (
    !parsed ||
    typeof parsed !== 'object' ||
    Array.isArray(parsed) ||
    !Object.values(parsed).every((ids) => Array.isArray(ids) && ids.every((i) => typeof i === 'string'))
  ) {
    throw new ContextError(`Context approvers must be JSON of user ids per environment: pass -c approvers='{"Staging":["<sub>"],"Production":["<sub>"]}'.`);
  }
  return raw;
}

/** Optional, but a VPC without its subnets and zones cannot place a function. */
function agentNetwork(opt: (k: string) => string | undefined): OrchestratorSettings['agentNetwork'] {
  const vpcId = opt('agentVpcId');
  const list = (k: string) =>
    (opt(k) ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  if (!vpcId) {
    if (opt('agentSubnetIds') || opt('agentAvailabilityZones'))
      throw new ContextError('Context agentSubnetIds/agentAvailabilityZones need agentVpcId: pass -c agentVpcId=<vpc-…> as well.');
    return undefined;
  }
  const subnetIds = list('agentSubnetIds');
  const availabilityZones = list('agentAvailabilityZones');
  if (!subnetIds.length || !availabilityZones.length) {
    throw new ContextError(
      'Context agentVpcId needs the private subnets and their zones: pass -c agentSubnetIds=<subnet-a,subnet-b> -c agentAvailabilityZones=<zone-a,zone-b>.',
    );
  }
  return { vpcId, subnetIds, availabilityZones };
}

/** Optional; each endpoint must be an http(s) URL, since a typo would only show as a failing schedule. */
function etcd(opt: (k: string) => string | undefined): OrchestratorSettings['etcd'] {
  const raw = opt('etcdEndpoints');
  if (!raw) {
    if (opt('etcdPrefix')) throw new ContextError('Context etcdPrefix needs etcdEndpoints: pass -c etcdEndpoints=<http://10.0.0.5:2379,…> as well.');
    return undefined;
  }
  const endpoints = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = endpoints.filter((e) => !/^https?:\/\/[^/\s]+\/?$/.test(e));
  if (!endpoints.length || bad.length)
    throw new ContextError(
      `Context etcdEndpoints must be comma-separated http(s)://host:port client URLs, got "${raw}": pass -c etcdEndpoints=http://10.0.0.5:2379.`,
    );
  const prefix = opt('etcdPrefix') ?? '/kmod/nodes/';
  if (!prefix.startsWith('/')) throw new ContextError(`Context etcdPrefix must start with "/", got "${prefix}": pass -c etcdPrefix=/kmod/nodes/.`);
  return { endpoints: endpoints.join(','), prefix };
}

/** An overlap shorter than an agent-calling task may run lets such a task sign with a key the agent already dropped. */
function nodeKeyOverlapSeconds(seconds: number): number {
  const longest = Math.max(
    ...Object.values(FUNCTIONS as Record<string, FunctionSpec>)
      .filter((f) => f.callsAgents)
      .map((f) => f.timeoutSeconds),
  );
  if (seconds < longest)
    throw new ContextError(
      `Context nodeKeyOverlapSeconds must be at least ${longest} (the longest agent-calling function timeout), got ${seconds}: pass -c nodeKeyOverlapSeconds=${longest} or more.`,
    );
  return seconds;
}
