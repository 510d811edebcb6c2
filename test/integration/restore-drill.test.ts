/**
 * The restore drill (issue 12 item 6, docs/runbooks/backup-restore.md, docs/adr/0034): a local
 * cloud runs a deployment, cancels another at its approval gate and registers a module version of
 * its own; `npm run backup` refuses while the gated deployment is in flight, then exports the cloud
 * while it runs; its data dir is deleted; a second, fresh local cloud (another port and data dir)
 * is started and stopped; `npm run restore` refuses to write over its seeded tables, then with
 * --force restores the backup into it. Every table then holds exactly the first cloud's items
 * (counts and sorted canonical JSON, read with a plain Scan, not with the tool's own code), and
 * the restored cloud lists the same deployments and deploys the version only the first cloud had
 * registered: its artifact came back from S3 and its signature verifies against the restored PKI.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import canonicalize from 'canonicalize';
import { afterAll, describe, expect, it } from 'vitest';
import { TABLES } from '../../functions/lib/tables.ts';
import { type CloudFile, ROOT } from '../../localcloud/cloud.ts';
import { loadPki, signedModuleVersion } from '../../localcloud/devPki.ts';
import { startDynamoDbLocal } from '../../localcloud/dynamodb.ts';
import { demoArtifact } from '../../localcloud/seed.ts';
import { api, SUITE_LIMITS, waitForDeployment } from './harness.ts';

const run = promisify(execFile);
const dirA = mkdtempSync(join(tmpdir(), 'kmod-drill-a-'));
const dirB = mkdtempSync(join(tmpdir(), 'kmod-drill-b-'));
const backupDir = join(mkdtempSync(join(tmpdir(), 'kmod-drill-backup-')), 'backup');
const TABLE_NAMES = Object.values(TABLES).map((spec) => `kmod-${spec.id}`);
let cloud: RunningCloud | undefined;

afterAll(async () => {
  await cloud?.stop();
  for (const d of [dirA, dirB, join(backupDir, '..')]) rmSync(d, { recursive: true, force: true });
});

interface RunningCloud extends CloudFile {
  stop(): Promise<void>;
}

/**
 * `KMOD_DATA_DIR=<dir> PORT=0 npm start` in a process of its own, as an operator runs it (two clouds
 * in this process would share the handlers' environment and caches); ready when /health answers.
 */
