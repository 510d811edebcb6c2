/**
 * Adversarial finding (adv branch): an enrolled host may advertise an `https://` workload URL
 * (checkWorkloadUrl allows http and https), and the local router then calls node:http's `request`
 * with protocol `https:`, which throws ERR_INVALID_PROTOCOL synchronously; the rejection is not
 * handled (`void this.handle(...)`), so the whole local cloud process exits on the first request
 * routed to that host, and again after a restart (the table is persisted). Expected: the router
 * serves https backends, or answers that request 502 and keeps running.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { checkAgentAddress } from '../../../functions/domain/ssrf.ts';

const script = `
  import { LocalRouter } from './localcloud/router.ts';
  const r = new LocalRouter('Production', 't');
  const url = await r.listen();
  r.setRoutes({ groups: [{ name: 'stable', weight: 100, backends: [{ nodeId: 'h', url: 'https://127.0.0.1:1/' }] }] });
  const res = await fetch(url + '/work').catch((e) => ({ status: 'threw ' + e.message }));
  console.log('STATUS', res.status);
  await r.close();
`;

describe('the local router and an https workload URL', () => {
  it('the enrolment guard accepts an https workload URL on an allowed host', () => {
    expect(checkAgentAddress('https://127.0.0.1:1/', ['127.0.0.1']).ok).toBe(true);
  });

  it('a request routed to an https backend does not kill the process', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(run.stderr).not.toMatch(/ERR_INVALID_PROTOCOL/);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/STATUS (200|502)/);
  });
});
