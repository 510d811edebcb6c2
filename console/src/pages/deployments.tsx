import { useState } from 'preact/hooks';
import { unwrap } from '../../../sdk/typescript/client.ts';
import { errorText, useApp, useLive } from '../hooks.ts';
import {
  batchesDone,
  type Deployment,
  durationText,
  may,
  type Stage,
  steeringButtons,
  type SteeringAction,
  wavesOf,
  waveCharts,
  whoMayDecide,
} from '../model.ts';
import { WaveChartView } from './chart.tsx';

const ENVIRONMENTS = ['Development', 'QA', 'Staging', 'Production'] as const;
const STATUSES = ['Pending', 'Running', 'WaitingForApproval', 'Succeeded', 'Failed', 'RolledBack', 'Cancelled'] as const;

export function StatusBadge({ status }: { status: string }) {
  return (
    <span class={`status s-${status}`} data-testid="status">
      {status}
    </span>
  );
}

function NewDeployment({ onCreated }: { onCreated: (id: string) => void }) {
  const { api } = useApp();
  const modules = useLive(() => unwrap(api.GET('/api/v1/modules')), [api], {});
  const [moduleName, setModule] = useState('');
  const [version, setVersion] = useState('');
  const [target, setTarget] = useState<(typeof ENVIRONMENTS)[number]>('Development');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const items = modules.data?.items ?? [];
  const mod = items.find((m) => m.moduleName === moduleName) ?? items[0];
  const versions = mod?.versions ?? [];
  const chosenVersion = versions.includes(version) ? version : versions[versions.length - 1];
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!mod || !chosenVersion) return;
    setBusy(true);
    setError(undefined);
    try {
      const accepted = await unwrap(
        api.POST('/api/v1/deployments', {
          body: { moduleName: mod.moduleName, version: chosenVersion, targetEnvironment: target },
          headers: { 'idempotency-key': crypto.randomUUID() },
        }),
      );
      onCreated(accepted.executionId);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card inline-form" onSubmit={submit} aria-labelledby="new-deployment">
      <h2 id="new-deployment">New deployment</h2>
      <label>
        Module
        <select value={mod?.moduleName} onChange={(e) => setModule((e.target as HTMLSelectElement).value)}>
          {items.map((m) => (
            <option key={m.moduleName}>{m.moduleName}</option>
          ))}
        </select>
      </label>
      <label>
        Version
        <select value={chosenVersion} onChange={(e) => setVersion((e.target as HTMLSelectElement).value)}>
          {versions.map((v) => (
            <option key={v}>{v}</option>
          ))}
        </select>
      </label>
      <label>
        Up to
        <select value={target} onChange={(e) => setTarget((e.target as HTMLSelectElement).value as typeof target)}>
          {ENVIRONMENTS.map((v) => (
            <option key={v}>{v}</option>
          ))}
        </select>
      </label>
      <button type="submit" class="primary" disabled={busy || !chosenVersion}>
        Deploy
      </button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

export function DeploymentsPage() {
  const { api, session } = useApp();
  const [status, setStatus] = useState('');
  const [env, setEnv] = useState('');
  const list = useLive(
    () =>
      unwrap(
        api.GET('/api/v1/deployments', {
          params: {
            query: {
              limit: 50,
              ...(status ? { status: status as (typeof STATUSES)[number] } : {}),
              ...(env ? { targetEnvironment: env as (typeof ENVIRONMENTS)[number] } : {}),
            },
          },
        }),
      ),
    [api, status, env],
    { deployments: true },
  );
  // Older pages, by cursor, below the live first page (reset when the filters change).
  const [older, setOlder] = useState<{ key: string; items: Deployment[]; cursor: string | null }>();
  const key = `${status}|${env}`;
  const shownOlder = older?.key === key ? older : undefined;
  const nextCursor = shownOlder ? shownOlder.cursor : (list.data?.nextCursor ?? null);
  const [olderError, setOlderError] = useState<string>();
  const loadOlder = async () => {
    if (!nextCursor) return;
    setOlderError(undefined);
    try {
      const page = await unwrap(
        api.GET('/api/v1/deployments', {
          params: {
            query: {
              limit: 50,
              cursor: nextCursor,
              ...(status ? { status: status as (typeof STATUSES)[number] } : {}),
              ...(env ? { targetEnvironment: env as (typeof ENVIRONMENTS)[number] } : {}),
            },
          },
        }),
      );
      setOlder({ key, items: [...(shownOlder?.items ?? []), ...page.items], cursor: page.nextCursor });
    } catch (e) {
      setOlderError(errorText(e));
    }
  };
  const seen = new Set(list.data?.items.map((d) => d.executionId));
  const rows = [...(list.data?.items ?? []), ...(shownOlder?.items ?? []).filter((d) => !seen.has(d.executionId))];
  return (
    <>
      <h1>Deployments</h1>
      {may(session, 'deploy') && <NewDeployment onCreated={(id) => location.assign(`#/deployments/${encodeURIComponent(id)}`)} />}
      <div class="filters">
        <label>
          Status
          <select value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Environment
          <select value={env} onChange={(e) => setEnv((e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {ENVIRONMENTS.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
      </div>
      {list.error && (
        <p class="error" role="alert">
          {list.error}
        </p>
      )}
      <table class="list" data-testid="deployments">
        <caption class="sr-only">Deployments, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Deployment</th>
            <th scope="col">Module</th>
            <th scope="col">Up to</th>
            <th scope="col">Status</th>
            <th scope="col">Requested by</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((d) => (
            <tr key={d.executionId}>
              <td>
                <a href={`#/deployments/${encodeURIComponent(d.executionId)}`}>{d.executionId}</a>
              </td>
              <td>
                {d.moduleName}@{d.version}
              </td>
              <td>{d.targetEnvironment}</td>
              <td>
                <StatusBadge status={d.status} />
              </td>
              <td>{d.requestedBy}</td>
              <td>
                <time dateTime={d.createdAt}>{new Date(d.createdAt).toLocaleString()}</time>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data && rows.length === 0 && <p class="muted">No deployments yet.</p>}
      {nextCursor && (
        <button type="button" onClick={loadOlder}>
          Older deployments
        </button>
      )}
      {olderError && (
        <p class="error" role="alert">
          {olderError}
        </p>
      )}
    </>
  );
}

function Steering({ d, onDone }: { d: Deployment; onDone: () => void }) {
  const { api, session } = useApp();
  const [reason, setReason] = useState('');
  const [message, setMessage] = useState<{ text: string; error: boolean }>();
  const buttons = steeringButtons(d, session);
  if (!buttons.length) return null;
  const act = async (action: SteeringAction) => {
    setMessage(undefined);
    const path = { params: { path: { executionId: d.executionId } } };
    const why = reason.trim() ? { reason: reason.trim() } : {};
    try {
      if (action === 'cancel') await unwrap(api.POST('/api/v1/deployments/{executionId}/cancel', { ...path, body: why }));
      if (action === 'rollback') await unwrap(api.POST('/api/v1/deployments/{executionId}/rollback', { ...path, body: why }));
      if (action === 'pause') await unwrap(api.POST('/api/v1/deployments/{executionId}/pause', { ...path, body: why }));
      if (action === 'resume') await unwrap(api.POST('/api/v1/deployments/{executionId}/resume', { ...path, body: {} }));
      if (action === 'promote') await unwrap(api.POST('/api/v1/deployments/{executionId}/promote', { ...path, body: {} }));
      setMessage({ text: `${action} requested`, error: false });
      onDone();
    } catch (e) {
      setMessage({ text: errorText(e), error: true });
    }
  };
  return (
    <section class="card steering" aria-labelledby="steer">
      <h2 id="steer">Steer</h2>
      <label class="reason">
        Reason (optional)
        <input value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} maxLength={500} />
      </label>
      <div class="buttons">
        {buttons.map((b) => (
          <button
            key={b.action}
            type="button"
            class={b.action === 'cancel' || b.action === 'rollback' ? 'danger' : ''}
            disabled={!!b.disabledReason}
            title={b.disabledReason}
            aria-describedby={b.disabledReason ? `why-${b.action}` : undefined}
            onClick={() => act(b.action)}
          >
            {b.label}
            {b.disabledReason && (
              <span id={`why-${b.action}`} class="sr-only">
                ({b.disabledReason})
              </span>
            )}
          </button>
        ))}
      </div>
      {message && (
        <p class={message.error ? 'error' : 'ok'} role={message.error ? 'alert' : 'status'}>
          {message.text}
        </p>
      )}
    </section>
  );
}

function StageItem({ s }: { s: Stage }) {
  const batches = batchesDone(s);
  const waves = wavesOf(s.details);
  const charts = waveCharts(waves);
  const name = s.environment ?? s.name;
  return (
    <li class={`stage st-${s.status}`} data-testid={`stage-${s.name}`}>
      <div class="stage-head">
        <h3>{name}</h3>
        <span class={`status s-${s.status}`}>{s.status}</span>
        {s.strategy && <span class="muted">{s.strategy}</span>}
        {s.durationMs !== undefined && <span class="muted">{durationText(s.durationMs)}</span>}
      </div>
      {typeof s.nodesTotal === 'number' && s.nodesTotal > 0 && (
        <div class="progress">
          <label>
            Nodes {s.nodesDeployed ?? 0}/{s.nodesTotal}
            {s.nodesFailed ? ` (${s.nodesFailed} failed)` : ''}
            <progress max={s.nodesTotal} value={s.nodesDeployed ?? 0} />
          </label>
          {batches && (
            <span data-testid="batches">
              batches {batches[0]}/{batches[1]}
            </span>
          )}
        </div>
      )}
      {s.approval && (
        <p class="approval">
          Approval <strong>{s.approval.status}</strong>
          {s.approval.status === 'Pending' && <> — may decide: {whoMayDecide(s.approval)}</>}
          {s.approval.decisions.map((x) => (
            <span key={x.at}>
              {' '}
              · {x.decision === 'approve' ? 'approved' : 'rejected'} by {x.approver}
              {x.reason ? ` (“${x.reason}”)` : ''}
            </span>
          ))}
        </p>
      )}
      {waves.length > 0 && (
        <div class="waves">
          <ol>
            {waves.map((w) => (
              <li key={w.wave}>
                Wave {w.wave}: {w.percent} %, {w.nodes} node{w.nodes === 1 ? '' : 's'} — <strong>{w.passed ? 'passed' : 'failed'}</strong>
                {!w.passed && w.summary ? ` — ${w.summary}` : ''}
              </li>
            ))}
          </ol>
          <div class="charts">
            {charts.map((c) => (
              <WaveChartView key={c.metric} chart={c} />
            ))}
          </div>
        </div>
      )}
      {s.message && s.status !== 'Succeeded' && <p class="muted">{s.message}</p>}
    </li>
  );
}

export function DeploymentPage({ executionId }: { executionId: string }) {
  const { api } = useApp();
  const d = useLive(() => unwrap(api.GET('/api/v1/deployments/{executionId}', { params: { path: { executionId } } })), [api, executionId], {
    deploymentId: executionId,
  });
  const dep = d.data;
  return (
    <>
      <p>
        <a href="#/deployments">← Deployments</a>
      </p>
      {d.error && (
        <p class="error" role="alert">
          {d.error}
        </p>
      )}
      {dep && (
        <>
          <h1>
            {dep.moduleName}@{dep.version} → {dep.targetEnvironment} <StatusBadge status={dep.status} />
          </h1>
          <p class="muted">
            {dep.executionId} · requested by {dep.requestedBy} · <time dateTime={dep.createdAt}>{new Date(dep.createdAt).toLocaleString()}</time>
            {dep.finishedAt && (
              <>
                {' '}
                · finished <time dateTime={dep.finishedAt}>{new Date(dep.finishedAt).toLocaleString()}</time>
              </>
            )}
          </p>
          {dep.hold && (
            <p class="warn">
              Paused by {dep.hold.requestedBy}
              {dep.hold.deadline ? ` until ${new Date(dep.hold.deadline).toLocaleString()}, then ${dep.hold.onDeadline}` : ''}
              {dep.hold.reason ? ` — ${dep.hold.reason}` : ''}
            </p>
          )}
          {dep.failure && <p class="error">Failure: {dep.failure.message}</p>}
          {dep.cancellation && (
            <p class="warn">
              Cancel requested by {dep.cancellation.requestedBy}
              {dep.cancellation.reason ? `: ${dep.cancellation.reason}` : ''}
            </p>
          )}
          {dep.rollback && (
            <p class="warn">
              Rollback {dep.rollback.status} (requested by {dep.rollback.requestedBy})
            </p>
          )}
          <Steering d={dep} onDone={d.reload} />
          <section aria-labelledby="timeline">
            <h2 id="timeline">Timeline</h2>
            <ol class="timeline" aria-live="polite">
              {dep.stages.map((s) => (
                <StageItem key={s.name} s={s} />
              ))}
            </ol>
          </section>
        </>
      )}
    </>
  );
}
