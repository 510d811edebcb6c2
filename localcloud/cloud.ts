/**
 * The embedded local cloud: everything `npm start` and the integration tests run, on one
 * machine with Node.js and Java. Handlers reach every service through the ordinary AWS SDK
 * clients, pointed here by the standard AWS_ENDPOINT_URL_* variables.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { FUNCTIONS, STATE_MACHINES, functionArnKey, stateMachineArnKey, type FunctionId, type StateMachineId } from '../functions/catalog.ts';
import type { AgentKey } from '../functions/agent/protocol.ts';
import { CallMeter } from './meter.ts';
import { forgetClients, onClientCreated, type SdkClientLike } from '../functions/lib/aws.ts';
import { TABLES, type TableKey } from '../functions/lib/tables.ts';
import { splitPem } from '../functions/domain/signature.ts';
import { ensureTables } from './dynamodb.ts';
import { launchDynamoDbLocal, type LaunchedDynamo } from './dynamodbProcess.ts';
import { DEFAULT_FLEET, Fleet, type FleetSizes } from './fleet.ts';
import { parseAlarms } from '../functions/domain/alarms.ts';
import { DEV_CLIENT_ID, DEV_ISSUER, DEV_USERS, DevIssuer } from './identity.ts';
import { functionArn, LocalLambda, MAX_CONCURRENCY_ENV } from './lambda.ts';
import { LocalApiGateway } from './apigateway.ts';
import { LocalS3 } from './s3.ts';
import { LocalSns } from './sns.ts';
import { LocalStepFunctions, ServiceError, executionArnOf, stateMachineArn } from './stepfunctions.ts';
import { ExecutionStore } from './executionStore.ts';
import { LocalEventBus } from './eventBus.ts';
import { seedDemo } from './seed.ts';
import { fleetControl } from './fleetControl.ts';
import { identityControl } from './identityControl.ts';
import { nameItem } from '../functions/lib/directory.ts';
import { websocketControl } from './websocketControl.ts';
import { CONSOLE_PATH, consoleHandler, localConsoleConfig } from './console.ts';
import { LocalStreams } from './streams.ts';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import type { RunningDiscovery } from '../functions/lib/discovery/runner.ts';
import { ENVIRONMENTS, type Environment } from '../functions/domain/environments.ts';
import { LocalRouter } from './router.ts';
import { TtlSweeper } from './ttlSweep.ts';
import { resolveAuditRetention } from '../functions/domain/auditRetention.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ARTIFACT_BUCKET = 'kmod-artifacts';
/** The audit export's bucket (docs/adr/0033-audit-retention-and-export.md): audit/dt=YYYY-MM-DD/events.jsonl. */
export const AUDIT_EXPORT_BUCKET = 'kmod-audit-export';
export const APPROVER_TOPIC = 'kmod-approvers';
export const NOTIFICATION_TOPIC = 'kmod-notifications';
export const devEmail = (username: string) => `${username}@example.com`;

export interface LocalCloudOptions {
  /** Where data lives between runs (default .local/). */
  dataDir?: string;
  /** Wipe the data first. */
  fresh?: boolean;
  /** API port (0 = any free port). */
  apiPort?: number;
  host?: string;
  fleet?: Partial<FleetSizes>;
  /** Extra handler settings (shrunken waits and thresholds in tests). */
  env?: Record<string, string>;
  log?: (line: string) => void;
  /** Write the cloud.json contract here before /health turns healthy. */
  cloudFile?: string;
  /**
   * false: the API gateway runs no authorizer, as LocalStack's community edition (tests of the
   * functions verifying tokens themselves: set API_VERIFIES_TOKENS=true in env too).
   */
  gatewayRunsAuthorizer?: boolean;
  /**
   * Environments with a local traffic router (localcloud/router.ts); default KMOD_ROUTERS
   * (comma-separated, `none` for none) or Staging and Production.
   */
  routers?: Environment[];
  /** DynamoDB Local already launched on dataDir/dynamodb (npm start launches it before its imports). */
  dynamodb?: LaunchedDynamo;
}

