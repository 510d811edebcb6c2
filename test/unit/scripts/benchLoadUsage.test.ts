/**
 * `npm run bench` and `npm run load` as a newcomer runs them first: `--help` prints a usage that
 * names every flag and says that the script starts clouds of its own (PORT and KMOD_DATA_DIR are
 * not used), and a bad flag or value is a usage error (exit 2) before any cloud starts — not a
 * Node stack trace, and no temporary data directory left behind.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../../..');

function script(name: 'bench' | 'load', ...args: string[]) {
  // Its own TMPDIR: a cloud started by mistake would leave its data directory here.
  const tmp = mkdtempSync(join(tmpdir(), `${name}-usage-`));
  const run = spawnSync(process.execPath, ['--import', 'tsx', `scripts/${name}.ts`, ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, TMPDIR: tmp, PORT: '1', KMOD_DATA_DIR: join(tmp, 'not-used') },
    timeout: 60_000,
  });
  // tsx keeps its transform cache there too (tsx-<uid>): only a cloud's data directory counts.
  const tmpEntries = readdirSync(tmp).filter((e) => e.startsWith('kmod-'));
  rmSync(tmp, { recursive: true, force: true });
  return { ...run, tmpEntries };
}

describe('npm run bench -- --help and bad flags', () => {
  it('prints its usage with every flag (exit 0)', () => {
    const run = script('bench', '--help');
    expect(run.status).toBe(0);
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^usage: npm run bench -- /);
    for (const flag of ['--sizes', '--runs', '--baseline', '--start', '--ws', '--help']) expect(run.stdout).toContain(flag);
    expect(run.stdout).toContain('PORT and KMOD_DATA_DIR are not used');
    expect(run.tmpEntries).toEqual([]);
  });

  it('answers an unknown flag or a bad count with the usage (exit 2), not a stack trace', () => {
    for (const args of [
      ['--size', '10', '--nope'],
      ['--runs', 'two'],
      ['--sizes', '10,abc'],
      ['--ws', '0'],
    ]) {
      const run = script('bench', ...args);
      expect(run.status, args.join(' ')).toBe(2);
      expect(run.stderr).toMatch(/^bench: /);
      expect(run.stderr).toContain('usage: npm run bench -- ');
      expect(run.stderr).not.toContain('ERR_PARSE_ARGS');
      expect(run.stdout).toBe('');
      expect(run.tmpEntries).toEqual([]);
    }
  });
});

describe('npm run load -- --help and bad flags', () => {
  it('prints its usage with every flag and scenario (exit 0)', () => {
    const run = script('load', '--help');
    expect(run.status).toBe(0);
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^usage: npm run load -- /);
    expect(run.stdout).not.toContain('/**');
    for (const flag of ['--scenarios', '--seconds', '--sustained-seconds', '--soak-minutes', '--creates', '--connections', '--baseline', '--help'])
      expect(run.stdout).toContain(flag);
    expect(run.stdout).toContain('reads, sustained, spike, soak, stress, create');
    expect(run.stdout).toContain('PORT and KMOD_DATA_DIR are not used');
    expect(run.tmpEntries).toEqual([]);
  });

  it('answers an unknown flag, scenario or a bad number with the usage (exit 2) before starting a cloud', () => {
    for (const [args, message] of [
      [['--scenario', 'reads'], "Unknown option '--scenario'"],
      [['--scenarios', 'reads,read'], 'unknown scenario "read": one of reads, sustained, spike, soak, stress, create'],
      [['--seconds', 'five'], '--seconds must be a whole number from 1 to 3600, got "five"'],
      [['--soak-minutes', '0'], '--soak-minutes must be a whole number from 1 to 1440, got "0"'],
    ] as const) {
      const run = script('load', ...args);
      expect(run.status, args.join(' ')).toBe(2);
      expect(run.stderr).toMatch(new RegExp(`^load: ${message.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')}\n`));
      expect(run.stderr).toContain('usage: npm run load -- ');
      expect(run.stdout).toBe('');
      expect(run.tmpEntries).toEqual([]);
    }
  });
});
