/**
 * Module signatures: the signature over the canonical manifest, and the signer's certificate path
 * to a trusted root, checked as RFC 5280 asks of a code-signing certificate (the parts that apply:
 * key usage and extended key usage, basic constraints and path length, validity, revocation by
 * serial list and by CRL). Certificates and CRLs are read with @peculiar/x509, not by string checks.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createHash, createPublicKey, createVerify, webcrypto, type KeyObject } from 'node:crypto';
import { canonicalManifest } from './manifest.ts';

export const SIGNATURE_ALGORITHMS = ['RSA-SHA256', 'ECDSA-P256-SHA256'] as const;
export type SignatureAlgorithm = (typeof SIGNATURE_ALGORITHMS)[number];

export interface ModuleSignature {
  algorithm: SignatureAlgorithm;
  /** base64 signature over the canonical manifest (ECDSA: DER-encoded). */
  value: string;
}

/** A certificate revocation list as fetched: where from, its bytes (PEM or DER), and whether it had to be there. */
export interface RevocationList {
  source: string;
  data: string | Uint8Array;
  /** A configured list must parse; one found at a distribution point that does not is only noted. */
  required: boolean;
}

export interface RevocationLists {
  lists: RevocationList[];
  /** Distribution points that could not be read (the check goes on without them). */
  unavailable: string[];
}

export interface TrustPolicy {
  /** PEM trusted root certificates. */
  trustedRoots: string[];
  /** Revoked certificate serial numbers (hex, any case). */
  revokedSerials: string[];
  now: Date;
  /**
   * The CRLs to consult, given the CRL distribution points of the verified path (asked only once
   * the path verifies, so a certificate nobody trusts never makes the caller fetch a URL). It adds
   * the configured lists, and throws when a configured list cannot be read.
   */
  revocationLists?: (distributionPoints: string[]) => Promise<RevocationLists>;
}

/** The certificates of a PEM bundle, in order. */
export function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

export type SignatureVerdict =
  | {
      ok: true;
      signer: string;
      fingerprint256: string;
      /** What revocation was checked against, for the Security scan's message. */
      revocation: string;
    }
  | { ok: false; reason: string };

const CODE_SIGNING = x509.ExtendedKeyUsage.codeSigning;
const KEY_USAGE_NAMES = Object.entries(x509.KeyUsageFlags).filter(([, v]) => typeof v === 'number') as [string, number][];
const EKU_NAMES = new Map<string, string>(Object.entries(x509.ExtendedKeyUsage).map(([name, oid]) => [oid, name]));

const usageNames = (flags: number) =>
  KEY_USAGE_NAMES.filter(([, bit]) => flags & bit)
    .map(([name]) => name)
    .join(', ') || 'none';

const sameBytes = (a: ArrayBuffer, b: ArrayBuffer) => Buffer.from(a).equals(Buffer.from(b));
const issuedBy = (cert: x509.X509Certificate | x509.X509Crl, issuer: x509.X509Certificate) =>
  sameBytes(cert.issuerName.toArrayBuffer(), issuer.subjectName.toArrayBuffer());

function keyOf(cert: x509.X509Certificate): KeyObject {
  return createPublicKey({ key: Buffer.from(cert.publicKey.rawData), format: 'der', type: 'spki' });
}

function fingerprint256(cert: x509.X509Certificate): string {
  return createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex').toUpperCase().match(/../g)!.join(':');
}

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

/** The signer must be an end-entity certificate issued for code signing (RFC 5280 4.2.1.3, 4.2.1.9, 4.2.1.12). */
function signerUsageProblem(cert: x509.X509Certificate): string | undefined {
  const notFor = `the signer certificate ${cert.subject} is not meant for code signing`;
  const keyUsage = cert.getExtension(x509.KeyUsagesExtension);
  if (!keyUsage) return `${notFor}: it has no key usage extension (digitalSignature is required)`;
  if (!(keyUsage.usages & x509.KeyUsageFlags.digitalSignature)) {
    return `${notFor}: its key usage (${usageNames(keyUsage.usages)}) does not include digitalSignature`;
  }
  const extended = cert.getExtension(x509.ExtendedKeyUsageExtension);
  if (!extended) return `${notFor}: it has no extended key usage extension (codeSigning is required)`;
  if (!extended.usages.map(String).includes(CODE_SIGNING)) {
    const named = extended.usages.map((u) => EKU_NAMES.get(String(u)) ?? String(u)).join(', ');
    return `${notFor}: its extended key usage is ${named}, not codeSigning`;
  }
  if (cert.getExtension(x509.BasicConstraintsExtension)?.ca) return `the signer certificate ${cert.subject} is a CA certificate, not a code-signing one`;
  return undefined;
}

