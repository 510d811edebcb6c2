import { describe, expect, it } from 'vitest';
import { environmentsUpTo, isEnvironment } from '../../../functions/domain/environments.ts';

describe('environments', () => {
  it('promotes in order up to the target', () => {
    expect(environmentsUpTo('Development')).toEqual(['Development']);
    expect(environmentsUpTo('Staging')).toEqual(['Development', 'QA', 'Staging']);
    expect(isEnvironment('Production')).toBe(true);
    expect(isEnvironment('production')).toBe(false);
  });
});
