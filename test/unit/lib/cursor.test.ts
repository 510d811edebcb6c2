import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor } from '../../../functions/lib/cursor.ts';

describe('cursor', () => {
  it('round-trips a key and refuses anything it did not make', () => {
    const key = { executionId: 'dep-1', createdAt: '2030-01-01' };
    expect(decodeCursor(encodeCursor(key)!)).toEqual(key);
    expect(encodeCursor(undefined)).toBeNull();
    expect(decodeCursor(undefined)).toBeUndefined();
    expect(() => decodeCursor('not-json')).toThrow('cursor is not one this API returned');
    expect(() => decodeCursor(encodeCursor({ n: 1 } as never)!)).toThrow('cursor is not one this API returned');
  });
});
