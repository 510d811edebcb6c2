/** Thrown errors become `{ code, message }` JSON; unexpected ones are logged and hidden. */
import { AppError } from '../../domain/errors.ts';
import { logger } from '../telemetry.ts';
import { json, type ApiMiddleware } from './types.ts';

export function jsonErrors(log: Pick<typeof logger, 'error'> = logger): ApiMiddleware {
  return {
    onError: (request) => {
      const e = request.error;
      if (e instanceof AppError) {
        request.response = json(e.status, { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) }, e.headers);
        return;
      }
      log.error('unhandled error', e as Error);
      request.response = json(500, {
        code: 'InternalError',
        message: 'an internal error occurred; it has been logged',
        requestId: request.context.awsRequestId,
      });
    },
  };
}
