import { httpApi, json } from '../../lib/http.ts';

/** Liveness for load balancers and `npm start`: unauthenticated, no dependencies touched. */
export const handler = httpApi({
  'GET /health': async () => json(200, { status: 'ok', service: 'kmod-orchestrator', time: new Date().toISOString() }),
});
