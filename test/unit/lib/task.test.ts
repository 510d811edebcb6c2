import { describe, expect, it } from 'vitest';
import { describeCaughtError } from '../../../functions/lib/task.ts';

describe('describeCaughtError', () => {
  it('unwraps Lambda and child-execution causes', () => {
    expect(describeCaughtError({ Error: 'NodeDeployFailed', Cause: JSON.stringify({ errorType: 'NodeDeployFailed', errorMessage: 'dev-02 failed' }) })).toEqual(
      {
        code: 'NodeDeployFailed',
        message: 'dev-02 failed',
      },
    );
    const child = JSON.stringify({ status: 'FAILED', error: 'NodeDeployFailed', cause: 'batch 0: dev-02 failed; rolled back 2' });
    expect(describeCaughtError({ Error: 'States.TaskFailed', Cause: child })).toEqual({
      code: 'NodeDeployFailed',
      message: 'batch 0: dev-02 failed; rolled back 2',
    });
    expect(describeCaughtError({ Error: 'X', Cause: 'plain words' })).toEqual({ code: 'X', message: 'plain words' });
    expect(describeCaughtError(undefined).code).toBe('Unknown');
  });
});

describe('taskHandler correlation', () => {
  it("runs each task with its deployment's keys, so its agent calls carry the execution's trace", async () => {
    const { z } = await import('zod');
    const { taskHandler } = await import('../../../functions/lib/task.ts');
    const { currentCorrelation, traceIdOf } = await import('../../../functions/lib/traceContext.ts');
    const { parseTraceparent } = await import('../../../functions/agent/protocol.ts');
    const { traceparent } = await import('../../../functions/lib/traceContext.ts');
    const handler = taskHandler(z.object({ executionId: z.string(), environment: z.string(), moduleName: z.string().optional() }), async () => ({
      seen: currentCorrelation(),
      trace: parseTraceparent(traceparent()),
    }));
    const context = { functionName: 'kmod-DeployBatch', awsRequestId: 'r1' } as never;
    const [a, b] = await Promise.all([
      handler({ executionId: 'dep-aaaaaaaaa-111111111111', environment: 'QA', moduleName: 'demo-kernel' }, context),
      handler({ executionId: 'dep-bbbbbbbbb-222222222222', environment: 'Production' }, context),
    ]);
    expect(a.seen).toEqual({ executionId: 'dep-aaaaaaaaa-111111111111', deploymentId: 'dep-aaaaaaaaa-111111111111', environment: 'QA', module: 'demo-kernel' });
    expect(b.seen).toEqual({ executionId: 'dep-bbbbbbbbb-222222222222', deploymentId: 'dep-bbbbbbbbb-222222222222', environment: 'Production' });
    expect(a.trace).toBe(traceIdOf({ executionId: 'dep-aaaaaaaaa-111111111111' }, undefined));
    expect(b.trace).toBe(traceIdOf({ executionId: 'dep-bbbbbbbbb-222222222222' }, undefined));
  });
});

describe('taskHandler: the API request’s correlation id', () => {
  it('is taken from the input the state machine passes (not named by the schema), put on the task’s log line, and refused when malformed', async () => {
    const { z } = await import('zod');
    const { vi } = await import('vitest');
    const { taskHandler } = await import('../../../functions/lib/task.ts');
    const { logger } = await import('../../../functions/lib/telemetry.ts');
    const { currentCorrelation } = await import('../../../functions/lib/traceContext.ts');
    const handler = taskHandler(z.object({ executionId: z.string() }), async () => currentCorrelation());
    const context = { functionName: 'kmod-Build', awsRequestId: 'r2' } as never;
    const lines: string[] = [];
    const level = logger.getLevelName();
    logger.setLogLevel('INFO');
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    try {
      const seen = await handler({ executionId: 'dep-ccccccccc-333333333333', correlationId: 'req-42' }, context);
      expect(seen).toMatchObject({ correlationId: 'req-42', executionId: 'dep-ccccccccc-333333333333' });
      // A value that could forge log fields is not taken.
      const forged = await handler({ executionId: 'dep-ccccccccc-333333333333', correlationId: 'a"b\nc' }, context);
      expect(forged.correlationId).toBeUndefined();
    } finally {
      spy.mockRestore();
      logger.setLogLevel(level);
    }
    const done = lines
      .flatMap((l) => l.split('\n'))
      .filter((l) => l.includes('"task done"'))
      .map((l) => JSON.parse(l));
    expect(done).toHaveLength(2);
    expect(done[0]).toMatchObject({ level: 'INFO', correlationId: 'req-42', executionId: 'dep-ccccccccc-333333333333', function_name: 'kmod-Build' });
    expect(done[1].correlationId).toBeUndefined();
  });
});
