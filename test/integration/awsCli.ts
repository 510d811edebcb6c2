/** The AWS CLI v2 against a local cloud's endpoints, as an operator runs it (test/integration/awscli.test.ts checks its answers' shapes). */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { LocalCloud } from '../../localcloud/cloud.ts';

const run = promisify(execFile);

/** The AWS CLI v2 (`.ci/run` installs Debian's awscli), or undefined when the machine has none. */
export async function findAwsCliV2(): Promise<string | undefined> {
  for (const bin of ['/usr/bin/aws', 'aws']) {
    try {
      const { stdout, stderr } = await run(bin, ['--version']);
      if (/^aws-cli\/2\./.test(`${stdout}${stderr}`.trim())) return bin;
    } catch {
      /* not there */
    }
  }
  return undefined;
}

/** The CLI's environment: any credentials, the local Region, no pager and no user configuration. */
export const awsEnv = (): NodeJS.ProcessEnv => ({
  ...process.env,
  AWS_ACCESS_KEY_ID: 'local',
  AWS_SECRET_ACCESS_KEY: 'local',
  AWS_DEFAULT_REGION: 'us-east-1',
  AWS_PAGER: '',
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
});

/** One CLI command as typed (`aws s3 ls …`): its standard output. */
export async function awsCliText(bin: string, args: string[]): Promise<string> {
  return (await run(bin, args, { env: awsEnv(), maxBuffer: 16 * 1024 * 1024 })).stdout;
}

/** Run one CLI command against the cloud (DynamoDB at its own endpoint, the rest at the services port); its JSON answer (an empty answer is `{}`). */
export async function awsCli(bin: string, cloud: Pick<LocalCloud, 'dynamodbUrl' | 'servicesUrl'>, service: string, args: string[]): Promise<any> {
  const endpoint = service === 'dynamodb' ? cloud.dynamodbUrl : cloud.servicesUrl;
  const stdout = await awsCliText(bin, [service, ...args, '--endpoint-url', endpoint, '--output', 'json']);
  return stdout.trim() ? JSON.parse(stdout) : {};
}
