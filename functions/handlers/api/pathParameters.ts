/**
 * The API's path parameters: each validated the same way on every route that has it, and documented
 * from here (scripts/openapi.ts), so the typed client (sdk/typescript) knows e.g. that an environment
 * is one of four names.
 */
import { z } from 'zod';
import { TOKEN_ID } from '../../domain/enrolment.ts';
import { ENVIRONMENTS } from '../../domain/environments.ts';
import { moduleNameSchema, semverSchema } from '../../domain/manifest.ts';

export const PATH_PARAMETERS = {
  executionId: z.string().regex(/^dep-[a-z0-9]{9}-[a-f0-9]{12}$/, 'is not a deployment id'),
  environment: z.enum(ENVIRONMENTS),
  moduleName: moduleNameSchema,
  version: semverSchema,
  nodeId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'is not a node id'),
  tokenId: z.string().regex(TOKEN_ID, 'is not an enrolment token id'),
  userId: z.string().min(1).max(128),
};
type Name = keyof typeof PATH_PARAMETERS;

/** The schema of a route's path parameters, for `parsePath`: `pathSchema('moduleName', 'version')`. */
export function pathSchema<K extends Name>(...names: K[]) {
  return z.object(Object.fromEntries(names.map((n) => [n, PATH_PARAMETERS[n]])) as { [P in K]: (typeof PATH_PARAMETERS)[P] });
}
