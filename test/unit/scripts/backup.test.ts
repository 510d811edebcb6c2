/** The local backup format (scripts/lib/backup.ts): item encoding, canonical table files, the manifest check. */
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import {
  BACKUP_FORMAT,
  canonicalNumber,
  checkBackup,
  itemFromJson,
  itemToJson,
  type Manifest,
  parseTableFile,
  readManifest,
  sha256Of,
  tableFile,
} from '../../../scripts/lib/backup.ts';

const item: Record<string, AttributeValue> = {
  executionId: { S: 'dep-1' },
  attempts: { N: '3.50' },
  ok: { BOOL: true },
  none: { NULL: true },
  tags: { SS: ['b', 'a'] },
  digest: { B: new Uint8Array([0, 1, 254, 255]) },
  nested: {
    M: { list: { L: [{ N: '1' }, { B: new Uint8Array([7]) }, { M: { x: { S: 'y' } } }] }, keys: { BS: [new Uint8Array([1]), new Uint8Array([2, 3])] } },
  },
};

describe('DynamoDB JSON items', () => {
  it('round-trips every attribute type, binaries as base64', () => {
    const json = itemToJson(item);
    expect(json.digest).toEqual({ B: 'AAH+/w==' });
    expect(json.attempts).toEqual({ N: '3.5' });
    const back = itemFromJson(JSON.parse(JSON.stringify(json)));
    expect(itemToJson(back)).toEqual(json);
    expect(Buffer.from((back.nested.M?.list.L?.[1].B as Uint8Array) ?? []).toString('hex')).toBe('07');
  });

  it('writes numbers in one canonical form and sets in order, as DynamoDB compares them', () => {
    expect(
      ['2.30', '+002.300', '1.2E-3', '1.2e+3', '-0', '0.000', '-15', '100', '.5', '5.', '123.456E1', '-1.50E-2', '12345678901234567890123456789012345678'].map(
        canonicalNumber,
      ),
    ).toEqual(['2.3', '2.3', '0.0012', '1200', '0', '0', '-15', '100', '0.5', '5', '1234.56', '-0.015', '12345678901234567890123456789012345678']);
    expect(() => canonicalNumber('1.2.3')).toThrow(/not a DynamoDB number/);
    expect(() => canonicalNumber('.')).toThrow(/not a DynamoDB number/);
    const one = tableFile([{ id: { S: 'a' }, n: { N: '2.30' }, ns: { NS: ['10', '9.0'] }, ss: { SS: ['b', 'a'] } }]);
    const other = tableFile([{ id: { S: 'a' }, n: { N: '2.3' }, ns: { NS: ['9', '10'] }, ss: { SS: ['a', 'b'] } }]);
    expect(one).toBe(other);
    expect(one).toBe('{"id":{"S":"a"},"n":{"N":"2.3"},"ns":{"NS":["10","9"]},"ss":{"SS":["a","b"]}}\n');
  });

  it('writes the same file whatever order the Scan returned the items and their attributes in', () => {
    const a = { id: { S: 'a' }, v: { N: '1' } };
    const b = { v: { N: '2' }, id: { S: 'b' } };
    const one = tableFile([a, b]);
    const other = tableFile([{ id: b.id, v: b.v }, a]);
    expect(one).toBe(other);
    expect(one.split('\n')).toEqual(['{"id":{"S":"a"},"v":{"N":"1"}}', '{"id":{"S":"b"},"v":{"N":"2"}}', '']);
    expect(parseTableFile(one)).toHaveLength(2);
    expect(tableFile([])).toBe('');
  });
});

describe('the manifest check', () => {
  function backupDir() {
    const dir = mkdtempSync(join(tmpdir(), 'kmod-backup-unit-'));
    const text = tableFile([{ id: { S: 'a' } }, { id: { S: 'b' } }]);
    mkdirSync(join(dir, 'tables'));
    writeFileSync(join(dir, 'tables/kmod-X.jsonl'), text);
    mkdirSync(join(dir, 's3/bucket'), { recursive: true });
    writeFileSync(join(dir, 's3/bucket/a2V5'), 'object');
    mkdirSync(join(dir, 'files/secrets'), { recursive: true });
    writeFileSync(join(dir, 'files/secrets/k.json'), '{}');
    const manifest: Manifest = {
      format: BACKUP_FORMAT,
      createdAt: '2026-11-29T00:00:00.000Z',
      source: { dataDir: '/d', apiUrl: 'http://a', dynamodbUrl: 'http://d', servicesUrl: 'http://s' },
      tables: [{ key: 'x', name: 'kmod-X', file: 'tables/kmod-X.jsonl', items: 2, sha256: sha256Of(text) }],
      objects: [{ bucket: 'bucket', key: 'key', file: 's3/bucket/a2V5', bytes: 6, sha256: sha256Of('object') }],
      files: [{ path: 'secrets/k.json', bytes: 2, sha256: sha256Of('{}') }],
    };
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
    return { dir, manifest };
  }

  it('passes a whole backup', () => {
    const { dir } = backupDir();
    expect(checkBackup(dir, readManifest(dir))).toEqual([]);
  });

  it('finds a changed item, a wrong count, a changed object and file, and a missing file', () => {
    const { dir, manifest } = backupDir();
    writeFileSync(join(dir, 'tables/kmod-X.jsonl'), tableFile([{ id: { S: 'a' } }, { id: { S: 'c' } }]));
    writeFileSync(join(dir, 's3/bucket/a2V5'), 'OBJECT');
    writeFileSync(join(dir, 'files/secrets/k.json'), '[]');
    const problems = checkBackup(dir, { ...manifest, tables: [{ ...manifest.tables[0], items: 3 }] });
    expect(problems).toEqual([
      'tables/kmod-X.jsonl: 2 items, the manifest says 3',
      expect.stringMatching(/^tables\/kmod-X\.jsonl: SHA-256 [0-9a-f]{64}, the manifest says/),
      's3/bucket/a2V5: not the object s3://bucket/key the manifest describes',
      'files/secrets/k.json: not the file the manifest describes',
    ]);
    expect(checkBackup(dir, { ...manifest, files: [{ path: 'secrets/gone.json', bytes: 1, sha256: sha256Of('x') }], tables: [], objects: [] })).toEqual([
      'files/secrets/gone.json: missing',
    ]);
  });

  it('refuses a manifest that is not one, or whose paths leave the backup', () => {
    const { dir, manifest } = backupDir();
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ ...manifest, files: [{ path: '../../etc/passwd', bytes: 1, sha256: sha256Of('x') }] }));
    expect(() => readManifest(dir)).toThrow(/must stay inside the backup/);
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ ...manifest, format: 'other/1' }));
    expect(() => readManifest(dir)).toThrow(/not a kmod-local-backup\/1 manifest/);
    expect(() => readManifest(join(dir, 'nowhere'))).toThrow(/does not exist/);
  });
});
