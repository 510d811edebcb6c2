/**
 * The WebSocket API (docs/adr/0010-websocket-layer.md): one API Gateway WebSocket API for every
 * kind of WebSocket client, its routes from the catalog (functions/catalog.ts WEBSOCKET), the
 * REQUEST authorizer on $connect, one stage with access logs, and the ManageConnections grant for
 * the functions that post to or close connections.
 */
import {
  Aws,
  Fn,
  Stack,
  aws_apigatewayv2 as apigwv2,
  aws_apigatewayv2_authorizers as authorizers,
  aws_apigatewayv2_integrations as integrations,
  aws_iam as iam,
  type aws_kms as kms,
  type aws_lambda as lambda,
  aws_logs as logs,
} from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { FUNCTIONS, WEBSOCKET, type FunctionId, type FunctionSpec, type FunctionsById } from '../../functions/catalog.ts';
import { Layer } from './layer.ts';

export interface WebSocketProps {
  key: kms.IKey;
  throttleRateLimit: number;
  throttleBurstLimit: number;
}

export class WebSocketLayer extends Layer {
  readonly api: apigwv2.WebSocketApi;
  readonly stage: apigwv2.WebSocketStage;
  /** What clients connect to: wss://<api>.execute-api.<region>.amazonaws.com/<stage>. */
  readonly url: string;
  /** The management API (PostToConnection, DeleteConnection) of that stage: https://…/<stage>. */
  readonly managementEndpoint: string;

  constructor(scope: Construct, id: string, props: WebSocketProps) {
    super(scope, id);
    this.api = new apigwv2.WebSocketApi(this, 'WebSocketApi', {
      apiName: 'kmod-orchestrator-ws',
      description: 'kmod WebSocket API: dial-out node agents (and operators’ live events)',
      routeSelectionExpression: WEBSOCKET.routeSelectionExpression,
    });
    const accessLogs = new logs.LogGroup(this, 'WebSocketAccessLogs', { retention: logs.RetentionDays.ONE_YEAR, encryptionKey: props.key });
    this.stage = new apigwv2.WebSocketStage(this, 'WebSocketStage', {
      webSocketApi: this.api,
      stageName: WEBSOCKET.stage,
      autoDeploy: true,
      throttle: { rateLimit: props.throttleRateLimit, burstLimit: props.throttleBurstLimit },
    });
    const cfnStage = this.stage.node.defaultChild as apigwv2.CfnStage;
    cfnStage.accessLogSettings = {
      destinationArn: accessLogs.logGroupArn,
      format: JSON.stringify({
        requestId: '$context.requestId',
        ip: '$context.identity.sourceIp',
        requestTime: '$context.requestTime',
        routeKey: '$context.routeKey',
        eventType: '$context.eventType',
        status: '$context.status',
        connectionId: '$context.connectionId',
        principalId: '$context.authorizer.principalId',
        error: '$context.error.message',
        integrationError: '$context.integrationErrorMessage',
      }),
    };
    // Built from the API id, not from the stage resource, so functions can carry it without a dependency on the routes.
    this.url = Fn.join('', [this.api.apiEndpoint, '/', WEBSOCKET.stage]);
    this.managementEndpoint = Fn.join('', ['https://', this.api.apiId, '.execute-api.', Aws.REGION, '.', Aws.URL_SUFFIX, '/', WEBSOCKET.stage]);
  }

  /** The @connections resources of this stage, for execute-api:ManageConnections. */
  connectionsArn(): string {
    return Stack.of(this).formatArn({ service: 'execute-api', resource: this.api.apiId, resourceName: `${WEBSOCKET.stage}/*/@connections/*` });
  }

  /** Post to and close connections: the functions that call agents or manage connections. */
  grantManageConnections(fn: lambda.IFunction): void {
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['execute-api:ManageConnections'], resources: [this.connectionsArn()] }));
  }

  /** The catalog's routes; $connect behind the REQUEST authorizer. */
  serve(functions: FunctionsById<lambda.IFunction>): void {
    const fnOf = (id: FunctionId): lambda.IFunction => {
      const fn = (functions as Partial<Record<FunctionId, lambda.IFunction>>)[id];
      if (!fn) throw new Error(`catalog function ${id} was not created`);
      return fn;
    };
    const [authorizerId] = (Object.entries(FUNCTIONS) as [FunctionId, FunctionSpec][]).find(([, s]) => s.authorizesConnections) ?? [];
    if (!authorizerId) throw new Error('the catalog declares no authorizesConnections function');
    // No identity source: agents sign with headers, operators (later) bring ?token=. With none,
    // API Gateway asks the authorizer about every connect and caches nothing.
    const authorizer = new authorizers.WebSocketLambdaAuthorizer('ConnectAuthorizer', fnOf(authorizerId), {
      identitySource: [],
    });
    const integrationsByFn = new Map<FunctionId, integrations.WebSocketLambdaIntegration>();
    const integrationFor = (fn: FunctionId) => {
      let i = integrationsByFn.get(fn);
      if (!i) integrationsByFn.set(fn, (i = new integrations.WebSocketLambdaIntegration(`${fn}Integration`, fnOf(fn))));
      return i;
    };
    for (const route of WEBSOCKET.routes) {
      this.api.addRoute(route.routeKey, {
        integration: integrationFor(route.fn),
        ...('authorized' in route && route.authorized ? { authorizer } : {}),
        ...('returnResponse' in route && route.returnResponse ? { returnResponse: true } : {}),
      });
    }
    for (const child of this.api.node.findAll()) {
      if (child instanceof apigwv2.CfnAuthorizer) child.addPropertyDeletionOverride('IdentitySource');
    }
  }
}
