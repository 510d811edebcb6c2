/**
 * Class-data sharing (AppCDS) for DynamoDB Local's JVM (docs/adr/0039-dynamodb-local-class-data-sharing.md):
 * the JVM maps the 7,000-odd classes DynamoDB Local loads at start from an archive instead of
 * reading, verifying and linking them from ~100 jars, which cut its time to a first answer to about
 * a third here.
 *
 * - A static archive (`java -Xshare:dump`) needs a class path of jar files only: DynamoDBLocal.jar's
 *   manifest puts its own directory (`.`) on the class path, which the JVM refuses to archive, so
 *   the JVM runs from a copy of that jar without the manifest's Class-Path, with the libraries
 *   listed on `-cp`, and the main class named.
 * - The list of classes is recorded by a normal start (`-XX:DumpLoadedClassList`, written as the
 *   classes load, so a JVM stopped by a signal leaves it complete); the archive is dumped from it
 *   afterwards, off the start's path, and renamed into place only once complete.
 * - The archive's name carries a fingerprint of the java binary and of every jar (path, size,
 *   modification time); the JVM checks the same itself and, with `-Xshare:auto`, runs without the
 *   archive when it does not match or is unreadable, so a stale or corrupt archive costs the
 *   start its speed, never the start.
 *
 * Node built-ins only: `npm start` calls this before it imports the rest of the local cloud.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { crc32, inflateRawSync } from 'node:zlib';

export const DYNAMODB_LOCAL_MAIN = 'software.amazon.dynamodb.services.local.main.ServerRunner';

export interface CdsLayout {
  /** The cache directory (node_modules/.cache/kmod-dynamodb-local). */
  dir: string;
  /** DynamoDBLocal.jar without its manifest's Class-Path. */
  jar: string;
  /** The class path: `jar`, then every jar of DynamoDBLocal_lib. */
  classPath: string;
  /** The class list a start records when there is no archive yet. */
  classList: string;
  /** The archive for the current java and jars (it may not exist). */
  archive: string;
}

/** The `java` that the launcher's shell will run (the first on PATH), resolved through its links. */
export function javaBinary(env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const d of (env.PATH ?? '').split(delimiter)) {
    if (!d) continue;
    const p = join(d, 'java');
    try {
      if (statSync(p).isFile()) return realpathSync(p);
    } catch {
      /* not here */
    }
  }
  return undefined;
}

function fingerprint(files: string[]): string {
  const h = createHash('sha256');
  for (const f of files) {
    const s = statSync(f);
    h.update(`${f}\0${s.size}\0${s.mtimeMs}\n`);
  }
  return h.digest('hex').slice(0, 16);
}

/**
 * Where the archive and its inputs live for the DynamoDB Local in `installDir`, or undefined when
 * class-data sharing is off (KMOD_DYNAMODB_CDS=0) or there is no java on PATH.
 */
export function cdsLayout(installDir: string, cacheDir: string, env: NodeJS.ProcessEnv = process.env): CdsLayout | undefined {
  if (env.KMOD_DYNAMODB_CDS === '0') return undefined;
  const java = javaBinary(env);
  if (!java) return undefined;
  const libDir = join(installDir, 'DynamoDBLocal_lib');
  let libs: string[];
  try {
    libs = readdirSync(libDir)
      .filter((f) => f.endsWith('.jar'))
      .sort()
      .map((f) => join(libDir, f));
  } catch {
    return undefined;
  }
  const jar = join(cacheDir, 'DynamoDBLocal.jar');
  const classPath = [jar, ...libs].join(delimiter);
  const archive = existsSync(jar) ? join(cacheDir, `dynamodb-local-${fingerprint([java, jar, ...libs])}.jsa`) : join(cacheDir, 'none.jsa');
  return { dir: cacheDir, jar, classPath, classList: join(cacheDir, 'classes.lst'), archive };
}

