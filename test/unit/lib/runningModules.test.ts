/**
 * What a node runs as the cluster view and the degraded-repair check see it (functions/lib/nodes.ts
 * runningModules): the agent's last heartbeat report, except modules the orchestrator changed (and
 * the agent confirmed) after that heartbeat. The full-suite run of convergence.test.ts once read a
 * node a deployment had just rolled back as still "Converging" because its last report predated the
 * rollback.
 */
import { describe, expect, it } from 'vitest';
import { runningModules } from '../../../functions/lib/nodes.ts';

const reported = (version: string) => ({ version, loadedAt: at(0) });
const at = (s: number) => new Date(Date.UTC(2026, 10, 30, 12, 0, s)).toISOString();

describe('runningModules', () => {
  it('is the ledger for a fleet-managed node (no heartbeat report)', () => {
    expect(runningModules({ modules: { a: { version: '1.0.0', updatedAt: at(1) } } })).toEqual({ a: { version: '1.0.0', updatedAt: at(1) } });
  });

  it('is the heartbeat report when the ledger is older than the last heartbeat', () => {
    const n = {
      modules: { a: { version: '1.1.0', updatedAt: at(1) } },
      reportedModules: { a: reported('1.0.0') },
      lastSeenAt: at(5),
    };
    expect(runningModules(n).a.version).toBe('1.0.0');
  });

  it('takes a module the orchestrator changed after the last heartbeat from the ledger, the others from the report', () => {
    const n = {
      modules: { a: { version: '1.0.0', previousVersion: '1.1.0', updatedAt: at(9) }, b: { version: '2.0.0', updatedAt: at(1) } },
      reportedModules: { a: reported('1.1.0'), b: reported('2.1.0'), c: reported('0.1.0') },
      lastSeenAt: at(5),
    };
    expect(Object.fromEntries(Object.entries(runningModules(n)).map(([m, s]) => [m, s.version]))).toEqual({ a: '1.0.0', b: '2.1.0', c: '0.1.0' });
  });

  it('trusts the ledger over a report with no heartbeat time', () => {
    const n = { modules: { a: { version: '1.0.0', updatedAt: at(1) } }, reportedModules: { a: reported('0.9.0') } };
    expect(runningModules(n).a.version).toBe('1.0.0');
  });
});
