import { describe, expect, it } from 'vitest';
import { newNodeKey, nodeSigningKey, unwrapSecret, wrapSecret } from '../../../functions/domain/nodeCredentials.ts';

const k1 = { id: 'k1', secret: 'agent-key-one' };
const k2 = { id: 'k2', secret: 'agent-key-two' };

describe('node credentials at rest', () => {
  it('wrap a node secret so that only the agent key set opens it', () => {
    const key = newNodeKey();
    const wrapped = wrapSecret(key.secret, 'host-1', k1);
    expect(wrapped.wrapKeyId).toBe('k1');
    expect(wrapped.data).not.toContain(key.secret);
    expect(unwrapSecret(wrapped, 'host-1', [k2, k1])).toBe(key.secret);
    expect(nodeSigningKey({ keyId: key.id, wrapped }, 'host-1', [k1])).toEqual(key);
  });

  it('are bound to their node, their wrapping key, and refuse tampering', () => {
    const wrapped = wrapSecret('s3cret', 'host-1', k1);
    expect(() => unwrapSecret(wrapped, 'host-2', [k1])).toThrow();
    expect(() => unwrapSecret(wrapped, 'host-1', [k2])).toThrow(/no longer in the agent key set/);
    expect(() => unwrapSecret({ ...wrapped, wrapKeyId: 'k2' }, 'host-1', [k2])).toThrow();
    const raw = Buffer.from(wrapped.data, 'base64url');
    raw[raw.length - 1] ^= 1;
    expect(() => unwrapSecret({ ...wrapped, data: raw.toString('base64url') }, 'host-1', [k1])).toThrow();
  });

  it('use a fresh IV each time', () => {
    expect(wrapSecret('s', 'n', k1).data).not.toBe(wrapSecret('s', 'n', k1).data);
  });
});
