import { describe, expect, it } from 'vitest';
import { countDeadlines, DEFAULT_DEADLINE_WARNING_SECONDS } from '../../../functions/domain/approvalDeadlines.ts';

const now = new Date('2026-11-29T12:00:00.000Z');
const inSeconds = (s: number) => new Date(now.getTime() + s * 1000).toISOString();

describe('countDeadlines', () => {
  it('counts Pending approvals as near their deadline within the window, overdue past it, and leaves decided ones out', () => {
    const counts = countDeadlines(
      [
        { status: 'Pending', deadline: inSeconds(60) }, // near
        { status: 'Pending', deadline: inSeconds(3600) }, // exactly at the window's edge: near
        { status: 'Pending', deadline: inSeconds(3601) }, // just outside
        { status: 'Pending', deadline: inSeconds(0) }, // the deadline is now: overdue
        { status: 'Pending', deadline: inSeconds(-300) }, // overdue
        { status: 'Approved', deadline: inSeconds(30) },
        { status: 'Expired', deadline: inSeconds(-30) },
        { status: 'Rejected', deadline: inSeconds(30) },
      ],
      now,
      3600,
    );
    expect(counts).toEqual({ pending: 5, nearDeadline: 2, overdue: 2, nextDeadline: inSeconds(60) });
  });

  it('uses a two-hour window by default', () => {
    expect(DEFAULT_DEADLINE_WARNING_SECONDS).toBe(7200);
    const counts = countDeadlines(
      [
        { status: 'Pending', deadline: inSeconds(7200) },
        { status: 'Pending', deadline: inSeconds(7201) },
      ],
      now,
    );
    expect(counts).toMatchObject({ pending: 2, nearDeadline: 1, overdue: 0 });
  });

  it('counts an unreadable deadline as overdue: such a gate can never expire by itself', () => {
    expect(countDeadlines([{ status: 'Pending', deadline: 'soon' }], now, 60)).toEqual({ pending: 1, nearDeadline: 0, overdue: 1 });
  });

  it('answers zeros and no next deadline when nothing is pending', () => {
    expect(countDeadlines([], now, 60)).toEqual({ pending: 0, nearDeadline: 0, overdue: 0 });
  });

  it('refuses a window that is not a positive number of seconds', () => {
    expect(() => countDeadlines([], now, 0)).toThrow(/positive/);
    expect(() => countDeadlines([], now, Number.NaN)).toThrow(/positive/);
  });
});
