/**
 * Errors that carry a stable machine-readable `code` and a human `message`.
 * Handlers map them to HTTP statuses; task handlers let Step Functions see `name` as the error type.
 */
export class AppError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
    readonly details?: unknown,
    /** Extra response headers (e.g. Retry-After on 429). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = code;
  }
}

export const badRequest = (message: string, details?: unknown) => new AppError('ValidationError', message, 400, details);
export const notFound = (what: string) => new AppError('NotFound', `${what} was not found`, 404);
export const conflict = (code: string, message: string) => new AppError(code, message, 409);
export const forbidden = (message: string) => new AppError('Forbidden', message, 403);
export const unauthorized = (message: string) => new AppError('Unauthorized', message, 401);

/** A pipeline stage rejected the module: the deployment fails at that stage with this message. */
export class StageRejection extends AppError {
  constructor(code: string, message: string) {
    super(code, message, 422);
  }
}
