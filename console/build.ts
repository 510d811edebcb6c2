/**
 * The console's bundle: esbuild, offline, from npm packages only (Preact, uPlot, oidc-client-ts and
 * the typed client in sdk/typescript). The local cloud builds it in memory at its first request
 * (about a tenth of a second, then cached); the CDK app writes it to a directory for the bucket.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import type { BuildOptions } from 'esbuild';

export const CONSOLE_DIR = dirname(fileURLToPath(import.meta.url));

export interface ConsoleAsset {
  contentType: string;
  body: Buffer;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

const options = (minify: boolean): BuildOptions => ({
  entryPoints: { app: join(CONSOLE_DIR, 'src', 'main.tsx') },
  bundle: true,
  write: false,
  outdir: '/console-out',
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  minify,
  legalComments: 'none',
  logLevel: 'silent',
  define: { 'process.env.NODE_ENV': '"production"' },
});

/** index.html, app.js, app.css by name. */
export async function buildConsole(opts: { minify?: boolean } = {}): Promise<Map<string, ConsoleAsset>> {
  const esbuild = await import('esbuild');
  const out = await esbuild.build({ ...options(opts.minify ?? true), write: false });
  const assets = new Map<string, ConsoleAsset>();
  for (const f of out.outputFiles) {
    const name = f.path.slice(f.path.lastIndexOf('/') + 1);
    assets.set(name, { contentType: TYPES[name.slice(name.lastIndexOf('.'))] ?? 'application/octet-stream', body: Buffer.from(f.contents) });
  }
  assets.set('index.html', { contentType: TYPES['.html'], body: readFileSync(join(CONSOLE_DIR, 'index.html')) });
  return assets;
}

/**
 * The bundle written to a directory, synchronously (CDK constructs are built synchronously): the
 * source of the CDK's BucketDeployment, which adds config.json at deploy time.
 */
export function buildConsoleSync(dir: string): string {
  const target = resolve(dir);
  mkdirSync(target, { recursive: true });
  const require = createRequire(import.meta.url);
  const esbuild = require('esbuild') as typeof import('esbuild');
  const out = esbuild.buildSync({ ...options(true), outdir: target, write: true });
  if (out.errors.length) throw new Error(`the console bundle failed: ${out.errors.map((e) => e.text).join('; ')}`);
  writeFileSync(join(target, 'index.html'), readFileSync(join(CONSOLE_DIR, 'index.html')));
  return target;
}
