/** The `kmod` CLI (bin/kmod.js runs this with tsx). See scripts/lib/kmod/program.ts and the README, "The kmod CLI". */
import { run } from './lib/kmod/program.ts';

process.exitCode = await run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr });
