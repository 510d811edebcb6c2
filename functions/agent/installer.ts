/**
 * The host installer: the `runtime` a NodeAgent uses on a real host (scripts/agent.ts). It unpacks
 * verified artifacts, runs the manifest's lifecycle hooks and switches versions atomically, with a
 * journal that makes a crash at any point recoverable. The simulated fleet does not use it.
 *
 * Layout under <dataDir>/modules/<name>/:
 *   <version>/                 the unpacked artifact (+ .kmod/manifest.json, run/ for the module)
 *   current -> <version>       relative symlink, replaced by rename (atomic)
 *   journal.json               only while a swap is in progress (fsync + rename)
 *
 * A swap: journal begin → unload hook of the old version → journal unloaded → switch `current` →
 * journal switched → load hook of the new version → journal loaded → journal removed.
 * Recovery rule (on start, or when a step fails): a swap whose journal reached `loaded` is complete
 * (kept); any earlier step ends on the known-good version, i.e. the old one for a deploy and the
 * target for a rollback: unload the other version, point `current` at it, run its load hook.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { HookName, Manifest } from '../domain/manifest.ts';
import { unpackArtifact } from './artifact.ts';
import {
  loopbackUrl,
  processUsage,
  readJsonTraffic,
  sampleProcess,
  scrapePrometheus,
  trafficBetween,
  type CounterSample,
  type ProcessSample,
  type Traffic,
} from './moduleMetrics.ts';

export type JournalStep = 'begin' | 'unloaded' | 'switched' | 'loaded';
export interface Journal {
  op: 'deploy' | 'rollback';
  module: string;
  from: string | null;
  to: string | null;
  step: JournalStep;
  at: string;
}

/** Points at which tests simulate a crash (kill -9) of the agent mid-swap. */
export const CRASH_POINTS = ['journal:begin', 'hook:unload', 'journal:unloaded', 'symlink', 'journal:switched', 'hook:load', 'journal:loaded'] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

/** Thrown by a test's crash hook: the swap stops where it is, with no in-process clean-up. */
export class SimulatedCrash extends Error {}

export class InstallFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface InstallerOptions {
  dataDir: string;
  /** Where hook output and installer events go (default: stdout). */
  log?: (line: string) => void;
  defaultHookTimeoutSeconds?: number;
  /** Tests only: called at every crash point. */
  crashPoint?: (point: CrashPoint, journal: Journal) => void;
}

interface Installed {
  manifest?: Manifest;
  sha256: string;
  installedAt: string;
}

export interface HookResult {
  ran: boolean;
  ok: boolean;
  detail: string;
}

export interface ModuleResourceUsage {
  cpuPercent: number;
  memoryPercent: number;
}

/** Hooks inherit only these variables from the agent, plus the KMOD_* ones. */
const INHERITED_ENV = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'USER'];

export class Installer {
  /** Modules whose last load (in recovery) failed: reported by health until the next swap. */
  private readonly failed = new Map<string, string>();
  private readonly counters = new Map<string, CounterSample[]>();
  private readonly processes = new Map<number, ProcessSample>();
  private readonly log: (line: string) => void;

  constructor(private readonly opts: InstallerOptions) {
    this.log = opts.log ?? ((line) => console.log(line));
  }

  moduleDir(module: string): string {
    return join(this.opts.dataDir, 'modules', module);
  }

  versionDir(module: string, version: string): string {
    return join(this.moduleDir(module), version);
  }

  /** The version `current` points at, or null. */
  current(module: string): string | null {
    try {
      return readlinkSync(join(this.moduleDir(module), 'current'));
    } catch {
      return null;
    }
  }

  installed(module: string, version: string): Installed | undefined {
    try {
      return JSON.parse(readFileSync(join(this.versionDir(module, version), '.kmod', 'manifest.json'), 'utf8')) as Installed;
    } catch {
      return undefined;
    }
  }

