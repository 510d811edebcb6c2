/**
 * GET /api/v1/audit/verify while the trail is being written (functions/lib/auditVerification.ts):
 * the events, then the chains' heads, are read one after the other, so chains appended to in
 * between are read again — every one of them, not only the first 20 the report lists (300 operator
 * connections closing at once left "verified": false, 20 chains "truncated", on a sound trail) —
 * and a chain whose head names an event that is really gone is still found. DynamoDB is mocked
 * (aws-sdk-client-mock) to place the writes between the reads.
 */
import { BatchGetCommand, DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AuditRecord, HEAD_SK, headSubject, linkEvents } from '../../../functions/domain/auditChain.ts';
import { verifyAuditRange } from '../../../functions/lib/auditVerification.ts';

const ddb = mockClient(DynamoDBDocumentClient);
const expiresAt = 2_000_000_000;
const CHAINS = 25;

/** Chains of `length` events each: `connection#c<i>|security`, as an operator connection's. */
function chains(length: number) {
  return [...Array(CHAINS).keys()].map((i) => {
    const subject = `connection#c${String(i).padStart(2, '0')}`;
    const chain = `${subject}|security`;
    const { items } = linkEvents(
      chain,
      undefined,
      [...Array(length).keys()].map((n) => ({
        subject,
        sk: `2026-11-30T00:00:${String(n).padStart(2, '0')}.${String(i).padStart(3, '0')}Z#${i}-${n}`,
        category: 'security',
        action: 'events.connection.opened',
        actor: 'dev-viewer',
        expiresAt,
      })),
    );
    return { subject, chain, items };
  });
}
const headOf = (chain: string, e: AuditRecord): AuditRecord => ({
  subject: headSubject(chain),
  sk: HEAD_SK,
  seq: e.seq,
  hash: e.hash,
  eventSk: e.sk,
  expiresAt,
});

/**
 * The table as the reads find it: the category index holds `indexed` events of each chain, the
 * chains' partitions `stored` of them, and each head names event number `head` (1-based).
 */
function table(all: ReturnType<typeof chains>, o: { indexed: number; stored: number; head: number }) {
  ddb.on(QueryCommand).callsFake((input) => {
    if (input.IndexName) return { Items: input.ExpressionAttributeValues[':c'] === 'security' ? all.flatMap((c) => c.items.slice(0, o.indexed)) : [] };
    const c = all.find((x) => x.subject === input.ExpressionAttributeValues[':s'])!;
    return { Items: c.items.slice(0, o.stored) };
  });
  ddb.on(BatchGetCommand).callsFake((input) => {
    const [table] = Object.keys(input.RequestItems);
    const keys = input.RequestItems[table].Keys as { subject: string; sk: string }[];
    const items = all.filter((c) => keys.some((k) => k.subject === headSubject(c.chain))).map((c) => headOf(c.chain, c.items[o.head - 1]));
    return { Responses: { [table]: items } };
  });
}

beforeAll(() => {
  process.env.AUDIT_TABLE ??= 'kmod-Audit';
});
afterAll(() => ddb.restore());
beforeEach(() => ddb.reset());

describe('verifying a trail that is being written', () => {
  it(`${CHAINS} chains appended to between the events and their heads being read: all read again, the trail verifies`, async () => {
    // Each connection closed (event 2, head with it) after the range was read and before the heads were.
    table(chains(2), { indexed: 1, stored: 2, head: 2 });
    const r = await verifyAuditRange({});
    expect(r.broken).toEqual([]);
    expect(r.verified).toBe(true);
    expect(r.events).toBe(CHAINS * 2);
  });

  it(`${CHAINS} chains whose newest event is really gone: not verified, each one broken`, async () => {
    // The heads name event 3; event 3 of every chain was deleted.
    table(chains(3), { indexed: 2, stored: 2, head: 3 });
    const r = await verifyAuditRange({});
    expect(r.verified).toBe(false);
    expect(r.broken).toHaveLength(20);
    expect(r.broken.every((b) => b.reason === 'truncated')).toBe(true);
  });
});
