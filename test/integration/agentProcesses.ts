/** Real agent processes (`scripts/agent.ts`) for the integration suites that enrol hosts. */
import { type ChildProcess, spawn } from 'node:child_process';
import { ROOT } from '../../localcloud/cloud.ts';

/** Agents by name, each in its own process group so that stopping one stops its whole tree. */
export class AgentProcesses {
  private readonly running = new Map<string, { child: ChildProcess; out: string }>();

  /** Start an agent with `args`; resolves with its node id once it listens or dials out. */
  start(name: string, args: string[], timeoutMs = 60_000): Promise<string> {
    const child = spawn('npx', ['tsx', 'scripts/agent.ts', ...args], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const entry = { child, out: '' };
    this.running.set(name, entry);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent ${name} did not start: ${entry.out}`)), timeoutMs);
      const onData = (d: Buffer) => {
        entry.out += d.toString();
        const m = /node agent (\S+) (listening on|dialing out to)/.exec(entry.out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`agent ${name} exited with ${code}: ${entry.out}`));
      });
    });
  }

  /** Kill the agent's process group (as a crash or a pulled plug would) and wait for it to exit. */
  async stop(name: string): Promise<void> {
    const r = this.running.get(name);
    this.running.delete(name);
    if (!r || r.child.exitCode !== null) return;
    const exited = new Promise((res) => r.child.once('exit', res));
    process.kill(-r.child.pid!, 'SIGKILL');
    await exited;
  }

  async stopAll(): Promise<void> {
    for (const name of [...this.running.keys()]) await this.stop(name);
  }

  /** What the agent printed so far (stdout and stderr). */
  output(name: string): string {
    return this.running.get(name)?.out ?? '';
  }

  child(name: string): ChildProcess | undefined {
    return this.running.get(name)?.child;
  }

  names(): string[] {
    return [...this.running.keys()];
  }
}
