/**
 * WsEvents: operators' live events (docs/adr/0028-live-events.md). Two triggers:
 *
 * - the Deployments and Nodes tables' change streams (DynamoDB Streams event source mapping on
 *   AWS; localcloud/streams.ts polls DynamoDB Local's streams and invokes it the same way): each
 *   record becomes zero or more events (domain/liveEvents.ts), numbered and stored once
 *   (lib/liveEvents.ts), then posted to the subscribed operators' connections;
 * - its schedule (no Records): a keepalive `ping` to every operator connection.
 *
 * Failures of one record fail the batch, which the event source mapping retries (numbering is
 * idempotent per record); delivery failures to one client never fail it.
 */
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { clusterMetrics, eventFromNodeChange, eventsFromDeploymentChange, type LiveEventBody, type NodeImage } from '../../domain/liveEvents.ts';
import type { DeploymentRecord } from '../../domain/deployment.ts';
import type { Environment } from '../../domain/environments.ts';
import { type EventSource, fanOut, numberEventBatch, pingConnections, subscribedConnections } from '../../lib/liveEvents.ts';
import { listNodes } from '../../lib/nodes.ts';
import { tableName } from '../../lib/tables.ts';
import { logger } from '../../lib/telemetry.ts';

const image = <T>(i: Record<string, unknown> | undefined): T | undefined =>
  i ? (unmarshall(i as Record<string, AttributeValue>, { wrapNumbers: false }) as T) : undefined;

/** `arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>` → `<name>`. */
const tableOf = (arn: string | undefined) => /:table\/([^/]+)\/stream\//.exec(arn ?? '')?.[1];

function eventsOf(record: DynamoDBRecord, table: string | undefined): LiveEventBody[] {
  const oldImage = record.dynamodb?.OldImage;
  const newImage = record.dynamodb?.NewImage;
  if (table === tableName('deployments')) return eventsFromDeploymentChange(image<DeploymentRecord>(oldImage), image<DeploymentRecord>(newImage));
  if (table === tableName('nodes')) {
    const e = eventFromNodeChange(image<NodeImage>(oldImage), image<NodeImage>(newImage));
    return e ? [e] : [];
  }
  return [];
}

export async function handler(event: Partial<DynamoDBStreamEvent>): Promise<{ events: number; posted: number } | { pinged: number }> {
  if (!event.Records) {
    const r = await pingConnections();
    return { pinged: r.posted };
  }
  const sources: EventSource[] = [];
  const touched = new Set<Environment>();
  for (const record of event.Records) {
    const table = tableOf(record.eventSourceARN);
    const bodies = eventsOf(record, table);
    if (!bodies.length) continue;
    sources.push({ sourceId: `${table}#${record.dynamodb?.SequenceNumber ?? record.eventID}`, bodies });
    if (table === tableName('nodes')) for (const b of bodies) if (b.environment) touched.add(b.environment);
  }
  // An environment whose nodes changed gets its totals once per batch, after its node events.
  for (const environment of touched) {
    const batchId = event.Records.at(-1)?.dynamodb?.SequenceNumber ?? event.Records.at(-1)?.eventID ?? String(Date.now());
    sources.push({ sourceId: `cluster#${environment}#${batchId}`, bodies: [clusterMetrics(environment, await listNodes(environment))] });
  }
  // The whole batch numbered at once: one counter update and a transaction per ~50 records, not two writes per record.
  const numbered = await numberEventBatch(sources);
  if (!numbered.length) return { events: 0, posted: 0 };
  const connections = await subscribedConnections();
  const result = await fanOut(numbered, connections);
  if (result.failed) logger.warn('some events were not delivered; their clients replay them', { ...result });
  return { events: numbered.length, posted: result.posted };
}
