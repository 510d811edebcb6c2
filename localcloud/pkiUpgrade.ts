/**
 * Upgrading a data dir whose dev PKI predates code-signing certificates (localcloud/devPki.ts,
 * loadOrCreatePki): the module versions its old signer signed would now fail the Security scan, so
 * they are re-signed by the new signer. The manifest, and so the artifact digest, stays as it was;
 * only the signature and the chain change, each change audited. Dev PKI only: on AWS a signer is
 * replaced by registering new versions.
 */
import { ScanCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { auditItem } from '../functions/lib/audit.ts';
import { transactWrite } from '../functions/lib/auditChain.ts';
import type { ModuleVersionRecord } from '../functions/lib/modules.ts';
import { signManifest, type DevPki } from './devPki.ts';

const samePem = (a: string | undefined, b: string) => a?.trim() === b.trim();

/** Re-signs every registered version whose signer is the legacy one; returns `name@version` of each. */
export async function resignLegacyModules(ddb: DynamoDBDocumentClient, modulesTable: string, legacy: DevPki, pki: DevPki): Promise<string[]> {
  const done: string[] = [];
  let cursor: Record<string, unknown> | undefined;
  do {
    const page = await ddb.send(new ScanCommand({ TableName: modulesTable, ExclusiveStartKey: cursor, ConsistentRead: true }));
    for (const item of (page.Items ?? []) as ModuleVersionRecord[]) {
      if (!samePem(item.certificateChain[0], legacy.signerCertPem)) continue;
      const signature = signManifest(item.manifest, pki);
      // Through transactWrite, like every audited write: the event is linked into its chain (docs/adr/0032).
      await transactWrite([
        {
          Update: {
            TableName: modulesTable,
            Key: { moduleName: item.moduleName, version: item.version },
            UpdateExpression: 'SET signature = :sig, certificateChain = :chain',
            // Only if nobody changed it meanwhile (two clouds on one data dir).
            ConditionExpression: 'certificateChain = :old',
            ExpressionAttributeValues: { ':sig': signature, ':chain': [pki.signerCertPem], ':old': item.certificateChain },
          },
        },
        {
          Put: auditItem({
            subject: `module#${item.moduleName}`,
            category: 'module',
            action: 'module.resigned',
            actor: 'system:local-cloud',
            details: { version: item.version, reason: 'the dev PKI was upgraded to a code-signing certificate', signatureAlgorithm: signature.algorithm },
          }),
        },
      ]);
      done.push(`${item.moduleName}@${item.version}`);
    }
    cursor = page.LastEvaluatedKey;
  } while (cursor);
  return done;
}
