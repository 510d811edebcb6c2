/**
 * Property-based adversarial run (issue 15): for every route of the catalog (ROUTES), fast-check
 * generates bad path ids, query strings, headers, tokens and bodies and sends them to a running
 * local cloud. Each answer must be below 500; each 4xx of an /api route a JSON {code, message};
 * and no table may change except the rate-limit counters and the security audit events a refused
 * call is meant to leave (snapshotTables sets those apart). Token and approval-link attacks are
 * generated the same way. The table-driven attacks live beside the features they attack:
 * api-edge.test.ts ("refuses the token attacks a strict verifier refuses") and approvals.test.ts
 * (forged, tampered and reused links).
 *
 *   FC_RUNS=full   ≥ 200 cases per route (default: a few per route, so `npm test` stays short)
 *   FC_RUNS=<n>    n cases per route
 *   FC_SEED=<n>    replay a run (the seed is printed at the start and in every failure)
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES, type RouteSpec } from '../../functions/catalog.ts';
import { ENVIRONMENTS } from '../../functions/domain/environments.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { DEV_USERS } from '../../localcloud/identity.ts';
import { api, snapshotTables, startTestCloud, type ApiResponse } from './harness.ts';

const RUNS = process.env.FC_RUNS === 'full' ? 200 : Number(process.env.FC_RUNS) > 0 ? Number(process.env.FC_RUNS) : 8;
const SEED = Number(process.env.FC_SEED) || Date.now() % 2_147_483_647;
let cases = 0;

let cloud: LocalCloud;
beforeAll(async () => {
  console.log(`adversarial: seed ${SEED}, ${RUNS} case(s) per route, ${ROUTES.length} routes (FC_SEED=${SEED} FC_RUNS=${RUNS} replays it)`);
  cloud = await startTestCloud();
}, 120_000);
afterAll(async () => {
  console.log(`adversarial: ${cases} generated requests, seed ${SEED}`);
  await cloud?.stop();
});

/** Strings attackers send as ids and values: traversal, injection, encodings, prototype names, sizes. */
const nasty = fc.oneof(
  fc.constantFrom(
    '..',
    '../../etc/passwd',
    '%00',
    '%',
    '%zz',
    '\u0000',
    '__proto__',
    'constructor',
    'prototype',
    'toString',
    'hasOwnProperty',
    'null',
    'undefined',
    'NaN',
    '-1',
    '1e400',
    '0x7fffffff',
    "' OR '1'='1",
    '"; DROP TABLE x; --',
    '$' + '{jndi:ldap://x}',
    '{{7*7}}',
    '<script>alert(1)</script>',
    'e30',
    'bnVsbA',
    'W10',
    'MTIz',
    '*',
    ' ',
    '\t',
    'demo-kernel#Production',
    'deployment#x',
    'a'.repeat(2048),
    '😀',
    '\u202e',
  ),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.stringMatching(/^[A-Za-z0-9_-]{1,80}$/),
);

/** Values that look right, so generated requests also get past the first checks. */
const PLAUSIBLE = [
  ...ENVIRONMENTS,
  'demo-kernel',
  '1.0.0',
  '1.1.0',
  'dev-admin',
  'dev-viewer',
  'dep-20260101000000000-000000000000',
  'prod-01',
  'dev-01',
  '2026-01-01T00:00:00.000Z',
  'true',
  '10',
  'deployment',
];
const plausible = fc.constantFrom(...PLAUSIBLE);

/** Query names: the ones routes read, prototype members, and random ones. */
const queryName = fc.oneof(
  fc.constantFrom('cursor', 'limit', 'status', 'moduleName', 'environment', 'from', 'to', 'deploymentId', 'subject', 'category', 'actor', 'traceId', 'refresh'),
  fc.constantFrom('constructor', '__proto__', 'toString', 'valueOf', 'hasOwnProperty'),
  fc.stringMatching(/^[a-zA-Z_]{1,20}$/),
);

/** Header names HTTP allows (tokens), including prototype members. */
const headerName = fc.oneof(
  fc.constantFrom('toString', 'constructor', '__proto__', 'valueOf', 'x-forwarded-for', 'x-amzn-trace-id', 'idempotency-key', 'origin', 'cookie'),
  fc.stringMatching(/^x-[a-z0-9-]{1,20}$/),
);
/** Header values fetch can send (visible ASCII and spaces). */
const headerValue = fc.oneof(fc.stringMatching(/^[\x21-\x7e ]{0,60}$/), fc.constantFrom('', '1.2.3.4, 5.6.7.8', 'a'.repeat(4000)));

