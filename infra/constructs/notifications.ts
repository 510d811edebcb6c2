/**
 * The SNS topics: approval requests to approvers, outcomes to requesters (filtered per subscriber),
 * and the custom resource that keeps people's email subscriptions in step with the approver lists
 * on every deploy (functions/handlers/tasks/syncSubscriptions.ts).
 */
import {
  CustomResource,
  RemovalPolicy,
  type aws_kms as kms,
  type aws_lambda as lambda,
  aws_logs as logs,
  aws_sns as sns,
  custom_resources as cr,
} from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { Layer } from './layer.ts';

export class Notifications extends Layer {
  readonly approverTopic: sns.Topic;
  readonly notificationTopic: sns.Topic;

  constructor(scope: Construct, id: string, props: { key: kms.IKey }) {
    super(scope, id);
    this.approverTopic = new sns.Topic(this, 'ApproverTopic', { displayName: 'kmod approvals', masterKey: props.key, enforceSSL: true });
    this.notificationTopic = new sns.Topic(this, 'NotificationTopic', { displayName: 'kmod notifications', masterKey: props.key, enforceSSL: true });
  }

  /**
   * Run the subscription sync on every deploy that changes the approver lists (and on the first):
   * a custom resource whose properties are the lists and the topics. Users an Admin creates or
   * changes later are synchronised by the Admin API itself.
   */
  syncSubscriptionsWith(fn: lambda.IFunction, props: { approvers: string; key: kms.IKey }): CustomResource {
    const provider = new cr.Provider(this, 'EmailSubscriptionsProvider', {
      onEventHandler: fn,
      providerFunctionEnvEncryption: props.key,
      logGroup: new logs.LogGroup(this, 'EmailSubscriptionsProviderLogs', {
        retention: logs.RetentionDays.ONE_MONTH,
        encryptionKey: props.key,
        removalPolicy: RemovalPolicy.DESTROY,
      }),
    });
    return new CustomResource(this, 'EmailSubscriptions', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::EmailSubscriptions',
      properties: { Approvers: props.approvers, ApproverTopicArn: this.approverTopic.topicArn, NotificationTopicArn: this.notificationTopic.topicArn },
    });
  }
}
