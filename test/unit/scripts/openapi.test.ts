import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import {
  ASYNCAPI_FILE,
  AUTHZ_FILE,
  buildAsyncApi,
  buildAuthorizationDoc,
  buildOpenApi,
  buildSdkTypes,
  OPENAPI_FILE,
  SDK_SCHEMA_FILE,
} from '../../../scripts/openapi.ts';
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

  it("sdk/typescript/schema.ts, the typed client's types, is what openapi-typescript makes of the document", async () => {
    expect(readFileSync(SDK_SCHEMA_FILE, 'utf8')).toBe(await buildSdkTypes());
  });

  it('path parameters carry the schema the handlers validate them with', () => {
    const doc = buildOpenApi() as { paths: Record<string, Record<string, { parameters: { name: string; in: string; schema: any }[] }>> };
    const param = (path: string, method: string, name: string) => doc.paths[path][method].parameters.find((p) => p.in === 'path' && p.name === name)?.schema;
    expect(param('/api/v1/clusters/{environment}', 'get', 'environment').enum).toEqual(['Development', 'QA', 'Staging', 'Production']);
    expect(param('/api/v1/deployments/{executionId}/cancel', 'post', 'executionId').pattern).toBe('^dep-[a-z0-9]{9}-[a-f0-9]{12}$');
    expect(param('/approvals/links/{token}', 'get', 'token')).toEqual({ type: 'string' });
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
          expect(types.length, where).toBeGreaterThan(0);
          if (types.length > 1) {
            // Static assets only: each type a string.
            for (const t of types) expect(['text/javascript', 'text/css'], where).toContain(t);
            checked++;
            continue;
          }
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

describe('the served document (GET /openapi.json)', () => {
  const validate = async (doc: unknown) => {
    const v = new Validator();
    const r = await v.validate(structuredClone(doc) as never);
    return { valid: r.valid, errors: r.errors, version: v.version };
  };

  it('validates as OpenAPI 3.1 against the official schema (@seriousme/openapi-schema-validator)', async () => {
    const r = await validate(JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')));
    expect(r.errors ?? []).toEqual([]);
    expect(r.valid).toBe(true);
    expect(r.version).toBe('3.1');
  });

  it('the validator does refuse a broken document (a response without its description)', async () => {
    const broken = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8'));
    delete broken.paths['/health'].get.responses['200'].description;
    expect((await validate(broken)).valid).toBe(false);
  });

  it('is a route of the catalog, public, and bundled into the Lambda as the CDK bundles it (esbuild, ESM)', async () => {
    const route = ROUTES.find((r) => r.path === '/openapi.json');
    expect(route).toMatchObject({ method: 'GET', fn: 'ApiHealth', auth: false, roles: 'public' });
    const out = await build({
      entryPoints: ['functions/handlers/api/health.ts'],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node22',
      write: false,
      logLevel: 'silent',
    });
    const code = out.outputFiles[0].text;
    expect(code).toContain('kmod-orchestrator API');
    expect(code).toContain('/api/v1/deployments/{executionId}/rollback');
  }, 60_000);
});
