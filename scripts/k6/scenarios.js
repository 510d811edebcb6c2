// The scenarios of `npm run load`, for k6 against a deployed API (load.js is the k6 entry point).
// Plain JavaScript with no k6 import, so the project's tests can check it against the real API.
// Read-only on purpose: a load test of POST /api/v1/deployments on AWS would deploy to real fleets.

/** The reads `npm run load` measures: paths relative to the API's base URL. */
export function readPaths(executionId, environment) {
  return [
    '/api/v1/deployments',
    ...(executionId ? [`/api/v1/deployments/${encodeURIComponent(executionId)}`] : []),
    '/api/v1/clusters',
    `/api/v1/clusters/${encodeURIComponent(environment)}`,
  ];
}

/** The route a read path is served by, as the API document names it: k6 reports per tag. */
export function routeName(path) {
  return path.replace(/\/deployments\/[^/]+$/, '/deployments/{executionId}').replace(/\/clusters\/[^/]+$/, '/clusters/{environment}');
}

/** The seed's target, and the stress scenario's breaking point (p99 over 1 s or over 1 % errors). */
export const SEED_P95_MS = 500;

const arrival = (extra) => ({ timeUnit: '1s', preAllocatedVUs: 50, maxVUs: 500, ...extra });

/** k6 `options.scenarios` per scenario name, the same loads as scripts/load.ts. */
export const SCENARIOS = {
  sustained: arrival({ executor: 'constant-arrival-rate', rate: 100, duration: '2m' }),
  spike: arrival({
    executor: 'ramping-arrival-rate',
    startRate: 0,
    stages: [
      { target: 0, duration: '5s' },
      { target: 500, duration: '1s' },
      { target: 500, duration: '20s' },
    ],
  }),
  soak: arrival({ executor: 'constant-arrival-rate', rate: 50, duration: '10m' }),
  // The rate doubled every 10 s from 100/s; the thresholds below stop the run at the breaking point.
  stress: arrival({
    executor: 'ramping-arrival-rate',
    startRate: 100,
    maxVUs: 2000,
    stages: [100, 200, 400, 800, 1600, 3200, 6400].flatMap((r) => [
      { target: r, duration: '1s' },
      { target: r, duration: '10s' },
    ]),
  }),
};

/** k6 options for one scenario (`k6 run -e SCENARIO=soak`), with the seed's target as a threshold. */
export function optionsFor(name) {
  const scenario = SCENARIOS[name];
  if (!scenario) throw new Error(`unknown SCENARIO "${name}": one of ${Object.keys(SCENARIOS).join(', ')}`);
  const stopAtBreakingPoint = name === 'stress';
  return {
    scenarios: { [name]: scenario },
    thresholds: {
      http_req_duration: stopAtBreakingPoint ? [{ threshold: 'p(99)<1000', abortOnFail: true, delayAbortEval: '10s' }] : [`p(95)<${SEED_P95_MS}`],
      http_req_failed: stopAtBreakingPoint ? [{ threshold: 'rate<0.01', abortOnFail: true, delayAbortEval: '10s' }] : ['rate<0.01'],
    },
    summaryTrendStats: ['min', 'med', 'p(95)', 'p(99)', 'max'],
  };
}
