/** The start-up's pieces that need no JVM: DynamoDB Local's JVM options and functions loaded at first use (ADR 0037). */
import { describe, expect, it } from 'vitest';
import { DEFAULT_JAVA_OPTS, javaOpts } from '../../../localcloud/dynamodbProcess.ts';
import { LocalLambda, functionArn } from '../../../localcloud/lambda.ts';
import { ROOT } from '../../../localcloud/cloud.ts';

describe('DynamoDB Local JVM options', () => {
  it('default to the client compiler and the serial collector', () => {
    expect(javaOpts({})).toEqual(['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC']);
    expect(DEFAULT_JAVA_OPTS).toEqual(javaOpts({}));
  });

  it('KMOD_DYNAMODB_JAVA_OPTS replaces them (space-separated); empty means the JVM defaults', () => {
    expect(javaOpts({ KMOD_DYNAMODB_JAVA_OPTS: ' -Xmx512m  -XX:+UseG1GC ' })).toEqual(['-Xmx512m', '-XX:+UseG1GC']);
    expect(javaOpts({ KMOD_DYNAMODB_JAVA_OPTS: '' })).toEqual([]);
  });
});

describe('local Lambda: a function is imported at its first invocation', () => {
  it('an unknown function is ResourceNotFoundException without importing anything', async () => {
    const lambda = new LocalLambda(ROOT);
    await expect(lambda.invoke('kmod-NoSuchFunction', {})).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    expect(lambda.invocations).toBe(0);
  });

  it('a catalog function answers without load() first (a cold start), and load() imports the rest', async () => {
    const lambda = new LocalLambda(ROOT);
    // The Authorizer denies a request without a token before it touches any AWS service.
    await expect(
      lambda.invoke(functionArn('Authorizer'), { type: 'REQUEST', headers: {}, methodArn: 'arn:aws:execute-api:us-east-1:0:a/b/GET/x' }),
    ).rejects.toMatchObject({ name: 'Error', message: expect.stringContaining('Unauthorized') });
    expect(lambda.invocations).toBe(1);
    await expect(lambda.load()).resolves.toBeUndefined();
  }, 60_000);
});
