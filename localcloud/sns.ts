/**
 * SNS, locally: the Query protocol calls the product uses (CreateTopic, Subscribe,
 * ConfirmSubscription, Unsubscribe, ListSubscriptionsByTopic, Get/SetSubscriptionAttributes,
 * Publish) with filter policies on message attributes. Email subscriptions are delivered to a mailbox a person opens in a browser;
 * as on AWS, an email subscription is pending until its confirmation link is followed.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { ACCOUNT, REGION } from './lambda.ts';

export interface Email {
  id: string;
  to: string;
  from: string;
  subject: string;
  body: string;
  at: string;
  topicArn: string;
}

interface Subscription {
  arn: string;
  topicArn: string;
  protocol: string;
  endpoint: string;
  confirmed: boolean;
  token: string;
  filterPolicy?: Record<string, unknown[]>;
}

interface SnsState {
  topics: string[];
  subscriptions: Subscription[];
  mailbox: Email[];
}

const XMLNS = 'http://sns.amazonaws.com/doc/2010-03-31/';
const esc = (s: string) => s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);

function xml(res: ServerResponse, action: string, result: string, status = 200) {
  const body = `<${action}Response xmlns="${XMLNS}"><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></${action}Response>`;
  res.writeHead(status, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function xmlError(res: ServerResponse, status: number, code: string, message: string) {
  const body = `<ErrorResponse xmlns="${XMLNS}"><Error><Type>Sender</Type><Code>${code}</Code><Message>${esc(message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`;
  res.writeHead(status, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Query-protocol maps: `Prefix.entry.N.key` / `.value` pairs. */
function entries(form: URLSearchParams, prefix: string, keyName: string, valueName: string): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 1; form.has(`${prefix}.entry.${i}.${keyName}`); i++) {
    out.set(form.get(`${prefix}.entry.${i}.${keyName}`)!, form.get(`${prefix}.entry.${i}.${valueName}`) ?? '');
  }
  return out;
}

export function matchesFilterPolicy(policy: Record<string, unknown[]> | undefined, attributes: Map<string, string>): boolean {
  if (!policy) return true;
  return Object.entries(policy).every(([name, allowed]) => {
    const value = attributes.get(name);
    if (value === undefined) return false;
    return allowed.some((a) =>
      typeof a === 'string'
        ? a === value
        : typeof a === 'object' && a !== null && 'prefix' in a
          ? value.startsWith(String((a as { prefix: string }).prefix))
          : false,
    );
  });
}

export class LocalSns {
  private state: SnsState;