const contentType = fc.constantFrom(
  'application/json',
  'APPLICATION/JSON; charset=utf-16',
  'application/json; charset=latin1',
  'application/json-patch+json',
  'text/plain',
  'multipart/form-data; boundary=x',
  'application/x-www-form-urlencoded',
  '',
  ';;;',
);

/** Bodies: JSON of any shape, prototype pollution, deep nesting, wrong types, raw non-JSON text, big ones. */
const body = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc.dictionary(fc.oneof(queryName, fc.string({ maxLength: 10 })), fc.jsonValue({ maxDepth: 2 })).map((v) => JSON.stringify(v)),
  fc.constantFrom(
    '{"__proto__":{"admin":true}}',
    '{"constructor":{"prototype":{"x":1}}}',
    `${'['.repeat(5000)}${']'.repeat(5000)}`,
    '{"moduleName":"demo-kernel","version":"1.1.0","targetEnvironment":"Development","targetEnvironment":"Production","x":1}',
    '{"roles":["Admin","Admin","Root"]}',
    '{"environment":"Production","maxUses":-1}',
    '{"name":"","scopes":["kmod/admin"]}',
    '{"perAddressPerMinute":1e309}',
    `{"pad":"${'x'.repeat(70_000)}"}`,
    'null',
    '',
  ),
  fc.string({ maxLength: 200 }),
);

type Credential = 'allowed' | 'none' | 'garbage' | 'bearer-only' | 'tampered' | 'alg-none' | 'other-role';
/** What authenticates the call: a dev token of a role the route allows (so the handler runs), or a bad one. */
const credential: fc.Arbitrary<Credential> = fc.oneof(
  { weight: 4, arbitrary: fc.constant('allowed' as const) },
  fc.constantFrom<Credential>('none', 'garbage', 'bearer-only', 'tampered', 'alg-none', 'other-role'),
);

interface Case {
  params: string[];
  query: [string, string][];
  headers: [string, string][];
  contentType: string | undefined;
  credential: Credential;
  body: string | undefined;
}

function caseFor(route: RouteSpec): fc.Arbitrary<Case> {
  const names = [...route.path.matchAll(/\{(\w+)\}/g)];
  const hasBody = route.method === 'POST' || route.method === 'PUT' || route.method === 'DELETE';
  return fc
    .record({
      params: fc.tuple(...names.map(() => fc.oneof({ weight: 3, arbitrary: nasty }, { weight: 1, arbitrary: plausible }))),
      // Not `true`: `GET /api/v1/clusters/{environment}?refresh=true` is a valid request that records what the agents answer.
      query: fc.array(
        fc.tuple(
          queryName,
          fc.oneof(
            nasty,
            plausible.filter((v) => v !== 'true'),
          ),
        ),
        { maxLength: 4 },
      ),
      headers: fc.uniqueArray(fc.tuple(headerName, headerValue), { maxLength: 3, selector: ([n]) => n.toLowerCase() }),
      contentType: hasBody ? fc.option(contentType, { nil: undefined }) : fc.constant(undefined),
      credential,
      body: hasBody ? fc.option(body, { nil: undefined }) : fc.constant(undefined),
    })
    .map(ensureBad);
}

/**
 * Every generated request is bad: when the path ids, the credential and the (possibly absent) body
 * could all be right, a query parameter is added, which no write route takes and no read route
 * knows. (A valid `GET /api/v1/clusters/{environment}/metrics` polls the agents and records what
 * they answer: that is a write a bad request must not cause.)
 */
