/**
 * The LocalStack scripts fail at once, saying what to do, where Docker cannot run LocalStack: no
 * docker command, or a docker command with no engine behind it (as on the machines this suite runs
 * on, and anywhere DOCKER_HOST points nowhere).
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { dockerProblem } from '../../../scripts/localstack.ts';

const exec = promisify(execFile);
const COMMANDS = ['up', 'deploy', 'test', 'down'];

/** Runs `tsx scripts/localstack.ts <command>` as npm would, on this Node.js; its status, output and time. */
async function localstack(command: string, env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  try {
    const r = await exec(process.execPath, ['--import', 'tsx', 'scripts/localstack.ts', command], { env: { ...process.env, ...env }, timeout: 60_000 });
    return { code: 0, ...r, ms: Date.now() - started };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr, ms: Date.now() - started };
  }
}

/** A docker command that answers as the Docker client does when no engine listens. */
function dockerWithoutEngine(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kmod-docker-'));
  const bin = join(dir, 'docker');
  writeFileSync(bin, '#!/bin/sh\necho "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2\nexit 1\n');
  chmodSync(bin, 0o755);
  return bin;
}

const realDocker = await exec('docker', ['--version']).then(
  () => true,
  () => false,
);

describe('the LocalStack scripts without Docker', () => {
  it('say Docker is not installed, and what to use instead, when there is no docker command', async () => {
    for (const command of ['up', 'deploy']) {
      const r = await localstack(command, { KMOD_DOCKER: join(tmpdir(), 'no-such-dir', 'docker') });
      expect(r.code, command).toBe(1);
      expect(r.stderr, command).toMatch(/^localstack: Docker is not installed \(no ".*docker" command on the PATH\)\./);
      expect(r.stderr, command).toContain('Without Docker, use the embedded local cloud instead: npm start, npm test.');
      expect(r.stdout, command).toBe('');
    }
  });

  it('say the engine does not answer, quoting the Docker client, and how to start one, when the client has no engine', async () => {
    const docker = dockerWithoutEngine();
    for (const command of COMMANDS) {
      const r = await localstack(command, { KMOD_DOCKER: docker });
      expect(r.code, command).toBe(1);
      expect(r.stderr.trim(), command).toBe(
        'localstack: Docker is installed, but no Docker engine answers (Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?). Start it (systemctl start docker, or Docker Desktop), or point DOCKER_HOST at one. Without Docker, use the embedded local cloud instead: npm start, npm test.',
      );
      // At once: no image pull, no deploy attempt, no waiting for LocalStack.
      expect(r.ms, command).toBeLessThan(30_000);
    }
  });

  it.runIf(realDocker)('with the real Docker client and DOCKER_HOST pointing nowhere, report that engine', async () => {
    // Wherever an engine runs, there is no problem with it: point the client at a socket that does not exist.
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = `unix://${join(tmpdir(), 'kmod-no-docker.sock')}`;
    try {
      expect(await dockerProblem('docker')).toMatch(/^Docker is installed, but no Docker engine answers \(.*kmod-no-docker\.sock/);
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
    }
  });

  it('refuse an unknown command with the usage', async () => {
    const r = await localstack('nope', {});
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('usage: tsx scripts/localstack.ts up|deploy|test|down|synth');
  });
});
