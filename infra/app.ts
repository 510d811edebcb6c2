/** The CDK app: `npm run synth` (offline, no credentials) and `npx cdk deploy`. */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { OrchestratorStack, settingsFromContext } from './stack.ts';

const app = new App();
new OrchestratorStack(
  app,
  'KmodOrchestrator',
  settingsFromContext((k) => app.node.tryGetContext(k)),
  {
    env: process.env.CDK_DEFAULT_ACCOUNT ? { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION } : undefined,
    description: 'kmod-orchestrator: signed kernel-module deployments across four environments',
  },
);
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
