import { describe, expect, it } from 'vitest';
import { matchesFilterPolicy } from '../../../localcloud/sns.ts';

describe('SNS filter policies', () => {
  it('matches exact strings and prefixes on message attributes', () => {
    const attrs = new Map([['environment', 'Staging']]);
    expect(matchesFilterPolicy(undefined, attrs)).toBe(true);
    expect(matchesFilterPolicy({ environment: ['Staging', 'Production'] }, attrs)).toBe(true);
    expect(matchesFilterPolicy({ environment: ['Production'] }, attrs)).toBe(false);
    expect(matchesFilterPolicy({ environment: [{ prefix: 'Stag' }] }, attrs)).toBe(true);
    expect(matchesFilterPolicy({ team: ['x'] }, attrs)).toBe(false);
  });
});
