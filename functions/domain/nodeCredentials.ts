/**
 * Per-node HMAC keys, and how the orchestrator keeps their secrets at rest: AES-256-GCM under a
 * key derived (HKDF-SHA256) from a key of the agent key set, with the node id as associated data,
 * so a wrapped secret copied onto another node's record does not decrypt. Only functions that may
 * read the agent key secret can unwrap; the Nodes table alone reveals nothing.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { AgentKey } from '../agent/protocol.ts';
import type { RotationTrigger } from './nodeKeyRotation.ts';

export interface WrappedSecret {
  /** The agent-key-set key the wrapping key was derived from. */
  wrapKeyId: string;
  /** base64url of iv (12) | tag (16) | ciphertext. */
  data: string;
}

export interface NodeCredential {
  keyId: string;
  wrapped: WrappedSecret;
  /** When the key was created (absent on keys issued before rotation existed). */
  issuedAt?: string;
  /** The fleet key set's signing key when it was created: a fleet rotation makes the node key due. */
  issuedUnder?: string;
  /** When it became the node's current key (its promotion); the age the scheduled rotation counts from. */
  activeSince?: string;
  /** What started the rotation that issued it (domain/nodeKeyRotation.ts). */
  trigger?: RotationTrigger;
}

export function newNodeKey(): AgentKey {
  return { id: `nk-${randomBytes(8).toString('hex')}`, secret: randomBytes(32).toString('base64url') };
}

function wrappingKey(from: AgentKey): Buffer {
  return Buffer.from(hkdfSync('sha256', from.secret, 'kmod-node-credentials', 'aes-256-gcm v1', 32));
}

export function wrapSecret(secret: string, nodeId: string, with_: AgentKey): WrappedSecret {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', wrappingKey(with_), iv).setAAD(Buffer.from(nodeId));
  const ct = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  return { wrapKeyId: with_.id, data: Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64url') };
}

/** Throws when the wrapping key is gone from the key set or the data was tampered with. */
export function unwrapSecret(wrapped: WrappedSecret, nodeId: string, keys: readonly AgentKey[]): string {
  const key = keys.find((k) => k.id === wrapped.wrapKeyId);
  if (!key) throw new Error(`the key ${wrapped.wrapKeyId} that wrapped the credential of ${nodeId} is no longer in the agent key set`);
  const raw = Buffer.from(wrapped.data, 'base64url');
  const decipher = createDecipheriv('aes-256-gcm', wrappingKey(key), raw.subarray(0, 12)).setAAD(Buffer.from(nodeId));
  decipher.setAuthTag(raw.subarray(12, 28));
  return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
}

/**
 * Whether a reader of the key set should move a wrapped secret under its signing key. Not when the
 * secret is wrapped under a key the reader's copy marks `next`: a reader with a fresher copy (after
 * the signer moved) wrapped it there, and moving it back would tie it to a key about to retire.
 */
export function needsRewrap(wrapped: WrappedSecret, keys: readonly (AgentKey & { next?: boolean })[]): boolean {
  if (wrapped.wrapKeyId === keys[0].id) return false;
  return !keys.some((k) => k.id === wrapped.wrapKeyId && k.next);
}

export const nodeSigningKey = (c: NodeCredential, nodeId: string, keys: readonly AgentKey[]): AgentKey => ({
  id: c.keyId,
  secret: unwrapSecret(c.wrapped, nodeId, keys),
});
