/** The REST API: stage, optional custom domain, the catalog's routes behind the JWT authorizer. */
import {
  Aws,
  Duration,
  Stack,
  aws_apigateway as apigw,
  aws_certificatemanager as acm,
  type aws_kms as kms,
  type aws_lambda as lambda,
  aws_logs as logs,
} from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { ROUTES, type FunctionsById } from '../../functions/catalog.ts';
import { GATEWAY_RESPONSES, GATEWAY_SECURITY_HEADERS } from '../../functions/gatewayResponses.ts';
import type { OrchestratorSettings } from '../settings.ts';
import { Layer } from './layer.ts';

/** The REST API's one stage. */
export const STAGE_NAME = 'v1';

export interface HttpApiProps {
  settings: Pick<
    OrchestratorSettings,
    'throttleRateLimit' | 'throttleBurstLimit' | 'corsAllowedOrigins' | 'authorizerCacheSeconds' | 'domainName' | 'certificateArn' | 'publicApiUrl'
  >;
  key: kms.IKey;
}

/**
 * The RestApi and the authorizer are children of the stack, not of this layer: CDK names the
 * authorizer and every route's Lambda permission after their construct paths (Names.uniqueId),
 * which the layer-free logical IDs cannot preserve; under the layer all of those would be renamed
 * or replaced on the next deploy.
 */
export class HttpApi extends Layer {
  readonly api: apigw.RestApi;
  /** Base URL of links in emails: the setting, else the custom domain, else the stage URL. */
  readonly publicUrl: string;
  /**
   * Where a proxy in front reaches the API (the console's CloudFront behaviour for /api/*): the custom
   * domain, else the execute-api host and the stage's path. Made from the API's id, not from its
   * deployment (which depends on the functions, which depend on the console's app client).
   */
  readonly origin: { domainName: string; path: string };

  private readonly authorizerCacheSeconds: number;

  constructor(scope: Construct, id: string, { settings, key }: HttpApiProps) {
    super(scope, id);
    this.authorizerCacheSeconds = settings.authorizerCacheSeconds;
    this.api = new apigw.RestApi(Stack.of(this), 'Api', {
      restApiName: 'kmod-orchestrator',
      cloudWatchRole: true,
      deployOptions: {
        stageName: STAGE_NAME,
        tracingEnabled: true,
        throttlingRateLimit: settings.throttleRateLimit,
        throttlingBurstLimit: settings.throttleBurstLimit,
        loggingLevel: apigw.MethodLoggingLevel.ERROR,
        accessLogDestination: new apigw.LogGroupLogDestination(
          new logs.LogGroup(this, 'ApiAccessLogs', { retention: logs.RetentionDays.ONE_YEAR, encryptionKey: key }),
        ),
        accessLogFormat: apigw.AccessLogFormat.jsonWithStandardFields(),
      },
      defaultCorsPreflightOptions: settings.corsAllowedOrigins
        ? { allowOrigins: settings.corsAllowedOrigins.split(',').map((s) => s.trim()), allowHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key'] }
        : undefined,
      disableExecuteApiEndpoint: false,
    });
    if (settings.domainName && settings.certificateArn) {
      this.api.addDomainName('Domain', {
        domainName: settings.domainName,
        certificate: acm.Certificate.fromCertificateArn(this, 'Certificate', settings.certificateArn),
        securityPolicy: apigw.SecurityPolicy.TLS_1_2,
        endpointType: apigw.EndpointType.REGIONAL,
      });
    }
    this.publicUrl = settings.publicApiUrl ?? (settings.domainName ? `https://${settings.domainName}` : this.api.url.replace(/\/$/, ''));
    this.origin = settings.domainName
      ? { domainName: settings.domainName, path: '' }
      : { domainName: `${this.api.restApiId}.execute-api.${Aws.REGION}.${Aws.URL_SUFFIX}`, path: `/${STAGE_NAME}` };
  }

  /** Routes from the catalog; API Gateway's own errors answer in the product's JSON shape. */
  serve(functions: FunctionsById<lambda.IFunction>, authorizerFn: lambda.IFunction): void {
    const authorizer = new apigw.RequestAuthorizer(Stack.of(this), 'JwtAuthorizer', {
      handler: authorizerFn,
      identitySources: [apigw.IdentitySource.header('Authorization')],
      // Off by default (functions/gatewayResponses.ts AUTHORIZER_CACHE_SECONDS_DEFAULT): a cached
      // answer keeps a demoted or disabled principal in for its TTL on top of DIRECTORY_CACHE_SECONDS
      // (API Gateway's own default is 5 minutes). The local gateway honours the same setting.
      resultsCacheTtl: Duration.seconds(this.authorizerCacheSeconds),
    });
    for (const route of ROUTES) {
      const resource = this.api.root.resourceForPath(route.path);
      resource.addMethod(
        route.method,
        // One permission per function for the whole API, not two per method (stage and test-invoke):
        // that was 92 of the stack's 500 resources, and CORS preflights add a method per resource.
        // The API invokes a function only through the integrations configured here.
        new apigw.LambdaIntegration(functions[route.fn], { scopePermissionToMethod: false }),
        route.auth ? { authorizer, authorizationType: apigw.AuthorizationType.CUSTOM } : { authorizationType: apigw.AuthorizationType.NONE },
      );
    }
    for (const g of GATEWAY_RESPONSES) {
      this.api.addGatewayResponse(`Response${g.type}`, {
        type: apigw.ResponseType.of(g.type),
        statusCode: String(g.statusCode),
        responseHeaders: Object.fromEntries(
          Object.entries({ 'Content-Type': 'application/json', ...GATEWAY_SECURITY_HEADERS, ...g.headers }).map(([k, v]) => [k, `'${v}'`]),
        ),
        templates: { 'application/json': JSON.stringify({ code: g.code, message: g.message }) },
      });
    }
  }
}
