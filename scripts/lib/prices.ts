/**
 * What a deployment costs on AWS: the billable usage the local cloud counts, priced with AWS's
 * published on-demand prices for us-east-1 (x86 Lambda, Standard workflows, on-demand DynamoDB,
 * REST API). Free tiers are left out: they are per account, not per deployment.
 *
 * PRICES_AS_OF is when the figures were taken from the public price pages (they change rarely,
 * but do: DynamoDB on-demand halved in November 2024). Check aws.amazon.com/<service>/pricing
 * before quoting a figure to anyone.
 */
export const PRICES_AS_OF = '2025-01 (us-east-1 public price pages)';

export const PRICES_USD = {
  /** Step Functions Standard: per state transition ($0.025 per 1,000). */
  stateTransition: 0.025 / 1000,
  /** Lambda: per request ($0.20 per million). */
  lambdaRequest: 0.2 / 1e6,
  /** Lambda x86: per GB-second of duration. */
  lambdaGbSecond: 0.0000166667,
  /** DynamoDB on-demand: per read request unit ($0.125 per million). */
  dynamoReadUnit: 0.125 / 1e6,
  /** DynamoDB on-demand: per write request unit ($0.625 per million). */
  dynamoWriteUnit: 0.625 / 1e6,
  /** SNS: per publish ($0.50 per million requests). */
  snsPublish: 0.5 / 1e6,
  /** API Gateway REST API: per request ($3.50 per million, first tier). */
  apiRequest: 3.5 / 1e6,
  /** AWS CodeDeploy on-premises: per instance update, the comparison. */
  codeDeployOnPremisesInstanceUpdate: 0.02,
} as const;

export interface BillableUsage {
  stateTransitions: number;
  lambdaRequests: number;
  lambdaGbSeconds: number;
  dynamoReadUnits: number;
  dynamoWriteUnits: number;
  snsPublishes: number;
  apiRequests: number;
}

export type CostBreakdown = Record<keyof BillableUsage, number> & { total: number };

export function costOf(u: BillableUsage): CostBreakdown {
  const p = PRICES_USD;
  const parts = {
    stateTransitions: u.stateTransitions * p.stateTransition,
    lambdaRequests: u.lambdaRequests * p.lambdaRequest,
    lambdaGbSeconds: u.lambdaGbSeconds * p.lambdaGbSecond,
    dynamoReadUnits: u.dynamoReadUnits * p.dynamoReadUnit,
    dynamoWriteUnits: u.dynamoWriteUnits * p.dynamoWriteUnit,
    snsPublishes: u.snsPublishes * p.snsPublish,
    apiRequests: u.apiRequests * p.apiRequest,
  };
  return { ...parts, total: Object.values(parts).reduce((s, v) => s + v, 0) };
}

/** Dollars with enough digits to see a fraction of a cent. */
export const usd = (n: number) => (n >= 1 ? `$${n.toFixed(2)}` : n >= 0.01 ? `$${n.toFixed(4)}` : `$${n.toFixed(6)}`);
