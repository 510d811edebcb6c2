export const ROLES = ['Admin', 'Deployer', 'Viewer', 'Approver'] as const;
export type Role = (typeof ROLES)[number];

/** Everyone signed in may read. */
export const READERS: readonly Role[] = ['Viewer', 'Deployer', 'Approver', 'Admin'];

/** A signed-in caller, as the authorizer describes it. */
export interface Principal {
  userId: string;
  username: string;
  roles: Role[];
}
