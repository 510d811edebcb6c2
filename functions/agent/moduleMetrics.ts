/**
 * Real metrics of a module on a host: traffic from its Prometheus endpoint or JSON file, CPU and
 * memory of its own process from /proc (Linux).
 *
 * Prometheus series read (everything else is ignored):
 *   kmod_requests_total{status="…"}        counter; a status of 5xx or "error" counts as an error
 *   kmod_request_duration_seconds_sum      histogram or summary sum
 *   kmod_request_duration_seconds_count    histogram or summary count
 *   kmod_request_duration_seconds_bucket   histogram buckets {le="…"}: the latency histogram of the
 *                                          window (MetricsReport.window) for the statistical canary judge
 *   process_start_time_seconds             gauge; gives a rate before a second sample exists
 * JSON file: {"latencyMs": n, "errorRatePercent": n, "requestsPerSecond": n} (already rates).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { isIP } from 'node:net';
import type { MetricsWindow } from './protocol.ts';

export interface Traffic {
  latencyMs: number;
  errorRatePercent: number;
  requestsPerSecond: number;
  /** Requests, errors and (from histogram buckets) the latency histogram of the window (Prometheus only). */
  window?: MetricsWindow;
}

export interface CounterSample {
  at: number;
  requests: number;
  errors: number;
  latencySum: number;
  latencyCount: number;
  startTime?: number;
  /** Cumulative histogram buckets: [upper bound in seconds (Infinity for +Inf), count], summed over label sets. */
  buckets?: [number, number][];
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parsePrometheus(text: string, at = Date.now()): CounterSample {
  const s: CounterSample = { at, requests: 0, errors: 0, latencySum: 0, latencyCount: 0 };
  for (const raw of text.split('\n')) {
    const m = LINE.exec(raw.trim());
    if (!m || raw.startsWith('#')) continue;
    const [, name, labels = '', valueText] = m;
    const value = Number(valueText);
    if (!Number.isFinite(value)) continue;
    if (name === 'kmod_requests_total') {
      const status = [...labels.matchAll(LABEL)].find((l) => l[1] === 'status')?.[2] ?? '';
      s.requests += value;
      if (/^5\d\d$/.test(status) || status === 'error') s.errors += value;
    } else if (name === 'kmod_request_duration_seconds_sum') s.latencySum += value;
    else if (name === 'kmod_request_duration_seconds_count') s.latencyCount += value;
    else if (name === 'kmod_request_duration_seconds_bucket') {
      const le = [...labels.matchAll(LABEL)].find((l) => l[1] === 'le')?.[2];
      const bound = le === '+Inf' ? Infinity : Number(le);
      if (le === undefined || Number.isNaN(bound)) continue;
      const buckets = (s.buckets ??= []);
      const same = buckets.find((b) => b[0] === bound);
      if (same) same[1] += value;
      else buckets.push([bound, value]);
    } else if (name === 'process_start_time_seconds') s.startTime = value;
  }
  return s;
}

/** Only loopback: a signed manifest must not turn the agent into a proxy into the host's network. */
export function loopbackUrl(url: string): URL {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const loopback = host === 'localhost' || (isIP(host) === 4 && host.startsWith('127.')) || host === '::1';
  if (!loopback || (u.protocol !== 'http:' && u.protocol !== 'https:')) throw new Error(`metrics are read from loopback addresses only, not ${url}`);
  return u;
}

export async function scrapePrometheus(url: string, timeoutMs = 2000): Promise<CounterSample> {
  const r = await fetch(loopbackUrl(url), { redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
  if (!r.ok) throw new Error(`metrics endpoint ${url} answered HTTP ${r.status}`);
  return parsePrometheus(await r.text());
}

const round = (n: number) => Math.round(n * 100) / 100;

/** Rates between two samples, or over the process lifetime when there is no usable earlier one. */
export function trafficBetween(prev: CounterSample | undefined, cur: CounterSample): Traffic {
  // A restarted process (same version loaded again) starts its counters afresh: an earlier sample of
  // another process is no base, even when its counters happen to be lower.
  const usable = prev && prev.startTime === cur.startTime && cur.at - prev.at >= 1000 && cur.requests >= prev.requests && cur.latencyCount >= prev.latencyCount;
  const base = usable ? prev : { at: (cur.startTime ?? cur.at / 1000) * 1000, requests: 0, errors: 0, latencySum: 0, latencyCount: 0 };
  const seconds = (cur.at - base.at) / 1000;
  const requests = cur.requests - base.requests;
  const count = cur.latencyCount - base.latencyCount;
  const histogram = windowHistogram(usable ? prev.buckets : [], cur.buckets);
  return {
    requestsPerSecond: seconds > 0 ? round(requests / seconds) : 0,
    errorRatePercent: requests > 0 ? round(((cur.errors - base.errors) / requests) * 100) : 0,
    latencyMs: count > 0 ? round(((cur.latencySum - base.latencySum) / count) * 1000) : 0,
    window: { seconds: round(seconds), requests, errors: cur.errors - base.errors, ...(histogram ? { latencyHistogram: histogram } : {}) },
  };
}

/**
 * The window's latency histogram from two scrapes of cumulative buckets: per bucket (bounds in ms,
 * plus +Inf) the requests that fell into it between them. None when the current scrape has no
 * buckets, or the earlier one has other bounds (the module changed its buckets).
 */
export function windowHistogram(
  prev: [number, number][] | undefined,
  cur: [number, number][] | undefined,
): { boundsMs: number[]; counts: number[] } | undefined {
  if (!cur?.length) return undefined;
  const sorted = [...cur].sort((a, b) => a[0] - b[0]);
  const before = new Map(prev ?? []);
  if (before.size && (before.size !== sorted.length || sorted.some(([le]) => !before.has(le)))) return undefined;
  const cumulative = sorted.map(([le, c]) => c - (before.get(le) ?? 0));
  const finite = sorted.filter(([le]) => Number.isFinite(le));
  const counts = finite.map((_, i) => Math.max(0, cumulative[i] - (i ? cumulative[i - 1] : 0)));
  // +Inf: the total minus the last finite bucket (a histogram without +Inf gets an empty one).
  const total = Number.isFinite(sorted.at(-1)![0]) ? (cumulative[finite.length - 1] ?? 0) : cumulative.at(-1)!;
  counts.push(Math.max(0, total - (cumulative[finite.length - 1] ?? 0)));
  return { boundsMs: finite.map(([le]) => round(le * 1000)), counts };
}

export function readJsonTraffic(file: string): Traffic {
  const j = JSON.parse(readFileSync(file, 'utf8')) as Partial<Traffic>;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  return { latencyMs: num(j.latencyMs), errorRatePercent: num(j.errorRatePercent), requestsPerSecond: num(j.requestsPerSecond) };
}

export interface ProcessSample {
  at: number;
  /** utime + stime in clock ticks. */
  ticks: number;
  /** Process start, seconds after boot. */
  startedAt: number;
  rssBytes: number;
  /** How many processes were counted (the module's own and its descendants). */
  processes: number;
}

/** Linux clock ticks per second and page size: the values of every mainstream distribution. */
const CLK_TCK = 100;
const PAGE_SIZE = 4096;

interface ProcStat {
  pid: number;
  ppid: number;
  state: string;
  /** utime + stime of the process itself. */
  ownTicks: number;
  /** cutime + cstime: the children it has waited for. */
  reapedTicks: number;
  startedAt: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    return {
      pid,
      ppid: Number(f[1]),
      state: f[0],
      ownTicks: Number(f[11]) + Number(f[12]),
      reapedTicks: Number(f[13]) + Number(f[14]),
      startedAt: Number(f[19]) / CLK_TCK,
    };
  } catch {
    return undefined;
  }
}

function rssOf(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * PAGE_SIZE;
  } catch {
    return 0; // it exited between the two reads
  }
}

/** The live descendants of `root` (children, their children, …), from one pass over /proc. */
function descendantsOf(root: number): ProcStat[] {
  let pids: number[];
  try {
    pids = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .map(Number);
  } catch {
    return [];
  }
  const byParent = new Map<number, ProcStat[]>();
  for (const pid of pids) {
    const st = pid === root ? undefined : readStat(pid);
    if (st) byParent.set(st.ppid, [...(byParent.get(st.ppid) ?? []), st]);
  }
  const out: ProcStat[] = [];
  const queue = [root];
  while (queue.length) {
    for (const child of byParent.get(queue.shift()!) ?? []) {
      out.push(child);
      queue.push(child.pid);
    }
  }
  return out;
}

/**
 * A module's process and every process it started (a shell's children, worker processes), or
 * undefined when the process is gone (or not Linux). CPU counts what each live process used plus
 * what the root reaped from children that exited; memory is the sum of resident sets.
 */
export function sampleProcess(pid: number): ProcessSample | undefined {
  const root = readStat(pid);
  if (!root || root.state === 'Z') return undefined; // a zombie no longer runs
  const tree = [root, ...descendantsOf(pid).filter((p) => p.state !== 'Z')];
  return {
    at: Date.now(),
    ticks: root.reapedTicks + tree.reduce((n, p) => n + p.ownTicks, 0),
    startedAt: root.startedAt,
    rssBytes: tree.reduce((n, p) => n + rssOf(p.pid), 0),
    processes: tree.length,
  };
}

/** CPU as a share of the whole host's capacity (like the host figure), memory as RSS over total. */
export function processUsage(prev: ProcessSample | undefined, cur: ProcessSample): { cpuPercent: number; memoryPercent: number } {
  const cores = cpus().length || 1;
  let seconds: number;
  let ticks: number;
  if (prev && cur.at - prev.at >= 500 && cur.startedAt === prev.startedAt) {
    seconds = (cur.at - prev.at) / 1000;
    // A descendant that exited unreaped takes its ticks with it: never below zero.
    ticks = Math.max(0, cur.ticks - prev.ticks);
  } else {
    const uptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    seconds = Math.max(0.001, uptime - cur.startedAt);
    ticks = cur.ticks;
  }
  return {
    cpuPercent: round(Math.min(100, (ticks / CLK_TCK / seconds / cores) * 100)),
    memoryPercent: round((cur.rssBytes / totalmem()) * 100),
  };
}
