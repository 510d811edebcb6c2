/** `npm run bench -- --start`: the table's title says "alternating" only when a --baseline's runs alternate with this checkout's. */
import { describe, expect, it } from 'vitest';
import { startTitle } from '../../../scripts/lib/benchStart.ts';

describe('npm run bench -- --start title', () => {
  it('says the runs alternate only with a baseline', () => {
    expect(startTitle(1, false)).toBe('npm start to a healthy /health, 1 run(s) (goal: existing ≤ 3 s, fresh ≤ 5 s)');
    expect(startTitle(3, true)).toBe('npm start to a healthy /health, 3 run(s) each, alternating (goal: existing ≤ 3 s, fresh ≤ 5 s)');
  });
});
