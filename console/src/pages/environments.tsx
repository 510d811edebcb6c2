import { unwrap } from '../../../sdk/typescript/client.ts';
import { useApp, useLive } from '../hooks.ts';
import { environmentView, type EnvironmentView } from '../model.ts';

const HEALTH_TEXT = { ok: 'Healthy', warn: 'Converging', bad: 'Unhealthy', unknown: 'Not yet checked' } as const;

function EnvironmentCard({ e }: { e: EnvironmentView }) {
  const id = `env-${e.environment}`;
  return (
    <section class="card env" aria-labelledby={id} data-testid={`environment-${e.environment}`}>
      <header>
        <h2 id={id}>{e.environment}</h2>
        <span class={`health ${e.health}`}>{HEALTH_TEXT[e.health]}</span>
      </header>
      <p class="muted">
        {e.strategy}
        {e.requiresApproval ? ' · approval required' : ''}
      </p>
      <dl class="counts">
        <div>
          <dt>Nodes</dt>
          <dd>{e.nodes}</dd>
        </div>
        <div>
          <dt>Healthy</dt>
          <dd>{e.healthy}</dd>
        </div>
        <div>
          <dt>Unhealthy</dt>
          <dd class={e.unhealthy ? 'bad' : ''}>{e.unhealthy}</dd>
        </div>
        <div>
          <dt>Converging</dt>
          <dd>{e.converging}</dd>
        </div>
        <div>
          <dt>Anomalous</dt>
          <dd class={e.anomalous ? 'warn' : ''}>{e.anomalous}</dd>
        </div>
      </dl>
      {e.unreported > 0 && (
        <p class="muted">
          {e.unreported} of {e.nodes} without a health report yet (checked when a deployment reaches them)
        </p>
      )}
      <table class="versions">
        <caption class="sr-only">Module versions in {e.environment}</caption>
        <thead>
          <tr>
            <th scope="col">Module</th>
            <th scope="col">Versions</th>
            <th scope="col">Desired</th>
          </tr>
        </thead>
        <tbody>
          {e.modules.map((m) => (
            <tr key={m.module}>
              <th scope="row">{m.module}</th>
              <td>
                {m.versions.map((v) => (
                  <span key={v.version} class="version">
                    {v.version} <span class="muted">×{v.nodes}</span>
                  </span>
                ))}
              </td>
              <td>{m.desired ?? '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {e.colour && (
        <p class="colours">
          Live colour <span class={`colour ${e.colour.active}`}>{e.colour.active}</span>
          <span class="muted">
            {' '}
            blue {e.colour.blue} · green {e.colour.green}
          </span>
        </p>
      )}
      {e.canaryPercent !== undefined && <p class="muted">Canary traffic {e.canaryPercent} %</p>}
      {e.degradedModules.length > 0 && <p class="error">Degraded: {e.degradedModules.join(', ')}</p>}
    </section>
  );
}

export function EnvironmentsPage() {
  const { api } = useApp();
  const clusters = useLive(() => unwrap(api.GET('/api/v1/clusters')), [api], { clusters: true });
  return (
    <>
      <h1>Environments</h1>
      {clusters.error && (
        <p class="error" role="alert">
          {clusters.error}
        </p>
      )}
      {!clusters.data && clusters.loading && <p aria-busy="true">Loading…</p>}
      <div class="grid">
        {clusters.data?.items.map((c) => (
          <EnvironmentCard key={c.environment} e={environmentView(c)} />
        ))}
      </div>
    </>
  );
}
