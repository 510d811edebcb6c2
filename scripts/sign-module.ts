/**
 * Sign a module version and print the body for `POST /api/v1/modules`:
 *
 *   npm run -s sign-module -- --name my-module --version 2.0.0 --artifact build/my-module.tar.gz \
 *     [--entrypoint my_module_init] [--cpu 250] [--memory 64] [--depends other-module@^1.2.0] \
 *     [--pki .local/pki] > body.json
 *   curl -X POST "$API/api/v1/modules" -H "authorization: Bearer $TOKEN" \
 *     -H 'content-type: application/json' --data @body.json
 *
 * The manifest is canonicalised (RFC 8785) and signed with the PKI's signer key; the body carries
 * the signer certificate and the artifact (base64). The artifact should be what the node agent
 * installs, a gzipped tar of the module directory (docs/runbooks/node-agent.md, "Artifact format"):
 * anything else is still signed (the simulated fleet takes any bytes), with a warning on stderr,
 * because a real agent answers 422 ArtifactRejected.
 */
import { readFileSync } from 'node:fs';
import { ArtifactRejected, inspectArtifact } from '../functions/agent/artifact.ts';
import { loadPki, signedModuleVersion } from '../localcloud/devPki.ts';
import { parseOptionsOrExit } from './lib/usage.ts';

const USAGE = [
  'usage: npm run -s sign-module -- --name NAME --version X.Y.Z --artifact FILE [--entrypoint E] [--description D]',
  '         [--cpu MILLICORES] [--memory MiB] [--depends mod@range]... [--pki DIR] > body.json',
  '  FILE  the module as the node agent installs it: a gzipped tar of its directory (tar -czf FILE -C DIR .)',
  '  DIR   the dev PKI whose code-signing certificate signs (default $KMOD_DATA_DIR/pki, else .local/pki)',
].join('\n');

const values = parseOptionsOrExit('sign-module', USAGE, {
  name: { type: 'string' },
  version: { type: 'string' },
  artifact: { type: 'string' },
  entrypoint: { type: 'string' },
  description: { type: 'string' },
  cpu: { type: 'string', default: '250' },
  memory: { type: 'string', default: '64' },
  depends: { type: 'string', multiple: true, default: [] },
  pki: { type: 'string', default: `${process.env.KMOD_DATA_DIR ?? '.local'}/pki` },
  help: { type: 'boolean', short: 'h', default: false },
});
if (!values.name || !values.version || !values.artifact) {
  console.error(USAGE);
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
const artifact = readFileSync(values.artifact);
try {
  await inspectArtifact(artifact);
} catch (e) {
  if (!(e instanceof ArtifactRejected)) throw e;
  console.error(
    `sign-module: warning: ${values.artifact}: ${e.message}. Signed anyway: the simulated fleet takes any bytes, but a real node agent refuses it (422 ArtifactRejected).`,
  );
}
const body = signedModuleVersion(
  {
    name: values.name,
    version: values.version,
    description: values.description,
    entrypoint: values.entrypoint ?? `${values.name.replace(/-/g, '_')}_init`,
    resources: { cpuMillicores: Number(values.cpu), memoryMiB: Number(values.memory) },
    dependencies,
  },
  artifact,
  pki,
);
process.stdout.write(`${JSON.stringify(body)}\n`);
