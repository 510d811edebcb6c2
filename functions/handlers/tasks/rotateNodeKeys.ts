/**
 * Scheduled (EventBridge, hourly; locally `npm run rotate-node-keys`): one pass over the enrolled
 * nodes' own keys (lib/nodeKeys.ts nodeKeyPass). Keys older than NODE_KEY_MAX_AGE_SECONDS, or
 * issued under a fleet signer that has since rotated, get a pending successor that the node picks
 * up in its next heartbeat answer; previous keys past their window are retired; every key is kept
 * wrapped under the fleet key set's current signer.
 */
import { z } from 'zod';
import { config } from '../../lib/config.ts';
import { nodeKeyPass } from '../../lib/nodeKeys.ts';
import { agentKeys } from '../../lib/secrets.ts';
import { taskHandler } from '../../lib/task.ts';
import { logger } from '../../lib/telemetry.ts';

export const handler = taskHandler(z.record(z.string(), z.unknown()), async () => {
  const summary = await nodeKeyPass({ fleetKeys: await agentKeys(), maxAgeMs: config.nodeKeyMaxAgeSeconds() * 1000, actor: 'system:node-key-schedule' });
  logger.info('node key pass', { ...summary });
  return summary;
});
