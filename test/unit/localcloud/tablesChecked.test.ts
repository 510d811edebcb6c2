/** With existing data the start checks the tables only when their definitions changed (localcloud/dynamodb.ts ensureTables). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, expect, it } from 'vitest';
import { TABLES, type TableSpec } from '../../../functions/lib/tables.ts';
import { ensureTables } from '../../../localcloud/dynamodb.ts';

const dir = mkdtempSync(join(tmpdir(), 'kmod-tables-checked-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const names = Object.fromEntries(Object.entries(TABLES).map(([k, spec]) => [k, `kmod-${spec.id}`]));
const specByName = new Map(Object.entries(TABLES).map(([k, spec]) => [names[k], spec as TableSpec]));

/** A DynamoDB that holds every table, up to date, and counts the calls by command. */
function fakeDynamo(tables: Set<string>) {
  const calls: string[] = [];
  const client = {
    async send(command: { constructor: { name: string }; input: { TableName?: string } }) {
      const name = command.constructor.name;
      calls.push(name);
      const spec = specByName.get(command.input.TableName ?? '');
      switch (name) {
        case 'ListTablesCommand':
          return { TableNames: [...tables] };
        case 'CreateTableCommand':
          tables.add(command.input.TableName!);
          return {};
        case 'DescribeTableCommand':
          return { Table: { StreamSpecification: { StreamEnabled: true }, GlobalSecondaryIndexes: spec!.indexes.map((i) => ({ IndexName: i.name })) } };
        case 'DescribeTimeToLiveCommand':
          return { TimeToLiveDescription: { TimeToLiveStatus: 'ENABLED' } };
        default:
          return {};
      }
    },
  };
  return { client: client as unknown as DynamoDBClient, calls };
}

it('checks every table once, then lists them only, until a definition changes or a table is missing', async () => {
  const checked = join(dir, 'tables-checked');
  const tables = new Set(Object.values(names));
  const count = Object.keys(TABLES).length;

  const first = fakeDynamo(tables);
  await ensureTables(first.client, names, checked);
  expect(first.calls.filter((c) => c === 'DescribeTableCommand')).toHaveLength(count);
  expect(first.calls.filter((c) => c === 'DescribeTimeToLiveCommand')).toHaveLength(count);

  const second = fakeDynamo(tables);
  await ensureTables(second.client, names, checked);
  expect(second.calls).toEqual(['ListTablesCommand']);

  // A table gone (a data directory from elsewhere): created, and the others checked again.
  const missing = names.deployments;
  tables.delete(missing);
  const third = fakeDynamo(tables);
  await ensureTables(third.client, names, checked);
  expect(third.calls.filter((c) => c === 'CreateTableCommand')).toHaveLength(1);
  expect(third.calls.filter((c) => c === 'DescribeTableCommand')).toHaveLength(count - 1);
  expect(tables.has(missing)).toBe(true);

  // Definitions other than the ones last checked (another version of tables.ts): checked again.
  writeFileSync(checked, 'an older fingerprint');
  const fourth = fakeDynamo(tables);
  await ensureTables(fourth.client, names, checked);
  expect(fourth.calls.filter((c) => c === 'DescribeTableCommand')).toHaveLength(count);

  // Without a checked file (npm run restore): always checked.
  const fifth = fakeDynamo(tables);
  await ensureTables(fifth.client, names);
  expect(fifth.calls.filter((c) => c === 'DescribeTableCommand')).toHaveLength(count);
});
