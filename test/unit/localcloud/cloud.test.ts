import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { substitute } from '../../../localcloud/cloud.ts';
import { STATE_MACHINES, FUNCTIONS, functionArnKey, stateMachineArnKey } from '../../../functions/catalog.ts';

describe('definition substitutions', () => {
  it('replaces every placeholder and refuses unknown ones', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: ASL definition placeholders, not template literals
    expect(substitute('{"R":"${AFunctionArn}"}', { AFunctionArn: 'arn:x' })).toBe('{"R":"arn:x"}');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: ASL definition placeholders, not template literals
    expect(() => substitute('${Missing}', {})).toThrow(/no substitution/);
  });

  it('every placeholder in every ASL file is declared in the catalog', () => {
    for (const spec of Object.values(STATE_MACHINES)) {
      const text = readFileSync(spec.file, 'utf8');
      const used = new Set([...text.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]));
      const declared = new Set([...spec.functions.map((f) => functionArnKey(f)), ...spec.stateMachines.map((s) => stateMachineArnKey(s))]);
      expect(used).toEqual(declared);
      for (const f of spec.functions) expect(FUNCTIONS[f]).toBeDefined();
    }
  });
});