/** The JVM's arguments before DynamoDB Local's own: with the archive where there is one. */
export function classPathArgs(installDir: string, layout: CdsLayout | undefined, recordClasses: boolean): { args: string[]; archive: boolean } {
  if (layout && existsSync(layout.archive)) {
    return { args: [`-XX:SharedArchiveFile=${layout.archive}`, '-Xshare:auto', '-cp', layout.classPath, DYNAMODB_LOCAL_MAIN], archive: true };
  }
  const record = layout && recordClasses ? [`-XX:DumpLoadedClassList=${layout.classList}`] : [];
  if (layout && recordClasses) mkdirSync(layout.dir, { recursive: true });
  return { args: [...record, '-jar', join(installDir, 'DynamoDBLocal.jar')], archive: false };
}

/** A manifest without its Class-Path attribute (and the attribute's continuation lines). */
export function withoutClassPath(manifest: string): string {
  const out: string[] = [];
  let skipping = false;
  for (const line of manifest.split(/(?<=\n)/)) {
    if (/^Class-Path:/i.test(line)) skipping = true;
    else if (!line.startsWith(' ')) skipping = false;
    if (!skipping) out.push(line);
  }
  return out.join('');
}

/**
 * A copy of the jar (zip) at `from` whose META-INF/MANIFEST.MF has no Class-Path: every other
 * entry is copied byte for byte. Throws on what it does not handle (zip64, a jar without a manifest).
 */
export function jarWithoutClassPath(from: Buffer): Buffer {
  let eocd = -1;
  for (let i = from.length - 22; i >= Math.max(0, from.length - 22 - 65_535); i--) {
    if (from.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip file');
  const count = from.readUInt16LE(eocd + 10);
  const cdOffset = from.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdOffset === 0xffffffff) throw new Error('zip64 is not handled');
  const entries: { name: string; local: number; central: Buffer }[] = [];
  for (let p = cdOffset, i = 0; i < count; i++) {
    if (from.readUInt32LE(p) !== 0x02014b50) throw new Error('bad central directory');
    const len = 46 + from.readUInt16LE(p + 28) + from.readUInt16LE(p + 30) + from.readUInt16LE(p + 32);
    entries.push({
      name: from.toString('utf8', p + 46, p + 46 + from.readUInt16LE(p + 28)),
      local: from.readUInt32LE(p + 42),
      central: Buffer.from(from.subarray(p, p + len)),
    });
    p += len;
  }
  const byOffset = [...entries].sort((a, b) => a.local - b.local);
  const span = new Map(byOffset.map((e, i) => [e, [e.local, i + 1 < byOffset.length ? byOffset[i + 1].local : cdOffset] as const]));
  const manifest = entries.find((e) => e.name === 'META-INF/MANIFEST.MF');
  if (!manifest) throw new Error('no manifest');
  const m = manifest.central;
  const lh = manifest.local;
  const data = from.subarray(
    lh + 30 + from.readUInt16LE(lh + 26) + from.readUInt16LE(lh + 28),
    lh + 30 + from.readUInt16LE(lh + 26) + from.readUInt16LE(lh + 28) + m.readUInt32LE(20),
  );
  const text = m.readUInt16LE(10) === 8 ? inflateRawSync(data) : data;
  const content = Buffer.from(withoutClassPath(text.toString('utf8')), 'utf8');
  const name = Buffer.from('META-INF/MANIFEST.MF');
  const crc = crc32(content);
  // The new manifest, stored (not compressed), first as jar readers expect.
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(10, 4);
  local.writeUInt16LE(0x0800, 6);
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(content.length, 18);
  local.writeUInt32LE(content.length, 22);
  local.writeUInt16LE(name.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(10, 6);
  central.writeUInt16LE(0x0800, 8);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(content.length, 20);
  central.writeUInt32LE(content.length, 24);
  central.writeUInt16LE(name.length, 28);
  const parts: Buffer[] = [local, name, content];
  const centrals: Buffer[] = [central, name];
  let offset = local.length + name.length + content.length;
  for (const e of byOffset) {
    if (e === manifest) continue;
    const [start, end] = span.get(e)!;
    parts.push(from.subarray(start, end));
    const c = Buffer.from(e.central);
    c.writeUInt32LE(offset, 42);
    offset += end - start;
    centrals.push(c);
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(count, 8);
  end.writeUInt16LE(count, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, end]);
}

/** The build lock: a file holding the builder's pid; a lock whose process is gone is taken over. */
function takeLock(lock: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return true;
    } catch {
      let alive = true;
      try {
        const pid = Number(readFileSync(lock, 'utf8').trim());
        // An empty lock is being written, unless it is old (its writer died at once).
        if (!(pid > 0)) alive = Date.now() - statSync(lock).mtimeMs < 60_000;
        else process.kill(pid, 0);
      } catch (e) {
        // ESRCH: no such process; ENOENT: the lock went meanwhile.
        alive = (e as NodeJS.ErrnoException).code === 'EPERM';
      }
      if (alive) return false;
      rmSync(lock, { force: true });
    }
  }
  return false;
}