function ensureBad(c: Case): Case {
  if (c.credential !== 'allowed' || c.query.length > 0) return c;
  if (!c.params.every((p) => PLAUSIBLE.includes(p))) return c;
  return { ...c, query: [['dryRun', 'true']] };
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

function authorization(route: RouteSpec, c: Case['credential']): string | undefined {
  const roles = route.roles === 'public' ? ['Admin'] : route.roles;
  const allowed = (['Admin', 'Deployer', 'Approver', 'Viewer'] as const).find((r) => roles.includes(r)) ?? 'Admin';
  const other = (['Viewer', 'Approver', 'Deployer', 'Admin'] as const).find((r) => !roles.includes(r));
  const good = cloud.tokens[allowed];
  const [h, p, s] = good.split('.');
  switch (c) {
    case 'allowed':
      return `Bearer ${good}`;
    case 'none':
      return undefined;
    case 'garbage':
      return 'Bearer not.a.jwt';
    case 'bearer-only':
      return 'Bearer';
    case 'tampered': {
      // Raised to Admin and a day longer, the signature kept. Raising the role alone left an Admin
      // token byte for byte as it was (so still valid) on Admin-only routes: a seed that drew it
      // there failed the run on a request that was not bad.
      const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as { exp: number };
      return `Bearer ${h}.${b64({ ...claims, 'cognito:groups': ['Admin'], exp: claims.exp + 86_400 })}.${s}`;
    }
    case 'alg-none':
      return `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${p}.`;
    case 'other-role':
      return other ? `Bearer ${cloud.tokens[other]}` : 'Basic YWRtaW46YWRtaW4=';
  }
}

async function send(route: RouteSpec, c: Case): Promise<ApiResponse> {
  let i = 0;
  const path = route.path.replace(/\{\w+\}/g, () => encodeURIComponent(c.params[i++]));
  const qs = c.query.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  const headers: Record<string, string> = Object.fromEntries(c.headers);
  const auth = authorization(route, c.credential);
  if (auth) headers.authorization = auth;
  else delete headers.authorization;
  if (c.contentType !== undefined) headers['content-type'] = c.contentType;
  cases++;
  return api(cloud, route.method, `${path}${qs ? `?${qs}` : ''}`, { headers, ...(c.body !== undefined ? { rawBody: c.body } : {}) });
}

/** The answer to a bad request: never a 5xx; on /api routes every 4xx is JSON {code, message}. */
function checkAnswer(route: RouteSpec, c: Case, r: ApiResponse): void {
  const what = `${route.method} ${route.path} ${JSON.stringify(c).slice(0, 400)} → ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`;
  expect(r.status, what).toBeLessThan(500);
  if (route.path.startsWith('/api/') && r.status >= 400) {
    expect(r.body, what).toEqual(expect.objectContaining({ code: expect.any(String), message: expect.any(String) }));
    expect(r.body.message.length, what).toBeGreaterThan(0);
  }
  // Generated requests are bad or unauthorised: a write route must not accept one.
  if (route.method !== 'GET') expect(r.status, `accepted: ${what}`).toBeGreaterThanOrEqual(400);
}

describe('every catalog route, generated bad input', () => {
  it.each(ROUTES.map((r) => [`${r.method} ${r.path}`, r] as const))(
    '%s: no 5xx, JSON {code, message} for every 4xx, no table changed',
    async (_, route) => {
      const before = await snapshotTables(cloud);
      await fc.assert(
        fc.asyncProperty(caseFor(route), async (c) => {
          // A generated GET can be a valid read, and some valid reads record what they observe
          // (a live health poll stores each node's report): a GET is held to "no table changed"
          // case by case, whenever it was refused.
          const beforeCase = route.method === 'GET' ? await snapshotTables(cloud) : undefined;
          const r = await send(route, c);
          checkAnswer(route, c, r);
          if (beforeCase && r.status >= 400) expect(await snapshotTables(cloud), `refused ${route.method} ${route.path} changed a table`).toEqual(beforeCase);
        }),
        { seed: SEED, numRuns: RUNS, endOnFailure: true },
      );
      // Every generated write is refused (checkAnswer): nothing may have changed over the run.
      if (route.method !== 'GET') expect(await snapshotTables(cloud)).toEqual(before);
    },
    600_000,
  );
});

describe('generated token attacks', () => {
  /** Claims of a known user with one or more claims replaced by a value of another type or range. */
  const claimAttack = fc.record(
    {
      // Finite numbers only: the issuer (jose) refuses to sign others. All in the past, or absurdly far ahead.
      exp: fc.oneof(
        fc.constant(undefined),
        fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e9 }),
        fc.string(),
        fc.constant(1e15),
        fc.integer({ min: -1e9, max: 0 }),
      ),
      iat: fc.oneof(fc.constant(undefined), fc.string(), fc.integer({ min: 2e9, max: 4e9 })),
      sub: fc.oneof(fc.constant(undefined), fc.constant(''), fc.jsonValue({ maxDepth: 1 }), fc.constant('mallory')),
      client_id: fc.oneof(fc.array(fc.string(), { maxLength: 2 }), fc.integer(), fc.constant('someone-else')),
      token_use: fc.constantFrom('id', 'refresh', 7, null),
      'cognito:groups': fc.oneof(fc.constant('Admin'), fc.constant({ 0: 'Admin' }), fc.constant(7)),
      iss: fc.constantFrom('https://evil.example', '', 42),
    },
    { requiredKeys: [] },
  );

  it('a token with any claim of the wrong type or range is a 401 JSON with a Bearer challenge, and changes nothing', async () => {
    const before = await snapshotTables(cloud);
    await fc.assert(
      fc.asyncProperty(
        claimAttack.filter((o) => Object.keys(o).length > 0),
        fc.constantFrom('Admin', 'Deployer', 'Viewer', 'Approver' as const),
        fc.constantFrom('/api/v1/deployments', '/api/v1/clusters', '/api/v1/audit?category=security'),
        async (overrides, role, path) => {
          const token = await cloud.issuer.mint(DEV_USERS[role as keyof typeof DEV_USERS], { overrides });
          cases++;
          const r = await api(cloud, 'GET', path, { token });
          const what = `${JSON.stringify(overrides)} as ${role} → ${r.status} ${JSON.stringify(r.body)}`;
          expect(r.status, what).toBe(401);
          expect(r.body, what).toEqual({ code: 'Unauthorized', message: expect.any(String) });
          expect(r.headers.get('www-authenticate'), what).toMatch(/^Bearer/);
        },
      ),
      { seed: SEED, numRuns: RUNS * 4, endOnFailure: true },
    );
    expect(await snapshotTables(cloud)).toEqual(before);
  }, 600_000);
});

