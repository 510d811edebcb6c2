/**
 * `npm start` on a data dir made before module signers had to be code-signing certificates (issue 15
 * defect 10): the old dev PKI is set aside, a new one made, the versions the old signer signed are
 * re-signed, and they still deploy.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueryCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { isLegacyPki, loadPki, signManifest } from '../../localcloud/devPki.ts';
import { issue, KU, root } from '../unit/domain/fixtures/certificates.ts';
import { agentVersions, api, startTestCloud, waitForDeployment } from './harness.ts';

let cloud: LocalCloud | undefined;
afterAll(async () => {
  await cloud?.stop();
});

describe('a data dir with a dev PKI from before code-signing certificates', () => {
  it('is upgraded at start: new PKI, old versions re-signed (audited), and they deploy', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kmod-pki-upgrade-'));
    cloud = await startTestCloud({ dataDir });
    // What the old code left: a root without its key on disk, a signer without the codeSigning usage,
    // and the seeded versions signed by that signer.
    const oldRoot = await root('Dev Module Root CA, O=kmod-orchestrator', { pathLength: 0 });
    const oldSigner = await issue(oldRoot, 'Dev Module Signer, O=kmod-orchestrator', { keyUsage: KU.digitalSignature });
    const legacy = { rootCertPem: oldRoot.certPem, signerCertPem: oldSigner.certPem, signerKeyPem: oldSigner.keyPem, algorithm: 'ECDSA-P256-SHA256' as const };
    expect(isLegacyPki(legacy)).toBe(true);
    const versions = (await cloud.ddb.send(new ScanCommand({ TableName: cloud.tableNames.modules }))).Items ?? [];
    for (const v of versions) {
      await cloud.ddb.send(
        new UpdateCommand({
          TableName: cloud.tableNames.modules,
          Key: { moduleName: v.moduleName, version: v.version },
          UpdateExpression: 'SET signature = :s, certificateChain = :c',
          ExpressionAttributeValues: { ':s': signManifest(v.manifest, legacy), ':c': [legacy.signerCertPem] },
        }),
      );
    }
    await cloud.stop();
    const pkiDir = join(dataDir, 'pki');
    rmSync(pkiDir, { recursive: true });
    mkdirSync(pkiDir);
    writeFileSync(join(pkiDir, 'root-ca.pem'), legacy.rootCertPem);
    writeFileSync(join(pkiDir, 'signer.pem'), legacy.signerCertPem);
    writeFileSync(join(pkiDir, 'signer-key.pem'), legacy.signerKeyPem);
    writeFileSync(join(pkiDir, 'algorithm'), legacy.algorithm);

    const log: string[] = [];
    cloud = await startTestCloud({ dataDir, fresh: false, log: (l) => log.push(l) });
    expect(log).toContain('  re-signed demo-kernel@1.0.0 with the new dev signer');
    expect(log).toContain('  re-signed demo-kernel@1.1.0 with the new dev signer');
    const pki = loadPki(pkiDir)!;
    expect(isLegacyPki(pki)).toBe(false);
    expect(readFileSync(join(pkiDir, 'crl.pem'), 'utf8')).toContain('-----BEGIN X509 CRL-----');
    const aside = readdirSync(pkiDir).find((f) => f.startsWith('legacy-'))!;
    expect(readFileSync(join(pkiDir, aside, 'signer.pem'), 'utf8')).toBe(legacy.signerCertPem);

    const audit = await cloud.ddb.send(
      new QueryCommand({
        TableName: cloud.tableNames.audit,
        KeyConditionExpression: 'subject = :s',
        ExpressionAttributeValues: { ':s': 'module#demo-kernel' },
      }),
    );
    expect(
      (audit.Items ?? [])
        .filter((i) => i.action === 'module.resigned')
        .map((i) => i.details.version)
        .sort(),
    ).toEqual(['1.0.0', '1.1.0']);

    const r = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' },
    });
    const d = await waitForDeployment(cloud, r.body.executionId);
    expect(d.status, JSON.stringify(d.failure)).toBe('Succeeded');
    expect(d.stages.find((s: { name: string }) => s.name === 'SecurityScan').message).toBe(
      'ECDSA-P256-SHA256 signature valid; signed by CN=Dev Module Signer, O=kmod-orchestrator',
    );
    expect(Object.values(agentVersions(cloud, 'dev'))).toEqual(['1.1.0', '1.1.0', '1.1.0']);
  }, 300_000);
});
