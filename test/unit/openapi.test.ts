import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AUTHZ_FILE, buildAuthorizationDoc, buildOpenApi, OPENAPI_FILE } from '../../scripts/openapi.ts';
import { ROUTES } from '../../functions/catalog.ts';

describe('docs/openapi.json', () => {
  it("is what the route catalog and the handlers' schemas generate (run npm run openapi after a change)", () => {
    expect(JSON.parse(readFileSync(OPENAPI_FILE, 'utf8'))).toEqual(buildOpenApi());
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
