// A real OpenID Provider (panva/node-oidc-provider) for the OIDC tests, on loopback only.
//
//   node server.mjs --redirect-uri https://testserver/auth/oidc/local/callback
//
// Listens on 127.0.0.1 on a free port and prints one JSON line {"issuer": ...} once ready.
// One confidential client ("test-app"), one user ("alice", any password), the dev login and
// consent forms, JWT access tokens (RFC 9068) for the resource https://api.test.
// Test controls under /__test/ (never part of a real provider):
//   GET  /__test/stats      -> {"jwks": <requests served at /jwks since start or reset>}
//   POST /__test/reset      -> zero the counters
//   POST /__test/rotate     -> new signing keys (new kids) first, the old ones kept after them
//   POST /__test/jwks-down  -> /jwks answers 503 until /__test/jwks-up
import crypto from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    'redirect-uri': { type: 'string', multiple: true, default: [] },
    'client-secret': { type: 'string', default: 'test-app-secret-that-is-long-enough-0123456789' },
  },
});

export const RESOURCE = 'https://api.test';

const USERS = {
  alice: { email: 'alice@example.test', email_verified: true, name: 'Alice' },
  bob: { email: 'bob@example.test', email_verified: false, name: 'Bob' },
};

let generation = 0;

function newKeys() {
  generation += 1;
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  return [
    { ...rsa.export({ format: 'jwk' }), kid: `rsa-${generation}`, alg: 'RS256', use: 'sig' },
    { ...ec.export({ format: 'jwk' }), kid: `ec-${generation}`, alg: 'ES256', use: 'sig' },
  ];
}

function makeProvider(issuer, keys) {
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'test-app',
        client_secret: args['client-secret'],
        redirect_uris: args['redirect-uri'],
        grant_types: ['authorization_code', 'client_credentials'],
        response_types: ['code'],
        scope: 'openid email profile read write',
      },
    ],
    jwks: { keys },
    cookies: { keys: ['cookie-signing-key-for-tests-only-0123456789'] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    scopes: ['openid', 'email', 'profile', 'read', 'write'],
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        getResourceServerInfo: async (ctx, indicator) => {
          if (indicator !== RESOURCE) throw new Error('unknown resource');
          return {
            scope: 'read write',
            audience: RESOURCE,
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    // A Keycloak-shaped roles claim, so the mappers meet a real token.
    extraTokenClaims: async () => ({ realm_access: { roles: ['reader'] } }),
    findAccount: async (ctx, sub) => {
      const user = USERS[sub];
      if (!user) return undefined;
      return { accountId: sub, claims: async () => ({ sub, ...user }) };
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  return provider;
}

const counts = { jwks: 0 };
let jwksDown = false;
let keys = newKeys();
let provider;
let handler;

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  const path = (req.url || '/').split('?')[0];
  if (path.startsWith('/__test/')) {
    if (req.method === 'GET' && path === '/__test/stats') return json(res, 200, counts);
    if (req.method !== 'POST') return json(res, 405, {});
    if (path === '/__test/reset') counts.jwks = 0;
    else if (path === '/__test/jwks-down') jwksDown = true;
    else if (path === '/__test/jwks-up') jwksDown = false;
    else if (path === '/__test/rotate') {
      keys = [...newKeys(), ...keys];
      provider = makeProvider(provider.issuer, keys);
      handler = provider.callback();
    } else return json(res, 404, {});
    return json(res, 200, { kids: keys.map((k) => k.kid) });
  }
  if (path === '/jwks') {
    counts.jwks += 1;
    if (jwksDown) return json(res, 503, { error: 'down' });
  }
  return handler(req, res);
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  provider = makeProvider(issuer, keys);
  handler = provider.callback();
  process.stdout.write(`${JSON.stringify({ issuer, resource: RESOURCE })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
