import { describe, expect, it } from 'vitest';
import { addDays, dayOf, dayOfKey, onDay, parseDay, partitionKey, partitionPrefix, scheduledDays, toJsonLines } from '../../../functions/domain/auditExport.ts';

describe('partition naming', () => {
  it('puts a day in its Hive-style partition, dt=YYYY-MM-DD, under audit/', () => {
    expect(partitionPrefix('2026-11-29')).toBe('audit/dt=2026-11-29/');
    expect(partitionKey('2026-11-29')).toBe('audit/dt=2026-11-29/events.jsonl');
    expect(dayOfKey('audit/dt=2026-11-29/events.jsonl')).toBe('2026-11-29');
    expect(dayOfKey('audit/dt=2026-11-29/other.json')).toBeUndefined();
    expect(dayOfKey('athena-results/x.csv')).toBeUndefined();
  });

  it.each(['2026-02-30', '2026-13-01', '26-11-29', '2026-11-29T00:00:00Z', '../../x', ''])('refuses the day %j', (day) => {
    expect(() => parseDay(day)).toThrow(/YYYY-MM-DD/);
    expect(() => partitionKey(day)).toThrow();
  });

  it('counts days in UTC across month and leap-year ends', () => {
    expect(addDays('2026-12-31', 1)).toBe('2027-01-01');
    expect(addDays('2028-03-01', -1)).toBe('2028-02-29');
    expect(dayOf(new Date('2026-11-29T23:59:59.999Z'))).toBe('2026-11-29');
  });

  it('a scheduled run exports yesterday and today (UTC)', () => {
    expect(scheduledDays(new Date('2026-11-29T00:30:00Z'))).toEqual(['2026-11-28', '2026-11-29']);
    expect(scheduledDays(new Date('2027-01-01T05:00:00Z'))).toEqual(['2026-12-31', '2027-01-01']);
  });
});

describe('toJsonLines', () => {
  const a = { subject: 'deployment#b', sk: '2026-11-29T10:00:00.000Z#aa', category: 'deployment', details: { z: 1, a: [2, { y: 'é' }] }, expiresAt: 1 };
  const b = { subject: 'deployment#a', sk: '2026-11-29T10:00:00.000Z#aa', category: 'stage', details: {} };
  const c = { subject: 'module#m', sk: '2026-11-29T09:00:00.000Z#ff', category: 'module', details: { text: 'line\nbreak' } };

  it('writes one valid JSON document per line, every attribute as stored, ordered by time then subject', () => {
    const text = toJsonLines([a, b, c]);
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines.map((l) => JSON.parse(l))).toEqual([c, b, a]);
  });

  it('is the same bytes whatever order the items come in (a re-run rewrites the same object)', () => {
    expect(toJsonLines([c, a, b])).toBe(toJsonLines([b, c, a]));
    expect(toJsonLines([a])).toBe(
      '{"category":"deployment","details":{"a":[2,{"y":"é"}],"z":1},"expiresAt":1,"sk":"2026-11-29T10:00:00.000Z#aa","subject":"deployment#b"}\n',
    );
  });

  it('writes an event read twice once, and nothing for no events', () => {
    expect(toJsonLines([a, a, b]).trimEnd().split('\n')).toHaveLength(2);
    expect(toJsonLines([])).toBe('');
  });

  it('onDay tells a day’s events by their sort key', () => {
    expect(onDay(a, '2026-11-29')).toBe(true);
    expect(onDay(a, '2026-11-28')).toBe(false);
  });
});
