import { describe, expect, it } from 'vitest';
import { verifyModuleSignature } from '../../../functions/domain/signature.ts';
import { X509Certificate } from 'node:crypto';
import { createDevPki, signedModuleVersion } from '../../../localcloud/devPki.ts';

const artifact = Buffer.from('module bytes');
const fields = { name: 'demo-kernel', version: '1.1.0', entrypoint: 'init', resources: { cpuMillicores: 100, memoryMiB: 32 } };

describe('verifyModuleSignature', async () => {
  const ec = await createDevPki({ algorithm: 'ECDSA-P256-SHA256' });
  const rsa = await createDevPki({ algorithm: 'RSA-SHA256' });
  const policy = (roots: string[], revokedSerials: string[] = []) => ({ trustedRoots: roots, revokedSerials, now: new Date() });

  it.each([
    ['ECDSA P-256', ec],
    ['RSA-2048', rsa],
  ])('accepts a valid %s signature chained to a trusted root', (_, pki) => {
    const m = signedModuleVersion(fields, artifact, pki);
    const verdict = verifyModuleSignature(m.manifest, m.signature, m.certificateChain, policy([pki.rootCertPem]));
    expect(verdict).toMatchObject({ ok: true, signer: expect.stringContaining('Dev Module Signer') });
  });

  it('rejects a manifest changed after signing', () => {
    const m = signedModuleVersion(fields, artifact, ec);
    const tampered = { ...m.manifest, entrypoint: 'evil' };
    const verdict = verifyModuleSignature(tampered, m.signature, m.certificateChain, policy([ec.rootCertPem]));
    expect(verdict).toEqual({ ok: false, reason: expect.stringContaining('signature does not match') });
  });

  it('rejects a flipped signature byte', () => {
    const m = signedModuleVersion(fields, artifact, ec);
    const sig = Buffer.from(m.signature.value, 'base64');
    sig[sig.length - 1] ^= 0xff;
    const verdict = verifyModuleSignature(m.manifest, { ...m.signature, value: sig.toString('base64') }, m.certificateChain, policy([ec.rootCertPem]));
    expect(verdict.ok).toBe(false);
  });

  it('rejects a chain that does not lead to a trusted root', () => {
    const m = signedModuleVersion(fields, artifact, ec);
    const verdict = verifyModuleSignature(m.manifest, m.signature, m.certificateChain, policy([rsa.rootCertPem]));
    expect(verdict).toEqual({ ok: false, reason: 'the certificate chain does not lead to a trusted root' });
  });

  it('rejects an expired signer certificate', async () => {
    const old = await createDevPki({ notBefore: new Date(Date.now() - 10 * 86400_000), notAfter: new Date(Date.now() - 86400_000) });
    const m = signedModuleVersion(fields, artifact, old);
    const verdict = verifyModuleSignature(m.manifest, m.signature, m.certificateChain, policy([old.rootCertPem]));
    expect(verdict).toEqual({ ok: false, reason: expect.stringContaining('expired') });
  });

  it('rejects a revoked signer certificate', () => {
    const m = signedModuleVersion(fields, artifact, ec);
    const serial = new X509Certificate(ec.signerCertPem).serialNumber;
    const verdict = verifyModuleSignature(m.manifest, m.signature, m.certificateChain, policy([ec.rootCertPem], [serial.toLowerCase()]));
    expect(verdict).toEqual({ ok: false, reason: expect.stringContaining('revoked') });
  });

  it('rejects an algorithm that does not match the signer key', () => {
    const m = signedModuleVersion(fields, artifact, ec);
    const verdict = verifyModuleSignature(m.manifest, { ...m.signature, algorithm: 'RSA-SHA256' }, m.certificateChain, policy([ec.rootCertPem]));
    expect(verdict).toEqual({ ok: false, reason: 'the signer key is ec, not RSA' });
  });
});
