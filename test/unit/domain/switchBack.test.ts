import { describe, expect, it } from 'vitest';
import { switchBackNote, switchBackUntil } from '../../../functions/domain/blueGreen.ts';

describe('the Blue-Green switch-back window (BLUE_GREEN_SWITCH_BACK_SECONDS)', () => {
  const at = new Date('2026-11-29T09:00:00.000Z');
  it('ends the configured seconds after the switch', () => {
    expect(switchBackUntil(at, 3600)).toBe('2026-11-29T10:00:00.000Z');
    expect(switchBackUntil(at, 0)).toBe('2026-11-29T09:00:00.000Z');
  });
  it('says an instant switch-back within the window, and that the old colour was no longer guaranteed after it', () => {
    const until = switchBackUntil(at, 60);
    expect(switchBackNote('blue', until, new Date('2026-11-29T09:00:59Z'))).toBe(
      'traffic switched back to blue (instant switch-back, window open until 2026-11-29T09:01:00.000Z)',
    );
    expect(switchBackNote('blue', until, new Date('2026-11-29T09:01:00Z'))).toMatch(/instant switch-back/);
    expect(switchBackNote('blue', until, new Date('2026-11-29T09:01:01Z'))).toBe(
      'traffic switched back to blue after its switch-back window closed at 2026-11-29T09:01:00.000Z: the old colour was no longer guaranteed to serve as before the switch',
    );
    // A switch recorded before the window existed: the plain note as before.
    expect(switchBackNote('green', undefined, at)).toBe('traffic switched back to green');
  });
});
