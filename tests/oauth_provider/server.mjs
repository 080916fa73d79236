// Minimal oidc-provider v9 authorization server for OAuth mail tests.
// Started by tests/servers/oauth.py on a free port.
// Env: PORT (5900), HOST (127.0.0.1), AT_TTL (access-token lifetime, seconds, 60),
//      RT_TTL (refresh-token lifetime, seconds, 3600),
//      REDIRECT_URIS (comma-separated redirect URIs of the client "portal").
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

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: 'portal',
    client_secret: 'portal-secret',
    redirect_uris: REDIRECT_URIS,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  scopes: ['openid', 'email', 'offline_access', 'mail'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
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
      async claims() { return { sub, email: emailOf(sub), email_verified: true }; },
    };
  },
  cookies: { keys: ['oauthlab-test-cookie-key'] },
});
provider.proxy = false;

provider.listen(PORT, HOST, () => {
  console.log(`oidc-provider ${ISSUER} ready (AccessToken ttl ${AT_TTL}s)`);
});
