/**
 * DynamoDB condition expressions built from small named parts, each carrying the placeholders it
 * uses, so a write's condition reads as what it means (`or(notExists('rollback'), ...)`) and
 * composing parts cannot silently bind one placeholder to two values.
 */

export interface Condition {
  expression: string;
  names?: Record<string, string>;
  values?: Record<string, unknown>;
}

/** The condition fields of a Put, Update or Delete. Empty maps are left out: DynamoDB rejects them. */
export interface ConditionInput {
  ConditionExpression: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Record<string, unknown>;
}

const placeholder = (s: string) => s.replace(/[^A-Za-z0-9_]/g, '_');
const pathOf = (path: string[]) => ({
  expression: path.map((p) => `#${placeholder(p)}`).join('.'),
  names: Object.fromEntries(path.map((p) => [`#${placeholder(p)}`, p])),
});

/** The building blocks; a caller names its own conditions from these (e.g. `newKey: notExists('key')`). */
export const CONDITIONS = {
  notExists: (attribute: string): Condition => {
    const p = pathOf([attribute]);
    return { expression: `attribute_not_exists(${p.expression})`, names: p.names };
  },
  /** `path = value`; the value placeholder is derived from path and value, so equal parts merge. */
  equals: (path: string[], value: string | number): Condition => {
    const p = pathOf(path);
    const v = `:${placeholder([...path, String(value)].join('_'))}`;
    return { expression: `${p.expression} = ${v}`, names: p.names, values: { [v]: value } };
  },
  lessThan: (path: string[], value: number): Condition => {
    const p = pathOf(path);
    const v = `:${placeholder([...path, 'lt'].join('_'))}`;
    return { expression: `${p.expression} < ${v}`, names: p.names, values: { [v]: value } };
  },
};

/** Merge placeholder maps; one placeholder bound to two different things is a programming error. */
export function mergePlaceholders<T>(maps: (Record<string, T> | undefined)[], kind: string): Record<string, T> | undefined {
  const out: Record<string, T> = {};
  for (const map of maps) {
    for (const [k, v] of Object.entries(map ?? {})) {
      if (k in out && JSON.stringify(out[k]) !== JSON.stringify(v)) throw new Error(`${kind} placeholder ${k} is bound to two values`);
      out[k] = v;
    }
  }
  return Object.keys(out).length ? out : undefined;
}

function compose(op: 'AND' | 'OR', parts: Condition[]): Condition {
  if (parts.length === 0) throw new Error(`${op} of no conditions`);
  if (parts.length === 1) return parts[0];
  return {
    expression: parts.map((p) => `(${p.expression})`).join(` ${op} `),
    names: mergePlaceholders(
      parts.map((p) => p.names),
      'name',
    ),
    values: mergePlaceholders(
      parts.map((p) => p.values),
      'value',
    ),
  };
}

export const and = (...parts: Condition[]): Condition => compose('AND', parts);
export const or = (...parts: Condition[]): Condition => compose('OR', parts);

export function conditionInput(c: Condition): ConditionInput {
  const names = mergePlaceholders([c.names], 'name');
  const values = mergePlaceholders([c.values], 'value');
  return { ConditionExpression: c.expression, ...(names ? { ExpressionAttributeNames: names } : {}), ...(values ? { ExpressionAttributeValues: values } : {}) };
}

/** An update's own expression and placeholders, with a condition added (placeholders merged). */
export function withCondition<U extends { ExpressionAttributeNames?: Record<string, string>; ExpressionAttributeValues?: Record<string, unknown> }>(
  update: U,
  c: Condition,
): U & ConditionInput {
  const names = mergePlaceholders([update.ExpressionAttributeNames, c.names], 'name');
  const values = mergePlaceholders([update.ExpressionAttributeValues, c.values], 'value');
  return { ...update, ConditionExpression: c.expression, ExpressionAttributeNames: names, ExpressionAttributeValues: values };
}
