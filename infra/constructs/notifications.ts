/** The SNS topics: approval requests to approvers, outcomes to requesters (filtered per subscriber). */
import { type aws_kms as kms, aws_sns as sns } from 'aws-cdk-lib';
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
}
