/**
 * Agent side of convergence: the orchestrator answers a heartbeat with the commands that bring the
 * node to its environment's desired state (functions/lib/convergence.ts). They are the protocol's
 * own deploy and rollback requests, and run through the agent's own `deploy` / `rollback`, so they
 * get every check a deployment's call gets (signature and chain against the agent's trust roots,
 * digest, one command per module at a time, idempotency by deployment id).
 */
import { z } from 'zod';
import { moduleNameSchema } from '../domain/manifest.ts';
import type { ConvergenceFailure } from '../domain/convergence.ts';
import type { DeployRequest, ModuleOperationResult, RollbackRequest } from './protocol.ts';

const deployCommand = z.object({
  action: z.literal('deploy'),
  module: moduleNameSchema,
  from: z.string().nullable(),
  to: z.string(),
  request: z.object({ deploymentId: z.string().min(1), version: z.string().min(1), artifactUrl: z.string().min(1), sha256: z.string().min(1) }).passthrough(),
});
const rollbackCommand = z.object({
  action: z.literal('rollback'),
  module: moduleNameSchema,
  from: z.string().nullable(),
  to: z.null(),
  request: z.object({ deploymentId: z.string().min(1), toVersion: z.string().nullable() }),
});
const commandSchema = z.discriminatedUnion('action', [deployCommand, rollbackCommand]);

/** One command of a heartbeat answer (`converge`): a protocol request and the change it makes, for the log. */
export type ConvergeCommand =
  | { action: 'deploy'; module: string; from: string | null; to: string; request: DeployRequest }
  | { action: 'rollback'; module: string; from: string | null; to: null; request: RollbackRequest };

export interface ConvergenceTarget {
  deploy(module: string, req: DeployRequest): Promise<ModuleOperationResult>;
  rollback(module: string, req: RollbackRequest): Promise<ModuleOperationResult>;
  /** What the node runs now, per module. */
  readonly modules: Record<string, { version: string }>;
}

export interface ConvergerOptions {
  /** Wait before retrying a failed command: doubles per failure from `retryBaseMs` up to `retryMaxMs`. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  now?: () => number;
}

const describeCommand = (c: ConvergeCommand) => `${c.module} ${c.from ?? 'none'} → ${c.to ?? 'none'} (${c.request.deploymentId})`;

export class Converger {
  private readonly inFlight = new Set<string>();
  /**
   * Commands done lately: answers to heartbeats sent before a command finished still carry it.
   * Running it again would only be an idempotent replay; it is skipped without a log line.
   */
  private readonly done = new Set<string>();
  private readonly failures = new Map<string, { count: number; nextAt: number; failure: ConvergenceFailure }>();

  constructor(
    private readonly agent: ConvergenceTarget,
    private readonly log: (line: string) => void,
    private readonly opts: ConvergerOptions = {},
  ) {}

  /** Failures of commands the orchestrator still asks for, for the next heartbeat. */
  get failed(): ConvergenceFailure[] {
    return [...this.failures.values()].map((f) => f.failure);
  }

  /**
   * Run a heartbeat answer's commands (those not already running or waiting to be retried).
   * Resolves true when there is news for the orchestrator (something changed on the node, or a
   * command failed), so the caller heartbeats again at once.
   */
  async run(answer: unknown): Promise<boolean> {
    const commands = this.parse(answer);
    const keys = new Set(commands.map((c) => keyOf(c)));
    // A command the orchestrator no longer sends (the desired state moved on) is not retried.
    for (const key of this.failures.keys()) if (!keys.has(key)) this.failures.delete(key);
    const now = (this.opts.now ?? Date.now)();
    // Done means done only while it still holds: a node moved off the version since (by hand, a
    // restored state file) runs the same command again.
    for (const c of commands) if (this.done.has(keyOf(c)) && (this.agent.modules[c.module]?.version ?? null) !== c.to) this.done.delete(keyOf(c));
    const due = commands.filter((c) => !this.inFlight.has(keyOf(c)) && !this.done.has(keyOf(c)) && (this.failures.get(keyOf(c))?.nextAt ?? 0) <= now);
    const changed = await Promise.all(due.map((c) => this.runOne(c)));
    return changed.some(Boolean);
  }

  private parse(answer: unknown): ConvergeCommand[] {
    if (!Array.isArray(answer)) return [];
    return answer.flatMap((raw) => {
      const parsed = commandSchema.safeParse(raw);
      // The request body is checked further by the agent itself, as any request (manifest, signature, chain).
      if (parsed.success) return [parsed.data as ConvergeCommand];
      this.log(`convergence command ignored: ${parsed.error.issues[0]?.message ?? 'malformed'}`);
      return [];
    });
  }

  private async runOne(c: ConvergeCommand): Promise<boolean> {
    const key = keyOf(c);
    this.inFlight.add(key);
    this.log(`converging ${describeCommand(c)}`);
    try {
      const r =
        c.action === 'deploy'
          ? await this.agent.deploy(c.module, c.request as DeployRequest)
          : await this.agent.rollback(c.module, c.request as RollbackRequest);
      this.failures.delete(key);
      this.done.add(key);
      if (this.done.size > DONE_KEPT) this.done.delete(this.done.values().next().value!);
      this.log(`converged ${c.module} to ${r.version ?? 'none'}${r.replayed ? ' (already applied)' : ''}`);
      return !r.replayed;
    } catch (e) {
      const err = e as { code?: unknown; message?: string };
      const failure = {
        module: c.module,
        deploymentId: c.request.deploymentId,
        code: typeof err.code === 'string' ? err.code : 'InternalError',
        message: String(err.message ?? e),
      };
      const count = (this.failures.get(key)?.count ?? 0) + 1;
      const wait = Math.min(this.opts.retryMaxMs ?? 300_000, (this.opts.retryBaseMs ?? 10_000) * 2 ** (count - 1));
      this.failures.set(key, { count, nextAt: (this.opts.now ?? Date.now)() + wait, failure });
      this.log(`convergence of ${describeCommand(c)} failed (${failure.code}): ${failure.message}; retrying in ${Math.round(wait / 1000)} s`);
      return true;
    } finally {
      this.inFlight.delete(key);
    }
  }
}

/** How many finished commands are remembered (a new desired state gets a new command id anyway). */
const DONE_KEPT = 100;

const keyOf = (c: ConvergeCommand) => `${c.request.deploymentId}:${c.module}`;
