import { describe, expect, it } from 'vitest';
import {
  type AuditRecord,
  type ChainHead,
  eventHash,
  GENESIS_HASH,
  linkEvents,
  missingPredecessors,
  predecessorKey,
  verifyChains,
} from '../../../functions/domain/auditChain.ts';

const NOW = 2_000_000_000; // epoch seconds
const CHAIN = 'deployment#dep-1|stage';

function event(i: number, extra: AuditRecord = {}): AuditRecord {
  const at = new Date(Date.UTC(2026, 0, 1, 10, 0, i)).toISOString();
  return {
    subject: 'deployment#dep-1',
    sk: `${at}#${String(i).padStart(12, '0')}`,
    at,
    category: 'stage',
    action: `stage.step-${i}`,
    actor: 'system:pipeline',
    details: { n: i, nested: { b: 2, a: [1, 'x'] } },
    traceId: 'Root=1-abc',
    expiresAt: NOW + 1000 + i,
    ...extra,
  };
}

/** A chain of `n` events written one transaction at a time, and its head. */
function chain(n: number, extra: (i: number) => AuditRecord = () => ({})) {
  let head: ChainHead | undefined;
  const events: AuditRecord[] = [];
  for (let i = 1; i <= n; i++) {
    const linked = linkEvents(CHAIN, head, [event(i, extra(i))]);
    events.push(...linked.items);
    head = linked.head;
  }
  return { events, head: head! };
}

const verify = (events: AuditRecord[], head?: ChainHead | null, predecessors?: Map<string, AuditRecord | null>) =>
  verifyChains({ events, now: NOW, ...(head !== undefined ? { heads: new Map([[CHAIN, head]]) } : {}), ...(predecessors ? { predecessors } : {}) });

