/**
 * Development PKI: a root CA, a code-signing certificate issued by it, the root's CRL, and
 * manifest signing. Used by `npm run dev-pki`, `npm run sign-module`, the local cloud's seed and
 * the tests. The signer carries what a code-signing certificate must (functions/domain/signature.ts):
 * key usage digitalSignature, extended key usage codeSigning, CA:false, and a CRL distribution point.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createHash, createSign, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { canonicalManifest, type Manifest } from '../functions/domain/manifest.ts';
import type { ModuleSignature, SignatureAlgorithm } from '../functions/domain/signature.ts';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface DevPki {
  rootCertPem: string;
  /** The root's private key, to issue CRLs. A dev PKI made before CRLs has none (see upgradeDevPki). */
  rootKeyPem?: string;
  signerCertPem: string;
  signerKeyPem: string;
  algorithm: SignatureAlgorithm;
}

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 } as const;
const DAY = 86400_000;

function pem(label: string, der: ArrayBuffer): string {
  return `-----BEGIN ${label}-----\n${Buffer.from(der)
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')}\n-----END ${label}-----\n`;
}

async function toPkcs8Pem(key: CryptoKey): Promise<string> {
  return pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey));
}

/** The root's signing key back from its PEM (the root is always ECDSA P-256). */
async function rootSigningKey(pki: Pick<DevPki, 'rootKeyPem'>): Promise<CryptoKey> {
  if (!pki.rootKeyPem) throw new Error('this dev PKI has no root key (made before CRLs): regenerate it with npm run dev-pki -- --force');
  const der = Buffer.from(pki.rootKeyPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  return (await webcrypto.subtle.importKey('pkcs8', der, EC, false, ['sign'])) as unknown as CryptoKey;
}

export interface PkiOptions {
  algorithm?: SignatureAlgorithm;
  /** Validity of the signer certificate. */
  notBefore?: Date;
  notAfter?: Date;
  commonName?: string;
  /** The CRL distribution point written into the signer certificate (e.g. a file URL of crl.pem). */
  crlUrl?: string;
}

export async function createDevPki(options: PkiOptions = {}): Promise<DevPki> {
  const algorithm = options.algorithm ?? 'ECDSA-P256-SHA256';
  const rootKeys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
  const now = Date.now();
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=Dev Module Root CA, O=kmod-orchestrator',
    keys: rootKeys,
    signingAlgorithm: EC,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 10 * 365 * DAY),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  const signerAlg = algorithm === 'RSA-SHA256' ? RSA : EC;
  const signerKeys = (await webcrypto.subtle.generateKey(signerAlg, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
  const signer = await x509.X509CertificateGenerator.create({
    subject: `CN=${options.commonName ?? 'Dev Module Signer'}, O=kmod-orchestrator`,
    issuer: root.subject,
    publicKey: signerKeys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: EC,
    notBefore: options.notBefore ?? new Date(now - 3600_000),
    notAfter: options.notAfter ?? new Date(now + 2 * 365 * DAY),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.codeSigning], false),
      await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
      ...(options.crlUrl ? [new x509.CRLDistributionPointsExtension([options.crlUrl])] : []),
    ],
  });
  return {
    rootCertPem: `${root.toString('pem')}\n`,
    rootKeyPem: await toPkcs8Pem(rootKeys.privateKey),
    signerCertPem: `${signer.toString('pem')}\n`,
    signerKeyPem: await toPkcs8Pem(signerKeys.privateKey),
    algorithm,
  };
}

/** The serial number (hex) of a PEM certificate, as a CRL lists it. */
export function serialOf(certPem: string): string {
  return new x509.X509Certificate(certPem).serialNumber;
}

/**
 * A CRL signed by the dev root, listing `revoked` serials (hex). Valid for `validDays` (default a
 * year: dev CRLs are republished by hand, `npm run dev-pki -- --revoke`).
 */
export async function issueRevocationList(
  pki: Pick<DevPki, 'rootCertPem' | 'rootKeyPem'>,
  revoked: RevokedEntry[],
  o: { thisUpdate?: Date; validDays?: number } = {},
): Promise<string> {
  const thisUpdate = o.thisUpdate ?? new Date();
  const crl = await x509.X509CrlGenerator.create({
    issuer: new x509.X509Certificate(pki.rootCertPem).subject,
    signingKey: await rootSigningKey(pki),
    signingAlgorithm: EC,
    thisUpdate,
    nextUpdate: new Date(thisUpdate.getTime() + (o.validDays ?? 365) * DAY),
    entries: revoked.map((r) => ({ serialNumber: r.serialNumber, reason: r.reason, revocationDate: r.revocationDate ?? thisUpdate })),
  });
  // RFC 7468's label, which OpenSSL and other readers expect (the library writes plain "CRL").
  return `${crl.toString('pem').replace(/-----(BEGIN|END) CRL-----/g, '-----$1 X509 CRL-----')}\n`;
}

export interface RevokedEntry {
  serialNumber: string;
  reason?: x509.X509CrlReason;
  revocationDate?: Date;
}

/** The entries of a PEM CRL. */
export function revocationEntries(crlPem: string): RevokedEntry[] {
  return new x509.X509Crl(crlPem).entries.map((e) => ({ serialNumber: e.serialNumber, reason: e.reason, revocationDate: e.revocationDate }));
}

