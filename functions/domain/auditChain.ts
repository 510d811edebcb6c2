/**
 * The audit trail's hash chains (docs/adr/0032-tamper-evident-audit.md): pure, shared by the
 * writer (functions/lib/auditChain.ts), the API's verification (GET /api/v1/audit/verify) and the
 * offline verification of an export (`kmod audit verify`).
 *
 * A chain is one subject's events of one category (`<subject>|<category>`). Each chained event
 * carries `chain`, `seq` (1, 2, 3…), `prevHash` (the previous event's `hash`, 64 zeros for seq 1),
 * `prevSk` (the previous event's sort key, so a verifier can fetch it), `prevExpiresAt` (its TTL,
 * so a verifier can tell a predecessor that expired by retention from one deleted by hand) and
 * `hash`: the SHA-256 of the RFC 8785 canonical JSON of every attribute but `hash` itself and the
 * attributes the event names in `mutable` (a denial window's `count` and `latest`, which grow
 * after it is written; `mutable` itself is covered, so it cannot be widened unnoticed).
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

export const GENESIS_HASH = '0'.repeat(64);
/** The sort key of a chain head item; its partition key is `headSubject(chain)`. */
export const HEAD_SK = '#head';
/** Subjects that start with this are chain heads, never events: listings refuse them. */
export const RESERVED_SUBJECT_PREFIX = '#';

export const chainKey = (subject: string, category: string) => `${subject}|${category}`;
export const headSubject = (chain: string) => `#chain|${chain}`;

/** The newest event of a chain, as its head item holds it. */
export interface ChainHead {
  seq: number;
  hash: string;
  /** The newest event's sort key. */
  eventSk: string;
  /** The newest event's TTL (epoch seconds); also the head's own TTL, so a head outlives none of its events' retention. */
  expiresAt: number;
}

export type AuditRecord = Record<string, unknown>;

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The hash an event should carry: over every attribute but `hash` and those it names in `mutable`. */
export function eventHash(item: AuditRecord): string {
  const mutable = new Set(Array.isArray(item.mutable) ? item.mutable.map(String) : []);
  const covered = Object.fromEntries(Object.entries(item).filter(([k]) => k !== 'hash' && !mutable.has(k)));
  const text = canonicalize(covered);
  if (text === undefined) throw new Error('audit event cannot be canonicalised');
  return sha256(text);
}

const ttlOf = (item: AuditRecord): number | undefined => (typeof item.expiresAt === 'number' ? item.expiresAt : undefined);

/**
 * Link `items` (events of one chain, in the order they are written) after `head`: each gets its
 * chain fields and hash. Returns the linked events and the chain's new head.
 */
export function linkEvents(chain: string, head: ChainHead | undefined, items: readonly AuditRecord[]): { items: AuditRecord[]; head: ChainHead } {
  let prev = head;
  const linked: AuditRecord[] = [];
  for (const item of items) {
    const { hash: _old, chain: _c, seq: _s, prevHash: _p, prevSk: _k, prevExpiresAt: _e, ...rest } = item;
    const event: AuditRecord = {
      ...rest,
      chain,
      seq: (prev?.seq ?? 0) + 1,
      prevHash: prev?.hash ?? GENESIS_HASH,
      ...(prev ? { prevSk: prev.eventSk, prevExpiresAt: prev.expiresAt } : {}),
    };
    event.hash = eventHash(event);
    linked.push(event);
    prev = { seq: event.seq as number, hash: event.hash as string, eventSk: String(event.sk), expiresAt: ttlOf(event) ?? 0 };
  }
  if (!prev) throw new Error('linkEvents needs at least one event');
  return { items: linked, head: prev };
}

export type BreakReason = 'hash-mismatch' | 'missing-event' | 'link-mismatch' | 'truncated';

export interface BrokenLink {
  chain: string;
  seq: number;
  sk: string;
  reason: BreakReason;
  detail: string;
}

