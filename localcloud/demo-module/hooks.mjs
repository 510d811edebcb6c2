// demo-kernel's lifecycle hooks (see docs/runbooks/node-agent.md, "Hooks"):
//   node hooks.mjs load|unload|healthCheck|smokeTest
// Idempotent, as the agent's crash recovery requires: load when running and unload when stopped
// both succeed.
import { spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const runDir = process.env.KMOD_RUN_DIR ?? 'run';
const pidFile = process.env.KMOD_PID_FILE ?? join(runDir, 'module.pid');
const portFile = join(runDir, 'port');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const readPid = () => (existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : undefined);
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function probe(path) {
  const port = readFileSync(portFile, 'utf8').trim();
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) });
  if (!r.ok) throw new Error(`${path} answered HTTP ${r.status}`);
  return r.text();
}

async function load() {
  const running = readPid();
  if (running && alive(running)) return console.log(`already running as pid ${running}`);
  rmSync(portFile, { force: true });
  const log = openSync(join(runDir, 'server.log'), 'a');
  const child = spawn(process.execPath, ['server.mjs'], { detached: true, stdio: ['ignore', log, log], env: process.env });
  child.unref();
  writeFileSync(pidFile, String(child.pid));
  for (let i = 0; i < 50; i++) {
    await sleep(100);
    if (existsSync(portFile)) return console.log(`started pid ${child.pid}: ${await probe('/healthz')}`);
  }
  throw new Error('the server did not start within 5 s');
}

async function unload() {
  const pid = readPid();
  if (pid && alive(pid)) {
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 50 && alive(pid); i++) await sleep(100);
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    console.log(`stopped pid ${pid}`);
  }
  rmSync(pidFile, { force: true });
  rmSync(portFile, { force: true });
}

const hooks = {
  load,
  unload,
  healthCheck: async () => console.log(await probe('/healthz')),
  smokeTest: async () => {
    for (let i = 0; i < 3; i++) await probe('/work?probe=1');
    console.log('3 of 3 probe requests answered 200');
  },
};
const hook = hooks[process.argv[2]];
if (!hook) {
  console.error(`unknown hook ${process.argv[2]}`);
  process.exit(2);
}
hook().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
