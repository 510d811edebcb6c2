import { z } from 'zod';
import { StageRejection } from '../../domain/errors.ts';
import { verifyModuleSignature } from '../../domain/signature.ts';
import { config } from '../../lib/config.ts';
import { getModuleVersion } from '../../lib/modules.ts';
import { runStage } from '../../lib/stages.ts';
import { executionIdSchema, taskHandler } from '../../lib/task.ts';

function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Security scan: the signature over the canonical manifest and the signer's certificate chain. */
export const handler = taskHandler(z.object({ executionId: executionIdSchema }), ({ executionId }) =>
  runStage(executionId, 'SecurityScan', async (d) => {
    const m = await getModuleVersion(d.moduleName, d.version);
    if (!m) throw new StageRejection('ModuleVersionNotFound', `${d.moduleName}@${d.version} is not in the module registry`);
    const trustedRoots = splitPem(config.trustedRootsPem());
    if (trustedRoots.length === 0)
      throw new StageRejection('NoTrustedRoots', 'no trusted signing roots are configured (TRUSTED_ROOTS_PEM / context trustedRootsPemFile)');
    const verdict = verifyModuleSignature(m.manifest, m.signature, m.certificateChain, {
      trustedRoots,
      revokedSerials: config.revokedSerials(),
      now: new Date(),
    });
    if (!verdict.ok) throw new StageRejection('SignatureInvalid', `signature verification failed: ${verdict.reason}`);
    return {
      message: `${m.signature.algorithm} signature valid; signed by ${verdict.signer}`,
      details: { algorithm: m.signature.algorithm, signer: verdict.signer, fingerprint256: verdict.fingerprint256 },
    };
  }),
);