/** An issuer must be a CA allowed to sign certificates, with room for the intermediates below it. */
function issuerProblem(cert: x509.X509Certificate, role: string, intermediatesBelow: number): string | undefined {
  const constraints = cert.getExtension(x509.BasicConstraintsExtension);
  if (!constraints?.ca) return `the ${role} certificate ${cert.subject} is not a CA (basicConstraints CA:true is required to issue certificates)`;
  const keyUsage = cert.getExtension(x509.KeyUsagesExtension);
  if (keyUsage && !(keyUsage.usages & x509.KeyUsageFlags.keyCertSign)) {
    return `the ${role} certificate ${cert.subject} may not sign certificates: its key usage (${usageNames(keyUsage.usages)}) lacks keyCertSign`;
  }
  if (constraints.pathLength !== undefined && intermediatesBelow > constraints.pathLength) {
    return `path length exceeded: the ${role} certificate ${cert.subject} allows ${constraints.pathLength} intermediate certificate(s) below it, the chain has ${intermediatesBelow}`;
  }
  return undefined;
}

function validityProblem(cert: x509.X509Certificate, now: Date, role: string): string | undefined {
  if (now < cert.notBefore) return `the ${role} certificate ${cert.subject} is not valid before ${cert.notBefore.toISOString()}`;
  if (now > cert.notAfter) return `the ${role} certificate ${cert.subject} expired on ${cert.notAfter.toISOString()}`;
  return undefined;
}

/** The http(s) and file URLs of a certificate's CRL distribution points. */
function distributionPoints(cert: x509.X509Certificate): string[] {
  const ext = cert.getExtension(x509.CRLDistributionPointsExtension);
  const urls = (ext?.distributionPoints ?? []).flatMap((dp) => (dp.distributionPoint?.fullName ?? []).map((n) => n.uniformResourceIdentifier));
  return urls.filter((u): u is string => typeof u === 'string' && /^(https?|file):/i.test(u));
}

const verifies = (signed: x509.X509Certificate | x509.X509Crl, issuer: x509.X509Certificate) =>
  (signed instanceof x509.X509Crl
    ? signed.verify({ publicKey: issuer }, webcrypto as unknown as Crypto)
    : signed.verify({ publicKey: issuer, signatureOnly: true }, webcrypto as unknown as Crypto)
  ).catch(() => false);

/**
 * The Security scan (and the agent's own check): the signature over the canonical manifest
 * verifies with the signer certificate's key; the signer is a code-signing end-entity certificate;
 * every certificate up to a trusted root is signed by the next, within its validity, the issuers
 * CAs within their path length; and none is revoked, by serial or by a CRL its issuer signed.
 */
export async function verifyModuleSignature(
  manifest: unknown,
  signature: ModuleSignature,
  certificateChainPem: string[],
  policy: TrustPolicy,
): Promise<SignatureVerdict> {
  if (certificateChainPem.length === 0) return { ok: false, reason: 'no signer certificate was supplied' };
  let chain: x509.X509Certificate[];
  let roots: x509.X509Certificate[];
  try {
    chain = certificateChainPem.map((pem) => new x509.X509Certificate(pem));
  } catch (e) {
    return { ok: false, reason: `a certificate in the chain cannot be parsed: ${(e as Error).message}` };
  }
  try {
    roots = policy.trustedRoots.map((pem) => new x509.X509Certificate(pem));
  } catch (e) {
    return { ok: false, reason: `a trusted root cannot be parsed: ${(e as Error).message}` };
  }
  const signer = chain[0];
  let signerKey: KeyObject;
  try {
    signerKey = keyOf(signer);
  } catch (e) {
    return { ok: false, reason: `the signer certificate's key cannot be read: ${(e as Error).message}` };
  }
  const problem = keyProblem(signerKey, signature.algorithm);
  if (problem) return { ok: false, reason: problem };

  const verifier = createVerify('SHA256');
  verifier.update(canonicalManifest(manifest));
  let valid = false;
  try {
    valid = verifier.verify(signerKey, Buffer.from(signature.value, 'base64'));
  } catch {
    valid = false;
  }
  if (!valid) return { ok: false, reason: 'the signature does not match the manifest (tampered manifest or signature)' };

  const usage = signerUsageProblem(signer);
  if (usage) return { ok: false, reason: usage };

  // A chain that includes the root itself ends there.
  const path = [...chain];
  while (path.length > 1 && roots.some((r) => sameBytes(r.rawData, path.at(-1)!.rawData))) path.pop();

  const revoked = new Set(policy.revokedSerials.map((s) => s.toLowerCase()));
  const issuers: x509.X509Certificate[] = [];
  for (const [index, cert] of path.entries()) {
    const role = index === 0 ? 'signer' : 'intermediate';
    const expired = validityProblem(cert, policy.now, role);
    if (expired) return { ok: false, reason: expired };
    if (revoked.has(cert.serialNumber.toLowerCase())) return { ok: false, reason: `the ${role} certificate with serial ${cert.serialNumber} is revoked` };
    const next = path[index + 1];
    if (next) {
      if (!issuedBy(cert, next) || !(await verifies(cert, next))) {
        return { ok: false, reason: `the ${role} certificate is not signed by the next certificate in the chain` };
      }
      const notCa = issuerProblem(next, 'intermediate', index);
      if (notCa) return { ok: false, reason: notCa };
      issuers.push(next);
      continue;
    }
    let root: x509.X509Certificate | undefined;
    for (const r of roots) if (issuedBy(cert, r) && (await verifies(cert, r))) root = r;
    if (!root) return { ok: false, reason: 'the certificate chain does not lead to a trusted root' };
    const rootExpired = validityProblem(root, policy.now, 'root');
    if (rootExpired) return { ok: false, reason: rootExpired };
    if (revoked.has(root.serialNumber.toLowerCase())) return { ok: false, reason: 'the trusted root is revoked' };
    const rootProblem = issuerProblem(root, 'root', index);
    if (rootProblem) return { ok: false, reason: rootProblem };
    issuers.push(root);
  }

  const revocation = await revocationProblem(path, issuers, policy);
  if (!revocation.ok) return revocation;
  return { ok: true, signer: signer.subject, fingerprint256: fingerprint256(signer), revocation: revocation.checked };
}