  /** Finish or undo interrupted swaps and clear leftovers; returns what each module runs now. */
  async recover(): Promise<Record<string, string | null>> {
    const root = join(this.opts.dataDir, 'modules');
    const out: Record<string, string | null> = {};
    if (!existsSync(root)) return out;
    for (const module of readdirSync(root)) {
      const dir = this.moduleDir(module);
      for (const f of readdirSync(dir)) {
        if (f.startsWith('.staging-') || f.startsWith('.trash-') || f.startsWith('current.tmp')) rmSync(join(dir, f), { recursive: true, force: true });
      }
      const journal = this.readJournal(module);
      if (journal) {
        this.log(`[installer] ${module}: found an interrupted ${journal.op} ${journal.from ?? '-'} → ${journal.to ?? '-'} at step ${journal.step}`);
        await this.settle(journal);
      }
      out[module] = this.current(module);
    }
    return out;
  }

  /** Unpack, preLoad, swap. The agent has already checked the digest and the signature. */
  async install(module: string, version: string, bytes: Buffer, manifest: Manifest | undefined): Promise<void> {
    const dir = this.moduleDir(module);
    const from = this.current(module);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if (from === version) {
      if (this.installed(module, version)?.sha256 === sha256) return; // already running these bytes
      throw new InstallFailure(409, 'VersionConflict', `${module}@${version} is running with different bytes; a version cannot be replaced in place`);
    }
    const staging = await unpackArtifact(bytes, dir, version);
    mkdirSync(join(staging, '.kmod'));
    writeDurable(join(staging, '.kmod', 'manifest.json'), JSON.stringify({ manifest, sha256, installedAt: new Date().toISOString() } satisfies Installed));
    this.replaceDir(staging, this.versionDir(module, version));
    const pre = await this.runHook(module, version, 'preLoad', { previous: from, next: version });
    if (!pre.ok) {
      rmSync(this.versionDir(module, version), { recursive: true, force: true });
      throw new InstallFailure(500, 'LoadFailed', `${module}@${version} preLoad hook failed: ${pre.detail}`);
    }
    await this.swap({ op: 'deploy', module, from, to: version });
    this.prune(module, [version, from]);
  }

  /** Switch back to an installed version (null: unload the module). */
  async switchTo(module: string, version: string | null): Promise<void> {
    const from = this.current(module);
    if (from === version) return;
    if (version !== null && !this.installed(module, version)) {
      throw new InstallFailure(409, 'VersionNotInstalled', `${module}@${version} is not installed on this host; deploy it instead`);
    }
    await this.swap({ op: 'rollback', module, from, to: version });
  }

  private async swap(j: Omit<Journal, 'step' | 'at'>): Promise<void> {
    const journal: Journal = { ...j, step: 'begin', at: new Date().toISOString() };
    this.failed.delete(j.module);
    const step = (s: JournalStep) => {
      journal.step = s;
      this.writeJournal(journal);
      this.crash(`journal:${s}`, journal);
    };
    try {
      step('begin');
      if (j.from) await this.hookOrThrow(j.module, j.from, 'unload', j);
      this.crash('hook:unload', journal);
      step('unloaded');
      this.switchCurrent(j.module, j.to);
      this.crash('symlink', journal);
      step('switched');
      if (j.to) await this.hookOrThrow(j.module, j.to, 'load', j);
      this.crash('hook:load', journal);
      step('loaded');
      this.removeJournal(j.module);
    } catch (e) {
      if (e instanceof SimulatedCrash) throw e;
      await this.settle(journal); // the same rule as after a crash
      throw e;
    }
  }

