/**
 * The suite runs on the Node.js major version Lambda runs (nodejs22.x): npm installs Node.js 22
 * as a dependency and puts it first on the PATH of every npm script (docs/adr/0001).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('runtime', () => {
  it('is the major version of the Lambda runtime the CDK app deploys', () => {
    const source = readFileSync(new URL('../../infra/constructs/functions.ts', import.meta.url), 'utf8');
    const lambdaMajor = /Runtime\.NODEJS_(\d+)_X/.exec(source)?.[1];
    expect(lambdaMajor).toBeDefined();
    expect(process.versions.node.split('.')[0]).toBe(lambdaMajor);
  });

  it('provides the Node 22 APIs the local Step Functions interpreter needs, without a polyfill', () => {
    expect(typeof (Promise as unknown as { withResolvers?: unknown }).withResolvers).toBe('function');
  });
});
