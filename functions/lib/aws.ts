/**
 * AWS SDK clients, created once per Lambda container. The endpoint comes from the standard
 * `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` variables, which is how the local cloud and
 * LocalStack are reached: the code is the same on AWS.
 */
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  DynamoDBDocumentClient,
  paginateQuery,
  paginateScan,
  type QueryCommandInput,
  type ScanCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SNSClient } from '@aws-sdk/client-sns';
import { config } from './config.ts';

let ddb: DynamoDBDocumentClient | undefined;
let sfn: SFNClient | undefined;
let sns: SNSClient | undefined;
let s3: S3Client | undefined;
let connections: ApiGatewayManagementApiClient | undefined;

/** What a setup hook may touch on a client: its middleware stack (the SDK's own extension point). */
export interface SdkClientLike {
  middlewareStack: { add(middleware: never, options: never): void };
}
type ClientSetup = (client: SdkClientLike, service: string) => void;
const setups = new Set<ClientSetup>();

/**
 * Run `setup` on every SDK client created from now on (the local cloud's call meter adds its
 * middleware this way). Returns the function that removes it. Clients made earlier keep what
 * they had: call `forgetClients()` first to make them afresh.
 */
export function onClientCreated(setup: ClientSetup): () => void {
  setups.add(setup);
  return () => setups.delete(setup);
}

function setUp<T extends SdkClientLike>(client: T, service: string): T {
  for (const setup of setups) setup(client, service);
  return client;
}

/**
 * Forget the clients: for a process that hosts one local cloud after another (the test suites),
 * whose endpoints change with each. A Lambda container's endpoints never change; nothing on AWS
 * calls this.
 */
export function forgetClients(): void {
  ddb = sfn = sns = s3 = connections = undefined;
}

export function dynamo(): DynamoDBDocumentClient {
  ddb ??= DynamoDBDocumentClient.from(setUp(new DynamoDBClient({}), 'dynamodb'), {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
  });
  return ddb;
}

/** Every item a query matches, page by page (the SDK's paginator). */
export async function queryAll<T>(input: QueryCommandInput): Promise<T[]> {
  const items: T[] = [];
  for await (const page of paginateQuery({ client: dynamo() }, input)) items.push(...((page.Items ?? []) as T[]));
  return items;
}

/** How many items a query matches, without reading them. */
export async function countAll(input: QueryCommandInput): Promise<number> {
  let n = 0;
  for await (const page of paginateQuery({ client: dynamo() }, { ...input, Select: 'COUNT' })) n += page.Count ?? 0;
  return n;
}

/**
 * Items of one table by key, 100 keys per BatchGetItem, strongly consistent; unprocessed keys
 * (throttling) are asked again with backoff. Unknown keys are simply absent.
 */
export async function batchGetAll<T>(table: string, keys: readonly Record<string, unknown>[]): Promise<T[]> {
  const items: T[] = [];
  for (let i = 0; i < keys.length; i += 100) {
    let pending: Record<string, unknown>[] | undefined = keys.slice(i, i + 100);
    for (let attempt = 0; pending?.length; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** attempt)));
      const r: BatchGetCommandOutput = await dynamo().send(new BatchGetCommand({ RequestItems: { [table]: { Keys: pending, ConsistentRead: true } } }));
      items.push(...((r.Responses?.[table] ?? []) as T[]));
      pending = r.UnprocessedKeys?.[table]?.Keys;
    }
  }
  return items;
}

/** Every item of a table (small tables only: the directory, the module index). */
export async function scanAll<T>(input: ScanCommandInput): Promise<T[]> {
  const items: T[] = [];
  for await (const page of paginateScan({ client: dynamo() }, input)) items.push(...((page.Items ?? []) as T[]));
  return items;
}

export function stepFunctions(): SFNClient {
  sfn ??= setUp(new SFNClient({}), 'states');
  return sfn;
}

export function notifications(): SNSClient {
  sns ??= setUp(new SNSClient({}), 'sns');
  return sns;
}

export function objectStore(): S3Client {
  // Path-style addressing for endpoints without per-bucket DNS (the local cloud, LocalStack).
  s3 ??= setUp(new S3Client({ forcePathStyle: process.env.S3_FORCE_PATH_STYLE === 'true' }), 's3');
  return s3;
}

/**
 * The WebSocket API's management API (PostToConnection, DeleteConnection). Its endpoint is the
 * API's own (https://<api>.execute-api.<region>.amazonaws.com/<stage>; the local gateway's /ws),
 * so it is configuration, not a service default.
 */
export function connectionsApi(): ApiGatewayManagementApiClient {
  connections ??= setUp(new ApiGatewayManagementApiClient({ endpoint: config.wsManagementEndpoint() }), 'execute-api');
  return connections;
}
