/**
 * EventBridge, locally, for what the product subscribes to: the rules of EXECUTION_STATUS_RULES
 * (functions/catalog.ts), matched against the events local Step Functions sends, each delivered
 * to its target function in-process. Delivery is retried a few times, as EventBridge retries a
 * failing Lambda target; an event still not delivered makes `put` fail (the sender keeps it and
 * sends it again at the next start).
 */
import { EXECUTION_STATUS_RULES, executionStatusPattern, type StateMachineId } from '../functions/catalog.ts';
import { functionArn, type LocalLambda } from './lambda.ts';
import { stateMachineArn } from './stepfunctions.ts';

type Pattern = { [key: string]: readonly unknown[] | Pattern };

interface Rule {
  name: string;
  pattern: Pattern;
  target: string;
}

/**
 * Does the event match an EventBridge pattern? The subset the catalog's rules use: a list of
 * exact values (a field holding one of them; an array field holding any of them), and nested
 * objects for nested fields. A field the pattern names must be present.
 */
export function matchesPattern(pattern: Pattern, event: unknown): boolean {
  if (!event || typeof event !== 'object') return false;
  return Object.entries(pattern).every(([key, expected]) => {
    const value = (event as Record<string, unknown>)[key];
    if (Array.isArray(expected)) {
      const values = Array.isArray(value) ? value : [value];
      return values.some((v) => expected.includes(v));
    }
    return matchesPattern(expected as Pattern, value);
  });
}

export class LocalEventBus {
  private readonly rules: Rule[];

  constructor(
    private readonly lambda: Pick<LocalLambda, 'invoke'>,
    private readonly opts: { retryDelaysMs?: number[]; log?: (line: string) => void } = {},
  ) {
    this.rules = Object.entries(EXECUTION_STATUS_RULES).map(([name, rule]) => ({
      name,
      pattern: executionStatusPattern(rule, (id: StateMachineId) => stateMachineArn(`kmod-${id}`)),
      target: functionArn(rule.fn),
    }));
  }

  /** Deliver an event to every matching rule's target. */
  async put(event: unknown): Promise<void> {
    const delays = this.opts.retryDelaysMs ?? [1000, 5000];
    for (const rule of this.rules.filter((r) => matchesPattern(r.pattern, event))) {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.lambda.invoke(rule.target, event);
          break;
        } catch (e) {
          if (attempt >= delays.length) {
            this.opts.log?.(`event rule ${rule.name}: ${rule.target} failed ${attempt + 1} times: ${(e as Error).message}`);
            throw e;
          }
          await new Promise((r) => setTimeout(r, delays[attempt]));
        }
      }
    }
  }
}
