/**
 * The local gateway refuses a body over the edge's limit (64 KiB) as soon as that much has arrived,
 * without waiting for (and holding) the rest: before, it read up to 10 MiB of it first, and 40 such
 * requests at once grew the local cloud by about 280 MB.
 */
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { WAF_MAX_BODY_BYTES } from '../../../functions/webAcl.ts';
import { LocalApiGateway } from '../../../localcloud/apigateway.ts';
import type { LocalLambda } from '../../../localcloud/lambda.ts';
import { LocalWebAcl } from '../../../localcloud/webAcl.ts';

const gateways: LocalApiGateway[] = [];
afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.close()));
});

describe('the local gateway and large bodies', () => {
  it('answers 413 once a body passes the edge limit, while the client is still sending, and never invokes anything', async () => {
    const invoked: string[] = [];
    const lambda = {
      invoke: async (name: string) => {
        invoked.push(name);
        return { statusCode: 200, headers: {}, body: '{}' };
      },
    } as unknown as LocalLambda;
    const g = new LocalApiGateway(lambda, true, new LocalWebAcl({ ratePerAddress: 1_000_000, windowSeconds: 60 }), undefined, 0);
    g.ready = true;
    gateways.push(g);
    const url = new URL(await g.listen(0));
    const declared = 9 * 1024 * 1024;
    const answer = await new Promise<{ status: number; body: string; sent: number }>((resolve, reject) => {
      let sent = 0;
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: '/api/v1/deployments',
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': declared },
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body, sent }));
        },
      );
      req.on('error', reject);
      // A little over the limit, then nothing more: the request stays unfinished.
      const chunk = Buffer.alloc(WAF_MAX_BODY_BYTES + 1024, 'a');
      sent += chunk.length;
      req.write(chunk);
      setTimeout(() => reject(new Error('no answer while the body was unfinished')), 10_000).unref();
    });
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toEqual({ code: 'RequestTooLarge', message: `the request body exceeds ${WAF_MAX_BODY_BYTES} bytes` });
    expect(answer.sent).toBeLessThan(declared);
    expect(invoked).toEqual([]);
  });
});
