/**
 * Rotating a key set without downtime, in three steps with a pause between each so every reader
 * (agents, Lambda containers) has picked up the previous step:
 *
 *   add      the new key joins at the end: everyone accepts it, nobody signs with it yet
 *   promote  the new key moves first: it signs from now on; the old one still verifies
 *   retire   the old keys go: only the new key remains
 */
import { randomBytes } from 'node:crypto';

export interface Key {
  id: string;
  secret: string;
}

export type RotationStep = 'add' | 'promote' | 'retire';

export function rotate(keys: Key[], step: RotationStep, newKey: () => Key = generateKey): Key[] {
  if (keys.length === 0) throw new Error('the key set is empty');
  switch (step) {
    case 'add':
      if (keys.length > 1) throw new Error('a rotation is already under way: promote or retire first');
      return [...keys, newKey()];
    case 'promote':
      if (keys.length < 2) throw new Error('nothing to promote: add a key first');
      return [keys[keys.length - 1], ...keys.slice(0, -1)];
    case 'retire':
      return [keys[0]];
  }
}

export function generateKey(): Key {
  return { id: `k-${randomBytes(4).toString('hex')}`, secret: randomBytes(32).toString('base64') };
}
