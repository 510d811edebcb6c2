export const ROLES = ['Admin', 'Deployer', 'Viewer', 'Approver'] as const;
export type Role = (typeof ROLES)[number];

/** Everyone signed in may read. */
export const READERS: readonly Role[] = ['Viewer', 'Deployer', 'Approver', 'Admin'];
