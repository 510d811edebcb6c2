/**
 * Counts each request of a costly route (catalog ROUTES `rateLimit`) against its per-user limit.
 * Over it: 429 from `consume`. Otherwise the RateLimit-* headers go on the answer, errors of the
 * route included. The per-address limit is not counted here: the edge counts every request per
 * address before any function runs (AWS WAF; the local gateway's web ACL), so a table write per
 * request here would only repeat it (ADR 0024).
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
      if (!route?.rateLimit || route.rateLimit === 'none' || !principal) return;
      const s = await store.settings();
      counted.set(request, await store.consume(route.rateLimit, principal.userId, s[perUser[route.rateLimit]], s.windowSeconds));
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
