/** The kmod CLI without a server: argument parsing, usage errors (exit 2), formatting, exit codes by status, targets. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { linkEvents } from '../../../functions/domain/auditChain.ts';
import { ApiError, createKmodClient } from '../../../sdk/typescript/client.ts';
import { deployment } from './deploymentFixture.ts';
import { batchesDone, deploymentLines, exitCodeFor, waves } from '../../../scripts/lib/kmod/format.ts';
import { parseModuleRef, run } from '../../../scripts/lib/kmod/program.ts';
import { resolveTarget, UsageError } from '../../../scripts/lib/kmod/target.ts';
import { plainRenderer, pollingSource } from '../../../scripts/lib/kmod/watch.ts';

const capture = () => {
  let text = '';
  return {
    write: (s: string) => void (text += s),
    get text() {
      return text;
    },
  };
};

/**
 * A fake API behind the real typed client (sdk/typescript/client.ts): a `fetch` that records each
 * request (the token is the role) and answers from `answers` by "METHOD path?query", snapshots of
 * a GET in order; an ApiError answers its status with the API's error body.
 */
function fakeClient(answers: Record<string, any | any[]>) {
  const calls: { method: string; path: string; body?: unknown; role?: string }[] = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = input instanceof Request ? input : new Request(input, init);
    const url = new URL(req.url);
    const path = `${url.pathname}${url.search}`;
    const text = await req.text();
    calls.push({ method: req.method, path, role: req.headers.get('authorization')?.replace(/^Bearer /, ''), ...(text ? { body: JSON.parse(text) } : {}) });
    const a = answers[`${req.method} ${path}`];
    const answer = Array.isArray(a) ? (a.length > 1 ? a.shift() : a[0]) : a;
    if (answer instanceof ApiError) return Response.json({ code: answer.code, message: answer.message }, { status: answer.status });
    return Response.json(answer ?? {});
  };
  return { calls, client: (role: string, opts?: { as?: string }) => createKmodClient({ baseUrl: 'http://api.test', token: opts?.as ?? role, fetch }) };
}

const dep = deployment;

async function kmod(argv: string[], answers: Record<string, any> = {}) {
  const stdout = capture();
  const stderr = capture();
  const fake = fakeClient(answers);
  const code = await run(argv, { stdout, stderr, client: fake.client as any, pollMs: 1 });
  return { code, out: stdout.text, err: stderr.text, calls: fake.calls };
}

describe('kmod usage errors exit 2 and call nothing', () => {
  it.each([
    [['bogus']],
    [['deploy', 'demo-kernel@1.1.0']], // --to missing
    [['deploy', 'demo-kernel@1.1.0', '--to', 'Moon']],
    [['deploy', 'demo-kernel', '--to', 'Development']], // no @version
    [['get']],
    [['reject', 'dep-abcdefghi-0123456789ab']], // reject needs a reason
    [['list', '--limit', 'many']],
    [['clusters', 'Moon']],
    [['--as', 'Root', 'list']],
    [['get', 'x', '--frobnicate']],
  ])('%j', async (argv) => {
    const r = await kmod(argv);
    expect(r.code).toBe(2);
    expect(r.err).not.toBe('');
    expect(r.calls).toEqual([]);
  });

  it('--help exits 0 and lists every command', async () => {
    const r = await kmod(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['deploy', 'get', 'list', 'approve', 'reject', 'rollback', 'cancel', 'pause', 'resume', 'promote', 'clusters', 'modules', 'audit']) {
      expect(r.out).toContain(`  ${c} `);
    }
  });
});

