/**
 * The typed TypeScript client of the kmod-orchestrator API: openapi-fetch over the types that
 * `npm run openapi` generates from docs/openapi.json into schema.ts (openapi-typescript). Paths,
 * path and query parameters, request bodies and answers are all checked by the compiler against
 * the document the API serves at GET /openapi.json, which is generated from the handlers' own zod
 * schemas; the `kmod` CLI is built on it.
 *
 *   const api = createKmodClient({ baseUrl: cloud.apiUrl, token: cloud.tokens.Viewer });
 *   const d = await unwrap(api.GET('/api/v1/deployments/{executionId}', { params: { path: { executionId } } }));
 *   d.stages[0].status; // typed
 *
 * Clients in other languages come from the same file: docs/runbooks/api-clients.md.
 */
import createClient, { type Client } from 'openapi-fetch';
import type { components, paths } from './schema.ts';

export type { components, paths };
/** Every schema of the document by name: `Schemas['Deployment']`, `Schemas['Cluster']`, … */
export type Schemas = components['schemas'];
export type KmodApi = Client<paths>;

/** An answer other than 2xx, with the API's stable `code` (or `HTTP<status>` when the body had none); status 0: not reached. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface KmodClientOptions {
  /** The API's base URL, e.g. `http://127.0.0.1:4566` or `https://abc.execute-api.eu-west-1.amazonaws.com/prod`. */
  baseUrl: string;
  /** A bearer token, or a function answering a current one (called before each request: refresh there). */
  token: string | (() => string | Promise<string>);
  fetch?: typeof fetch;
}

export function createKmodClient(options: KmodClientOptions): KmodApi {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const api = createClient<paths>({ baseUrl, fetch: options.fetch, headers: { accept: 'application/json' } });
  api.use({
    async onRequest({ request }) {
      const token = typeof options.token === 'function' ? await options.token() : options.token;
      request.headers.set('authorization', `Bearer ${token}`);
      return request;
    },
    onError({ error }) {
      const e = error as Error & { cause?: Error };
      return new ApiError(0, 'Unreachable', `cannot reach ${baseUrl} (${e.cause?.message ?? e.message})`);
    },
  });
  return api;
}

type Answer = { data?: unknown; error?: unknown; response: Response };

/** The body of a 2xx answer; anything else throws an ApiError carrying the API's `{code, message}`. */
export async function unwrap<A extends Answer>(answer: Promise<A>): Promise<Exclude<A['data'], undefined>> {
  const { data, error, response } = await answer;
  if (response.ok) return data as Exclude<A['data'], undefined>;
  const body = error as { code?: unknown; message?: unknown; details?: unknown } | string | undefined;
  if (body && typeof body === 'object' && typeof body.code === 'string') {
    return Promise.reject(new ApiError(response.status, body.code, typeof body.message === 'string' ? body.message : response.statusText, body.details));
  }
  const text = typeof body === 'string' ? body.slice(0, 300) : '';
  return Promise.reject(new ApiError(response.status, `HTTP${response.status}`, text || response.statusText || `HTTP ${response.status}`));
}
