/**
 * The web console (docs/adr/0035-web-console.md) in headless Chromium against a local cloud: sign in
 * as each role through the local identity, see the environments, start a deployment and watch its
 * timeline reach Succeeded live (no reload), decide both gates from the Approver's inbox, a Viewer
 * gets no steering, an Admin searches the audit trail and sees the users. Every request stays on the
 * cloud's origin and the browser reports no error (no CSP violation). SCREENSHOT_DIR=docs/console
 * writes the README's screenshots.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { CHROMIUM, launchChromium } from './browser.ts';
import { api, startTestCloud, waitForDeployment } from '../integration/harness.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';

let cloud: LocalCloud;
let browser: Browser;
const shots = process.env.SCREENSHOT_DIR ?? join(tmpdir(), 'kmod-console-shots');
const problems: string[] = [];
const origins = new Set<string>();
/** Live events each signed-in page received over its WebSocket, by username. */
const frames = new Map<string, { type?: string; deploymentId?: string; status?: string }[]>();

beforeAll(async () => {
  cloud = await startTestCloud({
    fleet: { Development: 2, QA: 2, Staging: 2, Production: 6 },
    env: { CANARY_BAKE_SECONDS: '1', CANARY_POLL_SECONDS: '1' },
  });
  browser = await launchChromium();
  mkdirSync(shots, { recursive: true });
}, 180_000);
afterAll(async () => {
  await browser?.close();
  await cloud?.stop();
});

const USER_IDS: Record<string, string> = {
  'dan.deployer': 'dev-deployer',
  'amy.approver': 'dev-approver',
  'vic.viewer': 'dev-viewer',
  'ada.admin': 'dev-admin',
};