describe('kmod commands call the API with the right role and body', () => {
  it('deploy posts the module, version, environment and reason as the Deployer, then prints the id', async () => {
    const r = await kmod(['deploy', 'demo-kernel@1.1.0', '--to', 'Staging', '--reason', 'CVE fix'], {
      'POST /api/v1/deployments': { executionId: 'dep-abcdefghi-0123456789ab' },
    });
    expect(r.code).toBe(0);
    expect(r.calls).toEqual([
      {
        method: 'POST',
        path: '/api/v1/deployments',
        role: 'Deployer',
        body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Staging', metadata: { reason: 'CVE fix' } },
      },
    ]);
    expect(r.out.trim()).toBe('dep-abcdefghi-0123456789ab');
  });

  it('approve and reject post to the approvals routes as the Approver; --as overrides', async () => {
    const id = 'dep-abcdefghi-0123456789ab';
    const a = await kmod(['approve', id, '--reason', 'ok'], { [`POST /api/v1/approvals/deployments/${id}/approve`]: { status: 'Approved' } });
    expect(a.calls[0]).toMatchObject({ path: `/api/v1/approvals/deployments/${id}/approve`, role: 'Approver', body: { reason: 'ok' } });
    expect(a.code).toBe(0);
    const r = await kmod(['--as', 'Admin', 'reject', id, '--reason', 'no'], { [`POST /api/v1/approvals/deployments/${id}/reject`]: { status: 'Rejected' } });
    expect(r.calls[0]).toMatchObject({ path: `/api/v1/approvals/deployments/${id}/reject`, role: 'Admin', body: { reason: 'no' } });
    expect(r.out).toBe(`${id}: rejected (Rejected)\n`);
  });

  it('steering commands post to /deployments/{id}/<action> with their options and say what each answer means', async () => {
    const id = 'dep-abcdefghi-0123456789ab';
    const at = '2026-11-29T12:00:00.000Z';
    const answers = {
      [`POST /api/v1/deployments/${id}/pause`]: { executionId: id, hold: { requestedBy: 'deployer', requestedAt: at, deadline: at, onDeadline: 'rollback' } },
      [`POST /api/v1/deployments/${id}/promote`]: { executionId: id, promotion: { requestedBy: 'deployer', requestedAt: at, to: 'full' } },
      [`POST /api/v1/deployments/${id}/cancel`]: { executionId: id, status: 'Running', cancellation: { requestedBy: 'deployer', requestedAt: at } },
      [`POST /api/v1/deployments/${id}/rollback`]: {
        executionId: id,
        rollback: { status: 'Running', environments: ['Staging', 'QA'], requestedBy: 'd', requestedAt: at },
      },
      [`POST /api/v1/deployments/${id}/resume`]: { executionId: id, resumed: { by: 'deployer' } },
    };
    const p = await kmod(['pause', id, '--reason', 'look', '--deadline', '600', '--on-deadline', 'rollback'], answers);
    expect(p.calls[0]).toMatchObject({
      path: `/api/v1/deployments/${id}/pause`,
      role: 'Deployer',
      body: { reason: 'look', deadlineSeconds: 600, onDeadline: 'rollback' },
    });
    expect(p.out).toBe(`${id}: pause accepted (held until ${at}, then rollback)\n`);
    const q = await kmod(['promote', id, '--full'], answers);
    expect(q.calls[0]).toMatchObject({ path: `/api/v1/deployments/${id}/promote`, body: { to: 'full' } });
    expect(q.out).toBe(`${id}: promote accepted (to 100 %)\n`);
    const said: Record<string, string> = { cancel: 'status Running', rollback: 'rolling back Staging, QA', resume: 'resumed by deployer' };
    for (const action of ['cancel', 'rollback', 'resume']) {
      const r = await kmod([action, id], answers);
      expect(r.calls[0]).toMatchObject({ method: 'POST', path: `/api/v1/deployments/${id}/${action}`, body: {} });
      expect(r.out).toBe(`${id}: ${action} accepted (${said[action]})\n`);
    }
  });

  it('audit lists newest first with filters (the API alone would list a filter oldest first) and shows the next page', async () => {
    const oldest = await kmod(['audit', '--category', 'approval', '--order', 'oldest'], {
      'GET /api/v1/audit?category=approval&order=oldest&limit=20': { items: [] },
    });
    expect(oldest.code).toBe(0);
    expect((await kmod(['audit', '--order', 'sideways'])).code).toBe(2);
    const r = await kmod(['audit', '--limit', '2', '--category', 'approval'], {
      'GET /api/v1/audit?category=approval&order=newest&limit=2': {
        items: [{ subject: 'deployment#d', sk: 't2#1', category: 'approval', at: 't2', action: 'approval.decided', actor: 'approver' }],
        nextCursor: 'abc',
      },
    });
    expect(r.code).toBe(0);
    expect(r.calls[0]).toMatchObject({ role: 'Admin' });
    expect(r.out).toContain('approval.decided');
    expect(r.err).toContain('kmod audit --cursor abc');
  });

  it('audit export pages the whole trail oldest first as JSON Lines; audit verify checks such a file offline (exit 1 when tampered)', async () => {
    const { items: first } = linkEvents('module#demo|module', undefined, [
      { subject: 'module#demo', sk: '2026-01-01T00:00:00.000Z#a', category: 'module', action: 'module.registered', actor: 'dan', expiresAt: 4_000_000_000 },
    ]);
    const { items: second } = linkEvents(
      'module#demo|module',
      { seq: 1, hash: String(first[0].hash), eventSk: String(first[0].sk), expiresAt: 4_000_000_000 },
      [{ subject: 'module#demo', sk: '2026-01-01T00:00:01.000Z#b', category: 'module', action: 'module.registered', actor: 'dan', expiresAt: 4_000_000_001 }],
    );
    const r = await kmod(['audit', 'export', '--from', '2026-01-01T00:00:00.000Z'], {
      'GET /api/v1/audit?order=oldest&limit=500&from=2026-01-01T00%3A00%3A00.000Z': { items: first, nextCursor: 'p2' },
      'GET /api/v1/audit?order=oldest&limit=500&from=2026-01-01T00%3A00%3A00.000Z&cursor=p2': { items: second, nextCursor: null },
    });
    expect(r.code).toBe(0);
    expect(r.calls.map((c) => c.role)).toEqual(['Admin', 'Admin']);
    expect(
      r.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).seq),
    ).toEqual([1, 2]);
    expect(r.err).toBe('2 audit events exported\n');

    const dir = mkdtempSync(join(tmpdir(), 'kmod-audit-'));
    writeFileSync(join(dir, 'good.jsonl'), r.out);
    const good = await kmod(['audit', 'verify', '--file', join(dir, 'good.jsonl')]);
    expect(good).toMatchObject({ code: 0, calls: [] });
    expect(good.out).toContain('verified: 2 chained events in 1 chains');
    writeFileSync(join(dir, 'bad.jsonl'), r.out.replace('"actor":"dan"', '"actor":"eve"'));
    const bad = await kmod(['audit', 'verify', '--file', join(dir, 'bad.jsonl')]);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain(`hash-mismatch module#demo|module seq 1 ${first[0].sk}`);
    expect((await kmod(['audit', 'verify', '--file', join(dir, 'missing.jsonl')])).code).toBe(2);
  });

  it('audit verify without a file asks the API, and exits 1 when it reports a broken link', async () => {
    const broken = { chain: 'c', seq: 3, sk: 's', reason: 'missing-event', detail: 'gone' };
    const report = {
      verified: false,
      chains: 1,
      events: 2,
      unchained: 0,
      expiredPredecessors: 0,
      openStarts: 0,
      mutableFields: [],
      firstBroken: broken,
      broken: [broken],
    };
    const r = await kmod(['audit', 'verify', '--from', '2026-01-01T00:00:00Z'], { 'GET /api/v1/audit/verify?from=2026-01-01T00%3A00%3A00Z': report });
    expect(r.code).toBe(1);
    expect(r.out).toContain('missing-event c seq 3 s: gone');
    const json = await kmod(['audit', 'verify', '--json'], { 'GET /api/v1/audit/verify': report });
    expect(json.code).toBe(1);
    expect(JSON.parse(json.out).firstBroken).toEqual(broken);
  });

  it('an API error prints its code and message and exits 1', async () => {
    const r = await kmod(['cancel', 'dep-abcdefghi-0123456789ab'], {
      'POST /api/v1/deployments/dep-abcdefghi-0123456789ab/cancel': new ApiError(409, 'NotCancellable', 'the deployment already Succeeded'),
    });
    expect(r.code).toBe(1);
    expect(r.err).toBe('kmod: HTTP 409 NotCancellable: the deployment already Succeeded\n');
  });
});

