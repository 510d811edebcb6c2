/**
 * The caller as API Gateway's authorizer described it in the request context. Where the gateway
 * runs no authorizer (LocalStack's community edition stores authorizers but never invokes them),
 * `API_VERIFIES_TOKENS=true` (CDK context verifyTokensInFunctions) makes the function verify the
 * bearer token itself, with the authorizer's own code; without it, no context means no caller.
 */
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { ROLES, type Principal, type Role } from '../../domain/roles.ts';
import { verifyBearer } from '../auth.ts';
import type { ApiMiddleware } from './types.ts';

export function principalOf(event: APIGatewayProxyEvent): Principal | undefined {
  const a = event.requestContext?.authorizer as Record<string, unknown> | null | undefined;
  if (!a || typeof a.userId !== 'string') return undefined;
  const roles = String(a.roles ?? '')
    .split(',')
    .filter((r): r is Role => (ROLES as readonly string[]).includes(r));
  return { userId: a.userId, username: String(a.username ?? a.userId), roles };
}

/** The bearer token's principal, or none: a refused token is a missing caller (authorize answers 401). */
async function verifiedPrincipal(event: APIGatewayProxyEvent): Promise<Principal | undefined> {
  try {
    return await verifyBearer(event.headers?.authorization ?? undefined);
  } catch {
    return undefined;
  }
}

export function identity(): ApiMiddleware {
  return {
    before: async (request) => {
      request.context.principal =
        principalOf(request.event) ?? (process.env.API_VERIFIES_TOKENS === 'true' ? await verifiedPrincipal(request.event) : undefined);
    },
  };
}