export interface CloudFile {
  apiUrl: string;
  mailboxUrl: string;
  tokens: Record<keyof typeof DEV_USERS, string>;
  servicesUrl: string;
  dynamodbUrl: string;
  /** The WebSocket API (dial-out agents; operators' events later). */
  wsUrl: string;
  /** The local traffic routers, by environment (requests to an environment's workload go here). */
  routers: Partial<Record<Environment, string>>;
  /** The web console (docs/adr/0035-web-console.md). */
  consoleUrl: string;
}

export interface LocalCloud extends CloudFile {
  dataDir: string;
  sfn: LocalStepFunctions;
  s3: LocalS3;
  sns: LocalSns;
  fleet: Fleet;
  /** The local traffic routers, by environment. */
  localRouters: Map<Environment, LocalRouter>;
  issuer: DevIssuer;
  gateway: LocalApiGateway;
  lambda: LocalLambda;
  /** Billable calls per API route (and other units of work), as `/_local/meter` reports them. */
  meter: CallMeter;
  ddb: DynamoDBDocumentClient;
  /** The etcd reconciler, when KMOD_ETCD_ENDPOINTS is set. */
  discovery?: RunningDiscovery;
  /** The tables' change streams polled for the functions that consume them (localcloud/streams.ts). */
  streams: LocalStreams;
  /** DynamoDB's TTL deletions, which DynamoDB Local does not make (localcloud/ttlSweep.ts). */
  ttl: TtlSweeper;
  tableNames: Record<TableKey, string>;
  startupMs: number;
  /** Where the start-up went, phase by phase (`KMOD_START_TIMINGS=1 npm start` prints it). */
  startupPhases: StartupPhase[];
  stop(): Promise<void>;
}

/** One phase of the start-up: its name and how long it took (phases overlap where they run in parallel). */
export interface StartupPhase {
  phase: string;
  ms: number;
}

/** Records phases of the start-up; `run` times one step, `since` one that began earlier (in parallel). */
function phaseTimer() {
  const phases: StartupPhase[] = [];
  const record = (phase: string, t0: number) => phases.push({ phase, ms: Math.round(performance.now() - t0) });
  return {
    phases,
    record,
    async run<T>(phase: string, step: () => Promise<T> | T): Promise<T> {
      const t0 = performance.now();
      try {
        return await step();
      } finally {
        record(phase, t0);
      }
    },
  };
}

/** Replace ${Name} placeholders as Step Functions' DefinitionSubstitutions do. */
export function substitute(definition: string, values: Record<string, string>): string {
  return definition.replace(/\$\{([A-Za-z0-9_]+)\}/g, (whole, name: string) => {
    if (!(name in values)) throw new Error(`no substitution for ${whole}`);
    return values[name];
  });
}

/** A file-backed secret of `{ keys: [{ id, secret }] }`, created with one random key. */
function loadOrCreateKeyFile(file: string): AgentKey[] {
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify({ keys: [{ id: `k-${randomBytes(4).toString('hex')}`, secret: randomBytes(32).toString('base64') }] }), { mode: 0o600 });
  }
  return (JSON.parse(readFileSync(file, 'utf8')) as { keys: AgentKey[] }).keys;
}

