/**
 * AWS WAF in front of the API stage, from functions/webAcl.ts (the local gateway enforces the same
 * rate and size rules): a rate-based rule per source address that sees every request, refused
 * ones included (issue 15 defect 4); a body-size limit; the AWS managed common rule set and the
 * known-bad-inputs set. Blocks answer JSON `{ code, message }` like the API. Logged to CloudWatch
 * Logs with the Authorization header redacted.
 */
import { Stack, ArnFormat, aws_logs as logs, aws_wafv2 as wafv2, type aws_apigateway as apigw, type aws_kms as kms } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { GATEWAY_SECURITY_HEADERS } from '../../functions/gatewayResponses.ts';
import { WAF_COUNTED_MANAGED_RULES, WAF_LARGE_BODY_ROUTES, WAF_MAX_BODY_BYTES, WAF_RESPONSES, type WafSettings } from '../../functions/webAcl.ts';
import { Layer } from './layer.ts';

export interface WebAclProps {
  settings: WafSettings;
  stage: apigw.Stage;
  key: kms.IKey;
}

const visibility = (metricName: string): wafv2.CfnWebACL.VisibilityConfigProperty => ({
  cloudWatchMetricsEnabled: true,
  sampledRequestsEnabled: true,
  metricName,
});

/** A block answered with one of WAF_RESPONSES (and the gateway's security headers). */
function blockWith(key: keyof typeof WAF_RESPONSES, headers: Record<string, string> = {}): wafv2.CfnWebACL.RuleActionProperty {
  return {
    block: {
      customResponse: {
        responseCode: WAF_RESPONSES[key].statusCode,
        customResponseBodyKey: key,
        responseHeaders: Object.entries({ ...GATEWAY_SECURITY_HEADERS, ...headers }).map(([name, value]) => ({ name, value })),
      },
    },
  };
}

const byteMatch = (field: wafv2.CfnWebACL.FieldToMatchProperty, value: string, positionalConstraint: 'EXACTLY' | 'ENDS_WITH') => ({
  byteMatchStatement: { fieldToMatch: field, searchString: value, positionalConstraint, textTransformations: [{ priority: 0, type: 'NONE' }] },
});

/** Requests to a route allowed a larger body. The stage name may precede the path, hence ENDS_WITH. */
function largeBodyRoutes(): wafv2.CfnWebACL.StatementProperty {
  const routes = WAF_LARGE_BODY_ROUTES.map((r) => ({
    andStatement: { statements: [byteMatch({ method: {} }, r.method, 'EXACTLY'), byteMatch({ uriPath: {} }, r.path, 'ENDS_WITH')] },
  }));
  return routes.length === 1 ? routes[0] : { orStatement: { statements: routes } };
}

const managedGroup = (name: string, priority: number, counted: string[] = []): wafv2.CfnWebACL.RuleProperty => ({
  name,
  priority,
  overrideAction: { none: {} },
  statement: {
    managedRuleGroupStatement: {
      vendorName: 'AWS',
      name,
      ruleActionOverrides: counted.length ? counted.map((rule) => ({ name: rule, actionToUse: { count: {} } })) : undefined,
    },
  },
  visibilityConfig: visibility(name),
});

export class WebAcl extends Layer {
  readonly acl: wafv2.CfnWebACL;

  constructor(scope: Construct, id: string, { settings, stage, key }: WebAclProps) {
    super(scope, id);
    this.acl = new wafv2.CfnWebACL(this, 'ApiWebAcl', {
      scope: 'REGIONAL',
      description: 'kmod-orchestrator API: rate per address, body size, AWS managed common and known-bad-inputs rules',
      defaultAction: { allow: {} },
      visibilityConfig: visibility('kmod-api'),
      // The body-size rule needs to see bodies up to its limit (WAF inspects 16 KB by default).
      associationConfig: { requestBody: { API_GATEWAY: { defaultSizeInspectionLimit: 'KB_64' } } },
      customResponseBodies: Object.fromEntries(
        Object.entries(WAF_RESPONSES).map(([k, r]) => [k, { contentType: 'APPLICATION_JSON', content: JSON.stringify({ code: r.code, message: r.message }) }]),
      ),
      rules: [
        {
          name: 'RatePerAddress',
          priority: 0,
          statement: { rateBasedStatement: { aggregateKeyType: 'IP', limit: settings.ratePerAddress, evaluationWindowSec: settings.windowSeconds } },
          action: blockWith('rateLimited', { 'Retry-After': String(settings.windowSeconds) }),
          visibilityConfig: visibility('RatePerAddress'),
        },
        {
          name: 'BodySizeLimit',
          priority: 1,
          statement: {
            andStatement: {
              statements: [
                {
                  sizeConstraintStatement: {
                    fieldToMatch: { body: { oversizeHandling: 'MATCH' } },
                    comparisonOperator: 'GT',
                    size: WAF_MAX_BODY_BYTES,
                    textTransformations: [{ priority: 0, type: 'NONE' }],
                  },
                },
                { notStatement: { statement: largeBodyRoutes() } },
              ],
            },
          },
          action: blockWith('bodyTooLarge'),
          visibilityConfig: visibility('BodySizeLimit'),
        },
        managedGroup('AWSManagedRulesCommonRuleSet', 2, Object.keys(WAF_COUNTED_MANAGED_RULES)),
        managedGroup('AWSManagedRulesKnownBadInputsRuleSet', 3),
      ],
    });
    new wafv2.CfnWebACLAssociation(this, 'ApiWebAclAssociation', { resourceArn: stage.stageArn, webAclArn: this.acl.attrArn });

    // WAF requires the log group's name to start with aws-waf-logs- and its ARN without the trailing :*.
    const logGroup = new logs.LogGroup(this, 'WafLogs', {
      logGroupName: `aws-waf-logs-${Stack.of(this).stackName}`,
      retention: logs.RetentionDays.ONE_YEAR,
      encryptionKey: key,
    });
    new wafv2.CfnLoggingConfiguration(this, 'ApiWebAclLogging', {
      resourceArn: this.acl.attrArn,
      logDestinationConfigs: [
        Stack.of(this).formatArn({ service: 'logs', resource: 'log-group', resourceName: logGroup.logGroupName, arnFormat: ArnFormat.COLON_RESOURCE_NAME }),
      ],
      redactedFields: [{ singleHeader: { Name: 'authorization' } }],
    });
  }
}
