/** The route spec (catalog ROUTES) for API Gateway's resource template, if this Lambda serves it. */
import { ROUTES, type RouteSpec } from '../../catalog.ts';
import { AppError } from '../../domain/errors.ts';
import type { ApiMiddleware } from './types.ts';

export const routeKey = (method: string, path: string) => `${method} ${path}`;

export function matchRoute(served: readonly string[], routes: readonly RouteSpec[] = ROUTES): ApiMiddleware {
  return {
    before: (request) => {
      const { httpMethod, resource } = request.event;
      const spec = routes.find((r) => r.method === httpMethod && r.path === resource);
      if (!spec || !served.includes(routeKey(httpMethod, resource))) throw new AppError('NotFound', `no route for ${httpMethod} ${resource}`, 404);
      request.context.route = spec;
    },
  };
}
