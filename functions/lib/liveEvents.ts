/**
 * Operators' live events (docs/adr/0028-live-events.md): numbering them on one global, durable
 * sequence in the Events table, replaying what a client missed (`after`), and fanning them out to
 * the operators' connections whose roles and subscriptions take them. Runs in the WsEvents
 * function, off the deployment's path: the task handlers only write their tables; the tables'
 * change streams bring the changes here.
 */
import { GetCommand, paginateScan, QueryCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { currentSessionRoles } from '../domain/accessTokens.ts';
import { delivers, type LiveEvent, type LiveEventBody, matches, mayRead, seqKey, type SubscriptionKey } from '../domain/liveEvents.ts';
import { mapLimit } from './agentClient.ts';
import { dynamo } from './aws.ts';
import { config } from './config.ts';
import { closeConnection, dropConnection, type OperatorConnectionRecord, postToConnection } from './connections.ts';
import { lookupEntry } from './directory.ts';
import { isConditionFailure } from './deployments.ts';
import { tableName, TTL_ATTRIBUTE } from './tables.ts';
import { logger } from './telemetry.ts';

const STREAM = 'all';
const COUNTER = { stream: '#counter', sk: 'seq' };
/** DynamoDB transactions take at most 100 items: the source marker and up to 99 events. */
const MAX_EVENTS_PER_SOURCE = 99;

interface StoredEvent {
  stream: string;
  sk: string;
  seq: number;
  payload: string;
}

const expiry = (now: number) => Math.floor(now / 1000) + Math.round(config.eventRetentionHours() * 3600);

/** The last seq given out (0 before the first event). */
export async function latestSeq(): Promise<number> {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('events'), Key: COUNTER, ConsistentRead: true }));
  return Number(r.Item?.value ?? 0);
}

/**
 * Number and store the events one stream record made, once: a retried batch (the event source
 * mapping retries a failed one) finds the record's marker and gets the events stored the first
 * time, with their seqs, so they are posted again but never numbered twice. Seqs increase along
 * the order records are processed; a retried record may leave a gap (a seq given out, unused).
 */
export async function numberEvents(sourceId: string, bodies: LiveEventBody[], now = Date.now()): Promise<LiveEvent[]> {
  if (!bodies.length) return [];
  const list = bodies.slice(0, MAX_EVENTS_PER_SOURCE);
  if (bodies.length > list.length) logger.warn('a change made more events than one record holds; the rest are dropped', { sourceId, count: bodies.length });
  const counter = await dynamo().send(
    new UpdateCommand({
      TableName: tableName('events'),
      Key: COUNTER,
      UpdateExpression: 'ADD #v :n',
      ExpressionAttributeNames: { '#v': 'value' },
      ExpressionAttributeValues: { ':n': list.length },
      ReturnValues: 'UPDATED_NEW',
    }),
  );
  const last = Number(counter.Attributes?.value);
  const events: LiveEvent[] = list.map((b, i) => ({ ...b, seq: last - list.length + 1 + i }));
  const expiresAt = expiry(now);
  try {
    await dynamo().send(
      new TransactWriteCommand({
        TransactItems: [
          {
            Put: {
              TableName: tableName('events'),
              Item: { stream: '#source', sk: sourceId, seqs: events.map((e) => e.seq), [TTL_ATTRIBUTE]: expiresAt },
              ConditionExpression: 'attribute_not_exists(sk)',
            },
          },
          ...events.map((e) => ({
            Put: {
              TableName: tableName('events'),
              Item: { stream: STREAM, sk: seqKey(e.seq), seq: e.seq, payload: JSON.stringify(e), [TTL_ATTRIBUTE]: expiresAt } satisfies StoredEvent & {
                [TTL_ATTRIBUTE]: number;
              },
            },
          })),
        ],
      }),
    );
    return events;
  } catch (e) {
    if (!isConditionFailure(e) && (e as { name?: string }).name !== 'TransactionCanceledException') throw e;
  }
  // Numbered before: the events as they were stored then.
  const marker = await dynamo().send(new GetCommand({ TableName: tableName('events'), Key: { stream: '#source', sk: sourceId }, ConsistentRead: true }));
  const seqs = (marker.Item?.seqs as number[] | undefined) ?? [];
  if (!seqs.length) throw new Error(`events of ${sourceId} could not be stored`);
  return readRange(seqs[0] - 1, seqs[seqs.length - 1], seqs.length);
}

