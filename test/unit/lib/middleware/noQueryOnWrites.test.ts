import { describe, expect, it } from 'vitest';
import { noQueryOnWrites } from '../../../../functions/lib/middleware/noQueryOnWrites.ts';
import { asAnswer, event, run } from './harness.ts';

describe('noQueryOnWrites', () => {
  it('refuses a query string on POST, PUT and DELETE with 400 before the handler runs', async () => {
    let ran = 0;
    const h = run([asAnswer, noQueryOnWrites()], async () => {
      ran++;
      return { statusCode: 200, body: '{}' };
    });
    for (const httpMethod of ['POST', 'PUT', 'DELETE']) {
      expect(await h(event({ httpMethod, queryStringParameters: { dryRun: 'true' } })), httpMethod).toMatchObject({
        statusCode: 400,
        body: '{"code":"ValidationError"}',
      });
      expect((await h(event({ httpMethod, queryStringParameters: null, multiValueQueryStringParameters: { toString: ['1'] } }))).statusCode).toBe(400);
    }
    expect(ran).toBe(0);
    expect((await h(event({ httpMethod: 'DELETE', queryStringParameters: null }))).statusCode).toBe(200);
  });

  it('leaves GET queries to the routes’ own strict schemas', async () => {
    const h = run([asAnswer, noQueryOnWrites()]);
    expect((await h(event({ httpMethod: 'GET', queryStringParameters: { limit: '5' } }))).statusCode).toBe(200);
  });
});
