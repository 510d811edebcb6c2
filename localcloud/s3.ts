/**
 * S3, locally: the object calls the product makes (CreateBucket, PutObject, GetObject,
 * HeadObject, DeleteObject) and the listings an operator's `aws s3 ls` makes (ListBuckets,
 * ListObjectsV2), path-style, with objects kept on disk. Presigned GETs are honoured
 * until they expire (signatures are not checked, as in LocalStack's default).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';

const XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const esc = (s: string) => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

function xmlOk(res: ServerResponse, body: string): void {
  const text = `<?xml version="1.0" encoding="UTF-8"?>\n${body}`;
  res.writeHead(200, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function xmlError(res: ServerResponse, status: number, code: string, message: string): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** aws-chunked bodies (streaming uploads with trailing checksums) carry the payload in chunks. */
function decodeAwsChunked(raw: Buffer): Buffer {
  const out: Buffer[] = [];
  let pos = 0;
  for (;;) {
    const eol = raw.indexOf('\r\n', pos);
    if (eol < 0) break;
    const size = parseInt(raw.subarray(pos, eol).toString().split(';')[0], 16);
    if (!size) break;
    out.push(raw.subarray(eol + 2, eol + 2 + size));
    pos = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}

export class LocalS3 {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  private objectPath(bucket: string, key: string): string {
    return join(this.dir, bucket, Buffer.from(key).toString('base64url'));
  }

  createBucket(bucket: string): void {
    mkdirSync(join(this.dir, bucket), { recursive: true });
  }

  /** Direct access for tools and tests (the same bytes a GetObject returns). */
  read(bucket: string, key: string): Buffer | undefined {
    const p = this.objectPath(bucket, key);
    return existsSync(p) ? readFileSync(p) : undefined;
  }

  write(bucket: string, key: string, bytes: Buffer): void {
    this.createBucket(bucket);
    writeFileSync(this.objectPath(bucket, key), bytes);
  }

  private listBuckets(res: ServerResponse): void {
    const buckets = readdirSync(this.dir, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => `<Bucket><Name>${esc(d.name)}</Name><CreationDate>${statSync(join(this.dir, d.name)).birthtime.toISOString()}</CreationDate></Bucket>`)
      .join('');
    xmlOk(
      res,
      `<ListAllMyBucketsResult xmlns="${XMLNS}"><Owner><ID>local</ID><DisplayName>local</DisplayName></Owner><Buckets>${buckets}</Buckets></ListAllMyBucketsResult>`,
    );
  }

  /** ListObjectsV2 with prefix, delimiter (common prefixes), max-keys and continuation, in key order as S3 lists. */
  private listObjects(bucket: string, q: URLSearchParams, res: ServerResponse): void {
    const prefix = q.get('prefix') ?? '';
    const delimiter = q.get('delimiter') ?? '';
    const maxKeys = Math.min(1000, Math.max(0, Number(q.get('max-keys') ?? 1000) || 0));
    const after = q.get('continuation-token') ? Buffer.from(q.get('continuation-token')!, 'base64url').toString() : (q.get('start-after') ?? '');
    const dir = join(this.dir, bucket);
    const keys = readdirSync(dir)
      .map((f) => Buffer.from(f, 'base64url').toString())
      .filter((k) => k.startsWith(prefix) && k > after)
      .sort();
    const contents: string[] = [];
    const prefixes = new Set<string>();
    let last = '';
    let truncated = false;
    for (const k of keys) {
      if (contents.length + prefixes.size >= maxKeys) {
        truncated = true;
        break;
      }
      const cut = delimiter ? k.indexOf(delimiter, prefix.length) : -1;
      if (cut >= 0) prefixes.add(k.slice(0, cut + delimiter.length));
      else {
        const st = statSync(this.objectPath(bucket, k));
        const etag = createHash('md5')
          .update(readFileSync(this.objectPath(bucket, k)))
          .digest('hex');
        contents.push(
          `<Contents><Key>${esc(k)}</Key><LastModified>${st.mtime.toISOString()}</LastModified><ETag>&quot;${etag}&quot;</ETag><Size>${st.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
        );
      }
      last = k;
    }
    const common = [...prefixes].map((p) => `<CommonPrefixes><Prefix>${esc(p)}</Prefix></CommonPrefixes>`).join('');
    const next = truncated ? `<NextContinuationToken>${Buffer.from(last).toString('base64url')}</NextContinuationToken>` : '';
    xmlOk(
      res,
      `<ListBucketResult xmlns="${XMLNS}"><Name>${esc(bucket)}</Name><Prefix>${esc(prefix)}</Prefix>${delimiter ? `<Delimiter>${esc(delimiter)}</Delimiter>` : ''}<KeyCount>${contents.length + prefixes.size}</KeyCount><MaxKeys>${maxKeys}</MaxKeys><IsTruncated>${truncated}</IsTruncated>${next}${contents.join('')}${common}</ListBucketResult>`,
    );
  }

  async handle(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://s3.local');
    const [, bucket, ...rest] = url.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    if (!bucket && req.method === 'GET') return this.listBuckets(res);
    if (!bucket) return xmlError(res, 400, 'InvalidRequest', 'path-style bucket required');
    const expires = url.searchParams.get('X-Amz-Expires');
    const date = url.searchParams.get('X-Amz-Date');
    if (expires && date) {
      const t = Date.parse(date.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
      if (Date.now() > t + Number(expires) * 1000) return xmlError(res, 403, 'AccessDenied', 'Request has expired');
    }
    const bucketDir = join(this.dir, bucket);
    if (!key) {
      if (req.method === 'PUT') {
        this.createBucket(bucket);
        res.writeHead(200, { location: `/${bucket}` });
        return void res.end();
      }
      if (req.method === 'HEAD') {
        res.writeHead(existsSync(bucketDir) ? 200 : 404);
        return void res.end();
      }
      if (req.method === 'GET' && existsSync(bucketDir)) return this.listObjects(bucket, url.searchParams, res);
      if (req.method === 'GET') return xmlError(res, 404, 'NoSuchBucket', 'The specified bucket does not exist');
      return xmlError(res, 405, 'MethodNotAllowed', 'only CreateBucket, HeadBucket and ListObjectsV2 are served on buckets');
    }
    if (!existsSync(bucketDir)) return xmlError(res, 404, 'NoSuchBucket', 'The specified bucket does not exist');
    const p = this.objectPath(bucket, key);
    switch (req.method) {
      case 'PUT': {
        const chunked =
          /aws-chunked/.test(String(req.headers['content-encoding'] ?? '')) || String(req.headers['x-amz-content-sha256'] ?? '').startsWith('STREAMING');
        const bytes = chunked ? decodeAwsChunked(body) : body;
        writeFileSync(p, bytes);
        res.writeHead(200, { etag: `"${createHash('md5').update(bytes).digest('hex')}"` });
        return void res.end();
      }
      case 'GET':
      case 'HEAD': {
        if (!existsSync(p)) {
          if (req.method === 'HEAD') res.writeHead(404).end();
          else xmlError(res, 404, 'NoSuchKey', 'The specified key does not exist.');
          return;
        }
        const bytes = readFileSync(p);
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': bytes.length,
          etag: `"${createHash('md5').update(bytes).digest('hex')}"`,
          'last-modified': statSync(p).mtime.toUTCString(),
        });
        return void res.end(req.method === 'GET' ? bytes : undefined);
      }
      case 'DELETE':
        rmSync(p, { force: true });
        res.writeHead(204);
        return void res.end();
      default:
        return xmlError(res, 405, 'MethodNotAllowed', `${req.method} is not served`);
    }
  }
}
