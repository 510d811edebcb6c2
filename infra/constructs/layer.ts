/**
 * Layers group the stack's code, not its template: OrchestratorStack leaves them out of logical
 * IDs, so every resource keeps the ID it had when the stack was one flat constructor. A changed
 * logical ID makes CloudFormation replace the resource: a new, empty table or user pool, and a
 * failed update for the named ones (kmod-* functions and state machines).
 */
import { createHash } from 'node:crypto';
import { type CfnElement, Stack } from 'aws-cdk-lib';
import { Construct } from 'constructs';

export class Layer extends Construct {}

/** The logical ID CDK would give the element if no layer stood between it and its stack. */
export function logicalIdOutsideLayers(element: CfnElement): string {
  const scopes = element.node.scopes;
  const path = scopes
    .slice(scopes.indexOf(Stack.of(element)) + 1)
    .filter((s) => !(s instanceof Layer))
    .map((s) => s.node.id);
  return makeUniqueId(path);
}

/**
 * CDK's own algorithm (aws-cdk-lib core/lib/private/uniqueid.ts, not exported): the path's ids
 * without "Default", a readable part without "Resource", and 8 hex digits of the path's MD5.
 * test/infra/stack.test.ts pins the results for the stateful resources.
 */
function makeUniqueId(components: string[]): string {
  const parts = components.filter((c) => c !== 'Default');
  if (parts.length === 0) throw new Error('no path components to make a logical ID from');
  const alnum = (s: string) => s.replace(/[^A-Za-z0-9]/g, '');
  if (parts.length === 1 && alnum(parts[0]).length <= 255) return alnum(parts[0]);
  const hash = createHash('md5').update(parts.join('/')).digest('hex').slice(0, 8).toUpperCase();
  const human: string[] = [];
  for (const p of parts) if (human.length === 0 || !human[human.length - 1].endsWith(p)) human.push(p);
  return (
    human
      .filter((p) => p !== 'Resource')
      .map(alnum)
      .join('')
      .slice(0, 240) + hash
  );
}
