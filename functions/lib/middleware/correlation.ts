/**
 * The request's correlation id: the caller's `x-correlation-id` when it is a sane one, else API
 * Gateway's request id. It goes on every log line of the request (with the route), on the trace
 * as an annotation, and back to the caller in the `x-correlation-id` header, errors included, so
 * a person holding a failed response can find its logs.
 */
import { randomUUID } from 'node:crypto';
import { addCorrelation, annotateTrace } from '../telemetry.ts';
import { CORRELATION_ID } from '../traceContext.ts';
import type { ApiMiddleware, ApiRequest } from './types.ts';

const HEADER = 'x-correlation-id';

function given(headers: Record<string, string | undefined> | null | undefined): string | undefined {
  const found = Object.entries(headers ?? {}).find(([k]) => k.toLowerCase() === HEADER)?.[1];
  return found && CORRELATION_ID.test(found) ? found : undefined;
}

function echo(request: ApiRequest): void {
  const id = request.context.correlation?.correlationId;
  if (!id || !request.response) return;
  request.response.headers = { ...request.response.headers, [HEADER]: id };
}

export function correlation(): ApiMiddleware {
  return {
    before: (request) => {
      const { event } = request;
      const correlationId = given(event.headers) ?? (event.requestContext?.requestId || randomUUID());
      request.context.correlation = { correlationId, route: `${event.httpMethod} ${event.resource}` };
      // On the log lines from here on (a refusal before the route runs included), and on the trace.
      addCorrelation(request.context.correlation);
      annotateTrace(request.context.correlation);
    },
    after: echo,
    onError: echo,
  };
}
