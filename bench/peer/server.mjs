// Peer server for the side-by-side benchmark: panva/node-oidc-provider 9.13.3 configured to do the
// same work as our server (client credentials with JWT access tokens, device flow, introspection,
// refresh with rotation, DPoP, a DPoP-protected userinfo read and a JWT-protected registry page).
//
//   node bench/peer/server.mjs --port 8101 --dpop-jwk '<public EC P-256 JWK>' --refresh-tokens 96
//
// Listens on 127.0.0.1 only, keeps everything in memory, prints ONE JSON line to stdout when
// ready (the tokens a benchmark needs) and runs until SIGTERM/SIGINT. Library notices go to
// stderr so that stdout carries that line only.

import { format, parseArgs } from 'node:util';

import { calculateJwkThumbprint, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import Provider from 'oidc-provider';
// Internals of oidc-provider 9.13.3 (no "exports" map, so deep imports resolve):
//  - the library's own in-memory adapter keeps everything in ONE LRU of 1000 entries per
//    generation (created per provider by createMemoryAdapter); under benchmark load that evicts
//    live refresh tokens, grants and access tokens, so the same adapter class is given a larger
//    LRU through the `adapter` factory option;
//  - the per-provider state holds the grant type handlers (weak_cache), used to wrap
//    client_credentials so that a request without `scope` gets all of the client's scopes.
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';
import instance from 'oidc-provider/lib/helpers/weak_cache.js';

// oidc-provider prints "NOTICE"s with console.info (stdout); keep stdout for the ready line.
const toStderr = (...args) => { process.stderr.write(`${format(...args)}\n`); };
console.info = toStderr;
console.log = toStderr;

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '8101' },
    'dpop-jwk': { type: 'string' },
    'refresh-tokens': { type: 'string', default: '96' },
    'store-size': { type: 'string', default: '500000' },
  },
  strict: true,
});

const PORT = Number.parseInt(args.port, 10);
const N_REFRESH = Number.parseInt(args['refresh-tokens'], 10);
const STORE_SIZE = Number.parseInt(args['store-size'], 10);
if (!args['dpop-jwk']) {
  process.stderr.write('--dpop-jwk is required (public EC P-256 JWK as JSON)\n');
  process.exit(2);
}
const POS_JWK = JSON.parse(args['dpop-jwk']);
if (POS_JWK.kty !== 'EC' || POS_JWK.crv !== 'P-256' || POS_JWK.d) {
  process.stderr.write('--dpop-jwk must be a PUBLIC EC P-256 JWK\n');
  process.exit(2);
}

const HOST = '127.0.0.1';
const ISSUER = `http://${HOST}:${PORT}`;
const API = `${ISSUER}/api`; // the API resource: JWT access tokens (RFC 9068), ES256
// Same API, opaque (stored) access tokens: oidc-provider refuses to introspect structured (JWT)
// tokens, so the introspection benchmark uses a token of this resource (see `introspection_token`).
const API_OPAQUE = `${ISSUER}/api-opaque`;
const API_SCOPES = 'devices:read devices:write';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

// Same lifetimes as our server's defaults (authserver/config.py).
const ACCESS_TOKEN_TTL = 900;
const REFRESH_TOKEN_TTL = 30 * 86400;

const storage = new LRU({ maxSize: STORE_SIZE });

const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
const signingJwk = {
  ...(await exportJWK(privateKey)), kid: 'peer-es256', alg: 'ES256', use: 'sig',
};

const SVC_SECRET = crypto.getRandomValues(Buffer.alloc(32)).toString('base64url');

const resourceServers = {
  [API]: {
    scope: API_SCOPES,
    audience: API,
    accessTokenTTL: ACCESS_TOKEN_TTL,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'ES256' } },
  },
  [API_OPAQUE]: {
    scope: API_SCOPES,
    audience: API_OPAQUE,
    accessTokenTTL: ACCESS_TOKEN_TTL,
    accessTokenFormat: 'opaque',
  },
};

