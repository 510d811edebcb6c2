import { describe, expect, it } from 'vitest';
import { failedOutcome, initialStages, newExecutionId, orderedStages } from '../../../functions/domain/deployment.ts';

describe('deployment stages', () => {
  it('lists checks, each environment with its strategy, then validation', () => {
    const s = initialStages('QA');
    expect(s.stageOrder).toEqual(['Build', 'Test', 'SecurityScan', 'Development', 'QA', 'Validation']);
    expect(orderedStages(s).map((x) => x.strategy)).toEqual([undefined, undefined, undefined, 'Direct', 'Rolling', undefined]);
    expect(orderedStages(s).every((x) => x.status === 'Pending')).toBe(true);
  });

  it('ends RolledBack only when every failed environment was rolled back', () => {
    const st = orderedStages(initialStages('QA'));
    expect(failedOutcome(st)).toBe('Failed');
    st[3].status = 'RolledBack';
    expect(failedOutcome(st)).toBe('RolledBack');
    st[4].status = 'Failed';
    expect(failedOutcome(st)).toBe('Failed');
  });

  it('makes sortable ids', () => {
    const a = newExecutionId(new Date(1_000_000_000_000), 'aaaaaaaaaaaa');
    const b = newExecutionId(new Date(1_700_000_000_000), '000000000000');
    expect(a < b).toBe(true);
    expect(a).toMatch(/^dep-[a-z0-9]{9}-[a-f0-9]{12}$/);
  });
});
