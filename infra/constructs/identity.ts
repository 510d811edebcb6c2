/**
 * Who issues the API's tokens: by default a Cognito user pool (one group per domain role, the web
 * client and the service client); with `externalIssuer` set, an OIDC issuer the stack only trusts
 * (no user pool: LocalStack's community edition does not emulate Cognito).
 */
import { Duration, RemovalPolicy, aws_cognito as cognito } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { ROLES } from '../../functions/domain/roles.ts';
import type { OrchestratorSettings } from '../settings.ts';
import { Layer } from './layer.ts';

export class Identity extends Layer {
  /** Absent when tokens come from an external issuer. */
  readonly userPool?: cognito.UserPool;
  readonly userClient?: cognito.UserPoolClient;
  readonly serviceClient?: cognito.UserPoolClient;
  /** The OAuth2 token endpoint of the pool's hosted domain, when cognitoDomainPrefix is given. */
  readonly tokenUrl?: string;
  /** The pool's hosted domain (https://<prefix>.auth.<region>.amazoncognito.com), when cognitoDomainPrefix is given: the console signs in there. */
  readonly domainUrl?: string;
  /** More app clients whose tokens the API accepts (the console's, infra/constructs/console.ts). */
  private readonly extraClientIds: string[] = [];

  constructor(
    scope: Construct,
    id: string,
    private readonly props: Pick<OrchestratorSettings, 'externalIssuer' | 'cognitoDomainPrefix'> = {},
  ) {
    super(scope, id);
    if (props.externalIssuer) return;
    this.userPool = new cognito.UserPool(this, 'Users', {
      selfSignUpEnabled: false,
      signInAliases: { email: true, username: true },
      passwordPolicy: { minLength: 14, requireDigits: true, requireLowercase: true, requireUppercase: true, requireSymbols: true },
      mfa: cognito.Mfa.REQUIRED,
      mfaSecondFactor: { otp: true, sms: false },
      featurePlan: cognito.FeaturePlan.PLUS,
      standardThreatProtectionMode: cognito.StandardThreatProtectionMode.FULL_FUNCTION,
      accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // The groups mirror the domain's roles (the Admin API keeps them in step); what a user may do is
    // read from the directory, not from these groups (docs/adr/0013-authorisation-from-the-directory.md).
    for (const role of ROLES) new cognito.CfnUserPoolGroup(this, `Group${role}`, { userPoolId: this.userPool.userPoolId, groupName: role });
    // Registered service principals get a role from their scope (functions/domain/accessTokens.ts SCOPE_ROLES).
    const apiScope = new cognito.ResourceServerScope({ scopeName: 'deploy', scopeDescription: 'deploy and roll back (Deployer)' });
    const readScope = new cognito.ResourceServerScope({ scopeName: 'read', scopeDescription: 'read deployments and clusters (Viewer)' });
    const resourceServer = this.userPool.addResourceServer('Api', { identifier: 'kmod', scopes: [apiScope, readScope] });
    this.userClient = this.userPool.addClient('WebClient', {
      authFlows: { userSrp: true },
      accessTokenValidity: Duration.hours(1),
      refreshTokenValidity: Duration.days(30),
      preventUserExistenceErrors: true,
    });
    this.serviceClient = this.userPool.addClient('ServiceClient', {
      generateSecret: true,
      oAuth: {
        flows: { clientCredentials: true },
        scopes: [cognito.OAuthScope.resourceServer(resourceServer, apiScope), cognito.OAuthScope.resourceServer(resourceServer, readScope)],
      },
      accessTokenValidity: Duration.hours(1),
    });
    if (props.cognitoDomainPrefix) {
      const domain = this.userPool.addDomain('TokenDomain', { cognitoDomain: { domainPrefix: props.cognitoDomainPrefix } });
      this.domainUrl = domain.baseUrl();
      this.tokenUrl = `${this.domainUrl}/oauth2/token`;
    }
  }

  /** Accept tokens issued to this app client too (before the functions are made). */
  acceptClient(clientId: string): void {
    this.extraClientIds.push(clientId);
  }

  /** What a token verifier (functions/lib/auth.ts) needs in its environment: the pool, or the issuer. */
  get verifierEnvironment(): Record<string, string> {
    const external = this.props.externalIssuer;
    if (external) return { JWT_ISSUER: external.issuer, JWT_JWKS_URI: external.jwksUri, JWT_CLIENT_IDS: external.clientIds };
    return {
      COGNITO_USER_POOL_ID: this.userPool!.userPoolId,
      JWT_CLIENT_IDS: [this.userClient!.userPoolClientId, this.serviceClient!.userPoolClientId, ...this.extraClientIds].join(','),
    };
  }
}
