import { useState } from 'preact/hooks';
import { type Schemas, unwrap } from '../../../sdk/typescript/client.ts';
import { errorText, useApp } from '../hooks.ts';
import { AUDIT_CATEGORIES, type AuditForm, auditQuery } from '../model.ts';

export function AuditPage() {
  const { api } = useApp();
  const [form, setForm] = useState<AuditForm>({ order: 'newest' });
  const [items, setItems] = useState<Schemas['AuditEvent'][]>();
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const field = (k: keyof AuditForm) => ({
    value: form[k] ?? '',
    onInput: (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value }),
  });
  const search = async (more: boolean) => {
    setBusy(true);
    setError(undefined);
    try {
      const query = { ...auditQuery(form), limit: 50, ...(more && cursor ? { cursor } : {}) };
      const page = await unwrap(api.GET('/api/v1/audit', { params: { query } }));
      setItems(more ? [...(items ?? []), ...page.items] : page.items);
      setCursor(page.nextCursor);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <h1>Audit</h1>
      <form
        class="card filters"
        onSubmit={(e) => {
          e.preventDefault();
          void search(false);
        }}
        aria-label="Search the audit trail"
      >
        <label>
          Deployment id
          <input {...field('deploymentId')} />
        </label>
        <label>
          Subject
          <input placeholder="module#demo-kernel" {...field('subject')} />
        </label>
        <label>
          Category
          <select {...field('category')} onChange={(e) => setForm({ ...form, category: (e.target as HTMLSelectElement).value })}>
            <option value="">any</option>
            {AUDIT_CATEGORIES.map((c) => (
              <option key={c}>{c}</option>
            ))}
          </select>
        </label>
        <label>
          Actor
          <input {...field('actor')} />
        </label>
        <label>
          Trace id
          <input {...field('traceId')} />
        </label>
        <label>
          From
          <input type="datetime-local" {...field('from')} />
        </label>
        <label>
          To
          <input type="datetime-local" {...field('to')} />
        </label>
        <label>
          Order
          <select value={form.order} onChange={(e) => setForm({ ...form, order: (e.target as HTMLSelectElement).value as 'newest' | 'oldest' })}>
            <option value="newest">newest first</option>
            <option value="oldest">oldest first</option>
          </select>
        </label>
        <button type="submit" class="primary" disabled={busy}>
          Search
        </button>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {items && (
        <table class="list" data-testid="audit">
          <caption class="sr-only">Audit events</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Category</th>
              <th scope="col">Action</th>
              <th scope="col">Subject</th>
              <th scope="col">Actor</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {items.map((e) => (
              <tr key={`${e.subject}|${e.sk}`}>
                <td>
                  <time dateTime={e.at ?? e.sk.slice(0, 24)}>{new Date(e.at ?? e.sk.slice(0, 24)).toLocaleString()}</time>
                </td>
                <td>{e.category}</td>
                <td>{e.action}</td>
                <td>{e.subject}</td>
                <td>{e.actor}</td>
                <td>
                  <details>
                    <summary>details</summary>
                    <pre>{JSON.stringify(e.details ?? {}, null, 2)}</pre>
                  </details>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {items?.length === 0 && <p class="muted">Nothing matches.</p>}
      {cursor && (
        <button type="button" disabled={busy} onClick={() => search(true)}>
          More
        </button>
      )}
    </>
  );
}
