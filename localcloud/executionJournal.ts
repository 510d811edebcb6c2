/**
 * The journal that makes a local Step Functions execution durable (docs/adr/0014-durable-local-executions.md).
 * The interpreter cannot checkpoint mid-run, so a restart runs the execution again from its input,
 * and every Task state first asks the journal: a task that completed before answers with its
 * recorded result or error at once; the first one that did not runs for real. Tasks are told
 * apart by (state name, hash of their effective input, occurrence of that pair in the run): a
 * Map's iterations differ by input, and a retry or a loop with the same input by occurrence,
 * which the deterministic replay reproduces in order.
 *
 * Besides outcomes, the journal keeps what must survive a restart unchanged while a task waits:
 * the task token a `.waitForTaskToken` integration was given (and whether the integration was
 * started with it), and the deadline of a Wait state.
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

export type JournalEntry = { k: string; o: number; t: number } & (
  | { kind: 'result'; result: unknown }
  | { kind: 'error'; error: { name: string; message: string } }
  /** A `.waitForTaskToken` task's token, recorded before the integration is started with it. */
  | { kind: 'token'; token: string; deadline?: number }
  /** The integration was started with the token: a replay only waits for it again. */
  | { kind: 'invoked' }
  /** A Wait state's deadline (epoch ms), recorded when it is first entered. */
  | { kind: 'wait'; deadline: number }
);

type Outcome = { ok: true; result: unknown } | { ok: false; error: { name: string; message: string } };

/** One invocation of a Task state, with what the journal knows of it from an earlier run. */
export interface TaskInvocation {
  key: string;
  occurrence: number;
  outcome?: Outcome;
  token?: { token: string; deadline?: number; invoked: boolean };
  wait?: { deadline: number };
}

interface Known {
  outcome?: Outcome;
  token?: { token: string; deadline?: number; invoked: boolean };
  wait?: { deadline: number };
}

/** A task's identity within a run: its state name and a hash of its effective input. */
export function taskKey(stateName: string, input: unknown): string {
  const digest = createHash('sha256')
    .update(canonicalize(input ?? null) ?? 'null')
    .digest('base64url')
    .slice(0, 22);
  return `${stateName}#${digest}`;
}

export class ExecutionJournal {
  private readonly known = new Map<string, Known>();
  private readonly occurrences = new Map<string, number>();
  /** Recorded outcomes not yet answered in this run: while any remain, the run is replaying. */
  private unreplayed = 0;

  /**
   * @param entries what earlier runs recorded, in order
   * @param write persists one entry before the caller goes on (a synchronous append)
   */
  constructor(
    entries: readonly JournalEntry[],
    private readonly write: (entry: JournalEntry) => void,
  ) {
    for (const e of entries) this.apply(e);
  }

  /** True while outcomes recorded by an earlier run have not all been answered yet. */
  get replaying(): boolean {
    return this.unreplayed > 0;
  }

  /** A Task state is about to run with this input: what the journal knows of this occurrence. */
  begin(stateName: string, input: unknown): TaskInvocation {
    const key = taskKey(stateName, input);
    const occurrence = this.occurrences.get(key) ?? 0;
    this.occurrences.set(key, occurrence + 1);
    const known = this.known.get(slot(key, occurrence));
    if (known?.outcome) this.unreplayed--;
    return { key, occurrence, ...known };
  }

  recordResult(inv: TaskInvocation, result: unknown): void {
    this.record(inv, { kind: 'result', result: result === undefined ? null : result });
  }

  recordError(inv: TaskInvocation, error: { name: string; message: string }): void {
    this.record(inv, { kind: 'error', error: { name: error.name, message: error.message } });
  }

  recordToken(inv: TaskInvocation, token: string, deadline: number | undefined): void {
    this.record(inv, { kind: 'token', token, ...(deadline === undefined ? {} : { deadline }) });
  }

  recordInvoked(inv: TaskInvocation): void {
    this.record(inv, { kind: 'invoked' });
  }

  recordWait(inv: TaskInvocation, deadline: number): void {
    this.record(inv, { kind: 'wait', deadline });
  }

  private record(inv: TaskInvocation, entry: DistributiveOmit<JournalEntry, 'k' | 'o' | 't'>): void {
    const full = { k: inv.key, o: inv.occurrence, t: Date.now(), ...entry } as JournalEntry;
    this.write(full);
    // Known from now on, but answered already in this run: not counted as still to replay.
    const before = this.unreplayed;
    this.apply(full);
    this.unreplayed = before;
  }

  private apply(e: JournalEntry): void {
    const s = slot(e.k, e.o);
    const known = this.known.get(s) ?? {};
    switch (e.kind) {
      case 'result':
      case 'error':
        if (!known.outcome) this.unreplayed++;
        known.outcome = e.kind === 'result' ? { ok: true, result: e.result } : { ok: false, error: e.error };
        break;
      case 'token':
        known.token = { token: e.token, deadline: e.deadline, invoked: false };
        break;
      case 'invoked':
        if (known.token) known.token.invoked = true;
        break;
      case 'wait':
        known.wait = { deadline: e.deadline };
        break;
    }
    this.known.set(s, known);
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

const slot = (key: string, occurrence: number) => `${key}@${occurrence}`;

/** The error a recorded failure is replayed as: what the interpreter's Retry and Catch match on. */
export function replayedError(error: { name: string; message: string }): Error {
  const e = new Error(error.message);
  e.name = error.name;
  return e;
}

/**
 * Parse a JSON-lines file written by appends. A torn last line (the process died mid-write) is
 * dropped; any other unreadable line makes the whole file unreadable, reported by line number.
 */
export function parseJsonLines<T>(text: string): { entries: T[]; problem?: string } {
  const lines = text.split('\n');
  const entries: T[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === '') continue;
    try {
      entries.push(JSON.parse(line) as T);
    } catch {
      const last = lines.slice(i + 1).every((l) => l.trim() === '');
      if (last && !text.endsWith('\n')) break;
      return { entries, problem: `line ${i + 1} is not JSON` };
    }
  }
  return { entries };
}
