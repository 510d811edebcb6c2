/** The CDK app: `npm run synth` (offline, no credentials) and `npx cdk deploy`. */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ContextError, OrchestratorStack, settingsFromContext } from './stack.ts';

const app = new App();
let settings: ReturnType<typeof settingsFromContext>;
try {
  settings = settingsFromContext((k) => app.node.tryGetContext(k));
} catch (e) {
  // What to pass is the whole answer; a stack trace would only bury it.
  if (!(e instanceof ContextError)) throw e;
  console.error(e.message);
  process.exit(1);
}
new OrchestratorStack(app, 'KmodOrchestrator', settings, {
  env: process.env.CDK_DEFAULT_ACCOUNT ? { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION } : undefined,
  description: 'kmod-orchestrator: signed kernel-module deployments across four environments',
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
