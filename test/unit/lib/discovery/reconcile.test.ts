import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../../../functions/lib/audit.ts';
import { Reconciler, type NodeStore } from '../../../../functions/lib/discovery/reconcile.ts';
import { parseEntry, type DiscoveredNode, type Listing } from '../../../../functions/lib/discovery/source.ts';
import type { DiscoveredNodeRecord, NodeRecord } from '../../../../functions/lib/nodes.ts';

describe('etcd entries', () => {
  const P = '/kmod/nodes/';
  it('parse <prefix><environment>/<nodeId> → {agentUrl, colour?, labels?}, the environment in any case', () => {
    expect(parseEntry(P, '/kmod/nodes/staging/web-1', '{"agentUrl":"http://10.0.0.5:7070","colour":"blue","labels":{"rack":"a"}}')).toEqual({
      environment: 'Staging',
      nodeId: 'web-1',
      agentUrl: 'http://10.0.0.5:7070',
      colour: 'blue',
      labels: { rack: 'a' },
      ref: '/kmod/nodes/staging/web-1',
    });
  });
  it.each([
    ['/kmod/nodes/Development', '{}', 'key is not <prefix><environment>/<nodeId>'],
    ['/kmod/nodes/Development/a/b', '{}', 'key is not <prefix><environment>/<nodeId>'],
    ['/kmod/nodes/Dev/n1', '{}', 'unknown environment "Dev" (one of Development, QA, Staging, Production)'],
    ['/kmod/nodes/QA/-bad', '{}', `node id "-bad" is not 1-63 letters, digits, '.', '_' or '-'`],
    ['/kmod/nodes/QA/n1', 'not json', 'value is not JSON'],
    ['/kmod/nodes/QA/n1', '[]', 'value is not a JSON object'],
    ['/kmod/nodes/QA/n1', '{"agentUrl":1}', 'agentUrl is missing or not a string'],
    ['/kmod/nodes/QA/n1', '{"agentUrl":"http://x","colour":"red"}', 'colour must be "blue" or "green"'],
    ['/kmod/nodes/QA/n1', '{"agentUrl":"http://x","labels":{"a":1}}', 'labels must be at most 32 short string pairs'],
    ['/other/QA/n1', '{}', 'key is not under /kmod/nodes/'],
  ])('refuse %s = %s', (key, value, reason) => {
    expect(parseEntry(P, key, value)).toEqual({ ref: key, reason });
  });
});

/** The Nodes table as a map, with the data layer's ownership rules. */
function memoryStore(initial: (NodeRecord & { source?: string })[] = []) {
  const rows = new Map<string, DiscoveredNodeRecord>(initial.map((n) => [`${n.environment}/${n.nodeId}`, n as DiscoveredNodeRecord]));
  const store: NodeStore = {
    list: async (env) => [...rows.values()].filter((n) => n.environment === env),
    upsert: async (node, initialModules) => {
      const existing = rows.get(`${node.environment}/${node.nodeId}`);
      if (existing && existing.source !== node.source) return { outcome: 'owned-elsewhere', owner: existing.source ?? 'registration' };
      if (
        existing &&
        existing.address === node.address &&
        existing.colour === node.colour &&
        JSON.stringify(existing.labels ?? {}) === JSON.stringify(node.labels ?? {})
      )
        return { outcome: 'unchanged', previous: existing };
      const modules = existing ? existing.modules : await initialModules();
      rows.set(`${node.environment}/${node.nodeId}`, { ...existing, ...node, modules, registeredAt: existing?.registeredAt ?? 'now' });
      return existing ? { outcome: 'updated', previous: existing } : { outcome: 'added' };
    },
    remove: async (env, nodeId, source) => {
      const n = rows.get(`${env}/${nodeId}`);
      if (!n || n.source !== source) return undefined;
      rows.delete(`${env}/${nodeId}`);
      return n;
    },
  };
  return { rows, store };
}

function setup(initial: (NodeRecord & { source?: string })[] = []) {
  const { rows, store } = memoryStore(initial);
  const events: AuditEvent[] = [];
  let probes = 0;
  const reconciler = new Reconciler(
    { name: 'etcd' },
    {
      store,
      audit: async (e) => void events.push(e),
      allowlist: () => ['10.0.0.0/8'],
      probe: async () => {
        probes++;
        return { 'demo-kernel': { version: '1.0.0', updatedAt: 't' } };
      },
    },
  );
  return { rows, events, reconciler, probes: () => probes };
}

const node = (nodeId: string, agentUrl: string, extra: Partial<DiscoveredNode> = {}): DiscoveredNode => ({
  environment: 'QA',
  nodeId,
  agentUrl,
  ref: `/kmod/nodes/QA/${nodeId}`,
  ...extra,
});
const listing = (...nodes: DiscoveredNode[]): Listing => ({ nodes, invalid: [] });
const fleetNode: NodeRecord = { environment: 'QA', nodeId: 'qa-01', address: 'http://10.0.0.1:7070', modules: {}, registeredAt: 't' };

