/** `npm start`: run the embedded local cloud until Ctrl-C. */
import { rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ArchiveBuild } from './dynamodbCds.ts';
import { launchDynamoDbLocal } from './dynamodbProcess.ts';
import { exposureWarning } from './net.ts';

// Milliseconds since this Node process began: its boot and the TypeScript loader.
const bootMs = performance.now();
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const args = new Set(process.argv.slice(2));
if (args.has('--help')) {
  console.log(
    'usage: npm start [-- --fresh]\n  --fresh   wipe .local/ (tables, fleet state, mailbox, keys) first\nenv: KMOD_START_TIMINGS=1 (print where the start-up went), PORT (API port, default 3000), HOST (default 127.0.0.1), LOG_LEVEL, KMOD_DATA_DIR (default .local),\n     KMOD_ROUTERS (environments with a local traffic router, default Staging,Production; none for none)',
  );
  process.exit(0);
}

// KMOD_DATA_DIR moves .local/ elsewhere (several clouds on one machine, tests of this CLI).
const dataDir = resolve(process.env.KMOD_DATA_DIR ?? join(ROOT, '.local'));
if (args.has('--fresh')) rmSync(dataDir, { recursive: true, force: true });
// DynamoDB Local's JVM takes seconds to boot: launched first, it boots while the rest of the local
// cloud (the AWS SDK, every handler) is imported.
// recordClasses: the first start records the classes the JVM loads, to dump a class-data sharing
// archive from once the cloud is up (below); the starts after it map the archive.
const dynamodb = await launchDynamoDbLocal(join(dataDir, 'dynamodb'), undefined, { recordClasses: true }).catch((e: Error) => {
  console.error(`local cloud failed to start: ${e.message}`);
  process.exit(1);
});
const importStarted = performance.now();
const { startLocalCloud } = await import('./cloud.ts');
const importMs = performance.now() - importStarted;
const cloud = await startLocalCloud({
  dataDir,
  dynamodb,
  apiPort: process.env.PORT ? Number(process.env.PORT) : 3000,
  host: process.env.HOST,
  log: (l) => console.log(`  ${l}`),
  // Written before /health turns healthy: a script that waits for /health can read it at once.
  cloudFile: join(dataDir, 'cloud.json'),
}).catch((e: Error) => {
  console.error(`local cloud failed to start: ${e.message}`);
  process.exit(1);
});
const file = join(dataDir, 'cloud.json');
if (process.env.KMOD_START_TIMINGS === '1') {
  console.log(`\nstart-up phases (ms; DynamoDB Local starts in parallel with what precedes "waiting for DynamoDB Local"):`);
  console.log(`  ${'Node boot and the TypeScript loader'.padEnd(44)} ${String(Math.round(bootMs)).padStart(6)}`);
  console.log(`  ${'importing the local cloud'.padEnd(44)} ${String(Math.round(importMs)).padStart(6)}`);
  for (const p of cloud.startupPhases) console.log(`  ${p.phase.padEnd(44)} ${String(p.ms).padStart(6)}`);
  console.log(`  ${'startLocalCloud in total'.padEnd(44)} ${String(cloud.startupMs).padStart(6)}`);
}
const nodes = cloud.fleet.nodes.size;
console.log(`
kmod-orchestrator local cloud is up (${(performance.now() / 1000).toFixed(1)} s)

  API          ${cloud.apiUrl}/api/v1   (health: ${cloud.apiUrl}/health)
  Console      ${cloud.consoleUrl}  (sign in as any dev user)
  Mailbox      ${cloud.mailboxUrl}
  AWS services ${cloud.servicesUrl}  (Step Functions, SNS, S3, JWKS)
  DynamoDB     ${cloud.dynamodbUrl}  (${dynamodb.syncsWrites ? 'every write synced to disk; apt-get install eatmydata for about 4× faster writes' : 'writes not fsynced: safe across crashes of the cloud, not of the machine; KMOD_DYNAMODB_FSYNC=1 syncs'})
  WebSocket    ${cloud.wsUrl}  (dial-out agents; operators' live events with ?token=)
  Routers      ${
    Object.entries(cloud.routers)
      .map(([e, u]) => `${e} ${u}`)
      .join('   ') || 'none (KMOD_ROUTERS=none)'
  }
  Fleet        ${nodes} simulated nodes
  Tokens       ${file}  (Admin, Deployer, Viewer, Approver)

Try:  TOKEN=$(node -p "require(process.argv[1]).tokens.Deployer" ${JSON.stringify(file)})
      curl -s ${cloud.apiUrl}/api/v1/clusters -H "authorization: Bearer $TOKEN"

Ctrl-C stops everything.`);
const exposed = exposureWarning(process.env.HOST);
if (exposed) console.log(`\n${exposed}`);

// The class archive is dumped a few seconds after the start (the functions' warm-up first), at
// the lowest CPU priority; stopping the cloud stops it (the next start records and dumps again).
let archiveBuild: ArchiveBuild | undefined;
const archiveTimer = dynamodb.buildClassArchive
  ? setTimeout(() => {
      archiveBuild = dynamodb.buildClassArchive?.((l) => {
        if (!stopping) console.log(`  ${l}`);
      });
    }, 3000)
  : undefined;

let stopping = false;
function stop(why: string) {
  if (stopping) return;
  stopping = true;
  clearTimeout(archiveTimer);
  archiveBuild?.cancel();
  console.log(`\nstopping (${why})…`);
  // The cancelled dump's clean-up (its temporary files, the lock) before the process ends.
  Promise.all([cloud.stop(), archiveBuild?.done]).then(
    () => process.exit(0),
    () => process.exit(1),
  );
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stop(signal));
// A program that runs this cloud as its child (npm run load) sets KMOD_STOP_WITH_STDIN=1 and keeps
// our stdin open: when it goes, however it goes (a signal it could not handle, SIGKILL, a crash),
// stdin ends and the cloud stops with it instead of running on with that program's settings
// (raised rate limits) — as DynamoDB Local's JVM stops when this process goes (dynamodbProcess.ts).
if (process.env.KMOD_STOP_WITH_STDIN === '1') {
  process.stdin.on('end', () => stop('the program that started it has gone'));
  process.stdin.on('error', () => stop('the program that started it has gone'));
  process.stdin.resume();
}
