/**
 * Header names arrive in any case (@middy/http-header-normalizer lower-cases them). A header that
 * decides who the caller is or what the request means must not arrive twice with different
 * values: the normalizer would keep the last, while a proxy or log in front may act on the first.
 */
import httpHeaderNormalizer from '@middy/http-header-normalizer';
import { AppError } from '../../domain/errors.ts';
import type middy from '@middy/core';

const SINGLE_VALUED = new Set(['authorization', 'content-type', 'idempotency-key', 'origin']);

type HeaderMaps = { headers?: Record<string, string | undefined> | null; multiValueHeaders?: Record<string, (string | undefined)[] | undefined> | null };

/** The first single-valued header sent with two different values (in any case), if any. */
export function conflictingHeader({ headers, multiValueHeaders }: HeaderMaps, names: ReadonlySet<string> = SINGLE_VALUED): string | undefined {
  const seen = new Map<string, Set<string>>();
  const add = (name: string, value: string | undefined) => {
    const key = name.toLowerCase();
    if (value === undefined || !names.has(key)) return;
    seen.set(key, (seen.get(key) ?? new Set()).add(value));
  };
  for (const [name, value] of Object.entries(headers ?? {})) add(name, value);
  for (const [name, values] of Object.entries(multiValueHeaders ?? {})) for (const v of values ?? []) add(name, v);
  for (const [name, values] of seen) if (values.size > 1) return name;
  return undefined;
}

const badRequest = async (name: string): Promise<never> => {
  throw new AppError('AmbiguousHeader', `the ${name} header was sent more than once with different values`, 400);
};

/** Refuse conflicting duplicates of `names` (400 by default), then lower-case the header names. */
export function normalizeHeaders<E extends HeaderMaps>(
  refuse: (name: string, event: E) => Promise<never> = badRequest,
  names: ReadonlySet<string> = SINGLE_VALUED,
): middy.MiddlewareObj<E> {
  const normalizer = httpHeaderNormalizer() as unknown as middy.MiddlewareObj<E>;
  return {
    before: async (request) => {
      const name = conflictingHeader(request.event, names);
      if (name) await refuse(name, request.event);
      return normalizer.before?.(request);
    },
  };
}