export async function startLocalCloud(opts: LocalCloudOptions = {}): Promise<LocalCloud> {
  const started = Date.now();
  const timer = phaseTimer();
  const log = opts.log ?? (() => undefined);
  const dataDir = resolve(opts.dataDir ?? join(ROOT, '.local'));
  if (opts.fresh) rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  const cleanups: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    cleanups.length = 0;
  };
  try {
    // The JVM boots while everything below loads (npm start launches it even before its imports).
    const launched = opts.dynamodb ?? (await launchDynamoDbLocal(join(dataDir, 'dynamodb')));
    cleanups.unshift(launched.stop);
    launched.ready.then(
      () => timer.record('DynamoDB Local answering (since its launch, in parallel)', launched.launchedAt),
      () => undefined,
    );

    // Services endpoint: Step Functions (JSON), SNS (Query), S3 (REST), JWKS and the mailbox share
    // one port and are told apart by the request, like LocalStack's edge port.
    const lambda = new LocalLambda(ROOT);
    // Executions are kept in the data dir and resumed at the next start (ADR 0014); their ends go
    // to the product's EventBridge rules (the reconciler) as on AWS.
    const bus = new LocalEventBus(lambda, { log });
    const sfn = new LocalStepFunctions(lambda, {
      store: new ExecutionStore(join(dataDir, 'stepfunctions'), executionArnOf),
      onStatusChange: (event) => bus.put(event),
    });
    const s3 = new LocalS3(join(dataDir, 's3'));
    let servicesUrl = '';
    const sns = new LocalSns(join(dataDir, 'sns.json'), () => servicesUrl);
    const issuer = await timer.run('identity signing key', () => DevIssuer.load(join(dataDir, 'identity', 'signing-key.json')));
    const services: Server = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = Buffer.concat(chunks);
      const target = String(req.headers['x-amz-target'] ?? '');
      const path = (req.url ?? '/').split('?')[0];
      try {
        if (target.startsWith('AWSStepFunctions.')) {
          let out: unknown;
          try {
            out = await sfn.handle(target.slice('AWSStepFunctions.'.length), body.length ? (JSON.parse(body.toString()) as Record<string, unknown>) : {});
          } catch (e) {
            const err = e instanceof ServiceError ? e : new ServiceError('InternalFailure', (e as Error).message, 500);
            res.writeHead(err.status, { 'content-type': 'application/x-amz-json-1.0' });
            return void res.end(JSON.stringify({ __type: err.type, message: err.message }));
          }
          res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
          return void res.end(JSON.stringify(out));
        }
        if (path === '/.well-known/jwks.json') {
          res.writeHead(200, { 'content-type': 'application/json' });
          return void res.end(JSON.stringify(issuer.jwks));
        }
        if (path.startsWith('/_mailbox') || path.startsWith('/_sns/')) return sns.handleMailbox(req, res);
        if (req.method === 'POST' && path === '/' && String(req.headers['content-type'] ?? '').includes('application/x-www-form-urlencoded')) {
          return sns.handleQuery(new URLSearchParams(body.toString()), res);
        }
        return await s3.handle(req, res, body);
      } catch (e) {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end((e as Error).message);
      }
    });
    const host = opts.host ?? '127.0.0.1';
    await new Promise<void>((r) => services.listen(0, '127.0.0.1', r));
    const sa = services.address();
    servicesUrl = `http://127.0.0.1:${typeof sa === 'object' && sa ? sa.port : 0}`;
    cleanups.push(async () => {
      await sfn.suspendAll();
      services.closeAllConnections();
      await new Promise<void>((r) => services.close(() => r()));
    });

    // The local traffic routers: one reverse proxy per routed environment (docs/adr/0020-traffic-routers.md).
    const routerToken = randomBytes(24).toString('base64url');
    const localRouters = new Map<Environment, LocalRouter>();
    for (const environment of opts.routers ?? routedEnvironments()) {
      const router = new LocalRouter(environment, routerToken, join(dataDir, 'routers', `${environment}.json`));
      await router.listen(0, host);
      localRouters.set(environment, router);
      cleanups.push(() => router.close());
    }
    const routerUrls = Object.fromEntries([...localRouters].map(([e, r]) => [e, r.url]));

    const tableNames = Object.fromEntries(Object.entries(TABLES).map(([k, spec]) => [k, `kmod-${spec.id}`])) as Record<TableKey, string>;
    const agentKeysFile = join(dataDir, 'secrets', 'agent-keys.json');
    let agentKeys = loadOrCreateKeyFile(agentKeysFile);
    const approvalLinkKeysFile = join(dataDir, 'secrets', 'approval-link-keys.json');
    loadOrCreateKeyFile(approvalLinkKeysFile);
    const env: Record<string, string> = {
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      AWS_ENDPOINT_URL_DYNAMODB: launched.endpoint,
      AWS_ENDPOINT_URL_SFN: servicesUrl,
      AWS_ENDPOINT_URL_SNS: servicesUrl,
      AWS_ENDPOINT_URL_S3: servicesUrl,
      S3_FORCE_PATH_STYLE: 'true',
      ARTIFACT_BUCKET,
      AUDIT_EXPORT_BUCKET,
      APPROVER_TOPIC_ARN: sns.createTopic(APPROVER_TOPIC),
      NOTIFICATION_TOPIC_ARN: sns.createTopic(NOTIFICATION_TOPIC),
      APPROVAL_LINK_KEYS_FILE: approvalLinkKeysFile,
      APPROVERS: process.env.APPROVERS ?? JSON.stringify({ Staging: [DEV_USERS.Approver.sub], Production: [DEV_USERS.Approver.sub] }),
      PIPELINE_STATE_MACHINE_ARN: stateMachineArn('kmod-Pipeline'),
      ROLLBACK_STATE_MACHINE_ARN: stateMachineArn('kmod-Rollback'),
      JWT_ISSUER: DEV_ISSUER,
      JWT_JWKS_URI: `${servicesUrl}/.well-known/jwks.json`,
      JWT_CLIENT_IDS: DEV_CLIENT_ID,
      AGENT_KEYS_FILE: agentKeysFile,
      AGENT_ALLOWED_HOSTS: '127.0.0.1,localhost',
      TRAFFIC_ROUTERS: JSON.stringify(Object.fromEntries([...localRouters.keys()].map((e) => [e, 'local']))),
      LOCAL_ROUTER_URLS: JSON.stringify(routerUrls),
      LOCAL_ROUTER_TOKEN: routerToken,
      POWERTOOLS_TRACE_ENABLED: 'false',
      // CloudWatch EMF documents would only clutter the console here; /metrics serves the same counts.
      POWERTOOLS_METRICS_DISABLED: process.env.POWERTOOLS_METRICS_DISABLED ?? 'true',
      // Warnings and errors only: the console is for people. LOG_LEVEL=INFO shows every function's lines.
      POWERTOOLS_LOG_LEVEL: process.env.LOG_LEVEL ?? 'WARN',
      // Powertools keeps each invocation's log keys and metrics apart (localcloud/lambda.ts).
      ...MAX_CONCURRENCY_ENV,
      ...Object.fromEntries(Object.entries(TABLES).map(([k, spec]) => [spec.envVar, tableNames[k as TableKey]])),
      ...opts.env,
    };
    Object.assign(process.env, env);
    // A malformed alarm setting stops the start, as it fails `cdk synth` on AWS: found at the first deployment, it rolled back every environment.
    for (const environment of ENVIRONMENTS) parseAlarms(process.env.ALARMS, environment);
    // So does a malformed audit retention (AUDIT_RETENTION_DAYS[_<CATEGORY>]): otherwise every audited change would fail.
    resolveAuditRetention(process.env);
    // The handlers run in this process: clients made for an earlier cloud here would call its ports.
    forgetClients();
    // Every SDK client the handlers make counts its calls against the request it serves (/_local/meter).
    const meter = new CallMeter();
    const unhook = onClientCreated((client: SdkClientLike, service) => {
      const { fn, options } = meter.middleware(service);
      client.middlewareStack.add(fn as never, options as never);
    });
    cleanups.push(async () => unhook());

    const { pki, legacy, crlUrlOf } = await timer.run('dev PKI', async () => {
      const { crlUrlOf, loadOrCreatePki } = await import('./devPki.ts');
      return { ...(await loadOrCreatePki(join(dataDir, 'pki'))), crlUrlOf };
    });
    if (legacy) log('  the dev PKI predates code-signing certificates: replaced (the old one is in pki/legacy-*)');
    process.env.TRUSTED_ROOTS_PEM = opts.env?.TRUSTED_ROOTS_PEM ?? pki.rootCertPem;
    // The dev root's CRL is a configured list (must be readable), as well as the signer's distribution point.
    process.env.REVOCATION_LIST_URLS = opts.env?.REVOCATION_LIST_URLS ?? process.env.REVOCATION_LIST_URLS ?? crlUrlOf(join(dataDir, 'pki'));

    // The functions the start-up itself invokes (the seeding's API calls and their authorizer, the
    // subscription sync) and the traffic-router library load while DynamoDB Local boots; the rest
    // load once the cloud is healthy.
    const preloadStarted = performance.now();
    const preloaded = Promise.all([lambda.preload(['Authorizer', 'ApiModules', 'SyncSubscriptions']), import('../functions/lib/trafficRouter.ts')]).finally(
      () => timer.record("start-up's functions loaded (in parallel)", preloadStarted),
    );
    preloaded.catch(() => undefined);
    // The simulated agents listen (their state is on disk) while DynamoDB Local boots, too.
    const fleet = new Fleet(join(dataDir, 'fleet'), () => agentKeys, { 'demo-kernel': '1.0.0' }, splitPem(process.env.TRUSTED_ROOTS_PEM ?? ''));
    cleanups.push(() => fleet.stop());
    await timer.run('fleet agents listening', () => fleet.start({ ...DEFAULT_FLEET, ...opts.fleet }));
    const dynamo = await timer.run('waiting for DynamoDB Local', () => launched.ready);
    const dynamoClient = new DynamoDBClient({});
    const ddb = DynamoDBDocumentClient.from(dynamoClient, { marshallOptions: { removeUndefinedValues: true } });
    cleanups.push(async () => dynamoClient.destroy());
    // With existing data the tables were checked against these definitions at the last start: one ListTables.
    await timer.run('tables', () => ensureTables(dynamoClient, tableNames, join(dataDir, 'dynamodb', 'tables-checked')));
    await timer.run("waiting for the start-up's functions", () => preloaded);
    if (legacy) {
      const { resignLegacyModules } = await import('./pkiUpgrade.ts');
      for (const v of await resignLegacyModules(ddb, tableNames.modules, legacy, pki)) log(`  re-signed ${v} with the new dev signer`);
    }
    s3.createBucket(ARTIFACT_BUCKET);
    s3.createBucket(AUDIT_EXPORT_BUCKET);

    const substitutions: Record<string, string> = {};
    for (const id of Object.keys(FUNCTIONS) as FunctionId[]) substitutions[functionArnKey(id)] = functionArn(id);
    for (const id of Object.keys(STATE_MACHINES) as StateMachineId[]) substitutions[stateMachineArnKey(id)] = stateMachineArn(`kmod-${id}`);
    for (const [id, spec] of Object.entries(STATE_MACHINES)) {
      sfn.createStateMachine(`kmod-${id}`, substitute(readFileSync(join(ROOT, spec.file), 'utf8'), substitutions));
    }

    // The fleet's registration and the routers that follow it run beside the directory, the API and
    // the seeding below: they touch different tables. (Promise.all: a failure of either stops the start.)
    const fleetReady = (async () => {
      await timer.run('fleet registered', () => fleet.register(ddb, tableNames.nodes));
      await timer.run('routers synced', () => syncRouters([...localRouters.keys()]));
    })();
    fleetReady.catch(() => undefined);
    const discovery = await startEtcdDiscovery(log);
    if (discovery) cleanups.push(() => discovery.stop());
    cleanups.push(runSchedules(lambda, log));
    const rotateWatch = setInterval(() => {
      try {
        agentKeys = loadOrCreateKeyFile(agentKeysFile);
      } catch {
        /* keep the last good keys */
      }
    }, 5000);
    rotateWatch.unref();
    cleanups.push(async () => clearInterval(rotateWatch));

    const gateway = new LocalApiGateway(lambda, opts.gatewayRunsAuthorizer ?? true, undefined, meter);
    gateway.extras.set('/_local/mailbox', (_req, res) => {
      // The mailbox lives on the services port; a stable path on the API port points there.
      res.writeHead(302, { location: `${servicesUrl}/_mailbox` });
      res.end();
    });
    gateway.extras.set('/_local/fleet', fleetControl(fleet));
    gateway.extras.set('/_local/identity', identityControl(issuer));
    gateway.extras.set('/_local/websocket', websocketControl(gateway.websocket));
    gateway.extras.set('/_local/meter', meter.control());
    // The dev users are written while the API listens and the streams start; the subscription
    // sync and the seeding below need them.
    const devUsers = timer.run('dev users', () => registerDevUsers(ddb, tableNames.users));
    devUsers.catch(() => undefined);
    let consoleConfig: ReturnType<typeof localConsoleConfig> | undefined;
    gateway.extras.set(
      CONSOLE_PATH,
      consoleHandler(() => consoleConfig!),
    );
    const apiUrl = await gateway.listen(opts.apiPort ?? 3000, host);
    cleanups.push(() => gateway.close());
    process.env.PUBLIC_API_URL = opts.env?.PUBLIC_API_URL ?? process.env.KMOD_PUBLIC_API_URL ?? apiUrl;
    const wsUrl = gateway.wsUrl(apiUrl);
    consoleConfig = localConsoleConfig(apiUrl, wsUrl);
    // What enrolment answers dial-out agents, and where the handlers' management API client posts.
    process.env.AGENT_WS_URL = opts.env?.AGENT_WS_URL ?? wsUrl;
    process.env.WS_MANAGEMENT_ENDPOINT = `${apiUrl}${gateway.websocket.path}`;
    // The tables' change streams to the functions that consume them (operators' live events).
    const streams = new LocalStreams(lambda, dynamoClient, dynamo.endpoint, tableNames, {
      pollMs: Number(process.env.KMOD_STREAM_POLL_MS ?? 100),
      log,
    });
    await timer.run('streams', () => streams.start());
    cleanups.push(() => streams.stop());
    // Expired items go as DynamoDB's TTL removes them on AWS (DynamoDB Local never does).
    const sweepSeconds = Number(process.env.KMOD_TTL_SWEEP_SECONDS ?? 60);
    if (!(sweepSeconds > 0)) throw new Error(`KMOD_TTL_SWEEP_SECONDS must be a positive number of seconds, got "${process.env.KMOD_TTL_SWEEP_SECONDS}"`);
    const ttl = new TtlSweeper(dynamoClient, ddb, tableNames, { intervalMs: sweepSeconds * 1000, log });
    ttl.start();
    cleanups.push(() => ttl.stop());
    await devUsers;
    subscribeDevUsers(sns, env.APPROVER_TOPIC_ARN, env.NOTIFICATION_TOPIC_ARN, JSON.parse(env.APPROVERS) as Record<string, string[]>);
    // What the stack's custom resource does on every deploy: email subscriptions follow the approver
    // lists and the directory (a user an Admin created in an earlier run, a changed APPROVERS).
    const subscriptionsSynced = timer.run('email subscriptions synced (beside the seeding)', () =>
      lambda.invoke(functionArn('SyncSubscriptions'), {
        RequestType: 'Create',
        ServiceToken: functionArn('SyncSubscriptions'),
        StackId: `arn:aws:cloudformation:us-east-1:000000000000:stack/local/${randomBytes(8).toString('hex')}`,
        RequestId: randomBytes(8).toString('hex'),
        LogicalResourceId: 'EmailSubscriptions',
        ResourceType: 'Custom::EmailSubscriptions',
        ResourceProperties: { Approvers: env.APPROVERS },
      }),
    );

    subscriptionsSynced.catch(() => undefined);
    const tokens = Object.fromEntries(
      await Promise.all(Object.entries(DEV_USERS).map(async ([role, user]) => [role, await issuer.mint(user)])),
    ) as CloudFile['tokens'];
    await Promise.all([
      subscriptionsSynced,
      timer.run('demo seeded (beside the subscriptions)', () => seedDemo({ apiUrl, adminToken: tokens.Admin, pki, log })),
      timer.run('waiting for the fleet and routers', () => fleetReady),
    ]);
    // Everything a task needs is up: executions the last run left RUNNING carry on.
    const resumed = sfn.resume();
    if (resumed.resumed.length) log(`resumed ${resumed.resumed.length} execution(s) left running by the last run`);
    if (resumed.failed.length) log(`could not resume ${resumed.failed.length} execution(s); they ended FAILED: ${resumed.failed.join(', ')}`);

    const cloud: LocalCloud = {
      apiUrl,
      mailboxUrl: `${servicesUrl}/_mailbox`,
      servicesUrl,
      dynamodbUrl: dynamo.endpoint,
      wsUrl,
      routers: routerUrls,
      consoleUrl: `${apiUrl}${CONSOLE_PATH}/`,
      localRouters,
      tokens,
      dataDir,
      sfn,
      s3,
      sns,
      fleet,
      issuer,
      gateway,
      lambda,
      meter,
      ddb,
      discovery,
      streams,
      ttl,
      tableNames,
      startupMs: Date.now() - started,
      startupPhases: timer.phases,
      stop,
    };
    if (opts.cloudFile) writeCloudFile(cloud, opts.cloudFile);
    gateway.ready = true;
    cloud.startupMs = Date.now() - started;
    // The functions the start-up did not invoke load now, off the start's path (a warm pool): the
    // first deployment does not pay their imports, and a module that fails to load is reported.
    const warming = setTimeout(() => void lambda.load().catch((e: Error) => log(`a function failed to load: ${e.message}`)), 0);
    cleanups.push(async () => clearTimeout(warming));
    // Likewise the state machines' schema checks (each takes 0.1–0.7 s of CPU), one per turn of the
    // loop, so the first deployment's StartExecution does not pay them.
    const checking = sfn.checkDefinitionsInBackground((machine, e) => log(`state machine ${machine} is invalid: ${e.message}`));
    cleanups.push(async () => checking.cancel());
    return cloud;
  } catch (e) {
    await stop();
    throw e;
  }
}

