/**
 * The web console on AWS (docs/adr/0035-web-console.md): the esbuild bundle (console/build.ts) in a
 * private S3 bucket, served by CloudFront through Origin Access Control, with its own response
 * headers (a CSP that allows only this origin, the API, the WebSocket API and Cognito), and a
 * Cognito app client for the hosted UI's authorization-code flow with PKCE (public client, no
 * secret) whose callback is the distribution's URL. config.json is written beside the bundle at
 * deploy time with the API's and the pool's real values.
 *
 * A nested stack, like the monitoring and audit-export ones: the main stack is near
 * CloudFormation's 500-resource limit.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Aws,
  Duration,
  Fn,
  NestedStack,
  RemovalPolicy,
  aws_cloudfront as cloudfront,
  aws_cloudfront_origins as origins,
  aws_cognito as cognito,
  aws_s3 as s3,
  aws_s3_deployment as s3deploy,
} from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { buildConsoleSync } from '../../console/build.ts';
import type { CognitoAuth, ConsoleConfig } from '../../console/src/config.ts';

export interface ConsoleProps {
  userPool: cognito.IUserPool;
  /** The pool's hosted domain, e.g. https://acme-kmod.auth.eu-west-1.amazoncognito.com. */
  domainUrl: string;
  /** Where CloudFront reaches the API (infra/constructs/api.ts HttpApi.origin): the console calls it on its own origin, under /api/. */
  api: { domainName: string; path: string };
  /** The WebSocket API's URL (operators' live events). */
  wsUrl: string;
}

/** The console's CSP: its own files and API (same origin); the WebSocket API and Cognito for connections. */
export function consoleCsp(p: Pick<ConsoleProps, 'wsUrl' | 'domainUrl'>): string {
  const origin = (url: string) => Fn.join('/', [Fn.select(0, Fn.split('/', url, 4)), '', Fn.select(2, Fn.split('/', url, 4))]);
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self' ${origin(p.wsUrl)} ${origin(p.domainUrl)} https://cognito-idp.${Aws.REGION}.${Aws.URL_SUFFIX}`,
    `form-action 'self' ${origin(p.domainUrl)}`,
    "frame-ancestors 'none'",
    "base-uri 'self'",
  ].join('; ');
}

export class Console extends NestedStack {
  readonly bucket: s3.Bucket;
  readonly distribution: cloudfront.Distribution;
  readonly client: cognito.UserPoolClient;
  /** https://<distribution domain> */
  readonly url: string;

  constructor(scope: Construct, id: string, props: ConsoleProps) {
    super(scope, id, { description: 'kmod-orchestrator: web console (S3, CloudFront with OAC, Cognito hosted-UI client with PKCE)' });
    const logs = new s3.Bucket(this, 'ConsoleLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED, // log delivery cannot write to KMS-encrypted buckets
      enforceSSL: true,
      // CloudFront's standard logs are delivered with ACLs.
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [{ id: 'ExpireLogs', expiration: Duration.days(90) }],
    });
    this.bucket = new s3.Bucket(this, 'ConsoleBucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      versioned: true,
      serverAccessLogsBucket: logs,
      serverAccessLogsPrefix: 'bucket/',
      removalPolicy: RemovalPolicy.DESTROY,
      autoDeleteObjects: false,
      lifecycleRules: [{ id: 'OldBundles', noncurrentVersionExpiration: Duration.days(30) }],
    });
    const headers = new cloudfront.ResponseHeadersPolicy(this, 'ConsoleHeaders', {
      comment: 'kmod console: CSP and security headers',
      securityHeadersBehavior: {
        contentSecurityPolicy: { contentSecurityPolicy: consoleCsp(props), override: true },
        contentTypeOptions: { override: true },
        frameOptions: { frameOption: cloudfront.HeadersFrameOption.DENY, override: true },
        referrerPolicy: { referrerPolicy: cloudfront.HeadersReferrerPolicy.NO_REFERRER, override: true },
        strictTransportSecurity: { accessControlMaxAge: Duration.days(365), includeSubdomains: true, override: true },
      },
    });
    this.distribution = new cloudfront.Distribution(this, 'ConsoleDistribution', {
      comment: 'kmod-orchestrator web console',
      defaultRootObject: 'index.html',
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.bucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        responseHeadersPolicy: headers,
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
        compress: true,
      },
      // The API on the console's own origin: no CORS (whose per-resource OPTIONS methods the main
      // stack has no room for), and the browser sends the token to one origin only. Never cached;
      // every viewer header but Host goes to the API (with caching disabled, Authorization included).
      additionalBehaviors: {
        '/api/*': {
          origin: new origins.HttpOrigin(props.api.domainName, { originPath: props.api.path, protocolPolicy: cloudfront.OriginProtocolPolicy.HTTPS_ONLY }),
          viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
          allowedMethods: cloudfront.AllowedMethods.ALLOW_ALL,
          cachePolicy: cloudfront.CachePolicy.CACHING_DISABLED,
          originRequestPolicy: cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
        },
      },
      minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
      enableLogging: true,
      logBucket: logs,
      logFilePrefix: 'cloudfront/',
    });
    this.url = `https://${this.distribution.distributionDomainName}`;
    // The hosted UI's code flow; PKCE is what a public client (no secret) uses with it.
    this.client = new cognito.UserPoolClient(this, 'ConsoleClient', {
      userPool: props.userPool,
      userPoolClientName: 'kmod-console',
      generateSecret: false,
      authFlows: {},
      oAuth: {
        flows: { authorizationCodeGrant: true },
        scopes: [cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
        callbackUrls: [`${this.url}/`],
        logoutUrls: [`${this.url}/`],
      },
      supportedIdentityProviders: [cognito.UserPoolClientIdentityProvider.COGNITO],
      accessTokenValidity: Duration.hours(1),
      idTokenValidity: Duration.hours(1),
      refreshTokenValidity: Duration.hours(12),
      preventUserExistenceErrors: true,
      enableTokenRevocation: true,
    });
    const auth: CognitoAuth = {
      mode: 'cognito',
      authority: `https://cognito-idp.${Aws.REGION}.${Aws.URL_SUFFIX}/${props.userPool.userPoolId}`,
      clientId: this.client.userPoolClientId,
      domain: props.domainUrl,
      scope: 'openid email profile',
    };
    const config: ConsoleConfig = { apiUrl: this.url, wsUrl: props.wsUrl, auth };
    new s3deploy.BucketDeployment(this, 'ConsoleFiles', {
      sources: [s3deploy.Source.asset(buildConsoleSync(mkdtempSync(join(tmpdir(), 'kmod-console-')))), s3deploy.Source.jsonData('config.json', config)],
      destinationBucket: this.bucket,
      distribution: this.distribution,
      distributionPaths: ['/*'],
      prune: true,
      memoryLimit: 256,
    });
  }
}
