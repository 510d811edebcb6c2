/** Settings that handlers read from their environment, with the defaults the brief gives. */
function num(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got "${raw}"`);
  return n;
}

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

export const config = {
  pipelineStateMachineArn: () => required('PIPELINE_STATE_MACHINE_ARN'),
  artifactBucket: () => required('ARTIFACT_BUCKET'),
  /** PEM bundle of trusted module-signing roots. */
  trustedRootsPem: () => required('TRUSTED_ROOTS_PEM'),
  /** Comma-separated revoked certificate serial numbers (hex). */
  revokedSerials: () => (process.env.REVOKED_CERT_SERIALS ?? '').split(',').map((s) => s.trim()).filter(Boolean),
  /** Nodes per Lambda invocation when deploying; keeps Step Functions history proportional to batches. */
  nodesPerBatch: () => num('NODES_PER_BATCH', 50),
  /** Concurrent agent calls inside one batch. */
  agentConcurrency: () => num('AGENT_CONCURRENCY', 16),
  agentTimeoutMs: () => num('AGENT_TIMEOUT_MS', 10_000),
  heartbeatMaxAgeSeconds: () => num('HEALTH_HEARTBEAT_MAX_AGE_SECONDS', 120),
  healthMaxCpuPercent: () => num('HEALTH_MAX_CPU_PERCENT', 90),
  healthMaxMemoryPercent: () => num('HEALTH_MAX_MEMORY_PERCENT', 90),
  healthMaxErrorRatePercent: () => num('HEALTH_MAX_ERROR_RATE_PERCENT', 5),
  idempotencyTtlSeconds: () => num('IDEMPOTENCY_TTL_SECONDS', 86_400),
  auditRetentionDays: () => num('AUDIT_RETENTION_DAYS', 400),
  /** Hosts or CIDRs that agent addresses must fall in (SSRF guard). */
  agentAllowedHosts: () => (process.env.AGENT_ALLOWED_HOSTS ?? '').split(',').map((s) => s.trim()).filter(Boolean),
};
