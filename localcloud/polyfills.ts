/**
 * The one place where Node 22 APIs are provided on Node 20 for code that runs locally.
 * aws-local-stepfunctions uses Promise.withResolvers (ES2024, Node 22+).
 */
const P = Promise as unknown as { withResolvers?: <T>() => { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } };
if (typeof P.withResolvers !== 'function') {
  P.withResolvers = <T>() => {
    let resolve!: (v: T) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
export {};

// Local code runs on Node 20 (Lambda runs nodejs22.x): the SDK's notice about its future Node 22
// requirement is known and would only clutter every run.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
