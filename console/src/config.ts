/**
 * What the console needs to know about where it runs, read from `config.json` beside index.html:
 * the local cloud answers it (localcloud/console.ts); on AWS the CDK writes it into the bucket
 * (infra/constructs/console.ts).
 */
export interface LocalAuth {
  mode: 'local';
  /** POST {userId} → {access_token}: the local cloud's sign-in (localcloud/identityControl.ts). */
  tokenUrl: string;
  /** The dev users to offer (any user id of the directory is accepted too). */
  users: { userId: string; username: string; role: string }[];
}

export interface CognitoAuth {
  mode: 'cognito';
  /** The user pool's issuer, e.g. https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc. */
  authority: string;
  clientId: string;
  /** The hosted UI's domain, e.g. https://kmod-123.auth.eu-west-1.amazoncognito.com (sign-out). */
  domain: string;
  scope: string;
}

export interface ConsoleConfig {
  apiUrl: string;
  wsUrl?: string;
  auth: LocalAuth | CognitoAuth;
}

export async function loadConfig(): Promise<ConsoleConfig> {
  const r = await fetch(new URL('config.json', document.baseURI), { cache: 'no-store' });
  if (!r.ok) throw new Error(`config.json: HTTP ${r.status}`);
  return (await r.json()) as ConsoleConfig;
}
