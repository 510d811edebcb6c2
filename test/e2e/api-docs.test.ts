/**
 * The API reference page (GET /docs) in headless Chromium: Swagger UI loads from this origin under
 * the page's own Content-Security-Policy, reads GET /openapi.json and lists every route of the
 * catalog; no request leaves the origin and the browser reports no CSP violation.
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { CHROMIUM, launchChromium } from './browser.ts';
import { ROUTES } from '../../functions/catalog.ts';
import { DOCS_CSP } from '../../functions/lib/apiDocs.ts';
import { api, startTestCloud } from '../integration/harness.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';

let cloud: LocalCloud;
let browser: Browser;

beforeAll(async () => {
  cloud = await startTestCloud();
  browser = await launchChromium();
}, 180_000);
afterAll(async () => {
  await browser?.close();
  await cloud?.stop();
});

describe.runIf(existsSync(CHROMIUM))('GET /docs in a browser', () => {
  it('serves the page with its own policy, and the approval pages keep the no-script one', async () => {
    const page = await api(cloud, 'GET', '/docs');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toBe(DOCS_CSP);
    expect(page.body).not.toMatch(/<script>|https?:\/\//);
    const js = await api(cloud, 'GET', '/docs/swagger-ui-bundle.js');
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect((await api(cloud, 'GET', '/docs/swagger-ui.css')).headers.get('content-type')).toMatch(/^text\/css/);
    const missing = await api(cloud, 'GET', '/docs/package.json');
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe('NotFound');
    const link = await api(cloud, 'GET', '/approvals/links/not-a-token');
    expect(link.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
    expect(link.headers.get('content-security-policy')).not.toMatch(/script-src/);
  });

  it('renders every route of the catalog from /openapi.json, all from this origin, with no CSP violation', async () => {
    const page = await browser.newPage();
    const problems: string[] = [];
    const origins = new Set<string>();
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('request', (r) => origins.add(new URL(r.url()).origin));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
    });
    await page.goto(`${cloud.apiUrl}/docs`);
    await page.locator('.opblock').first().waitFor({ timeout: 30_000 });
    await expect.poll(() => page.locator('.opblock').count(), { timeout: 30_000 }).toBe(ROUTES.length);
    expect(await page.locator('.info .title').textContent()).toContain('kmod-orchestrator API');
    await page.screenshot({ path: join(process.env.SCREENSHOT_DIR ?? tmpdir(), 'api-reference.png') });
    // Open one operation: its response schema is the generated one, field by field.
    await page
      .locator('.opblock-summary-path', { hasText: /^\/api\/v1\/deployments\/\{executionId\}$/ })
      .first()
      .click();
    await page.locator('.opblock.is-open .responses-wrapper').waitFor();
    // The example Swagger UI derives from the Deployment schema: its fields, not a bare object.
    const opened = await page.locator('.opblock.is-open').textContent();
    for (const field of ['"unreachableNodes": "fail"', '"stages": [', '"nodesDeployed": ', '"onDeadline": "resume"']) expect(opened).toContain(field);
    // Interactive: try GET /health from the page; the request goes to the API that served it.
    const health = page.locator('.opblock', { has: page.locator('.opblock-summary-path', { hasText: /^\/health$/ }) });
    await health.locator('.opblock-summary').click();
    await health.getByRole('button', { name: 'Try it out' }).click();
    await health.getByRole('button', { name: 'Execute' }).click();
    await expect
      .poll(() => health.locator('.live-responses-table tr.response .response-col_status').first().textContent(), { timeout: 15_000 })
      .toContain('200');
    expect(await health.locator('.live-responses-table').textContent()).toContain('kmod-orchestrator');
    expect(problems).toEqual([]);
    expect([...origins]).toEqual([new URL(cloud.apiUrl).origin]);
  }, 90_000);
});
