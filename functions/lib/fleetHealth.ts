/** The registered (not decommissioned) nodes of every environment, as `/metrics` and PublishNodeHealth count them. */
import { ENVIRONMENTS, type Environment } from '../domain/environments.ts';
import { queryAll } from './aws.ts';
import { tableName } from './tables.ts';

export type FleetNode = { lastHealth?: { status?: string }; modules?: Record<string, { version?: string }> };

/** One paged query per environment, projecting only health and module versions (the same calls as a count). */
export async function readFleet(): Promise<{ environment: Environment; nodes: FleetNode[] }[]> {
  return Promise.all(
    ENVIRONMENTS.map(async (environment) => ({
      environment,
      nodes: await queryAll<FleetNode>({
        TableName: tableName('nodes'),
        KeyConditionExpression: 'environment = :e',
        FilterExpression: 'attribute_not_exists(decommissionedAt)',
        ProjectionExpression: 'lastHealth.#hs, modules',
        ExpressionAttributeNames: { '#hs': 'status' },
        ExpressionAttributeValues: { ':e': environment },
      }),
    })),
  );
}
