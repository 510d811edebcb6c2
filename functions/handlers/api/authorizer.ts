/**
 * API Gateway REQUEST authorizer. A valid token yields an Allow policy for the whole API (so the
 * result can be cached per token) and the caller's identity as context; anything else is
 * `Unauthorized`, which API Gateway turns into a 401.
 */
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { verifyBearer } from '../../lib/auth.ts';
import { logger } from '../../lib/telemetry.ts';
import { audit } from '../../lib/audit.ts';

export async function handler(event: APIGatewayRequestAuthorizerEvent): Promise<APIGatewayAuthorizerResult> {
  const header = Object.entries(event.headers ?? {}).find(([k]) => k.toLowerCase() === 'authorization')?.[1];
  let principal;
  try {
    principal = await verifyBearer(header);
  } catch (e) {
    const reason = (e as Error).message;
    logger.info('token rejected', { reason, sourceIp: event.requestContext?.identity?.sourceIp });
    // Authentication failures are security events.
    await audit({
      subject: `access#${event.httpMethod} ${event.resource}`,
      category: 'security',
      action: 'auth.failed',
      actor: `ip:${event.requestContext?.identity?.sourceIp ?? 'unknown'}`,
      details: { reason, method: event.httpMethod, path: event.path },
    }).catch((err: Error) => logger.warn('could not audit an authentication failure', err));
    throw new Error('Unauthorized');
  }
  // arn:aws:execute-api:region:account:apiId/stage/METHOD/path → allow every method and path of this stage.
  const [arnPrefix, stage] = event.methodArn.split('/');
  return {
    principalId: principal.userId,
    policyDocument: {
      Version: '2012-10-17',
      Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: `${arnPrefix}/${stage}/*/*` }],
    },
    context: { userId: principal.userId, username: principal.username, roles: principal.roles.join(',') },
  };
}
