import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ASYNCAPI_FILE, AUTHZ_FILE, buildAsyncApi, buildAuthorizationDoc, buildOpenApi, OPENAPI_FILE } from '../../../scripts/openapi.ts';
import { ROUTES } from '../../../functions/catalog.ts';

describe('docs/openapi.json', () => {
  it("is what the route catalog and the handlers' schemas generate (run npm run openapi after a change)", () => {
    expect(JSON.parse(readFileSync(OPENAPI_FILE, 'utf8'))).toEqual(buildOpenApi());
  });

  it('docs/asyncapi.json is what the WebSocket catalog and the message schemas generate', () => {
    expect(JSON.parse(readFileSync(ASYNCAPI_FILE, 'utf8'))).toEqual(buildAsyncApi());
    const doc = buildAsyncApi() as { components: { messages: Record<string, { payload: { required?: string[] } }> } };
    expect(doc.components.messages.request.payload.required).toEqual(['type', 'requestId', 'method', 'path', 'headers', 'body']);
    expect(doc.components.messages.response.payload.required).toEqual(['type', 'requestId', 'status', 'body']);
  });

  it('docs/security/authorization.md is the matrix the code enforces', () => {
    expect(readFileSync(AUTHZ_FILE, 'utf8')).toBe(buildAuthorizationDoc());
  });

  it('documents every route, with the request schema the handler validates', () => {
    const doc = buildOpenApi() as { paths: Record<string, Record<string, any>> };
    for (const r of ROUTES) expect(doc.paths[r.path]?.[r.method.toLowerCase()], `${r.method} ${r.path}`).toBeDefined();
    const create = doc.paths['/api/v1/deployments'].post.requestBody.content['application/json'].schema;
    expect(create.required).toEqual(['moduleName', 'version', 'targetEnvironment']);
    expect(create.additionalProperties).toBe(false);
    expect(create.properties.targetEnvironment.enum).toEqual(['Development', 'QA', 'Staging', 'Production']);
  });
});
