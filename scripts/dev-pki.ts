/**
 * Make a development signing PKI: a root CA and a module-signing certificate (ECDSA P-256 by
 * default, or RSA-2048 with --rsa).
 *
 *   npm run dev-pki -- [--dir .local/pki] [--rsa] [--force]
 *
 * The root certificate (root-ca.pem) is what the orchestrator must trust (TRUSTED_ROOTS_PEM).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createDevPki, savePki } from '../localcloud/devPki.ts';

const { values } = parseArgs({
  options: { dir: { type: 'string', default: '.local/pki' }, rsa: { type: 'boolean', default: false }, force: { type: 'boolean', default: false } },
});
if (existsSync(join(values.dir, 'signer-key.pem')) && !values.force) {
  console.error(`${values.dir} already holds a PKI; pass --force to replace it`);
  process.exit(1);
}
const pki = await createDevPki({ algorithm: values.rsa ? 'RSA-SHA256' : 'ECDSA-P256-SHA256' });
savePki(values.dir, pki);
console.log(`wrote ${values.dir}/root-ca.pem, signer.pem and signer-key.pem (${pki.algorithm})`);