/** KMOD_ROUTERS: the environments with a local router (default Staging and Production; `none`: none). */
function routedEnvironments(): Environment[] {
  const raw = process.env.KMOD_ROUTERS ?? 'Staging,Production';
  if (raw.trim() === 'none') return [];
  const names = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const n of names) if (!(ENVIRONMENTS as readonly string[]).includes(n)) throw new Error(`KMOD_ROUTERS names ${n}, which is not an environment`);
  return names as Environment[];
}

/**
 * Each router routes what the record says at start: the live colour (Blue-Green), or every node
 * (a canary split left by a stopped run is not resumed: the canary's next wave sets it again).
 */
async function syncRouters(environments: Environment[]): Promise<void> {
  // Imported here: handler libraries read their settings when first loaded (after the env is set).
  const { trafficRouter, usesColours } = await import('../functions/lib/trafficRouter.ts');
  for (const e of environments) {
    const router = trafficRouter(e);
    if (usesColours(e)) await router.switchTo(e, await router.activeColour(e), 'system:local-cloud');
    else await router.setCanaryWeight(e, [], 100, 'system:local-cloud');
  }
}

/**
 * Nodes registered in etcd join the local fleet's environments (docs/adr/0009-discovery-sources.md):
 * the same reconciler the scheduled Lambda runs on AWS, but following a watch, so they show at once.
 */
