/**
 * Approval gates: who may decide, how decisions add up (quorum), and the signed single-use links
 * in approval emails. Plain logic, no AWS.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { DirectoryPrincipal } from './accessTokens.ts';

export type ApprovalStatus = 'Pending' | 'Approved' | 'Rejected' | 'Expired';
export type Decision = 'approve' | 'reject';

export interface ApprovalDecision {
  approver: string;
  decision: Decision;
  reason?: string;
  at: string;
  via: 'api' | 'email';
}

export interface ApprovalState {
  status: ApprovalStatus;
  requestedBy: string;
  approvers: string[];
  quorum: number;
  deadline: string;
  decisions: ApprovalDecision[];
}

export type DecisionOutcome =
  | { ok: true; status: ApprovalStatus; decisions: ApprovalDecision[]; final: boolean }
  | { ok: false; httpStatus: 403 | 409 | 410; code: string; message: string };

/** Whether `actor` may decide, and what the approval becomes if they do. */
export function decide(
  a: ApprovalState,
  actor: { userId: string; isAdmin: boolean },
  decision: Decision,
  reason: string | undefined,
  via: ApprovalDecision['via'],
  now: Date,
): DecisionOutcome {
  if (actor.userId === a.requestedBy)
    return { ok: false, httpStatus: 403, code: 'SelfApprovalForbidden', message: 'the requester of a deployment cannot decide its approval' };
  if (!actor.isAdmin && !a.approvers.includes(actor.userId)) {
    return { ok: false, httpStatus: 403, code: 'NotAnApprover', message: 'you are not an approver for this environment' };
  }
  if (a.status === 'Expired' || (a.status === 'Pending' && now.getTime() > Date.parse(a.deadline))) {
    return { ok: false, httpStatus: 410, code: 'ApprovalExpired', message: `the approval expired at ${a.deadline}; the deployment was rejected` };
  }
  if (a.status !== 'Pending') return { ok: false, httpStatus: 409, code: 'AlreadyDecided', message: `the approval was already ${a.status.toLowerCase()}` };
  if (a.decisions.some((d) => d.approver === actor.userId)) {
    return { ok: false, httpStatus: 409, code: 'AlreadyDecided', message: 'you have already decided this approval' };
  }
  const decisions = [...a.decisions, { approver: actor.userId, decision, reason, at: now.toISOString(), via }];
  if (decision === 'reject') return { ok: true, status: 'Rejected', decisions, final: true };
  const approvals = decisions.filter((d) => d.decision === 'approve').length;
  return approvals >= a.quorum ? { ok: true, status: 'Approved', decisions, final: true } : { ok: true, status: 'Pending', decisions, final: false };
}

export type ApproverStanding = { ok: true } | { ok: false; httpStatus: 403; code: string; message: string };

/**
 * Whether `approverId` may still decide for `environment`, from the directory entry and the
 * environment's approver list as they are now (not as they were when the gate opened or the link
 * was mailed): an enabled user holding Admin, or holding Approver and on the list.
 */
export function approverStanding(
  approverId: string,
  entry: Pick<DirectoryPrincipal, 'kind' | 'enabled' | 'roles'> | undefined,
  listed: readonly string[],
  environment: string,
): ApproverStanding {
  const refuse = (code: string, message: string): ApproverStanding => ({ ok: false, httpStatus: 403, code, message });
  if (entry?.kind !== 'user') return refuse('ApproverUnknown', `${approverId} is not in the directory`);
  if (!entry.enabled) return refuse('ApproverDisabled', `${approverId} is disabled`);
  if (entry.roles.includes('Admin')) return { ok: true };
  if (!entry.roles.includes('Approver')) return refuse('ApproverRoleRevoked', `${approverId} no longer holds the Approver or Admin role`);
  if (!listed.includes(approverId)) return refuse('NotAnApprover', `${approverId} is no longer an approver for ${environment}`);
  return { ok: true };
}

export interface LinkClaims {
  executionId: string;
  environment: string;
  approver: string;
  action: Decision;
  /** Expiry, epoch seconds (the approval's deadline). */
  exp: number;
  /** Makes each link unique, so its single use can be recorded. */
  nonce: string;
}

export function signLink(claims: Omit<LinkClaims, 'nonce'>, key: { id: string; secret: string }): string {
  const body = Buffer.from(JSON.stringify({ ...claims, nonce: randomBytes(12).toString('base64url'), kid: key.id })).toString('base64url');
  const mac = createHmac('sha256', key.secret).update(body).digest('base64url');
  return `${body}.${mac}`;
}

export type LinkVerdict = { ok: true; claims: LinkClaims } | { ok: false; reason: 'malformed' | 'forged' | 'expired'; claims?: LinkClaims };

export function verifyLink(token: string, keys: { id: string; secret: string }[], now: Date): LinkVerdict {
  const [body, mac, extra] = token.split('.');
  if (!body || !mac || extra !== undefined) return { ok: false, reason: 'malformed' };
  let claims: LinkClaims & { kid?: string };
  try {
    claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as LinkClaims & { kid?: string };
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  // Valid JSON is not yet claims: `null`, a number or an array decode fine too.
  if (!claims || typeof claims !== 'object' || Array.isArray(claims)) return { ok: false, reason: 'malformed' };
  const key = keys.find((k) => k.id === claims.kid);
  if (!key) return { ok: false, reason: 'forged' };
  const expected = Buffer.from(createHmac('sha256', key.secret).update(body).digest('base64url'));
  const given = Buffer.from(mac);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, reason: 'forged' };
  if (typeof claims.exp !== 'number' || now.getTime() / 1000 > claims.exp) return { ok: false, reason: 'expired', claims };
  return { ok: true, claims };
}
