#!/usr/bin/env node
// `npx kmod …`: runs scripts/kmod.ts with the project's tsx, the way `npm run agent` runs scripts/agent.ts.
import { register } from 'tsx/esm/api';

register();
await import('../scripts/kmod.ts');
