// k6 load test of a deployed kmod API: the scenarios of `npm run load` (docs/performance.md).
//   k6 run -e API_URL=https://deploy.example.com -e TOKEN=<Viewer access token> -e SCENARIO=sustained scripts/k6/load.js
// SCENARIO: sustained | spike | soak | stress. ENVIRONMENT: the cluster read (default Development).
// Only reads: safe against a live stack. WAF's per-address rule (wafRateLimitPerAddress, 1,000 per
// minute by default) refuses a single load generator past that: raise it for the test, or expect 429s.
import http from 'k6/http';
import { check } from 'k6';
import { optionsFor, readPaths, routeName } from './scenarios.js';

const API_URL = (__ENV.API_URL || '').replace(/\/$/, '');
const params = { headers: { authorization: `Bearer ${__ENV.TOKEN}` } };

export const options = optionsFor(__ENV.SCENARIO || 'sustained');

export function setup() {
  if (!API_URL || !__ENV.TOKEN) throw new Error('set API_URL and TOKEN (-e API_URL=… -e TOKEN=…)');
  const list = http.get(`${API_URL}/api/v1/deployments?limit=1`, params);
  if (list.status !== 200) throw new Error(`GET /api/v1/deployments answered ${list.status}: ${list.body}`);
  const first = list.json('items.0.executionId');
  return { paths: readPaths(first, __ENV.ENVIRONMENT || 'Development') };
}

export default function (data) {
  const path = data.paths[__ITER % data.paths.length];
  const res = http.get(`${API_URL}${path}`, { headers: params.headers, tags: { name: routeName(path) } });
  check(res, { 'status is 200': (r) => r.status === 200 });
}
