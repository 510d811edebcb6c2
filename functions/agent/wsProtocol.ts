/**
 * The dial-out transport of the agent protocol: one WebSocket the agent keeps open to the
 * orchestrator (an API Gateway WebSocket API on AWS, the local gateway's `/ws` locally), over which
 * the orchestrator sends the same signed requests it would send over HTTP.
 *
 * Connect: the agent opens the orchestrator's WebSocket URL with the protocol's HMAC headers over
 * `GET /ws/agent/<nodeId>` (empty body), signed with the node's own key, and names itself in
 * `x-agent-node-id`. The connect is refused when the signature is bad, the node is unknown,
 * decommissioned or not dial-out, or the timestamp is not newer than the last accepted connect.
 *
 * Messages (JSON text frames):
 *
 *   orchestrator → agent  {type:"request", requestId, method, path, headers, body}
 *                         headers: the x-agent-* signature headers; body: the exact signed text
 *   agent → orchestrator  {type:"response", requestId, status, body}
 *                         status: the HTTP status the agent would have answered; body: its JSON
 *   agent → orchestrator  {type:"ping"}   (keepalive; the orchestrator answers {type:"pong"})
 *
 * Messages carry no `action` field: on API Gateway (route selection `$request.body.action`) they
 * reach the `$default` route. Other clients of the same WebSocket API (operators' event
 * subscriptions) use `action` to reach their own routes.
 */
import { z } from 'zod';

/** The path the connect request signs (not a URL path: API Gateway's WebSocket URL has none). */
export const agentConnectPath = (nodeId: string) => `/ws/agent/${nodeId}`;
/** Names the connecting node; the signature proves it holds that node's key. */
export const NODE_ID_HEADER = 'x-agent-node-id';
/** API Gateway's limit on one WebSocket message (frames of 32 KB, messages of 128 KB). */
export const MAX_MESSAGE_BYTES = 128 * 1024;

const requestId = z.string().regex(/^[A-Za-z0-9-]{8,64}$/, 'is not a request id');

export const agentCommandSchema = z
  .object({
    type: z.literal('request'),
    requestId,
    method: z.enum(['GET', 'POST', 'PUT', 'DELETE']),
    path: z.string().startsWith('/').max(2048),
    headers: z.record(z.string().max(64), z.string().max(1024)),
    body: z.string(),
  })
  .strict();
export type AgentCommand = z.infer<typeof agentCommandSchema>;

export const agentReplySchema = z
  .object({
    type: z.literal('response'),
    requestId,
    status: z.number().int().min(100).max(599),
    body: z.unknown(),
  })
  .strict();
export type AgentReply = z.infer<typeof agentReplySchema>;

export const pingSchema = z.object({ type: z.literal('ping') }).strict();
export const pongSchema = z.object({ type: z.literal('pong') }).strict();

/** What an agent may send, told apart by `type`. */
export const agentMessageSchema = z.discriminatedUnion('type', [agentReplySchema, pingSchema]);
export type AgentMessage = z.infer<typeof agentMessageSchema>;

/** What the orchestrator may send an agent. */
export const orchestratorMessageSchema = z.discriminatedUnion('type', [agentCommandSchema, pongSchema]);
export type OrchestratorMessage = z.infer<typeof orchestratorMessageSchema>;

/** Parse one text frame; a frame that is not JSON or not one of the messages is `undefined`. */
export function parseMessage<T>(schema: z.ZodType<T>, text: string): T | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = schema.safeParse(raw);
  return parsed.success ? parsed.data : undefined;
}