/** CRL reason names (RFC 5280 5.3.1), as `--reason` takes them. */
export const CRL_REASONS = Object.keys(x509.X509CrlReason).filter((k) => Number.isNaN(Number(k)));

/** The reason code of a name in CRL_REASONS; undefined for anything else. */
export function crlReason(name: string): x509.X509CrlReason | undefined {
  return CRL_REASONS.includes(name) ? x509.X509CrlReason[name as keyof typeof x509.X509CrlReason] : undefined;
}

export function signManifest(manifest: unknown, pki: Pick<DevPki, 'signerKeyPem' | 'algorithm'>): ModuleSignature {
  const signer = createSign('SHA256');
  signer.update(canonicalManifest(manifest));
  return { algorithm: pki.algorithm, value: signer.sign(pki.signerKeyPem).toString('base64') };
}

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The body of `POST /api/v1/modules` for an artifact, signed by the given PKI. */
export function signedModuleVersion(
  fields: Omit<Manifest, 'schemaVersion' | 'artifact' | 'dependencies'> & { dependencies?: Record<string, string> },
  artifact: Buffer,
  pki: Pick<DevPki, 'signerKeyPem' | 'signerCertPem' | 'algorithm'>,
) {
  const manifest: Manifest = {
    schemaVersion: 1,
    ...fields,
    dependencies: fields.dependencies ?? {},
    artifact: { sha256: sha256Hex(artifact), sizeBytes: artifact.length },
  };
  return {
    manifest,
    signature: signManifest(manifest, pki),
    certificateChain: [pki.signerCertPem],
    artifactBase64: artifact.toString('base64'),
  };
}

const FILES = { rootCertPem: 'root-ca.pem', rootKeyPem: 'root-ca-key.pem', signerCertPem: 'signer.pem', signerKeyPem: 'signer-key.pem' } as const;
/** The root's CRL, published where the signer certificate's distribution point says. */
export const CRL_FILE = 'crl.pem';

export function savePki(dir: string, pki: DevPki): void {
  mkdirSync(dir, { recursive: true });
  for (const [k, f] of Object.entries(FILES)) {
    const value = pki[k as keyof typeof FILES];
    if (value !== undefined) writeFileSync(join(dir, f), value, { mode: 0o600 });
  }
  writeFileSync(join(dir, 'algorithm'), pki.algorithm);
}

export function loadPki(dir: string): DevPki | undefined {
  if (!existsSync(join(dir, FILES.signerKeyPem))) return undefined;
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return {
    rootCertPem: read(FILES.rootCertPem),
    rootKeyPem: existsSync(join(dir, FILES.rootKeyPem)) ? read(FILES.rootKeyPem) : undefined,
    signerCertPem: read(FILES.signerCertPem),
    signerKeyPem: read(FILES.signerKeyPem),
    algorithm: read('algorithm').trim() as SignatureAlgorithm,
  };
}

/** The file URL of a PKI directory's CRL: what its signer certificate names as distribution point. */
export const crlUrlOf = (dir: string) => pathToFileURL(join(dir, CRL_FILE)).href;

/** Made before signers had to be code-signing certificates (and before CRLs): no root key, or a signer without the codeSigning usage. */
export function isLegacyPki(pki: DevPki): boolean {
  const eku = new x509.X509Certificate(pki.signerCertPem).getExtension(x509.ExtendedKeyUsageExtension);
  return !pki.rootKeyPem || !eku?.usages.map(String).includes(x509.ExtendedKeyUsage.codeSigning);
}

/** Writes a new PKI (root, root key, code-signing signer with the CRL distribution point) and its empty CRL. */
export async function createPkiIn(dir: string, algorithm?: SignatureAlgorithm): Promise<DevPki> {
  const pki = await createDevPki({ algorithm, crlUrl: crlUrlOf(dir) });
  savePki(dir, pki);
  writeFileSync(join(dir, CRL_FILE), await issueRevocationList(pki, []), { mode: 0o644 });
  return pki;
}

/**
 * The data dir's PKI, created on first start. A legacy one (isLegacyPki) is set aside under
 * `legacy-<time>/` and replaced by a new one with the same algorithm; it is returned as `legacy` so
 * that the local cloud can re-sign what it signed (localcloud/cloud.ts, resignLegacyModules).
 */
export async function loadOrCreatePki(dir: string): Promise<{ pki: DevPki; legacy?: DevPki }> {
  const existing = loadPki(dir);
  if (existing && !isLegacyPki(existing)) {
    if (!existsSync(join(dir, CRL_FILE))) writeFileSync(join(dir, CRL_FILE), await issueRevocationList(existing, []), { mode: 0o644 });
    return { pki: existing };
  }
  if (existing) {
    const aside = join(dir, `legacy-${new Date().toISOString().replace(/[:.]/g, '-')}`);
    mkdirSync(aside, { recursive: true });
    for (const f of [...Object.values(FILES), 'algorithm', CRL_FILE]) if (existsSync(join(dir, f))) renameSync(join(dir, f), join(aside, f));
  }
  return { pki: await createPkiIn(dir, existing?.algorithm), legacy: existing };
}
