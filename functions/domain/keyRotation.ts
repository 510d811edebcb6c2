/**
 * Rotating a key set without downtime. The first key signs; every key verifies; a key marked
 * `next` has been published for verifiers but does not sign yet.
 *
 * By hand, three steps with a pause between each so every reader (agents, Lambda containers) has
 * picked up the previous one:
 *   add      a new key joins, marked next: everyone accepts it, nobody signs with it yet
 *   promote  the next key moves first: it signs from now on; the old one still verifies
 *   retire   only the signing key remains
 *
 * Scheduled (Secrets Manager), one step per period: the next key (published a whole period ago,
 * so every reader knows it) becomes the signer, the old signer stays as a verifier for stragglers,
 * and a fresh next key is published. No step signs with a key a reader may not have.
 */
import { randomBytes } from 'node:crypto';

export interface Key {
  id: string;
  secret: string;
  next?: boolean;
}

export type RotationStep = 'add' | 'promote' | 'retire';

const plain = ({ next: _n, ...k }: Key): Key => {
  void _n;
  return k;
};

export function rotate(keys: Key[], step: RotationStep, newKey: () => Key = generateKey): Key[] {
  if (keys.length === 0) throw new Error('the key set is empty');
  const next = keys.find((k) => k.next);
  switch (step) {
    case 'add':
      if (next || keys.length > 1) throw new Error('a rotation is already under way: promote or retire first');
      return [...keys, { ...newKey(), next: true }];
    case 'promote':
      if (!next) throw new Error('nothing to promote: add a key first');
      return [plain(next), ...keys.filter((k) => k !== next)];
    case 'retire':
      if (next) throw new Error('promote the next key before retiring the others');
      return [keys[0]];
  }
}

export function scheduledRotation(keys: Key[], newKey: () => Key = generateKey): Key[] {
  if (keys.length === 0) throw new Error('the key set is empty');
  const [signing] = keys;
  const next = keys.find((k) => k.next);
  if (!next) return [signing, { ...newKey(), next: true }];
  return [plain(next), signing, { ...newKey(), next: true }];
}

export function generateKey(): Key {
  return { id: `k-${randomBytes(4).toString('hex')}`, secret: randomBytes(32).toString('base64') };
}