describe('audit hash chains (docs/adr/0032)', () => {
  it('links events: seq from 1, the genesis hash first, then each event the hash, sort key and TTL of the one before', () => {
    const { events, head } = chain(3);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(events[0].prevHash).toBe(GENESIS_HASH);
    expect(events[0]).not.toHaveProperty('prevSk');
    expect(events[1]).toMatchObject({ prevHash: events[0].hash, prevSk: events[0].sk, prevExpiresAt: events[0].expiresAt, chain: CHAIN });
    expect(events[2].hash).toMatch(/^[0-9a-f]{64}$/);
    expect(head).toEqual({ seq: 3, hash: events[2].hash, eventSk: events[2].sk, expiresAt: events[2].expiresAt });
    expect(verify(events, head)).toMatchObject({ verified: true, chains: 1, events: 3, unchained: 0, broken: [] });
  });

  it('links several events of one chain written in one transaction, after the head', () => {
    const { events: first, head } = chain(1);
    const { items, head: after } = linkEvents(CHAIN, head, [event(2), event(3)]);
    expect(items.map((e) => e.seq)).toEqual([2, 3]);
    expect(items[1].prevHash).toBe(items[0].hash);
    expect(after.seq).toBe(3);
    expect(verify([...first, ...items], after).verified).toBe(true);
  });

  it('hashes the canonical JSON: attribute order does not matter, every value does', () => {
    const e = event(1);
    const reordered = Object.fromEntries(Object.entries(e).reverse());
    expect(eventHash(reordered)).toBe(eventHash(e));
    expect(eventHash({ ...e, details: { nested: { a: [1, 'x'], b: 2 }, n: 1 } })).toBe(eventHash(e));
    expect(eventHash({ ...e, details: { ...(e.details as object), n: 2 } })).not.toBe(eventHash(e));
    expect(eventHash({ ...e, hash: 'whatever' })).toBe(eventHash(e));
  });

  it('finds an edited field, by the event edited', () => {
    const { events, head } = chain(4);
    events[2] = { ...events[2], actor: 'mallory' };
    const r = verify(events, head);
    expect(r.verified).toBe(false);
    expect(r.firstBroken).toMatchObject({ chain: CHAIN, seq: 3, sk: events[2].sk, reason: 'hash-mismatch' });
  });

  it('finds an edit whose hash was recomputed too: the next event no longer links to it', () => {
    const { events, head } = chain(4);
    const forged: AuditRecord = { ...events[1], action: 'stage.forged' };
    forged.hash = eventHash(forged);
    events[1] = forged;
    expect(verify(events, head).firstBroken).toMatchObject({ seq: 3, reason: 'link-mismatch' });
  });

  it('finds a deleted middle event (its retention had not passed)', () => {
    const { events, head } = chain(5);
    const gone = events.splice(2, 1)[0];
    const r = verify(events, head);
    expect(r.firstBroken).toMatchObject({ seq: 3, sk: gone.sk, reason: 'missing-event' });
  });

  it('finds reordered events: swapped sequence numbers no longer match their hashes', () => {
    const { events, head } = chain(4);
    const [s2, s3] = [events[1].seq, events[2].seq];
    events[1] = { ...events[1], seq: s3 };
    events[2] = { ...events[2], seq: s2 };
    const r = verify(events, head);
    expect(r.verified).toBe(false);
    expect(r.firstBroken?.reason).toBe('hash-mismatch');
  });

  it('finds a truncated tail by the chain head', () => {
    const { events, head } = chain(4);
    const r = verify(events.slice(0, 3), head);
    expect(r.firstBroken).toMatchObject({ seq: 4, sk: head.eventSk, reason: 'truncated' });
    // Not when the head's newest event lies beyond the range asked for.
    expect(verifyChains({ events: events.slice(0, 3), now: NOW, heads: new Map([[CHAIN, head]]), to: String(events[2].at) }).verified).toBe(true);
  });

  it('accepts a prefix gone by retention, and a middle event whose TTL passed', () => {
    const { events, head } = chain(5, (i) => ({ expiresAt: i <= 2 ? NOW - 10 : NOW + 100 }));
    expect(verify(events.slice(2), head, new Map([[predecessorKey('deployment#dep-1', String(events[1].sk)), null]]))).toMatchObject({
      verified: true,
      expiredPredecessors: 1,
    });
    // Expired events DynamoDB has not removed yet are still checked against their hashes.
    expect(verify(events, head).verified).toBe(true);
    const lingering = [...events];
    lingering[0] = { ...lingering[0], action: 'edited' };
    expect(verify(lingering, head).firstBroken?.reason).toBe('hash-mismatch');
  });

  it('detects a forged prevExpiresAt: claiming the deleted predecessor had expired breaks the hash', () => {
    const { events, head } = chain(4);
    events.splice(1, 1); // seq 2 deleted by hand
    events[1] = { ...events[1], prevExpiresAt: NOW - 1 }; // and seq 3 made to say it expired
    expect(verify(events, head).firstBroken).toMatchObject({ seq: 3, reason: 'hash-mismatch' });
  });

  it('detects an event made to look expired: its own hash breaks, and it is not skipped', () => {
    const { events, head } = chain(3);
    events[1] = { ...events[1], expiresAt: NOW - 1 };
    expect(verify(events, head).firstBroken).toMatchObject({ seq: 2, reason: 'hash-mismatch' });
  });

  it('detects a predecessor fetched from outside the range that was edited, or that is missing', () => {
    const { events, head } = chain(3);
    const key = predecessorKey('deployment#dep-1', String(events[0].sk));
    expect(missingPredecessors(events.slice(1))).toEqual([{ subject: 'deployment#dep-1', sk: events[0].sk }]);
    expect(verify(events.slice(1), head, new Map([[key, events[0]]])).verified).toBe(true);
    expect(verify(events.slice(1), head, new Map([[key, { ...events[0], details: {} }]])).firstBroken).toMatchObject({ seq: 1, reason: 'hash-mismatch' });
    expect(verify(events.slice(1), head, new Map([[key, null]])).firstBroken).toMatchObject({ seq: 1, reason: 'missing-event' });
  });

  it('offline (no predecessor look-up) accepts a chain that starts before the export, but not a gap inside it', () => {
    const { events } = chain(5);
    expect(verify(events.slice(2))).toMatchObject({ verified: true, openStarts: 1 });
    expect(verify([events[2], events[4]]).firstBroken).toMatchObject({ seq: 4, reason: 'missing-event' });
  });

  it('finds a second event with the same seq (an inserted forgery)', () => {
    const { events, head } = chain(3);
    const copy: AuditRecord = { ...events[2], sk: `${events[2].sk}x`, action: 'stage.forged' };
    copy.hash = eventHash(copy);
    expect(verify([...events, copy], head).firstBroken?.reason).toBe('link-mismatch');
  });

  it('leaves out of the hash only the fields the event names mutable, and names them in the report', () => {
    const { items } = linkEvents(CHAIN, undefined, [event(1, { count: 1, latest: { at: 'a' }, mutable: ['count', 'latest'] })]);
    const counted = { ...items[0], count: 57, latest: { at: 'b' } };
    expect(verify([counted])).toMatchObject({ verified: true, mutableFields: ['count', 'latest'] });
    expect(verify([{ ...counted, mutable: ['count', 'latest', 'actor'], actor: 'x' }]).firstBroken?.reason).toBe('hash-mismatch');
    expect(verify([{ ...counted, action: 'x' }]).firstBroken?.reason).toBe('hash-mismatch');
  });

  it('counts events written before chains existed without judging them', () => {
    const { events, head } = chain(2);
    expect(verify([event(9), ...events], head)).toMatchObject({ verified: true, unchained: 1, events: 2 });
  });
});
