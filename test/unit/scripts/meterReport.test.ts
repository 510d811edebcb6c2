/** How `npm run load` prints where a route's time went, from the call meter (scripts/lib/meterReport.ts). */
import { describe, expect, it } from 'vitest';
import { timeBreakdown } from '../../../scripts/lib/meterReport.ts';

describe('timeBreakdown', () => {
  it('splits a request into its calls (per request × mean ms) and the rest', () => {
    const line = timeBreakdown({
      label: 'POST /api/v1/deployments',
      requests: 4,
      dynamodbPerRequest: 3,
      calls: { 'dynamodb:GetItem': 4, 'dynamodb:TransactWriteItems': 8, 'states:StartExecution': 4 },
      meanCallMs: { 'dynamodb:GetItem': 10, 'dynamodb:TransactWriteItems': 20, 'states:StartExecution': 5 },
      meanRequestMs: 80,
    });
    // 1 × 10 + 2 × 20 + 1 × 5 = 55 ms in calls, 25 ms besides.
    expect(line).toBe(
      'POST /api/v1/deployments: 80.0 ms a request = dynamodb:GetItem 1.00 × 10.0 ms + dynamodb:TransactWriteItems 2.00 × 20.0 ms + states:StartExecution 1.00 × 5.0 ms + the rest 25.0 ms',
    );
  });

  it('prints only the counts for a meter that did not time calls (a baseline checkout)', () => {
    expect(timeBreakdown({ label: 'GET /x', requests: 2, dynamodbPerRequest: 1, calls: { 'dynamodb:Query': 2 } })).toBe('GET /x: dynamodb:Query 1.00 × ? ms');
  });
});
