/**
 * How long a deployment lock's lease runs from a renewal. The running execution renews every
 * lock of its deployment at the start of each long step, so a lease only has to outlive what
 * comes before the next renewal: one step (`stepSeconds`, LOCK_LEASE_SECONDS), plus the wait the
 * step leads into, if any (a canary bake, or an approval gate until its own deadline). A dead
 * execution's locks therefore lapse within one step (or one bake, or by the gate's deadline),
 * not after the longest wait that might come.
 */
export interface LeaseWait {
  /** The step is part of a canary wave: the bake after the wave runs before the next renewal. */
  bakeSeconds?: number;
  /** The step opens an approval gate: nothing renews until it is decided or expires at this time. */
  gateDeadline?: Date;
}

export function leaseSeconds(stepSeconds: number, wait: LeaseWait = {}, now = new Date()): number {
  const gate = wait.gateDeadline ? Math.max(0, Math.ceil((wait.gateDeadline.getTime() - now.getTime()) / 1000)) : 0;
  return stepSeconds + Math.max(gate, wait.bakeSeconds ?? 0);
}
