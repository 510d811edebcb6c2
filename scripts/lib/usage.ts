/** Options of an `npm run` script: `--help` prints the usage (exit 0), a bad flag is a usage error (exit 2) before anything runs. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

export function parseOptionsOrExit<const T extends Options>(script: string, usage: string, options: T) {
  let values: ReturnType<typeof parseArgs<{ options: T }>>['values'];
  try {
    values = parseArgs({ options }).values;
  } catch (e) {
    console.error(`${script}: ${(e as Error).message}\n${usage}`);
    process.exit(2);
  }
  if ((values as { help?: boolean }).help) {
    console.log(usage);
    process.exit(0);
  }
  return values;
}

/** A whole number from 1 to `max`, or a usage error (exit 2) before anything runs: NaN counts used to start clouds and print nonsense. */
export function wholeNumberOrExit(script: string, usage: string, flag: string, raw: string, max: number): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > max) {
    console.error(`${script}: ${flag} must be a whole number from 1 to ${max}, got "${raw}"\n${usage}`);
    process.exit(2);
  }
  return n;
}
