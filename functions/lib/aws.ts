/**
 * AWS SDK clients, created once per Lambda container. The endpoint comes from the standard
 * `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` variables, which is how the local cloud and
 * LocalStack are reached: the code is the same on AWS.
 */
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, paginateQuery, paginateScan, type QueryCommandInput, type ScanCommandInput } from '@aws-sdk/lib-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SNSClient } from '@aws-sdk/client-sns';
import { config } from './config.ts';

let ddb: DynamoDBDocumentClient | undefined;
let sfn: SFNClient | undefined;
let sns: SNSClient | undefined;
let s3: S3Client | undefined;
let connections: ApiGatewayManagementApiClient | undefined;

/**
 * Forget the clients: for a process that hosts one local cloud after another (the test suites),
 * whose endpoints change with each. A Lambda container's endpoints never change; nothing on AWS
 * calls this.
 */
export function forgetClients(): void {
  ddb = sfn = sns = s3 = connections = undefined;
}

export function dynamo(): DynamoDBDocumentClient {
  ddb ??= DynamoDBDocumentClient.from(new DynamoDBClient({}), {
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

/** Every item of a table (small tables only: the directory, the module index). */
export async function scanAll<T>(input: ScanCommandInput): Promise<T[]> {
  const items: T[] = [];
  for await (const page of paginateScan({ client: dynamo() }, input)) items.push(...((page.Items ?? []) as T[]));
  return items;
}

export function stepFunctions(): SFNClient {
  sfn ??= new SFNClient({});
  return sfn;
}

export function notifications(): SNSClient {
  sns ??= new SNSClient({});
  return sns;
}

export function objectStore(): S3Client {
  // Path-style addressing for endpoints without per-bucket DNS (the local cloud, LocalStack).
  s3 ??= new S3Client({ forcePathStyle: process.env.S3_FORCE_PATH_STYLE === 'true' });
  return s3;
}

/**
 * The WebSocket API's management API (PostToConnection, DeleteConnection). Its endpoint is the
 * API's own (https://<api>.execute-api.<region>.amazonaws.com/<stage>; the local gateway's /ws),
 * so it is configuration, not a service default.
 */
export function connectionsApi(): ApiGatewayManagementApiClient {
  connections ??= new ApiGatewayManagementApiClient({ endpoint: config.wsManagementEndpoint() });
  return connections;
}
