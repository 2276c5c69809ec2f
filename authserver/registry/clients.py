"""``/api/v1/clients``: the tenant's OAuth clients (its apps, devices' software and services), for
its administrators and its automation.

The same operations as the CLI's ``clients`` commands (``authserver.admin``), for one tenant: the
tenant comes from the token. A confidential client's secret is shown once, in the answer that
made it (creation, or ``POST .../secret``), and is stored only as a keyed hash.

No escalation through a client: a token may create, change, disable, delete or reset the secret
of a client only when it holds every scope that manages the tenant which the client has or would
get (``authorization.beyond``), and ``users:write`` for a first-party client. Otherwise a
``clients:write`` token could make itself a client with ``users:write``, take over a more
powerful client by adding a redirect URI or resetting its secret, or make a first-party app that
signs people in without asking and reaches their accounts.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import select

from authserver import admin, authorization, clients
from authserver.config import ID_TOKEN_DEFAULT_ALG
from authserver.models import Client, db
from authserver.paging import Page, keyset_page
from authserver.problems import ForbiddenProblem, NotFoundProblem, ValidationProblem
from authserver.registry import pagination, schema
from authserver.registry.access import actor_id, require_clients_token, token_actor
from authserver.registry.bodies import json_body
from authserver.registry.serialize import deleted_response, iso
from authserver.users import get_tenant

bp = Blueprint("clients", __name__)

LIST_PARAMS = frozenset({"limit", "cursor"})


def client_json(client: Client, secret: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "clientId": client.client_id,
        "name": client.name,
        "tokenEndpointAuthMethod": client.auth_method,
        "grantTypes": list(client.grant_types),
        "scope": client.scope,
        "dpopBoundAccessTokens": bool(client.dpop_bound),
        "dpopBinding": client.dpop_binding,
        "deviceSubject": client.device_subject,
        "redirectUris": list(client.redirect_uris or []),
        "postLogoutRedirectUris": list(client.post_logout_redirect_uris or []),
        "firstParty": bool(client.first_party),
        "requirePushedAuthorizationRequests": bool(client.require_par),
        "idTokenSignedResponseAlg": client.id_token_alg or ID_TOKEN_DEFAULT_ALG,
        "userKind": client.user_kind or "any",
        "active": bool(client.active),
        "createdAt": iso(client.created_at),
    }
    if secret is not None:
        found["clientSecret"] = secret
    return found


def _secret_response(data: dict[str, Any], status: int = 200) -> Response:
    resp = jsonify(data=data)
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"  # a secret: never kept by a cache (RFC 9111 §5.2)
    return resp


def _client_of_tenant(client_id: str) -> Client:
    token, _ = token_actor()
    known = len(client_id) <= clients.MAX_CLIENT_ID_CHARS
    client = db.session.get(Client, client_id) if known else None
    if client is None or client.tenant_id != token.tenant_id:
        raise NotFoundProblem("No such client in this tenant.")
    return client


# A first-party app gets no consent page and its user tokens reach the person's account
# (/users/me: their password, second factor, the account itself): power over people, so only a
# token that manages people may make one, or change or re-secret one.
FIRST_PARTY_NEEDS = "users:write"


def _within_reach(*scopes: str, first_party: bool = False) -> None:
    """A 403 unless the request's token holds every managing scope of ``scopes`` (and, for a
    first-party client, ``FIRST_PARTY_NEEDS``)."""
    token, _ = token_actor()
    wanted = [*scopes, FIRST_PARTY_NEEDS] if first_party else list(scopes)
    missing = authorization.beyond(token.scope, " ".join(wanted))
    if missing:
        raise ForbiddenProblem(
            f"Your token does not hold {' '.join(missing)}, which this client has or would get."
        )


def _invalid(exc: admin.AdminError) -> ValidationProblem:
    return ValidationProblem(str(exc)[:1].upper() + str(exc)[1:] + ".")


@bp.get("/api/v1/clients")
@require_clients_token()
def list_all() -> Response:
    token, _ = token_actor()
    pagination.only_params(*LIST_PARAMS)
    limit = pagination.limit_or_400(pagination.query_arg("limit"))
    context = "clients:name"
    after = pagination.after_or_400(pagination.query_arg("cursor"), context)
    query = select(Client).where(Client.tenant_id == token.tenant_id)
    page: Page[Client] = keyset_page(query, Client.name, Client.client_id, after, limit,
                                     lambda c: c.name)  # fmt: skip
    return pagination.page_response(page, context, lambda cs: [client_json(c) for c in cs])


@bp.post("/api/v1/clients")
@require_clients_token(write=True)
def create() -> Response:
    token, _ = token_actor()
    data = schema.CLIENT_CREATE.parse(json_body())
    _within_reach(data.get("scope", ""), first_party=data.get("firstParty", False))
    tenant = get_tenant(token.tenant_id)
    assert tenant is not None  # the token's tenant is active (authenticate_request)
    try:
        made = admin.create_client(
            tenant,
            data["name"],
            data["grantTypes"],
            auth_method=data["tokenEndpointAuthMethod"],
            scope=data.get("scope", ""),
            dpop_bound=data.get("dpopBoundAccessTokens", False),
            dpop_binding=data["dpopBinding"],
            device_subject=data["deviceSubject"],
            actor=actor_id(),
            redirect_uris=data.get("redirectUris", []),
            post_logout_redirect_uris=data.get("postLogoutRedirectUris", []),
            first_party=data.get("firstParty", False),
            require_par=data.get("requirePushedAuthorizationRequests", False),
            id_token_alg=data.get("idTokenSignedResponseAlg"),
            user_kind=data["userKind"],
        )
    except admin.AdminError as exc:
        raise _invalid(exc) from exc
    return _secret_response(client_json(made.client, made.client_secret), 201)


@bp.get("/api/v1/clients/<client_id>")
@require_clients_token()
def get_one(client_id: str) -> Response:
    return jsonify(data=client_json(_client_of_tenant(client_id)))


@bp.patch("/api/v1/clients/<client_id>")
@require_clients_token(write=True)
def patch(client_id: str) -> Response:
    client = _client_of_tenant(client_id)
    data = schema.CLIENT_UPDATE.parse(json_body())
    first_party = bool(client.first_party) or data.get("firstParty", False)
    _within_reach(client.scope, data.get("scope") or "", first_party=first_party)
    alg = data.get("idTokenSignedResponseAlg")
    try:
        admin.update_client(
            client,
            name=data.get("name"),
            scope=data.get("scope"),
            grant_types=data.get("grantTypes"),
            dpop_bound=data.get("dpopBoundAccessTokens"),
            actor=actor_id(),
            redirect_uris=data.get("redirectUris"),
            post_logout_redirect_uris=data.get("postLogoutRedirectUris"),
            first_party=data.get("firstParty"),
            require_par=data.get("requirePushedAuthorizationRequests"),
            id_token_alg=alg,
            reset_id_token_alg="idTokenSignedResponseAlg" in data and alg is None,
            user_kind=data.get("userKind"),
            active=data.get("active"),
        )
    except admin.AdminError as exc:
        db.session.rollback()
        raise _invalid(exc) from exc
    return jsonify(data=client_json(client))


@bp.delete("/api/v1/clients/<client_id>")
@require_clients_token(write=True)
def delete_one(client_id: str) -> Response:
    client = _client_of_tenant(client_id)
    _within_reach(client.scope, first_party=bool(client.first_party))
    admin.delete_client(client, actor_id())
    return deleted_response(clientId=client_id)


@bp.post("/api/v1/clients/<client_id>/secret")
@require_clients_token(write=True)
def new_secret(client_id: str) -> Response:
    """A new secret for a confidential client; the old one stops working at once."""
    client = _client_of_tenant(client_id)
    _within_reach(client.scope, first_party=bool(client.first_party))
    try:
        secret = admin.rotate_client_secret(client, actor_id())
    except admin.AdminError as exc:
        raise _invalid(exc) from exc
    return _secret_response({"clientId": client.client_id, "clientSecret": secret})