describe('generated approval-link attacks', () => {
  /** Link tokens: forged claims with a guessed MAC, claims of every shape, wrong kids, extra parts, junk. */
  const linkToken = fc.oneof(
    fc
      .record({
        executionId: fc.oneof(fc.constant('dep-20260101000000000-000000000000'), nasty),
        environment: fc.constantFrom('Staging', 'Production', 'Development', 7, null),
        approver: fc.constantFrom('dev-approver', 'dev-admin', 'mallory', ''),
        action: fc.constantFrom('approve', 'reject', 'APPROVE', 1),
        exp: fc.oneof(fc.constant(4e9), fc.constant(0), fc.string()),
        nonce: fc.string({ maxLength: 16 }),
        kid: fc.oneof(fc.constant(undefined), fc.constantFrom('current', 'previous', '__proto__', 'toString'), fc.string({ maxLength: 8 })),
      })
      .chain((claims) => fc.tuple(fc.constant(b64(claims)), fc.stringMatching(/^[A-Za-z0-9_-]{0,60}$/)).map(([bd, mac]) => `${bd}.${mac}`)),
    fc.jsonValue({ maxDepth: 2 }).map((v) => `${b64(v)}.${'A'.repeat(43)}`),
    fc.tuple(nasty, nasty).map(([a, b]) => `${a}.${b}`),
    fc.tuple(nasty, nasty, nasty).map(([a, b, c]) => `${a}.${b}.${c}`),
    nasty,
  );

  it('GET and POST of a forged or malformed link: a 4xx page, never a decision, nothing changed', async () => {
    const before = await snapshotTables(cloud);
    await fc.assert(
      fc.asyncProperty(linkToken, fc.constantFrom('GET', 'POST'), fc.constantFrom('approve', 'reject', '', 'x'.repeat(600)), async (token, method, confirm) => {
        cases++;
        const r = await api(
          cloud,
          method,
          `/approvals/links/${encodeURIComponent(token)}`,
          method === 'POST' ? { rawBody: `confirm=${confirm}&reason=x`, headers: { 'content-type': 'application/x-www-form-urlencoded' } } : {},
        );
        const what = `${method} ${token.slice(0, 200)} → ${r.status} ${String(typeof r.body === 'string' ? r.body : JSON.stringify(r.body)).slice(0, 200)}`;
        expect(r.status, what).toBeGreaterThanOrEqual(400);
        expect(r.status, what).toBeLessThan(500);
        expect(String(typeof r.body === 'string' ? r.body : JSON.stringify(r.body)), what).not.toContain('Decision recorded');
      }),
      { seed: SEED, numRuns: RUNS * 4, endOnFailure: true },
    );
    expect(await snapshotTables(cloud)).toEqual(before);
  }, 600_000);
});
