// A real OpenID Connect provider for the console's login test (oidc-provider, the
// certified Node implementation), on 127.0.0.1. Accounts: any login name; the claims
// come from the name: `inspector-wang` → INSPECTOR, `dept-SCJG-li` → DEPARTMENT SCJG.
// Usage: node oidc.mjs REDIRECT_URI   — prints `issuer: URL` once it listens.
import Provider from 'oidc-provider';
import http from 'node:http';

const redirect = process.argv[2];
if (!redirect) {
  console.error('usage: node oidc.mjs REDIRECT_URI');
  process.exit(2);
}

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

function claimsOf(id) {
  const dept = /^dept-([A-Za-z0-9_-]+?)-/.exec(id);
  if (dept) return { jiancha_role: 'DEPARTMENT', jiancha_department: dept[1], name: id };
  if (id.startsWith('auditor')) return { jiancha_role: 'AUDITOR', name: id };
  if (id.startsWith('nobody')) return { name: id };
  return { jiancha_role: ['staff', 'jjjc-inspectors'], name: id };
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'jiancha-console',
    client_secret: 'console-test-secret-0123456789',
    redirect_uris: [redirect],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  claims: { openid: ['sub', 'jiancha_role', 'jiancha_department', 'name'] },
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, ...claimsOf(id) }),
  }),
  cookies: { keys: ['jiancha-oidc-test-cookie-key'] },
});
server.on('request', provider.callback());
console.log(`issuer: ${issuer}`);
