import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import semver from 'semver';
import type { Manifest } from '../domain/manifest.ts';
import type { ModuleSignature } from '../domain/signature.ts';
import { auditItem } from './audit.ts';
import { dynamo, objectStore, queryAll, scanAll } from './aws.ts';
import { CONDITIONS, conditionInput } from './conditions.ts';
import { config } from './config.ts';
import { isConditionFailure } from './deployments.ts';
import { tableName } from './tables.ts';
import { transactWrite } from './auditChain.ts';

export interface ModuleVersionRecord {
  moduleName: string;
  version: string;
  manifest: Manifest;
  signature: ModuleSignature;
  certificateChain: string[];
  /**
   * S3 key of the artifact in the artifact bucket: `artifacts/<name>/<version>/<sha256>` (versions
   * registered before keys were content-addressed keep `modules/<name>/<version>/artifact.bin`).
   */
  artifactKey: string;
  registeredAt: string;
  registeredBy: string;
}

/**
 * Content-addressed: registrations of one version that race with different bytes write different
 * objects, so the one whose record wins keeps its bytes whatever the others write (issue 15 defect 3).
 */
export const artifactKey = (name: string, version: string, sha256: string) => `artifacts/${name}/${version}/${sha256}`;

/**
 * Register a version with its audit event, in one transaction. Versions are immutable: returns
 * false, writing nothing, when this version is already registered.
 */
export async function registerModuleVersion(record: ModuleVersionRecord, sha256: string): Promise<boolean> {
  try {
    await transactWrite([
      { Put: { TableName: tableName('modules'), Item: record, ...conditionInput(CONDITIONS.notExists('version')) } },
      {
        Put: auditItem({
          subject: `module#${record.moduleName}`,
          category: 'module',
          action: 'module.registered',
          actor: record.registeredBy,
          details: { version: record.version, sha256, signatureAlgorithm: record.signature.algorithm },
        }),
      },
    ]);
    return true;
  } catch (e) {
    if (isConditionFailure(e)) return false;
    throw e;
  }
}

export async function getModuleVersion(moduleName: string, version: string): Promise<ModuleVersionRecord | undefined> {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('modules'), Key: { moduleName, version }, ConsistentRead: true }));
  return r.Item as ModuleVersionRecord | undefined;
}

export async function listModuleVersions(moduleName: string): Promise<ModuleVersionRecord[]> {
  const items = await queryAll<ModuleVersionRecord>({
    TableName: tableName('modules'),
    KeyConditionExpression: 'moduleName = :m',
    ExpressionAttributeValues: { ':m': moduleName },
  });
  return items.sort((a, b) => semver.rcompare(a.version, b.version));
}

export async function putArtifact(key: string, bytes: Buffer): Promise<void> {
  await objectStore().send(new PutObjectCommand({ Bucket: config.artifactBucket(), Key: key, Body: bytes, ContentType: 'application/octet-stream' }));
}

/** Removes the artifact of a registration that lost its race; a no-op when the object is gone. */
export async function deleteArtifact(key: string): Promise<void> {
  await objectStore().send(new DeleteObjectCommand({ Bucket: config.artifactBucket(), Key: key }));
}

export async function getArtifact(key: string): Promise<Buffer> {
  const r = await objectStore().send(new GetObjectCommand({ Bucket: config.artifactBucket(), Key: key }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

/** A short-lived URL from which an agent downloads the artifact. */
export async function artifactDownloadUrl(key: string, expiresInSeconds = 900): Promise<string> {
  return getSignedUrl(objectStore(), new GetObjectCommand({ Bucket: config.artifactBucket(), Key: key }), { expiresIn: expiresInSeconds });
}

/** Every registered module with its versions, by name. */
export async function listModules(): Promise<{ moduleName: string; versions: string[] }[]> {
  const items = await scanAll<{ moduleName: string; version: string }>({ TableName: tableName('modules'), ProjectionExpression: 'moduleName, version' });
  const names = new Map<string, string[]>();
  for (const item of items) names.set(item.moduleName, [...(names.get(item.moduleName) ?? []), item.version]);
  return [...names].sort(([a], [b]) => a.localeCompare(b)).map(([moduleName, versions]) => ({ moduleName, versions }));
}
