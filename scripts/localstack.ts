/**
 * The LocalStack path, for machines with Docker (docs/runbooks/localstack.md):
 *
 *   npm run localstack:up       LocalStack from compose.yaml (pinned community image), waits until healthy
 *   npm run localstack:deploy   the CDK app into it with cdklocal, configured for what LocalStack's
 *                               community edition emulates (see localStackContext)
 *   npm run test:localstack     enrols reference agents on this host, then runs the end-to-end suite
 *                               and the smoke check against the deployed API
 *   npm run localstack:down     stops LocalStack and drops its state
 *   npm run localstack:synth    the dry run, no Docker needed: the template cdklocal would deploy
 *
 * Everything it keeps (dev PKI, issuer key, outputs, agent data) lives in .localstack/.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DEV_CLIENT_ID, DEV_ISSUER, DEV_USERS, DevIssuer } from '../localcloud/identity.ts';

const run = promisify(execFile);
export const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');
export const STATE_DIR = join(ROOT, '.localstack');
/** LocalStack's edge port on this host. */
export const EDGE = process.env.LOCALSTACK_ENDPOINT ?? 'http://127.0.0.1:4566';
const ISSUER_BUCKET = 'kmod-localstack-issuer';
const JWKS_KEY = '.well-known/jwks.json';
const STACK = 'KmodOrchestrator';
const ACCOUNT = '000000000000';
const REGION = 'us-east-1';

/**
 * The CDK context for LocalStack's community edition, and why:
 * - Cognito is not emulated: trust the local dev issuer instead, its JWKS served from LocalStack's
 *   own S3 (Lambda containers resolve *.localhost.localstack.cloud to LocalStack);
 * - API Gateway stores Lambda authorizers but never runs them: the API functions verify the token;
 * - agents run on this host, reached from Lambda containers as host.docker.internal.
 */
export function localStackContext(dir = STATE_DIR): Record<string, string> {
  return {
    trustedRootsPemFile: join(dir, 'pki', 'root-ca.pem'),
    jwtIssuer: DEV_ISSUER,
    jwtJwksUri: `http://s3.localhost.localstack.cloud:4566/${ISSUER_BUCKET}/${JWKS_KEY}`,
    jwtClientIds: DEV_CLIENT_ID,
    verifyTokensInFunctions: 'true',
    agentAllowedHosts: 'host.docker.internal',
    approvers: JSON.stringify({ Staging: [DEV_USERS.Approver.sub], Production: [DEV_USERS.Approver.sub] }),
  };
}

const contextArgs = (context: Record<string, string>) => Object.entries(context).flatMap(([k, v]) => ['-c', `${k}=${v}`]);

/** Why Docker cannot run LocalStack here, in words a person can act on; undefined when it can. */
export async function dockerProblem(docker = process.env.KMOD_DOCKER ?? 'docker'): Promise<string | undefined> {
  const without = 'Without Docker, use the embedded local cloud instead: npm start, npm test.';
  try {
    await run(docker, ['info', '--format', '{{.ServerVersion}}'], { timeout: 20_000 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT')
      return `Docker is not installed (no "${docker}" command on the PATH). The LocalStack path runs LocalStack in a container: install Docker Engine or Docker Desktop. ${without}`;
    const why = (err.stderr ?? err.message).trim().split('\n').find(Boolean) ?? 'no answer';
    return `Docker is installed, but no Docker engine answers (${why}). Start it (systemctl start docker, or Docker Desktop), or point DOCKER_HOST at one. ${without}`;
  }
  try {
    await run(docker, ['compose', 'version'], { timeout: 20_000 });
  } catch {
    return `Docker Compose v2 is missing ("${docker} compose" does not run): install the docker-compose-plugin. ${without}`;
  }
  return undefined;
}

/** Docker or nothing: the message and exit status 1 at once. */
async function requireDocker(): Promise<void> {
  const problem = await dockerProblem();
  if (!problem) return;
  console.error(`localstack: ${problem}`);
  process.exit(1);
}

async function requireLocalStack(): Promise<void> {
  try {
    const r = await fetch(`${EDGE}/_localstack/health`, { signal: AbortSignal.timeout(5000) });
    if (r.ok) return;
    throw new Error(`HTTP ${r.status}`);
  } catch (e) {
    console.error(`localstack: LocalStack does not answer at ${EDGE} (${(e as Error).message}): npm run localstack:up first.`);
    process.exit(1);
  }
}

function spawnInherit(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<number> {
  return new Promise((res) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: 'inherit', env: { ...process.env, ...env } });
    child.on('exit', (code) => res(code ?? 1));
    child.on('error', (e) => {
      console.error(`localstack: ${cmd}: ${e.message}`);
      res(1);
    });
  });
}

