import { z } from 'zod';
import { StageRejection } from '../../domain/errors.ts';
import { checkManifest } from '../../domain/manifest.ts';
import { getModuleVersion, listModuleVersions } from '../../lib/modules.ts';
import { runStage } from '../../lib/stages.ts';
import { executionIdSchema, taskHandler } from '../../lib/task.ts';

/** Test: the manifest's schema, resource requirements and dependency versions. */
export const handler = taskHandler(z.object({ executionId: executionIdSchema }), ({ executionId }) =>
  runStage(executionId, 'Test', async (d) => {
    const m = await getModuleVersion(d.moduleName, d.version);
    if (!m) throw new StageRejection('ModuleVersionNotFound', `${d.moduleName}@${d.version} is not in the module registry`);
    const deps = Object.keys((m.manifest as { dependencies?: Record<string, string> }).dependencies ?? {});
    const available = Object.fromEntries(await Promise.all(deps.map(async (dep) => [dep, (await listModuleVersions(dep)).map((v) => v.version)] as const)));
    const check = checkManifest(m.manifest, available);
    if (m.manifest.name !== d.moduleName || m.manifest.version !== d.version) {
      check.problems.push(`the manifest names ${m.manifest.name}@${m.manifest.version}, not ${d.moduleName}@${d.version}`);
    }
    if (check.problems.length) throw new StageRejection('ManifestInvalid', `manifest check failed: ${check.problems.join('; ')}`);
    return {
      message: `manifest valid: ${m.manifest.resources.cpuMillicores}m CPU, ${m.manifest.resources.memoryMiB} MiB, ${deps.length} dependencies satisfied`,
      details: { resources: m.manifest.resources, dependencies: m.manifest.dependencies },
    };
  }),
);
