/**
 * DynamoDB Streams → Lambda, locally: what an event source mapping does on AWS, for every
 * function of the catalog with `streamSources` (docs/adr/0028-live-events.md). DynamoDB Local
 * serves the real Streams API; this polls each table's stream, shard by shard (a child shard
 * after its parent), and invokes the function with the records in the event Lambda sends
 * (`Records[]` with eventSourceARN, dynamodb.{Keys,NewImage,OldImage,SequenceNumber}). A batch
 * whose invocation fails is retried from the same position, as the mapping retries it; polling
 * runs beside the handlers, never on their path.
 */
import { DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  ExpiredIteratorException,
  GetRecordsCommand,
  type GetRecordsCommandOutput,
  GetShardIteratorCommand,
  type _Record as StreamRecord,
  type Shard,
} from '@aws-sdk/client-dynamodb-streams';
import { FUNCTIONS, type FunctionId, type FunctionSpec } from '../functions/catalog.ts';
import type { TableKey } from '../functions/lib/tables.ts';
import { functionArn, type LocalLambda } from './lambda.ts';

interface ShardState {
  iterator?: string;
  /** Last record handed to the function: an expired iterator resumes after it. */
  lastSequence?: string;
  done: boolean;
  parent?: string;
}

interface Consumer {
  fn: FunctionId;
  table: string;
  streamArn: string;
  shards: Map<string, ShardState>;
}

export interface LocalStreamsOptions {
  /** Wait between polls when a poll found nothing (KMOD_STREAM_POLL_MS, 100 ms). */
  pollMs?: number;
  /** Records per invocation, as the mapping's BatchSize. */
  batchSize?: number;
  log?: (line: string) => void;
}

type Av = Record<string, unknown>;

/**
 * The SDK's Streams client turns some values DynamoDB Local streams (an empty list inside a map)
 * into `{}`, which names no type: such a value becomes NULL, so the images unmarshall.
 */
export function repairImage(image: Record<string, Av> | undefined): Record<string, Av> | undefined {
  if (!image) return image;
  const fix = (v: Av): Av => {
    if (!v || typeof v !== 'object' || Object.keys(v).length === 0) return { NULL: true };
    if (v.M && typeof v.M === 'object') return { M: Object.fromEntries(Object.entries(v.M as Record<string, Av>).map(([k, x]) => [k, fix(x)])) };
    if (Array.isArray(v.L)) return { L: (v.L as Av[]).map(fix) };
    return v;
  };
  return Object.fromEntries(Object.entries(image).map(([k, v]) => [k, fix(v)]));
}

/** The Lambda event of one batch: the SDK's records with the fields Lambda adds and its number types. */
export function lambdaEvent(streamArn: string, records: StreamRecord[]) {
  return {
    Records: records.map((r) => ({
      eventID: r.eventID,
      eventName: r.eventName,
      eventVersion: r.eventVersion ?? '1.1',
      eventSource: 'aws:dynamodb',
      awsRegion: r.awsRegion ?? 'us-east-1',
      eventSourceARN: streamArn,
      dynamodb: {
        ...r.dynamodb,
        NewImage: repairImage(r.dynamodb?.NewImage as Record<string, Av> | undefined),
        OldImage: repairImage(r.dynamodb?.OldImage as Record<string, Av> | undefined),
        ApproximateCreationDateTime:
          r.dynamodb?.ApproximateCreationDateTime instanceof Date ? Math.floor(r.dynamodb.ApproximateCreationDateTime.getTime() / 1000) : undefined,
      },
    })),
  };
}