describe('kmod --watch and exit codes', () => {
  it.each([
    ['Succeeded', 0],
    ['Failed', 1],
    ['RolledBack', 1],
    ['Cancelled', 3],
    ['Running', undefined],
    ['WaitingForApproval', undefined],
  ])('%s → %s', (status, code) => expect(exitCodeFor(status)).toBe(code));

  it('get --watch follows the deployment, prints one plain line per change and exits by its final status', async () => {
    const id = 'dep-abcdefghi-0123456789ab';
    const running = dep('Running', { stages: [{ name: 'Production', environment: 'Production', status: 'Running', strategy: 'Canary' }] });
    const r = await kmod(['get', id, '--watch'], {
      [`GET /api/v1/deployments/${id}`]: [
        running,
        running,
        dep('Cancelled', { stages: [{ name: 'Production', environment: 'Production', status: 'Cancelled' }] }),
      ],
    });
    expect(r.code).toBe(3);
    const lines = r.out.trim().split('\n');
    expect(lines).toHaveLength(4); // head and stage, then both changed; the unchanged second snapshot prints nothing
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d dep-abcdefghi-0123456789ab {2}demo-kernel@1.1.0 → Production {2}Running$/);
    // The stage's change first, then the deployment's final status as the last line.
    expect(lines[2]).toMatch(/^\d\d:\d\d:\d\d Production {3}Cancelled$/);
    expect(lines[3]).toMatch(/^\d\d:\d\d:\d\d dep-abcdefghi-0123456789ab {2}demo-kernel@1.1.0 → Production {2}Cancelled$/);
  });

  it('deploy --watch of a rolled-back deployment exits 1', async () => {
    const id = 'dep-abcdefghi-0123456789ab';
    const r = await kmod(['deploy', 'demo-kernel@1.1.0', '--to', 'Production', '--watch'], {
      'POST /api/v1/deployments': { executionId: id },
      [`GET /api/v1/deployments/${id}`]: [dep('Running'), dep('RolledBack')],
    });
    expect(r.code).toBe(1);
    expect(r.out).toContain('RolledBack');
  });

  it('the polling source rides out an API that is briefly unreachable or failing (the watch exited 1 while the deployment succeeded)', async () => {
    const script: (() => Response)[] = [
      () => Response.json(dep('Running')),
      () => {
        throw new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:4612') });
      },
      () => Response.json({ message: 'Internal server error' }, { status: 502 }),
      () => Response.json({ code: 'TooManyRequests', message: 'slow down' }, { status: 429 }),
      () => Response.json(dep('Succeeded')),
    ];
    const client = createKmodClient({ baseUrl: 'http://api.test', token: 't', fetch: async () => script.shift()!() });
    const notes: string[] = [];
    const seen: string[] = [];
    for await (const d of pollingSource(client, 0, async () => {}, { note: (m) => notes.push(m) }).updates('x')) seen.push(d.status);
    expect(seen).toEqual(['Running', 'Succeeded']);
    expect(notes).toEqual([expect.stringContaining('ECONNREFUSED'), 'the API answers again']);
  });

  it('the polling source gives up on an API unreachable for longer than its limit, and says so', async () => {
    const client = createKmodClient({
      baseUrl: 'http://api.test',
      token: 't',
      fetch: async () => {
        throw new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED') });
      },
    });
    const it = pollingSource(client, 0, async () => new Promise((r) => setTimeout(r, 5)), { unreachableLimitMs: 30 }).updates('x');
    await expect(it[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'Unreachable' });
    // A 4xx is an answer, not an outage: no retry.
    const notFound = createKmodClient({
      baseUrl: 'http://api.test',
      token: 't',
      fetch: async () => Response.json({ code: 'NotFound', message: 'no' }, { status: 404 }),
    });
    await expect(
      pollingSource(notFound, 0, async () => {})
        .updates('x')
        [Symbol.asyncIterator]()
        .next(),
    ).rejects.toMatchObject({ status: 404 });
  });

  it('the polling source stops at a finished status and skips unchanged snapshots', async () => {
    const seen: string[] = [];
    const answers = [dep('Pending'), dep('Pending'), dep('Running'), dep('Succeeded'), dep('Running')];
    const client = fakeClient({ 'GET /api/v1/deployments/x': answers }).client('Viewer');
    for await (const d of pollingSource(client, 0, async () => {}).updates('x')) seen.push(d.status);
    expect(seen).toEqual(['Pending', 'Running', 'Succeeded']);
  });
});

