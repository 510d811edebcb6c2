/**
 * Lambda, locally: the handlers in functions/catalog.ts invoked in-process with a real Lambda
 * context object. A thrown error becomes what the Lambda service reports: errorType (the error's
 * name), errorMessage and trace.
 *
 * Many invocations run at once in this one process, as on Lambda Managed Instances with
 * AWS_LAMBDA_MAX_CONCURRENCY: each runs inside the Lambda runtime's multi-concurrency InvokeStore
 * (AsyncLocalStorage), so the Powertools Logger's appended keys and Lambda context, and the
 * Metrics' stored metrics, belong to the invocation that made them (docs/adr/0030-telemetry.md).
 */
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InvokeStore, InvokeStoreBase } from '@aws/lambda-invoke-store';
import type { Context } from 'aws-lambda';
import { FUNCTIONS, type FunctionId, type FunctionSpec } from '../functions/catalog.ts';

export const ACCOUNT = '000000000000';
export const REGION = 'us-east-1';

type Handler = (event: unknown, context: Context) => Promise<unknown>;

export interface LambdaErrorPayload {
  errorType: string;
  errorMessage: string;
  trace: string[];
}

/** What the Lambda service reports when a function throws. */
export class LambdaFunctionError extends Error {
  constructor(readonly payload: LambdaErrorPayload) {
    super(JSON.stringify(payload));
    this.name = payload.errorType;
  }
}

/**
 * What Powertools reads to scope its state per invocation (with the InvokeStore below). Set by
 * the local cloud before any function is loaded.
 */
export const MAX_CONCURRENCY_ENV = { AWS_LAMBDA_MAX_CONCURRENCY: '1000' };

/**
 * The runtime's InvokeStore, made for concurrent invocations. Made as this module loads: the AWS
 * SDK asks for the store on its first request, and would otherwise make the single-invocation one.
 */
const invokeStore = InvokeStore.getInstanceAsync(true);

/** The store, checked to keep concurrent invocations apart (an earlier single-invocation store would not). */
async function concurrentInvokeStore(): Promise<InvokeStoreBase> {
  const store = await invokeStore;
  const seen = await Promise.all(
    ['a', 'b'].map((id) =>
      store.run({ probe: id }, async () => {
        await new Promise((r) => setImmediate(r));
        return store.get('probe');
      }),
    ),
  );
  if (seen[0] !== 'a' || seen[1] !== 'b')
    throw new Error('the Lambda InvokeStore in this process keeps one invocation at a time; the local cloud needs its concurrent one');
  return store;
}

export const functionName = (id: FunctionId) => `kmod-${id}`;
export const functionArn = (id: FunctionId) => `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${functionName(id)}`;

export class LocalLambda {
  /** Each function's module, imported at its first invocation (a cold start) or by load(). */
  private readonly handlers = new Map<string, Promise<{ handler: Handler; spec: FunctionSpec }>>();
  invocations = 0;
  /** Invocations per function name (which functions ran). */
  readonly invocationsOf = new Map<string, number>();
  /** The runtime's concurrent InvokeStore, checked once; every invocation runs in it. */
  private readonly store: Promise<InvokeStoreBase> = concurrentInvokeStore();
  /** What Lambda would bill for duration: each invocation's milliseconds (rounded up) × its memory, in GB-seconds. */
  billedGbSeconds = 0;

  constructor(private readonly root: string) {
    // Awaited by every invocation (which then fails with the reason); never an unhandled rejection before that.
    this.store.catch(() => undefined);
  }

  /**
   * The function of this name: its module is imported once, when first needed, as Lambda loads a
   * function at its first (cold) invocation. The local cloud's start-up loads only the functions it
   * invokes and warms the rest once it is healthy (docs/adr/0037-local-cloud-start-up.md).
   */
  private handlerOf(name: string): Promise<{ handler: Handler; spec: FunctionSpec }> | undefined {
    let loaded = this.handlers.get(name);
    if (loaded) return loaded;
    const entry = Object.entries(FUNCTIONS).find(([id]) => functionName(id as FunctionId) === name);
    if (!entry) return undefined;
    const spec = entry[1];
    loaded = import(pathToFileURL(resolve(this.root, spec.entry)).href).then((mod: { handler?: Handler }) => {
      if (typeof mod.handler !== 'function') throw new Error(`${spec.entry} exports no handler`);
      return { handler: mod.handler, spec };
    });
    this.handlers.set(name, loaded);
    return loaded;
  }

  /** Import these functions now, e.g. while waiting on something else (a failing import rejects). */
  async preload(ids: FunctionId[]): Promise<void> {
    await this.store;
    await Promise.all(ids.map((id) => this.handlerOf(functionName(id))));
  }

  /** Import every function now (a failing import rejects). */
  async load(): Promise<void> {
    await this.store;
    for (const id of Object.keys(FUNCTIONS) as FunctionId[]) await this.handlerOf(functionName(id));
  }

  /** Invoke by name or ARN; resolves with the result or rejects with a LambdaFunctionError. */
  async invoke(nameOrArn: string, event: unknown): Promise<unknown> {
    const name = nameOrArn.startsWith('arn:') ? nameOrArn.split(':')[6] : nameOrArn;
    const loading = this.handlerOf(name);
    if (!loading) throw new LambdaFunctionError({ errorType: 'ResourceNotFoundException', errorMessage: `Function not found: ${nameOrArn}`, trace: [] });
    const started = Date.now();
    let fn: { handler: Handler; spec: FunctionSpec };
    try {
      fn = await loading;
    } catch (e) {
      // What Lambda reports when a function's module fails to load.
      const err = e as Error;
      throw new LambdaFunctionError({ errorType: 'Runtime.ImportModuleError', errorMessage: err.message, trace: (err.stack ?? '').split('\n') });
    }
    const { handler, spec } = fn;
    const requestId = randomUUID();
    const context: Context = {
      callbackWaitsForEmptyEventLoop: true,
      functionName: name,
      functionVersion: '$LATEST',
      invokedFunctionArn: `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${name}`,
      memoryLimitInMB: String(spec.memoryMb),
      awsRequestId: requestId,
      logGroupName: `/aws/lambda/${name}`,
      logStreamName: `local/${requestId}`,
      getRemainingTimeInMillis: () => Math.max(0, spec.timeoutSeconds * 1000 - (Date.now() - started)),
      done: () => undefined,
      fail: () => undefined,
      succeed: () => undefined,
    };
    this.invocations++;
    this.invocationsOf.set(name, (this.invocationsOf.get(name) ?? 0) + 1);
    // A JSON round trip, as over the wire: handlers never share objects with their caller.
    const payload = JSON.parse(JSON.stringify(event ?? null)) as unknown;
    try {
      const run = () => handler(payload, context);
      const store = await this.store;
      const result = await store.run({ [InvokeStoreBase.PROTECTED_KEYS.REQUEST_ID]: requestId }, run);
      return result === undefined ? null : JSON.parse(JSON.stringify(result));
    } catch (e) {
      const err = e as Error;
      throw new LambdaFunctionError({ errorType: err.name || 'Error', errorMessage: err.message, trace: (err.stack ?? '').split('\n') });
    } finally {
      this.billedGbSeconds += (Math.ceil(Date.now() - started) / 1000) * (spec.memoryMb / 1024);
    }
  }
}
