/**
 * The canary samples each wave was judged on, kept beside the plan in the targets table
 * (`samples#wave#0001`, …) so that `POST …/canary/rejudge` can judge them again under other
 * settings without touching a node. The baseline's samples live in the plan (`baseline.sampleSet`).
 */
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import type { SampleSet } from '../domain/canary.ts';
import type { Environment } from '../domain/environments.ts';
import { dynamo, queryAll } from './aws.ts';
import { tableName, TTL_ATTRIBUTE } from './tables.ts';
import { targetKey } from './targets.ts';

const RETENTION_SECONDS = 180 * 86_400;
const PREFIX = 'samples#wave#';

export interface WaveSamples {
  /** 1-based, as in the stage details (`wave1`, …). */
  wave: number;
  percent: number;
  judgedAt: string;
  samples: SampleSet;
}

/** Idempotent: a retried judgement of the same wave replaces its samples with the ones it judged. */
export async function recordWaveSamples(executionId: string, environment: Environment, w: WaveSamples): Promise<void> {
  await dynamo().send(
    new PutCommand({
      TableName: tableName('targets'),
      Item: {
        targetKey: targetKey(executionId, environment),
        sk: `${PREFIX}${String(w.wave).padStart(4, '0')}`,
        ...w,
        [TTL_ATTRIBUTE]: Math.floor(Date.now() / 1000) + RETENTION_SECONDS,
      },
    }),
  );
}

export async function listWaveSamples(executionId: string, environment: Environment): Promise<WaveSamples[]> {
  const items = await queryAll<WaveSamples & { sk: string }>({
    TableName: tableName('targets'),
    KeyConditionExpression: 'targetKey = :k AND begins_with(sk, :p)',
    ExpressionAttributeValues: { ':k': targetKey(executionId, environment), ':p': PREFIX },
    ConsistentRead: true,
  });
  return items.map(({ wave, percent, judgedAt, samples }) => ({ wave, percent, judgedAt, samples })).sort((a, b) => a.wave - b.wave);
}
