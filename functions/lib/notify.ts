/**
 * Email through SNS. Approval requests go to the approver topic, one message per approver with
 * `approver` and `environment` attributes (each approver's email subscription filters on its own
 * id, so every approver gets personal links). Outcomes go to the notification topic with a
 * `userId` attribute for the person concerned.
 */
import { PublishCommand } from '@aws-sdk/client-sns';
import { notifications } from './aws.ts';
import { config } from './config.ts';

export async function publishToApprover(approver: string, environment: string, subject: string, message: string): Promise<void> {
  await notifications().send(
    new PublishCommand({
      TopicArn: config.approverTopicArn(),
      Subject: subject.slice(0, 99),
      Message: message,
      MessageAttributes: { approver: { DataType: 'String', StringValue: approver }, environment: { DataType: 'String', StringValue: environment } },
    }),
  );
}

export async function notifyUser(userId: string, subject: string, message: string): Promise<void> {
  await notifications().send(
    new PublishCommand({
      TopicArn: config.notificationTopicArn(),
      Subject: subject.slice(0, 99),
      Message: message,
      MessageAttributes: { userId: { DataType: 'String', StringValue: userId } },
    }),
  );
}
