/**
 * Where local Step Functions executions live on disk, so a restart of the local cloud resumes
 * them (docs/adr/0014-durable-local-executions.md). Under `<dataDir>/stepfunctions/`:
 *
 *   definitions/<sha256>.json                      each state machine definition an execution ran
 *   executions/<machine>/<name>.json               the execution's record (rewritten atomically)
 *   executions/<machine>/<name>.journal.jsonl      task outcomes, tokens, Wait deadlines (appended)
 *   executions/<machine>/<name>.history.jsonl      GetExecutionHistory events (appended)
 *
 * Appends go straight to the file descriptor with a synchronous write: once a write returns, the
 * entry survives the process being killed (it is in the operating system's cache; an OS crash is
 * not covered, so nothing calls fsync).
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseJsonLines } from './executionJournal.ts';

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

export interface HistoryEvent {
  id: number;
  previousEventId: number;
  timestamp: number;
  type: string;
  [details: string]: unknown;
}

/** The execution's record: what DescribeExecution answers, and what a restart needs to run it again. */
export interface ExecutionRecord {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  status: ExecutionStatus;
  /** Epoch seconds, as the service's JSON protocol carries dates. */
  startDate: number;
  stopDate?: number;
  input: string;
  output?: string;
  error?: string;
  cause?: string;
  /** The definition it runs (definitions/<hash>.json): a restart runs the same one, as AWS does. */
  definitionHash: string;
  /** The execution whose `startExecution(.sync)` task started this one. */
  parentExecutionArn?: string;
  /** The Status Change event of its end was handled (an undelivered one is sent again at start-up). */
  statusEventDelivered?: boolean;
}

/** One entry of the store at start-up: its record, or why it could not be read. */
export type StoredExecution =
  | { executionArn: string; record: ExecutionRecord; problem?: undefined }
  | { executionArn: string; record?: undefined; problem: string };

/** Open append handles of a running execution. */
export interface ExecutionFiles {
  appendJournal(entry: unknown): void;
  appendHistory(event: HistoryEvent): void;
  close(): void;
}

/** `arn:aws:states:<region>:<account>:execution:<machine>:<name>` → its machine and name. */
export function executionParts(executionArn: string): { machine: string; name: string } {
  const m = /^arn:aws:states:[^:]+:\d{12}:execution:([A-Za-z0-9_-]+):([A-Za-z0-9_-]+)$/.exec(executionArn);
  if (!m) throw new Error(`not an execution ARN: ${executionArn}`);
  return { machine: m[1], name: m[2] };
}

export class ExecutionStore {
  private readonly executionsDir: string;
  private readonly definitionsDir: string;

  constructor(
    dir: string,
    /** Builds an execution ARN from its machine and name (for records that cannot be read). */
    private readonly arnOf: (machine: string, name: string) => string,
  ) {
    this.executionsDir = join(dir, 'executions');
    this.definitionsDir = join(dir, 'definitions');
    mkdirSync(this.executionsDir, { recursive: true });
    mkdirSync(this.definitionsDir, { recursive: true });
  }

  /** Keep a definition by content; returns its hash. */
  saveDefinition(definition: string): string {
    const hash = createHash('sha256').update(definition).digest('hex');
    const file = join(this.definitionsDir, `${hash}.json`);
    if (!existsSync(file)) atomicWrite(file, definition);
    return hash;
  }

  loadDefinition(hash: string): string {
    return readFileSync(join(this.definitionsDir, `${hash}.json`), 'utf8');
  }

  save(record: ExecutionRecord): void {
    const base = this.base(record.executionArn);
    mkdirSync(join(base, '..'), { recursive: true });
    atomicWrite(`${base}.json`, JSON.stringify(record));
  }

  load(executionArn: string): ExecutionRecord {
    return JSON.parse(readFileSync(`${this.base(executionArn)}.json`, 'utf8')) as ExecutionRecord;
  }

  /** Every stored execution, oldest first by start date (unreadable records last). */
  list(): StoredExecution[] {
    const out: StoredExecution[] = [];
    for (const machine of readdirSync(this.executionsDir)) {
      const dir = join(this.executionsDir, machine);
      for (const file of readdirSync(dir)) {
        if (!file.endsWith('.json')) continue;
        const executionArn = this.arnOf(machine, file.slice(0, -'.json'.length));
        try {
          const record = JSON.parse(readFileSync(join(dir, file), 'utf8')) as ExecutionRecord;
          if (record.executionArn !== executionArn || typeof record.status !== 'string') throw new Error('the record does not describe this execution');
          out.push({ executionArn, record });
        } catch (e) {
          out.push({ executionArn, problem: `its record ${join(machine, file)} is unreadable (${(e as Error).message})` });
        }
      }
    }
    const start = (s: StoredExecution) => s.record?.startDate ?? Number.POSITIVE_INFINITY;
    return out.sort((a, b) => start(a) - start(b));
  }

  readJournal<T>(executionArn: string): { entries: T[]; problem?: string } {
    return readLines<T>(`${this.base(executionArn)}.journal.jsonl`);
  }

  readHistory(executionArn: string): HistoryEvent[] {
    // A history that cannot be read in full is shown up to the unreadable line.
    return readLines<HistoryEvent>(`${this.base(executionArn)}.history.jsonl`).entries;
  }

  /** When the execution's record was last written (for records that cannot be read). */
  modifiedAt(executionArn: string): number {
    try {
      return statSync(`${this.base(executionArn)}.json`).mtimeMs / 1000;
    } catch {
      return Date.now() / 1000;
    }
  }

  open(executionArn: string): ExecutionFiles {
    const base = this.base(executionArn);
    mkdirSync(join(base, '..'), { recursive: true });
    let journal: number | undefined = openSync(`${base}.journal.jsonl`, 'a');
    let history: number | undefined = openSync(`${base}.history.jsonl`, 'a');
    return {
      appendJournal: (entry) => {
        if (journal !== undefined) writeSync(journal, `${JSON.stringify(entry)}\n`);
      },
      appendHistory: (event) => {
        if (history !== undefined) writeSync(history, `${JSON.stringify(event)}\n`);
      },
      close: () => {
        if (journal !== undefined) closeSync(journal);
        if (history !== undefined) closeSync(history);
        journal = history = undefined;
      },
    };
  }

  /** Forget finished executions that stopped before `before` (epoch seconds), as AWS does after 90 days. */
  prune(before: number): number {
    let removed = 0;
    for (const s of this.list()) {
      if (!s.record || s.record.status === 'RUNNING' || (s.record.stopDate ?? Number.POSITIVE_INFINITY) >= before) continue;
      const base = this.base(s.executionArn);
      for (const suffix of ['.json', '.journal.jsonl', '.history.jsonl']) rmSync(`${base}${suffix}`, { force: true });
      removed++;
    }
    return removed;
  }

  private base(executionArn: string): string {
    const { machine, name } = executionParts(executionArn);
    return join(this.executionsDir, machine, name);
  }
}

function readLines<T>(file: string): { entries: T[]; problem?: string } {
  if (!existsSync(file)) return { entries: [] };
  return parseJsonLines<T>(readFileSync(file, 'utf8'));
}

/** Write a whole file so that a crash leaves either the old or the new content. */
function atomicWrite(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content);
  renameSync(tmp, file);
}
