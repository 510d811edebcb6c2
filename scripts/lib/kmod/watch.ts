/**
 * `--watch`: a source of deployment snapshots, and a renderer that shows them.
 *
 * Today the only source polls GET /api/v1/deployments/{id}; a WebSocket source (issue 11 item 2)
 * implements the same `ProgressSource` and replaces it without touching the renderer
 * (docs/adr/0026-kmod-cli.md).
 */
import { type KmodApi, type Schemas, unwrap } from '../../../sdk/typescript/client.ts';
import { deploymentLines, exitCodeFor, type Line } from './format.ts';

export interface ProgressSource {
  /** Snapshots of the deployment, the first at once, then each time it changes, ending once it finished. */
  updates(executionId: string): AsyncIterable<Schemas['Deployment']>;
}

export function pollingSource(client: KmodApi, intervalMs = 1000, sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))): ProgressSource {
  return {
    async *updates(executionId: string) {
      let last = '';
      for (;;) {
        const d = await unwrap(client.GET('/api/v1/deployments/{executionId}', { params: { path: { executionId } } }));
        const seen = JSON.stringify(d);
        if (seen !== last) {
          last = seen;
          yield d;
        }
        if (exitCodeFor(d.status) !== undefined) return;
        await sleep(intervalMs);
      }
    },
  };
}

export interface Output {
  write(s: string): void;
  isTTY?: boolean;
}

/** Plain lines, one per change (pipes, CI logs): each line that is new or different since the last snapshot. */
export function plainRenderer(out: Output) {
  const shown = new Map<string, string>();
  return (lines: Line[]) => {
    for (const l of lines) {
      if (shown.get(l.key) === l.text) continue;
      shown.set(l.key, l.text);
      out.write(`${new Date().toISOString().slice(11, 19)} ${l.text.trim()}\n`);
    }
  };
}

/** On a terminal: the whole view, redrawn in place. */
export function ttyRenderer(out: Output) {
  let height = 0;
  return (lines: Line[]) => {
    const text = lines.map((l) => l.text).join('\n');
    out.write(`${height ? `\x1b[${height}A\x1b[0J` : ''}${text}\n`);
    height = lines.length;
  };
}

/** Watch until the deployment finishes; answers the exit code its final status means. */
export async function watch(source: ProgressSource, executionId: string, out: Output): Promise<number> {
  const render = out.isTTY ? ttyRenderer(out) : plainRenderer(out);
  let status = '';
  for await (const d of source.updates(executionId)) {
    status = d.status;
    render(deploymentLines(d));
  }
  return exitCodeFor(status) ?? 1;
}
