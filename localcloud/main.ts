/** `npm start`: run the embedded local cloud until Ctrl-C. */
import { startLocalCloud, writeCloudFile } from './cloud.ts';

const args = new Set(process.argv.slice(2));
if (args.has('--help')) {
  console.log('usage: npm start [-- --fresh]\n  --fresh   wipe .local/ (tables, fleet state, mailbox, keys) first\nenv: PORT (API port, default 3000), HOST (default 127.0.0.1), LOG_LEVEL');
  process.exit(0);
}

const cloud = await startLocalCloud({
  fresh: args.has('--fresh'),
  apiPort: process.env.PORT ? Number(process.env.PORT) : 3000,
  host: process.env.HOST,
  log: (l) => console.log(`  ${l}`),
}).catch((e: Error) => {
  console.error(`local cloud failed to start: ${e.message}`);
  process.exit(1);
});
const file = writeCloudFile(cloud);
const nodes = cloud.fleet.nodes.size;
console.log(`
kmod-orchestrator local cloud is up (${(cloud.startupMs / 1000).toFixed(1)} s)

  API          ${cloud.apiUrl}/api/v1   (health: ${cloud.apiUrl}/health)
  Mailbox      ${cloud.mailboxUrl}
  AWS services ${cloud.servicesUrl}  (Step Functions, SNS, S3, JWKS)
  DynamoDB     ${cloud.dynamodbUrl}
  Fleet        ${nodes} simulated nodes
  Tokens       ${file}  (Admin, Deployer, Viewer, Approver)

Try:  TOKEN=$(node -p "require('./.local/cloud.json').tokens.Deployer")
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
