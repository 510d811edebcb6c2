import { describe, expect, it } from 'vitest';
import { checkAgentAddress } from '../../../functions/domain/ssrf.ts';

describe('SSRF guard', () => {
  const allow = ['127.0.0.1', '10.0.0.0/8', 'agents.internal'];
  it.each([
    ['http://127.0.0.1:8080', true],
    ['https://10.2.3.4', true],
    ['http://agents.internal:9000/x', true],
    ['http://169.254.169.254/latest/meta-data', false],
    ['http://[fd00:ec2::254]/', false],
    ['http://11.0.0.1', false],
    ['http://evil.example', false],
    ['file:///etc/passwd', false],
    ['http://user:pw@127.0.0.1', false],
    ['not a url', false],
  ])('%s allowed=%s', (addr, ok) => {
    expect(checkAgentAddress(addr, allow).ok).toBe(ok);
  });
  it('refuses metadata addresses even when allowlisted', () => {
    expect(checkAgentAddress('http://169.254.169.254', ['169.254.0.0/16'])).toEqual({ ok: false, reason: expect.stringContaining('metadata') });
  });
});
