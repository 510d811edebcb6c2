/**
 * The `kmod` command line (issue 11 item 3, docs/adr/0026-kmod-cli.md), on commander.
 * `run(argv, io)` parses, calls the API and answers the exit code; nothing here calls process.exit,
 * so the unit tests drive it with fake output and a fake client.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { type VerifyReport, verifyChains } from '../../../functions/domain/auditChain.ts';
import { ApiError, createKmodClient, type KmodApi, type Schemas, unwrap } from '../../../sdk/typescript/client.ts';
import { deploymentLines, exitCodeFor, table } from './format.ts';
import { ROLES, type Role, resolveTarget, type Target, UsageError } from './target.ts';
import { liveSource, type Output, pollingSource, type ProgressSource, watch } from './watch.ts';

type Deployment = Schemas['Deployment'];
type Environment = Deployment['targetEnvironment'];
type AuditCategory = Schemas['AuditEvent']['category'];

export const EXIT = { ok: 0, failed: 1, usage: 2, cancelled: 3 } as const;
const ENVIRONMENTS = ['Development', 'QA', 'Staging', 'Production'];

export interface Io {
  stdout: Output;
  stderr: Output;
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Tests inject a client; otherwise one is made for the resolved target. */
  client?: (role: Role, opts: GlobalOpts) => KmodApi;
  source?: (client: KmodApi) => ProgressSource;
  pollMs?: number;
}

interface GlobalOpts {
  as?: string;
  cloudFile?: string;
}

/** `demo-kernel@1.1.0` → module and version. */
export function parseModuleRef(ref: string): { moduleName: string; version: string } {
  const m = /^([a-z][a-z0-9-]{1,62})@(\S+)$/.exec(ref);
  if (!m) throw new UsageError(`expected <module>@<version> (for example demo-kernel@1.1.0), got "${ref}"`);
  return { moduleName: m[1], version: m[2] };
}