export interface VerifyInput {
  /** The events to verify (any order; unchained ones are counted, not judged). */
  events: readonly AuditRecord[];
  /**
   * Predecessors looked up by `predecessorKey(subject, prevSk)`: the item, or null when it was
   * looked up and is absent. When absent from the map (an offline export), a chain's first event
   * in the input is taken to start where the input starts (counted in `openStarts`).
   */
  predecessors?: ReadonlyMap<string, AuditRecord | null>;
  /**
   * Chain heads, read BEFORE the events (so an event written while verifying is newer than its
   * head, not missing): null when the chain has no head. Without it the tail is not checked.
   */
  heads?: ReadonlyMap<string, ChainHead | null>;
  /** How many broken links the report lists (default 20); `verified` and `firstBroken` count every one. */
  maxBroken?: number;
  /** The range's upper bound (ISO): a head whose newest event lies beyond it is not checked against the input. */
  to?: string;
  /** The range's lower bound (ISO): a head whose newest event lies before it is not checked either. */
  from?: string;
  /** Now, epoch seconds: an event whose TTL has passed may be gone (retention), not deleted. */
  now: number;
}

export interface VerifyReport {
  verified: boolean;
  /** Chains with at least one event in the input. */
  chains: number;
  /** Chained events checked. */
  events: number;
  /** Events without chain fields (written before chains existed): counted, not judged. */
  unchained: number;
  /** Links to a predecessor that is gone but whose TTL had passed: retention, accepted. */
  expiredPredecessors: number;
  /** Chains whose first event's predecessor lies before the input and was not looked up (offline). */
  openStarts: number;
  /** Attributes excluded from the hash because the event names them mutable (denial windows' count and latest). */
  mutableFields: string[];
  /** The earliest broken link (by sort key), if any. */
  firstBroken?: BrokenLink;
  /** Every broken link found, earliest first, at most 20. */
  broken: BrokenLink[];
}

export const predecessorKey = (subject: string, sk: string) => `${subject}\u0000${sk}`;

/** The predecessors a verifier must fetch: those of events whose previous seq is not among `events`. */
export function missingPredecessors(events: readonly AuditRecord[]): { subject: string; sk: string }[] {
  const present = new Set(events.map((e) => predecessorKey(String(e.subject), String(e.sk))));
  const wanted = new Map<string, { subject: string; sk: string }>();
  for (const e of events) {
    if (typeof e.chain !== 'string' || typeof e.prevSk !== 'string') continue;
    const key = predecessorKey(String(e.subject), e.prevSk);
    if (!present.has(key)) wanted.set(key, { subject: String(e.subject), sk: e.prevSk });
  }
  return [...wanted.values()];
}

const MAX_BROKEN = 20;

