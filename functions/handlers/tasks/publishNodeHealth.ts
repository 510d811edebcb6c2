/**
 * Scheduled (EventBridge, every minute; the local cloud runs it on the same schedule): counts the
 * registered nodes of each environment by their last reported health (domain/fleetHealth.ts, the
 * count `/metrics` serves as kmod_nodes_by_health) and publishes it as the CloudWatch gauge
 * NodesByHealth{environment,status} in EMF (docs/adr/0030-telemetry.md). Reads only.
 */
import { z } from 'zod';
import { CLOUDWATCH_METRICS } from '../../domain/cloudwatchMetrics.ts';
import { nodesByHealth } from '../../domain/fleetHealth.ts';
import { cloudwatchMetrics, MetricUnit } from '../../lib/emf.ts';
import { readFleet } from '../../lib/fleetHealth.ts';
import { taskHandler } from '../../lib/task.ts';

export const handler = taskHandler(z.record(z.string(), z.unknown()), async () => {
  // Zeros included: every environment's every status has a data point each minute.
  const counts = nodesByHealth(await readFleet(), { zeros: true });
  const metrics = cloudwatchMetrics();
  for (const { environment, status, value } of counts) {
    // One EMF document per series: its own dimensions (service added by Powertools).
    const single = metrics.singleMetric();
    single.addDimensions({ environment, status });
    single.addMetric(CLOUDWATCH_METRICS.nodesByHealth, MetricUnit.Count, value);
  }
  return { counts };
});