/** Each certificate of the path against the CRLs its own issuer signed (RFC 5280 6.3, without delta CRLs). */
async function revocationProblem(
  path: x509.X509Certificate[],
  issuers: x509.X509Certificate[],
  policy: TrustPolicy,
): Promise<{ ok: true; checked: string } | { ok: false; reason: string }> {
  if (!policy.revocationLists) return { ok: true, checked: 'revocation checked against the serial list only' };
  let fetched: RevocationLists;
  try {
    fetched = await policy.revocationLists([...new Set(path.flatMap(distributionPoints))]);
  } catch (e) {
    return { ok: false, reason: `revocation could not be checked: ${(e as Error).message}` };
  }
  const notes = fetched.unavailable.map((u) => `${u} unavailable`);
  const crls: { source: string; crl: x509.X509Crl }[] = [];
  for (const list of fetched.lists) {
    try {
      crls.push({ source: list.source, crl: new x509.X509Crl(typeof list.data === 'string' ? list.data : new Uint8Array(list.data)) });
    } catch (e) {
      if (list.required) return { ok: false, reason: `the revocation list from ${list.source} cannot be parsed: ${(e as Error).message}` };
      notes.push(`${list.source} is not a CRL`);
    }
  }
  const used = new Set<string>();
  for (const [index, cert] of path.entries()) {
    const issuer = issuers[index];
    const keyUsage = issuer.getExtension(x509.KeyUsagesExtension);
    // Several CAs may share a name (every dev PKI does): a CRL counts only if this issuer signed it.
    for (const { source, crl } of crls) {
      if (!issuedBy(crl, issuer) || !(await verifies(crl, issuer))) continue;
      if (keyUsage && !(keyUsage.usages & x509.KeyUsageFlags.cRLSign)) {
        notes.push(`${source} is signed by ${issuer.subject}, whose key usage lacks cRLSign`);
        continue;
      }
      used.add(source);
      if (crl.nextUpdate && crl.nextUpdate < policy.now) notes.push(`${source} is past its nextUpdate (${crl.nextUpdate.toISOString()})`);
      const entry = crl.findRevoked(cert);
      if (entry) {
        const reason = entry.reason !== undefined ? `, reason ${x509.X509CrlReason[entry.reason]}` : '';
        const role = index === 0 ? 'signer' : 'intermediate';
        return {
          ok: false,
          reason: `the ${role} certificate ${cert.subject} (serial ${cert.serialNumber}) is revoked: listed in the CRL from ${source} since ${entry.revocationDate.toISOString()}${reason}`,
        };
      }
    }
  }
  const checked = used.size ? `revocation checked against ${[...used].join(', ')}` : 'no CRL applies to this chain';
  return { ok: true, checked: notes.length ? `${checked} (${notes.join('; ')})` : checked };
}