describe('kmod formatting', () => {
  const canary = {
    name: 'Production',
    environment: 'Production',
    status: 'Running',
    strategy: 'Canary',
    nodesTotal: 10,
    nodesDeployed: 4,
    details: {
      batches: 5,
      wave2: { wave: 2, percent: 25, nodes: 2, passed: false, summary: 'error rate up', metrics: [{ metric: 'errorRate', pValue: 0.00001, verdict: 'fail' }] },
      wave1: {
        wave: 1,
        percent: 10,
        nodes: 1,
        passed: true,
        metrics: [
          { metric: 'errorRate', pValue: 0.42, verdict: 'pass' },
          { metric: 'latencyP99', pValue: 0.9 },
        ],
      },
    },
    approval: { status: 'Pending', approvers: ['alice', 'bob'], quorum: 2, deadline: '2026-11-29T12:00:00Z' },
  };

  it('shows stages with nodes and batches, canary waves with the judge’s p-values, and who may approve', () => {
    const text = deploymentLines(dep('WaitingForApproval', { stages: [canary] }))
      .map((l) => l.text)
      .join('\n');
    expect(text).toContain('Production   Running  [Canary]  nodes 4/10  batches 2/5');
    expect(text).toContain('canary wave 1 (10%, 1 node): passed — errorRate p=0.42, latencyP99 p=0.90');
    expect(text).toContain('canary wave 2 (25%, 2 nodes): FAILED — errorRate p=1.0e-5 (fail) — error rate up');
    expect(text).toContain('Production approval Pending — may approve: alice, bob (quorum 2), deadline 2026-11-29T12:00:00Z');
    expect(text.indexOf('wave 1')).toBeLessThan(text.indexOf('wave 2'));
    const decided = deploymentLines(
      dep('Running', {
        stages: [{ ...canary, approval: { status: 'Approved', approvers: ['alice'], decisions: [{ approver: 'alice', decision: 'approve' }] } }],
      }),
    );
    expect(decided.map((l) => l.text)).toContain('    Production approval Approved — approved by alice');
  });

  it('waves are ordered by number (wave10 after wave9) and other details are not waves', () => {
    expect(waves({ wave10: { wave: 10 }, wave9: { wave: 9 }, wave1Traffic: {}, batches: 3 }).map((w) => w.wave)).toEqual([9, 10]);
  });

  it('batches done follow the nodes deployed; a succeeded stage has all of them', () => {
    expect(batchesDone({ status: 'Running', nodesTotal: 10, nodesDeployed: 0, details: { batches: 5 } })).toEqual([0, 5]);
    expect(batchesDone({ status: 'Running', nodesTotal: 10, nodesDeployed: 6, details: { batches: 5 } })).toEqual([3, 5]);
    expect(batchesDone({ status: 'Succeeded', nodesTotal: 3, nodesDeployed: 3, details: { batches: 2 } })).toEqual([2, 2]);
    expect(batchesDone({ status: 'Running', nodesTotal: 5, nodesDeployed: 4, details: { batches: 3 } })).toEqual([2, 3]);
    expect(batchesDone({ status: 'Running', nodesTotal: 5, nodesDeployed: 5, details: { batches: 3 } })).toEqual([3, 3]);
    expect(batchesDone({ status: 'Running' })).toBeUndefined();
  });

  it('the plain renderer prints only lines that changed', () => {
    const out = capture();
    const render = plainRenderer(out);
    render([
      { key: 'a', text: 'one' },
      { key: 'b', text: 'two' },
    ]);
    render([
      { key: 'a', text: 'one' },
      { key: 'b', text: 'three' },
    ]);
    expect(
      out.text
        .split('\n')
        .filter(Boolean)
        .map((l) => l.slice(9)),
    ).toEqual(['one', 'two', 'three']);
  });

  it("prints the deployment's own line after the stages that changed with it, so a final status is the last line", () => {
    const out = capture();
    const render = plainRenderer(out);
    render([
      { key: 'head', text: 'dep-1  demo-kernel@1.1.0 → Development  Running' },
      { key: 'stage:Validation', text: '  Validation   Running' },
    ]);
    render([
      { key: 'head', text: 'dep-1  demo-kernel@1.1.0 → Development  Succeeded' },
      { key: 'stage:Validation', text: '  Validation   Succeeded' },
    ]);
    expect(
      out.text
        .split('\n')
        .filter(Boolean)
        .map((l) => l.slice(9)),
    ).toEqual([
      'dep-1  demo-kernel@1.1.0 → Development  Running',
      'Validation   Running',
      'Validation   Succeeded',
      'dep-1  demo-kernel@1.1.0 → Development  Succeeded',
    ]);
  });
});

