import { afterEach, describe, expect, it, vi } from 'vitest';

afterEach(() => {
  vi.unstubAllEnvs();
  vi.resetModules();
});

/** The SDK clients of lib/aws.ts, as a function in Lambda with tracing on (or off) makes them. */
async function clients(tracing: boolean) {
  vi.stubEnv('AWS_EXECUTION_ENV', 'AWS_Lambda_nodejs22.x');
  vi.stubEnv('AWS_LAMBDA_FUNCTION_NAME', 'kmod-DeployBatch');
  vi.stubEnv('POWERTOOLS_TRACE_ENABLED', String(tracing));
  vi.stubEnv('AWS_REGION', 'us-east-1');
  vi.resetModules();
  await import('../../../functions/lib/telemetry.ts');
  const aws = await import('../../../functions/lib/aws.ts');
  aws.forgetClients();
  return [aws.dynamo(), aws.stepFunctions(), aws.notifications(), aws.objectStore()].map((c) => c.middlewareStack.identify().join('\n'));
}

describe('Tracer captures every AWS SDK client', () => {
  it('adds the X-Ray middleware to each client where tracing is on, and nothing where it is off', async () => {
    for (const stack of await clients(true)) expect(stack).toMatch(/XRaySDKInstrumentation/);
    for (const stack of await clients(false)) expect(stack).not.toMatch(/XRaySDKInstrumentation/);
  });
});
