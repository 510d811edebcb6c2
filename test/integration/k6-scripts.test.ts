/**
 * The k6 scripts (scripts/k6) cannot run here (k6 is not installable); what they send is checked
 * against the real API instead, and their loads against `npm run load`'s.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES } from '../../functions/catalog.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';
// @ts-expect-error plain JavaScript for k6, without declarations
import { optionsFor, readPaths, routeName, SCENARIOS, SEED_P95_MS } from '../../scripts/k6/scenarios.js';
import { api, expectDocumented, startTestCloud } from './harness.ts';

const ROOT = join(import.meta.dirname, '..', '..');
let cloud: LocalCloud;
let executionId: string;

beforeAll(async () => {
  cloud = await startTestCloud();
  const created = await api(cloud, 'POST', '/api/v1/deployments', {
    token: cloud.tokens.Deployer,
    body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' },
  });
  expect(created.status).toBe(202);
  executionId = created.body.executionId;
}, 120_000);

afterAll(async () => {
  await cloud?.stop();
});

/** The catalog route a concrete path is served by. */
function routeOf(path: string) {
  const bare = path.split('?')[0];
  return ROUTES.find((r) => r.method === 'GET' && new RegExp(`^${r.path.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(bare));
}

describe('scripts/k6', () => {
  it("setup's first read names a deployment the way load.js reads it (items.0.executionId)", async () => {
    const list = await api(cloud, 'GET', '/api/v1/deployments?limit=1', { token: cloud.tokens.Viewer });
    expectDocumented('GET /api/v1/deployments', list);
    expect(list.body.items[0].executionId).toBe(executionId);
  });

  it('reads only, and each read answers 200 with its documented body to a Viewer token', async () => {
    const paths: string[] = readPaths(executionId, 'Development');
    expect(paths).toHaveLength(4);
    for (const path of paths) {
      const route = routeOf(path);
      expect(route, path).toBeDefined();
      // k6 reports each read under its tag: the API document's name for the route.
      expect(routeName(path)).toBe(route!.path);
      const r = await api(cloud, 'GET', path, { token: cloud.tokens.Viewer });
      expectDocumented(`GET ${route!.path}`, r);
    }
    const source = readFileSync(join(ROOT, 'scripts/k6/load.js'), 'utf8');
    expect(source).not.toMatch(/http\.(post|put|patch|del|request)\(/);
  });

  it('runs the scenarios of npm run load, with the seed target and the breaking point as thresholds', () => {
    const load = readFileSync(join(ROOT, 'scripts/load.ts'), 'utf8');
    const localScenarios = /const ALL = \[([^\]]+)\]/
      .exec(load)![1]
      .match(/'([a-z]+)'/g)!
      .map((s) => s.slice(1, -1));
    // `reads` is the local per-route table-call measurement (it reads the local cloud's meter);
    // `create` deploys, which against a deployed API would reach real fleets.
    expect(localScenarios).toEqual(expect.arrayContaining(['reads', 'create']));
    expect(Object.keys(SCENARIOS).sort()).toEqual(localScenarios.filter((s) => s !== 'reads' && s !== 'create').sort());
    expect(SCENARIOS.sustained).toMatchObject({ executor: 'constant-arrival-rate', rate: 100, duration: '2m', timeUnit: '1s' });
    expect(SCENARIOS.soak).toMatchObject({ executor: 'constant-arrival-rate', rate: 50, duration: '10m' });
    expect(Math.max(...SCENARIOS.spike.stages.map((s: { target: number }) => s.target))).toBe(500);
    const stressRates = [...new Set(SCENARIOS.stress.stages.map((s: { target: number }) => s.target))] as number[];
    expect(stressRates[0]).toBe(100);
    for (let i = 1; i < stressRates.length; i++) expect(stressRates[i]).toBe(stressRates[i - 1] * 2);
    for (const name of Object.keys(SCENARIOS)) {
      const options = optionsFor(name);
      expect(Object.keys(options.scenarios)).toEqual([name]);
      if (name === 'stress') {
        expect(options.thresholds.http_req_duration).toEqual([{ threshold: 'p(99)<1000', abortOnFail: true, delayAbortEval: '10s' }]);
        expect(options.thresholds.http_req_failed[0]).toMatchObject({ threshold: 'rate<0.01', abortOnFail: true });
      } else expect(options.thresholds.http_req_duration).toEqual([`p(95)<${SEED_P95_MS}`]);
    }
    expect(() => optionsFor('nonsense')).toThrow(/unknown SCENARIO "nonsense"/);
  });
});
