/**
 * API Gateway (REST API, Lambda proxy integration), locally: requests become the proxy events
 * API Gateway sends, the REQUEST authorizer runs first on protected routes (its context lands in
 * requestContext.authorizer), and gateway-level errors use the configured gateway responses. The
 * web ACL's rate and size rules (localcloud/webAcl.ts) come before all of it, as AWS WAF does.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { APIGatewayAuthorizerResult, APIGatewayProxyEvent, APIGatewayProxyResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { ROUTES, type RouteSpec } from '../functions/catalog.ts';
import { authorizerCacheSecondsFromEnv, GATEWAY_SECURITY_HEADERS, gatewayResponse, type GatewayResponse } from '../functions/gatewayResponses.ts';
import { LRUCache } from 'lru-cache';
import { WAF_RESPONSES, wafSettingsFromEnv } from '../functions/webAcl.ts';
import { ACCOUNT, functionName, REGION, type LocalLambda } from './lambda.ts';
import { LocalWebSocketApi } from './websocket.ts';
import { LocalWebAcl } from './webAcl.ts';
import type { CallMeter } from './meter.ts';

const API_ID = 'localapi01';
const STAGE = 'local';
/** API Gateway's payload limit. */
const MAX_PAYLOAD = 10 * 1024 * 1024;

interface CompiledRoute extends RouteSpec {
  regex: RegExp;
  params: string[];
}

function compile(route: RouteSpec): CompiledRoute {
  const params: string[] = [];
  const pattern = route.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    params.push(name);
    return '([^/]+)';
  });
  return { ...route, regex: new RegExp(`^${pattern}/?$`), params };
}

function sendGateway(res: ServerResponse, g: GatewayResponse, message?: string) {
  const body = JSON.stringify({ code: g.code, message: message ?? g.message });
  res.writeHead(g.statusCode, { 'content-type': 'application/json', ...GATEWAY_SECURITY_HEADERS, ...g.headers, 'x-amzn-errortype': g.type });
  res.end(body);
}

export class LocalApiGateway {
  private readonly routes = ROUTES.map(compile);
  private server?: Server;
  /** Until the local cloud is fully up (seeded, cloud.json written), /health answers 503. */
  ready = false;
  /** Extra pages the local cloud serves beside the API (none on AWS). */
  readonly extras = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();

  /** Authorizer answers per Authorization header value, as API Gateway caches them. */
  private readonly authorizerCache = new LRUCache<string, APIGatewayAuthorizerResult>({ max: 10_000, ttlAutopurge: false });

  /** The WebSocket API on the same port (upgrades on /ws, its management API under /ws/@connections). */
  readonly websocket: LocalWebSocketApi;
  private domain = '127.0.0.1';

  constructor(
    private readonly lambda: LocalLambda,
    /**
     * false: behave like LocalStack's community edition, which stores Lambda authorizers but never
     * runs them; requests reach the functions without authorizer context (verifyTokensInFunctions).
     */
    private readonly runsAuthorizer = true,
    private readonly webAcl = new LocalWebAcl(wafSettingsFromEnv()),
    /** Counts the calls each route makes (its authorizer's included), when given. */
    private readonly meter?: CallMeter,
    /** The authorizer result cache's TTL, as the CDK app configures it (0: every request runs the authorizer). */
    private readonly authorizerCacheSeconds = authorizerCacheSecondsFromEnv(),
  ) {
    this.websocket = new LocalWebSocketApi(lambda, () => this.domain);
  }

  /** A web ACL block, answered as the CDK web ACL's custom responses are. */
  private sendWaf(res: ServerResponse, answer: (typeof WAF_RESPONSES)[keyof typeof WAF_RESPONSES], headers: Record<string, string> = {}) {
    res.writeHead(answer.statusCode, { 'content-type': 'application/json', ...GATEWAY_SECURITY_HEADERS, ...headers });
    res.end(JSON.stringify({ code: answer.code, message: answer.message }));
  }

  /** The WebSocket URL clients connect to (`wsUrl` in cloud.json); the management endpoint is the same with http. */
  wsUrl(apiUrl: string): string {
    return `${apiUrl.replace(/^http/, 'ws')}${this.websocket.path}`;
  }