describe('the reconciler', () => {
  it('adds listed nodes with what their agent runs, updates changed ones and removes unlisted ones, auditing each', async () => {
    const { rows, events, reconciler, probes } = setup([fleetNode]);
    expect(await reconciler.reconcile(listing(node('n1', 'http://10.0.0.5:7070'), node('n2', 'http://10.0.0.6:7070')))).toMatchObject({
      joined: ['QA/n1', 'QA/n2'],
      left: [],
    });
    expect(rows.get('QA/n1')).toMatchObject({ source: 'etcd', address: 'http://10.0.0.5:7070', modules: { 'demo-kernel': { version: '1.0.0' } } });
    // Unchanged nodes cost no agent call and no audit event.
    expect(await reconciler.reconcile(listing(node('n1', 'http://10.0.0.5:7070'), node('n2', 'http://10.0.0.6:7070', { colour: 'green' })))).toMatchObject({
      joined: [],
      updated: ['QA/n2'],
      left: [],
    });
    expect(probes()).toBe(2);
    expect(await reconciler.reconcile(listing(node('n2', 'http://10.0.0.6:7070', { colour: 'green' })))).toMatchObject({ left: ['QA/n1'] });
    expect([...rows.keys()].sort()).toEqual(['QA/n2', 'QA/qa-01']);
    expect(events.map((e) => `${e.action} ${e.subject} ${e.actor}`)).toEqual([
      'node.joined node#QA/n1 system:discovery-etcd',
      'node.joined node#QA/n2 system:discovery-etcd',
      'node.updated node#QA/n2 system:discovery-etcd',
      'node.left node#QA/n1 system:discovery-etcd',
    ]);
    expect(events[2].details).toMatchObject({ colour: 'green', before: { colour: null } });
  });

  it('never changes or removes a node it did not add, even when an empty listing comes', async () => {
    const { rows, events, reconciler } = setup([fleetNode, { ...fleetNode, nodeId: 'qa-02', source: 'enrolment' } as NodeRecord]);
    expect(await reconciler.reconcile(listing(node('qa-01', 'http://10.0.0.9:7070')))).toMatchObject({ refused: ['/kmod/nodes/QA/qa-01'] });
    expect(await reconciler.reconcile(listing())).toMatchObject({ left: [] });
    expect(rows.get('QA/qa-01')?.address).toBe('http://10.0.0.1:7070');
    expect(rows.has('QA/qa-02')).toBe(true);
    expect(events.map((e) => [e.action, e.details?.reason])).toEqual([['node.refused', 'node id is already registered by registration']]);
  });

  it('refuses addresses the SSRF guard refuses, once per reason, and takes out a node of its own that moved there', async () => {
    const { rows, events, reconciler } = setup();
    await reconciler.reconcile(listing(node('n1', 'http://10.0.0.5:7070')));
    const moved = listing(node('n1', 'http://169.254.169.254/'), node('n2', 'http://example.com:7070'));
    expect(await reconciler.reconcile(moved)).toMatchObject({ refused: ['/kmod/nodes/QA/n1', '/kmod/nodes/QA/n2'] });
    await reconciler.reconcile(moved);
    expect(rows.size).toBe(0);
    // Gone from the source and back, still bad: reported again.
    await reconciler.reconcile(listing(node('n1', 'http://169.254.169.254/')));
    await reconciler.reconcile(moved);
    expect(events.map((e) => `${e.action} ${e.subject} ${e.details?.reason ?? ''}`)).toEqual([
      'node.joined node#QA/n1 ',
      'node.refused node#QA/n1 agentUrl refused: 169.254.169.254 is a link-local or metadata address',
      'node.left node#QA/n1 agentUrl refused: 169.254.169.254 is a link-local or metadata address',
      'node.refused node#QA/n2 agentUrl refused: example.com is not in the agent allowlist',
      'node.refused node#QA/n2 agentUrl refused: example.com is not in the agent allowlist',
    ]);
  });

  it('applies watch events: put, delete, invalid', async () => {
    const { rows, events, reconciler } = setup();
    await reconciler.apply({ type: 'put', node: node('n1', 'http://10.0.0.5:7070') });
    await reconciler.apply({ type: 'invalid', entry: { ref: '/kmod/nodes/QA/n9', reason: 'value is not JSON' } });
    await reconciler.apply({ type: 'delete', environment: 'QA', nodeId: 'n1', ref: '/kmod/nodes/QA/n1' });
    // Deleting what is not there (or not ours) audits nothing.
    await reconciler.apply({ type: 'delete', environment: 'QA', nodeId: 'n1', ref: '/kmod/nodes/QA/n1' });
    expect(rows.size).toBe(0);
    expect(events.map((e) => `${e.action} ${e.subject}`)).toEqual(['node.joined node#QA/n1', 'node.refused discovery#etcd', 'node.left node#QA/n1']);
  });
});
