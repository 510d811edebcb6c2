/**
 * awscli conformance: the commands an operator runs against AWS, run with Debian's AWS CLI v2
 * against the local cloud's endpoints. The CLI parses every answer with AWS's own service models,
 * so a local answer of the wrong shape (a missing field, a timestamp AWS would not send, XML
 * where JSON belongs) fails here as it would fail an operator.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACT_BUCKET, type LocalCloud } from '../../localcloud/cloud.ts';
import { awsCli, awsCliText, findAwsCliV2 } from './awsCli.ts';
import { api, startTestCloud, waitForDeployment } from './harness.ts';

const awsBin = await findAwsCliV2();
if (!awsBin) console.warn('awscli conformance skipped: no AWS CLI v2 on this machine (apt-get install awscli; .ci/run installs it)');

describe.skipIf(!awsBin)('awscli v2 against the local endpoints', () => {
  let cloud: LocalCloud;
  let executionId: string;
  /** One CLI command; its JSON answer parsed (an empty answer is `{}`). */
  const aws = (service: string, args: string[]): Promise<any> => awsCli(awsBin!, cloud, service, args);
  /** A command expected to fail: the CLI's exit code and message. */
  async function awsFails(service: string, args: string[]): Promise<{ code: number; stderr: string }> {
    try {
      await aws(service, args);
    } catch (e) {
      const err = e as { code: number; stderr: string };
      return { code: err.code, stderr: err.stderr };
    }
    throw new Error(`aws ${service} ${args.join(' ')} succeeded`);
  }

  beforeAll(async () => {
    cloud = await startTestCloud({ fleet: { Development: 2, QA: 1, Staging: 2, Production: 1 } });
    const r = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' },
    });
    expect(r.status).toBe(202);
    executionId = r.body.executionId;
    expect((await waitForDeployment(cloud, executionId)).status).toBe('Succeeded');
  });
  afterAll(async () => cloud?.stop());

  it('stepfunctions list-state-machines / list-executions / describe-execution / get-execution-history', async () => {
    const machines = await aws('stepfunctions', ['list-state-machines']);
    const pipeline = machines.stateMachines.find((m: any) => m.name === 'kmod-Pipeline');
    expect(pipeline).toMatchObject({
      stateMachineArn: expect.stringMatching(/^arn:aws:states:us-east-1:\d{12}:stateMachine:kmod-Pipeline$/),
      type: 'STANDARD',
    });
    expect(Number.isNaN(Date.parse(pipeline.creationDate))).toBe(false);

    const listed = await aws('stepfunctions', ['list-executions', '--state-machine-arn', pipeline.stateMachineArn, '--status-filter', 'SUCCEEDED']);
    const mine = listed.executions.find((e: any) => e.executionArn.endsWith(`:${executionId}`) || e.name === executionId);
    expect(mine).toMatchObject({ stateMachineArn: pipeline.stateMachineArn, status: 'SUCCEEDED' });
    expect(Date.parse(mine.stopDate)).toBeGreaterThanOrEqual(Date.parse(mine.startDate));

    const described = await aws('stepfunctions', ['describe-execution', '--execution-arn', mine.executionArn]);
    expect(described).toMatchObject({ executionArn: mine.executionArn, status: 'SUCCEEDED', stateMachineArn: pipeline.stateMachineArn });
    expect(JSON.parse(described.input)).toMatchObject({ executionId });
    expect(() => JSON.parse(described.output)).not.toThrow();

    const history = await aws('stepfunctions', ['get-execution-history', '--execution-arn', mine.executionArn, '--max-items', '2000']);
    const events = history.events as any[];
    expect(events[0]).toMatchObject({ id: 1, type: 'ExecutionStarted', previousEventId: 0 });
    expect(events.at(-1).type).toBe('ExecutionSucceeded');
    expect(events.every((e, i) => e.id === i + 1 && !Number.isNaN(Date.parse(e.timestamp)))).toBe(true);

    const missing = await awsFails('stepfunctions', [
      'describe-execution',
      '--execution-arn',
      `${pipeline.stateMachineArn.replace(':stateMachine:', ':execution:')}:no-such-execution`,
    ]);
    expect(missing.stderr).toContain('ExecutionDoesNotExist');
  });

  it('stepfunctions send-task-success answers a waiting approval gate; a forged token is refused', async () => {
    const r = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Staging' },
    });
    expect(r.status).toBe(202);
    await waitForDeployment(cloud, r.body.executionId, ['WaitingForApproval']);
    const gate = await aws('dynamodb', [
      'get-item',
      '--table-name',
      cloud.tableNames.approvals,
      '--key',
      JSON.stringify({ executionId: { S: r.body.executionId }, environment: { S: 'Staging' } }),
      '--consistent-read',
    ]);
    const token = gate.Item.taskToken.S as string;
    expect(token.length).toBeGreaterThan(10);

    const forged = await awsFails('stepfunctions', ['send-task-success', '--task-token', `${token}x`, '--task-output', '{}']);
    expect(forged.code).not.toBe(0);
    expect(forged.stderr).toMatch(/TaskDoesNotExist|InvalidToken/);

    const ok = await aws('stepfunctions', ['send-task-success', '--task-token', token, '--task-output', JSON.stringify({ approved: true, decisions: [] })]);
    expect(ok).toEqual({});
    const history = await aws('stepfunctions', [
      'get-execution-history',
      '--execution-arn',
      (await aws('stepfunctions', ['describe-execution', '--execution-arn', r.body.executionArn ?? (await executionArnOf(r.body.executionId))])).executionArn,
      '--max-items',
      '5000',
    ]);
    expect((history.events as any[]).some((e) => e.type === 'TaskSucceeded' || e.type === 'TaskStateExited')).toBe(true);
  });

  /** The execution ARN of a deployment, as an operator finds it: list-executions and match the name. */
  async function executionArnOf(id: string): Promise<string> {
    const machines = await aws('stepfunctions', ['list-state-machines']);
    const arn = machines.stateMachines.find((m: any) => m.name === 'kmod-Pipeline').stateMachineArn;
    const listed = await aws('stepfunctions', ['list-executions', '--state-machine-arn', arn]);
    return listed.executions.find((e: any) => e.name === id || e.executionArn.endsWith(`:${id}`)).executionArn;
  }

  it('sns list-topics / publish', async () => {
    const topics = await aws('sns', ['list-topics']);
    const arns = (topics.Topics as { TopicArn: string }[]).map((t) => t.TopicArn);
    expect(arns.length).toBeGreaterThanOrEqual(2);
    expect(arns.every((a) => /^arn:aws:sns:us-east-1:\d{12}:[\w-]+$/.test(a))).toBe(true);
    const published = await aws('sns', ['publish', '--topic-arn', arns[0], '--subject', 'conformance', '--message', 'hello from the awscli test']);
    expect(published.MessageId).toMatch(/^[0-9a-f-]{36}$/);
    const unknown = await awsFails('sns', ['publish', '--topic-arn', 'arn:aws:sns:us-east-1:000000000000:no-such-topic', '--message', 'x']);
    expect(unknown.stderr).toContain('NotFound');
  });

  it('dynamodb scan / query', async () => {
    const count = await aws('dynamodb', ['scan', '--table-name', cloud.tableNames.deployments, '--select', 'COUNT']);
    expect(count.Count).toBeGreaterThanOrEqual(2);
    const audit = await aws('dynamodb', [
      'query',
      '--table-name',
      cloud.tableNames.audit,
      '--key-condition-expression',
      'subject = :s',
      '--expression-attribute-values',
      JSON.stringify({ ':s': { S: `deployment#${executionId}` } }),
    ]);
    expect(audit.Count).toBeGreaterThan(0);
    expect(audit.Items.every((i: any) => i.subject.S === `deployment#${executionId}`)).toBe(true);
  });

  it('s3 ls / cp: the registered artifact is listed and copied byte for byte', async () => {
    const buckets = { stdout: await awsCliText(awsBin!, ['s3', 'ls', '--endpoint-url', cloud.servicesUrl]) };
    expect(buckets.stdout).toContain(ARTIFACT_BUCKET);
    // Artifacts are content-addressed (artifacts/<name>/<version>/<sha256>): the key the record names.
    const v = await api(cloud, 'GET', '/api/v1/modules/demo-kernel/versions/1.1.0', { token: cloud.tokens.Viewer });
    const key = `artifacts/demo-kernel/1.1.0/${v.body.manifest.artifact.sha256}`;
    const listing = {
      stdout: await awsCliText(awsBin!, ['s3', 'ls', `s3://${ARTIFACT_BUCKET}/artifacts/demo-kernel/`, '--recursive', '--endpoint-url', cloud.servicesUrl]),
    };
    expect(listing.stdout).toContain(key);
    const dir = mkdtempSync(join(tmpdir(), 'kmod-awscli-'));
    await awsCliText(awsBin!, ['s3', 'cp', `s3://${ARTIFACT_BUCKET}/${key}`, join(dir, 'a.bin'), '--endpoint-url', cloud.servicesUrl]);
    const sha = createHash('sha256')
      .update(readFileSync(join(dir, 'a.bin')))
      .digest('hex');
    expect(sha).toBe(v.body.manifest.artifact.sha256);
  });
});
