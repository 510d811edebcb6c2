import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  AUDIT_CATEGORIES,
  AuditRetentionError,
  DEFAULT_AUDIT_RETENTION_DAYS,
  auditExpiresAt,
  auditRetentionEnvironment,
  resolveAuditRetention,
} from '../../../functions/domain/auditRetention.ts';

describe('resolveAuditRetention', () => {
  it('gives every category its default when nothing is set, longer for what auditors ask about than for node detail', () => {
    const r = resolveAuditRetention({});
    expect(r).toEqual(DEFAULT_AUDIT_RETENTION_DAYS);
    expect(Object.keys(r).sort()).toEqual([...AUDIT_CATEGORIES].sort());
    for (const c of ['security', 'approval', 'config'] as const) expect(r[c]).toBeGreaterThan(r.deployment);
    expect(r.deployment).toBeGreaterThan(r.node);
  });

  it('AUDIT_RETENTION_DAYS is the default of every category; AUDIT_RETENTION_DAYS_<CATEGORY> overrides it for one', () => {
    const r = resolveAuditRetention({ AUDIT_RETENTION_DAYS: '400', AUDIT_RETENTION_DAYS_SECURITY: '2555', AUDIT_RETENTION_DAYS_NODE: '30' });
    expect(r).toEqual({ deployment: 400, stage: 400, node: 30, module: 400, approval: 400, security: 2555, config: 400 });
  });

  it('an override alone leaves the other categories at their defaults; empty means unset', () => {
    const r = resolveAuditRetention({ AUDIT_RETENTION_DAYS_APPROVAL: '3650', AUDIT_RETENTION_DAYS: '' });
    expect(r).toEqual({ ...DEFAULT_AUDIT_RETENTION_DAYS, approval: 3650 });
  });

  it.each([
    ['AUDIT_RETENTION_DAYS', '0'],
    ['AUDIT_RETENTION_DAYS', '-5'],
    ['AUDIT_RETENTION_DAYS', '1.5'],
    ['AUDIT_RETENTION_DAYS', 'forever'],
    ['AUDIT_RETENTION_DAYS', '1e3'],
    ['AUDIT_RETENTION_DAYS_SECURITY', '36501'],
    ['AUDIT_RETENTION_DAYS_CONFIG', ' '],
  ])('refuses %s=%j, naming it', (name, value) => {
    expect(() => resolveAuditRetention({ [name]: value })).toThrow(AuditRetentionError);
    expect(() => resolveAuditRetention({ [name]: value })).toThrow(name);
  });

  it('refuses a setting for a category that does not exist (a typo would otherwise be ignored)', () => {
    expect(() => resolveAuditRetention({ AUDIT_RETENTION_DAYS_SECURTY: '2555' })).toThrow(/AUDIT_RETENTION_DAYS_SECURTY names no audit category/);
  });

  it('auditRetentionEnvironment gives the settings that resolve back to the same retention', () => {
    const r = { ...DEFAULT_AUDIT_RETENTION_DAYS, node: 7 };
    const env = auditRetentionEnvironment(r);
    expect(env.AUDIT_RETENTION_DAYS_NODE).toBe('7');
    expect(resolveAuditRetention(env)).toEqual(r);
  });
});

describe('auditExpiresAt', () => {
  it('is the event time in epoch seconds plus the retention in days', () => {
    const at = new Date('2026-11-29T12:00:00.500Z');
    expect(auditExpiresAt(at, 90)).toBe(Math.floor(at.getTime() / 1000) + 90 * 86_400);
    expect(new Date(auditExpiresAt(at, 1) * 1000).toISOString()).toBe('2026-11-30T12:00:00.000Z');
  });
});

describe('the audit items carry their category’s TTL', () => {
  afterEach(() => vi.unstubAllEnvs());

  it('auditItem sets expiresAt from the event’s category; a denial from the security category', async () => {
    vi.stubEnv('AUDIT_TABLE', 'audit');
    vi.stubEnv('AUDIT_RETENTION_DAYS_NODE', '3');
    vi.stubEnv('AUDIT_RETENTION_DAYS_SECURITY', '2000');
    const { auditItem } = await import('../../../functions/lib/audit.ts');
    const { denialWrites } = await import('../../../functions/lib/securityEvents.ts');
    const { TTL_ATTRIBUTE } = await import('../../../functions/lib/tables.ts');
    const at = new Date('2026-11-29T10:00:00.000Z');
    const base = Math.floor(at.getTime() / 1000);
    const node = auditItem({ subject: 'node#n1', category: 'node', action: 'node.enrolled', actor: 'u' }, at).Item;
    const approval = auditItem({ subject: 'deployment#d', category: 'approval', action: 'approval.granted', actor: 'u' }, at).Item;
    expect(node[TTL_ATTRIBUTE]).toBe(base + 3 * 86_400);
    expect(approval[TTL_ATTRIBUTE]).toBe(base + DEFAULT_AUDIT_RETENTION_DAYS.approval * 86_400);
    const denial = denialWrites({ action: 'access.denied', userId: 'u', method: 'GET', path: '/x' }, at, 300);
    expect(denial.create.Item[TTL_ATTRIBUTE]).toBe(base + 2000 * 86_400);
  });

  it('a bad retention setting makes the audit write fail loudly rather than keep events for a wrong time', async () => {
    vi.stubEnv('AUDIT_TABLE', 'audit');
    vi.stubEnv('AUDIT_RETENTION_DAYS_STAGE', 'ninety');
    const { auditItem } = await import('../../../functions/lib/audit.ts');
    expect(() => auditItem({ subject: 's', category: 'stage', action: 'a', actor: 'u' })).toThrow(/AUDIT_RETENTION_DAYS_STAGE/);
  });
});
