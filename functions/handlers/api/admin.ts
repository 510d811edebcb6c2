import { httpApi, json, parseBody, signedIn } from '../../lib/http.ts';
import { rateLimitSettings, rateLimitSettingsSchema, setRateLimitSettings } from '../../lib/rateLimits.ts';

export const handler = httpApi({
  'GET /api/v1/admin/rate-limits': async () => json(200, await rateLimitSettings()),
  /** A change applies within seconds everywhere: containers re-read the settings every few seconds. */
  'PUT /api/v1/admin/rate-limits': async (event, principal) => {
    const caller = signedIn(principal);
    const value = parseBody(event, rateLimitSettingsSchema);
    await setRateLimitSettings(value, caller.userId);
    return json(200, value);
  },
});
