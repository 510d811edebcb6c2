/**
 * The interactive API reference at GET /docs: Swagger UI (swagger-ui-dist), served from this
 * origin, no CDN. The page has no inline script: it loads the bundled Swagger UI and a small start
 * script from GET /docs/{asset}, which point it at the generated document (GET /openapi.json). URLs
 * are relative, so the page also works under an API Gateway stage path (/prod/docs).
 *
 * Where the assets come from: in the Lambda, the files the CDK copies next to the bundle
 * (infra/constructs/functions.ts, docs-assets/); locally, the swagger-ui-dist package.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DOCS_ASSET_DIR = 'docs-assets';
/** The files of swagger-ui-dist the page loads (and the CDK copies into the function). */
export const SWAGGER_UI_FILES = ['swagger-ui-bundle.js', 'swagger-ui.css'] as const;

/** The page's own policy: scripts, styles, images and the document from this origin only. */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // Swagger UI sets style attributes; its stylesheet is from this origin.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

const START = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({ url: new URL('openapi.json', document.baseURI.replace(/docs\\/?$/, '')).href, dom_id: '#swagger-ui', deepLinking: true });
});
`;

export const DOCS_PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>kmod-orchestrator API reference</title><link rel="icon" href="data:,"><link rel="stylesheet" href="docs/swagger-ui.css"></head><body><main id="swagger-ui" aria-label="API reference"></main><script src="docs/swagger-ui-bundle.js"></script><script src="docs/start.js"></script></body></html>`;

const TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

function assetDir(): string {
  const beside = join(dirname(fileURLToPath(import.meta.url)), DOCS_ASSET_DIR);
  if (existsSync(beside)) return beside;
  return dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
}

const cache = new Map<string, string>();

/** An asset of the page, or undefined when the name is not one. */
export function docsAsset(name: string): { contentType: string; body: string } | undefined {
  if (name === 'start.js') return { contentType: TYPES['.js'], body: START };
  if (!(SWAGGER_UI_FILES as readonly string[]).includes(name)) return undefined;
  let body = cache.get(name);
  if (body === undefined) {
    body = readFileSync(join(assetDir(), name), 'utf8');
    cache.set(name, body);
  }
  return { contentType: TYPES[name.slice(name.lastIndexOf('.'))], body };
}
