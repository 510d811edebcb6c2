import { App, type StackProps } from 'aws-cdk-lib';
import { OrchestratorStack, settingsFromContext } from '../../infra/stack.ts';

/**
 * The stack as `cdk synth` builds it from this context. Bundling is skipped: the infra tests read
 * resources and policies, not the functions' code, and bundling every function again is slow.
 */
export function synthStack(context: Record<string, unknown>, id = 'KmodOrchestrator', props?: StackProps): OrchestratorStack {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  return new OrchestratorStack(
    app,
    id,
    settingsFromContext((k) => context[k]),
    props,
  );
}
