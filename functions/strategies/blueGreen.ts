import { otherColour, planBatches } from '../domain/strategy.ts';
import { defineStrategy, ENVIRONMENT_STEPS } from './types.ts';

/** Deploy the idle colour, smoke-test it, then switch traffic to it. */
export const blueGreen = defineStrategy({
  name: 'BlueGreen',
  description: 'deploy the idle colour, smoke-test it, switch traffic',
  stateMachine: {
    id: 'BlueGreen',
    file: 'statemachines/bluegreen.asl.json',
    functions: [...ENVIRONMENT_STEPS, 'StabiliseBatches', 'SmokeTest', 'SwitchTraffic'],
  },
  mapConcurrency: { DeployIdleColour: 20, VerifyIdleColour: 20 },
  usesColours: true,
  prepare: async (environment, deps) => ({ activeColour: await deps.activeColour(environment) }),
  plan: (nodes, s, { activeColour = 'blue' }) => {
    const idleColour = otherColour(activeColour);
    const idle = nodes.filter((n) => n.colour === idleColour).map((n) => n.nodeId);
    if (idle.length === 0) throw new Error(`no ${idleColour} nodes to deploy to: a blue-green environment needs nodes of both colours`);
    return { batches: planBatches(idle, s.nodesPerBatch), activeColour, idleColour };
  },
});
