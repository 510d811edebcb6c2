import { createVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { canonicalManifest } from './manifest.ts';

export const SIGNATURE_ALGORITHMS = ['RSA-SHA256', 'ECDSA-P256-SHA256'] as const;
export type SignatureAlgorithm = (typeof SIGNATURE_ALGORITHMS)[number];

export interface ModuleSignature {
  algorithm: SignatureAlgorithm;
  /** base64 signature over the canonical manifest (ECDSA: DER-encoded). */
  value: string;
}

export interface TrustPolicy {
  /** PEM trusted root certificates. */
  trustedRoots: string[];
  /** Revoked certificate serial numbers (upper-case hex, as X509Certificate reports them). */
  revokedSerials: string[];
  now: Date;
}

export type SignatureVerdict = { ok: true; signer: string; fingerprint256: string } | { ok: false; reason: string };

function keyProblem(key: KeyObject, algorithm: SignatureAlgorithm): string | undefined {
  if (algorithm === 'RSA-SHA256') {
    if (key.asymmetricKeyType !== 'rsa') return `the signer key is ${key.asymmetricKeyType}, not RSA`;
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) return `the signer RSA key has ${bits} bits; at least 2048 are required`;
    return undefined;
  }
  if (key.asymmetricKeyType !== 'ec') return `the signer key is ${key.asymmetricKeyType}, not ECDSA`;
  if (key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    return `the signer EC key is on ${key.asymmetricKeyDetails?.namedCurve}, not P-256`;
  }
  return undefined;
}

function validityProblem(cert: X509Certificate, now: Date, role: string): string | undefined {
  if (now < new Date(cert.validFrom)) return `the ${role} certificate ${cert.subject.replace(/\n/g, ', ')} is not valid before ${cert.validFrom}`;
  if (now > new Date(cert.validTo)) return `the ${role} certificate ${cert.subject.replace(/\n/g, ', ')} expired on ${cert.validTo}`;
  return undefined;
}

/**
 * The Security scan: the signature over the canonical manifest verifies with the signer
 * certificate's key, and the certificate chains to a trusted root, with every certificate in the
 * chain within its validity and not revoked.
 */
export function verifyModuleSignature(manifest: unknown, signature: ModuleSignature, certificateChainPem: string[], policy: TrustPolicy): SignatureVerdict {
  if (certificateChainPem.length === 0) return { ok: false, reason: 'no signer certificate was supplied' };
  let chain: X509Certificate[];
  let roots: X509Certificate[];
  try {
    chain = certificateChainPem.map((pem) => new X509Certificate(pem));
  } catch (e) {
    return { ok: false, reason: `a certificate in the chain cannot be parsed: ${(e as Error).message}` };
  }
  try {
    roots = policy.trustedRoots.map((pem) => new X509Certificate(pem));
  } catch (e) {
    return { ok: false, reason: `a trusted root cannot be parsed: ${(e as Error).message}` };
  }
  const signer = chain[0];
  const problem = keyProblem(signer.publicKey, signature.algorithm);
  if (problem) return { ok: false, reason: problem };

  const verifier = createVerify('SHA256');
  verifier.update(canonicalManifest(manifest));
  let valid = false;
  try {
    valid = verifier.verify(signer.publicKey, Buffer.from(signature.value, 'base64'));
  } catch {
    valid = false;
  }
  if (!valid) return { ok: false, reason: 'the signature does not match the manifest (tampered manifest or signature)' };

  const revoked = new Set(policy.revokedSerials.map((s) => s.toUpperCase()));
  for (const [index, cert] of chain.entries()) {
    const role = index === 0 ? 'signer' : 'intermediate';
    const expired = validityProblem(cert, policy.now, role);
    if (expired) return { ok: false, reason: expired };
    if (revoked.has(cert.serialNumber.toUpperCase())) {
      return { ok: false, reason: `the ${role} certificate with serial ${cert.serialNumber} is revoked` };
    }
    if (index > 0 && !cert.ca) return { ok: false, reason: `the intermediate certificate ${cert.subject} is not a CA` };
    const issuer = chain[index + 1];
    if (issuer) {
      if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) {
        return { ok: false, reason: `the ${role} certificate is not signed by the next certificate in the chain` };
      }
      continue;
    }
    const root = roots.find((r) => cert.checkIssued(r) && cert.verify(r.publicKey));
    if (!root) return { ok: false, reason: 'the certificate chain does not lead to a trusted root' };
    const rootExpired = validityProblem(root, policy.now, 'root');
    if (rootExpired) return { ok: false, reason: rootExpired };
    if (revoked.has(root.serialNumber.toUpperCase())) return { ok: false, reason: 'the trusted root is revoked' };
  }
  return { ok: true, signer: signer.subject.replace(/\n/g, ', '), fingerprint256: signer.fingerprint256 };
}