/** cdklocal (aws-cdk-local) with the LocalStack context, on the Node.js that runs this script. */
function cdklocal(args: string[]): Promise<number> {
  const bin = join(ROOT, 'node_modules', 'aws-cdk-local', 'bin', 'cdklocal');
  return spawnInherit(process.execPath, [bin, ...args, ...contextArgs(localStackContext()), '-o', 'cdk.out.localstack'], {
    CDK_DEFAULT_ACCOUNT: ACCOUNT,
    CDK_DEFAULT_REGION: REGION,
    AWS_REGION: REGION,
  });
}

/** The dev PKI the stack trusts and the issuer key whose tokens it accepts, made once and kept. */
async function prepareState(): Promise<DevIssuer> {
  // Loaded here, not at the top: without Docker the scripts answer at once, before any heavy import.
  const { loadOrCreatePki } = await import('../localcloud/devPki.ts');
  await loadOrCreatePki(join(STATE_DIR, 'pki'));
  return DevIssuer.load(join(STATE_DIR, 'identity', 'signing-key.json'));
}

/** The issuer's public keys, where the functions fetch them (LocalStack S3 keeps no access rules by default). */
async function publishJwks(issuer: DevIssuer): Promise<void> {
  const { CreateBucketCommand, HeadBucketCommand, PutObjectCommand, S3Client } = await import('@aws-sdk/client-s3');
  const s3 = new S3Client({ endpoint: EDGE, region: REGION, forcePathStyle: true, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  try {
    await s3.send(new HeadBucketCommand({ Bucket: ISSUER_BUCKET })).catch(() => s3.send(new CreateBucketCommand({ Bucket: ISSUER_BUCKET })));
    await s3.send(new PutObjectCommand({ Bucket: ISSUER_BUCKET, Key: JWKS_KEY, Body: JSON.stringify(issuer.jwks), ContentType: 'application/json' }));
  } finally {
    s3.destroy();
  }
}

export interface DeployedTarget {
  apiUrl: string;
  restApiId: string;
  issuerKeyFile: string;
  signingPki: string;
}

/** The API's URL from this host: by name where localhost.localstack.cloud resolves, else by LocalStack's path form. */
async function apiUrlFor(restApiId: string): Promise<string> {
  const byName = await lookup('localhost.localstack.cloud').then(
    () => true,
    () => false,
  );
  return byName ? `http://${restApiId}.execute-api.localhost.localstack.cloud:4566/v1` : `${EDGE}/_aws/execute-api/${restApiId}/v1`;
}

async function deploy(): Promise<number> {
  await requireDocker();
  await requireLocalStack();
  const issuer = await prepareState();
  await publishJwks(issuer);
  const env = `aws://${ACCOUNT}/${REGION}`;
  if ((await cdklocal(['bootstrap', env])) !== 0) return 1;
  const outputsFile = join(STATE_DIR, 'outputs.json');
  if ((await cdklocal(['deploy', STACK, '--require-approval', 'never', '--outputs-file', outputsFile])) !== 0) return 1;
  const outputs = (JSON.parse(readFileSync(outputsFile, 'utf8')) as Record<string, Record<string, string>>)[STACK];
  const target: DeployedTarget = {
    apiUrl: await apiUrlFor(outputs.RestApiId),
    restApiId: outputs.RestApiId,
    issuerKeyFile: join(STATE_DIR, 'identity', 'signing-key.json'),
    signingPki: join(STATE_DIR, 'pki'),
  };
  writeFileSync(join(STATE_DIR, 'target.json'), `${JSON.stringify(target, null, 2)}\n`);
  console.log(
    `\nkmod-orchestrator on LocalStack: ${target.apiUrl}\n  smoke check: npm run smoke -- --api ${target.apiUrl} --issuer-key ${target.issuerKeyFile}`,
  );
  return 0;
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer().once('error', rej);
    s.listen(0, '0.0.0.0', () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

/** Agents per environment for the suite: a Direct, a Rolling and a blue-green pair (enrolment alternates colours). */
export const TEST_FLEET: Record<string, number> = { Development: 2, QA: 2, Staging: 2 };

async function adminCall(target: DeployedTarget, method: string, path: string, body?: unknown): Promise<{ status: number; body: { token?: string } }> {
  const token = await (await DevIssuer.load(target.issuerKeyFile)).mint(DEV_USERS.Admin, { ttlSeconds: 600 });
  const r = await fetch(`${target.apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? (JSON.parse(text) as { token?: string }) : {} };
}

/** Decommission what earlier runs enrolled: their hosts are gone, and Unreachable nodes would fail every deployment. */
async function decommissionAgents(target: DeployedTarget, agentsDir: string): Promise<void> {
  if (!existsSync(agentsDir)) return;
  for (const dir of readdirSync(agentsDir)) {
    const file = join(agentsDir, dir, 'credentials.json');
    if (!existsSync(file)) continue;
    const { nodeId } = JSON.parse(readFileSync(file, 'utf8')) as { nodeId: string };
    await adminCall(target, 'DELETE', `/api/v1/nodes/${encodeURIComponent(nodeId)}`).catch(() => undefined);
  }
  rmSync(agentsDir, { recursive: true, force: true });
}

async function startAgents(target: DeployedTarget, agentsDir: string): Promise<ChildProcess[]> {
  const agents: ChildProcess[] = [];
  for (const [environment, count] of Object.entries(TEST_FLEET)) {
    const created = await adminCall(target, 'POST', '/api/v1/enrolment-tokens', { environment, maxUses: count });
    if (created.status !== 201) throw new Error(`enrolment token for ${environment}: HTTP ${created.status} ${JSON.stringify(created.body)}`);
    for (let i = 1; i <= count; i++) {
      const port = await freePort();
      const dataDir = join(agentsDir, `${environment.toLowerCase()}-${i}`);
      mkdirSync(dataDir, { recursive: true });
      const args = ['--import', 'tsx', join(ROOT, 'scripts', 'agent.ts'), '--api', target.apiUrl, '--enrol', String(created.body.token)];
      args.push('--data-dir', dataDir, '--host', '0.0.0.0', '--port', String(port), '--advertise-url', `http://host.docker.internal:${port}`);
      args.push('--heartbeat-seconds', '5');
      const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
      agents.push(child);
      // Enrolled (credentials written) before the next one asks for a colour.
      for (let t = 0; t < 120 && !existsSync(join(dataDir, 'credentials.json')); t++) await new Promise((r) => setTimeout(r, 500));
      if (!existsSync(join(dataDir, 'credentials.json'))) throw new Error(`the agent in ${dataDir} did not enrol within a minute`);
    }
  }
  return agents;
}

async function test(): Promise<number> {
  await requireDocker();
  await requireLocalStack();
  const file = join(STATE_DIR, 'target.json');
  if (!existsSync(file)) {
    console.error('localstack: nothing deployed yet: npm run localstack:deploy first.');
    return 1;
  }
  const target = JSON.parse(readFileSync(file, 'utf8')) as DeployedTarget;
  const agentsDir = join(STATE_DIR, 'agents');
  await decommissionAgents(target, agentsDir);
  const agents = await startAgents(target, agentsDir);
  try {
    const env = {
      KMOD_TARGET_URL: target.apiUrl,
      KMOD_TARGET_ISSUER_KEY_FILE: target.issuerKeyFile,
      KMOD_TARGET_SIGNING_PKI: target.signingPki,
      KMOD_TARGET_TIMEOUT_SECONDS: process.env.KMOD_TARGET_TIMEOUT_SECONDS ?? '600',
    };
    const suite = await spawnInherit(process.execPath, [join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/e2e/deployments.test.ts'], env);
    const smoke = await spawnInherit(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'smoke.ts'), '--role', 'Admin'], env);
    return suite || smoke;
  } finally {
    for (const a of agents) a.kill('SIGTERM');
    await decommissionAgents(target, agentsDir);
  }
}

const COMMANDS: Record<string, () => Promise<number>> = {
  up: async () => {
    await requireDocker();
    mkdirSync(STATE_DIR, { recursive: true });
    return spawnInherit(process.env.KMOD_DOCKER ?? 'docker', ['compose', 'up', '-d', '--wait']);
  },
  deploy,
  test,
  down: async () => {
    await requireDocker();
    return spawnInherit(process.env.KMOD_DOCKER ?? 'docker', ['compose', 'down', '--volumes']);
  },
  // The dry run: no Docker, no LocalStack; the keys are made so the context points at real files.
  synth: async () => {
    await prepareState();
    return cdklocal(['synth', '--quiet', STACK]);
  },
};

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const command = COMMANDS[process.argv[2] ?? ''];
  if (!command) {
    console.error(`usage: tsx scripts/localstack.ts ${Object.keys(COMMANDS).join('|')}`);
    process.exit(2);
  }
  process.exitCode = await command();
}
