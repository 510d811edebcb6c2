/**
 * Every transactional write that carries audit events goes through `transactWrite`, which links
 * the audit events into their hash chains (functions/domain/auditChain.ts, docs/adr/0032) in the
 * same transaction: it reads each chain's head (consistently), links the events after it, and adds
 * one conditional Update of each head (`seq = :expected`, or no head yet). Two writers of one chain
 * cannot both win: the loser's transaction is cancelled by the head's condition, and it reads the
 * head again and retries (bounded, with jitter). A cancellation by the caller's own items is the
 * caller's, as it was before chains: it is rethrown with the reasons of the caller's items only,
 * by the same positions, so callers' idempotency checks (ConditionalCheckFailed) are unchanged.
 */
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { GetCommand, TransactWriteCommand, type TransactWriteCommandInput } from '@aws-sdk/lib-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { type AuditRecord, type ChainHead, chainKey, HEAD_SK, headSubject, linkEvents } from '../domain/auditChain.ts';
import { dynamo } from './aws.ts';
import { tableName, TTL_ATTRIBUTE } from './tables.ts';

export type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

/** How many times a write is tried when other writers of the same chain keep winning. */
export const MAX_CHAIN_ATTEMPTS = 40;

/** The head of a chain, read consistently; undefined when the chain has none yet. */
export async function readHead(chain: string): Promise<ChainHead | undefined> {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('audit'), Key: { subject: headSubject(chain), sk: HEAD_SK }, ConsistentRead: true }));
  if (!r.Item) return undefined;
  return { seq: Number(r.Item.seq), hash: String(r.Item.hash), eventSk: String(r.Item.eventSk), expiresAt: Number(r.Item[TTL_ATTRIBUTE]) };
}

/** The item as DynamoDB will store it and give it back (undefined dropped, as the client does), so the hash covers what is read. */
const asStored = (item: Record<string, unknown>): AuditRecord => unmarshall(marshall(item, { removeUndefinedValues: true, convertClassInstanceToMap: false }));

function headUpdate(chain: string, before: ChainHead | undefined, after: ChainHead): TransactItem {
  return {
    Update: {
      TableName: tableName('audit'),
      Key: { subject: headSubject(chain), sk: HEAD_SK },
      UpdateExpression: 'SET #seq = :seq, #hash = :hash, eventSk = :eventSk, #ttl = :ttl',
      ConditionExpression: before ? '#seq = :expected' : 'attribute_not_exists(subject)',
      ExpressionAttributeNames: { '#seq': 'seq', '#hash': 'hash', '#ttl': TTL_ATTRIBUTE },
      ExpressionAttributeValues: {
        ':seq': after.seq,
        ':hash': after.hash,
        ':eventSk': after.eventSk,
        // The head lives as long as the longest-kept event of its chain (retention may change).
        ':ttl': Math.max(after.expiresAt, before?.expiresAt ?? 0),
        ...(before ? { ':expected': before.seq } : {}),
      },
    },
  };
}

/**
 * `items` with their audit events linked into their chains, plus one head update per chain
 * (appended, so the caller's items keep their positions). Exported for tests.
 */
export async function linkAuditItems(items: readonly TransactItem[]): Promise<TransactItem[]> {
  const audit = tableName('audit');
  const chains = new Map<string, number[]>();
  items.forEach((it, i) => {
    const put = it.Put;
    if (!put || put.TableName !== audit) return;
    const key = chainKey(String(put.Item?.subject), String(put.Item?.category));
    chains.set(key, [...(chains.get(key) ?? []), i]);
  });
  if (chains.size === 0) return [...items];
  const out = [...items];
  const heads: TransactItem[] = [];
  await Promise.all(
    [...chains].map(async ([chain, positions]) => {
      const before = await readHead(chain);
      const linked = linkEvents(
        chain,
        before,
        positions.map((i) => asStored(items[i].Put!.Item as Record<string, unknown>)),
      );
      positions.forEach((i, n) => {
        out[i] = { Put: { ...items[i].Put!, Item: linked.items[n] } };
      });
      heads.push(headUpdate(chain, before, linked.head));
    }),
  );
  return [...out, ...heads];
}

const isLost = (code: string | undefined) => code === 'ConditionalCheckFailed' || code === 'TransactionConflict';

/**
 * Send `items` as one transaction, audit events linked into their chains. Behaves as
 * TransactWriteCommand did for the caller's items; a write that carries no audit event is sent
 * as it is.
 */
export async function transactWrite(items: readonly TransactItem[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const linked = await linkAuditItems(items);
    try {
      await dynamo().send(new TransactWriteCommand({ TransactItems: linked }));
      return;
    } catch (e) {
      if (!(e instanceof TransactionCanceledException) || linked.length === items.length) throw e;
      const reasons = e.CancellationReasons ?? [];
      const callers = reasons.slice(0, items.length);
      const headLost = reasons.slice(items.length).some((r) => isLost(r.Code));
      if (!headLost || callers.some((r) => r.Code && r.Code !== 'None') || attempt >= MAX_CHAIN_ATTEMPTS) {
        // The caller's cancellation, reported by the caller's positions only.
        e.CancellationReasons = callers;
        throw e;
      }
      // Another writer of the chain got there first: read its head again after a jittered pause.
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(250, 5 * 2 ** Math.min(attempt, 6))));
    }
  }
}
