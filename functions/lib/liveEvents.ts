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

/** The events one stream record (or one batch's cluster totals) made, under the id its marker is stored by. */
export interface EventSource {
  sourceId: string;
  bodies: LiveEventBody[];
}

/** DynamoDB transactions take at most 100 items. */
const MAX_TRANSACTION_ITEMS = 100;

/**
 * Number and store the events one stream record made, once: a retried batch (the event source
 * mapping retries a failed one) finds the record's marker and gets the events stored the first
 * time, with their seqs, so they are posted again but never numbered twice. Seqs increase along
 * the order records are processed; a retried record may leave a gap (a seq given out, unused).
 */
export async function numberEvents(sourceId: string, bodies: LiveEventBody[], now = Date.now()): Promise<LiveEvent[]> {
  return numberEventBatch([{ sourceId, bodies }], now);
}

/**
 * Number and store the events of a whole stream batch, in the order of its records: the seqs of
 * every record reserved with one `ADD`, the records' markers and events written in as few
 * transactions as fit (each record whole in one: its marker conditioned on not existing, with its
 * events), rather than an `ADD` and a transaction per record (docs/adr/0028-live-events.md). A
 * transaction refused because a record was numbered before (a retried batch) is redone record by
 * record: a record found numbered gets its events as stored the first time, the others are stored
 * with the seqs reserved for them. Returns the events, records in order.
 */
export async function numberEventBatch(sources: EventSource[], now = Date.now()): Promise<LiveEvent[]> {
  const lists = sources
    .map(({ sourceId, bodies }) => {
      const list = bodies.slice(0, MAX_EVENTS_PER_SOURCE);
      if (bodies.length > list.length) logger.warn('a change made more events than one record holds; the rest are dropped', { sourceId, count: bodies.length });
      return { sourceId, list };
    })
    .filter((s) => s.list.length > 0);
  if (!lists.length) return [];
  const total = lists.reduce((n, s) => n + s.list.length, 0);
  const counter = await dynamo().send(
    new UpdateCommand({
      TableName: tableName('events'),
      Key: COUNTER,
      UpdateExpression: 'ADD #v :n',
      ExpressionAttributeNames: { '#v': 'value' },
      ExpressionAttributeValues: { ':n': total },
      ReturnValues: 'UPDATED_NEW',
    }),
  );
  let next = Number(counter.Attributes?.value) - total + 1;
  const numbered = lists.map(({ sourceId, list }) => ({ sourceId, events: list.map((b): LiveEvent => ({ ...b, seq: next++ })) }));
  const expiresAt = expiry(now);
  // Whole records per transaction, in order.
  const chunks: (typeof numbered)[] = [];
  let size = 0;
  for (const source of numbered) {
    const items = 1 + source.events.length;
    if (!chunks.length || size + items > MAX_TRANSACTION_ITEMS) {
      chunks.push([]);
      size = 0;
    }
    chunks[chunks.length - 1].push(source);
    size += items;
  }
  const out: LiveEvent[] = [];
  for (const chunk of chunks) {
    try {
      await storeEvents(chunk, expiresAt);
      for (const source of chunk) out.push(...source.events);
      continue;
    } catch (e) {
      if (!isConditionFailure(e) && (e as { name?: string }).name !== 'TransactionCanceledException') throw e;
    }
    // Some record of the chunk was numbered before (or the transaction met another): one by one.
    for (const source of chunk) out.push(...(chunk.length > 1 ? await storeOne(source, expiresAt) : await storedBefore(source.sourceId)));
  }
  return out;
}

async function storeEvents(sources: { sourceId: string; events: LiveEvent[] }[], expiresAt: number): Promise<void> {
  await dynamo().send(
    new TransactWriteCommand({
      TransactItems: sources.flatMap(({ sourceId, events }) => [
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
      ]),
    }),
  );
}

async function storeOne(source: { sourceId: string; events: LiveEvent[] }, expiresAt: number): Promise<LiveEvent[]> {
  try {
    await storeEvents([source], expiresAt);
    return source.events;
  } catch (e) {
    if (!isConditionFailure(e) && (e as { name?: string }).name !== 'TransactionCanceledException') throw e;
  }
  return storedBefore(source.sourceId);
}

/** A record numbered before: its events as they were stored then. */
async function storedBefore(sourceId: string): Promise<LiveEvent[]> {
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
