/** Split nodes into batches, in a stable order (so a retried plan is the same plan). */
export function planBatches(nodeIds: string[], batchSize: number): string[][] {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  const sorted = [...nodeIds].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const batches: string[][] = [];
  for (let i = 0; i < sorted.length; i += batchSize) batches.push(sorted.slice(i, i + batchSize));
  return batches;
}
