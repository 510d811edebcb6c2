/**
 * Sign a module version and print the body for `POST /api/v1/modules`:
 *
 *   npm run sign-module -- --name my-module --version 2.0.0 --artifact build/my-module.bin \
 *     [--entrypoint my_module_init] [--cpu 250] [--memory 64] [--depends other-module@^1.2.0] \
 *     [--pki .local/pki] > body.json
 *   curl -X POST "$API/api/v1/modules" -H "authorization: Bearer $TOKEN" \
 *     -H 'content-type: application/json' --data @body.json
 *
 * The manifest is canonicalised (RFC 8785) and signed with the PKI's signer key; the body carries
 * the signer certificate and the artifact (base64).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadPki, signedModuleVersion } from '../localcloud/devPki.ts';

const { values } = parseArgs({
  options: {
    name: { type: 'string' },
    version: { type: 'string' },
    artifact: { type: 'string' },
    entrypoint: { type: 'string' },
    description: { type: 'string' },
    cpu: { type: 'string', default: '250' },
    memory: { type: 'string', default: '64' },
    depends: { type: 'string', multiple: true, default: [] },
    pki: { type: 'string', default: '.local/pki' },
  },
});
if (!values.name || !values.version || !values.artifact) {
  console.error(
    'usage: npm run sign-module -- --name NAME --version X.Y.Z --artifact FILE [--entrypoint E] [--cpu M] [--memory MiB] [--depends mod@range] [--pki DIR]',
  );
  process.exit(2);
}
const pki = loadPki(values.pki);
if (!pki) {
  console.error(`no PKI in ${values.pki}: run npm start once (it creates one) or npm run dev-pki`);
  process.exit(1);
}
const dependencies = Object.fromEntries(
  values.depends.map((d) => {
    const at = d.lastIndexOf('@');
    if (at <= 0) throw new Error(`--depends wants module@range, got ${d}`);
    return [d.slice(0, at), d.slice(at + 1)];
  }),
);
const body = signedModuleVersion(
  {
    name: values.name,
    version: values.version,
    description: values.description,
    entrypoint: values.entrypoint ?? `${values.name.replace(/-/g, '_')}_init`,
    resources: { cpuMillicores: Number(values.cpu), memoryMiB: Number(values.memory) },
    dependencies,
  },
  readFileSync(values.artifact),
  pki,
);
process.stdout.write(JSON.stringify(body) + '\n');
