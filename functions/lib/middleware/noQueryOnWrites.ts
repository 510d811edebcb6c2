/**
 * Routes that change state take no query parameters (their input is the path and the body); a
 * query on one is a mistake or an attack, so it is refused with 400 before anything changes,
 * as the read routes refuse unknown query parameters with their strict schemas. Found by the
 * property-based run (test/integration/adversarial.test.ts): `DELETE /api/v1/nodes/{id}?x=1`
 * decommissioned the node, ignoring the query.
 */
import { badRequest } from '../../domain/errors.ts';
import type { ApiMiddleware } from './types.ts';

export function noQueryOnWrites(): ApiMiddleware {
  return {
    before: (request) => {
      const { httpMethod, queryStringParameters, multiValueQueryStringParameters } = request.event;
      if (httpMethod === 'GET' || httpMethod === 'HEAD' || httpMethod === 'OPTIONS') return;
      const names = Object.keys({ ...queryStringParameters, ...multiValueQueryStringParameters });
      if (names.length)
        throw badRequest(
          `${httpMethod} ${request.event.resource} takes no query parameters (got ${names
            .slice(0, 5)
            .map((n) => JSON.stringify(n))
            .join(', ')})`,
        );
    },
  };
}
