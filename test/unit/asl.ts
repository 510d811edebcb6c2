/** Reading ASL files in tests: the states of a file, nested Map processors included. */
import { readFileSync } from 'node:fs';

export interface AslState {
  Type: string;
  Resource?: string;
  Parameters?: Record<string, any>;
  TimeoutSeconds?: number;
  TimeoutSecondsPath?: string;
  MaxConcurrency?: number;
  ItemProcessor?: { States: Record<string, AslState> };
  Next?: string;
  Default?: string;
  Choices?: { Variable: string; StringEquals?: string; Next: string }[];
  Catch?: { Next: string }[];
}

export const readAsl = (file: string): { Comment?: string; StartAt: string; States: Record<string, AslState> } => JSON.parse(readFileSync(file, 'utf8'));

/** Every state of a file by name, Map item processors included (state names are unique per file here). */
export function allStates(file: string): Map<string, AslState> {
  const found = new Map<string, AslState>();
  const walk = (states: Record<string, AslState>) => {
    for (const [name, s] of Object.entries(states)) {
      found.set(name, s);
      if (s.ItemProcessor) walk(s.ItemProcessor.States);
    }
  };
  walk(readAsl(file).States);
  return found;
}

export const placeholders = (file: string) => new Set([...readFileSync(file, 'utf8').matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]));
