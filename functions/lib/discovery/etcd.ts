/**
 * The etcd discovery source: nodes registered under a key prefix, one key per node,
 * `<prefix><environment>/<nodeId>` → `{"agentUrl":"http://…","colour"?:…,"labels"?:{…}}`.
 * A key deleted, or expired with its lease, is a node gone. Uses the etcd v3 API over gRPC
 * (the `etcd3` client: docs/adr/0009-discovery-sources.md).
 */
import { Etcd3, type IOptions, type Watcher } from 'etcd3';
import { isInvalid, parseEntry, parseNodePath, type DiscoveryEvent, type DiscoverySource, type Listing } from './source.ts';

export const DEFAULT_ETCD_PREFIX = '/kmod/nodes/';

export interface EtcdSourceOptions {
  /** Client URLs, e.g. http://10.0.0.5:2379. */
  endpoints: string[];
  prefix?: string;
  /** Extra client options (TLS credentials, auth); the defaults suit a plain-HTTP cluster. */
  client?: Omit<IOptions, 'hosts'>;
}

export class EtcdSource implements DiscoverySource {
  readonly name = 'etcd';
  readonly prefix: string;
  private readonly client: Etcd3;
  /** Revision of the last list: the watch starts right after it, so no change falls between. */
  private revision: string | undefined;

  constructor(opts: EtcdSourceOptions) {
    if (!opts.endpoints.length) throw new Error('etcd discovery needs at least one endpoint');
    this.prefix = (opts.prefix ?? DEFAULT_ETCD_PREFIX).replace(/\/?$/, '/');
    // Short dial timeout: a scheduled pass should fail fast and retry next minute, not hang.
    this.client = new Etcd3({ dialTimeout: 5000, ...opts.client, hosts: opts.endpoints });
  }

  async list(): Promise<Listing> {
    const r = await this.client.getAll().prefix(this.prefix).exec();
    this.revision = r.header.revision;
    const out: Listing = { nodes: [], invalid: [] };
    for (const kv of r.kvs) {
      const entry = parseEntry(this.prefix, kv.key.toString(), kv.value.toString());
      if (isInvalid(entry)) out.invalid.push(entry);
      else out.nodes.push(entry);
    }
    return out;
  }

  async watch(onEvent: (e: DiscoveryEvent) => void, onResync: (reason: string) => void): Promise<() => Promise<void>> {
    if (this.revision === undefined) await this.list();
    const builder = this.client
      .watch()
      .prefix(this.prefix)
      .startRevision(String(BigInt(this.revision ?? '0') + 1n));
    const watcher: Watcher = await builder.create();
    watcher.on('put', (kv) => {
      const entry = parseEntry(this.prefix, kv.key.toString(), kv.value.toString());
      onEvent(isInvalid(entry) ? { type: 'invalid', entry } : { type: 'put', node: entry });
    });
    watcher.on('delete', (kv) => {
      const key = kv.key.toString();
      const path = parseNodePath(key.slice(this.prefix.length));
      // A deleted key that never named a node removes nothing.
      if (!('error' in path)) onEvent({ type: 'delete', ...path, ref: key });
    });
    // The client re-establishes watches by itself; a compacted revision or a long outage may
    // still have lost events, so the owner re-lists after every reconnect.
    watcher.on('connected', () => onResync('watch reconnected'));
    watcher.on('error', (e) => onResync(`watch error: ${e.message}`));
    return async () => {
      await watcher.cancel();
    };
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

/** The source from a comma-separated endpoint list (KMOD_ETCD_ENDPOINTS / ETCD_ENDPOINTS). */
export function etcdSourceFrom(endpoints: string, prefix?: string): EtcdSource {
  return new EtcdSource({
    endpoints: endpoints
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    prefix: prefix || undefined,
  });
}
