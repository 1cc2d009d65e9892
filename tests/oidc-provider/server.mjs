// A real OpenID provider for the contract suite: panva's oidc-provider (OpenID-certified), with
// its development login form, one registered test client and accounts made up from the login
// name. Started by the suite (tests/contract/src/provider.rs); stops when its stdin closes.
//
//   node server.mjs [PORT]     (0 or nothing: a free port)
//
// Prints one line `issuer http://127.0.0.1:PORT` once it accepts connections.
//
// The login name is the account: `alice@example.com` signs in with that email, verified.
// Prefixes before the email change what the provider asserts (they are part of the `sub`, so
// each combination is its own identity):
//   unverified:   email_verified is false
//   wrong-aud:    the ID token is signed (with the provider's real key) for another audience
//   wrong-iss:    the ID token is signed (with the provider's real key) with another issuer
//   other:        nothing changes but the subject (another identity with the same email)
//   rotated:      the provider rotates its keys: the ID token is signed with a new key,
//                 which the JWKS publishes from then on (the app has cached the old set)
//   forged:       the ID token is signed with a key the provider never published, under the
//                 kid of its real key
//   old-iat:      the ID token (re-signed with the real key) says it was issued a day ago
//                 (its exp still an hour ahead)
//   future-iat:   the ID token says it was issued an hour from now
//   future-nbf:   the ID token says it is not valid before an hour from now
// The password field of the form is ignored.

import crypto from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

export const CLIENT_ID = 'authkit-test';
export const CLIENT_SECRET = 'authkit-test-secret-0123456789abcdef';

const FLAGS = new Set([
  'unverified', 'wrong-aud', 'wrong-iss', 'other', 'rotated', 'forged',
  'old-iat', 'future-iat', 'future-nbf',
]);

/** The flags and the email of a login name. */
function parseLogin(login) {
  const parts = String(login).split(':');
  const email = parts.pop();
  return { flags: new Set(parts.filter((p) => FLAGS.has(p))), email };
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key-1', use: 'sig', alg: 'RS256' };
// Keys made by rotations: each `rotated:` token is signed with a new key, published in the JWKS
// from that moment on (so an app that cached the set before has to fetch it again).
const rotatedKeys = [];
// A key nobody publishes.
const forger = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

let handler = (_req, res) => { res.statusCode = 503; res.end(); };
const server = http.createServer((req, res) => handler(req, res));
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    // Any loopback port: the apps under test bind to port 0 (see redirectUriAllowed below).
    redirect_uris: ['http://127.0.0.1/auth/oauth/google/callback'],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  pkce: { required: () => true },
  // Put the scope's claims (email, name) in the ID token, as Google does.
  conformIdTokenClaims: false,
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    const { flags, email } = parseLogin(id);
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email,
          email_verified: !flags.has('unverified'),
          name: email.split('@')[0],
        };
      },
    };
  },
  // No consent screen for the test client: the login form is the interaction.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
  ttl: { Session: 60, Interaction: 600, Grant: 600 },
});

// The client's redirect URIs: the apps' callbacks on any loopback port (oidc-provider's
// "redirect_uri wildcard" recipe). Everything else about the redirect URI (exact match at the
// token endpoint with the one of the authorization request) stays as the provider does it.
const CALLBACK = /^http:\/\/127\.0\.0\.1:\d{1,5}\/auth\/oauth\/[a-z0-9-]+\/callback$/;
provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(value) {
  return CALLBACK.test(value);
};

/** Signs `payload` as an RS256 JWT (by default with the provider's own key). */
function sign(payload, key = privateKey, kid = jwk.kid) {
  const header = { alg: 'RS256', typ: 'JWT', kid };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const signature = crypto.sign('sha256', Buffer.from(input), key);
  return `${input}.${b64url(signature)}`;
}

// The wrong-aud and wrong-iss accounts: the ID token from the token endpoint is re-signed with
// the provider's real key, for another audience or with another issuer. Everything else
// (signature, kid, nonce, exp, at_hash) stays valid, so only the claim under test is wrong.
// `rotated:` re-signs with the next key (and publishes it), `forged:` with an unpublished one.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/jwks' && ctx.status === 200 && rotatedKeys.length > 0) {
    ctx.body = { keys: [...ctx.body.keys, ...rotatedKeys] };
    return;
  }
  if (ctx.path !== '/token' || ctx.status !== 200 || !ctx.body?.id_token) return;
  const [, body] = ctx.body.id_token.split('.');
  const claims = JSON.parse(Buffer.from(body, 'base64url').toString());
  const { flags } = parseLogin(claims.sub);
  if (flags.has('wrong-aud')) {
    ctx.body = { ...ctx.body, id_token: sign({ ...claims, aud: 'someone-else', azp: 'someone-else' }) };
  } else if (flags.has('wrong-iss')) {
    ctx.body = { ...ctx.body, id_token: sign({ ...claims, iss: `${issuer}/other` }) };
  } else if (flags.has('rotated')) {
    const key = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const kid = `rotated-${rotatedKeys.length + 1}`;
    rotatedKeys.push({ ...key.publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' });
    ctx.body = { ...ctx.body, id_token: sign(claims, key.privateKey, kid) };
  } else if (flags.has('forged')) {
    ctx.body = { ...ctx.body, id_token: sign(claims, forger) };
  } else if (flags.has('old-iat')) {
    const now = Math.floor(Date.now() / 1000);
    ctx.body = { ...ctx.body, id_token: sign({ ...claims, iat: now - 86400, exp: now + 3600 }) };
  } else if (flags.has('future-iat')) {
    const now = Math.floor(Date.now() / 1000);
    ctx.body = { ...ctx.body, id_token: sign({ ...claims, iat: now + 3600, exp: now + 7200 }) };
  } else if (flags.has('future-nbf')) {
    const now = Math.floor(Date.now() / 1000);
    ctx.body = { ...ctx.body, id_token: sign({ ...claims, nbf: now + 3600 }) };
  }
});

handler = provider.callback();
process.stdout.write(`issuer ${issuer}\n`);

// Stop with the test process that started us.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
