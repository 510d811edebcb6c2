import { describe, expect, it } from 'vitest';
import { cachedLookup, type DirectoryEntry } from '../../../functions/lib/directory.ts';

const amy: DirectoryEntry = {
  userId: 'amy',
  kind: 'user',
  username: 'amy',
  roles: ['Admin'],
  enabled: true,
  createdAt: '2026-01-01T00:00:00Z',
  createdBy: 'test',
};

function setup(ttlSeconds: number) {
  let clock = 1_000;
  const loads: string[] = [];
  const table = new Map<string, DirectoryEntry>([['amy', amy]]);
  const lookup = cachedLookup(
    async (id) => {
      loads.push(id);
      return table.get(id);
    },
    { ttlSeconds: () => ttlSeconds, perf: { now: () => clock } },
  );
  return { lookup, loads, table, advance: (ms: number) => (clock += ms) };
}

describe('cachedLookup: directory answers for authorisation, for seconds', () => {
  it('reads the table once per subject per TTL, then again, so a change shows within the TTL', async () => {
    const { lookup, loads, table, advance } = setup(5);
    expect((await lookup('amy'))?.roles).toEqual(['Admin']);
    table.set('amy', { ...amy, roles: ['Viewer'] });
    advance(4_999);
    expect((await lookup('amy'))?.roles).toEqual(['Admin']);
    expect(loads).toEqual(['amy']);
    advance(2);
    expect((await lookup('amy'))?.roles).toEqual(['Viewer']);
    expect(loads).toEqual(['amy', 'amy']);
  });

  it('caches "not in the directory" too, for the same time', async () => {
    const { lookup, loads, table, advance } = setup(5);
    expect(await lookup('bob')).toBeUndefined();
    table.set('bob', { ...amy, userId: 'bob' });
    expect(await lookup('bob')).toBeUndefined();
    advance(5_001);
    expect((await lookup('bob'))?.userId).toBe('bob');
    expect(loads).toEqual(['bob', 'bob']);
  });

  it('reads every time with a TTL of 0', async () => {
    const { lookup, loads } = setup(0);
    await lookup('amy');
    await lookup('amy');
    expect(loads).toEqual(['amy', 'amy']);
  });

  it('shares one read among look-ups that miss at the same time, and a failed read is not remembered', async () => {
    const { lookup, loads, table } = setup(5);
    const entries = await Promise.all(Array.from({ length: 50 }, () => lookup('amy')));
    expect(entries.every((e) => e?.userId === 'amy')).toBe(true);
    expect(loads).toEqual(['amy']);
    let fail = true;
    const flaky = cachedLookup(
      async (id) => {
        loads.push(id);
        if (fail) throw new Error('table unavailable');
        return table.get(id);
      },
      { ttlSeconds: () => 5 },
    );
    const failed = await Promise.allSettled([flaky('amy'), flaky('amy')]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    expect((await flaky('amy'))?.userId).toBe('amy');
    expect(loads).toEqual(['amy', 'amy', 'amy']);
  });

  it('with a TTL of 0, look-ups at the same time each read the table', async () => {
    const { lookup, loads } = setup(0);
    await Promise.all([lookup('amy'), lookup('amy')]);
    expect(loads).toEqual(['amy', 'amy']);
  });
});
