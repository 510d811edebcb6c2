/**
 * API Gateway REQUEST authorizer. A valid token of a principal the directory knows and has enabled
 * yields an Allow policy for the whole API and, as context, the caller with the roles the directory
 * holds now (lib/auth.ts); anything else is `Unauthorized`, which API Gateway turns into a 401.
 * API Gateway does not cache the answer (infra/constructs/api.ts): a role removed or a principal
 * disabled counts within DIRECTORY_CACHE_SECONDS, locally and on AWS alike.
 */
import middy from '@middy/core';
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { verifyBearer } from '../../lib/auth.ts';
import { normalizeHeaders } from '../../lib/middleware/headers.ts';
import { logger } from '../../lib/telemetry.ts';
import { recordDenial } from '../../lib/securityEvents.ts';

async function authorize(event: APIGatewayRequestAuthorizerEvent): Promise<APIGatewayAuthorizerResult> {
  const header = event.headers?.authorization;
  let principal: Awaited<ReturnType<typeof verifyBearer>>;
  try {
    principal = await verifyBearer(header);
  } catch (e) {
    return refuse((e as Error).message, event);
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

// Header names arrive in any case; the normalizer lower-cases them.
/**
 * Authentication failures are security events, one per address and window however many there are
 * (lib/securityEvents.ts); API Gateway turns `Unauthorized` into a 401.
 */
async function refuse(reason: string, event: APIGatewayRequestAuthorizerEvent): Promise<never> {
  const sourceIp = event.requestContext?.identity?.sourceIp;
  logger.info('token rejected', { reason, sourceIp });
  await recordDenial({ action: 'auth.failed', sourceIp, method: event.httpMethod, path: event.path, reason }).catch((err: Error) =>
    logger.warn('could not audit an authentication failure', err),
  );
  throw new Error('Unauthorized');
}

// Header names arrive in any case; two different Authorization headers name no caller at all.
export const handler = middy<APIGatewayRequestAuthorizerEvent, APIGatewayAuthorizerResult>(authorize).use(
  normalizeHeaders<APIGatewayRequestAuthorizerEvent>(
    (name, event) => refuse(`the ${name} header was sent more than once with different values`, event),
    new Set(['authorization']),
  ),
);
