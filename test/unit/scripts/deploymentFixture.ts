import type { Schemas } from '../../../sdk/typescript/client.ts';

/** A deployment as GET /api/v1/deployments/{executionId} answers it, for the kmod CLI's tests. */
export const deployment = (status: string, extra: Record<string, unknown> = {}) =>
  ({
    executionId: 'dep-abcdefghi-0123456789ab',
    moduleName: 'demo-kernel',
    version: '1.1.0',
    targetEnvironment: 'Production',
    status,
    requestedBy: 'deployer',
    createdAt: '2026-11-29T12:00:00.000Z',
    updatedAt: '2026-11-29T12:00:00.000Z',
    metadata: {},
    unreachableNodes: 'fail',
    stages: [],
    ...extra,
  }) as Schemas['Deployment'];
