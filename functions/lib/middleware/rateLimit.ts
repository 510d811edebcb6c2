/**
 * Counts each request against the limits of its route (catalog ROUTES `rateLimit`): per address
 * always, per user on costly routes. Over a limit: 429 from `consume`. Otherwise the RateLimit-*
 * headers of the last counter go on the answer, errors of the route included.
 */
import { AppError } from '../../domain/errors.ts';
import { consume, rateLimitSettings, type LimitKind, type RateLimitSettings } from '../rateLimits.ts';
import { isMatrixDenial } from './authorize.ts';
import type { ApiMiddleware, ApiRequest } from './types.ts';

export interface RateLimitStore {
  settings: () => Promise<RateLimitSettings>;
  consume: (kind: LimitKind, who: string, limit: number, windowSeconds: number) => Promise<Record<string, string>>;
}

const perUser = { deployments: 'deploymentCreatePerUser', metrics: 'metricsPerUser' } as const;

export function rateLimit(store: RateLimitStore = { settings: rateLimitSettings, consume }): ApiMiddleware {
  const counted = new WeakMap<ApiRequest, Record<string, string>>();
  return {
    before: async (request) => {
      const { route, principal } = request.context;
      if (!route || route.rateLimit === 'none') return;
      const s = await store.settings();
      let headers = await store.consume('ip', request.event.requestContext?.identity?.sourceIp ?? 'unknown', s.perIp, s.windowSeconds);
      if (principal && route.rateLimit) {
        headers = await store.consume(route.rateLimit, principal.userId, s[perUser[route.rateLimit]], s.windowSeconds);
      }
      counted.set(request, headers);
    },
    after: (request) => {
      const headers = counted.get(request);
      if (headers && request.response) request.response = { ...request.response, headers: { ...headers, ...request.response.headers } };
    },
    onError: (request) => {
      const headers = counted.get(request);
      // The matrix's own 401/403 were always answered without them.
      if (headers && request.error instanceof AppError && !isMatrixDenial(request.error)) Object.assign(request.error.headers, headers);
    },
  };
}
