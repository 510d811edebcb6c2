import type { APIGatewayProxyEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parseBody } from '../../../functions/lib/parse.ts';

const schema = z.object({ name: z.string() }).strict();
const withType = (contentType: string | undefined, body = '{"name":"x"}') =>
  ({ headers: contentType === undefined ? {} : { 'content-type': contentType }, body, isBase64Encoded: false }) as unknown as APIGatewayProxyEvent;
const outcome = (contentType: string | undefined) => {
  try {
    return parseBody(withType(contentType), schema);
  } catch (e) {
    const err = e as { status: number; code: string; message: string };
    return { status: err.status, code: err.code, message: err.message };
  }
};

describe('parseBody: the media type of a JSON body', () => {
  it.each([
    'application/json',
    'APPLICATION/JSON',
    'Application/Json',
    'application/json; charset=utf-8',
    'application/json;charset=UTF-8',
    'application/json; charset="utf-8"',
  ])('accepts %s', (type) => {
    expect(outcome(type)).toEqual({ name: 'x' });
  });

  it.each([
    // The adversarial run's case: a UTF-16 body was parsed as UTF-8 and created a deployment.
    'APPLICATION/JSON; charset=utf-16',
    'application/json; charset=iso-8859-1',
    'application/json; charset=utf8',
    'application/json; charset=utf-8; boundary=x',
    'application/json; foo=bar',
    'application/json-seq',
    'application/jsonx',
    'application/json garbage',
    'application/json, text/plain',
    'application/x-www-form-urlencoded',
    'text/plain',
    'text/json',
    '',
    undefined,
  ])('answers 415 {code, message} for %s', (type) => {
    expect(outcome(type)).toEqual({
      status: 415,
      code: 'UnsupportedMediaType',
      message: expect.stringMatching(/application\/json/),
    });
  });

  it('asks for no media type when there is no body (routes whose body is optional)', () => {
    expect(parseBody(withType(undefined, ''), schema.optional())).toBeUndefined();
    expect(parseBody(withType('text/plain', ''), schema.optional())).toBeUndefined();
  });
});
