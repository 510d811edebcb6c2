/** The authorization matrix: the matched route's roles (catalog ROUTES), checked for every request. */
import { AppError, forbidden, unauthorized } from '../../domain/errors.ts';
import type { Principal, Role } from '../../domain/roles.ts';
import type { ApiMiddleware } from './types.ts';

/** Denials raised here, told apart from a route's own 401/403 (see rateLimit). */
const denials = new WeakSet<Error>();
export const isMatrixDenial = (e: unknown): boolean => e instanceof Error && denials.has(e);

export function requireRole(principal: Principal | undefined, allowed: readonly Role[]): Principal {
  if (!principal) throw unauthorized('a bearer token is required');
  if (!principal.roles.some((r) => allowed.includes(r))) {
    throw forbidden(`this action needs one of the roles ${allowed.join(', ')}; you have ${principal.roles.join(', ') || 'none'}`);
  }
  return principal;
}

export function authorize(): ApiMiddleware {
  return {
    before: (request) => {
      const roles = request.context.route?.roles;
      if (!roles) throw new AppError('NotFound', 'no route matched', 404);
      if (roles === 'public') return;
      try {
        request.context.principal = requireRole(request.context.principal, roles);
      } catch (e) {
        denials.add(e as Error);
        throw e;
      }
    },
  };
}