async function startEtcdDiscovery(log: (line: string) => void): Promise<RunningDiscovery | undefined> {
  const endpoints = process.env.KMOD_ETCD_ENDPOINTS;
  if (!endpoints) return undefined;
  // Imported here, not at the top: handler libraries read settings (e.g. SECRETS_CACHE_SECONDS)
  // when first loaded, which must happen after the cloud has set the handlers' environment.
  const { DEFAULT_ETCD_PREFIX, etcdSourceFrom } = await import('../functions/lib/discovery/etcd.ts');
  const { watchDiscovery } = await import('../functions/lib/discovery/runner.ts');
  const prefix = process.env.KMOD_ETCD_PREFIX || DEFAULT_ETCD_PREFIX;
  const resyncSeconds = Number(process.env.KMOD_ETCD_RESYNC_SECONDS ?? 30);
  const running = await watchDiscovery(etcdSourceFrom(endpoints, prefix), {}, { resyncMs: resyncSeconds * 1000, log });
  log(`  etcd discovery: ${endpoints} under ${prefix}`);
  return running;
}

/**
 * The catalog's scheduled functions on their schedule, as EventBridge runs them on AWS (node-key
 * rotation hourly). Discovery is left out: locally it follows etcd with a watch instead.
 */
function runSchedules(lambda: LocalLambda, log: (line: string) => void): () => Promise<void> {
  const timers = (Object.entries(FUNCTIONS) as [FunctionId, (typeof FUNCTIONS)[FunctionId]][])
    .filter(([, spec]) => 'scheduleMinutes' in spec && !('discoversNodes' in spec))
    .map(([id, spec]) =>
      setInterval(
        () => void lambda.invoke(functionArn(id), {}).catch((e: Error) => log(`  scheduled ${id} failed: ${e.message}`)),
        (spec as { scheduleMinutes: number }).scheduleMinutes * 60_000,
      ).unref(),
    );
  return async () => timers.forEach(clearInterval);
}

