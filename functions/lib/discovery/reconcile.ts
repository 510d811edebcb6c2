/**
 * Makes the Nodes table follow a discovery source: nodes it lists join their environment, nodes
 * it no longer lists leave. Only nodes the source added are ever changed or removed (the `source`
 * attribute), every address passes the SSRF guard first, and every change or refusal is audited.
 */
import { checkAgentAddress } from '../../domain/ssrf.ts';
import { ENVIRONMENTS, type Environment } from '../../domain/environments.ts';
import { agentClient } from '../agentClient.ts';
import { audit as writeAudit, type AuditEvent } from '../audit.ts';
import { config } from '../config.ts';
import { listNodes, removeDiscoveredNode, upsertDiscoveredNode, type DiscoveredNodeRecord, type NodeRecord } from '../nodes.ts';
import type { DiscoveredNode, DiscoveryEvent, DiscoverySource, InvalidEntry, Listing } from './source.ts';

export interface NodeStore {
  list(environment: Environment): Promise<NodeRecord[]>;
  upsert: typeof upsertDiscoveredNode;
  remove: typeof removeDiscoveredNode;
}

export interface ReconcilerDeps {
  store?: NodeStore;
  audit?: (event: AuditEvent) => Promise<void>;
  /** AGENT_ALLOWED_HOSTS, read at each check so a changed setting applies at once. */
  allowlist?: () => string[];
  /** What a joining node runs now (its agent's health report); undefined if it cannot say. */
  probe?: (node: Pick<NodeRecord, 'nodeId' | 'address'>) => Promise<NodeRecord['modules'] | undefined>;
}

export interface PassSummary {
  joined: string[];
  updated: string[];
  left: string[];
  refused: string[];
}

const defaultProbe = async (node: Pick<NodeRecord, 'nodeId' | 'address'>): Promise<NodeRecord['modules'] | undefined> => {
  try {
    const h = await agentClient.health(node);
    return Object.fromEntries(
      Object.entries(h.modules ?? {}).map(([m, s]) => [m, { version: s.version, previousVersion: s.previousVersion, updatedAt: s.loadedAt }]),
    );
  } catch {
    // Not reachable yet (still booting): it joins with no modules; a refresh or deploy learns them.
    return undefined;
  }
};

export const nodeSubject = (environment: Environment, nodeId: string) => `node#${environment}/${nodeId}`;

export class Reconciler {
  private readonly store: NodeStore;
  private readonly audit: (event: AuditEvent) => Promise<void>;
  private readonly allowlist: () => string[];
  private readonly probe: NonNullable<ReconcilerDeps['probe']>;
  private readonly actor: string;
  /** Refusals already audited, by entry: a bad key is reported once, not on every pass. */
  private readonly refusedRefs = new Map<string, string>();

  constructor(
    readonly source: Pick<DiscoverySource, 'name'>,
    deps: ReconcilerDeps = {},
  ) {
    this.store = deps.store ?? { list: listNodes, upsert: upsertDiscoveredNode, remove: removeDiscoveredNode };
    this.audit = deps.audit ?? writeAudit;
    this.allowlist = deps.allowlist ?? config.agentAllowedHosts;
    this.probe = deps.probe ?? defaultProbe;
    this.actor = `system:discovery-${source.name}`;
  }

  /** One full pass: the table ends up holding exactly the source's valid, allowed nodes (of its own). */
  async reconcile(listing: Listing): Promise<PassSummary> {
    const summary: PassSummary = { joined: [], updated: [], left: [], refused: [] };
    // Entries gone from the source are forgotten, so one that comes back bad is reported again.
    const present = new Set([...listing.invalid, ...listing.nodes].map((e) => e.ref));
    for (const ref of this.refusedRefs.keys()) if (!present.has(ref)) this.refusedRefs.delete(ref);
    for (const entry of listing.invalid) if (await this.refuse(entry)) summary.refused.push(entry.ref);
    const wanted = new Set<string>();
    for (const node of listing.nodes) {
      const outcome = await this.join(node);
      if (outcome === 'refused') summary.refused.push(node.ref);
      else {
        wanted.add(`${node.environment}/${node.nodeId}`);
        if (outcome === 'added') summary.joined.push(`${node.environment}/${node.nodeId}`);
        if (outcome === 'updated') summary.updated.push(`${node.environment}/${node.nodeId}`);
      }
    }
    for (const environment of ENVIRONMENTS) {
      for (const n of await this.store.list(environment)) {
        if ((n as DiscoveredNodeRecord).source !== this.source.name || wanted.has(`${environment}/${n.nodeId}`)) continue;
        if (await this.leave(environment, n.nodeId, 'no longer registered')) summary.left.push(`${environment}/${n.nodeId}`);
      }
    }
    return summary;
  }