export async function run(argv: string[], io: Io): Promise<number> {
  const print = (s: string) => io.stdout.write(`${s}\n`);
  let code: number = EXIT.ok;
  const program = new Command('kmod')
    .description('Deploy kernel modules and steer deployments through the kmod-orchestrator API')
    .addOption(new Option('--as <role>', 'which token of cloud.json to use').choices([...ROLES]))
    .option('--cloud-file <path>', 'a local cloud’s cloud.json (default: $KMOD_CLOUD_FILE, $KMOD_DATA_DIR/cloud.json, .local/cloud.json)')
    .addHelpText(
      'after',
      '\nTarget: a local cloud’s cloud.json, or KMOD_API_URL and KMOD_TOKEN (and KMOD_WS_URL for live --watch).\nExit codes: 0 succeeded, 1 failed or rolled back (or an API error), 3 cancelled, 2 usage error.',
    )
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError('(kmod --help for usage)');

  const targets = new WeakMap<KmodApi, Target>();
  const clientFor = (role: Role): KmodApi => {
    const g = program.opts<GlobalOpts>();
    if (io.client) return io.client(role, g);
    const target = resolveTarget(g, role, io.env ?? process.env, io.cwd ?? process.cwd());
    const client = createKmodClient({ baseUrl: target.apiUrl, token: target.token });
    targets.set(client, target);
    return client;
  };
  /** Live events when the target has a WebSocket URL, else polling. */
  const sourceFor = (client: KmodApi): ProgressSource => {
    if (io.source) return io.source(client);
    const pollMs = io.pollMs ?? 1000;
    const target = targets.get(client);
    if (!target?.wsUrl) return pollingSource(client, pollMs, undefined, { note: (m) => io.stderr.write(`kmod: ${m}\n`) });
    io.stderr.write(`following live events from ${target.wsUrl}\n`);
    return liveSource(client, { wsUrl: target.wsUrl, token: target.token, pollMs, note: (m) => io.stderr.write(`kmod: ${m}\n`) });
  };
  const show = (d: Deployment, json: boolean | undefined) =>
    print(
      json
        ? JSON.stringify(d, null, 2)
        : deploymentLines(d)
            .map((l) => l.text)
            .join('\n'),
    );

  program
    .command('deploy')
    .description('request a deployment of <module>@<version> up to an environment')
    .argument('<module@version>', 'for example demo-kernel@1.1.0')
    .addOption(new Option('--to <environment>', 'target environment').choices(ENVIRONMENTS).makeOptionMandatory())
    .option('--reason <text>', 'why (kept in the deployment’s metadata)')
    .option('--idempotency-key <key>', 'replays answer the same deployment')
    .option('--watch', 'follow it until it finishes; the exit code says how')
    .option('--json', 'print the raw JSON')
    .action(async (ref: string, o: { to: string; reason?: string; idempotencyKey?: string; watch?: boolean; json?: boolean }) => {
      const { moduleName, version } = parseModuleRef(ref);
      const client = clientFor('Deployer');
      const body = { moduleName, version, targetEnvironment: o.to as Environment, ...(o.reason ? { metadata: { reason: o.reason } } : {}) };
      const r = await unwrap(client.POST('/api/v1/deployments', { body, headers: o.idempotencyKey ? { 'idempotency-key': o.idempotencyKey } : {} }));
      if (o.json && !o.watch) return print(JSON.stringify(r, null, 2));
      io.stderr.write(`deployment ${r.executionId} requested: ${moduleName}@${version} → ${o.to}\n`);
      if (!o.watch) return print(r.executionId);
      code = await watch(sourceFor(client), r.executionId, io.stdout);
    });

  program
    .command('get')
    .description('show a deployment: stages, batches, canary waves, approval gates')
    .argument('<id>', 'deployment (execution) id')
    .option('--watch', 'follow it until it finishes; the exit code says how')
    .option('--json', 'print the raw JSON')
    .action(async (id: string, o: { watch?: boolean; json?: boolean }) => {
      const client = clientFor('Viewer');
      if (o.watch && !o.json) {
        code = await watch(sourceFor(client), id, io.stdout);
        return;
      }
      if (o.watch) {
        let last: Deployment | undefined;
        for await (const d of sourceFor(client).updates(id)) print(JSON.stringify((last = d)));
        code = (last && exitCodeFor(last.status)) ?? EXIT.failed;
        return;
      }
      show(await unwrap(client.GET('/api/v1/deployments/{executionId}', { params: { path: { executionId: id } } })), o.json);
    });

  program
    .command('list')
    .description('deployments, newest first')
    .addOption(new Option('--status <status>').choices(['Pending', 'Running', 'WaitingForApproval', 'Succeeded', 'Failed', 'RolledBack', 'Cancelled']))
    .option('--module <name>')
    .addOption(new Option('--env <environment>').choices(ENVIRONMENTS))
    .option('--limit <n>', 'how many', '20')
    .option('--json', 'print the raw JSON')
    .action(async (o: { status?: string; module?: string; env?: string; limit: string; json?: boolean }) => {
      const query = { status: o.status as Deployment['status'] | undefined, moduleName: o.module, targetEnvironment: o.env as Environment | undefined };
      const r = await unwrap(clientFor('Viewer').GET('/api/v1/deployments', { params: { query: { ...query, limit: positive(o.limit, '--limit') } } }));
      if (o.json) return print(JSON.stringify(r, null, 2));
      print(
        table(
          ['ID', 'MODULE', 'TO', 'STATUS', 'BY', 'CREATED'],
          r.items.map((d) => [d.executionId, `${d.moduleName}@${d.version}`, d.targetEnvironment, d.status, d.requestedBy, d.createdAt]),
        ),
      );
      if (r.nextCursor) io.stderr.write('(more: use --limit, or the API’s cursor)\n');
    });

  for (const decision of ['approve', 'reject'] as const) {
    program
      .command(decision)
      .description(`${decision} the approval gate the deployment waits at`)
      .argument('<id>', 'deployment id')
      .option('--reason <text>', decision === 'reject' ? 'why (required)' : 'why')
      .option('--json', 'print the raw JSON')
      .action(async (id: string, o: { reason?: string; json?: boolean }) => {
        if (decision === 'reject' && !o.reason) throw new UsageError('reject needs --reason');
        const init = { params: { path: { executionId: id } }, body: o.reason ? { reason: o.reason } : {} };
        const api = clientFor('Approver');
        const r = await unwrap(
          decision === 'approve'
            ? api.POST('/api/v1/approvals/deployments/{executionId}/approve', init)
            : api.POST('/api/v1/approvals/deployments/{executionId}/reject', init),
        );
        print(o.json ? JSON.stringify(r, null, 2) : `${id}: ${decision === 'approve' ? 'approved' : 'rejected'} (${r.status})`);
      });
  }

  const steering: Record<string, string> = {
    rollback: 'roll a finished deployment back',
    cancel: 'cancel a running deployment (every node it changed goes back)',
    pause: 'hold a running canary before its next wave',
    resume: 'lift the hold of a paused canary',
    promote: 'skip the running canary’s remaining bake',
  };
  for (const [action, description] of Object.entries(steering)) {
    const cmd = program.command(action).description(description).argument('<id>', 'deployment id').option('--json', 'print the raw JSON');
    if (action !== 'resume' && action !== 'promote') cmd.option('--reason <text>', 'why (audited)');
    if (action === 'pause') {
      cmd.option('--deadline <seconds>', 'after this long, resume or roll back');
      cmd.addOption(new Option('--on-deadline <what>').choices(['resume', 'rollback']));
    }
    if (action === 'promote') cmd.option('--full', 'go to 100 % at once instead of the next wave');
    cmd.action(async (id: string, o: { reason?: string; deadline?: string; onDeadline?: 'resume' | 'rollback'; full?: boolean; json?: boolean }) => {
      const api = clientFor('Deployer');
      const params = { path: { executionId: id } };
      const reason = o.reason ? { reason: o.reason } : {};
      // Each action answers its own shape; the line says what it means.
      const [r, said] = await (async (): Promise<[unknown, string]> => {
        if (action === 'rollback') {
          const a = await unwrap(api.POST('/api/v1/deployments/{executionId}/rollback', { params, body: reason }));
          return [a, `rolling back ${a.rollback.environments.join(', ')}`];
        }
        if (action === 'cancel') {
          const a = await unwrap(api.POST('/api/v1/deployments/{executionId}/cancel', { params, body: reason }));
          return [a, `status ${a.status}`];
        }
        if (action === 'pause') {
          const deadline = o.deadline ? { deadlineSeconds: positive(o.deadline, '--deadline') } : {};
          const a = await unwrap(
            api.POST('/api/v1/deployments/{executionId}/pause', {
              params,
              body: { ...reason, ...deadline, ...(o.onDeadline ? { onDeadline: o.onDeadline } : {}) },
            }),
          );
          return [a, a.hold.deadline ? `held until ${a.hold.deadline}, then ${a.hold.onDeadline}` : 'held until resumed'];
        }
        if (action === 'resume') {
          const a = await unwrap(api.POST('/api/v1/deployments/{executionId}/resume', { params, body: {} }));
          return [a, `resumed by ${a.resumed.by}`];
        }
        const a = await unwrap(api.POST('/api/v1/deployments/{executionId}/promote', { params, body: o.full ? { to: 'full' } : {} }));
        return [a, a.promotion.to === 'full' ? 'to 100 %' : 'to the next wave'];
      })();
      print(o.json ? JSON.stringify(r, null, 2) : `${id}: ${action} accepted (${said})`);
    });
  }

  program
    .command('clusters')
    .description('environments: strategy, nodes, module versions (one environment with its nodes)')
    .argument('[environment]')
    .option('--json', 'print the raw JSON')
    .action(async (env: string | undefined, o: { json?: boolean }) => {
      if (env && !ENVIRONMENTS.includes(env)) throw new UsageError(`environment must be one of ${ENVIRONMENTS.join(', ')}`);
      const api = clientFor('Viewer');
      if (env) {
        const c = await unwrap(api.GET('/api/v1/clusters/{environment}', { params: { path: { environment: env as Environment } } }));
        if (o.json) return print(JSON.stringify(c, null, 2));
        print(`${c.environment}  ${c.strategy}  ${c.nodes.length} nodes${c.activeColour ? `  active colour ${c.activeColour}` : ''}`);
        print(
          table(
            ['NODE', 'STATUS', 'MODULES'],
            c.nodes.map((n) => [
              n.nodeId,
              n.status,
              Object.entries(n.modules)
                .map(([m, v]) => `${m}@${typeof v === 'string' ? v : (v as { version?: string } | null)?.version}`)
                .join(' '),
            ]),
          ),
        );
        return;
      }
      const r = await unwrap(api.GET('/api/v1/clusters'));
      if (o.json) return print(JSON.stringify(r, null, 2));
      print(
        table(
          ['ENVIRONMENT', 'STRATEGY', 'NODES', 'VERSIONS'],
          r.items.map((c) => [c.environment, c.strategy, String(c.nodeCount), versionsText(c.moduleVersions)]),
        ),
      );
    });

  program
    .command('modules')
    .description('registered modules and their versions')
    .option('--json', 'print the raw JSON')
    .action(async (o: { json?: boolean }) => {
      const r = await unwrap(clientFor('Viewer').GET('/api/v1/modules'));
      if (o.json) return print(JSON.stringify(r, null, 2));
      print(
        table(
          ['MODULE', 'VERSIONS'],
          r.items.map((m) => [m.moduleName, m.versions.join(' ')]),
        ),
      );
    });

  const audit = program
    .command('audit')
    .description('the audit trail, newest first unless --order oldest (filters: deployment, category, actor)')
    .option('--deployment <id>')
    .addOption(new Option('--order <o>', 'newest or oldest first').choices(['newest', 'oldest']).default('newest'))
    .addOption(new Option('--category <c>').choices(['deployment', 'stage', 'node', 'module', 'approval', 'security', 'config']))
    .option('--actor <who>')
    .option('--limit <n>', 'how many', '20')
    .option('--cursor <c>', 'the nextCursor of an earlier page')
    .option('--json', 'print the raw JSON')
    .action(
      async (o: {
        deployment?: string;
        category?: AuditCategory;
        actor?: string;
        order: 'newest' | 'oldest';
        limit: string;
        cursor?: string;
        json?: boolean;
      }) => {
        // The API's own default is oldest first under a filter (a story in order); the CLI says newest first for all.
        const query = {
          deploymentId: o.deployment,
          category: o.category,
          actor: o.actor,
          order: o.order,
          limit: positive(o.limit, '--limit'),
          cursor: o.cursor,
        };
        const r = await unwrap(clientFor('Admin').GET('/api/v1/audit', { params: { query } }));
        if (o.json) return print(JSON.stringify(r, null, 2));
        print(
          table(
            ['AT', 'ACTION', 'ACTOR', 'SUBJECT'],
            r.items.map((e) => [e.at ?? e.sk.slice(0, 24), e.action, e.actor, e.subject]),
          ),
        );
        if (r.nextCursor) io.stderr.write(`next page: kmod audit --cursor ${r.nextCursor}\n`);
      },
    );

  audit
    .command('export')
    .description('every audit event of a time range, oldest first, one JSON object a line (as stored: `kmod audit verify` checks it offline)')
    .option('--from <iso>', 'start of the range (ISO time)')
    .option('--to <iso>', 'end of the range (ISO time)')
    .action(async (o: { from?: string; to?: string }) => {
      const client = clientFor('Admin');
      let cursor: string | undefined;
      let n = 0;
      do {
        const r = await unwrap(client.GET('/api/v1/audit', { params: { query: { order: 'oldest', limit: 500, from: o.from, to: o.to, cursor } } }));
        for (const item of r.items) io.stdout.write(`${JSON.stringify(item)}\n`);
        n += r.items.length;
        cursor = r.nextCursor ?? undefined;
      } while (cursor);
      io.stderr.write(`${n} audit events exported\n`);
    });

  audit
    .command('verify')
    .description('check the hash chains of an export offline (or, without --file, ask the API to verify a range); exit 1 when a link is broken')
    .option('--file <path>', 'a JSON Lines export (kmod audit export)')
    .option('--from <iso>', 'with the API: start of the range')
    .option('--to <iso>', 'with the API: end of the range')
    .option('--json', 'print the raw report')
    .action(async (o: { file?: string; from?: string; to?: string; json?: boolean }) => {
      let report: VerifyReport;
      if (o.file) {
        const text = await readFile(resolve(io.cwd ?? process.cwd(), o.file), 'utf8').catch((e: Error) => {
          throw new UsageError(`cannot read ${o.file}: ${e.message}`);
        });
        const events = text
          .split('\n')
          .map((line, i) => [line.trim(), i + 1] as const)
          .filter(([line]) => line)
          .map(([line, no]) => {
            try {
              return JSON.parse(line) as Record<string, unknown>;
            } catch {
              throw new UsageError(`${o.file}:${no} is not JSON`);
            }
          });
        report = verifyChains({ events, now: Math.floor(Date.now() / 1000) });
      } else report = await unwrap(clientFor('Admin').GET('/api/v1/audit/verify', { params: { query: { from: o.from, to: o.to } } }));
      if (!report.verified) code = EXIT.failed;
      // `kmod audit` has a --json of its own, which commander gives `--json` after `verify` to.
      if (o.json || audit.opts().json) return print(JSON.stringify(report, null, 2));
      print(
        `${report.verified ? 'verified' : 'BROKEN'}: ${report.events} chained events in ${report.chains} chains` +
          ` (${report.unchained} unchained, ${report.expiredPredecessors} predecessors gone by retention, ${report.openStarts} chains starting before the input)`,
      );
      if (report.mutableFields.length) print(`not hashed (mutable by design): ${report.mutableFields.join(', ')}`);
      for (const b of report.broken) print(`${b.reason} ${b.chain} seq ${b.seq} ${b.sk}: ${b.detail}`);
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.ok;
      return EXIT.usage; // commander already printed the message
    }
    if (e instanceof UsageError) {
      io.stderr.write(`kmod: ${e.message}\n`);
      return EXIT.usage;
    }
    if (e instanceof ApiError) {
      io.stderr.write(`kmod: ${e.status ? `HTTP ${e.status} ` : ''}${e.code}: ${e.message}\n`);
      return EXIT.failed;
    }
    throw e;
  }
}

function positive(v: string, what: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${what} must be a positive whole number`);
  return n;
}

/** `{"demo-kernel":{"1.0.0":3}}` → `demo-kernel 1.0.0×3`. */
export function versionsText(v: unknown): string {
  if (!v || typeof v !== 'object') return '';
  return Object.entries(v as Record<string, unknown>)
    .map(([m, vs]) =>
      vs && typeof vs === 'object'
        ? `${m} ${Object.entries(vs as Record<string, unknown>)
            .map(([ver, n]) => `${ver}×${n}`)
            .join(' ')}`
        : `${m} ${String(vs)}`,
    )
    .join('; ');
}
