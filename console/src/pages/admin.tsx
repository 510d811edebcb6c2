import { useState } from 'preact/hooks';
import { type Schemas, unwrap } from '../../../sdk/typescript/client.ts';
import { errorText, useApp, useLive } from '../hooks.ts';
import { ROLES, type Role } from '../model.ts';

type Principal = Schemas['Principal'];

/** One checkbox per option, as labels (the caller's fieldset gives them their legend). */
function Checks<T extends string>({ options, selected, onChange }: { options: readonly T[]; selected: T[]; onChange: (next: T[]) => void }) {
  return (
    <>
      {options.map((o) => (
        <label key={o} class="check">
          <input
            type="checkbox"
            checked={selected.includes(o)}
            onChange={(e) => onChange((e.target as HTMLInputElement).checked ? [...selected, o] : selected.filter((x) => x !== o))}
          />
          {o}
        </label>
      ))}
    </>
  );
}

function RolesEditor({ p, onSaved }: { p: Principal; onSaved: () => void }) {
  const { api } = useApp();
  const [roles, setRoles] = useState<Role[]>(p.roles);
  const [error, setError] = useState<string>();
  const changed = roles.slice().sort().join() !== p.roles.slice().sort().join();
  const save = async () => {
    setError(undefined);
    try {
      await unwrap(api.PUT('/api/v1/admin/users/{userId}/roles', { params: { path: { userId: p.userId } }, body: { roles } }));
      onSaved();
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <fieldset class="roles">
      <legend class="sr-only">Roles of {p.username}</legend>
      <Checks options={ROLES} selected={roles} onChange={setRoles} />
      <button type="button" disabled={!changed} onClick={save}>
        Save roles
      </button>
      {error && (
        <span class="error" role="alert">
          {error}
        </span>
      )}
    </fieldset>
  );
}

function Principals() {
  const { api, session } = useApp();
  const users = useLive(() => unwrap(api.GET('/api/v1/admin/users')), [api], {});
  const [error, setError] = useState<string>();
  const toggle = async (p: Principal) => {
    setError(undefined);
    const init = { params: { path: { userId: p.userId } } };
    try {
      if (p.enabled) await unwrap(api.POST('/api/v1/admin/users/{userId}/disable', init));
      else await unwrap(api.POST('/api/v1/admin/users/{userId}/enable', init));
      users.reload();
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <section aria-labelledby="principals">
      <h2 id="principals">Users and service clients</h2>
      {(users.error || error) && (
        <p class="error" role="alert">
          {users.error ?? error}
        </p>
      )}
      <table class="list" data-testid="principals">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Kind</th>
            <th scope="col">Id</th>
            <th scope="col">Roles / scopes</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {users.data?.items.map((p) => (
            <tr key={p.userId}>
              <th scope="row">
                {p.username}
                {p.email && <div class="muted">{p.email}</div>}
              </th>
              <td>{p.kind}</td>
              <td>
                <code>{p.userId}</code>
              </td>
              <td>{p.kind === 'user' ? <RolesEditor key={p.roles.join()} p={p} onSaved={users.reload} /> : (p.scopes ?? []).join(' ')}</td>
              <td>
                {p.enabled ? 'enabled' : 'disabled'}{' '}
                <button
                  type="button"
                  disabled={p.userId === session.sub}
                  onClick={() => toggle(p)}
                  aria-label={`${p.enabled ? 'Disable' : 'Enable'} ${p.username}`}
                >
                  {p.enabled ? 'Disable' : 'Enable'}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="grid">
        <NewUser onCreated={users.reload} />
        <NewClient onCreated={users.reload} />
      </div>
    </section>
  );
}

function NewUser({ onCreated }: { onCreated: () => void }) {
  const { api } = useApp();
  const [username, setUsername] = useState('');
  const [email, setEmail] = useState('');
  const [roles, setRoles] = useState<Role[]>(['Viewer']);
  const [message, setMessage] = useState<{ text: string; error: boolean }>();
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      const u = await unwrap(api.POST('/api/v1/admin/users', { body: { username, email, roles } }));
      setMessage({ text: `created ${u.username} (${u.userId})`, error: false });
      setUsername('');
      setEmail('');
      onCreated();
    } catch (err) {
      setMessage({ text: errorText(err), error: true });
    }
  };
  return (
    <form class="card" onSubmit={submit} aria-labelledby="new-user">
      <h3 id="new-user">New user</h3>
      <label>
        Username
        <input required value={username} onInput={(e) => setUsername((e.target as HTMLInputElement).value)} />
      </label>
      <label>
        Email
        <input required type="email" value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value)} />
      </label>
      <fieldset>
        <legend>Roles</legend>
        <Checks options={ROLES} selected={roles} onChange={setRoles} />
      </fieldset>
      <button type="submit" class="primary">
        Create user
      </button>
      {message && (
        <p class={message.error ? 'error' : 'ok'} role={message.error ? 'alert' : 'status'}>
          {message.text}
        </p>
      )}
    </form>
  );
}

function NewClient({ onCreated }: { onCreated: () => void }) {
  const { api } = useApp();
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<('kmod/deploy' | 'kmod/read')[]>(['kmod/read']);
  const [created, setCreated] = useState<Schemas['ClientCreated']>();
  const [error, setError] = useState<string>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    try {
      setCreated(await unwrap(api.POST('/api/v1/admin/clients', { body: { name, scopes } })));
      setName('');
      onCreated();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form class="card" onSubmit={submit} aria-labelledby="new-client">
      <h3 id="new-client">New service client</h3>
      <label>
        Name
        <input required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      </label>
      <fieldset>
        <legend>Scopes</legend>
        <Checks options={['kmod/read', 'kmod/deploy'] as const} selected={scopes} onChange={setScopes} />
      </fieldset>
      <button type="submit" class="primary">
        Create client
      </button>
      {created && (
        <div class="secret" role="status">
          <p>
            Client <code>{created.clientId}</code> created. Its secret is shown once:
          </p>
          <pre>{created.clientSecret}</pre>
        </div>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

function RateLimits() {
  const { api } = useApp();
  const current = useLive(() => unwrap(api.GET('/api/v1/admin/rate-limits')), [api], {});
  const [edit, setEdit] = useState<Partial<Schemas['RateLimits']>>({});
  const [message, setMessage] = useState<{ text: string; error: boolean }>();
  const value = { ...current.data, ...edit } as Partial<Schemas['RateLimits']>;
  const field = (k: keyof Schemas['RateLimits'], label: string) => (
    <label>
      {label}
      <input type="number" min={1} required value={value[k] ?? ''} onInput={(e) => setEdit({ ...edit, [k]: Number((e.target as HTMLInputElement).value) })} />
    </label>
  );
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      await unwrap(api.PUT('/api/v1/admin/rate-limits', { body: value as Schemas['RateLimits'] }));
      setEdit({});
      setMessage({ text: 'saved (applies within seconds)', error: false });
      current.reload();
    } catch (err) {
      setMessage({ text: errorText(err), error: true });
    }
  };
  return (
    <form class="card inline-form" onSubmit={submit} aria-labelledby="limits">
      <h2 id="limits">Rate limits</h2>
      {field('windowSeconds', 'Window (s)')}
      {field('deploymentCreatePerUser', 'Deployments per user per window')}
      {field('metricsPerUser', 'Metrics reads per user per window')}
      <button type="submit" class="primary" disabled={!current.data}>
        Save limits
      </button>
      {(current.error || message) && (
        <p class={current.error || message?.error ? 'error' : 'ok'} role="status">
          {current.error ?? message?.text}
        </p>
      )}
    </form>
  );
}

export function AdminPage() {
  return (
    <>
      <h1>Admin</h1>
      <Principals />
      <RateLimits />
    </>
  );
}