/** Write `data` to `path` through a temporary file and a rename: readers see all of it or nothing. */
function writeAtomically(path: string, data: Buffer | string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

export interface ArchiveBuild {
  /** Settles true when the archive was written, false when it was not (logged by the caller). */
  done: Promise<boolean>;
  /** Stop the dump (the cloud is stopping); the next start records and dumps again. */
  cancel(): void;
}

/**
 * Dump the archive from the class list a start recorded, at the lowest CPU priority; for the
 * caller to run once the cloud is up. One build at a time per cache (a lock file with the
 * builder's pid; a dead builder's lock is taken over).
 */
export function buildClassArchive(installDir: string, cacheDir: string, log: (line: string) => void = () => undefined): ArchiveBuild {
  let child: ChildProcess | undefined;
  let cancelled = false;
  const lock = join(cacheDir, 'build.lock');
  const done = (async () => {
    mkdirSync(cacheDir, { recursive: true });
    if (!takeLock(lock)) return false;
    try {
      const list = join(cacheDir, 'classes.lst');
      if (!existsSync(list)) return false;
      const jar = join(cacheDir, 'DynamoDBLocal.jar');
      if (!existsSync(jar)) writeAtomically(jar, jarWithoutClassPath(readFileSync(join(installDir, 'DynamoDBLocal.jar'))));
      const layout = cdsLayout(installDir, cacheDir);
      if (!layout) return false;
      // A JVM stopped while writing a line leaves it half written: keep whole lines only.
      const text = readFileSync(list, 'utf8');
      const classes = `${list}.dump-${process.pid}`;
      writeFileSync(classes, text.slice(0, text.lastIndexOf('\n') + 1));
      const tmp = `${layout.archive}.tmp-${process.pid}`;
      const ok = await new Promise<boolean>((resolve) => {
        if (cancelled) return resolve(false);
        // detached: out of the terminal's Ctrl-C, like the JVM; the cloud cancels it as it stops.
        const dump = spawn(
          'nice',
          ['-n', '19', 'java', '-Xshare:dump', `-XX:SharedClassListFile=${classes}`, `-XX:SharedArchiveFile=${tmp}`, '-cp', layout.classPath],
          { cwd: cacheDir, detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
        );
        child = dump;
        let stderr = '';
        dump.stderr?.on('data', (d: Buffer) => {
          stderr = (stderr + d.toString()).slice(-4000);
        });
        dump.once('error', (e) => {
          if (!cancelled) log(`DynamoDB Local class archive not written: ${e.message}`);
          resolve(false);
        });
        dump.once('exit', (code) => {
          if (code !== 0 && !cancelled)
            log(`DynamoDB Local class archive not written: ${stderr.split('\n').filter(Boolean).slice(-2).join(' ') || `exit ${code}`}`);
          resolve(code === 0);
        });
      });
      rmSync(classes, { force: true });
      if (!ok || cancelled) {
        rmSync(tmp, { force: true });
        return false;
      }
      renameSync(tmp, layout.archive);
      // Older archives (another java, other jars) and the recorded list are spent.
      for (const f of readdirSync(cacheDir)) {
        if ((f.endsWith('.jsa') || f.includes('.tmp-') || f.includes('.dump-')) && join(cacheDir, f) !== layout.archive)
          rmSync(join(cacheDir, f), { force: true });
      }
      rmSync(list, { force: true });
      return true;
    } finally {
      rmSync(lock, { force: true });
    }
  })().catch((e: Error) => {
    log(`DynamoDB Local class archive not written: ${e.message}`);
    return false;
  });
  return {
    done,
    cancel() {
      cancelled = true;
      child?.kill('SIGKILL');
    },
  };
}
