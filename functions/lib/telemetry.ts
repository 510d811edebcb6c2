import { Logger } from '@aws-lambda-powertools/logger';
import { Tracer } from '@aws-lambda-powertools/tracer';

export const logger = new Logger({ serviceName: 'kmod-orchestrator' });
// Tracing is on in Lambda (X-Ray); the local cloud sets POWERTOOLS_TRACE_ENABLED=false.
export const tracer = new Tracer({ serviceName: 'kmod-orchestrator' });
