import { createHash } from 'node:crypto';
import { z } from 'zod';
import { AppError, conflict, notFound } from '../../domain/errors.ts';
import { manifestSchema } from '../../domain/manifest.ts';
import { SIGNATURE_ALGORITHMS } from '../../domain/signature.ts';
import { apiHandler, json } from '../../lib/http.ts';
import { logger } from '../../lib/telemetry.ts';
import { parseBody, parsePath } from '../../lib/parse.ts';
import {
  artifactKey,
  deleteArtifact,
  getModuleVersion,
  listModules,
  listModuleVersions,
  putArtifact,
  registerModuleVersion,
  type ModuleVersionRecord,
} from '../../lib/modules.ts';
import { pathSchema } from './pathParameters.ts';

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
    const exists = () => conflict('ModuleVersionExists', `${manifest.name}@${manifest.version} is already registered; versions are immutable`);
    if (await getModuleVersion(manifest.name, manifest.version)) throw exists();
    // The key names the bytes: a racing registration with other bytes writes another object, and
    // the record (written under a condition, below) names the object that belongs to it.
    const key = artifactKey(manifest.name, manifest.version, digest);
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
    if (!(await registerModuleVersion(record, digest))) {
      // Lost the race. Our object is garbage unless the winner sent the very same bytes (same key).
      const winner = await getModuleVersion(manifest.name, manifest.version);
      if (winner && winner.artifactKey !== key) {
        await deleteArtifact(key).catch((e: Error) =>
          logger.warn('could not delete the artifact of a registration that lost its race', { key, error: e.message }),
        );
      }
      throw exists();
    }
    return json(201, present(record), { location: `/api/v1/modules/${manifest.name}/versions/${manifest.version}` });
  },
  'GET /api/v1/modules': async () => json(200, { items: await listModules() }),
  'GET /api/v1/modules/{moduleName}/versions': async (event) => {
    const { moduleName } = parsePath(event, pathSchema('moduleName'));
    const versions = await listModuleVersions(moduleName);
    if (versions.length === 0) throw notFound(`module ${moduleName}`);
    return json(200, { moduleName, items: versions.map(present) });
  },
  'GET /api/v1/modules/{moduleName}/versions/{version}': async (event) => {
    const { moduleName, version } = parsePath(event, pathSchema('moduleName', 'version'));
    const m = await getModuleVersion(moduleName, version);
    if (!m) throw notFound(`module version ${moduleName}@${version}`);
    return json(200, present(m));
  },
});
