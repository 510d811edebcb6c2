/**
 * The demo the README walks through: `demo-kernel` 1.0.0 (already on every node) and 1.1.0
 * (registered, not deployed), both signed by the local dev PKI, registered through the API.
 */
import { readFileSync } from 'node:fs';
import { packArtifact } from '../functions/agent/artifact.ts';
import { signedModuleVersion, type DevPki } from './devPki.ts';

/**
 * demo-kernel's artifact: a gzipped tar of a tiny real workload (localcloud/demo-module: a Node HTTP
 * server with Prometheus metrics, and its lifecycle hooks). Deterministic: the same version always
 * has the same bytes and digest.
 */
export function demoArtifact(version: string): Buffer {
  const file = (name: string) => readFileSync(new URL(`./demo-module/${name}`, import.meta.url));
  return packArtifact([
    { path: 'VERSION', data: `${version}\n` },
    { path: 'server.mjs', data: file('server.mjs') },
    { path: 'hooks.mjs', data: file('hooks.mjs') },
  ]);
}

const hook = (name: string, timeoutSeconds: number) => ({ command: ['node', 'hooks.mjs', name], timeoutSeconds });

export function demoModule(version: string, pki: DevPki) {
  return signedModuleVersion(
    {
      name: 'demo-kernel',
      version,
      description: 'Demo hot-swappable kernel module',
      entrypoint: 'demo_kernel_init',
      resources: { cpuMillicores: 250, memoryMiB: 64 },
      hooks: { load: hook('load', 15), unload: hook('unload', 15), healthCheck: hook('healthCheck', 5), smokeTest: hook('smokeTest', 10) },
      metrics: { prometheus: 'http://127.0.0.1/metrics', portFile: 'run/port' },
    },
    demoArtifact(version),
    pki,
  );
}

export async function seedDemo(o: { apiUrl: string; adminToken: string; pki: DevPki; log: (s: string) => void }): Promise<void> {
  const headers = { authorization: `Bearer ${o.adminToken}`, 'content-type': 'application/json' };
  const versions = ['1.0.0', '1.1.0'];
  // Both looked up at once (with existing data both are there); the missing ones registered in order.
  const seeded = await Promise.all(
    versions.map(async (version) => {
      const r = await fetch(`${o.apiUrl}/api/v1/modules/demo-kernel/versions/${version}`, { headers });
      await r.arrayBuffer();
      return r.status === 200;
    }),
  );
  for (const [i, version] of versions.entries()) {
    if (seeded[i]) continue;
    const reg = await fetch(`${o.apiUrl}/api/v1/modules`, { method: 'POST', headers, body: JSON.stringify(demoModule(version, o.pki)) });
    if (reg.status !== 201) throw new Error(`seeding demo-kernel@${version} failed: HTTP ${reg.status} ${await reg.text()}`);
    o.log(`seeded demo-kernel@${version}`);
  }
}
