/**
 * The web application firewall in front of the API, described once: CDK builds the AWS WAF web
 * ACL from it (infra/constructs/webAcl.ts) and the local API gateway enforces its rate and size
 * rules (localcloud/webAcl.ts). It sees every request before API Gateway does, so requests the
 * authorizer refuses count against the per-address limit too (issue 15 defect 4).
 */

/** The evaluation windows a WAF rate-based rule accepts. */
export const WAF_WINDOWS = [60, 120, 300, 600] as const;
export type WafWindowSeconds = (typeof WAF_WINDOWS)[number];

export interface WafSettings {
  /** Requests per source address within the window, any route, any answer; over it: 429. */
  ratePerAddress: number;
  windowSeconds: WafWindowSeconds;
}

/** The per-address limit: counted here, at the edge, for every request (the functions count only per user). */
export const DEFAULT_WAF: WafSettings = { ratePerAddress: 1000, windowSeconds: 60 };

/**
 * Bodies above this are refused at the edge: WAF's largest body inspection size for API Gateway.
 * The handlers' own limit (16 KiB, functions/lib/parse.ts) answers 400 below it, as before.
 */
export const WAF_MAX_BODY_BYTES = 64 * 1024;

/** Routes whose bodies may be larger: module registration carries the artifact, and its handler bounds it (5 MiB). */
export const WAF_LARGE_BODY_ROUTES = [{ method: 'POST', path: '/api/v1/modules' }] as const;

/** WAF's own answers, JSON `{ code, message }` like every other error. */
export const WAF_RESPONSES = {
  rateLimited: { statusCode: 429, code: 'TooManyRequests', message: 'too many requests from this address; retry later' },
  bodyTooLarge: { statusCode: 413, code: 'RequestTooLarge', message: `the request body exceeds ${WAF_MAX_BODY_BYTES} bytes` },
} as const;

/**
 * Rules of the AWS managed common rule set that are counted, not blocked, with the reason; the
 * rest of that set and the known-bad-inputs set block.
 */
export const WAF_COUNTED_MANAGED_RULES = {
  SizeRestrictions_BODY: 'blocks bodies over 8 KB; the body-size rule above it applies the API’s own limits instead',
  GenericRFI_BODY:
    'blocks bodies with URLs to IPv4 addresses, which enrolment and heartbeat bodies carry by design (the agent’s address, checked against AGENT_ALLOWED_HOSTS)',
} as const;

/** The settings from the environment (the local gateway; on AWS, from CDK context). */
export function wafSettingsFromEnv(env: Record<string, string | undefined> = process.env): WafSettings {
  const rate = Number(env.WAF_RATE_LIMIT_PER_ADDRESS ?? DEFAULT_WAF.ratePerAddress);
  const window = Number(env.WAF_RATE_WINDOW_SECONDS ?? DEFAULT_WAF.windowSeconds);
  if (!Number.isInteger(rate) || rate < 10)
    throw new Error(`WAF_RATE_LIMIT_PER_ADDRESS must be a whole number of at least 10, got "${env.WAF_RATE_LIMIT_PER_ADDRESS}"`);
  if (!(WAF_WINDOWS as readonly number[]).includes(window))
    throw new Error(`WAF_RATE_WINDOW_SECONDS must be one of ${WAF_WINDOWS.join(', ')}, got "${env.WAF_RATE_WINDOW_SECONDS}"`);
  return { ratePerAddress: rate, windowSeconds: window as WafWindowSeconds };
}