export class LocalStreams {
  private readonly client: DynamoDBStreamsClient;
  private readonly consumers: Consumer[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  /** Records handed to functions so far (tests and the bench read it). */
  delivered = 0;

  constructor(
    private readonly lambda: Pick<LocalLambda, 'invoke'>,
    private readonly dynamo: DynamoDBClient,
    endpoint: string,
    private readonly tableNames: Record<TableKey, string>,
    private readonly opts: LocalStreamsOptions = {},
  ) {
    this.client = new DynamoDBStreamsClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  }

  /** Find each consumed table's stream and start from its end (what is written from now on is delivered). */
  async start(): Promise<void> {
    for (const [fn, spec] of Object.entries(FUNCTIONS) as [FunctionId, FunctionSpec][]) {
      for (const key of spec.streamSources ?? []) {
        const table = this.tableNames[key];
        const described = await this.dynamo.send(new DescribeTableCommand({ TableName: table }));
        const streamArn = described.Table?.LatestStreamArn;
        if (!streamArn) throw new Error(`${fn} consumes the stream of ${table}, which has none (stream: true in functions/lib/tables.ts)`);
        const consumer: Consumer = { fn, table, streamArn, shards: new Map() };
        for (const shard of await this.describe(streamArn)) {
          if (shard.SequenceNumberRange?.EndingSequenceNumber) {
            consumer.shards.set(shard.ShardId!, { done: true });
            continue;
          }
          const it = await this.client.send(new GetShardIteratorCommand({ StreamArn: streamArn, ShardId: shard.ShardId!, ShardIteratorType: 'LATEST' }));
          consumer.shards.set(shard.ShardId!, { iterator: it.ShardIterator, done: false, parent: shard.ParentShardId });
        }
        this.consumers.push(consumer);
      }
    }
    this.schedule(0);
  }

  private async describe(streamArn: string): Promise<Shard[]> {
    const shards: Shard[] = [];
    let start: string | undefined;
    do {
      const r = await this.client.send(new DescribeStreamCommand({ StreamArn: streamArn, ExclusiveStartShardId: start }));
      shards.push(...(r.StreamDescription?.Shards ?? []));
      start = r.StreamDescription?.LastEvaluatedShardId;
    } while (start);
    return shards;
  }

  private schedule(ms: number) {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.pollAll()
        .then((busy) => this.schedule(busy ? 0 : (this.opts.pollMs ?? 100)))
        .catch((e: Error) => {
          this.opts.log?.(`  stream polling failed: ${e.message}`);
          this.schedule(1000);
        });
    }, ms);
    this.timer.unref();
  }

  /** One round over every shard of every consumed stream; true when any records came. */
  private async pollAll(): Promise<boolean> {
    let busy = false;
    for (const c of this.consumers) {
      // New shards (DynamoDB rolls them over): read from their start, once their parent is read out.
      for (const shard of await this.describe(c.streamArn)) {
        if (c.shards.has(shard.ShardId!)) continue;
        c.shards.set(shard.ShardId!, { done: false, parent: shard.ParentShardId });
      }
      for (const [shardId, s] of c.shards) {
        if (s.done || this.stopped) continue;
        if (s.parent && c.shards.get(s.parent) && !c.shards.get(s.parent)!.done) continue;
        if (!s.iterator) {
          const it = await this.client.send(
            new GetShardIteratorCommand(
              s.lastSequence
                ? { StreamArn: c.streamArn, ShardId: shardId, ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', SequenceNumber: s.lastSequence }
                : { StreamArn: c.streamArn, ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' },
            ),
          );
          s.iterator = it.ShardIterator;
        }
        let r: GetRecordsCommandOutput;
        try {
          r = await this.client.send(new GetRecordsCommand({ ShardIterator: s.iterator, Limit: this.opts.batchSize ?? 100 }));
        } catch (e) {
          if (e instanceof ExpiredIteratorException || (e as { name?: string }).name === 'ExpiredIteratorException') {
            s.iterator = undefined;
            continue;
          }
          if ((e as { name?: string }).name === 'TrimmedDataAccessException') {
            // DynamoDB Local answers a LATEST iterator of an empty shard this way: read it from its start.
            s.iterator = undefined;
            s.lastSequence = undefined;
            continue;
          }
          throw e;
        }
        const records = r.Records ?? [];
        if (records.length) {
          busy = true;
          try {
            await this.lambda.invoke(functionArn(c.fn), lambdaEvent(c.streamArn, records));
          } catch (e) {
            // The same records again at the next poll, as the event source mapping retries a failed batch.
            this.opts.log?.(`  ${c.fn} failed on ${records.length} record(s) of ${c.table}: ${(e as Error).message}; retried`);
            continue;
          }
          this.delivered += records.length;
          s.lastSequence = records.at(-1)?.dynamodb?.SequenceNumber;
        }
        if (r.NextShardIterator) s.iterator = r.NextShardIterator;
        else s.done = true;
      }
    }
    return busy;
  }

  /** Stop polling; a round in progress finishes first. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
    this.client.destroy();
  }
}
