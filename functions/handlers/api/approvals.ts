import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { z } from 'zod';
import { verifyLink, type Decision } from '../../domain/approvals.ts';
import { ENVIRONMENTS } from '../../domain/environments.ts';
import { AppError, notFound } from '../../domain/errors.ts';
import { applyDecision, approvalsOf, currentStanding, getApproval, pendingApprovals, presentApproval } from '../../lib/approvals.ts';
import { audit, deploymentSubject } from '../../lib/audit.ts';
import { getDeployment } from '../../lib/deployments.ts';
import type { Principal } from '../../domain/roles.ts';
import { apiHandler, json } from '../../lib/http.ts';
import { parseBody, parsePath } from '../../lib/parse.ts';
import { approvalLinkKeys } from '../../lib/secrets.ts';
import { pathSchema } from './pathParameters.ts';

const idSchema = pathSchema('executionId');
export const decisionSchema = z
  .object({ reason: z.string().trim().min(1).max(1000).optional(), environment: z.enum(ENVIRONMENTS).optional() })
  .strict()
  .optional();

async function decideViaApi(event: APIGatewayProxyEvent, caller: Principal, decision: Decision) {
  const { executionId } = parsePath(event, idSchema);
  const body = parseBody(event, decisionSchema);
  if (!(await getDeployment(executionId))) throw notFound(`deployment ${executionId}`);
  const all = await approvalsOf(executionId);
  const target = body?.environment ? all.find((a) => a.environment === body.environment) : (all.find((a) => a.status === 'Pending') ?? all.at(-1));
  if (!target)
    throw new AppError('NoApproval', `deployment ${executionId} has no approval${body?.environment ? ` for ${body.environment}` : ''} to decide`, 409);
  const a = await applyDecision({
    executionId,
    environment: target.environment,
    actor: { userId: caller.userId, isAdmin: caller.roles.includes('Admin') },
    decision,
    reason: body?.reason,
    via: 'api',
  });
  return json(200, presentApproval(a));
}

// ---- the pages behind the email links -------------------------------------------------------

const esc = (s: string) => s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&#39;', '"': '&quot;' })[c]!);

function page(status: number, title: string, body: string): APIGatewayProxyResult {
  return {
    statusCode: status,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
    },
    body: `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${esc(title)}</title><style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}dt{font-weight:600}dd{margin:0 0 .6rem}textarea{width:100%;min-height:5rem}button{font-size:1rem;padding:.6rem 1.4rem;border:0;border-radius:6px;color:#fff;cursor:pointer}.approve{background:#1a7f37}.reject{background:#cf222e}.note{color:#555}</style></head><body><h1>${esc(title)}</h1>${body}</body></html>`,
  };
}

type LinkRead =
  | { error: APIGatewayProxyResult }
  | {
      error?: undefined;
      claims: NonNullable<ReturnType<typeof verifyLink>['claims']>;
      approval: NonNullable<Awaited<ReturnType<typeof getApproval>>>;
      nonce: string;
      details: string;
    };

async function readLink(event: APIGatewayProxyEvent): Promise<LinkRead> {
  const token = event.pathParameters?.token ?? '';
  const verdict = verifyLink(token, await approvalLinkKeys(), new Date());
  if (!verdict.ok && verdict.reason !== 'expired') return { error: page(400, 'Invalid link', '<p>This approval link is not valid. Nothing was changed.</p>') };
  const claims = verdict.claims!;
  const approval = await getApproval(claims.executionId, claims.environment);
  if (!approval) return { error: page(404, 'Approval not found', '<p>This approval does not exist. Nothing was changed.</p>') };
  const nonce = (JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString('utf8')) as { nonce: string }).nonce;
  const details = `<dl><dt>Module</dt><dd>${esc(approval.moduleName)} ${esc(approval.version)}</dd><dt>Environment</dt><dd>${esc(approval.environment)}</dd><dt>Deployment</dt><dd>${esc(approval.executionId)}</dd><dt>Requested by</dt><dd>${esc(approval.requestedBy)}</dd><dt>Decide by</dt><dd>${esc(approval.deadline)}</dd><dt>You</dt><dd>${esc(claims.approver)}</dd></dl>`;
  if (!verdict.ok || approval.status === 'Expired' || (approval.status === 'Pending' && Date.now() > Date.parse(approval.deadline))) {
    return { error: page(410, 'Approval expired', `${details}<p>This approval expired; the deployment was rejected. Nothing was changed.</p>`) };
  }
  if (approval.usedLinks.includes(nonce))
    return { error: page(409, 'Link already used', `${details}<p>This link has already been used. Nothing was changed.</p>`) };
  if (approval.status !== 'Pending') {
    const by = approval.decisions.map((d) => `${esc(d.approver)} (${d.decision})`).join(', ');
    return {
      error: page(
        409,
        `Already ${approval.status.toLowerCase()}`,
        `${details}<p>This approval was already ${approval.status.toLowerCase()} by ${by}. Nothing was changed.</p>`,
      ),
    };
  }
  // The link was good when mailed; its approver must still be one now (enabled, role, list).
  const standing = await currentStanding(claims.approver, claims.environment);
  if (!standing.ok) return { error: await refuseLink(event, claims, standing) };
  return { claims, approval, nonce, details };
}

