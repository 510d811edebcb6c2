/** Page cursors are opaque to clients: the last key, base64url JSON. */
import { AppError } from '../domain/errors.ts';

export function encodeCursor(key: Record<string, unknown> | undefined): string | null {
  return key ? Buffer.from(JSON.stringify(key)).toString('base64url') : null;
}

export function decodeCursor(cursor: string | undefined): Record<string, unknown> | undefined {
  if (!cursor) return undefined;
  try {
    const key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (key && typeof key === 'object' && !Array.isArray(key) && Object.values(key).every((v) => typeof v === 'string')) return key as Record<string, unknown>;
  } catch {
    /* fall through */
  }
  throw new AppError('ValidationError', 'cursor is not one this API returned');
}

/**
 * Run a page read that starts at a client's cursor. A cursor decodes to an object, but only one
 * this API returned names the key attributes of that very query: DynamoDB refuses any other with a
 * ValidationException, which is the client's mistake (400), not ours (500).
 */
export async function fromCursor<T>(cursor: Record<string, unknown> | undefined, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (e) {
    if (cursor && (e as Error).name === 'ValidationException') throw new AppError('ValidationError', 'cursor is not one this API returned');
    throw e;
  }
}
