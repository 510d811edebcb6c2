import { z } from 'zod';
import { signLink } from '../../domain/approvals.ts';
import type { DeploymentRecord } from '../../domain/deployment.ts';
import { ENVIRONMENTS, GATED_ENVIRONMENTS } from '../../domain/environments.ts';
import { audit, deploymentSubject } from '../../lib/audit.ts';
import { openApproval, type ApprovalRecord } from '../../lib/approvals.ts';
import { config } from '../../lib/config.ts';
import { requireDeployment } from '../../lib/deployments.ts';
import { renewDeploymentLocks } from '../../lib/locks.ts';
import { listNodes } from '../../lib/nodes.ts';
import { publishToApprover } from '../../lib/notify.ts';
import { approvalLinkKeys } from '../../lib/secrets.ts';
import { executionIdSchema, taskHandler } from '../../lib/task.ts';

/**
 * The approval gate (invoked with `.waitForTaskToken`): record the approval with its task token,
 * show the deployment WaitingForApproval, and email every approver personal approve/reject links.
 * The state machine then waits; its own task timeout is the approval's expiry.
 */
export const handler = taskHandler(
  z.object({
    executionId: executionIdSchema,
    environment: z.enum(GATED_ENVIRONMENTS),
    taskToken: z.string().min(1),
    timeoutSeconds: z.number().int().positive(),
  }),
  async ({ executionId, environment, taskToken, timeoutSeconds }) => {
    const d = await requireDeployment(executionId);
    const now = new Date();
    const deadline = new Date(now.getTime() + timeoutSeconds * 1000);
    // The locks are held until the gate's deadline (and one step after it, for the rollback an
    // expiry starts); the step after an approval renews them for one step again.
    await renewDeploymentLocks(d, executionId, { gateDeadline: deadline });
    const approval: ApprovalRecord = {
      executionId,
      environment,
      moduleName: d.moduleName,
      version: d.version,
      status: 'Pending',
      requestedBy: d.requestedBy,
      approvers: config.approvers(environment),
      quorum: config.approvalQuorum(environment),
      requestedAt: now.toISOString(),
      deadline: deadline.toISOString(),
      decisions: [],
      taskToken,
      usedLinks: [],
    };
    if (!(await openApproval(approval))) return { opened: false }; // a retry: already requested and notified

    await emailApprovers(approval, d, await versionsByEnvironment(d.moduleName));
    await audit({
      subject: deploymentSubject(executionId),
      category: 'approval',
      action: 'approval.notified',
      actor: 'system:pipeline',
      details: { environment, recipients: approval.approvers },
    });
    return { opened: true };
  },
);

/** One line per environment: which versions of the module its nodes run now. */
async function versionsByEnvironment(moduleName: string): Promise<string[]> {
  const lines: string[] = [];
  for (const env of ENVIRONMENTS) {
    const nodes = await listNodes(env);
    const counts = new Map<string, number>();
    for (const n of nodes) {
      const v = n.modules?.[moduleName]?.version ?? 'none';
      counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    lines.push(`  ${env.padEnd(12)} ${[...counts].map(([v, c]) => `${v} on ${c} of ${nodes.length} nodes`).join(', ') || 'no nodes'}`);
  }
  return lines;
}

/** Each approver gets personal, signed approve/reject links that expire with the gate. */
async function emailApprovers(approval: ApprovalRecord, d: DeploymentRecord, deployed: string[]): Promise<void> {
  const { executionId, environment } = approval;
  const [key] = await approvalLinkKeys();
  const exp = Math.floor(Date.parse(approval.deadline) / 1000);
  const base = config.publicApiUrl().replace(/\/$/, '');
  for (const approver of approval.approvers) {
    const link = (action: 'approve' | 'reject') => `${base}/approvals/links/${signLink({ executionId, environment, approver, action, exp }, key)}`;
    await publishToApprover(
      approver,
      environment,
      `Approval needed: ${d.moduleName}@${d.version} to ${environment}`,
      [
        `${d.moduleName} ${d.version} is waiting for your approval to deploy to ${environment}.`,
        '',
        `Deployment:    ${executionId}`,
        `Requested by:  ${d.requestedBy}`,
        `Requested at:  ${approval.requestedAt}`,
        `Decide by:     ${approval.deadline} (after that the deployment is rejected)`,
        `Approvals needed: ${approval.quorum}`,
        '',
        `${d.moduleName} in each environment now:`,
        ...deployed,
        '',
        `Approve: ${link('approve')}`,
        `Reject:  ${link('reject')}`,
        '',
        'Each link opens a confirmation page; nothing is decided until you confirm there.',
      ].join('\n'),
    );
  }
}
