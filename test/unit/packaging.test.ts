/**
 * Host packaging of the node agent (packaging/): the systemd unit is checked by systemd itself
 * where systemd-analyze exists, the DaemonSet is parsed as YAML and its fields that matter are
 * pinned, and the Dockerfile's essentials are read as text (no Docker engine here to build it).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const ROOT = join(import.meta.dirname, '..', '..');
const read = (p: string) => readFileSync(join(ROOT, 'packaging', p), 'utf8');
const DATA_DIR = '/var/lib/kmod-agent';

/** `key=value` lines of a unit file, by key (a key may repeat). */
function directives(unit: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of unit.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1], [...(out.get(m[1]) ?? []), m[2]]);
  }
  return out;
}

/** The agent's flags on a command line, as the enrolment CLI contract names them. */
function flags(args: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  args.forEach((a, i) => {
    if (a.startsWith('--')) out[a.slice(2)] = args[i + 1];
  });
  return out;
}

describe('systemd unit kmod-agent.service', () => {
  const unit = read('systemd/kmod-agent.service');
  const d = directives(unit);

  it('runs the agent as its own user with the enrolment flags, the data dir as the only writable path, restarting on failure', () => {
    const exec = d.get('ExecStart')?.[0].split(/\s+/) ?? [];
    expect(exec.slice(0, 2)).toEqual(['/opt/kmod-agent/node_modules/.bin/tsx', 'scripts/agent.ts']);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: systemd expands ${…} in ExecStart, not JavaScript
    expect(flags(exec)).toMatchObject({ api: '${KMOD_API_URL}', enrol: '${KMOD_ENROL_TOKEN}', 'data-dir': DATA_DIR });
    expect(d.get('EnvironmentFile')).toEqual(['/etc/kmod-agent/agent.env']);
    expect(d.get('User')).toEqual(['kmod-agent']);
    expect(read('systemd/kmod-agent.sysusers')).toMatch(/^u kmod-agent - .* \/var\/lib\/kmod-agent /m);
    expect(d.get('ReadWritePaths')).toEqual([DATA_DIR]);
    expect(d.get('StateDirectory')).toEqual(['kmod-agent']);
    expect(Object.fromEntries(['ProtectSystem', 'NoNewPrivileges', 'ProtectHome', 'PrivateTmp', 'Restart'].map((k) => [k, d.get(k)?.[0]]))).toEqual({
      ProtectSystem: 'strict',
      NoNewPrivileges: 'yes',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      Restart: 'on-failure',
    });
    expect(d.get('CapabilityBoundingSet')).toEqual(['']);
    // Every variable the unit uses is in the example environment file.
    const env = read('systemd/agent.env.example');
    for (const v of ['KMOD_API_URL', 'KMOD_ENROL_TOKEN', 'KMOD_AGENT_ARGS']) expect(env).toMatch(new RegExp(`^${v}=`, 'm'));
  });

  const analyze = spawnSync('systemd-analyze', ['--version']);
  if (analyze.status !== 0)
    console.warn(
      'SKIPPED systemd-analyze verify of packaging/systemd/kmod-agent.service: systemd-analyze is not installed (apt-get install systemd; .ci/run installs it)',
    );
  it.skipIf(analyze.status !== 0)('passes systemd-analyze verify with no warnings (unknown or misspelt directives would warn)', () => {
    // verify insists that ExecStart's program exists: point the install dir at this checkout.
    const dir = mkdtempSync(join(tmpdir(), 'kmod-unit-'));
    writeFileSync(join(dir, 'kmod-agent.service'), unit.replaceAll('/opt/kmod-agent', ROOT));
    const r = spawnSync('systemd-analyze', ['verify', join(dir, 'kmod-agent.service')], { encoding: 'utf8' });
    expect({ status: r.status, output: `${r.stdout}${r.stderr}`.trim() }).toEqual({ status: 0, output: '' });
  });
});

describe('Kubernetes DaemonSet', () => {
  const docs = parseAllDocuments(read('kubernetes/kmod-agent-daemonset.yaml'));
  it('is valid YAML', () => {
    for (const doc of docs) expect(doc.errors).toEqual([]);
  });
  const objects = docs.map((doc) => doc.toJS() as { kind: string; metadata: { name: string; namespace?: string }; spec?: any; data?: Record<string, string> });
  const ds = objects.find((o) => o.kind === 'DaemonSet')!;

  it('runs one agent per node on the host network, non-root, the token from a Secret and the data dir on a hostPath', () => {
    expect(objects.map((o) => o.kind)).toEqual(['Namespace', 'ConfigMap', 'DaemonSet']);
    const pod = ds.spec.template.spec;
    expect(ds.spec.selector.matchLabels).toEqual(ds.spec.template.metadata.labels);
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
    const [agent] = pod.containers;
    const env = Object.fromEntries(agent.env.map((e: { name: string; valueFrom: unknown }) => [e.name, e.valueFrom]));
    expect(env.KMOD_ENROL_TOKEN).toEqual({ secretKeyRef: { name: 'kmod-agent-enrolment', key: 'token' } });
    expect(env.KMOD_API_URL).toEqual({ configMapKeyRef: { name: 'kmod-agent', key: 'KMOD_API_URL' } });
    expect(objects.find((o) => o.kind === 'ConfigMap')?.data?.KMOD_API_URL).toMatch(/^https:\/\//);
    const dataVolume = pod.volumes.find((v: { name: string }) => v.name === 'data');
    expect(dataVolume.hostPath).toEqual({ path: DATA_DIR, type: 'DirectoryOrCreate' });
    expect(agent.volumeMounts).toContainEqual({ name: 'data', mountPath: DATA_DIR });
    expect(agent.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 10001,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(agent.ports).toContainEqual({ name: 'agent', containerPort: 7070, hostPort: 7070, protocol: 'TCP' });
    // Everything lives in the one namespace the Secret is created in.
    for (const o of objects.filter((x) => x.kind !== 'Namespace')) expect(o.metadata.namespace, o.kind).toBe('kmod-agent');
  });

  it('runs the image user the Dockerfile creates, with the data dir the image declares', () => {
    const [agent] = ds.spec.template.spec.containers;
    const dockerfile = read('container/Dockerfile');
    expect(dockerfile).toMatch(new RegExp(`^USER ${agent.securityContext.runAsUser}:${agent.securityContext.runAsGroup}$`, 'm'));
    expect(dockerfile).toMatch(/^VOLUME \["\/var\/lib\/kmod-agent"\]$/m);
    expect(dockerfile).toMatch(/^FROM node:20-/m);
    const entrypoint = JSON.parse(/^ENTRYPOINT (.*)$/m.exec(dockerfile)?.[1] ?? '[]') as string[];
    expect(flags(entrypoint[2].split(/\s+/))).toMatchObject({ api: '"$KMOD_API_URL"', enrol: '"$KMOD_ENROL_TOKEN"', 'data-dir': DATA_DIR });
  });
});
