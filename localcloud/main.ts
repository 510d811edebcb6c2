/** `npm start`: run the embedded local cloud until Ctrl-C. */
import { join } from 'node:path';
import { ROOT, startLocalCloud } from './cloud.ts';

const args = new Set(process.argv.slice(2));
if (args.has('--help')) {
  console.log(
    'usage: npm start [-- --fresh]\n  --fresh   wipe .local/ (tables, fleet state, mailbox, keys) first\nenv: PORT (API port, default 3000), HOST (default 127.0.0.1), LOG_LEVEL, KMOD_DATA_DIR (default .local),\n     KMOD_ROUTERS (environments with a local traffic router, default Staging,Production; none for none)',
  );
  process.exit(0);
}

// KMOD_DATA_DIR moves .local/ elsewhere (several clouds on one machine, tests of this CLI).
const dataDir = process.env.KMOD_DATA_DIR ?? join(ROOT, '.local');
const cloud = await startLocalCloud({
  dataDir,
  fresh: args.has('--fresh'),
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
const nodes = cloud.fleet.nodes.size;
console.log(`
kmod-orchestrator local cloud is up (${(cloud.startupMs / 1000).toFixed(1)} s)

  API          ${cloud.apiUrl}/api/v1   (health: ${cloud.apiUrl}/health)
  Console      ${cloud.consoleUrl}  (sign in as any dev user)
  Mailbox      ${cloud.mailboxUrl}
  AWS services ${cloud.servicesUrl}  (Step Functions, SNS, S3, JWKS)
  DynamoDB     ${cloud.dynamodbUrl}
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

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping…');
    cloud.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