  /** One change from a watch. */
  async apply(event: DiscoveryEvent): Promise<void> {
    if (event.type === 'put') await this.join(event.node);
    else if (event.type === 'delete') {
      this.refusedRefs.delete(event.ref);
      await this.leave(event.environment, event.nodeId, 'key deleted or its lease expired');
    } else await this.refuse(event.entry);
  }

  /** Add or update one node; a refused address also takes out the node if this source had added it. */
  private async join(node: DiscoveredNode): Promise<'added' | 'updated' | 'unchanged' | 'refused'> {
    const check = checkAgentAddress(node.agentUrl, this.allowlist());
    if (!check.ok) {
      await this.refuse({ ref: node.ref, reason: `agentUrl refused: ${check.reason}` }, node);
      await this.leave(node.environment, node.nodeId, `agentUrl refused: ${check.reason}`);
      return 'refused';
    }
    let probed: NodeRecord['modules'] | undefined;
    const r = await this.store.upsert(
      { environment: node.environment, nodeId: node.nodeId, address: node.agentUrl, colour: node.colour, labels: node.labels, source: this.source.name },
      async () => {
        probed = await this.probe({ nodeId: node.nodeId, address: node.agentUrl });
        return probed ?? {};
      },
    );
    if (r.outcome === 'owned-elsewhere') {
      await this.refuse({ ref: node.ref, reason: `node id is already registered by ${r.owner}` }, node);
      return 'refused';
    }
    this.refusedRefs.delete(node.ref);
    if (r.outcome === 'unchanged') return 'unchanged';
    const details = { source: this.source.name, ref: node.ref, address: node.agentUrl, colour: node.colour ?? null, labels: node.labels ?? {} };
    if (r.outcome === 'added') {
      await this.audit({
        subject: nodeSubject(node.environment, node.nodeId),
        category: 'node',
        action: 'node.joined',
        actor: this.actor,
        details: { ...details, modulesKnown: probed !== undefined },
      });
    } else {
      const before = { address: r.previous?.address, colour: r.previous?.colour ?? null, labels: r.previous?.labels ?? {} };
      await this.audit({
        subject: nodeSubject(node.environment, node.nodeId),
        category: 'node',
        action: 'node.updated',
        actor: this.actor,
        details: { ...details, before },
      });
    }
    return r.outcome;
  }

  private async leave(environment: Environment, nodeId: string, reason: string): Promise<boolean> {
    const removed = await this.store.remove(environment, nodeId, this.source.name);
    if (!removed) return false;
    await this.audit({
      subject: nodeSubject(environment, nodeId),
      category: 'node',
      action: 'node.left',
      actor: this.actor,
      details: { source: this.source.name, reason, address: removed.address },
    });
    return true;
  }

  /** Audit a refused entry once per reason; true if this call audited it. */
  private async refuse(entry: InvalidEntry, node?: DiscoveredNode): Promise<boolean> {
    if (this.refusedRefs.get(entry.ref) === entry.reason) return false;
    this.refusedRefs.set(entry.ref, entry.reason);
    const subject = node ? nodeSubject(node.environment, node.nodeId) : `discovery#${this.source.name}`;
    await this.audit({
      subject,
      category: 'node',
      action: 'node.refused',
      actor: this.actor,
      details: { source: this.source.name, ref: entry.ref, reason: entry.reason, address: node?.agentUrl },
    });
    return true;
  }
}