  async listen(port: number, host = '127.0.0.1'): Promise<string> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e: Error) => {
        if (!res.headersSent) sendGateway(res, gatewayResponse('DEFAULT_5XX'), e.message);
      });
    });
    this.server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => {
      this.websocket.upgrade(req, socket, head).catch(() => socket.destroy());
    });
    // Requests Node refuses before any handler (headers or URL over 16 KB, bad syntax) still get a JSON answer.
    this.server.on('clientError', (err: Error & { code?: string }, socket) => {
      const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
      const body = JSON.stringify(
        tooLarge
          ? { code: 'RequestHeaderFieldsTooLarge', message: 'the URL and headers are too large' }
          : { code: 'BadRequest', message: 'malformed HTTP request' },
      );
      const status = tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request';
      if (socket.writable)
        socket.end(`HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      else socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, resolve);
    });
    const a = this.server.address();
    this.domain = `${host === '0.0.0.0' ? '127.0.0.1' : host}:${typeof a === 'object' && a ? a.port : port}`;
    return `http://${this.domain}`;
  }

  async close(): Promise<void> {
    this.websocket.close();
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server!.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://api.local');
    for (const [prefix, serve] of this.extras) if (url.pathname.startsWith(prefix)) return serve(req, res);
    const management = new RegExp(`^${this.websocket.path}/@connections/([^/]+)$`).exec(url.pathname);
    if (management) return this.websocket.manage(req, res, decodeURIComponent(management[1]));
    const method = (req.method ?? 'GET').toUpperCase();
    const sourceIp = req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '127.0.0.1';
    // Every request counts, whatever follows (refused tokens, unknown routes, 4xx): issue 15 defect 4.
    if (this.webAcl.overRate(sourceIp)) return this.sendWaf(res, WAF_RESPONSES.rateLimited, { 'Retry-After': String(this.webAcl.settings.windowSeconds) });
    if (!this.ready && url.pathname === '/health') {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
      return void res.end(JSON.stringify({ status: 'starting' }));
    }
    const candidates = this.routes.filter((r) => r.regex.test(url.pathname));
    const route = candidates.find((r) => r.method === method);
    if (!route) return sendGateway(res, gatewayResponse('MISSING_AUTHENTICATION_TOKEN'), `no route for ${method} ${url.pathname}`);

    if (this.meter) return this.meter.run(`${method} ${route.path}`, () => this.invokeRoute(req, res, url, method, sourceIp, route));
    return this.invokeRoute(req, res, url, method, sourceIp, route);
  }

  /** The matched route: body, authorizer, integration. */
  private async invokeRoute(req: IncomingMessage, res: ServerResponse, url: URL, method: string, sourceIp: string, route: CompiledRoute): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_PAYLOAD) return sendGateway(res, gatewayResponse('REQUEST_TOO_LARGE'));
      // Refused as soon as it is over the edge's limit, not once up to 10 MiB of it is held in memory
      // (40 such requests at once grew the local cloud by 280 MB before).
      if (this.webAcl.bodyTooLarge(method, route.path, size)) return this.sendWaf(res, WAF_RESPONSES.bodyTooLarge);
      chunks.push(c as Buffer);
    }
    const body = Buffer.concat(chunks).toString('utf8');
    const match = route.regex.exec(url.pathname)!;
    let pathParameters: Record<string, string> | null;
    try {
      pathParameters = route.params.length ? Object.fromEntries(route.params.map((p, i) => [p, decodeURIComponent(match[i + 1])])) : null;
    } catch {
      return sendGateway(res, gatewayResponse('DEFAULT_4XX'), 'the path has a malformed percent-escape');
    }
    // No prototype: a header or query name such as `constructor` or `toString` is just a name.
    const headers: Record<string, string> = Object.create(null);
    const multiValueHeaders: Record<string, string[]> = Object.create(null);
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const [k, v] = [req.rawHeaders[i], req.rawHeaders[i + 1]];
      headers[k] = v;
      (multiValueHeaders[k] ??= []).push(v);
    }
    const query: Record<string, string> = Object.create(null);
    const multiQuery: Record<string, string[]> = Object.create(null);
    for (const [k, v] of url.searchParams) {
      query[k] = v;
      (multiQuery[k] ??= []).push(v);
    }
    const requestId = randomUUID();
    const methodArn = `arn:aws:execute-api:${REGION}:${ACCOUNT}:${API_ID}/${STAGE}/${method}${route.path.replace(/\{[^}]+\}/g, '*')}`;
    const now = new Date();
    const identity = {
      sourceIp,
      userAgent: headers['user-agent'] ?? headers['User-Agent'] ?? null,
      accessKey: null,
      accountId: null,
      apiKey: null,
      apiKeyId: null,
      caller: null,
      clientCert: null,
      cognitoAuthenticationProvider: null,
      cognitoAuthenticationType: null,
      cognitoIdentityId: null,
      cognitoIdentityPoolId: null,
      principalOrgId: null,
      user: null,
      userArn: null,
    };
    let authorizer: Record<string, unknown> | null = null;
    if (route.auth && this.runsAuthorizer) {
      const authEvent: APIGatewayRequestAuthorizerEvent = {
        type: 'REQUEST',
        methodArn,
        resource: route.path,
        path: url.pathname,
        httpMethod: method,
        headers,
        multiValueHeaders,
        pathParameters,
        queryStringParameters: Object.keys(query).length ? query : null,
        multiValueQueryStringParameters: Object.keys(multiQuery).length ? multiQuery : null,
        stageVariables: null,
        requestContext: {
          accountId: ACCOUNT,
          apiId: API_ID,
          httpMethod: method,
          identity,
          path: `/${STAGE}${url.pathname}`,
          stage: STAGE,
          requestId,
          resourceId: 'local',
          resourcePath: route.path,
        } as never,
      };
      // With a result cache, API Gateway keys answers by the identity source (the Authorization
      // header) and refuses a request without it before any authorizer runs.
      const identitySource = Object.entries(headers).find(([k]) => k.toLowerCase() === 'authorization')?.[1];
      const caching = this.authorizerCacheSeconds > 0;
      if (caching && !identitySource) return sendGateway(res, gatewayResponse('UNAUTHORIZED'));
      let result = caching ? this.authorizerCache.get(identitySource!) : undefined;
      if (!result) {
        try {
          result = (await this.lambda.invoke(functionName('Authorizer'), authEvent)) as APIGatewayAuthorizerResult;
        } catch (e) {
          const message = (e as Error).message;
          return message.includes('"errorMessage":"Unauthorized"')
            ? sendGateway(res, gatewayResponse('UNAUTHORIZED'))
            : sendGateway(res, gatewayResponse('DEFAULT_5XX'), 'authorizer failure');
        }
        // A policy (Allow or Deny) is cached; a refusal (Unauthorized) or a failure is not.
        if (caching) this.authorizerCache.set(identitySource!, result, { ttl: this.authorizerCacheSeconds * 1000 });
      }
      // Evaluated against this request's method ARN, as API Gateway does (a cached policy answers other routes too).
      if (!policyAllows(result.policyDocument, methodArn)) return sendGateway(res, gatewayResponse('ACCESS_DENIED'));
      authorizer = { ...(result.context ?? {}), principalId: result.principalId, integrationLatency: 0 };
    }
    const event: APIGatewayProxyEvent = {
      resource: route.path,
      path: url.pathname,
      httpMethod: method,
      headers,
      multiValueHeaders,
      queryStringParameters: Object.keys(query).length ? query : null,
      multiValueQueryStringParameters: Object.keys(multiQuery).length ? multiQuery : null,
      pathParameters,
      stageVariables: null,
      body: body.length ? body : null,
      isBase64Encoded: false,
      requestContext: {
        accountId: ACCOUNT,
        apiId: API_ID,
        authorizer,
        httpMethod: method,
        identity,
        path: `/${STAGE}${url.pathname}`,
        protocol: `HTTP/${req.httpVersion}`,
        requestId,
        requestTime: now.toUTCString(),
        requestTimeEpoch: now.getTime(),
        resourceId: 'local',
        resourcePath: route.path,
        stage: STAGE,
      } as APIGatewayProxyEvent['requestContext'],
    };
    let result: APIGatewayProxyResult;
    try {
      result = (await this.lambda.invoke(functionName(route.fn), event)) as APIGatewayProxyResult;
    } catch {
      // API Gateway hides a crashed integration behind a 502.
      return sendGateway(res, gatewayResponse('DEFAULT_5XX'));
    }
    const out: Record<string, string | string[]> = { ...(result.headers as Record<string, string>) };
    for (const [k, v] of Object.entries(result.multiValueHeaders ?? {})) out[k] = v.map(String);
    out['x-amzn-requestid'] = requestId;
    res.writeHead(result.statusCode, out);
    res.end(result.isBase64Encoded ? Buffer.from(result.body, 'base64') : result.body);
  }
}

/** IAM evaluation of an authorizer policy for one method ARN: an explicit Deny wins, else some Allow must match (`*` and `?` wildcards). */
export function policyAllows(policy: APIGatewayAuthorizerResult['policyDocument'], methodArn: string): boolean {
  const matches = (resource: string | string[] | undefined) =>
    [resource ?? []].flat().some((r) =>
      new RegExp(
        `^${r
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '.*')
          .replace(/\?/g, '.')}$`,
      ).test(methodArn),
    );
  const statements = policy.Statement.filter((st) => 'Resource' in st && matches(st.Resource as string | string[]));
  if (statements.some((st) => st.Effect === 'Deny')) return false;
  return statements.some((st) => st.Effect === 'Allow');
}
