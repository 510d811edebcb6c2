import { createHash } from 'node:crypto';
import { z } from 'zod';
import { StageRejection } from '../../domain/errors.ts';
import { getArtifact, getModuleVersion } from '../../lib/modules.ts';
import { runStage } from '../../lib/stages.ts';
import { executionIdSchema, taskHandler } from '../../lib/task.ts';

/** Build: resolve the module version in the registry and check the artifact against its digest. */
export const handler = taskHandler(z.object({ executionId: executionIdSchema }), ({ executionId }) =>
  runStage(executionId, 'Build', async (d) => {
    const m = await getModuleVersion(d.moduleName, d.version);
    if (!m) throw new StageRejection('ModuleVersionNotFound', `${d.moduleName}@${d.version} is not in the module registry`);
    let bytes: Buffer;
    try {
      bytes = await getArtifact(m.artifactKey);
    } catch (e) {
      throw new StageRejection('ArtifactUnavailable', `the artifact of ${d.moduleName}@${d.version} cannot be read: ${(e as Error).message}`);
    }
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (digest !== m.manifest.artifact.sha256) {
      throw new StageRejection(
        'ArtifactDigestMismatch',
        `artifact digest mismatch for ${d.moduleName}@${d.version}: the manifest says sha256 ${m.manifest.artifact.sha256}, the stored artifact is ${digest}`,
      );
    }
    return {
      message: `resolved ${d.moduleName}@${d.version}; artifact sha256 ${digest} (${bytes.length} bytes) matches the manifest`,
      details: { sha256: digest, sizeBytes: bytes.length },
    };
  }),
);