/**
 * A link whose approver may no longer decide: a security event on the deployment's trail, and a
 * 403 {code, message} (the link is a credential: not cached, not sent on as a referrer).
 */
async function refuseLink(
  event: APIGatewayProxyEvent,
  claims: NonNullable<ReturnType<typeof verifyLink>['claims']>,
  refusal: { code: string; message: string },
): Promise<APIGatewayProxyResult> {
  await audit({
    subject: deploymentSubject(claims.executionId),
    category: 'security',
    action: 'approval.link-refused',
    actor: claims.approver,
    details: {
      environment: claims.environment,
      decision: claims.action,
      code: refusal.code,
      reason: refusal.message,
      method: event.httpMethod,
      sourceIp: event.requestContext?.identity?.sourceIp,
    },
  });
  return json(
    403,
    { code: refusal.code, message: `${refusal.message}: this link no longer decides. Nothing was changed.` },
    { 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' },
  );
}

/** GET: show what the link would do. Mail scanners that follow links stop here. */
async function showLink(event: APIGatewayProxyEvent) {
  const r = await readLink(event);
  if (r.error) return r.error;
  const verb = r.claims.action === 'approve' ? 'Approve' : 'Reject';
  return page(
    200,
    `${verb} ${r.approval.moduleName} ${r.approval.version} for ${r.approval.environment}?`,
    `${r.details}<form method="post"><p><label for="reason">Reason${r.claims.action === 'reject' ? '' : ' (optional)'}</label><br><textarea id="reason" name="reason" maxlength="1000"></textarea></p><input type="hidden" name="confirm" value="${r.claims.action}"><button class="${r.claims.action}" type="submit">${verb}</button></form><p class="note">Nothing has been decided yet. This link works once and expires at ${esc(r.approval.deadline)}.</p>`,
  );
}

/** POST from the confirmation page: decide, once. */
async function useLink(event: APIGatewayProxyEvent) {
  const r = await readLink(event);
  if (r.error) return r.error;
  const raw = event.isBase64Encoded && event.body ? Buffer.from(event.body, 'base64').toString('utf8') : (event.body ?? '');
  const form = new URLSearchParams(raw);
  if (form.get('confirm') !== r.claims.action) return page(400, 'Not confirmed', '<p>The confirmation did not match this link. Nothing was changed.</p>');
  const reason = form.get('reason')?.trim().slice(0, 1000) || undefined;
  try {
    const a = await applyDecision({
      executionId: r.claims.executionId,
      environment: r.claims.environment,
      actor: { userId: r.claims.approver, isAdmin: false },
      decision: r.claims.action,
      reason,
      via: 'email',
      linkNonce: r.nonce,
    });
    const outcome =
      a.status === 'Pending'
        ? `recorded; ${a.quorum - a.decisions.filter((d) => d.decision === 'approve').length} more approval(s) needed`
        : a.status.toLowerCase();
    return page(200, `Decision recorded`, `${r.details}<p>Thank you. The approval is ${esc(outcome)}.</p>`);
  } catch (e) {
    // Who may decide is checked again as the decision is written; a refusal there is the same refusal.
    if (e instanceof AppError && e.status === 403) return refuseLink(event, r.claims, e);
    if (e instanceof AppError) return page(e.status, 'Nothing was changed', `${r.details}<p>${esc(e.message)}</p>`);
    throw e;
  }
}

export const handler = apiHandler({
  'GET /api/v1/approvals/pending': async () => {
    return json(200, { items: (await pendingApprovals()).map(presentApproval) });
  },
  'GET /api/v1/approvals/deployments/{executionId}': async (event) => {
    const { executionId } = parsePath(event, idSchema);
    if (!(await getDeployment(executionId))) throw notFound(`deployment ${executionId}`);
    return json(200, { executionId, items: (await approvalsOf(executionId)).map(presentApproval) });
  },
  'POST /api/v1/approvals/deployments/{executionId}/approve': (event, caller) => decideViaApi(event, caller, 'approve'),
  'POST /api/v1/approvals/deployments/{executionId}/reject': (event, caller) => decideViaApi(event, caller, 'reject'),
  'GET /approvals/links/{token}': (event) => showLink(event),
  'POST /approvals/links/{token}': (event) => useLink(event),
});
