/**
 * Durable executions (issue 13, ADR 0014): `npm start` killed with SIGKILL in the middle of a
 * deployment and started again on the same data dir carries the deployment on. A real child
 * process, as test/integration/start.test.ts runs it, on one fixed port, so the approval links
 * mailed before the crash still point at it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudFile } from '../../localcloud/cloud.ts';
import { freePort } from '../../localcloud/net.ts';
import { api, javaProcessesFor } from './harness.ts';

const ENVIRONMENTS = ['Development', 'QA', 'Staging', 'Production'] as const;

/** `npm start` on a data dir, started and killed like a person or a machine would. */
class CloudProcess {
  private child?: ChildProcess;
  output = '';
  cloud!: CloudFile;

  constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  async start(): Promise<CloudFile> {
    const file = join(this.dir, 'cloud.json');
    rmSync(file, { force: true }); // the last run's: wait for this run's
    this.output = '';
    this.child = spawn(process.execPath, ['--import', 'tsx', 'localcloud/main.ts'], {
      env: {
        ...process.env,
        PORT: String(this.port),
        KMOD_DATA_DIR: this.dir,
        CANARY_BAKE_SECONDS: '3',
        // Stabilisation in seconds rather than its default minutes (as the harness does; never skipped).
        STABILISE_MIN_SECONDS: '1',
        STABILISE_POLL_SECONDS: '1',
        STABILISE_MAX_SECONDS: '10',
        CANARY_CONFIDENCE: '0.9999',
        WAF_RATE_LIMIT_PER_ADDRESS: '100000',
        RATE_LIMIT_DEPLOYMENTS_PER_USER: '10000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.on('data', (d) => (this.output += d));
    this.child.stderr?.on('data', (d) => (this.output += d));
    for (let i = 0; i < 1200 && !existsSync(file); i++) {
      if (this.child.exitCode !== null) throw new Error(`npm start exited ${this.child.exitCode}:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!existsSync(file)) throw new Error(`no cloud.json after 120 s:\n${this.output}`);
    this.cloud = JSON.parse(readFileSync(file, 'utf8')) as CloudFile;
    for (let i = 0; i < 600; i++) {
      if ((await fetch(`${this.cloud.apiUrl}/health`).catch(() => undefined))?.status === 200) return this.cloud;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`/health never turned 200:\n${this.output}`);
  }

  /** SIGKILL: no shutdown code runs. Returns when its DynamoDB Local JVM is gone too (its watchdog stops it). */
  async kill(): Promise<void> {
    const child = this.child!;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    for (let i = 0; i < 300 && javaProcessesFor(this.dir).length; i++) await new Promise((r) => setTimeout(r, 100));
  }

  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child!.once('exit', r));
    this.child.kill('SIGINT');
    await exited;
  }
}

describe('a local cloud killed in the middle of a deployment and started again', () => {
  let proc: CloudProcess;
  let executionId: string;
  const get = (path: string) => api(proc.cloud, 'GET', path, { token: proc.cloud.tokens.Viewer });
  const deployment = async () => (await get(`/api/v1/deployments/${executionId}`)).body;
  const stage = (d: any, name: string) => d.stages.find((s: { name: string }) => s.name === name);
  const until = async <T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string, ms = 120_000): Promise<T> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await read();
      if (ok(v)) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v).slice(0, 2000)}\n${proc.output.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const ddb = () =>
    DynamoDBDocumentClient.from(
      new DynamoDBClient({ endpoint: proc.cloud.dynamodbUrl, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }),
    );
  const lock = async (environment: string) =>
    (await ddb().send(new GetCommand({ TableName: 'kmod-Locks', Key: { lockKey: `demo-kernel#${environment}` }, ConsistentRead: true }))).Item;
  const mailbox = async () =>
    ((await (await fetch(`${proc.cloud.mailboxUrl}/messages.json`)).json()) as { messages: { to: string; subject: string; body: string }[] }).messages;
  const approvalMails = async (environment: string) =>
    (await mailbox()).filter((m) => m.to === 'amy.approver@example.com' && m.body.includes(executionId) && m.subject.endsWith(`to ${environment}`));

  beforeAll(async () => {
    proc = new CloudProcess(mkdtempSync(join(tmpdir(), 'kmod-crash-')), await freePort());
    await proc.start();
  }, 300_000);
  afterAll(async () => proc?.stop(), 60_000);

  it('an approval gate that was waiting still waits after the restart, and the SAME emailed link decides it', async () => {
    const r = await api(proc.cloud, 'POST', '/api/v1/deployments', {
      token: proc.cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Production' },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    executionId = r.body.executionId;
    await until(deployment, (d) => d.status === 'WaitingForApproval', 'the Staging gate');
    const [mail] = await until(
      () => approvalMails('Staging'),
      (m) => m.length === 1,
      'the approval email',
    );
    const approveLink = /Approve: (\S+)/.exec(mail.body)![1];
    const gate = async () =>
      (await ddb().send(new GetCommand({ TableName: 'kmod-Approvals', Key: { executionId, environment: 'Staging' }, ConsistentRead: true }))).Item!;
    const { taskToken, deadline } = await gate();
    // The locks are held to the gate's deadline plus one step (LOCK_LEASE_SECONDS, 1200 s), not a day and an hour.
    const held = await lock('Development');
    expect(held?.executionId).toBe(executionId);
    expect(Number(held?.expiresAt)).toBeLessThanOrEqual(Math.ceil(Date.parse(deadline) / 1000) + 1200 + 5);

    await proc.kill();
    await proc.start();
    expect(proc.output).toMatch(/resumed \d+ execution\(s\) left running by the last run/);

    expect((await deployment()).status).toBe('WaitingForApproval');
    expect((await gate()).taskToken).toBe(taskToken); // the same token waits: nobody re-asked the approvers
    expect(await approvalMails('Staging')).toHaveLength(1);
    const page = await fetch(approveLink);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Approve demo-kernel 1.1.0 for Staging?');
    const confirmed = await fetch(approveLink, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ confirm: 'approve', reason: 'approved after the restart' }).toString(),
    });
    expect(confirmed.status).toBe(200);
    expect(await confirmed.text()).toContain('The approval is approved');
    const atProduction = await until(deployment, (d) => d.status === 'WaitingForApproval' && stage(d, 'Production').approval, 'the Production gate');
    expect(stage(atProduction, 'Staging').status).toBe('Succeeded');
  }, 600_000);

  it('a Production canary killed between waves resumes to Succeeded: no lock left, every node of each environment on one version', async () => {
    const approved = await api(proc.cloud, 'POST', `/api/v1/approvals/deployments/${executionId}/approve`, {
      token: proc.cloud.tokens.Approver,
      body: { reason: 'canary go' },
    });
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    // Wave 1 analysed, the later waves not yet: kill it there.
    const midway = await until(deployment, (d) => Boolean(stage(d, 'Production').details?.wave1), 'wave 1 of the canary');
    await proc.kill();
    expect(midway.status).toBe('Running');
    expect(stage(midway, 'Production').details.wave4).toBeUndefined();

    await proc.start();
    expect(proc.output).toMatch(/resumed \d+ execution\(s\) left running by the last run/);
    const d = await until(deployment, (x) => ['Succeeded', 'Failed', 'RolledBack', 'Cancelled'].includes(x.status), 'the deployment to finish', 240_000);
    expect(d.status, JSON.stringify(d.failure)).toBe('Succeeded');
    const production = stage(d, 'Production');
    expect(production).toMatchObject({ status: 'Succeeded', nodesTotal: 20 });
    for (const w of [1, 2, 3, 4]) expect(production.details[`wave${w}`]).toMatchObject({ passed: true });
    expect(production.details.wave4.nodes).toBe(20);
    expect(stage(d, 'Validation').status).toBe('Succeeded');

    // The pipeline's last step writes Succeeded, then releases the locks: the execution's end says it is done.
    const sfn = new SFNClient({ endpoint: proc.cloud.servicesUrl, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
    const pipeline = await until(
      () => sfn.send(new DescribeExecutionCommand({ executionArn: `arn:aws:states:us-east-1:000000000000:execution:kmod-Pipeline:${executionId}` })),
      (x) => x.status !== 'RUNNING',
      'the pipeline execution to end',
      30_000,
    );
    expect(pipeline.status).toBe('SUCCEEDED');
    for (const env of ENVIRONMENTS) expect(await lock(env), env).toBeUndefined();
    // What the agents themselves run: one version per environment (Staging: the live colour on the new one).
    const fleet = (await (await fetch(`${proc.cloud.apiUrl}/_local/fleet`)).json()) as {
      nodes: { nodeId: string; environment: string; modules: Record<string, { version: string }> }[];
    };
    const versions = (env: string) => new Set(fleet.nodes.filter((n) => n.environment === env).map((n) => n.modules['demo-kernel']?.version));
    for (const env of ['Development', 'QA', 'Production']) expect(versions(env), env).toEqual(new Set(['1.1.0']));
    const staging = (await get('/api/v1/clusters/Staging?refresh=true')).body;
    for (const n of staging.nodes) expect(n.modules['demo-kernel'].version, n.nodeId).toBe(n.colour === staging.activeColour ? '1.1.0' : '1.0.0');

    // Each canary batch was deployed once per node: the resumed run asked again only what was in flight.
    const audit = (await api(proc.cloud, 'GET', `/api/v1/audit?deploymentId=${executionId}&limit=500`, { token: proc.cloud.tokens.Admin })).body.items as {
      action: string;
    }[];
    expect(audit.filter((a) => a.action === 'canary.wave.passed').length).toBeGreaterThanOrEqual(4);
    expect(audit.filter((a) => a.action === 'deployment.succeeded')).toHaveLength(1);
  }, 600_000);
});
