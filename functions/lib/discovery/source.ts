/**
 * Discovery sources: systems other than self-enrolment that say which nodes an environment has
 * (etcd today). A source only lists and watches; the reconciler (reconcile.ts) decides what the
 * Nodes table does about it, so every source gets the same SSRF guard, ownership rule and audit.
 */
import { ENVIRONMENTS, type Environment } from '../../domain/environments.ts';

export interface DiscoveredNode {
  environment: Environment;
  nodeId: string;
  /** Base URL of the node's agent, as registered; checked against AGENT_ALLOWED_HOSTS before use. */
  agentUrl: string;
  colour?: 'blue' | 'green';
  labels?: Record<string, string>;
  /** Where the source keeps it (an etcd key), for audit and error messages. */
  ref: string;
}

/** An entry the source holds but that does not describe a node (bad key or value). */
export interface InvalidEntry {
  ref: string;
  reason: string;
}

export interface Listing {
  nodes: DiscoveredNode[];
  invalid: InvalidEntry[];
}

export type DiscoveryEvent =
  | { type: 'put'; node: DiscoveredNode }
  | { type: 'delete'; environment: Environment; nodeId: string; ref: string }
  | { type: 'invalid'; entry: InvalidEntry };

export interface DiscoverySource {
  /** Recorded on every node it adds (`source`) and in audit details; ownership is by this name. */
  readonly name: string;
  /** Everything registered now. */
  list(): Promise<Listing>;
  /**
   * Changes after the last list(), until the returned stop function is called. `onResync` asks
   * the caller for a full list-and-reconcile (the source lost track, e.g. history was compacted).
   */
  watch(onEvent: (e: DiscoveryEvent) => void, onResync: (reason: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;

/** `<environment>/<nodeId>` under a prefix; the environment may be written in any case. */
export function parseNodePath(rest: string): { environment: Environment; nodeId: string } | { error: string } {
  const parts = rest.split('/');
  if (parts.length !== 2) return { error: 'key is not <prefix><environment>/<nodeId>' };
  const environment = ENVIRONMENTS.find((e) => e.toLowerCase() === parts[0].toLowerCase());
  if (!environment) return { error: `unknown environment "${parts[0]}" (one of ${ENVIRONMENTS.join(', ')})` };
  if (!NODE_ID.test(parts[1])) return { error: `node id "${parts[1]}" is not 1-63 letters, digits, '.', '_' or '-'` };
  return { environment, nodeId: parts[1] };
}

/** The JSON value of a node entry: `{ agentUrl, colour?, labels? }`. */
export function parseNodeValue(raw: string): Pick<DiscoveredNode, 'agentUrl' | 'colour' | 'labels'> | { error: string } {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return { error: 'value is not JSON' };
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return { error: 'value is not a JSON object' };
  const { agentUrl, colour, labels } = v as Record<string, unknown>;
  if (typeof agentUrl !== 'string' || !agentUrl || agentUrl.length > 2048) return { error: 'agentUrl is missing or not a string' };
  if (colour !== undefined && colour !== 'blue' && colour !== 'green') return { error: 'colour must be "blue" or "green"' };
  if (labels !== undefined) {
    if (!labels || typeof labels !== 'object' || Array.isArray(labels)) return { error: 'labels must be an object of strings' };
    const entries = Object.entries(labels);
    if (entries.length > 32 || !entries.every(([k, l]) => LABEL_KEY.test(k) && typeof l === 'string' && l.length <= 256)) {
      return { error: 'labels must be at most 32 short string pairs' };
    }
  }
  return { agentUrl, colour: colour as DiscoveredNode['colour'], labels: labels as Record<string, string> | undefined };
}

/** One entry (key under the prefix, value) as a node or the reason it is not one. */
export function parseEntry(prefix: string, key: string, value: string): DiscoveredNode | InvalidEntry {
  if (!key.startsWith(prefix)) return { ref: key, reason: `key is not under ${prefix}` };
  const path = parseNodePath(key.slice(prefix.length));
  if ('error' in path) return { ref: key, reason: path.error };
  const body = parseNodeValue(value);
  if ('error' in body) return { ref: key, reason: body.error };
  return { ...path, ...body, ref: key };
}

export const isInvalid = (e: DiscoveredNode | InvalidEntry): e is InvalidEntry => 'reason' in e;
