/**
 * DynamoDB's Time to Live, locally. DynamoDB Local keeps TTL settings but never deletes an item by
 * them; on AWS a background process deletes items whose TTL attribute (epoch seconds) is in the
 * past, typically within a few days. This sweeper does the same for every table the local cloud
 * creates with TTL enabled (all of functions/lib/tables.ts): a Scan for expired items, then a
 * DeleteItem of each on the condition that it is still expired (an item given a later TTL in the
 * meantime stays, as on AWS). It runs every KMOD_TTL_SWEEP_SECONDS (default 60) and on demand
 * (`sweep(now)`), with the clock injectable so a test can move it (docs/adr/0033-audit-retention-and-export.md).
 *
 * Like DynamoDB, an item is expired only when its TTL attribute is a Number; an item whose TTL is
 * more than five years in the past is not deleted (DynamoDB's guard against milliseconds written
 * where seconds were meant).
 */
import { type DynamoDBClient, paginateScan } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { TABLES, type TableKey, TTL_ATTRIBUTE, type TableSpec } from '../functions/lib/tables.ts';

/** DynamoDB leaves items whose TTL lies further back than this alone (five years, in seconds). */
export const TTL_MAX_AGE_SECONDS = 5 * 365 * 86_400;

/** Would DynamoDB's TTL delete this item at `nowSeconds`? */
export function isExpired(item: Record<string, unknown>, nowSeconds: number, attribute = TTL_ATTRIBUTE): boolean {
  const ttl = item[attribute];
  if (typeof ttl !== 'number' || !Number.isFinite(ttl)) return false;
  return ttl < nowSeconds && ttl >= nowSeconds - TTL_MAX_AGE_SECONDS;
}

/** The keys of the items to delete: the expired ones, by the table's key attributes. */
export function expiredKeys(spec: Pick<TableSpec, 'partitionKey' | 'sortKey'>, items: readonly Record<string, unknown>[], nowSeconds: number) {
  return items
    .filter((item) => isExpired(item, nowSeconds))
    .map((item) => ({ [spec.partitionKey]: item[spec.partitionKey], ...(spec.sortKey ? { [spec.sortKey]: item[spec.sortKey] } : {}) }));
}

export interface SweepResult {
  /** Items deleted per table (tables with none are left out). */
  deleted: Partial<Record<TableKey, number>>;
  /** The sweep's clock, epoch seconds. */
  nowSeconds: number;
}

export interface TtlSweeperOptions {
  /** The clock (default: the real one); a test moves it forward. */
  now?: () => Date;
  intervalMs?: number;
  log?: (line: string) => void;
}

export class TtlSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<SweepResult> | undefined;
  private readonly now: () => Date;

  constructor(
    private readonly client: DynamoDBClient,
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableNames: Record<TableKey, string>,
    private readonly opts: TtlSweeperOptions = {},
  ) {
    this.now = opts.now ?? (() => new Date());
  }

  start(): void {
    const ms = this.opts.intervalMs ?? 60_000;
    this.timer = setInterval(() => void this.sweep().catch((e: Error) => this.opts.log?.(`  TTL sweep failed: ${e.message}`)), ms);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One pass over every table at `now` (default: the sweeper's clock). Passes never overlap. */
  async sweep(now = this.now()): Promise<SweepResult> {
    while (this.running) await this.running.catch(() => undefined);
    this.running = this.pass(now);
    try {
      return await this.running;
    } finally {
      this.running = undefined;
    }
  }

  private async pass(now: Date): Promise<SweepResult> {
    const nowSeconds = Math.floor(now.getTime() / 1000);
    const deleted: SweepResult['deleted'] = {};
    for (const [key, spec] of Object.entries(TABLES) as [TableKey, TableSpec][]) {
      const TableName = this.tableNames[key];
      const names: Record<string, string> = { '#ttl': TTL_ATTRIBUTE, '#pk': spec.partitionKey, ...(spec.sortKey ? { '#sk': spec.sortKey } : {}) };
      let n = 0;
      for await (const page of paginateScan(
        { client: this.client },
        {
          TableName,
          // Read the keys and the TTL only; the Number type test is DynamoDB's own rule.
          ProjectionExpression: spec.sortKey ? '#pk, #sk, #ttl' : '#pk, #ttl',
          FilterExpression: 'attribute_type(#ttl, :n) AND #ttl < :now',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: { ':n': { S: 'N' }, ':now': { N: String(nowSeconds) } },
        },
      )) {
        const items = (page.Items ?? []).map((i) => Object.fromEntries(Object.entries(i).map(([k, v]) => [k, v.N !== undefined ? Number(v.N) : (v.S ?? v.B)])));
        for (const Key of expiredKeys(spec, items, nowSeconds)) {
          try {
            await this.doc.send(
              new DeleteCommand({
                TableName,
                Key,
                ConditionExpression: '#ttl < :now',
                ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE },
                ExpressionAttributeValues: { ':now': nowSeconds },
              }),
            );
            n++;
          } catch (e) {
            // Given a later TTL (or deleted) since the scan: not expired any more.
            if ((e as { name?: string }).name !== 'ConditionalCheckFailedException') throw e;
          }
        }
      }
      if (n) deleted[key] = n;
    }
    if (Object.keys(deleted).length) this.opts.log?.(`  TTL sweep deleted ${JSON.stringify(deleted)}`);
    return { deleted, nowSeconds };
  }
}
