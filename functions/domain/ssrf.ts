import { BlockList, isIP } from 'node:net';

/** Addresses an agent may never have: link-local (incl. cloud metadata) and unspecified. */
const FORBIDDEN = new BlockList();
FORBIDDEN.addSubnet('169.254.0.0', 16, 'ipv4');
FORBIDDEN.addSubnet('0.0.0.0', 8, 'ipv4');
FORBIDDEN.addSubnet('fe80::', 10, 'ipv6');
FORBIDDEN.addAddress('fd00:ec2::254', 'ipv6');
FORBIDDEN.addAddress('::', 'ipv6');

/**
 * SSRF guard for agent calls: the address must be http(s), without credentials, and its host
 * must be in the allowlist (exact host names, IPs, or CIDRs like 10.0.0.0/8). Link-local and
 * metadata addresses are refused whatever the allowlist says.
 */
export function checkAgentAddress(address: string, allowlist: string[]): { ok: true; url: URL } | { ok: false; reason: string } {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    return { ok: false, reason: `"${address}" is not a URL` };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, reason: `scheme ${url.protocol} is not allowed` };
  if (url.username || url.password) return { ok: false, reason: 'credentials in agent URLs are not allowed' };
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const family = isIP(host);
  if (family && FORBIDDEN.check(host, family === 4 ? 'ipv4' : 'ipv6')) return { ok: false, reason: `${host} is a link-local or metadata address` };
  if (host.toLowerCase() === 'metadata.google.internal' || host.toLowerCase() === 'instance-data') return { ok: false, reason: `${host} is a metadata host` };
  const allowed = allowlist.some((entry) => {
    const [net, bits] = entry.split('/');
    if (bits === undefined) return net.toLowerCase() === host.toLowerCase();
    const netFamily = isIP(net);
    if (!family || !netFamily || family !== netFamily) return false;
    const list = new BlockList();
    list.addSubnet(net, Number(bits), netFamily === 4 ? 'ipv4' : 'ipv6');
    return list.check(host, family === 4 ? 'ipv4' : 'ipv6');
  });
  return allowed ? { ok: true, url } : { ok: false, reason: `${host} is not in the agent allowlist` };
}