/** Recompute every hash and check every link of the chains in `input.events`. */
export function verifyChains(input: VerifyInput): VerifyReport {
  const broken: BrokenLink[] = [];
  const mutableFields = new Set<string>();
  const byChain = new Map<string, AuditRecord[]>();
  let unchained = 0;
  let expiredPredecessors = 0;
  let openStarts = 0;
  let events = 0;
  for (const e of input.events) {
    if (typeof e.chain !== 'string') {
      unchained++;
      continue;
    }
    events++;
    if (Array.isArray(e.mutable)) for (const f of e.mutable) mutableFields.add(String(f));
    const list = byChain.get(e.chain) ?? [];
    list.push(e);
    byChain.set(e.chain, list);
  }
  const seqOf = (e: AuditRecord) => (typeof e.seq === 'number' ? e.seq : Number.NaN);
  const brk = (e: AuditRecord, reason: BreakReason, detail: string, seq = seqOf(e), sk = String(e.sk)) =>
    broken.push({ chain: String(e.chain), seq, sk, reason, detail });
  const live = (e: AuditRecord) => (ttlOf(e) ?? Number.POSITIVE_INFINITY) > input.now;

  for (const [chain, list] of byChain) {
    list.sort((a, b) => seqOf(a) - seqOf(b) || String(a.sk).localeCompare(String(b.sk)));
    const bySk = new Map(list.map((e) => [String(e.sk), e]));
    // Every event present is checked against its own hash, expired or not.
    const intact = new Set<AuditRecord>();
    for (const e of list) {
      if (!Number.isInteger(seqOf(e)) || seqOf(e) < 1) brk(e, 'link-mismatch', 'seq is not a positive integer', 0);
      else if (e.hash !== eventHash(e)) brk(e, 'hash-mismatch', 'the event does not match its hash: it was edited');
      else intact.add(e);
    }
    // Links are checked from every live event back to its predecessor. Expired events may
    // linger until DynamoDB removes them, and a chain whose head expired starts again at seq 1.
    const lowestLive = list.find(live);
    let lastSeq = 0;
    for (const e of list) {
      if (!live(e) || !intact.has(e)) continue;
      const seq = seqOf(e);
      if (seq === lastSeq) {
        brk(e, 'link-mismatch', `seq ${seq} appears twice in the chain`);
        continue;
      }
      lastSeq = seq;
      if (seq === 1) {
        if (e.prevHash !== GENESIS_HASH || e.prevSk !== undefined) brk(e, 'link-mismatch', 'the first event of a chain must link to nothing');
        continue;
      }
      if (typeof e.prevSk !== 'string' || typeof e.prevHash !== 'string') {
        brk(e, 'link-mismatch', 'the event has no link to its predecessor');
        continue;
      }
      const key = predecessorKey(String(e.subject), e.prevSk);
      const inInput = bySk.get(e.prevSk);
      const looked = input.predecessors?.get(key);
      const prev = inInput ?? looked ?? undefined;
      const prevExpired = typeof e.prevExpiresAt === 'number' && e.prevExpiresAt <= input.now;
      if (!prev) {
        if (prevExpired) expiredPredecessors++;
        else if (looked === undefined && e === lowestLive && !input.predecessors?.has(key)) openStarts++;
        else brk(e, 'missing-event', `event ${seq - 1} is gone and its retention had not passed`, seq - 1, e.prevSk);
        continue;
      }
      if (prev !== inInput && prev.hash !== eventHash(prev)) {
        brk({ ...prev, chain }, 'hash-mismatch', 'the event does not match its hash: it was edited');
        continue;
      }
      if (inInput && !intact.has(inInput)) continue; // already reported
      if (prev.chain !== chain || seqOf(prev) !== seq - 1 || prev.hash !== e.prevHash || ttlOf(prev) !== e.prevExpiresAt)
        brk(e, 'link-mismatch', `the event does not link to event ${seq - 1} as it is stored`);
    }
    // The tail: the chain's newest event, as its head names it, must be there when it falls in the range.
    const head = input.heads?.get(chain);
    if (head && head.expiresAt > input.now && (!input.to || head.eventSk <= `${input.to}~`) && (!input.from || head.eventSk >= input.from)) {
      const newest = bySk.get(head.eventSk);
      if (!newest || seqOf(newest) !== head.seq || newest.hash !== head.hash)
        broken.push({
          chain,
          seq: head.seq,
          sk: head.eventSk,
          reason: 'truncated',
          detail: 'the chain head names a newest event that is not there as it was written',
        });
    }
  }
  broken.sort((a, b) => a.sk.localeCompare(b.sk) || a.seq - b.seq);
  return {
    verified: broken.length === 0,
    chains: byChain.size,
    events,
    unchained,
    expiredPredecessors,
    openStarts,
    mutableFields: [...mutableFields].sort(),
    ...(broken.length ? { firstBroken: broken[0] } : {}),
    broken: broken.slice(0, input.maxBroken ?? MAX_BROKEN),
  };
}
