import { z } from 'zod';
import { ENVIRONMENTS, STRATEGIES } from '../domain/environments.ts';
import { executionIdSchema } from './task.ts';

export const environmentInput = z.object({ executionId: executionIdSchema, environment: z.enum(ENVIRONMENTS) });
export const planInput = environmentInput.extend({ strategy: z.enum(STRATEGIES), batchSize: z.number().int().positive().optional() });
export const batchInput = environmentInput.extend({ batch: z.number().int().min(0) });
