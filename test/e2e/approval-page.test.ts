/**
 * The approval email as a person uses it: open the mailbox in a real browser, follow the approve
 * link, see the confirmation page, press Approve. Needs Debian's chromium (.ci/run installs it).
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { CHROMIUM, launchChromium } from './browser.ts';
import { api, startTestCloud, waitForDeployment } from '../integration/harness.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';

let cloud: LocalCloud;
let browser: Browser;

beforeAll(async () => {
  cloud = await startTestCloud();
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await cloud?.stop();
});

describe.runIf(existsSync(CHROMIUM))('approval email in a browser', () => {
  it('mailbox → link → confirmation page → Approve resumes the deployment', async () => {
    const r = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Staging' },
    });
    const id = r.body.executionId as string;
    await waitForDeployment(cloud, id, ['WaitingForApproval']);
    const page = await browser.newPage();
    await page.goto(cloud.mailboxUrl);
    await page.getByRole('link', { name: 'Approval needed: demo-kernel@1.1.0 to Staging' }).click();
    await page
      .getByRole('link', { name: /\/approvals\/links\// })
      .first()
      .click();
    expect(await page.locator('h1').textContent()).toBe('Approve demo-kernel 1.1.0 for Staging?');
    const shots = mkdtempSync(join(tmpdir(), 'kmod-shots-'));
    await page.screenshot({ path: join(shots, 'confirm.png'), fullPage: true });
    // Opening the page decided nothing.
    expect((await waitForDeployment(cloud, id, ['WaitingForApproval'])).status).toBe('WaitingForApproval');
    await page.fill('#reason', 'looks good from the browser');
    await page.getByRole('button', { name: 'Approve' }).click();
    await page.waitForLoadState();
    expect(await page.locator('h1').textContent()).toBe('Decision recorded');
    await page.screenshot({ path: join(shots, 'recorded.png'), fullPage: true });
    const d = await waitForDeployment(cloud, id);
    expect(d.status).toBe('Succeeded');
    const approvals = await api(cloud, 'GET', `/api/v1/approvals/deployments/${id}`, { token: cloud.tokens.Viewer });
    expect(approvals.body.items[0]).toMatchObject({
      status: 'Approved',
      decisions: [{ approver: 'dev-approver', via: 'email', reason: 'looks good from the browser' }],
    });
    process.stdout.write(`screenshots in ${shots}\n`);
  });
});
