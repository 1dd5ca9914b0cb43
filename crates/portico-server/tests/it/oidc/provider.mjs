// Minimal OpenID Connect provider for Portico's integration tests.
//
// Usage:
//   NODE_PATH=<dir containing node_modules/oidc-provider> \
//     node provider.mjs <port> <redirect_uri>
//
// Built on panva's `oidc-provider` (tested with 9.13.3). Listens on
// 127.0.0.1:<port> with issuer http://127.0.0.1:<port>, prints exactly one
// line `ready` to stdout once listening and runs until killed. Everything
// else (warnings, errors) goes to stderr.
//
// Browser flow a test client performs (cookies must be kept throughout):
//   1. GET  <issuer>/auth?response_type=code&client_id=portico&...
//        -> 303 Location: /interaction/<uid>   (sets _interaction, _interaction_resume)
//   2. GET  <issuer>/interaction/<uid>
//        -> 200 HTML login form:
//           <form autocomplete="off" action="<issuer>/interaction/<uid>" method="post">
//             hidden prompt=login, text login, password password
//   3. POST <issuer>/interaction/<uid>  (application/x-www-form-urlencoded)
//           prompt=login&login=<any id>&password=<anything>
//        -> 303 Location: <issuer>/auth/<uid>
//   4. GET  <issuer>/auth/<uid>
//        -> 303 Location: <redirect_uri>?code=...&state=...&iss=<issuer>
// Consent is granted automatically for the `portico` client (see
// loadExistingGrant). Only an explicit prompt=consent adds a consent step:
// step 4 then answers 303 /interaction/<uid2> (a new uid), whose HTML form
// is POSTed with just prompt=consent, then GET /auth/<uid2> as in step 4.

import { createRequire } from 'node:module';
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

// oidc-provider prints "you SHOULD change ..." notices with console.info,
// which would pollute stdout. Keep stdout reserved for the `ready` line.
console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

const [portArg, redirectUri] = process.argv.slice(2);
const port = Number.parseInt(portArg ?? '', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !redirectUri) {
  console.error('usage: node provider.mjs <port> <redirect_uri>');
  process.exit(2);
}

// ESM `import` ignores NODE_PATH, so resolve the package manually from each
// NODE_PATH entry. oidc-provider 9 is ESM-only ("type": "module", no
// "exports" map), so resolve its entry file and import it by file URL.
async function loadProvider() {
  const dirs = (process.env.NODE_PATH ?? '').split(path.delimiter).filter(Boolean);
  const failures = [];
  for (const dir of dirs) {
    try {
      const require = createRequire(path.join(path.resolve(dir), 'noop.js'));
      const entry = require.resolve('oidc-provider');
      const mod = await import(pathToFileURL(entry).href);
      return mod.default ?? mod.Provider;
    } catch (err) {
      failures.push(`${dir}: ${err.message}`);
    }
  }
  try {
    const mod = await import('oidc-provider');
    return mod.default ?? mod.Provider;
  } catch (err) {
    failures.push(`bare import: ${err.message}`);
  }
  throw new Error(`cannot load oidc-provider (set NODE_PATH to its node_modules):\n  ${failures.join('\n  ')}`);
}

const Provider = await loadProvider();

const issuer = `http://127.0.0.1:${port}`;
const CLIENT_ID = 'portico';

// Fresh signing key per run; relying parties fetch it from jwks_uri.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: 'portico-test-rs256' };

function capitalize(s) {
  return s.length ? s[0].toUpperCase() + s.slice(1) : s;
}

const configuration = {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: 'portico-secret',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],

  jwks: { keys: [signingKey] },

  cookies: {
    keys: ['portico-test-cookie-key-1', 'portico-test-cookie-key-2'],
    // Plain-http loopback: never mark cookies Secure.
    long: { httpOnly: true, sameSite: 'lax', secure: false },
    short: { httpOnly: true, sameSite: 'lax', secure: false },
  },

  scopes: ['openid', 'profile', 'email', 'offline_access'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    sid: null,
    auth_time: null,
    iss: null,
  },
  // Put scope-derived claims (email, name, ...) into the ID token too, not
  // only into the userinfo response.
  conformIdTokenClaims: false,

  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: `${id}@example.com`,
          email_verified: true,
          name: capitalize(id),
          preferred_username: id,
        };
      },
    };
  },

  // Auto-consent: for the test client, return a grant covering everything
  // requested so the consent prompt is skipped (the login form remains).
  async loadExistingGrant(ctx) {
    const { client, session, result } = ctx.oidc;
    const grantId = result?.consent?.grantId || session.grantIdFor(client.clientId);
    let grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
    if (client.clientId !== CLIENT_ID) {
      return grant;
    }
    if (!grant) {
      grant = new ctx.oidc.provider.Grant({ accountId: ctx.oidc.account.accountId, clientId: client.clientId });
    }
    const scopes = [...ctx.oidc.requestParamOIDCScopes];
    if (scopes.length) grant.addOIDCScope(scopes.join(' '));
    const claims = [...ctx.oidc.requestParamClaims];
    if (claims.length) grant.addOIDCClaims(claims);
    await grant.save();
    return grant;
  },

  pkce: {
    // Every authorization request must carry an S256 code_challenge
    // (S256 is the only method oidc-provider 9 accepts).
    required: () => true,
  },

  // Always issue a refresh token to the test client on the code grant, even
  // when offline_access was not requested / was dropped (e.g. prompt without
  // consent).
  async issueRefreshToken(_ctx, client, code) {
    if (!client.grantTypeAllowed('refresh_token')) return false;
    return client.clientId === CLIENT_ID || code.scopes.has('offline_access');
  },

  // Only HTTP Basic client auth at the token/introspection/revocation
  // endpoints (oidc-provider otherwise treats client_secret_post as an
  // equivalent of client_secret_basic and accepts both).
  clientAuthMethods: ['client_secret_basic'],

  // Library defaults, spelled out so oidc-provider does not print a
  // "you SHOULD change" notice for each of them.
  ttl: {
    AccessToken: 60 * 60,
    AuthorizationCode: 60,
    IdToken: 60 * 60,
    Interaction: 60 * 60,
    Grant: 14 * 24 * 60 * 60,
    Session: 14 * 24 * 60 * 60,
    RefreshToken: 14 * 24 * 60 * 60,
  },

  clientBasedCORS: () => false,

  features: {
    devInteractions: { enabled: true }, // built-in HTML login (+ consent) form
    // Keep RP-initiated logout on so end_session_endpoint is advertised.
    rpInitiatedLogout: { enabled: true },
  },
};

const provider = new Provider(issuer, configuration);

for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error', 'end_session.error', 'introspection.error', 'revocation.error']) {
  provider.on(event, (ctx, err) => {
    console.error(`[oidc-provider] ${event}: ${err?.name ?? ''} ${err?.message ?? err}${err?.error_description ? ` (${err.error_description})` : ''}`);
    if (event === 'server_error' && err?.stack) console.error(err.stack);
  });
}

const server = http.createServer(provider.callback());
server.on('error', (err) => {
  console.error(`[oidc-provider] listen error: ${err.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write('ready\n');
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
