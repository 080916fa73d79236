// Minimal oidc-provider v9 authorization server for OAuth mail tests.
// Started by tests/servers/oauth.py on a free port.
// Env: PORT (5900), HOST (127.0.0.1), AT_TTL (access-token lifetime, seconds, 60),
//      RT_TTL (refresh-token lifetime, seconds, 3600),
//      REDIRECT_URIS (comma-separated redirect URIs of the client "portal").
// Added for the portal's own OpenID Connect sign-in (tests/test_sso*.py), none of it changing the defaults:
//      POST_LOGOUT_REDIRECT_URIS (comma-separated, for RP-initiated logout at /session/end),
//      CLOCK_SKEW (seconds this server's clock runs ahead: its tokens and its Date header),
//      a second client "other-client" / "other-secret" (same redirect URIs: ID tokens for another audience),
//      scopes "profile" (name, department) and "groups" (a login starting with "admin" is in "portal-admins"),
//      and a login containing "unverified" whose e-mail is not verified.
// Added for single sign-on's server-side flow (tests/test_sso_flow.py, tests/test_browser_sso.py): ID_TOKEN_CLAIMS=1
//      puts the scopes' claims into the ID token too (as Azure AD and Keycloak do with groups), and a login starting
//      with "manygroups" is in GROUP_COUNT (200) groups named by random IDs as Azure AD names them: an ID token
//      of several kilobytes that compression does not shrink.
// Added for the grant refresh's lease (tests/test_oauth_grants.py): REFRESH_DELAY_MS, how long the token endpoint
//      holds its answer to a refresh_token grant (a slow provider).
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const HOST = process.env.HOST ?? '127.0.0.1';
const PORT = Number(process.env.PORT ?? 5900);
const AT_TTL = Number(process.env.AT_TTL ?? 60);
const RT_TTL = Number(process.env.RT_TTL ?? 3600);
const ISSUER = `http://${HOST}:${PORT}`;
const REDIRECT_URIS = (process.env.REDIRECT_URIS ?? 'http://127.0.0.1:5910/oauth/callback')
  .split(',').map((uri) => uri.trim()).filter(Boolean);

// Any login is accepted (devInteractions); the login *is* the mailbox address.
const emailOf = (accountId) => (accountId.includes('@') ? accountId : `${accountId}@mail.example`);

const POST_LOGOUT_REDIRECT_URIS = (process.env.POST_LOGOUT_REDIRECT_URIS ?? '')
  .split(',').map((uri) => uri.trim()).filter(Boolean);
const CLOCK_SKEW = Number(process.env.CLOCK_SKEW ?? 0);
if (CLOCK_SKEW) {
  const realNow = Date.now;
  Date.now = () => realNow() + CLOCK_SKEW * 1000;  // oidc-provider stamps iat/exp from Date.now()
}
const GROUP_COUNT = Number(process.env.GROUP_COUNT ?? 200);  // Azure AD's own limit for groups in an ID token
const manyGroups = Array.from({ length: GROUP_COUNT }, () => crypto.randomUUID());
const groupsOf = (accountId) => {
  if (accountId.startsWith('manygroups')) return ['staff', ...manyGroups];
  return accountId.startsWith('admin') ? ['portal-admins', 'staff'] : ['staff'];
};

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: 'portal',
    client_secret: 'portal-secret',
    redirect_uris: REDIRECT_URIS,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    post_logout_redirect_uris: POST_LOGOUT_REDIRECT_URIS,
  }, {
    client_id: 'other-client',
    client_secret: 'other-secret',
    redirect_uris: REDIRECT_URIS,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  scopes: ['openid', 'email', 'offline_access', 'mail', 'profile', 'groups'],
  claims: {
    openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'department'], groups: ['groups'],
  },
  conformIdTokenClaims: process.env.ID_TOKEN_CLAIMS !== '1',  // '1': claims in the ID token, not only userinfo
  pkce: { required: () => true },           // default only forces PKCE for public clients
  features: {
    devInteractions: { enabled: true },     // built-in login + consent pages (test only)
    introspection: { enabled: true },       // POST /token/introspection
    revocation: { enabled: true },          // POST /token/revocation
  },
  ttl: {
    AccessToken: AT_TTL,
    RefreshToken: RT_TTL,
    AuthorizationCode: 60,
    Grant: RT_TTL,
    Session: RT_TTL,
    Interaction: 600,
  },
  // refresh tokens only for offline_access (this is also the default)
  issueRefreshToken: async (ctx, client, code) =>
    client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
  // put the mailbox address into every token so introspection returns "email"
  extraTokenClaims: async (ctx, token) =>
    (token.accountId ? { email: emailOf(token.accountId) } : undefined),
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: emailOf(sub),
          email_verified: !sub.includes('unverified'),
          name: `Test ${sub.split('@')[0]}`,
          department: 'Sales',
          groups: groupsOf(sub),
        };
      },
    };
  },
  cookies: { keys: ['oauthlab-test-cookie-key'] },
});
provider.proxy = false;
if (CLOCK_SKEW) {
  provider.use(async (ctx, next) => {  // the Date header follows the skewed clock, as a real skewed server's would
    await next();
    ctx.set('Date', new Date(Date.now()).toUTCString());
  });
}

const REFRESH_DELAY_MS = Number(process.env.REFRESH_DELAY_MS ?? 0);
if (REFRESH_DELAY_MS) {
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && ctx.oidc?.params?.grant_type === 'refresh_token') {
      await new Promise((resolve) => { setTimeout(resolve, REFRESH_DELAY_MS); });
    }
  });
}

provider.listen(PORT, HOST, () => {
  console.log(`oidc-provider ${ISSUER} ready (AccessToken ttl ${AT_TTL}s)`);
});
