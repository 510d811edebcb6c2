/**
 * The simulated fleet: one reference node agent (functions/agent) per node, each its own HTTP
 * server on localhost with its state on disk, registered in the Nodes table like real hosts.
 */
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BatchWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { NodeAgent, type Faults, type VerdictCache } from '../functions/agent/agent.ts';
import type { AgentKey } from '../functions/agent/protocol.ts';
import { ENVIRONMENTS, ENVIRONMENT_PROFILES, type Environment } from '../functions/domain/environments.ts';
import type { NodeRecord } from '../functions/lib/nodes.ts';
import { strategyFor } from '../functions/strategies/registry.ts';

/** Above this many nodes, an environment's agents share one HTTP host. */
const SHARED_HOST_THRESHOLD = 200;

const PREFIX: Record<Environment, string> = { Development: 'dev', QA: 'qa', Staging: 'stg', Production: 'prod' };

export type FleetSizes = Record<Environment, number>;
export const DEFAULT_FLEET: FleetSizes = Object.fromEntries(ENVIRONMENTS.map((e) => [e, ENVIRONMENT_PROFILES[e].defaultNodes])) as FleetSizes;

export interface FleetNode {
  environment: Environment;
  agent: NodeAgent;
  address: string;
}

export const nodeId = (env: Environment, i: number, total: number) => `${PREFIX[env]}-${String(i + 1).padStart(Math.max(2, String(total).length), '0')}`;

export class Fleet {
  readonly nodes = new Map<string, FleetNode>();

  constructor(
    private readonly dir: string,
    private readonly keys: () => AgentKey[],
    private readonly initialModules: Record<string, string>,
    /** Roots the agents verify module signatures against, as a real host's agent does. */
    private readonly trustRoots?: string[],
  ) {}

  /** One process is one host: its agents verify a given signed manifest once, not once per node. */
  private readonly verdicts: VerdictCache = new Map();

  private readonly hosts: Server[] = [];

  async start(sizes: FleetSizes): Promise<void> {
    for (const env of ENVIRONMENTS) {
      const total = sizes[env];
      // Small environments: one HTTP server per node, like real hosts. Large ones (thousands of
      // nodes) put their agents behind one host under /nodes/{id}, like containers behind an
      // ingress, so a 10,000-node fleet does not need 10,000 ports.
      const shared = total > SHARED_HOST_THRESHOLD;
      const cache = new Map<string, Buffer>();
      const agents = Array.from({ length: total }, (_, i) => {
        const id = nodeId(env, i, total);
        return new NodeAgent({
          nodeId: id,
          keys: this.keys,
          simulation: true,
          stateFile: join(this.dir, env, `${id}.json`),
          initialModules: this.initialModules,
          basePath: shared ? `/nodes/${id}` : undefined,
          // Agents on one host share a content-addressed cache, as a host-level cache would.
          artifactCache: shared ? cache : undefined,
          trustRoots: this.trustRoots,
          verdictCache: this.verdicts,
        });
      });
      if (!shared) {
        const addresses = await Promise.all(agents.map((a) => a.listen(0)));
        for (const [i, agent] of agents.entries()) this.nodes.set(agent.nodeId, { environment: env, agent, address: addresses[i] });
        continue;
      }
      const byId = new Map(agents.map((a) => [a.nodeId, a]));
      const host = createServer((req, res) => {
        const id = /^\/nodes\/([^/]+)\//.exec(req.url ?? '')?.[1];
        const agent = id ? byId.get(id) : undefined;
        if (!agent) {
          res.writeHead(404, { 'content-type': 'application/json' });
          return void res.end(JSON.stringify({ code: 'NotFound', message: `no agent at ${req.url}` }));
        }
        void agent.handle(req, res);
      });
      host.keepAliveTimeout = 30_000;
      await new Promise<void>((r) => host.listen(0, '127.0.0.1', r));
      this.hosts.push(host);
      const port = (host.address() as AddressInfo).port;
      for (const agent of agents) this.nodes.set(agent.nodeId, { environment: env, agent, address: `http://127.0.0.1:${port}/nodes/${agent.nodeId}` });
    }
  }

  /** Register every node as a real host would on boot: its address and what it runs now. */
  async register(ddb: DynamoDBDocumentClient, table: string): Promise<void> {
    const now = new Date().toISOString();
    const byEnv = new Map<Environment, FleetNode[]>();
    for (const n of this.nodes.values()) byEnv.set(n.environment, [...(byEnv.get(n.environment) ?? []), n]);
    const items: NodeRecord[] = [];
    for (const [env, nodes] of byEnv) {
      nodes.forEach((n, i) => {
        const modules = Object.fromEntries(
          Object.entries(n.agent.modules).map(([m, s]) => [m, { version: s.version, previousVersion: s.previousVersion, updatedAt: s.loadedAt }]),
        );
        const item: NodeRecord = {
          environment: env,
          nodeId: n.agent.nodeId,
          address: n.address,
          // The simulated workload (functions/agent/agent.ts serveWorkload), where the local routers send traffic.
          workloadUrl: `${n.address}/workload`,
          // Blue-green environments split their nodes into two colours.
          colour: strategyFor(ENVIRONMENT_PROFILES[env].strategy).usesColours ? (i < nodes.length / 2 ? 'blue' : 'green') : undefined,
          modules,
          registeredAt: now,
        };
        items.push(item);
      });
    }
    for (let i = 0; i < items.length; i += 25 * 8) {
      await Promise.all(
        Array.from({ length: 8 }, async (_, j) => {
          let pending = items.slice(i + j * 25, i + (j + 1) * 25).map((Item) => ({ PutRequest: { Item } }));
          while (pending.length) {
            const r = await ddb.send(new BatchWriteCommand({ RequestItems: { [table]: pending } }));
            pending = (r.UnprocessedItems?.[table] ?? []) as typeof pending;
          }
        }),
      );
    }
  }

  agent(nodeId: string): NodeAgent {
    const n = this.nodes.get(nodeId);
    if (!n) throw new Error(`no node ${nodeId} in the simulated fleet`);
    return n.agent;
  }

  inject(nodeId: string, faults: Faults): void {
    this.agent(nodeId).setFaults(faults);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((n) => n.agent.close()));
    await Promise.all(
      this.hosts.map((h) => {
        h.closeAllConnections();
        return new Promise<void>((r) => h.close(() => r()));
      }),
    );
  }
}