describe('kmod target', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kmod-cli-'));
  const file = join(dir, 'cloud.json');
  writeFileSync(file, JSON.stringify({ apiUrl: 'http://127.0.0.1:9/', tokens: { Deployer: 'd', Approver: 'a', Admin: 'x', Viewer: 'v' } }));

  it('reads the role’s token from cloud.json (KMOD_CLOUD_FILE, KMOD_DATA_DIR, or .local/ of the working directory)', () => {
    expect(resolveTarget({}, 'Approver', { KMOD_CLOUD_FILE: file })).toMatchObject({ apiUrl: 'http://127.0.0.1:9', token: 'a' });
    expect(resolveTarget({ as: 'Viewer' }, 'Approver', { KMOD_DATA_DIR: dir }).token).toBe('v');
    expect(resolveTarget({ cloudFile: 'cloud.json' }, 'Deployer', {}, dir).token).toBe('d');
  });

  it('uses KMOD_API_URL and KMOD_TOKEN elsewhere', () => {
    expect(resolveTarget({}, 'Deployer', { KMOD_API_URL: 'https://api.example/', KMOD_TOKEN: 't' }, dir)).toMatchObject({
      apiUrl: 'https://api.example',
      token: 't',
    });
    expect(() => resolveTarget({}, 'Deployer', { KMOD_API_URL: 'https://api.example' }, dir)).toThrow(UsageError);
  });

  it('with neither, says how to get one', () => {
    expect(() => resolveTarget({}, 'Deployer', {}, join(dir, 'nowhere'))).toThrow(/KMOD_API_URL and KMOD_TOKEN, or start the local cloud/);
  });

  it('parses <module>@<version>', () => {
    expect(parseModuleRef('demo-kernel@1.1.0')).toEqual({ moduleName: 'demo-kernel', version: '1.1.0' });
    expect(() => parseModuleRef('demo-kernel')).toThrow(UsageError);
  });
});
