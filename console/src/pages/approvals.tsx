import { useState } from 'preact/hooks';
import { unwrap } from '../../../sdk/typescript/client.ts';
import { errorText, useApp, useLive } from '../hooks.ts';
import { type Approval, decisionRight, whoMayDecide } from '../model.ts';

function ApprovalCard({ a, onDecided }: { a: Approval; onDecided: () => void }) {
  const { api, session } = useApp();
  const [reason, setReason] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const right = decisionRight(a, session);
  const id = `approval-${a.executionId}-${a.environment}`;
  const decide = async (decision: 'approve' | 'reject') => {
    if (!reason.trim()) return setError('Give a reason: it is kept in the audit trail.');
    setBusy(true);
    setError(undefined);
    const init = { params: { path: { executionId: a.executionId } }, body: { reason: reason.trim(), environment: a.environment } };
    try {
      if (decision === 'approve') await unwrap(api.POST('/api/v1/approvals/deployments/{executionId}/approve', init));
      else await unwrap(api.POST('/api/v1/approvals/deployments/{executionId}/reject', init));
      onDecided();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="card approval-card" aria-labelledby={id} data-testid={`approval-${a.executionId}`}>
      <h2 id={id}>
        {a.moduleName}@{a.version} → {a.environment}
      </h2>
      <p>
        <a href={`#/deployments/${encodeURIComponent(a.executionId)}`}>{a.executionId}</a> · requested by {a.requestedBy} ·{' '}
        <time dateTime={a.requestedAt}>{new Date(a.requestedAt).toLocaleString()}</time>
      </p>
      <p>
        May decide: <strong data-testid="may-decide">{whoMayDecide(a)}</strong> · deadline{' '}
        <time dateTime={a.deadline}>{new Date(a.deadline).toLocaleString()}</time>
      </p>
      {a.decisions.length > 0 && (
        <ul>
          {a.decisions.map((d) => (
            <li key={d.at}>
              {d.decision === 'approve' ? 'Approved' : 'Rejected'} by {d.approver}
              {d.reason ? `: ${d.reason}` : ''}
            </li>
          ))}
        </ul>
      )}
      {right.may ? (
        <div class="decide">
          <label>
            Reason
            <textarea required rows={2} maxLength={500} value={reason} onInput={(e) => setReason((e.target as HTMLTextAreaElement).value)} />
          </label>
          <div class="buttons">
            <button type="button" class="primary" disabled={busy} onClick={() => decide('approve')}>
              Approve
            </button>
            <button type="button" class="danger" disabled={busy} onClick={() => decide('reject')}>
              Reject
            </button>
          </div>
        </div>
      ) : (
        <p class="muted">You cannot decide this gate: {right.why}.</p>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}

export function ApprovalsPage() {
  const { api } = useApp();
  const pending = useLive(() => unwrap(api.GET('/api/v1/approvals/pending')), [api], { approvals: true, deployments: true });
  return (
    <>
      <h1>Approvals</h1>
      {pending.error && (
        <p class="error" role="alert">
          {pending.error}
        </p>
      )}
      {pending.data?.items.length === 0 && <p class="muted">No gate is waiting for a decision.</p>}
      {pending.data?.items.map((a) => (
        <ApprovalCard key={`${a.executionId}-${a.environment}`} a={a} onDecided={pending.reload} />
      ))}
    </>
  );
}
