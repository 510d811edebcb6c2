import { createHash } from 'node:crypto';
import { ScanCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { AppError, conflict, notFound } from '../../domain/errors.ts';
import { manifestSchema, moduleNameSchema, semverSchema } from '../../domain/manifest.ts';
import { SIGNATURE_ALGORITHMS } from '../../domain/signature.ts';
import { auditItem } from '../../lib/audit.ts';
import { dynamo } from '../../lib/aws.ts';
import { isConditionFailure } from '../../lib/deployments.ts';
import { apiHandler, json } from '../../lib/http.ts';
import { parseBody, parsePath } from '../../lib/parse.ts';
import { artifactKey, getModuleVersion, listModuleVersions, newModuleVersionItem, putArtifact, type ModuleVersionRecord } from '../../lib/modules.ts';
import { tableName } from '../../lib/tables.ts';

/** Artifacts travel base64 in the JSON body; Lambda's 6 MB payload limit bounds them. */
const MAX_MODULE_BODY_BYTES = 5 * 1024 * 1024;

export const registerSchema = z
  .object({
    manifest: manifestSchema,
    signature: z
      .object({
        algorithm: z.enum(SIGNATURE_ALGORITHMS),
        value: z
          .string()
          .min(16)
          .max(1024)
          .regex(/^[A-Za-z0-9+/=]+$/, 'must be base64'),
      })
      .strict(),
    certificateChain: z
      .array(z.string().includes('-----BEGIN CERTIFICATE-----', { message: 'must be a PEM certificate' }).max(16_384))
      .min(1)
      .max(5),
    artifactBase64: z
      .string()
      .min(1)
      .regex(/^[A-Za-z0-9+/=]+$/, 'must be base64'),
  })
  .strict();

function present(m: ModuleVersionRecord) {
  return {
    moduleName: m.moduleName,
    version: m.version,
    manifest: m.manifest,
    signature: { algorithm: m.signature.algorithm },
    registeredAt: m.registeredAt,
    registeredBy: m.registeredBy,
  };
}

export const handler = apiHandler({
  'POST /api/v1/modules': async (event, caller) => {
    const body = parseBody(event, registerSchema, MAX_MODULE_BODY_BYTES);
    const { manifest } = body;
    const artifact = Buffer.from(body.artifactBase64, 'base64');
    const digest = createHash('sha256').update(artifact).digest('hex');
    if (digest !== manifest.artifact.sha256 || artifact.length !== manifest.artifact.sizeBytes) {
      throw new AppError(
        'ArtifactDigestMismatch',
        `the artifact (sha256 ${digest}, ${artifact.length} bytes) does not match the manifest (sha256 ${manifest.artifact.sha256}, ${manifest.artifact.sizeBytes} bytes)`,
      );
    }
    if (await getModuleVersion(manifest.name, manifest.version)) {
      throw conflict('ModuleVersionExists', `${manifest.name}@${manifest.version} is already registered; versions are immutable`);
    }
    const key = artifactKey(manifest.name, manifest.version);
    await putArtifact(key, artifact);
    const record: ModuleVersionRecord = {
      moduleName: manifest.name,
      version: manifest.version,
      manifest,
      signature: body.signature,
      certificateChain: body.certificateChain,
      artifactKey: key,
      registeredAt: new Date().toISOString(),
      registeredBy: caller.userId,
    };
    try {
      await dynamo().send(
        new TransactWriteCommand({
          TransactItems: [
            { Put: newModuleVersionItem(record) },
            {
              Put: auditItem({
                subject: `module#${manifest.name}`,
                category: 'module',
                action: 'module.registered',
                actor: caller.userId,
                details: { version: manifest.version, sha256: digest, signatureAlgorithm: body.signature.algorithm },
              }),
            },
          ],
        }),
      );
    } catch (e) {
      if (isConditionFailure(e)) throw conflict('ModuleVersionExists', `${manifest.name}@${manifest.version} is already registered; versions are immutable`);
      throw e;
    }
    return json(201, present(record), { location: `/api/v1/modules/${manifest.name}/versions/${manifest.version}` });
  },
  'GET /api/v1/modules': async () => {
    const names = new Map<string, string[]>();
    let cursor: Record<string, unknown> | undefined;
    do {
      const r = await dynamo().send(
        new ScanCommand({ TableName: tableName('modules'), ProjectionExpression: 'moduleName, version', ExclusiveStartKey: cursor }),
      );
      for (const item of r.Items ?? []) names.set(String(item.moduleName), [...(names.get(String(item.moduleName)) ?? []), String(item.version)]);
      cursor = r.LastEvaluatedKey;
    } while (cursor);
    return json(200, { items: [...names].sort(([a], [b]) => a.localeCompare(b)).map(([moduleName, versions]) => ({ moduleName, versions })) });
  },
  'GET /api/v1/modules/{moduleName}/versions': async (event) => {
    const { moduleName } = parsePath(event, z.object({ moduleName: moduleNameSchema }));
    const versions = await listModuleVersions(moduleName);
    if (versions.length === 0) throw notFound(`module ${moduleName}`);
    return json(200, { moduleName, items: versions.map(present) });
  },
  'GET /api/v1/modules/{moduleName}/versions/{version}': async (event) => {
    const { moduleName, version } = parsePath(event, z.object({ moduleName: moduleNameSchema, version: semverSchema }));
    const m = await getModuleVersion(moduleName, version);
    if (!m) throw notFound(`module version ${moduleName}@${version}`);
    return json(200, present(m));
  },
});
