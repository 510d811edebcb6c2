/**
 * What the end-to-end suite runs against, chosen by configuration:
 *
 * - the embedded local cloud (default): started for the suite, with short canary bakes;
 * - any deployed API: `KMOD_TARGET_URL=<ApiUrl>` plus a token source per role (scripts/lib/target.ts:
 *   tokens, Cognito client credentials or users, the local issuer's key, a local cloud's cloud.json).
 *   That is how it runs against LocalStack (`npm run test:localstack`), AWS, or a running `npm start`.
 *
 * The suite talks to the target over HTTP only. What only some targets can do is a capability,
 * discovered or configured, never assumed: a test that needs one says so and is skipped, with the
 * reason printed, where the target lacks it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPki, type DevPki } from '../../localcloud/devPki.ts';
import { demoModule } from '../../localcloud/seed.ts';
import { apiBase, type TargetRole, TokenProvider, tokenSourceFor } from '../../scripts/lib/target.ts';
import { startTestCloud } from '../integration/harness.ts';

export type { TargetRole } from '../../scripts/lib/target.ts';

export interface MailMessage {
  to: string;
  subject: string;
  body: string;
  at: string;
}

export interface Capabilities {
  /** The local fleet's fault injection (PUT/DELETE /_local/fleet/nodes/{nodeId}/faults). */
  fleetFaults?: {
    set(nodeId: string, faults: Record<string, unknown>): Promise<void>;
    clear(nodeId: string): Promise<void>;
  };
  /** Email the target sent (the local mailbox). */
  mailbox?: { messages(): Promise<MailMessage[]> };
  /** A signer whose root the target trusts: the suite registers the demo-kernel versions it deploys. */
  signDemoModule?: (version: string) => unknown;
  /** Canary bakes of seconds (CANARY_BAKE_SECONDS), so a Production deployment fits in a test. */
  shortCanaryBake?: boolean;
}

/** What each capability is, for the printed reason of a skipped test. */
export const CAPABILITY_NAMES: Record<keyof Capabilities, string> = {
  fleetFaults: "the local fleet's fault injection (/_local/fleet)",
  mailbox: 'a mailbox to read the email the target sent (KMOD_TARGET_MAILBOX_URL)',
  signDemoModule: 'a module signer the target trusts (KMOD_TARGET_SIGNING_PKI)',
  shortCanaryBake: 'canary bakes of seconds (KMOD_TARGET_SHORT_CANARY_BAKE=true when the target runs with a short CANARY_BAKE_SECONDS)',
};

export interface Target {
  /** Printed with every skip: which target this is. */
  name: string;
  apiUrl: string;
  token(role: TargetRole): Promise<string>;
  capabilities: Capabilities;
  /** How long a deployment may take to finish here. */
  deploymentTimeoutMs: number;
  close(): Promise<void>;
}

async function json(url: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
  const text = await r.text();
  try {
    return { status: r.status, body: JSON.parse(text) };
  } catch {
    return { status: r.status, body: text };
  }
}

function fleetFaultsAt(apiUrl: string): NonNullable<Capabilities['fleetFaults']> {
  const at = (nodeId: string) => `${apiUrl}/_local/fleet/nodes/${encodeURIComponent(nodeId)}/faults`;
  return {
    async set(nodeId, faults) {
      const r = await json(at(nodeId), { method: 'PUT', body: JSON.stringify(faults) });
      if (r.status !== 200) throw new Error(`fault injection on ${nodeId}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    },
    async clear(nodeId) {
      await json(at(nodeId), { method: 'DELETE' });
    },
  };
}

const mailboxAt = (mailboxUrl: string): NonNullable<Capabilities['mailbox']> => ({
  messages: async () => (await json(`${mailboxUrl.replace(/\/+$/, '')}/messages.json`)).body.messages as MailMessage[],
});

const signerFrom =
  (pki: DevPki): Capabilities['signDemoModule'] =>
  (version) =>
    demoModule(version, pki);

/** The embedded local cloud, started for the suite (its own data dir and port). */
async function embedded(): Promise<Target> {
  const cloud = await startTestCloud({ env: { CANARY_BAKE_SECONDS: '1', SMOKE_TEST_TIMEOUT_SECONDS: '20' } });
  const pki = loadPki(join(cloud.dataDir, 'pki'));
  return {
    name: 'the embedded local cloud',
    apiUrl: cloud.apiUrl,
    token: async (role) => cloud.tokens[role],
    capabilities: {
      fleetFaults: fleetFaultsAt(cloud.apiUrl),
      mailbox: mailboxAt(cloud.mailboxUrl),
      signDemoModule: pki && signerFrom(pki),
      shortCanaryBake: true,
    },
    deploymentTimeoutMs: 90_000,
    close: () => cloud.stop(),
  };
}

/** A deployed API; capabilities it has are probed (fault injection) or configured (mailbox, signer, bake). */
async function remote(env: Record<string, string | undefined>): Promise<Target> {
  const apiUrl = apiBase(env.KMOD_TARGET_URL!);
  const tokens = new TokenProvider((role) => tokenSourceFor(role, env));
  // A local cloud started by `npm start` answers here; API Gateway (AWS, LocalStack) answers 403 or 404.
  const fleet = await json(`${apiUrl}/_local/fleet`).catch(() => ({ status: 0, body: undefined }));
  const pki = env.KMOD_TARGET_SIGNING_PKI ? loadPki(env.KMOD_TARGET_SIGNING_PKI) : undefined;
  if (env.KMOD_TARGET_SIGNING_PKI && !pki) throw new Error(`no PKI in KMOD_TARGET_SIGNING_PKI=${env.KMOD_TARGET_SIGNING_PKI}`);
  const cloudFile = env.KMOD_TARGET_CLOUD_FILE ? (JSON.parse(readFileSync(env.KMOD_TARGET_CLOUD_FILE, 'utf8')) as { mailboxUrl?: string }) : undefined;
  const mailboxUrl = env.KMOD_TARGET_MAILBOX_URL ?? cloudFile?.mailboxUrl;
  return {
    name: apiUrl,
    apiUrl,
    token: (role) => tokens.token(role),
    capabilities: {
      fleetFaults: fleet.status === 200 && Array.isArray(fleet.body?.nodes) ? fleetFaultsAt(apiUrl) : undefined,
      mailbox: mailboxUrl ? mailboxAt(mailboxUrl) : undefined,
      signDemoModule: pki && signerFrom(pki),
      shortCanaryBake: env.KMOD_TARGET_SHORT_CANARY_BAKE === 'true',
    },
    deploymentTimeoutMs: Number(env.KMOD_TARGET_TIMEOUT_SECONDS ?? 900) * 1000,
    close: async () => undefined,
  };
}

/** The target the configuration names: KMOD_TARGET_URL, else the embedded local cloud. */
export function openTarget(env: Record<string, string | undefined> = process.env): Promise<Target> {
  return env.KMOD_TARGET_URL ? remote(env) : embedded();
}
