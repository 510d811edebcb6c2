/**
 * The CloudWatch namespace and names of the business metrics the functions publish in EMF
 * (docs/adr/0030-telemetry.md) and the CDK app's dashboard and alarms read
 * (infra/constructs/monitoring.ts). One place, so the writer and the reader cannot drift.
 */
export const CLOUDWATCH_METRICS = {
  namespace: 'KmodOrchestrator',
  /** Powertools Metrics adds `service` as a default dimension of every metric. */
  service: 'kmod-orchestrator',
  deploymentOutcomes: ['DeploymentsStarted', 'DeploymentsSucceeded', 'DeploymentsFailed', 'DeploymentsRolledBack', 'DeploymentsCancelled'],
  canaryVerdicts: 'CanaryVerdicts',
  stageDuration: 'StageDuration',
  approvalWait: 'ApprovalWait',
  agentCallLatency: 'AgentCallLatency',
  agentCallErrors: 'AgentCallErrors',
  /** Gauge: nodes per environment and last reported health status (PublishNodeHealth, every minute). */
  nodesByHealth: 'NodesByHealth',
} as const;
