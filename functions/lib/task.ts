/**
 * Step Functions task handlers: the input is validated by schema, logging carries the
 * deployment id, and an error's `name` becomes the Step Functions error type (the Lambda runtime
 * reports it as errorType), so ASL Catch/Retry can match on stable codes.
 */
import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { AppError } from '../domain/errors.ts';
import { annotateTrace, flushMetrics, logger, tracer, withCorrelation } from './telemetry.ts';
import { CORRELATION_ID, type Correlation } from './traceContext.ts';

export function taskHandler<S extends z.ZodType, R>(schema: S, fn: (input: z.infer<S>, context: Context) => Promise<R>) {
  const base = async (event: unknown, context: Context): Promise<R> => {
    const parsed = schema.safeParse(event);
    if (!parsed.success) throw new AppError('InvalidTaskInput', parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    // The correlation id is the API request's, which the state machines pass to every task (the schemas need not name it).
    const correlation = correlationOf({ ...(parsed.data as object), correlationId: (event as { correlationId?: unknown } | null)?.correlationId });
    annotateTrace(correlation);
    return withCorrelation(correlation, async () => {
      const started = Date.now();
      try {
        const result = await fn(parsed.data, context);
        // One line per task at INFO (the local cloud shows WARN and up unless LOG_LEVEL says otherwise).
        logger.info('task done', { durationMs: Date.now() - started });
        return result;
      } catch (e) {
        // Expected outcomes travel as errors too (a failed verification, a rejected approval): Step Functions decides.
        logger.warn('task failed', { durationMs: Date.now() - started, errorName: (e as Error).name, errorMessage: (e as Error).message });
        throw e;
      }
    });
  };
  return middy(base)
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(captureLambdaHandler(tracer))
    .use(flushMetrics());
}

/**
 * The keys a task's input carries that find its deployment: the API request's correlation id (the
 * state machines pass it through), the execution id (every task), most the environment.
 */
export function correlationOf(input: unknown): Correlation {
  const i = (input ?? {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' && v.length > 0 && v.length <= 200 ? v : undefined);
  const id = (v: unknown) => (typeof v === 'string' && CORRELATION_ID.test(v) ? v : undefined);
  return {
    correlationId: id(i.correlationId),
    executionId: str(i.executionId),
    deploymentId: str(i.deploymentId) ?? str(i.executionId),
    environment: str(i.environment),
    module: str(i.moduleName) ?? str(i.module),
  };
}

/** The `{ Error, Cause }` a Catch puts in the state, as a human message. */
export const caughtErrorSchema = z.object({ Error: z.string(), Cause: z.string().optional() });
export type CaughtError = z.infer<typeof caughtErrorSchema>;

export function describeCaughtError(e: CaughtError | undefined): { code: string; message: string } {
  if (!e) return { code: 'Unknown', message: 'the deployment failed for an unknown reason' };
  let message = e.Cause ?? e.Error;
  try {
    const cause = JSON.parse(e.Cause ?? '') as { errorMessage?: string; Cause?: string; cause?: string; Error?: string; error?: string };
    // A Lambda error's cause holds errorMessage; a child execution's failure holds its own Cause/Error.
    if (cause.errorMessage) message = cause.errorMessage;
    else if (cause.Cause || cause.cause) return describeCaughtError({ Error: cause.Error ?? cause.error ?? e.Error, Cause: cause.Cause ?? cause.cause });
  } catch {
    /* a plain-text cause is the message */
  }
  return { code: e.Error, message };
}

export const executionIdSchema = z.string().regex(/^dep-[a-z0-9]{9}-[a-f0-9]{12}$/);