/** The dev users as directory entries (once: an Admin's later changes, e.g. disabling, stay). */
async function registerDevUsers(ddb: DynamoDBDocumentClient, table: string): Promise<void> {
  const putOnce = async (Item: Record<string, unknown>) => {
    try {
      await ddb.send(new PutCommand({ TableName: table, Item, ConditionExpression: 'attribute_not_exists(userId)' }));
    } catch (e) {
      if ((e as { name?: string }).name !== 'ConditionalCheckFailedException') throw e;
    }
  };
  // Independent conditional puts (a no-op each with existing data): all at once.
  const puts: Promise<void>[] = [];
  for (const user of Object.values(DEV_USERS)) {
    const entry = {
      userId: user.sub,
      kind: 'user',
      username: user.username,
      email: devEmail(user.username),
      roles: user.groups,
      enabled: true,
      createdAt: new Date().toISOString(),
      createdBy: 'system:local-cloud',
    };
    puts.push(putOnce(entry), putOnce(nameItem(entry)));
  }
  await Promise.all(puts);
}

/**
 * Dev users read their email in the mailbox: listed approvers get their personal approval requests
 * (filtered on `approver`), everyone gets the outcomes that concern them (filtered on `userId`).
 * Confirmed at once, without confirmation mail, as if they had followed the link: these are the
 * subscriptions the sync would make for them. Anyone else confirms from the mailbox, as on AWS.
 */
