/**
 * `npm run rotate-keys` (scripts/rotate-keys.ts) as a user runs it: `--help` prints the usage and an
 * unknown flag is a usage error, neither touching a key file. The rotation itself is tested in
 * test/integration/rotation.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';

const rotateKeys = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'scripts/rotate-keys.ts', ...args], {
    encoding: 'utf8',
    // A data dir with no secrets in it: any attempt to rotate would fail loudly.
    env: { ...process.env, KMOD_DATA_DIR: mkdtempSync(`${tmpdir()}/rotate-keys-`) },
  });

describe('npm run rotate-keys', () => {
  it('prints its usage for --help (exit 0)', () => {
    const run = rotateKeys('--help');
    expect(run.status).toBe(0);
    expect(run.stdout).toBe('usage: npm run rotate-keys -- (--secret agent|approval-link | --secret-arn ARN) --step add|promote|retire\n');
    expect(run.stderr).toBe('');
  });

  it('answers an unknown flag or a bad step with the usage (exit 2), not a stack trace', () => {
    const unknown = rotateKeys('--secrets', 'agent', '--step', 'add');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/^rotate-keys: Unknown option '--secrets'/);
    expect(unknown.stderr).toContain('usage: npm run rotate-keys');
    expect(unknown.stderr).not.toContain('ERR_PARSE_ARGS');
    const badStep = rotateKeys('--secret', 'agent', '--step', 'rotate');
    expect(badStep.status).toBe(2);
    expect(badStep.stderr).toBe('usage: npm run rotate-keys -- (--secret agent|approval-link | --secret-arn ARN) --step add|promote|retire\n');
  });
});