  /** The recovery rule (see the file comment). Idempotent: a crash during it just runs it again. */
  private async settle(j: Journal): Promise<void> {
    if (j.step === 'loaded') return this.removeJournal(j.module);
    const target = j.op === 'deploy' ? j.from : j.to;
    const other = target === j.to ? j.from : j.to;
    this.log(`[installer] ${j.module}: ${j.op} interrupted at ${j.step}; settling on ${target ?? 'nothing loaded'}`);
    if (other && this.installed(j.module, other)) {
      const r = await this.runHook(j.module, other, 'unload', { previous: j.from, next: target });
      if (!r.ok) this.log(`[installer] ${j.module}: unload of ${other} failed during recovery: ${r.detail}`);
    }
    this.switchCurrent(j.module, target);
    if (target) {
      const r = await this.runHook(j.module, target, 'load', { previous: j.from, next: target });
      if (!r.ok) this.failed.set(j.module, `load hook of ${j.module}@${target} failed during recovery: ${r.detail}`);
    }
    this.removeJournal(j.module);
  }

  private async hookOrThrow(module: string, version: string, hook: 'load' | 'unload', j: { from: string | null; to: string | null }): Promise<void> {
    const r = await this.runHook(module, version, hook, { previous: j.from, next: j.to });
    if (!r.ok) throw new InstallFailure(500, 'LoadFailed', `${module}@${version} ${hook} hook failed: ${r.detail}`);
  }

  private crash(point: CrashPoint, journal: Journal): void {
    this.opts.crashPoint?.(point, { ...journal });
  }

  /** Temp symlink, then rename over `current`: readers see the old or the new target, never none. */
  private switchCurrent(module: string, version: string | null): void {
    const dir = this.moduleDir(module);
    if (version === null) {
      rmSync(join(dir, 'current'), { force: true });
    } else {
      const tmp = join(dir, `current.tmp-${process.pid}`);
      rmSync(tmp, { force: true });
      symlinkSync(version, tmp);
      renameSync(tmp, join(dir, 'current'));
    }
    fsyncDir(dir);
  }

  private readJournal(module: string): Journal | undefined {
    try {
      return JSON.parse(readFileSync(join(this.moduleDir(module), 'journal.json'), 'utf8')) as Journal;
    } catch {
      return undefined; // none (a torn write cannot happen: it is replaced by rename)
    }
  }

  private writeJournal(j: Journal): void {
    writeDurable(join(this.moduleDir(j.module), 'journal.json'), JSON.stringify(j));
  }

  private removeJournal(module: string): void {
    rmSync(join(this.moduleDir(module), 'journal.json'), { force: true });
    fsyncDir(this.moduleDir(module));
  }

  private replaceDir(staging: string, target: string): void {
    if (existsSync(target)) {
      const trash = `${staging.replace('.staging-', '.trash-')}`;
      renameSync(target, trash);
      rmSync(trash, { recursive: true, force: true });
    }
    renameSync(staging, target);
    fsyncDir(join(target, '..'));
  }

  /** Keep the running version and the one before it (instant rollback); remove older ones. */
  private prune(module: string, keep: (string | null)[]): void {
    for (const f of readdirSync(this.moduleDir(module))) {
      if (f === 'current' || f === 'journal.json' || f.startsWith('.') || keep.includes(f)) continue;
      if (this.installed(module, f)) rmSync(this.versionDir(module, f), { recursive: true, force: true });
    }
  }

  /** Run a lifecycle hook of an installed version; a missing hook passes. */
  async runHook(module: string, version: string, hook: HookName, ctx: { previous?: string | null; next?: string | null } = {}): Promise<HookResult> {
    const spec = this.installed(module, version)?.manifest?.hooks?.[hook];
    if (!spec) return { ran: false, ok: true, detail: `no ${hook} hook` };
    const cwd = this.versionDir(module, version);
    mkdirSync(join(cwd, 'run'), { recursive: true });
    const env: Record<string, string> = {};
    for (const k of INHERITED_ENV) if (process.env[k] !== undefined) env[k] = process.env[k]!;
    Object.assign(env, {
      KMOD_MODULE: module,
      KMOD_VERSION: version,
      KMOD_HOOK: hook,
      KMOD_MODULE_DIR: cwd,
      KMOD_RUN_DIR: join(cwd, 'run'),
      KMOD_PID_FILE: join(cwd, 'run', 'module.pid'),
      KMOD_DATA_DIR: this.opts.dataDir,
      KMOD_PREVIOUS_VERSION: ctx.previous ?? '',
      KMOD_NEXT_VERSION: ctx.next ?? '',
    });
    const [cmd, ...args] = spec.command;
    const timeoutMs = (spec.timeoutSeconds ?? this.opts.defaultHookTimeoutSeconds ?? 60) * 1000;
    return runCommand(cmd === 'node' ? process.execPath : cmd, args, {
      cwd,
      env,
      timeoutMs,
      log: (line) => this.log(`[${module}@${version} ${hook}] ${line}`),
    });
  }

