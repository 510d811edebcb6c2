/** The caller as API Gateway's authorizer described it in the request context. */
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { ROLES, type Principal, type Role } from '../../domain/roles.ts';
import type { ApiMiddleware } from './types.ts';

export function principalOf(event: APIGatewayProxyEvent): Principal | undefined {
  const a = event.requestContext?.authorizer as Record<string, unknown> | null | undefined;
  if (!a || typeof a.userId !== 'string') return undefined;
  const roles = String(a.roles ?? '')
    .split(',')
    .filter((r): r is Role => (ROLES as readonly string[]).includes(r));
  return { userId: a.userId, username: String(a.username ?? a.userId), roles };
}

export function identity(): ApiMiddleware {
  return {
    before: (request) => {
      request.context.principal = principalOf(request.event);
    },
  };
}