const provider = new Provider(ISSUER, {
  // The in-memory adapter as shipped, over one bigger LRU (clockTolerance 0, the default).
  adapter: (model) => new MemoryAdapter(model, storage, 0),
  clients: [
    {
      client_id: 'svc',
      client_secret: SVC_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: API_SCOPES,
    },
    {
      client_id: 'kiosk',
      token_endpoint_auth_method: 'none',
      grant_types: [DEVICE_GRANT, 'refresh_token'],
      response_types: [],
      redirect_uris: [],
      scope: 'devices:read',
    },
    {
      client_id: 'pos',
      token_endpoint_auth_method: 'none',
      grant_types: [DEVICE_GRANT, 'refresh_token'],
      response_types: [],
      redirect_uris: [],
      scope: `openid ${API_SCOPES}`,
    },
  ],
  jwks: { keys: [signingJwk] },
  clientDefaults: {
    grant_types: [],
    response_types: [],
    id_token_signed_response_alg: 'ES256',
  },
  scopes: ['openid', 'offline_access', 'devices:read', 'devices:write'],
  cookies: { keys: [crypto.getRandomValues(Buffer.alloc(32)).toString('base64url')] },
  findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    // Library defaults kept: no nonces, allowReplay false, 300 s iat window.
    dPoP: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // A request without `resource` is for the API (JWT access token).
      defaultResource: (ctx, client, oneOf) => (oneOf || API),
      getResourceServerInfo: (ctx, resourceIndicator) => {
        const info = resourceServers[resourceIndicator];
        if (!info) throw new Provider.errors.InvalidTarget();
        return info;
      },
    },
  },
  rotateRefreshToken: true,
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    ClientCredentials: ACCESS_TOKEN_TTL,
    DeviceCode: 600,
    Grant: REFRESH_TOKEN_TTL,
    RefreshToken: REFRESH_TOKEN_TTL,
    IdToken: 600,
    Interaction: 600,
    Session: 86400,
  },
});

// Like our server: a client-credentials request without `scope` gets all of the client's scopes
// (oidc-provider would otherwise issue a token with no scope at all).
{
  const handlers = instance(provider).grantTypeHandlers;
  const clientCredentials = handlers.get('client_credentials');
  handlers.set('client_credentials', (ctx) => {
    if (!ctx.oidc.params.scope && ctx.oidc.client.scope) {
      ctx.oidc.params.scope = ctx.oidc.client.scope;
    }
    return clientCredentials(ctx);
  });
}

// Minimal logging: no per-request output; a few server errors to stderr, then silence.
provider.silent = true;
let serverErrors = 0;
provider.on('server_error', (ctx, err) => {
  serverErrors += 1;
  if (serverErrors <= 5) process.stderr.write(`server_error ${ctx.method} ${ctx.path}: ${err?.stack || err}\n`);
});

// --- GET /api/v1/devices: the registry read, protected by a JWT access token for the API -------

// The same items our server lists for the bench's devices (authserver/registry/serialize.py,
// device_json): every key, in the same order, values of the same shape and length, so both
// servers encode and send the same page.
const DEVICES = Array.from({ length: 60 }, (_, i) => {
  const n = String(i + 1).padStart(5, '0');
  const at = new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString();
  return {
    id: `dev_1M8QW0HXN00XdG6QQyFhn${n}0`,
    name: `Till ${i}`,
    status: 'ACTIVE',
    origin: 'api',
    appCode: 'UNKNOWN',
    externalId: null,
    locationIds: [],
    tillId: null,
    identifier: null,
    systemInformation: null,
    dpopJkt: null,
    lastActivityAt: null,
    lastTenantUserId: null,
    printerUids: [],
    lastOrderUid: null,
    createdAt: at,
    createdBy: 'cli_demo_service',
    updatedAt: at,
    updatedBy: 'cli_demo_service',
  };
});

function unauthorized(ctx, description) {
  ctx.status = 401;
  ctx.set('WWW-Authenticate', `Bearer realm="api", error="invalid_token", error_description="${description}"`);
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error: 'invalid_token', error_description: description };
}

