import { describe, expect, it } from 'vitest';
import { blueGreen } from '../../../functions/strategies/blueGreen.ts';
import { expectModuleMatchesAsl, fleet, settings } from './conformance.ts';
import { fakeDeps } from './deps.ts';

describe('Blue-Green strategy', () => {
  const nodes = fleet(10);

  it('targets the idle colour only', () => {
    expect(blueGreen.plan(nodes, settings, { activeColour: 'blue' })).toMatchObject({
      activeColour: 'blue',
      idleColour: 'green',
      batches: [
        ['n-6', 'n-7', 'n-8'],
        ['n-9', 'n-10'],
      ],
    });
    expect(blueGreen.plan(nodes, settings, { activeColour: 'green' })).toMatchObject({
      activeColour: 'green',
      idleColour: 'blue',
      batches: [
        ['n-1', 'n-2', 'n-3'],
        ['n-4', 'n-5'],
      ],
    });
    // Before any switch the cluster serves blue.
    expect(blueGreen.plan(nodes, settings, {})).toMatchObject({ activeColour: 'blue', idleColour: 'green' });
  });

  it('refuses an environment with no idle-colour nodes', () => {
    expect(() =>
      blueGreen.plan(
        nodes.filter((n) => n.colour === 'blue'),
        settings,
        { activeColour: 'blue' },
      ),
    ).toThrow(/no green nodes/);
  });

  it('reads the live colour from the traffic router before planning', async () => {
    expect(await blueGreen.prepare!('Staging', fakeDeps('green').deps)).toEqual({ activeColour: 'green' });
    expect(blueGreen.usesColours).toBe(true);
  });

  it('agrees with its ASL file (strategy name, Map concurrency, functions)', () => expectModuleMatchesAsl(blueGreen));
});
