import canonicalize from 'canonicalize';
import semver from 'semver';
import { z } from 'zod';

/** Module names: lower-case, digits and dashes, as a node agent uses them for file names. */
export const moduleNameSchema = z.string().regex(/^[a-z][a-z0-9-]{1,62}$/, 'must be 2-63 lower-case letters, digits or dashes, starting with a letter');

export const semverSchema = z
  .string()
  .max(64)
  .refine((v) => semver.valid(v) !== null && semver.clean(v) === v, 'must be a semantic version such as 1.2.3');

/** The manifest a publisher signs. Its canonical JSON (RFC 8785) is what the signature covers. */
export const manifestSchema = z
  .object({
    schemaVersion: z.literal(1),
    name: moduleNameSchema,
    version: semverSchema,
    description: z.string().max(500).optional(),
    artifact: z
      .object({
        sha256: z.string().regex(/^[a-f0-9]{64}$/, 'must be a lower-case hex SHA-256 digest'),
        sizeBytes: z.number().int().positive(),
      })
      .strict(),
    entrypoint: z.string().min(1).max(200),
    resources: z
      .object({
        cpuMillicores: z.number().int().positive(),
        memoryMiB: z.number().int().positive(),
      })
      .strict(),
    dependencies: z.record(moduleNameSchema, z.string().max(100)).default({}),
  })
  .strict();

export type Manifest = z.infer<typeof manifestSchema>;

export function canonicalManifest(manifest: unknown): Buffer {
  const text = canonicalize(manifest);
  if (text === undefined) throw new Error('manifest cannot be canonicalised');
  return Buffer.from(text, 'utf8');
}

export interface ResourceLimits {
  maxCpuMillicores: number;
  maxMemoryMiB: number;
}

export const DEFAULT_RESOURCE_LIMITS: ResourceLimits = { maxCpuMillicores: 4000, maxMemoryMiB: 4096 };

export interface ManifestCheck {
  ok: boolean;
  problems: string[];
}

/**
 * The Test stage: schema, resource requirements and dependency versions.
 * `available` lists the registered versions of each module the manifest may depend on.
 */
export function checkManifest(raw: unknown, available: Record<string, string[]>, limits: ResourceLimits = DEFAULT_RESOURCE_LIMITS): ManifestCheck {
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    return { ok: false, problems: parsed.error.issues.map((i) => `${i.path.join('.') || 'manifest'}: ${i.message}`) };
  }
  const m = parsed.data;
  const problems: string[] = [];
  if (m.resources.cpuMillicores > limits.maxCpuMillicores) {
    problems.push(`resources.cpuMillicores ${m.resources.cpuMillicores} exceeds the node limit ${limits.maxCpuMillicores}`);
  }
  if (m.resources.memoryMiB > limits.maxMemoryMiB) {
    problems.push(`resources.memoryMiB ${m.resources.memoryMiB} exceeds the node limit ${limits.maxMemoryMiB}`);
  }
  for (const [dep, range] of Object.entries(m.dependencies)) {
    if (dep === m.name) {
      problems.push(`dependencies.${dep}: a module cannot depend on itself`);
      continue;
    }
    if (semver.validRange(range) === null) {
      problems.push(`dependencies.${dep}: "${range}" is not a valid semver range`);
      continue;
    }
    const versions = available[dep] ?? [];
    if (!versions.some((v) => semver.satisfies(v, range))) {
      problems.push(`dependencies.${dep}: no registered version satisfies "${range}" (have: ${versions.join(', ') || 'none'})`);
    }
  }
  return { ok: problems.length === 0, problems };
}
