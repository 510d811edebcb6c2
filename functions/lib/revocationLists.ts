/**
 * Where certificate revocation lists come from: the configured list (REVOCATION_LIST_URLS, an
 * agent's --crl), which must be readable, and the CRL distribution points of a verified signer
 * path, read where they can be (a point that cannot be read is noted, not fatal). http(s) and file
 * URLs, or plain file paths. No AWS imports: the node agent uses this too.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RevocationList, RevocationLists } from '../domain/signature.ts';

export interface RevocationListOptions {
  timeoutMs?: number;
  maxBytes?: number;
  /** How long an http(s) CRL is reused (files are read every time: they are cheap and local). */
  cacheMs?: number;
  fetch?: typeof fetch;
}

const DEFAULTS = { timeoutMs: 5000, maxBytes: 10 * 1024 * 1024, cacheMs: 300_000 };

/** The configured sources of a comma-separated setting, in order, without blanks. */
export function parseSources(raw: string | undefined): string[] {
  return (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

async function read(source: string, o: Required<Omit<RevocationListOptions, 'fetch'>> & { fetch: typeof fetch }): Promise<Uint8Array> {
  if (/^https?:/i.test(source)) {
    const r = await o.fetch(source, { redirect: 'error', signal: AbortSignal.timeout(o.timeoutMs) });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const bytes = new Uint8Array(await r.arrayBuffer());
    if (bytes.length > o.maxBytes) throw new Error(`larger than ${o.maxBytes} bytes`);
    return bytes;
  }
  const file = /^file:/i.test(source) ? fileURLToPath(source) : isAbsolute(source) ? source : undefined;
  if (!file) throw new Error('not an http(s) or file URL, nor an absolute path');
  const bytes = await readFile(file);
  if (bytes.length > o.maxBytes) throw new Error(`larger than ${o.maxBytes} bytes`);
  return bytes;
}

/**
 * The `revocationLists` of a TrustPolicy: reads the configured sources (throwing when one cannot be
 * read, so a check the operator asked for is never skipped) and the distribution points it is given.
 */
export function revocationListFetcher(configured: string[], options: RevocationListOptions = {}) {
  const o = { ...DEFAULTS, ...options, fetch: options.fetch ?? fetch };
  const cache = new Map<string, { bytes: Uint8Array; until: number }>();
  const cachedRead = async (source: string): Promise<Uint8Array> => {
    const hit = cache.get(source);
    if (hit && hit.until > Date.now()) return hit.bytes;
    const bytes = await read(source, o);
    if (/^https?:/i.test(source)) cache.set(source, { bytes, until: Date.now() + o.cacheMs });
    return bytes;
  };
  return async (distributionPoints: string[]): Promise<RevocationLists> => {
    const lists: RevocationList[] = [];
    const unavailable: string[] = [];
    for (const source of configured) {
      try {
        lists.push({ source, data: await cachedRead(source), required: true });
      } catch (e) {
        throw new Error(`the configured revocation list ${source} cannot be read (${(e as Error).message})`);
      }
    }
    for (const source of distributionPoints.filter((dp) => !configured.includes(dp))) {
      try {
        lists.push({ source, data: await cachedRead(source), required: false });
      } catch {
        unavailable.push(source);
      }
    }
    return { lists, unavailable };
  };
}
