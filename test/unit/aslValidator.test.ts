/**
 * Every state machine in the catalog is checked by an independent validator (asl-validator, the
 * Amazon States Language JSON schema plus path checks), besides the interpreter the local cloud
 * runs them on: a definition the interpreter tolerates but Step Functions would refuse fails here.
 */
import validator from 'asl-validator';
import { describe, expect, it } from 'vitest';
import { STATE_MACHINES } from '../../functions/catalog.ts';
import { readAsl } from './asl.ts';

describe('ASL validated by asl-validator', () => {
  it.each(Object.entries(STATE_MACHINES))('%s is valid Amazon States Language', (_id, spec) => {
    const result = validator(readAsl(spec.file));
    expect(result.errors, JSON.stringify(result.errors, null, 2)).toEqual([]);
    expect(result.isValid).toBe(true);
  });

  it('refuses a definition whose transition names a state that does not exist', () => {
    const def = readAsl(STATE_MACHINES.Pipeline.file) as unknown as { StartAt: string; States: Record<string, Record<string, unknown>> };
    const [first] = Object.keys(def.States);
    def.States[first] = { ...def.States[first], Next: 'NoSuchState', End: undefined };
    const result = validator(JSON.parse(JSON.stringify(def)));
    expect(result.isValid).toBe(false);
  });

  it('refuses a Task state without a Resource', () => {
    const result = validator({ StartAt: 'A', States: { A: { Type: 'Task', End: true } } });
    expect(result.isValid).toBe(false);
  });
});
