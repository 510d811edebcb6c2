/** `npm start` as a person or a script uses it: wait for cloud.json and /health, call the API, Ctrl-C. */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { javaProcessesFor } from './harness.ts';

describe('npm start', () => {
  it('writes .local/cloud.json with working tokens, serves /health, and Ctrl-C leaves no process behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmod-start-'));
    const child = spawn(process.execPath, ['--import', 'tsx', 'localcloud/main.ts'], {
      env: { ...process.env, PORT: '0', KMOD_DATA_DIR: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, as a terminal runs a foreground job: Ctrl-C signals the whole group.
      detached: true,
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const file = join(dir, 'cloud.json');
    for (let i = 0; i < 300 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(file), output).toBe(true);
    const cloud = JSON.parse(readFileSync(file, 'utf8')) as {
      apiUrl: string;
      mailboxUrl: string;
      tokens: Record<string, string>;
      routers: Record<string, string>;
    };
    expect(Object.keys(cloud.tokens).sort()).toEqual(['Admin', 'Approver', 'Deployer', 'Viewer']);
    let health = 0;
    for (let i = 0; i < 50 && health !== 200; i++) {
      health = (await fetch(`${cloud.apiUrl}/health`)).status;
      if (health !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(health).toBe(200);
    const clusters = await fetch(`${cloud.apiUrl}/api/v1/clusters`, { headers: { authorization: `Bearer ${cloud.tokens.Viewer}` } });
    expect(clusters.status).toBe(200);
    expect((await fetch(cloud.mailboxUrl)).status).toBe(200);
    // The traffic routers: in cloud.json, printed, and answering through to a node.
    expect(Object.keys(cloud.routers).sort()).toEqual(['Production', 'Staging']);
    for (let i = 0; i < 50 && !output.includes('Ctrl-C stops everything'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(output).toContain(`Routers      Staging ${cloud.routers.Staging}   Production ${cloud.routers.Production}`);
    const routed = await fetch(`${cloud.routers.Staging}/work`);
    expect(routed.status).toBe(200);
    expect(routed.headers.get('x-kmod-node')).toMatch(/^stg-\d+$/);
    expect(javaProcessesFor(dir).length).toBeGreaterThan(0);

    // The JVM (and its watchdog shell) run in a process group of their own, out of Ctrl-C's reach:
    // the cloud stops them itself once its pollers have stopped.
    for (const pid of javaProcessesFor(dir)) {
      const processGroup = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[2]);
      expect(processGroup).not.toBe(child.pid);
    }
    const beforeCtrlC = output.length;
    process.kill(-child.pid!, 'SIGINT');
    expect(await exited).toBe(0);
    // Ctrl-C reaches every process of the group: DynamoDB Local must not die under the cloud's
    // pollers before they stop (they printed "stream polling failed … ECONNREFUSED").
    expect(output.slice(beforeCtrlC)).not.toMatch(/failed|ECONNREFUSED|Error/);
    await new Promise((r) => setTimeout(r, 500));
    expect(javaProcessesFor(dir)).toEqual([]);
    await expect(fetch(`${cloud.apiUrl}/health`)).rejects.toThrow();
    await expect(fetch(`${cloud.routers.Staging}/work`)).rejects.toThrow();
  });
});
