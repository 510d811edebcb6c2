/**
 * `npm run sign-module` (scripts/sign-module.ts), run as a user runs it: `--help` prints the usage,
 * an unknown flag is a usage error (not a stack trace), a gzipped tar is signed silently, and any
 * other file is signed with a warning that a real node agent will refuse it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { inspectArtifact, packArtifact } from '../../../functions/agent/artifact.ts';
import { verifyModuleSignature } from '../../../functions/domain/signature.ts';
import { createPkiIn } from '../../../localcloud/devPki.ts';

const signModule = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'scripts/sign-module.ts', ...args], { encoding: 'utf8' });

let dir: string;
let rootCertPem: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sign-module-'));
  rootCertPem = (await createPkiIn(join(dir, 'pki'))).rootCertPem;
});

describe('npm run sign-module', () => {
  it('prints its usage for --help, and a usage error (exit 2, no stack trace) for an unknown flag or a missing one', () => {
    const help = signModule('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^usage: npm run -s sign-module -- --name NAME --version X\.Y\.Z --artifact FILE/);
    expect(help.stdout).toContain('a gzipped tar of its directory');

    const unknown = signModule('--nmae', 'x');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/^sign-module: Unknown option '--nmae'/);
    expect(unknown.stderr).toContain('usage: npm run -s sign-module');
    expect(unknown.stderr).not.toMatch(/ERR_PARSE_ARGS|at .*parse_args/);
    expect(unknown.stdout).toBe('');

    const missing = signModule('--name', 'my-mod', '--pki', join(dir, 'pki'));
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('usage: npm run -s sign-module');
  });

  it('signs a gzipped tar of a module directory without a warning, with a signature the dev root verifies', async () => {
    const tarball = packArtifact([{ path: 'server.mjs', data: 'console.log("hi")\n' }]);
    await inspectArtifact(tarball); // what the agent checks
    const file = join(dir, 'my-mod.tar.gz');
    writeFileSync(file, tarball);
    const run = signModule('--name', 'my-mod', '--version', '1.0.0', '--artifact', file, '--pki', join(dir, 'pki'));
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const body = JSON.parse(run.stdout);
    expect(body.manifest).toMatchObject({ name: 'my-mod', version: '1.0.0', artifact: { sizeBytes: tarball.length } });
    expect(Buffer.from(body.artifactBase64, 'base64').equals(tarball)).toBe(true);
    const verdict = await verifyModuleSignature(body.manifest, body.signature, body.certificateChain, {
      trustedRoots: [rootCertPem],
      revokedSerials: [],
      now: new Date(),
    });
    expect(verdict.ok).toBe(true);
  });

  it('signs any other file too, warning on stderr that a real agent refuses it', () => {
    const file = join(dir, 'file.bin');
    writeFileSync(file, Buffer.from('not a tarball at all'));
    const run = signModule('--name', 'my-mod', '--version', '1.0.1', '--artifact', file, '--pki', join(dir, 'pki'));
    expect(run.status).toBe(0);
    expect(run.stderr).toBe(
      `sign-module: warning: ${file}: artifact is not a gzipped tar: incorrect header check. Signed anyway: the simulated fleet takes any bytes, but a real node agent refuses it (422 ArtifactRejected).\n`,
    );
    expect(JSON.parse(run.stdout).manifest).toMatchObject({ name: 'my-mod', version: '1.0.1', artifact: { sizeBytes: 20 } });
  });
});
