/**
 * The body of a request to the local cloud's own endpoints (`/_local/*`, the WebSocket management
 * API): small JSON or forms, read up to a bound. They sit beside the API, not behind the edge's
 * body-size rule, and used to read any body whole into a string (a 200 MB POST to
 * /_local/identity/token grew the local cloud by 190 MB before its 400).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Far above anything these endpoints take (a token request, a fault list, one WebSocket message of 128 KB). */
export const MAX_CONTROL_BODY_BYTES = 256 * 1024;

export class ControlBodyTooLarge extends Error {
  readonly statusCode = 413;
  constructor(readonly limit = MAX_CONTROL_BODY_BYTES) {
    super(`the request body exceeds ${limit} bytes`);
  }
}

/** The whole body, or ControlBodyTooLarge as soon as it passes `limit` bytes (the rest is not read). */
export async function readControlBody(req: IncomingMessage, limit = MAX_CONTROL_BODY_BYTES): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) throw new ControlBodyTooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw new ControlBodyTooLarge(limit);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The body as text; when it is too large, answers 413 (JSON, as the control endpoints do) and gives undefined. */
export async function readControlText(req: IncomingMessage, res: ServerResponse): Promise<string | undefined> {
  try {
    return (await readControlBody(req)).toString('utf8');
  } catch (e) {
    if (!(e instanceof ControlBodyTooLarge)) throw e;
    res.writeHead(413, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ code: 'RequestTooLarge', message: e.message }));
    return undefined;
  }
}
