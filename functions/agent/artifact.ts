/**
 * The module artifact format: a gzipped tar (ustar or pax) of the module's files, rooted at the
 * module directory (entries `server.mjs`, `bin/x`, optionally prefixed `./`). Only regular files
 * and directories are allowed: links, devices, FIFOs, absolute paths, `..` segments and the
 * agent's own `.kmod/` directory are refused before anything is written.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Parser, x as extract, type ReadEntry } from 'tar';

/** Unpacked size and entry limits: a small artifact must not fill the host's disk (zip bomb). */
export const MAX_UNPACKED_BYTES = 512 * 1024 * 1024;
export const MAX_ENTRIES = 10_000;

export class ArtifactRejected extends Error {
  override name = 'ArtifactRejected';
}

export interface PackEntry {
  path: string;
  /** File contents; omit for a directory (or a link, with `linkTo`). */
  data?: string | Buffer;
  mode?: number;
  /** Tests only: a symbolic (`symlink`) or hard (`link`) link to `linkTo`. */
  type?: 'file' | 'dir' | 'symlink' | 'link';
  linkTo?: string;
}

const TYPEFLAG = { file: '0', link: '1', symlink: '2', dir: '5' } as const;

function octal(buf: Buffer, offset: number, length: number, value: number): void {
  buf.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'ascii');
}

function header(e: PackEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  const type = e.type ?? (e.data === undefined ? 'dir' : 'file');
  if (Buffer.byteLength(e.path) > 100) throw new Error(`path too long for a ustar header: ${e.path}`);
  h.write(e.path, 0, 100, 'utf8');
  octal(h, 100, 8, e.mode ?? (type === 'dir' ? 0o755 : 0o644));
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, 0); // mtime 0: the same files always give the same bytes and digest
  h.write(TYPEFLAG[type], 156, 1, 'ascii');
  if (e.linkTo) h.write(e.linkTo, 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.fill(0x20, 148, 156); // the checksum is computed with its own field as spaces
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

/** A deterministic `.tar.gz` of the given entries (the demo module, tests). */
export function packArtifact(entries: PackEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
    parts.push(header(e, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(parts), { level: 9 });
}

/** Why an entry may not be unpacked, or undefined when it is fine. */
function entryProblem(e: { path: string; type: string; linkpath?: string }): string | undefined {
  if (e.type !== 'File' && e.type !== 'OldFile' && e.type !== 'Directory') return `${e.path}: ${e.type} entries are not allowed (only files and directories)`;
  const path = e.path.replace(/^(\.\/)+/, '');
  if (path.startsWith('/') || /^[a-zA-Z]:/.test(path) || path.includes('\\')) return `${e.path}: absolute or non-POSIX path`;
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return `${e.path}: path escapes the module directory`;
  if (parts[0] === '.kmod') return `${e.path}: .kmod/ is reserved for the agent`;
  return undefined;
}

/** Every entry of the tarball, validated; throws ArtifactRejected on the first bad one. */
export async function inspectArtifact(bytes: Buffer): Promise<{ entries: number; unpackedBytes: number }> {
  let tarBytes: Buffer;
  try {
    tarBytes = gunzipSync(bytes, { maxOutputLength: MAX_UNPACKED_BYTES + 64 * 1024 * 1024 });
  } catch (e) {
    throw new ArtifactRejected(`artifact is not a gzipped tar: ${(e as Error).message}`);
  }
  let entries = 0;
  let unpackedBytes = 0;
  let problem: string | undefined;
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      entries++;
      unpackedBytes += entry.size ?? 0;
      problem ??= entryProblem({ path: entry.path, type: entry.type, linkpath: entry.linkpath });
      entry.resume();
    },
  });
  await new Promise<void>((resolve, reject) => {
    parser.on('error', reject);
    parser.on('end', resolve);
    parser.end(tarBytes);
  }).catch((e: Error) => {
    throw new ArtifactRejected(`artifact is not a valid tar: ${e.message}`);
  });
  if (problem) throw new ArtifactRejected(`artifact refused: ${problem}`);
  if (entries === 0) throw new ArtifactRejected('artifact refused: the tarball is empty');
  if (entries > MAX_ENTRIES) throw new ArtifactRejected(`artifact refused: ${entries} entries (at most ${MAX_ENTRIES})`);
  if (unpackedBytes > MAX_UNPACKED_BYTES) throw new ArtifactRejected(`artifact refused: ${unpackedBytes} bytes unpacked (at most ${MAX_UNPACKED_BYTES})`);
  return { entries, unpackedBytes };
}

/**
 * Validate, then unpack into a fresh staging directory under `parent` and return its path. Nothing
 * is written if validation fails; a failed extraction removes the staging directory.
 */
export async function unpackArtifact(bytes: Buffer, parent: string, label: string): Promise<string> {
  await inspectArtifact(bytes);
  const staging = join(parent, `.staging-${label}-${randomBytes(4).toString('hex')}`);
  mkdirSync(staging, { recursive: true });
  try {
    await new Promise<void>((resolve, reject) => {
      // Belt and braces: the filter re-checks every entry node-tar is about to write.
      const unpack = extract({ cwd: staging, strict: true, preservePaths: false, preserveOwner: false, filter: (_p, e) => !entryProblem(e as ReadEntry) });
      unpack.on('error', reject);
      unpack.on('close', resolve);
      unpack.end(bytes);
    });
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw new ArtifactRejected(`artifact could not be unpacked: ${(e as Error).message}`);
  }
  return staging;
}
