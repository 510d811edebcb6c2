/** cdk-nag (AwsSolutions) findings the stack accepts, acknowledged on the resources that raise them. */
import { Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { AwsSolutionsChecks } from 'cdk-nag';

/**
 * cdk-nag findings accepted on purpose. Each entry says which findings (by rule id and finding)
 * and why; they are acknowledged on the exact resources that raise them, so any other finding
 * still fails the build (test/infra/stack.test.ts).
 */
export const ACCEPTED_NAG_FINDINGS: { match: RegExp; reason: string }[] = [
  {
    match:
      /^AwsSolutions-IAM4\[Policy::arn:<AWS::Partition>:iam::aws:policy\/service-role\/(AWSLambdaBasicExecutionRole|AWSLambdaVPCAccessExecutionRole|AmazonAPIGatewayPushToCloudWatchLogs)\]$/,
    reason: "AWS-managed minimum for Lambda logging (and network interfaces for the functions in the agents' VPC) and API Gateway log delivery.",
  },
  { match: /^AwsSolutions-IAM5\[Resource::<\w+\.Arn>\/index\/\*\]$/, reason: "CDK table grants cover the table's own GSIs (index/*) and nothing else." },
  {
    match: /^AwsSolutions-IAM5\[Action::kms:(ReEncrypt|GenerateDataKey)\*\]$/,
    reason: 'CDK KMS grants on the single data key; the wildcard spans KMS action variants, not keys.',
  },
  {
    match: /^AwsSolutions-IAM5\[Action::s3:(GetObject|GetBucket|List|DeleteObject|Abort)\*\]$/,
    reason: 'CDK bucket grants on the artifact bucket only: variants of object reads and writes.',
  },
  {
    match: /^AwsSolutions-IAM5\[Resource::<Artifacts\w+\.Arn>\/\*\]$/,
    reason: 'Objects of the artifact bucket (module artifacts under artifacts/, and modules/ for versions registered before).',
  },
  {
    // The Region and account are tokens, or literal when the stack has an explicit environment.
    match:
      /^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:s3:::kmod-audit-export-(<AWS::AccountId>|\d{12})-(<AWS::Region>|[a-z]{2}(-[a-z]+)+-\d)\/audit\/\*\]$/,
    reason:
      'kmod-ExportAudit writes one object per UTC day under audit/dt=YYYY-MM-DD/ (docs/adr/0033-audit-retention-and-export.md): the keys are made from the day, so the grant names the audit/ prefix, with s3:PutObject only (no read, list or delete).',
  },
  { match: /^AwsSolutions-IAM5\[Resource::<\w+\.Arn>:\*\]$/, reason: "Lambda invoke grants include the function's versions and aliases (qualifier :*)." },
  {
    // The Region and account are tokens, or literal when the stack has an explicit environment (cdk deploy with credentials, cdklocal).
    match: /^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:states:(<AWS::Region>|[a-z]{2}(-[a-z]+)+-\d):(<AWS::AccountId>|\d{12}):execution:kmod-\w+:\*\]$/,
    reason: 'Describe/stop the executions of one child state machine; execution names are not known in advance.',
  },
  {
    match: /^AwsSolutions-IAM5\[Resource::\*\]$/,
    reason:
      'X-Ray trace upload, Step Functions log delivery, secretsmanager:GetRandomPassword (granted by CDK with each rotation schedule) and the SNS subscription actions of the email-subscription sync (Get/SetSubscriptionAttributes, Unsubscribe) have no resource-level permissions.',
  },
  {
    // Tokens, or literal Region and account as above.
    match:
      /^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:execute-api:(<AWS::Region>|[a-z]{2}(-[a-z]+)+-\d):(<AWS::AccountId>|\d{12}):<WebSocketApi\w+>\/ws\/\*\/@connections\/\*\]$/,
    reason:
      'execute-api:ManageConnections on the connections of the WebSocket API’s one stage: connection ids are made by API Gateway at connect time, so they cannot be named in advance (the method segment covers POST, GET and DELETE of @connections only).',
  },
  { match: /^AwsSolutions-L1$/, reason: 'Runtime pinned to nodejs22.x deliberately: the code targets it; newer runtimes come through a reviewed change.' },
  {
    match: /^AwsSolutions-APIG2$/,
    reason: 'Each handler validates its input with zod and answers 400 with a JSON error; request validators would duplicate that.',
  },
  {
    match: /^AwsSolutions-CFR1$/,
    reason:
      'The web console (docs/adr/0035-web-console.md) is for the operators, wherever they are; it serves static files, and everything behind it needs a Cognito sign-in.',
  },
  {
    match: /^AwsSolutions-CFR2$/,
    reason:
      "The console's distribution serves the static bundle; its /api/* behaviour reaches the API's stage, which the API's own regional web ACL guards (infra/constructs/webAcl.ts). A CloudFront web ACL would have to live in us-east-1, in another stack.",
  },
  {
    match: /^AwsSolutions-CFR4$/,
    reason:
      'The console is served on its *.cloudfront.net name, whose default certificate cannot set the viewer TLS minimum (TLSv1.2_2021 is set and applies once an alternate domain with an ACM certificate is configured).',
  },
  {
    match:
      /^AwsSolutions-IAM5\[Resource::(arn:<AWS::Partition>:s3:::cdk-[a-z0-9]+-assets-(<AWS::AccountId>|\d{12})-(<AWS::Region>|[a-z]{2}(-[a-z]+)+-\d)|<ConsoleBucket\w+\.Arn>)\/\*\]$/,
    reason:
      "CDK's BucketDeployment copies the console bundle: it reads the asset's objects from the bootstrap assets bucket and writes and prunes the objects of the console bucket (object keys are the bundle's file names).",
  },
  {
    match: /^AwsSolutions-(APIG4|COG4)$/,
    reason:
      'Public by design (GET /health, GET /metrics, signed single-use approval links), or guarded by the JWT REQUEST authorizer that verifies Cognito tokens with aws-jwt-verify (COG4 asks for a Cognito authorizer specifically).',
  },
];

export function acknowledgeNagFindings(scope: IConstruct): void {
  const report = new AwsSolutionsChecks().validateScope(scope);
  const byPath = new Map<string, IConstruct>(scope.node.findAll().map((c) => [c.node.path, c]));
  for (const v of report.violations) {
    const rule = v.ruleName ?? '';
    const accepted = ACCEPTED_NAG_FINDINGS.find((a) => a.match.test(rule));
    if (!accepted) continue;
    for (const r of v.violatingResources) {
      const construct = r.constructPath ? byPath.get(r.constructPath) : undefined;
      if (!construct) throw new Error(`cdk-nag finding on an unknown construct: ${r.constructPath}`);
      Validations.of(construct).acknowledge({ id: rule, reason: accepted.reason });
    }
  }
}