async function devicesPage(ctx) {
  const header = ctx.get('authorization');
  const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(header);
  if (!match) return unauthorized(ctx, 'missing bearer token');
  let payload;
  try {
    ({ payload } = await jwtVerify(match[1], publicKey, {
      issuer: ISSUER,
      audience: API,
      algorithms: ['ES256'],
      typ: 'at+jwt',
      requiredClaims: ['exp', 'iat', 'sub', 'client_id'],
    }));
  } catch {
    return unauthorized(ctx, 'invalid access token');
  }
  if (payload.cnf) return unauthorized(ctx, 'sender-constrained token presented as a bearer token');
  if (typeof payload.scope !== 'string' || !payload.scope.split(' ').includes('devices:read')) {
    ctx.status = 403;
    ctx.set('WWW-Authenticate', 'Bearer realm="api", error="insufficient_scope", scope="devices:read"');
    ctx.body = { error: 'insufficient_scope' };
    return undefined;
  }

  let limit = Number.parseInt(ctx.query.limit ?? '50', 10);
  if (!Number.isFinite(limit) || limit < 1) limit = 50;
  limit = Math.min(limit, 100);
  let start = 0;
  if (typeof ctx.query.cursor === 'string' && ctx.query.cursor) {
    const after = Buffer.from(ctx.query.cursor, 'base64url').toString();
    const idx = DEVICES.findIndex((d) => d.id === after);
    start = idx === -1 ? DEVICES.length : idx + 1;
  }
  const data = DEVICES.slice(start, start + limit);
  const more = start + limit < DEVICES.length;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = {
    data,
    nextCursor: more ? Buffer.from(data[data.length - 1].id).toString('base64url') : null,
    hasMore: more,
  };
  return undefined;
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/api/v1/devices') {
    if (ctx.method !== 'GET') {
      ctx.status = 405;
      ctx.set('Allow', 'GET');
      return;
    }
    await devicesPage(ctx);
    return;
  }
  await next();
});

// --- start, then prepare the tokens the benchmark needs ----------------------------------------

const server = await new Promise((resolve, reject) => {
  const s = provider.listen(PORT, HOST, () => resolve(s));
  s.once('error', reject);
});

async function post(path, form, headers = {}) {
  const resp = await fetch(`${ISSUER}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form),
  });
  const body = await resp.json();
  if (resp.status !== 200) throw new Error(`POST ${path} -> ${resp.status} ${JSON.stringify(body)}`);
  return body;
}

const svcBasic = `Basic ${Buffer.from(`svc:${SVC_SECRET}`).toString('base64')}`;

async function prepare() {
  const { access_token: accessToken } = await post(
    '/token', { grant_type: 'client_credentials' }, { authorization: svcBasic },
  );
  const { access_token: introspectionToken } = await post(
    '/token', { grant_type: 'client_credentials', resource: API_OPAQUE }, { authorization: svcBasic },
  );
  const { device_code: deviceCode } = await post('/device/auth', { client_id: 'kiosk' });

  // Refresh tokens of kiosk, each of its own grant, as a completed device flow would leave them.
  const kiosk = await provider.Client.find('kiosk');
  const refreshTokens = [];
  for (let i = 0; i < N_REFRESH; i += 1) {
    const accountId = `kiosk-user-${i + 1}`;
    const grant = new provider.Grant({ accountId, clientId: 'kiosk' });
    grant.addResourceScope(API, 'devices:read');
    const grantId = await grant.save();
    const rt = new provider.RefreshToken({
      accountId,
      client: kiosk,
      grantId,
      gty: 'device_code',
      resource: API,
      scope: 'devices:read',
    });
    refreshTokens.push(await rt.save());
  }

  // An access token of pos for the userinfo endpoint, DPoP-bound to the given key.
  const pos = await provider.Client.find('pos');
  const posGrant = new provider.Grant({ accountId: 'pos-terminal-1', clientId: 'pos' });
  posGrant.addOIDCScope('openid');
  const posGrantId = await posGrant.save();
  const posAt = new provider.AccessToken({
    accountId: 'pos-terminal-1',
    client: pos,
    grantId: posGrantId,
    gty: 'device_code',
    scope: 'openid',
  });
  posAt.setThumbprint('jkt', await calculateJwkThumbprint(POS_JWK));
  const posAccessToken = await posAt.save();

  return {
    ready: true,
    issuer: ISSUER,
    service: { client_id: 'svc', client_secret: SVC_SECRET },
    kiosk_client_id: 'kiosk',
    device_code: deviceCode,
    access_token: accessToken,
    introspection_token: introspectionToken,
    refresh_tokens: refreshTokens,
    pos_access_token: posAccessToken,
    endpoints: {
      token: '/token',
      device_authorization: '/device/auth',
      introspection: '/token/introspection',
      revocation: '/token/revocation',
      userinfo: '/me',
      devices: '/api/v1/devices',
    },
  };
}

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

try {
  const ready = await prepare();
  process.stdout.write(`${JSON.stringify(ready)}\n`);
} catch (err) {
  process.stderr.write(`peer: preparation failed: ${err?.stack || err}\n`);
  server.close();
  process.exit(1);
}