async function signIn(username: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`${username}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`${username}: ${e.message}`));
  page.on('request', (r) => origins.add(new URL(r.url()).origin));
  frames.set(username, []);
  page.on('websocket', (ws) => {
    origins.add(new URL(ws.url()).origin.replace(/^ws/, 'http'));
    ws.on('framereceived', (f) => frames.get(username)!.push(JSON.parse(String(f.payload))));
  });
  await page.goto(cloud.consoleUrl);
  await page.getByLabel('User', { exact: true }).selectOption(USER_IDS[username]);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect.poll(() => page.getByTestId('who').textContent()).toContain(username);
  return page;
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(shots, name), fullPage: true });

describe.runIf(existsSync(CHROMIUM))('the web console in a browser', () => {
  let deployer: Page;
  let executionId: string;

  it('serves the bundle, its config and cloud.json names it', async () => {
    expect(cloud.consoleUrl).toBe(`${cloud.apiUrl}/console/`);
    const index = await fetch(cloud.consoleUrl);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-security-policy')).toMatch(/script-src 'self'; style-src 'self'/);
    expect(await index.text()).not.toMatch(/https?:\/\//);
    const config = await (await fetch(`${cloud.consoleUrl}config.json`)).json();
    expect(config).toMatchObject({ apiUrl: cloud.apiUrl, wsUrl: cloud.wsUrl, auth: { mode: 'local' } });
    const js = await fetch(`${cloud.consoleUrl}app.js`);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect((await fetch(`${cloud.consoleUrl}nope.js`)).status).toBe(404);
  });

  it('Deployer: environments at a glance', async () => {
    deployer = await signIn('dan.deployer');
    for (const env of ['Development', 'QA', 'Staging', 'Production']) await expect.poll(() => deployer.getByTestId(`environment-${env}`).count()).toBe(1);
    const prod = deployer.getByTestId('environment-Production');
    await expect.poll(() => prod.textContent()).toContain('demo-kernel');
    expect(await prod.textContent()).toMatch(/1\.0\.0\s*×6/);
    expect(await deployer.getByTestId('environment-Staging').textContent()).toMatch(/Live colour (blue|green)/);
    // Keyboard: the navigation is reachable and operable with Tab and Enter.
    await deployer.keyboard.press('Tab'); // skip link
    await deployer.keyboard.press('Tab');
    expect(await deployer.evaluate(() => document.activeElement?.textContent)).toBe('Environments');
  });

  it('Deployer: starts a deployment from the console and watches its timeline live', async () => {
    await deployer.getByRole('link', { name: 'Deployments', exact: true }).click();
    await deployer.getByLabel('Version').selectOption('1.1.0');
    await deployer.getByLabel('Up to').selectOption('Production');
    // A marker on the window: still there at the end means the page never reloaded.
    await deployer.evaluate(() => Object.assign(window, { kmodMarker: 1 }));
    await deployer.getByRole('button', { name: 'Deploy' }).click();
    await deployer.waitForURL(/#\/deployments\/.+/);
    executionId = decodeURIComponent(deployer.url().split('#/deployments/')[1]);
    // The Development stage finishes and the Staging gate opens, shown without a reload.
    await expect.poll(() => deployer.getByTestId('stage-Development').textContent(), { timeout: 60_000 }).toContain('Succeeded');
    await expect.poll(() => deployer.getByRole('heading', { level: 1 }).textContent(), { timeout: 60_000 }).toContain('WaitingForApproval');
    expect(await deployer.getByTestId('stage-Staging').textContent()).toMatch(/may decide: dev-approver or an Admin/);
    // Steering is offered to a Deployer: cancel applies now, roll back does not yet.
    expect(await deployer.getByRole('button', { name: 'Cancel', exact: true }).isEnabled()).toBe(true);
    expect(await deployer.getByRole('button', { name: /^Roll back/ }).isDisabled()).toBe(true);
  }, 90_000);

  it('Approver: decides both gates from the inbox, with a reason', async () => {
    const approver = await signIn('amy.approver');
    await approver.getByRole('link', { name: 'Approvals', exact: true }).click();
    for (const [env, first] of [
      ['Staging', true],
      ['Production', false],
    ] as const) {
      const card = approver.getByTestId(`approval-${executionId}`);
      await expect.poll(() => card.textContent(), { timeout: 90_000 }).toContain(`→ ${env}`);
      expect(await card.getByTestId('may-decide').textContent()).toBe('dev-approver or an Admin');
      if (first) await shot(approver, 'console-approvals.png');
      // A decision needs a reason.
      await card.getByRole('button', { name: 'Approve' }).click();
      expect(await card.getByRole('alert').textContent()).toMatch(/Give a reason/);
      if (first) {
        await card.getByLabel('Reason').fill(`${env} looks good from the console`);
        await card.getByRole('button', { name: 'Approve' }).click();
      } else {
        // From the keyboard only: type the reason, Tab to Approve (focus visible), Enter.
        await card.getByLabel('Reason').focus();
        await approver.keyboard.type(`${env} looks good from the console`);
        await approver.keyboard.press('Tab');
        expect(await approver.evaluate(() => [document.activeElement?.textContent, getComputedStyle(document.activeElement!).outlineStyle])).toEqual([
          'Approve',
          'solid',
        ]);
        await approver.keyboard.press('Enter');
      }
      // Decided: the card goes (live), the deployment carries on.
      await expect.poll(() => approver.getByTestId(`approval-${executionId}`).count(), { timeout: 30_000 }).toBe(0);
    }
    const approvals = await api(cloud, 'GET', `/api/v1/approvals/deployments/${executionId}`, { token: cloud.tokens.Viewer });
    expect(approvals.body.items.map((a: any) => [a.environment, a.status, a.decisions[0]?.reason]).sort()).toEqual([
      ['Production', 'Approved', 'Production looks good from the console'],
      ['Staging', 'Approved', 'Staging looks good from the console'],
    ]);
  }, 180_000);

  it('Deployer: the timeline reaches Succeeded without a reload, with the canary waves charted', async () => {
    await expect.poll(() => deployer.getByRole('heading', { level: 1 }).textContent(), { timeout: 120_000 }).toContain('Succeeded');
    expect(await deployer.evaluate(() => (window as unknown as { kmodMarker?: number }).kmodMarker)).toBe(1);
    // The updates came as live events over the WebSocket (the page re-reads on each), not from a reload.
    expect(await deployer.locator('.live').textContent()).toBe('live');
    const statuses = () =>
      frames
        .get('dan.deployer')!
        .filter((f) => f.type === 'deployment.status' && f.deploymentId === executionId)
        .map((f) => f.status);
    // The page may re-read on the deployment.stage event of the same final write, just before its deployment.status frame.
    await expect.poll(() => statuses().at(-1), { timeout: 10_000 }).toBe('Succeeded');
    expect(statuses()).toContain('WaitingForApproval');
    const d = await waitForDeployment(cloud, executionId);
    expect(d.status).toBe('Succeeded');
    const prod = deployer.getByTestId('stage-Production');
    await expect.poll(() => prod.textContent()).toContain('Nodes 6/6');
    const waves = d.stages.find((s: any) => s.name === 'Production').details;
    const waveCount = Object.keys(waves).filter((k) => /^wave\d+$/.test(k)).length;
    expect(waveCount).toBeGreaterThan(1);
    expect(await prod.locator('.waves li').count()).toBe(waveCount);
    // One uPlot chart per judged metric, each drawn on a canvas, baseline and canary.
    const charts = prod.locator('figure.chart');
    expect(await charts.count()).toBeGreaterThan(0);
    expect(await charts.first().locator('canvas').count()).toBe(1);
    expect(await charts.first().textContent()).toMatch(/baseline.*canary/s);
    expect(await deployer.getByTestId('stage-QA').getByTestId('batches').textContent()).toMatch(/batches (\d+)\/\1/);
    await prod.scrollIntoViewIfNeeded();
    await shot(deployer, 'console-deployment.png');
  }, 150_000);

  it('Viewer: sees the deployment, and no steering or deploy buttons', async () => {
    const viewer = await signIn('vic.viewer');
    await viewer.goto(`${cloud.consoleUrl}#/deployments/${encodeURIComponent(executionId)}`);
    await expect.poll(() => viewer.getByRole('heading', { level: 1 }).textContent()).toContain('Succeeded');
    expect(await viewer.getByRole('heading', { name: 'Steer' }).count()).toBe(0);
    for (const name of ['Cancel', 'Pause', 'Resume', 'Promote', 'Roll back']) expect(await viewer.getByRole('button', { name }).count()).toBe(0);
    await viewer.getByRole('link', { name: 'Deployments', exact: true }).click();
    await expect.poll(() => viewer.getByTestId('deployments').textContent()).toContain(executionId);
    expect(await viewer.getByRole('button', { name: 'Deploy' }).count()).toBe(0);
    // Nor Audit or Admin in the navigation.
    expect(await viewer.getByRole('navigation').getByRole('link').allTextContents()).toEqual(['Environments', 'Deployments', 'Approvals']);
    // The environments now: every node on 1.1.0, healthy, the desired version 1.1.0.
    await viewer.getByRole('link', { name: 'Environments', exact: true }).click();
    const prod = viewer.getByTestId('environment-Production');
    await expect.poll(() => prod.textContent()).toMatch(/1\.1\.0\s*×6/);
    expect(await prod.locator('.health').textContent()).toBe('Healthy');
    expect(await prod.locator('.versions tbody td').last().textContent()).toBe('1.1.0');
    await shot(viewer, 'console-environments.png');
    // The Deployer still sees the buttons on the finished deployment (roll back applies now).
    expect(await deployer.getByRole('button', { name: /^Roll back/ }).isEnabled()).toBe(true);
  });

  it('Deployer: cancels a deployment waiting at its gate from the console, with a reason; it ends Cancelled live', async () => {
    const r = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.0.0', targetEnvironment: 'Staging' },
    });
    expect(r.status).toBe(202);
    const id = r.body.executionId as string;
    await deployer.goto(`${cloud.consoleUrl}#/deployments/${encodeURIComponent(id)}`);
    await expect.poll(() => deployer.getByRole('heading', { level: 1 }).textContent(), { timeout: 60_000 }).toContain('WaitingForApproval');
    expect(await deployer.getByRole('button', { name: /^Pause/ }).isDisabled()).toBe(true);
    await deployer.getByLabel('Reason (optional)').fill('wrong version');
    await deployer.getByRole('button', { name: 'Cancel', exact: true }).click();
    await expect.poll(() => deployer.getByRole('status').filter({ hasText: 'cancel requested' }).count()).toBe(1);
    await expect.poll(() => deployer.getByRole('heading', { level: 1 }).textContent(), { timeout: 60_000 }).toContain('Cancelled');
    expect(await deployer.getByText('Cancel requested by dev-deployer: wrong version').count()).toBe(1);
    const d = await waitForDeployment(cloud, id);
    expect(d).toMatchObject({ status: 'Cancelled', cancellation: { requestedBy: 'dev-deployer', reason: 'wrong version' } });
  }, 120_000);

  it('Admin: audit search and users', async () => {
    const admin = await signIn('ada.admin');
    await admin.getByRole('link', { name: 'Audit' }).click();
    await admin.getByLabel('Deployment id').fill(executionId);
    await admin.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => admin.getByTestId('audit').textContent()).toContain('approval');
    const actions = await admin.locator('[data-testid=audit] tbody tr td:nth-child(3)').allTextContents();
    expect(actions.length).toBeGreaterThan(3);
    await shot(admin, 'console-audit.png');
    await admin.getByRole('link', { name: 'Admin' }).click();
    await expect.poll(() => admin.getByTestId('principals').textContent()).toContain('dan.deployer');
    // Create a user and a service client (its secret shown once), disable the user, change a limit.
    await admin.getByLabel('Username').fill('eve.example');
    await admin.getByLabel('Email').fill('eve@example.com');
    await admin.getByRole('button', { name: 'Create user' }).click();
    await expect.poll(() => admin.getByTestId('principals').textContent()).toContain('eve.example');
    await admin.getByLabel('Name', { exact: true }).fill('ci-pipeline');
    await admin.getByRole('button', { name: 'Create client' }).click();
    await expect.poll(() => admin.locator('.secret pre').count()).toBe(1);
    expect((await admin.locator('.secret pre').textContent())!.length).toBeGreaterThan(20);
    await admin.getByRole('button', { name: 'Disable eve.example' }).click();
    await expect.poll(() => admin.getByRole('button', { name: 'Enable eve.example' }).count()).toBe(1);
    const users = await api(cloud, 'GET', '/api/v1/admin/users', { token: cloud.tokens.Admin });
    expect(users.body.items.find((u: any) => u.username === 'eve.example')).toMatchObject({ kind: 'user', roles: ['Viewer'], enabled: false });
    expect(users.body.items.find((u: any) => u.username === 'ci-pipeline')).toMatchObject({ kind: 'client', scopes: ['kmod/read'] });
    expect(Number(await admin.getByLabel('Window (s)').inputValue())).toBeGreaterThan(0);
    await admin.getByLabel('Deployments per user per window').fill('9999');
    await admin.getByRole('button', { name: 'Save limits' }).click();
    await expect.poll(() => admin.getByText('saved (applies within seconds)').count()).toBe(1);
    expect((await api(cloud, 'GET', '/api/v1/admin/rate-limits', { token: cloud.tokens.Admin })).body.deploymentCreatePerUser).toBe(9999);
    await shot(admin, 'console-admin.png');
    expect(problems).toEqual([]);
    expect([...origins]).toEqual([new URL(cloud.apiUrl).origin]);
  });
});
