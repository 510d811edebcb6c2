/** The web console (docs/adr/0035-web-console.md): Preact, uPlot, bundled offline by esbuild (console/build.ts). */
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { createKmodClient } from '../../sdk/typescript/client.ts';
import { currentSession, signInCognito, signInLocal, signOut } from './auth.ts';
import { type ConsoleConfig, loadConfig } from './config.ts';
import { AppContext, errorText, useLiveState, useRoute } from './hooks.ts';
import { LiveEvents } from './live.ts';
import { may, type Session } from './model.ts';
import { AdminPage } from './pages/admin.tsx';
import { ApprovalsPage } from './pages/approvals.tsx';
import { AuditPage } from './pages/audit.tsx';
import { DeploymentPage, DeploymentsPage } from './pages/deployments.tsx';
import { EnvironmentsPage } from './pages/environments.tsx';

function SignIn({ config, onSession }: { config: ConsoleConfig; onSession: (s: Session) => void }) {
  const auth = config.auth;
  const [userId, setUserId] = useState(auth.mode === 'local' ? (auth.users[0]?.userId ?? '') : '');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      if (auth.mode === 'local') onSession(await signInLocal(config, userId));
      else await signInCognito(config);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin" aria-labelledby="signin-title">
      <form class="card" onSubmit={submit}>
        <h1 id="signin-title">kmod-orchestrator</h1>
        {auth.mode === 'local' ? (
          <>
            <p class="muted">Local cloud: sign in as one of its users (the local identity plays Cognito's part).</p>
            <label for="user">User</label>
            <select id="user" value={userId} onChange={(e) => setUserId((e.target as HTMLSelectElement).value)}>
              {auth.users.map((u) => (
                <option key={u.userId} value={u.userId}>
                  {u.username} ({u.role})
                </option>
              ))}
            </select>
            <label for="other">…or another user id of the directory</label>
            <input id="other" placeholder="user id" onInput={(e) => setUserId((e.target as HTMLInputElement).value || (auth.users[0]?.userId ?? ''))} />
          </>
        ) : (
          <p class="muted">Sign in with your organisation's account (Amazon Cognito).</p>
        )}
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}

const NAV = [
  { path: 'environments', label: 'Environments' },
  { path: 'deployments', label: 'Deployments' },
  { path: 'approvals', label: 'Approvals' },
  { path: 'audit', label: 'Audit', need: 'audit' },
  { path: 'admin', label: 'Admin', need: 'admin' },
] as const;

function LiveBadge() {
  const s = useLiveState();
  if (!s) return <span class="live off">polling</span>;
  return (
    <span class={`live ${s}`} role="status" aria-live="polite">
      {s === 'live' ? 'live' : s === 'connecting' ? 'connecting…' : 'reconnecting…'}
    </span>
  );
}

function Shell({ config, session, onSignOut }: { config: ConsoleConfig; session: Session; onSignOut: () => void }) {
  const route = useRoute();
  const api = useMemo(() => createKmodClient({ baseUrl: config.apiUrl, token: () => session.token }), [config, session]);
  const live = useMemo(() => (config.wsUrl ? new LiveEvents(config.wsUrl, () => session.token) : undefined), [config, session]);
  useEffect(() => () => live?.close(), [live]);
  const [page = 'environments', id] = route;
  const nav = NAV.filter((n) => !('need' in n) || may(session, n.need));
  return (
    <AppContext.Provider value={{ config, session, api, live }}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">kmod-orchestrator</span>
        <nav aria-label="Main">
          <ul>
            {nav.map((n) => (
              <li key={n.path}>
                <a href={`#/${n.path}`} aria-current={page === n.path ? 'page' : undefined}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <LiveBadge />
        <span class="who" data-testid="who">
          {session.username} · {session.roles.join(', ') || 'no role'}
        </span>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {page === 'environments' && <EnvironmentsPage />}
        {page === 'deployments' && !id && <DeploymentsPage />}
        {page === 'deployments' && id && <DeploymentPage executionId={id} />}
        {page === 'approvals' && <ApprovalsPage />}
        {page === 'audit' && (may(session, 'audit') ? <AuditPage /> : <p>Only Admins read the audit trail.</p>)}
        {page === 'admin' && (may(session, 'admin') ? <AdminPage /> : <p>Only Admins manage users.</p>)}
      </main>
    </AppContext.Provider>
  );
}

function App() {
  const [config, setConfig] = useState<ConsoleConfig>();
  const [session, setSession] = useState<Session>();
  const [error, setError] = useState<string>();
  const [ready, setReady] = useState(false);
  useEffect(() => {
    loadConfig()
      .then(async (c) => {
        setConfig(c);
        setSession(await currentSession(c));
      })
      .catch((e) => setError(errorText(e)))
      .finally(() => setReady(true));
  }, []);
  if (error)
    return (
      <main class="signin">
        <p class="error" role="alert">
          The console could not start: {error}
        </p>
      </main>
    );
  if (!ready || !config) return <p aria-busy="true">Loading…</p>;
  if (!session) return <SignIn config={config} onSession={setSession} />;
  return (
    <Shell
      key={session.token}
      config={config}
      session={session}
      onSignOut={() => {
        void signOut(config);
        setSession(undefined);
      }}
    />
  );
}

render(<App />, document.getElementById('app')!);