async function readRange(after: number, upTo: number | undefined, limit: number): Promise<LiveEvent[]> {
  const out: LiveEvent[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const r = await dynamo().send(
      new QueryCommand({
        TableName: tableName('events'),
        KeyConditionExpression: upTo === undefined ? '#s = :s AND sk > :after' : '#s = :s AND sk BETWEEN :from AND :to',
        ExpressionAttributeNames: { '#s': 'stream' },
        ExpressionAttributeValues:
          upTo === undefined ? { ':s': STREAM, ':after': seqKey(after) } : { ':s': STREAM, ':from': seqKey(after + 1), ':to': seqKey(upTo) },
        ConsistentRead: true,
        Limit: limit - out.length,
        ExclusiveStartKey: start,
      }),
    );
    for (const item of r.Items ?? []) out.push(JSON.parse((item as StoredEvent).payload) as LiveEvent);
    start = r.LastEvaluatedKey;
  } while (start && out.length < limit);
  return out;
}

/**
 * What a client missed: the events after `after` that its roles may read and the subscription
 * matches, oldest first, at most EVENT_REPLAY_LIMIT of them read (`truncated` when more were
 * there: the client reloads the state over REST). Events older than the retention are gone.
 */
export async function replay(after: number, subscription: SubscriptionKey, roles: readonly string[]): Promise<{ events: LiveEvent[]; truncated: boolean }> {
  const limit = config.eventReplayLimit();
  const read = await readRange(after, undefined, limit);
  return { events: read.filter((e) => mayRead(roles, e.type) && matches([subscription], e)), truncated: read.length >= limit };
}

/** Operators' connections that subscribed to something (agents' connections are never posted events). */
export async function subscribedConnections(): Promise<OperatorConnectionRecord[]> {
  const out: OperatorConnectionRecord[] = [];
  for await (const page of paginateScan(
    { client: dynamo() },
    {
      TableName: tableName('connections'),
      FilterExpression: 'kind = :operator AND attribute_exists(subscriptions)',
      ExpressionAttributeValues: { ':operator': 'operator' },
    },
  ))
    out.push(...((page.Items ?? []) as OperatorConnectionRecord[]));
  return out;
}

export interface FanOutResult {
  connections: number;
  posted: number;
  gone: number;
  failed: number;
}

/**
 * Post each event to every connection that takes it, in seq order per connection, connections in
 * parallel (EVENT_FANOUT_CONCURRENCY). A connection found gone is forgotten ($disconnect may never
 * come for it); any other failure is logged and that connection's remaining events are left to
 * its replay — a slow or broken client never holds back the others.
 */
export async function fanOut(events: LiveEvent[], connections?: OperatorConnectionRecord[]): Promise<FanOutResult> {
  const result: FanOutResult = { connections: 0, posted: 0, gone: 0, failed: 0 };
  if (!events.length) return result;
  const targets = connections ?? (await subscribedConnections());
  result.connections = targets.length;
  await mapLimit(targets, config.eventFanOutConcurrency(), async (c) => {
    const subs = [...(c.subscriptions ?? [])];
    // The roles the directory gives now (cached DIRECTORY_CACHE_SECONDS), as the REST API does: a
    // disabled or removed principal's session ends here, a demoted one stops getting what it no longer may read.
    const roles = currentSessionRoles(c.roles ?? [], await lookupEntry(c.userId));
    if (!roles) {
      result.gone++;
      await dropConnection(c.connectionId).catch(() => undefined);
      await closeConnection(c.connectionId, { reason: 'the principal is disabled or no longer in the directory' }).catch(() => undefined);
      return;
    }
    for (const e of events) {
      if (!delivers(roles, subs, e)) continue;
      try {
        if ((await postToConnection(c.connectionId, JSON.stringify(e))) === 'gone') {
          result.gone++;
          await closeConnection(c.connectionId, { reason: 'gone when an event was posted' }).catch(() => undefined);
          return;
        }
        result.posted++;
      } catch (err) {
        result.failed++;
        logger.warn('could not post an event', { connectionId: c.connectionId, seq: e.seq, error: (err as Error).message });
        return;
      }
    }
  });
  return result;
}

/** Keepalive: a `ping` frame to every operator connection, so idle ones stay open (API Gateway drops them after 10 idle minutes) and dead ones are found. */
export async function pingConnections(now = new Date()): Promise<FanOutResult> {
  const result: FanOutResult = { connections: 0, posted: 0, gone: 0, failed: 0 };
  const all: OperatorConnectionRecord[] = [];
  for await (const page of paginateScan(
    { client: dynamo() },
    { TableName: tableName('connections'), FilterExpression: 'kind = :operator', ExpressionAttributeValues: { ':operator': 'operator' } },
  ))
    all.push(...((page.Items ?? []) as OperatorConnectionRecord[]));
  result.connections = all.length;
  const frame = JSON.stringify({ type: 'ping', at: now.toISOString(), seq: await latestSeq() });
  await mapLimit(all, config.eventFanOutConcurrency(), async (c) => {
    try {
      if ((await postToConnection(c.connectionId, frame)) === 'gone') {
        result.gone++;
        await closeConnection(c.connectionId, { reason: 'gone at a keepalive ping' }).catch(() => undefined);
      } else result.posted++;
    } catch {
      result.failed++;
    }
  });
  return result;
}
