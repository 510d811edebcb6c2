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
