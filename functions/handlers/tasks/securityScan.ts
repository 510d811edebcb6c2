import { z } from 'zod';
import { StageRejection } from '../../domain/errors.ts';
import { splitPem, verifyModuleSignature } from '../../domain/signature.ts';
import { config } from '../../lib/config.ts';
import { getModuleVersion } from '../../lib/modules.ts';
import { revocationListFetcher } from '../../lib/revocationLists.ts';
import { runStage } from '../../lib/stages.ts';
import { executionIdSchema, taskHandler } from '../../lib/task.ts';

/** Kept across invocations of a container: http(s) CRLs are fetched once per cache period. */
let fetcher: { sources: string; fetch: ReturnType<typeof revocationListFetcher> } | undefined;
function revocationLists() {
  const sources = config.revocationListUrls();
  if (fetcher?.sources !== sources.join(',')) fetcher = { sources: sources.join(','), fetch: revocationListFetcher(sources) };
  return fetcher.fetch;
}

/** Security scan: the signature over the canonical manifest and the signer's certificate chain. */
export const handler = taskHandler(z.object({ executionId: executionIdSchema }), ({ executionId }) =>
  runStage(executionId, 'SecurityScan', async (d) => {
    const m = await getModuleVersion(d.moduleName, d.version);
    if (!m) throw new StageRejection('ModuleVersionNotFound', `${d.moduleName}@${d.version} is not in the module registry`);
    const trustedRoots = splitPem(config.trustedRootsPem());
    if (trustedRoots.length === 0)
      throw new StageRejection('NoTrustedRoots', 'no trusted signing roots are configured (TRUSTED_ROOTS_PEM / context trustedRootsPemFile)');
    const verdict = await verifyModuleSignature(m.manifest, m.signature, m.certificateChain, {
      trustedRoots,
      revokedSerials: config.revokedSerials(),
      now: new Date(),
      revocationLists: revocationLists(),
    });
    if (!verdict.ok) throw new StageRejection('SignatureInvalid', `signature verification failed: ${verdict.reason}`);
    return {
      message: `${m.signature.algorithm} signature valid; signed by ${verdict.signer}`,
      details: { algorithm: m.signature.algorithm, signer: verdict.signer, fingerprint256: verdict.fingerprint256, revocation: verdict.revocation },
    };
  }),
);