function subscribeDevUsers(sns: LocalSns, approverTopic: string, notificationTopic: string, approvers: Record<string, string[]>): void {
  const listed = new Set(Object.values(approvers).flat());
  for (const user of Object.values(DEV_USERS)) {
    const email = devEmail(user.username);
    const confirm = (sub: { topicArn: string; token: string; confirmed: boolean }) => {
      if (!sub.confirmed) sns.confirm(sub.topicArn, sub.token);
    };
    confirm(sns.subscribe(notificationTopic, 'email', email, { userId: [user.sub] }, { silent: true }));
    if (listed.has(user.sub)) confirm(sns.subscribe(approverTopic, 'email', email, { approver: [user.sub] }, { silent: true }));
  }
}

export function writeCloudFile(cloud: LocalCloud, file = join(ROOT, '.local', 'cloud.json')): string {
  const out: CloudFile = {
    apiUrl: cloud.apiUrl,
    mailboxUrl: cloud.mailboxUrl,
    tokens: cloud.tokens,
    servicesUrl: cloud.servicesUrl,
    dynamodbUrl: cloud.dynamodbUrl,
    wsUrl: cloud.wsUrl,
    routers: cloud.routers,
    consoleUrl: cloud.consoleUrl,
  };
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`, { mode: 0o600 });
  return file;
}
