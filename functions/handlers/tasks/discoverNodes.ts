/**
 * Scheduled (EventBridge, every minute): one list-and-reconcile pass of the etcd discovery source
 * (functions/lib/discovery). Nodes registered in etcd join, nodes whose key is gone leave.
 * A Lambda cannot hold a watch open, so a change shows up within a minute rather than at once.
 */
import { z } from 'zod';
import { etcdSourceFrom } from '../../lib/discovery/etcd.ts';
import { Reconciler } from '../../lib/discovery/reconcile.ts';
import { taskHandler } from '../../lib/task.ts';
import { logger } from '../../lib/telemetry.ts';

// Kept across warm invocations, so a refused entry is audited once per container, not every minute.
const reconciler = new Reconciler({ name: 'etcd' });

export const handler = taskHandler(z.record(z.string(), z.unknown()), async () => {
  const endpoints = process.env.ETCD_ENDPOINTS;
  if (!endpoints) throw new Error('ETCD_ENDPOINTS is not set');
  const source = etcdSourceFrom(endpoints, process.env.ETCD_PREFIX);
  try {
    const summary = await reconciler.reconcile(await source.list());
    logger.info('discovery pass', { ...summary });
    return summary;
  } finally {
    await source.close();
  }
});