  async smokeTest(module: string): Promise<HookResult> {
    const v = this.current(module);
    if (!v) return { ran: false, ok: false, detail: `${module} is not installed` };
    return this.runHook(module, v, 'smokeTest');
  }

  /** Reasons the host's modules are unhealthy: failed recovery, dead process, failing healthCheck. */
  async health(modules: string[]): Promise<string[]> {
    const reasons: string[] = [];
    for (const module of modules) {
      const v = this.current(module);
      if (!v) continue;
      const failed = this.failed.get(module);
      if (failed) reasons.push(failed);
      const pid = this.pid(module, v);
      if (pid !== undefined && !sampleProcess(pid)) reasons.push(`${module}@${v}: its process ${pid} is not running`);
      const r = await this.runHook(module, v, 'healthCheck');
      if (!r.ok) reasons.push(`${module}@${v} healthCheck failed: ${r.detail}`);
    }
    return reasons;
  }

  /** The pid the load hook wrote to $KMOD_PID_FILE, if any. */
  pid(module: string, version: string): number | undefined {
    try {
      const pid = Number(readFileSync(join(this.versionDir(module, version), 'run', 'module.pid'), 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** CPU/memory summed over the modules' own processes, or undefined if none can be identified. */
  resourceUsage(modules: string[]): ModuleResourceUsage | undefined {
    let found = false;
    const total = { cpuPercent: 0, memoryPercent: 0 };
    for (const module of modules) {
      const v = this.current(module);
      const pid = v ? this.pid(module, v) : undefined;
      const cur = pid !== undefined ? sampleProcess(pid) : undefined;
      if (!cur || pid === undefined) continue;
      const u = processUsage(this.processes.get(pid), cur);
      this.processes.set(pid, cur);
      total.cpuPercent += u.cpuPercent;
      total.memoryPercent += u.memoryPercent;
      found = true;
    }
    return found ? total : undefined;
  }

  /** Traffic summed (requests/s) and weighted by requests/s (latency, errors) over the modules that declare metrics. */
  async traffic(modules: string[]): Promise<Traffic | undefined> {
    const parts: Traffic[] = [];
    for (const module of modules) {
      const t = await this.moduleTraffic(module).catch((e: Error) => {
        this.log(`[installer] ${module}: metrics unavailable: ${e.message}`);
        return undefined;
      });
      if (t) parts.push(t);
    }
    if (parts.length === 0) return undefined;
    const rps = parts.reduce((s, p) => s + p.requestsPerSecond, 0);
    const weighted = (k: 'latencyMs' | 'errorRatePercent') =>
      rps > 0 ? parts.reduce((s, p) => s + p[k] * p.requestsPerSecond, 0) / rps : parts.reduce((s, p) => s + p[k], 0) / parts.length;
    const round = (n: number) => Math.round(n * 100) / 100;
    const window = combineWindows(parts);
    return {
      requestsPerSecond: round(rps),
      latencyMs: round(weighted('latencyMs')),
      errorRatePercent: round(weighted('errorRatePercent')),
      ...(window ? { window } : {}),
    };
  }

  private async moduleTraffic(module: string): Promise<Traffic | undefined> {
    const v = this.current(module);
    const spec = v ? this.installed(module, v)?.manifest?.metrics : undefined;
    if (!v || !spec) return undefined;
    const dir = this.versionDir(module, v);
    if (spec.jsonFile) return readJsonTraffic(join(dir, spec.jsonFile));
    if (!spec.prometheus) return undefined;
    const url = loopbackUrl(spec.prometheus);
    if (spec.portFile) url.port = readFileSync(join(dir, spec.portFile), 'utf8').trim();
    const cur = await scrapePrometheus(url.href);
    const key = `${module}@${v}`;
    // Rate over the newest sample at least 10 s old (else the oldest), kept for two minutes.
    // Samples of an earlier process of the same version (unloaded and loaded again) are dropped.
    const history = (this.counters.get(key) ?? []).filter((s) => cur.at - s.at <= 120_000 && s.startTime === cur.startTime);
    const base = [...history].reverse().find((s) => cur.at - s.at >= 10_000) ?? history[0];
    this.counters.set(key, [...history, cur]);
    return trafficBetween(base, cur);
  }
}

/**
 * The modules' windows as one: requests and errors summed; histograms added when every module
 * sends one with the same bounds (else none: the judge then uses the averages). None unless every
 * module with traffic sends a window.
 */
export function combineWindows(parts: readonly Traffic[]): Traffic['window'] {
  const windows = parts.map((p) => p.window);
  if (windows.length === 0 || windows.some((w) => !w)) return undefined;
  const all = windows as NonNullable<Traffic['window']>[];
  const first = all[0].latencyHistogram;
  const sameBounds = first && all.every((w) => w.latencyHistogram && w.latencyHistogram.boundsMs.join() === first.boundsMs.join());
  return {
    seconds: Math.max(...all.map((w) => w.seconds)),
    requests: all.reduce((s, w) => s + w.requests, 0),
    errors: all.reduce((s, w) => s + w.errors, 0),
    ...(sameBounds
      ? {
          latencyHistogram: {
            boundsMs: [...first.boundsMs],
            counts: first.counts.map((_, i) => all.reduce((s, w) => s + (w.latencyHistogram?.counts[i] ?? 0), 0)),
          },
        }
      : {}),
  };
}

/** Write a file so that a crash leaves either the old or the new contents: temp, fsync, rename, fsync dir. */
export function writeDurable(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  fsyncDir(join(file, '..'));
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Run a command in its own process group; kill the group on timeout; log its output line by line. */
export function runCommand(
  cmd: string,
  args: string[],
  o: { cwd: string; env: Record<string, string>; timeoutMs: number; log: (line: string) => void },
): Promise<HookResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: o.cwd, env: o.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const onLine = (line: string) => {
      o.log(line);
      tail.push(line);
      if (tail.length > 5) tail.shift();
    };
    for (const stream of [child.stdout, child.stderr]) {
      let buffered = '';
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => {
        const lines = (buffered + d).split('\n');
        buffered = lines.pop() ?? '';
        lines.forEach(onLine);
      });
      stream.on('end', () => buffered && onLine(buffered));
    }
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, o.timeoutMs);
    let settled = false;
    const done = (r: HookResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      for (const s of [child.stdout, child.stderr]) s.destroy();
      resolve(r);
    };
    child.on('error', (e) => done({ ran: true, ok: false, detail: `could not start ${cmd}: ${e.message}` }));
    child.on('exit', (code, signal) => {
      const finish = () => {
        const last = tail.length ? `: ${tail.join(' | ')}` : '';
        if (timedOut) return done({ ran: true, ok: false, detail: `timed out after ${o.timeoutMs / 1000} s${last}` });
        done({ ran: true, ok: code === 0, detail: code === 0 ? `exit code 0${last}` : `exit code ${code ?? signal}${last}` });
      };
      // Wait for the last output, but not for a daemon that inherited the pipes.
      const t = setTimeout(finish, 200);
      child.once('close', () => {
        clearTimeout(t);
        finish();
      });
    });
  });
}
