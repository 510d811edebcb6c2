/** The kmod CLI's HTTP client: bearer token, JSON in and out, API errors ({code,message}) as ApiError. */
import type { Target } from './target.ts';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Client {
  get<T = any>(path: string): Promise<T>;
  post<T = any>(path: string, body?: unknown, headers?: Record<string, string>): Promise<T>;
}

export function httpClient(target: Target, fetchImpl: typeof fetch = fetch): Client {
  const call = async (method: string, path: string, body?: unknown, extra: Record<string, string> = {}) => {
    const headers: Record<string, string> = { authorization: `Bearer ${target.token}`, accept: 'application/json', ...extra };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let r: Response;
    try {
      r = await fetchImpl(`${target.apiUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new ApiError(0, 'Unreachable', `cannot reach ${target.apiUrl} (${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message})`);
    }
    const text = await r.text();
    let parsed: any;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!r.ok) {
      const code = typeof parsed?.code === 'string' ? parsed.code : `HTTP${r.status}`;
      const message = typeof parsed?.message === 'string' ? parsed.message : text.slice(0, 300) || r.statusText;
      throw new ApiError(r.status, code, message);
    }
    return parsed;
  };
  return {
    get: (path) => call('GET', path),
    post: (path, body, headers) => call('POST', path, body ?? {}, headers),
  };
}
