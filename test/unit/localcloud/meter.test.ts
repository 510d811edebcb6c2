/**
 * The call meter counts each SDK call against the unit of work it was made under, through the
 * same hook the local cloud uses (onClientCreated), with a real SDK client talking HTTP.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { dynamo, forgetClients, onClientCreated } from '../../../functions/lib/aws.ts';
import { CallMeter } from '../../../localcloud/meter.ts';

let server: Server;
let endpoint: string;
const saved = { ...process.env };

beforeAll(async () => {
  // Answers every DynamoDB call with no item, as DynamoDB does for a missing key, and the capacity
  // an eventually consistent read of it consumes when asked for.
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const input = JSON.parse(body) as { ReturnConsumedCapacity?: string; Key?: { id?: { S?: string } } };
      const asked = input.ReturnConsumedCapacity === 'TOTAL';
      // Key "slow" answers after 60 ms: the meter's timings must show it.
      setTimeout(
        () => {
          res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
          res.end(JSON.stringify(asked ? { ConsumedCapacity: { TableName: 't', CapacityUnits: 0.5 } } : {}));
        },
        input.Key?.id?.S === 'slow' ? 60 : 0,
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  endpoint = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  Object.assign(process.env, { AWS_ENDPOINT_URL_DYNAMODB: endpoint, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x' });
});

afterAll(async () => {
  process.env = saved;
  forgetClients();
  await new Promise((r) => server.close(r));
});

/** Meters every SDK client made from now on (as the local cloud does), until the returned unhook. */
function meterClients(meter: CallMeter): () => void {
  const unhook = onClientCreated((client, service) => {
    const { fn, options } = meter.middleware(service);
    client.middlewareStack.add(fn as never, options as never);
  });
  forgetClients();
  return unhook;
}

describe('CallMeter', () => {
  it('counts calls per unit of work and per operation; calls outside any unit are background', async () => {
    const meter = new CallMeter();
    const unhook = meterClients(meter);
    try {
      const get = () => dynamo().send(new GetCommand({ TableName: 't', Key: { id: 'a' } }));
      await meter.run('GET /a', async () => {
        await get();
        await Promise.all([get(), get()]);
      });
      await meter.run('GET /a', () => get());
      await meter.run('GET /b', async () => undefined);
      await get();
      const timed = { 'dynamodb:GetItem': expect.any(Number) };
      expect(meter.report()).toEqual([
        {
          label: 'background',
          requests: 0,
          calls: { 'dynamodb:GetItem': 1 },
          capacity: { read: 0.5, write: 0 },
          callsPerRequest: 0,
          dynamodbPerRequest: 0,
          meanCallMs: timed,
          meanRequestMs: 0,
        },
        {
          label: 'GET /a',
          requests: 2,
          calls: { 'dynamodb:GetItem': 4 },
          capacity: { read: 2, write: 0 },
          callsPerRequest: 2,
          dynamodbPerRequest: 2,
          meanCallMs: timed,
          meanRequestMs: expect.any(Number),
        },
        {
          label: 'GET /b',
          requests: 1,
          calls: {},
          capacity: { read: 0, write: 0 },
          callsPerRequest: 0,
          dynamodbPerRequest: 0,
          meanCallMs: {},
          meanRequestMs: expect.any(Number),
        },
      ]);
      expect(meter.total()).toEqual({ calls: { 'dynamodb:GetItem': 5 }, capacity: { read: 2.5, write: 0 } });
      meter.reset();
      expect(meter.report()).toEqual([]);
    } finally {
      unhook();
      forgetClients();
    }
    // Unhooked: a new client is not metered.
    await dynamo().send(new GetCommand({ TableName: 't', Key: { id: 'a' } }));
    expect(meter.report()).toEqual([]);
  });

  it('times each call and each request: a unit whose calls are slow shows it, one whose calls are fast does not', async () => {
    const meter = new CallMeter();
    const unhook = meterClients(meter);
    try {
      const get = (id: string) => dynamo().send(new GetCommand({ TableName: 't', Key: { id } }));
      await meter.run('GET /slow', async () => {
        await get('slow');
        await get('slow');
      });
      await meter.run('GET /fast', () => get('a'));
      const [fast, slow] = meter.report();
      expect(slow.label).toBe('GET /slow');
      expect(slow.meanCallMs['dynamodb:GetItem']).toBeGreaterThanOrEqual(55);
      // Two calls one after the other: the request took at least both.
      expect(slow.meanRequestMs).toBeGreaterThanOrEqual(2 * 55);
      expect(fast.label).toBe('GET /fast');
      expect(fast.meanCallMs['dynamodb:GetItem']).toBeLessThan(slow.meanCallMs['dynamodb:GetItem']);
    } finally {
      unhook();
      forgetClients();
    }
  });

  it('reports how long ready work waited for the event loop, and starts afresh when reset', async () => {
    const meter = new CallMeter();
    meter.reset();
    // The sampler records intervals between its ticks; the first after a reset only starts one.
    await new Promise((r) => setTimeout(r, 50));
    // Block the loop for 120 ms: the sampler's next tick comes that late.
    const until = performance.now() + 120;
    while (performance.now() < until) {
      // busy
    }
    await new Promise((r) => setTimeout(r, 30));
    const blocked = meter.eventLoopDelay();
    expect(blocked.max).toBeGreaterThanOrEqual(100);
    expect(blocked.p99).toBeGreaterThanOrEqual(100);
    meter.reset();
    await new Promise((r) => setTimeout(r, 60));
    expect(meter.eventLoopDelay().max).toBeLessThan(100);
  });
});