async function startCloud(dataDir: string, fresh: boolean): Promise<RunningCloud> {
  rmSync(join(dataDir, 'cloud.json'), { force: true });
  const child: ChildProcess = spawn(join(ROOT, 'node_modules/.bin/tsx'), [join(ROOT, 'localcloud/main.ts'), ...(fresh ? ['--fresh'] : [])], {
    cwd: ROOT,
    env: { ...process.env, ...SUITE_LIMITS, KMOD_DATA_DIR: dataDir, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(t);
  };
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the local cloud exited: ${output}`);
    if (existsSync(join(dataDir, 'cloud.json'))) {
      const file = JSON.parse(readFileSync(join(dataDir, 'cloud.json'), 'utf8')) as CloudFile;
      const health = await fetch(`${file.apiUrl}/health`).catch(() => undefined);
      if (health?.status === 200) return { ...file, stop };
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the local cloud did not start within 180 s: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** What each simulated agent of an environment runs, asked of the fleet. */
async function versionsOn(c: RunningCloud, prefix: string): Promise<Record<string, string | undefined>> {
  const r = await api(c, 'GET', '/_local/fleet');
  return Object.fromEntries(
    (r.body as { nodes: { nodeId: string; modules: Record<string, { version: string }> }[] }).nodes
      .filter((n) => n.nodeId.startsWith(`${prefix}-`))
      .map((n) => [n.nodeId, n.modules['demo-kernel']?.version]),
  );
}

/** Items whose TTL (`expiresAt`, epoch seconds) has passed: DynamoDB Local, like DynamoDB, deletes them in time. */
const expired = (json: string) => {
  const at = (JSON.parse(json) as { expiresAt?: number }).expiresAt;
  return typeof at === 'number' && at <= Date.now() / 1000;
};

/** `npm run <script> -- args` as an operator runs it; resolves with the exit code and output (never rejects). */
async function npmRun(script: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const { stdout, stderr } = await run(join(ROOT, 'node_modules/.bin/tsx'), [join(ROOT, 'scripts', `${script}.ts`), ...args], {
      cwd: ROOT,
      env: { ...process.env, KMOD_DATA_DIR: '' },
    });
    return { code: 0, out: stdout, err: stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: x.code ?? -1, out: x.stdout ?? '', err: x.stderr ?? '' };
  }
}

/** Every item of every table, each as canonical JSON, sorted: what "identical" means here. */
async function tablesAt(endpoint: string): Promise<Record<string, string[]>> {
  const client = new DynamoDBClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  const ddb = DynamoDBDocumentClient.from(client);
  const out: Record<string, string[]> = {};
  try {
    for (const TableName of TABLE_NAMES) {
      const items: string[] = [];
      let ExclusiveStartKey: Record<string, unknown> | undefined;
      do {
        const r = await ddb.send(new ScanCommand({ TableName, ExclusiveStartKey, ConsistentRead: true }));
        items.push(...(r.Items ?? []).map((i) => canonicalize(i) as string));
        ExclusiveStartKey = r.LastEvaluatedKey;
      } while (ExclusiveStartKey);
      out[TableName] = items.sort();
    }
  } finally {
    client.destroy();
  }
  return out;
}

const counts = (t: Record<string, string[]>) => Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.length]));

let before: Record<string, string[]>;
let deploymentsBefore: unknown[];

describe('restore drill: back up a running local cloud, restore it into a fresh one', () => {
  it('runs a deployment and registers a version on the first cloud, then backs it up while it runs', async () => {
    cloud = await startCloud(dirA, true);
    const pki = loadPki(join(dirA, 'pki'))!;
    const v120 = signedModuleVersion(
      { name: 'demo-kernel', version: '1.2.0', entrypoint: 'demo_kernel_init', resources: { cpuMillicores: 100, memoryMiB: 32 } },
      demoArtifact('1.2.0'),
      pki,
    );
    expect((await api(cloud, 'POST', '/api/v1/modules', { token: cloud.tokens.Deployer, body: v120 })).status).toBe(201);
    const started = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' },
    });
    expect(started.status).toBe(202);
    expect((await waitForDeployment(cloud, started.body.executionId)).status).toBe('Succeeded');

    // A backup refuses while something is in flight: here a deployment waiting at the Staging gate.
    const gated = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Staging' },
    });
    expect(gated.status).toBe(202);
    await waitForDeployment(cloud, gated.body.executionId, ['WaitingForApproval']);
    const refused = await npmRun('backup', ['--out', backupDir, '--data-dir', dirA]);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain(`deployment ${gated.body.executionId} (WaitingForApproval)`);
    expect(refused.err).toContain('back up a quiet cloud');
    expect(existsSync(join(backupDir, 'manifest.json'))).toBe(false);
    const cancelled = await api(cloud, 'POST', `/api/v1/deployments/${gated.body.executionId}/cancel`, {
      token: cloud.tokens.Deployer,
      body: { reason: 'restore drill' },
    });
    expect(cancelled.status).toBe(202);
    for (let i = 0; ; i++) {
      const d = await api(cloud, 'GET', `/api/v1/deployments/${gated.body.executionId}`, { token: cloud.tokens.Viewer });
      if (d.body.status === 'Cancelled' && d.body.rollback?.status === 'Succeeded') break;
      if (i > 600) throw new Error(`the cancelled deployment did not finish rolling back: ${JSON.stringify(d.body)}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    const listed = await api(cloud, 'GET', '/api/v1/deployments', { token: cloud.tokens.Viewer });
    expect(listed.status).toBe(200);
    deploymentsBefore = listed.body.items;
    expect(deploymentsBefore.map((d) => (d as { status: string }).status).sort()).toEqual(['Cancelled', 'Succeeded']);

    // Live events are derived from the streams a moment later: wait until nothing changes any more.
    let previous = await tablesAt(cloud.dynamodbUrl);
    for (let i = 0; ; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const now = await tablesAt(cloud.dynamodbUrl);
      if (JSON.stringify(now) === JSON.stringify(previous)) break;
      if (i > 30) throw new Error('the tables kept changing for 30 s');
      previous = now;
    }
    before = previous;

    const b = await npmRun('backup', ['--out', backupDir, '--data-dir', dirA]);
    expect(b.code, b.err + b.out).toBe(0);
    expect(b.out).toMatch(/table {3}kmod-Deployments +2 items/);
    expect(b.out).toMatch(/bucket {2}kmod-artifacts +3 objects/);
    // The backup read a cloud at rest: it is exactly what the tables held.
    expect(await tablesAt(cloud.dynamodbUrl)).toEqual(before);
    const manifest = JSON.parse(readFileSync(join(backupDir, 'manifest.json'), 'utf8'));
    expect(Object.fromEntries(manifest.tables.map((t: { name: string; items: number }) => [t.name, t.items]))).toEqual(counts(before));
    for (const t of manifest.tables as { name: string; file: string }[]) {
      expect(readFileSync(join(backupDir, t.file), 'utf8').split('\n').filter(Boolean).length, t.name).toBe(before[t.name].length);
    }
    await cloud.stop();
    cloud = undefined;
    // Nothing of the first cloud is left to lean on.
    rmSync(dirA, { recursive: true, force: true });
  }, 300_000);

  it('refuses to restore over a fresh cloud without --force, and writes nothing', async () => {
    cloud = await startCloud(dirB, true);
    await cloud.stop();
    cloud = undefined;
    const rootBefore = readFileSync(join(dirB, 'pki', 'root-ca.pem'), 'utf8');
    const r = await npmRun('restore', ['--from', backupDir, '--data-dir', dirB]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/restore refused: .* is not empty, nothing was written: .*table kmod-Modules/);
    expect(readFileSync(join(dirB, 'pki', 'root-ca.pem'), 'utf8')).toBe(rootBefore);
    expect(readFileSync(join(dirB, 'pki', 'root-ca.pem'), 'utf8')).not.toBe(readFileSync(join(backupDir, 'files', 'pki', 'root-ca.pem'), 'utf8'));
  }, 300_000);

  it('restores with --force: every table holds exactly the backed-up items', async () => {
    const r = await npmRun('restore', ['--from', backupDir, '--data-dir', dirB, '--force']);
    expect(r.code, r.err + r.out).toBe(0);
    // The restore's own read-back, right after writing: every table, every item, by count and hash.
    const reported = Object.fromEntries(
      [...r.out.matchAll(/^table {3}(\S+) +(\d+) of +(\d+) items {2}sha256 (\w+)$/gm)].map((m) => [m[1], [Number(m[2]), Number(m[3]), m[4]]]),
    );
    expect(reported).toEqual(Object.fromEntries(Object.entries(counts(before)).map(([name, n]) => [name, [n, n, 'matches']])));
    // Read back with the data dir's own DynamoDB Local and a plain Scan, before a start changes anything.
    const dynamo = await startDynamoDbLocal(join(dirB, 'dynamodb'));
    try {
      // Read later, by another process: the same items, but for those whose TTL has passed since
      // (a rate-limit window of a minute, say), which DynamoDB Local may have deleted by now.
      const after = await tablesAt(dynamo.endpoint);
      for (const name of TABLE_NAMES) {
        expect(
          after[name].filter((i) => !expired(i)),
          name,
        ).toEqual(before[name].filter((i) => !expired(i)));
        for (const i of after[name]) expect(before[name], name).toContain(i);
      }
      expect(counts(after)['kmod-Deployments']).toBe(2);
    } finally {
      await dynamo.stop();
    }
    expect(readFileSync(join(dirB, 'pki', 'root-ca.pem'), 'utf8')).toBe(readFileSync(join(backupDir, 'files', 'pki', 'root-ca.pem'), 'utf8'));
  }, 300_000);

  it('starts the restored cloud: the same deployments, and a new deployment of the version only the first cloud registered', async () => {
    cloud = await startCloud(dirB, false);
    const listed = await api(cloud, 'GET', '/api/v1/deployments', { token: cloud.tokens.Viewer });
    expect(listed.status).toBe(200);
    expect(listed.body.items).toEqual(deploymentsBefore);
    // The simulated machines came back with the data dir: Development's three run what the first cloud left.
    expect(Object.values(await versionsOn(cloud, 'dev'))).toEqual(['1.1.0', '1.1.0', '1.1.0']);
    const started = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.2.0', targetEnvironment: 'Development' },
    });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const d = await waitForDeployment(cloud, started.body.executionId);
    expect(d.status, JSON.stringify(d.failure)).toBe('Succeeded');
    expect(Object.values(await versionsOn(cloud, 'dev'))).toEqual(['1.2.0', '1.2.0', '1.2.0']);
  }, 300_000);

  // The audit trail restored with its chain heads verifies end to end (docs/adr/0032).
  it('the restored audit chain verifies', async () => {
    expect(cloud).toBeDefined();
    const r = await api(cloud!, 'GET', '/api/v1/audit/verify', { token: cloud!.tokens.Admin });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.verified).toBe(true);
    expect(r.body.events).toBeGreaterThan(0);
  }, 120_000);
});
