/**
 * The demo the README walks through: `demo-kernel` 1.0.0 (already on every node) and 1.1.0
 * (registered, not deployed), both signed by the local dev PKI, registered through the API.
 */
import { signedModuleVersion, type DevPki } from './devPki.ts';

export function demoArtifact(version: string): Buffer {
  // Deterministic bytes: the same version always has the same digest.
  const header = Buffer.from(`KMOD\0demo-kernel\0${version}\0`);
  const body = Buffer.alloc(4096);
  for (let i = 0; i < body.length; i++) body[i] = (i * 31 + version.length * 7) & 0xff;
  return Buffer.concat([header, body]);
}

export function demoModule(version: string, pki: DevPki) {
  return signedModuleVersion(
    {
      name: 'demo-kernel',
      version,
      description: 'Demo hot-swappable kernel module',
      entrypoint: 'demo_kernel_init',
      resources: { cpuMillicores: 250, memoryMiB: 64 },
    },
    demoArtifact(version),
    pki,
  );
}

export async function seedDemo(o: { apiUrl: string; adminToken: string; pki: DevPki; log: (s: string) => void }): Promise<void> {
  const headers = { authorization: `Bearer ${o.adminToken}`, 'content-type': 'application/json' };
  for (const version of ['1.0.0', '1.1.0']) {
    const r = await fetch(`${o.apiUrl}/api/v1/modules/demo-kernel/versions/${version}`, { headers });
    if (r.status === 200) continue;
    const reg = await fetch(`${o.apiUrl}/api/v1/modules`, { method: 'POST', headers, body: JSON.stringify(demoModule(version, o.pki)) });
    if (reg.status !== 201) throw new Error(`seeding demo-kernel@${version} failed: HTTP ${reg.status} ${await reg.text()}`);
    o.log(`seeded demo-kernel@${version}`);
  }
}
