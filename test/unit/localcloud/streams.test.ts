import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { lambdaEvent, repairImage } from '../../../localcloud/streams.ts';

describe('local DynamoDB Streams → Lambda events', () => {
  it("turns the SDK's typeless {} (an empty list inside a map in DynamoDB Local's stream) into NULL, so the image unmarshalls", () => {
    const image = { executionId: { S: 'd1' }, stages: { M: { Test: { M: { details: { M: { dependencies: {} } } } } } }, list: { L: [{}, { N: '1' }] } };
    expect(() => unmarshall(image as unknown as Record<string, AttributeValue>)).toThrow();
    const repaired = repairImage(image as never)!;
    expect(unmarshall(repaired as unknown as Record<string, AttributeValue>)).toEqual({
      executionId: 'd1',
      stages: { Test: { details: { dependencies: null } } },
      list: [null, 1],
    });
    expect(repairImage(undefined)).toBeUndefined();
  });

  it('builds the event Lambda sends: the stream ARN on every record, epoch seconds, the images', () => {
    const arn = 'arn:aws:dynamodb:ddblocal:000000000000:table/kmod-Deployments/stream/2026-11-29T00:00:00.000';
    const event = lambdaEvent(arn, [
      {
        eventID: 'e1',
        eventName: 'MODIFY',
        dynamodb: {
          SequenceNumber: '100',
          ApproximateCreationDateTime: new Date('2026-11-29T10:00:00Z'),
          NewImage: { status: { S: 'Running' } },
          OldImage: { status: { S: 'Pending' } },
        },
      },
    ]);
    expect(event.Records).toEqual([
      expect.objectContaining({
        eventID: 'e1',
        eventName: 'MODIFY',
        eventSource: 'aws:dynamodb',
        eventSourceARN: arn,
        dynamodb: expect.objectContaining({
          SequenceNumber: '100',
          ApproximateCreationDateTime: Date.parse('2026-11-29T10:00:00Z') / 1000,
          NewImage: { status: { S: 'Running' } },
          OldImage: { status: { S: 'Pending' } },
        }),
      }),
    ]);
  });
});
