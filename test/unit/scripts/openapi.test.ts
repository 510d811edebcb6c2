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

describe('the success responses in docs/openapi.json', () => {
  type Resp = { content?: Record<string, { schema?: Record<string, unknown> }> };
  const doc = buildOpenApi() as { paths: Record<string, Record<string, { responses: Record<string, Resp> }>>; components: { schemas: Record<string, any> } };
  const resolve = (s: Record<string, unknown>) => (typeof s.$ref === 'string' ? doc.components.schemas[s.$ref.replace('#/components/schemas/', '')] : s);
  const bare = (s: unknown) => JSON.stringify(s) === '{"type":"object"}';

  it('every 2xx answer has a real schema: JSON ones a described object (no {"type":"object"} placeholder), others their content type', () => {
    let checked = 0;
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        const ok = Object.entries(op.responses).filter(([code]) => code.startsWith('2'));
        expect(ok.length, `${method} ${path}`).toBeGreaterThan(0);
        for (const [code, r] of ok) {
          const where = `${method.toUpperCase()} ${path} ${code}`;
          if (code === '204') continue;
          const types = Object.keys(r.content ?? {});
          expect(types.length, where).toBe(1);
          const schema = r.content![types[0]].schema;
          expect(schema, where).toBeDefined();
          if (types[0] === 'application/json') {
            const resolved = resolve(schema!);
            expect(resolved, where).toBeDefined();
            expect(bare(resolved), where).toBe(false);
            expect(Object.keys(resolved.properties ?? {}).length, where).toBeGreaterThan(0);
          } else {
            expect(['text/html', 'text/plain'], where).toContain(types[0]);
          }
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThanOrEqual(ROUTES.length);
  });

  it('no schema anywhere in the document is a bare {"type":"object"}', () => {
    const placeholders: string[] = [];
    const walk = (v: unknown, at: string) => {
      if (bare(v)) placeholders.push(at);
      if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, `${at}/${k}`);
    };
    walk(doc, '#');
    expect(placeholders).toEqual([]);
  });

  it('every $ref points at a component, and the deployment is described field by field', () => {
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/(\w+)"/g)].map((m) => m[1]);
    for (const id of refs) expect(doc.components.schemas[id], id).toBeDefined();
    const d = doc.components.schemas.Deployment;
    expect(d.additionalProperties).toBe(false);
    expect(d.properties.stages.items).toEqual({ $ref: '#/components/schemas/Stage' });
    expect(d.properties.status.enum).toContain('Succeeded');
  });
});