  constructor(
    private readonly file: string,
    private readonly baseUrl: () => string,
  ) {
    this.state = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as SnsState) : { topics: [], subscriptions: [], mailbox: [] };
  }

  private save() {
    mkdirSync(dirname(this.file), { recursive: true });
    writeFileSync(this.file, JSON.stringify(this.state, null, 1));
  }

  get mailbox(): Email[] {
    return [...this.state.mailbox].reverse();
  }

  createTopic(name: string): string {
    const arn = `arn:aws:sns:${REGION}:${ACCOUNT}:${name}`;
    if (!this.state.topics.includes(arn)) {
      this.state.topics.push(arn);
      this.save();
    }
    return arn;
  }

  /** `silent` skips the confirmation email (for subscriptions the local cloud confirms itself). */
  subscribe(topicArn: string, protocol: string, endpoint: string, filterPolicy?: Record<string, unknown[]>, opts: { silent?: boolean } = {}): Subscription {
    if (!this.state.topics.includes(topicArn)) throw Object.assign(new Error(`Topic does not exist: ${topicArn}`), { code: 'NotFound' });
    const existing = this.state.subscriptions.find((s) => s.topicArn === topicArn && s.protocol === protocol && s.endpoint === endpoint);
    if (existing) {
      existing.filterPolicy = filterPolicy ?? existing.filterPolicy;
      this.save();
      return existing;
    }
    const sub: Subscription = {
      arn: `${topicArn}:${randomUUID()}`,
      topicArn,
      protocol,
      endpoint,
      confirmed: protocol !== 'email',
      token: randomBytes(32).toString('hex'),
      filterPolicy,
    };
    this.state.subscriptions.push(sub);
    if (protocol === 'email' && !opts.silent) {
      const link = `${this.baseUrl()}/_sns/confirm?TopicArn=${encodeURIComponent(topicArn)}&Token=${sub.token}`;
      this.deliver(
        sub,
        'AWS Notification - Subscription Confirmation',
        `You have chosen to subscribe to the topic:\n${topicArn}\n\nTo confirm this subscription, click or visit the link below:\n${link}\n`,
      );
    }
    this.save();
    return sub;
  }

  confirm(topicArn: string, token: string): Subscription {
    const sub = this.state.subscriptions.find((s) => s.topicArn === topicArn && s.token === token);
    if (!sub) throw Object.assign(new Error('Invalid token'), { code: 'InvalidParameter' });
    sub.confirmed = true;
    this.save();
    return sub;
  }

  private subscriptionByArn(arn: string): Subscription {
    const sub = this.state.subscriptions.find((s) => s.arn === arn);
    if (!sub) throw Object.assign(new Error('Subscription does not exist'), { code: 'NotFound' });
    return sub;
  }

  publish(topicArn: string, message: string, subject: string | undefined, attributes: Map<string, string>): string {
    if (!this.state.topics.includes(topicArn)) throw Object.assign(new Error(`Topic does not exist: ${topicArn}`), { code: 'NotFound' });
    const id = randomUUID();
    for (const sub of this.state.subscriptions) {
      if (sub.topicArn !== topicArn || !sub.confirmed || !matchesFilterPolicy(sub.filterPolicy, attributes)) continue;
      if (sub.protocol === 'email') this.deliver(sub, subject ?? 'AWS Notification Message', message);
    }
    this.save();
    return id;
  }

  private deliver(sub: Subscription, subject: string, body: string) {
    this.state.mailbox.push({
      id: randomUUID(),
      to: sub.endpoint,
      from: 'no-reply@sns.amazonaws.com',
      subject,
      body,
      at: new Date().toISOString(),
      topicArn: sub.topicArn,
    });
  }

  /** The Query protocol (form-encoded POST, XML answers). */
  handleQuery(form: URLSearchParams, res: ServerResponse) {
    const action = form.get('Action') ?? '';
    try {
      switch (action) {
        case 'CreateTopic':
          return xml(res, action, `<TopicArn>${this.createTopic(form.get('Name') ?? '')}</TopicArn>`);
        case 'Subscribe': {
          const attrs = entries(form, 'Attributes', 'key', 'value');
          const policy = attrs.get('FilterPolicy');
          const [topicArn, protocol, endpoint] = [form.get('TopicArn') ?? '', form.get('Protocol') ?? '', form.get('Endpoint') ?? ''];
          const existing = this.state.subscriptions.find((s) => s.topicArn === topicArn && s.protocol === protocol && s.endpoint === endpoint);
          // As SNS does: the same address again is the same subscription, but not with other attributes.
          if (existing && JSON.stringify(existing.filterPolicy ?? null) !== JSON.stringify(policy ? JSON.parse(policy) : null)) {
            throw Object.assign(new Error('Invalid parameter: Attributes Reason: Subscription already exists with different attributes'), {
              code: 'InvalidParameter',
            });
          }
          const sub = this.subscribe(topicArn, protocol, endpoint, policy ? JSON.parse(policy) : undefined);
          // ReturnSubscriptionArn: the ARN even while the subscription waits for its confirmation.
          const arn = sub.confirmed || form.get('ReturnSubscriptionArn') === 'true' ? sub.arn : 'pending confirmation';
          return xml(res, action, `<SubscriptionArn>${esc(arn)}</SubscriptionArn>`);
        }
        case 'GetSubscriptionAttributes': {
          const sub = this.subscriptionByArn(form.get('SubscriptionArn') ?? '');
          const attributes: Record<string, string> = {
            SubscriptionArn: sub.arn,
            TopicArn: sub.topicArn,
            Owner: ACCOUNT,
            Protocol: sub.protocol,
            Endpoint: sub.endpoint,
            PendingConfirmation: String(!sub.confirmed),
            ConfirmationWasAuthenticated: 'false',
            RawMessageDelivery: 'false',
            ...(sub.filterPolicy ? { FilterPolicy: JSON.stringify(sub.filterPolicy), FilterPolicyScope: 'MessageAttributes' } : {}),
          };
          const members = Object.entries(attributes)
            .map(([k, v]) => `<entry><key>${k}</key><value>${esc(v)}</value></entry>`)
            .join('');
          return xml(res, action, `<Attributes>${members}</Attributes>`);
        }
        case 'SetSubscriptionAttributes': {
          const sub = this.subscriptionByArn(form.get('SubscriptionArn') ?? '');
          if (form.get('AttributeName') !== 'FilterPolicy') {
            throw Object.assign(new Error(`Invalid parameter: AttributeName (only FilterPolicy is served locally)`), { code: 'InvalidParameter' });
          }
          const value = form.get('AttributeValue') ?? '';
          sub.filterPolicy = value ? (JSON.parse(value) as Record<string, unknown[]>) : undefined;
          this.save();
          return xml(res, action, '');
        }
        case 'ListTopics': {
          const members = this.state.topics.map((arn) => `<member><TopicArn>${esc(arn)}</TopicArn></member>`).join('');
          return xml(res, action, `<Topics>${members}</Topics>`);
        }
        case 'ConfirmSubscription':
          return xml(res, action, `<SubscriptionArn>${this.confirm(form.get('TopicArn') ?? '', form.get('Token') ?? '').arn}</SubscriptionArn>`);
        case 'Unsubscribe':
          this.state.subscriptions = this.state.subscriptions.filter((s) => s.arn !== form.get('SubscriptionArn'));
          this.save();
          return xml(res, action, '');
        case 'ListSubscriptionsByTopic': {
          const members = this.state.subscriptions
            .filter((s) => s.topicArn === form.get('TopicArn'))
            .map(
              (s) =>
                `<member><SubscriptionArn>${s.confirmed ? s.arn : 'PendingConfirmation'}</SubscriptionArn><Protocol>${s.protocol}</Protocol><Endpoint>${esc(s.endpoint)}</Endpoint><TopicArn>${s.topicArn}</TopicArn><Owner>${ACCOUNT}</Owner></member>`,
            )
            .join('');
          return xml(res, action, `<Subscriptions>${members}</Subscriptions>`);
        }
        case 'Publish': {
          const attrs = new Map<string, string>();
          for (let i = 1; form.has(`MessageAttributes.entry.${i}.Name`); i++) {
            attrs.set(form.get(`MessageAttributes.entry.${i}.Name`)!, form.get(`MessageAttributes.entry.${i}.Value.StringValue`) ?? '');
          }
          const id = this.publish(form.get('TopicArn') ?? '', form.get('Message') ?? '', form.get('Subject') ?? undefined, attrs);
          return xml(res, action, `<MessageId>${id}</MessageId>`);
        }
        default:
          return xmlError(res, 400, 'InvalidAction', `The action ${action} is not valid for this endpoint.`);
      }
    } catch (e) {
      const code = (e as { code?: string }).code ?? 'InvalidParameter';
      return xmlError(res, code === 'NotFound' ? 404 : 400, code, (e as Error).message);
    }
  }

  /** The mailbox pages: a list, one message, and JSON for scripts. */
  handleMailbox(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://local');
    if (url.pathname === '/_sns/confirm') {
      try {
        this.confirm(url.searchParams.get('TopicArn') ?? '', url.searchParams.get('Token') ?? '');
        return html(res, 200, 'Subscription confirmed', '<p>Subscription confirmed. You will now receive messages from this topic.</p>');
      } catch (e) {
        return html(res, 400, 'Confirmation failed', `<p>${esc((e as Error).message)}</p>`);
      }
    }
    if (url.pathname === '/_mailbox/messages.json') {
      const body = JSON.stringify({ messages: this.mailbox });
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(body);
    }
    const one = /^\/_mailbox\/([0-9a-f-]{36})$/.exec(url.pathname);
    if (one) {
      const m = this.state.mailbox.find((x) => x.id === one[1]);
      if (!m) return html(res, 404, 'Not found', '<p>No such message.</p>');
      const linked = esc(m.body).replace(/https?:\/\/[^\s<]+/g, (u) => `<a href="${u}">${u}</a>`);
      return html(
        res,
        200,
        m.subject,
        `<p><a href="/_mailbox">&larr; Mailbox</a></p><h1>${esc(m.subject)}</h1><p class="meta">To ${esc(m.to)} &middot; from ${esc(m.from)} &middot; ${m.at}</p><pre>${linked}</pre>`,
      );
    }
    const rows = this.mailbox
      .map((m) => `<tr><td>${m.at.replace('T', ' ').slice(0, 19)}</td><td>${esc(m.to)}</td><td><a href="/_mailbox/${m.id}">${esc(m.subject)}</a></td></tr>`)
      .join('');
    return html(
      res,
      200,
      'Local mailbox',
      `<h1>Local mailbox</h1><p class="meta">Email sent by the local SNS to email subscriptions. Newest first.</p><table><thead><tr><th>Received</th><th>To</th><th>Subject</th></tr></thead><tbody>${rows || '<tr><td colspan="3">No messages yet.</td></tr>'}</tbody></table>`,
    );
  }
}

function html(res: ServerResponse, status: number, title: string, content: string) {
  const body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><meta name="viewport" content="width=device-width, initial-scale=1"><style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}table{border-collapse:collapse;width:100%}td,th{padding:.4rem .6rem;border-bottom:1px solid #ddd;text-align:left}pre{white-space:pre-wrap;background:#f6f6f6;padding:1rem;border-radius:6px}.meta{color:#666}</style></head><body>${content}</body></html>`;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
  });
  res.end(body);
}
