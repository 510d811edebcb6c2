import { describe, expect, it } from 'vitest';
import { checkManifest } from '../../../functions/domain/manifest.ts';

describe('checkManifest (Test stage)', () => {
  const base = {
    schemaVersion: 1,
    name: 'net-filter',
    version: '2.0.0',
    artifact: { sha256: 'a'.repeat(64), sizeBytes: 10 },
    entrypoint: 'init',
    resources: { cpuMillicores: 200, memoryMiB: 64 },
    dependencies: { 'core-lib': '^1.2.0' },
  };

  it('accepts a manifest whose dependencies are satisfied', () => {
    expect(checkManifest(base, { 'core-lib': ['1.1.0', '1.4.2'] })).toEqual({ ok: true, problems: [] });
  });

  it('names unsatisfied or invalid dependencies, oversize resources and schema errors', () => {
    expect(checkManifest(base, { 'core-lib': ['2.0.0'] }).problems).toEqual([expect.stringContaining('no registered version satisfies "^1.2.0"')]);
    expect(checkManifest({ ...base, dependencies: { 'core-lib': 'latest!' } }, {}).problems[0]).toContain('not a valid semver range');
    expect(checkManifest({ ...base, resources: { cpuMillicores: 9000, memoryMiB: 64 } }, { 'core-lib': ['1.2.0'] }).problems[0]).toContain(
      'exceeds the node limit',
    );
    expect(checkManifest({ ...base, dependencies: { 'net-filter': '1.0.0' } }, {}).problems[0]).toContain('cannot depend on itself');
    expect(checkManifest({ ...base, version: 'v2' }, {}).ok).toBe(false);
    expect(checkManifest({ ...base, extra: 1 }, {}).ok).toBe(false);
  });
});
