/**
 * Development PKI: a root CA and a module-signing certificate, and manifest signing.
 * Used by `npm run dev-pki`, `npm run sign-module`, the local cloud's seed and the tests.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createHash, createSign, webcrypto } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalManifest, type Manifest } from '../functions/domain/manifest.ts';
import type { ModuleSignature, SignatureAlgorithm } from '../functions/domain/signature.ts';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface DevPki {
  rootCertPem: string;
  signerCertPem: string;
  signerKeyPem: string;
  algorithm: SignatureAlgorithm;
}

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 } as const;

async function toPkcs8Pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey));
  return `-----BEGIN PRIVATE KEY-----\n${der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')}\n-----END PRIVATE KEY-----\n`;
}

export interface PkiOptions {
  algorithm?: SignatureAlgorithm;
  /** Validity of the signer certificate. */
  notBefore?: Date;
  notAfter?: Date;
  commonName?: string;
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
    notAfter: new Date(now + 10 * 365 * 86400_000),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
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
    notAfter: options.notAfter ?? new Date(now + 2 * 365 * 86400_000),
    extensions: [new x509.BasicConstraintsExtension(false, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
  });
  return {
    rootCertPem: root.toString('pem') + '\n',
    signerCertPem: signer.toString('pem') + '\n',
    signerKeyPem: await toPkcs8Pem(signerKeys.privateKey),
    algorithm,
  };
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
  pki: DevPki,
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

const FILES = { rootCertPem: 'root-ca.pem', signerCertPem: 'signer.pem', signerKeyPem: 'signer-key.pem' } as const;

export function savePki(dir: string, pki: DevPki): void {
  mkdirSync(dir, { recursive: true });
  for (const [k, f] of Object.entries(FILES)) writeFileSync(join(dir, f), pki[k as keyof typeof FILES], { mode: 0o600 });
  writeFileSync(join(dir, 'algorithm'), pki.algorithm);
}

export function loadPki(dir: string): DevPki | undefined {
  if (!existsSync(join(dir, FILES.signerKeyPem))) return undefined;
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return {
    rootCertPem: read(FILES.rootCertPem),
    signerCertPem: read(FILES.signerCertPem),
    signerKeyPem: read(FILES.signerKeyPem),
    algorithm: read('algorithm').trim() as SignatureAlgorithm,
  };
}

export async function loadOrCreatePki(dir: string): Promise<DevPki> {
  const existing = loadPki(dir);
  if (existing) return existing;
  const pki = await createDevPki();
  savePki(dir, pki);
  return pki;
}
