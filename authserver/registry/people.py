"""``/api/v1/users`` and ``/api/v1/roles``: the tenant's people and their roles (seed 002).

A back office (a service token with ``users:read`` / ``users:write``, or a user token of a
TENANT.ADMIN or USER.MANAGER) manages people; a person manages their own profile and consents
at ``/api/v1/users/me`` with their own token. What a caller may give, take or change is
``authserver.authorization``'s.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify

from authserver import authorization_code as codes
from authserver import totp, users
from authserver.authorization import ROLES, USER_KINDS
from authserver.models import User
from authserver.oauth2.server import query_client
from authserver.problems import NotFoundProblem, ValidationProblem
from authserver.registry import pagination, schema
from authserver.registry.access import (
    actor_id,
    require_people_token,
    require_self_token,
    signed_in_user,
    token_actor,
)
from authserver.registry.bodies import json_body
from authserver.registry.serialize import (
    contact_json,
    deleted_response,
    iso,
    strategy_json,
    tenant_catalog_json,
    user_json,
)

bp = Blueprint("people", __name__)
_USER_ID = re.compile(schema.USER_ID_PATTERN)


def _one(user: User, status: int = 200) -> Response:
    resp = jsonify(data=user_json(user))
    resp.status_code = status
    return resp


def user_filters() -> dict[str, str]:
    """The user list's filters from the query string (also the export's)."""
    filters = {}
    for name in users.USER_FILTERS:
        allowed = {"active": ("true", "false"), "role": tuple(ROLES),
                   "kind": USER_KINDS}.get(name)  # fmt: skip
        value = pagination.query_arg(name, allowed)
        if value is not None:
            filters[name] = value
    return filters


@bp.get("/api/v1/users")
@require_people_token()
def list_all() -> Response:
    token, _ = token_actor()
    pagination.only_params("limit", "cursor", *users.USER_FILTERS)
    limit = pagination.limit_or_400(pagination.query_arg("limit"))
    filters = user_filters()
    context = "users:login"
    after = pagination.after_or_400(pagination.query_arg("cursor"), context)
    page = users.list_users(token.tenant_id, filters, after, limit)
    return pagination.page_response(page, context, lambda us: [user_json(u) for u in us])


@bp.post("/api/v1/users")
@require_people_token(write=True)
def create() -> Response:
    token, actor = token_actor()
    data = schema.USER_CREATE.parse(json_body())
    user_id = data.pop("id", None)
    return _one(users.create(token.tenant_id, data, actor, actor_id(), user_id), 201)


@bp.get("/api/v1/users/<user_id>")
@require_people_token()
def get_one(user_id: str) -> Response:
    token, _ = token_actor()
    return _one(users.get_in_tenant(token.tenant_id, user_id))


@bp.put("/api/v1/users/<user_id>")
@require_people_token(write=True)
def upsert(user_id: str) -> Response:
    """Create-or-replace by id (seed 002 upsertUser): 201 when created, 200 when replaced."""
    token, actor = token_actor()
    data = schema.USER_REPLACE.parse(json_body())
    existing = users.get(user_id)
    if existing is None:
        if not _USER_ID.fullmatch(user_id):
            raise ValidationProblem(f"A new user's id is {schema.USER_ID_PATTERN}.", field="id")
        return _one(users.create(token.tenant_id, data, actor, actor_id(), user_id), 201)
    user = users.get_in_tenant(token.tenant_id, user_id)  # another tenant's id: 404
    return _one(users.replace(user, data, actor, actor_id()))


@bp.patch("/api/v1/users/<user_id>")
@require_people_token(write=True)
def patch_user(user_id: str) -> Response:
    token, actor = token_actor()
    user = users.get_in_tenant(token.tenant_id, user_id)
    return _one(users.update(user, schema.USER_UPDATE.parse(json_body()), actor, actor_id()))


@bp.delete("/api/v1/users/<user_id>")
@require_people_token(write=True)
def delete_one(user_id: str) -> Response:
    token, actor = token_actor()
    users.delete(users.get_in_tenant(token.tenant_id, user_id), actor, actor_id())
    return deleted_response(id=user_id)


@bp.get("/api/v1/users/<user_id>/contact")
@require_people_token()
def contact(user_id: str) -> Response:
    """How to reach a person: names, phone, push id, consents (seed 002 getUserContact)."""
    token, _ = token_actor()
    return jsonify(data=contact_json(users.get_in_tenant(token.tenant_id, user_id)))


@bp.get("/api/v1/tenant")
@require_people_token()
def tenant() -> Response:
    """The caller's tenant as other services see it (seed 002 getCatalogTenant)."""
    token, _ = token_actor()
    found = users.get_tenant(token.tenant_id)
    assert found is not None  # a live token's tenant exists
    return jsonify(data=tenant_catalog_json(found))


# -- external identities ----------------------------------------------------------------------------


@bp.get("/api/v1/users/<user_id>/auth-strategies")
@require_people_token()
def strategies(user_id: str) -> Response:
    token, _ = token_actor()
    user = users.get_in_tenant(token.tenant_id, user_id)
    return jsonify(data=[strategy_json(x) for x in users.strategies_of(user)])


@bp.put("/api/v1/users/<user_id>/auth-strategies")
@require_people_token(write=True)
def upsert_strategy(user_id: str) -> Response:
    token, actor = token_actor()
    user = users.get_in_tenant(token.tenant_id, user_id)
    data = schema.AUTH_STRATEGY.parse(json_body())
    link, created = users.upsert_strategy(user, data, actor, actor_id())
    resp = jsonify(data=strategy_json(link))
    resp.status_code = 201 if created else 200
    return resp


@bp.delete("/api/v1/users/<user_id>/auth-strategies/<strategy>/<path:external_id>")
@require_people_token(write=True)
def delete_strategy(user_id: str, strategy: str, external_id: str) -> Response:
    token, actor = token_actor()
    user = users.get_in_tenant(token.tenant_id, user_id)
    users.delete_strategy(user, strategy, external_id, actor, actor_id())
    return deleted_response(strategy=strategy, id=external_id)


@bp.get("/api/v1/users/by-auth-strategy")
@require_people_token()
def by_strategy() -> Response:
    """The user an external identity is linked to (seed 002 byAuthStrategy); ``email``, when
    given, must also be their login."""
    token, _ = token_actor()
    pagination.only_params("strategy", "id", "email")
    strategy, external_id = pagination.query_arg("strategy"), pagination.query_arg("id")
    if not strategy or not external_id:
        raise ValidationProblem("strategy and id are required.")
    email = pagination.query_arg("email")
    return _one(users.find_by_strategy(token.tenant_id, strategy, external_id, email))


# -- the signed-in person's own account -------------------------------------------------------------


@bp.get("/api/v1/users/me")
@require_self_token()
def me() -> Response:
    user = signed_in_user()
    return _one(user)


@bp.patch("/api/v1/users/me")
@require_self_token()
def patch_me() -> Response:
    user = signed_in_user()
    data = schema.SELF_UPDATE.parse(json_body())
    return _one(users.update_self(user, data))


@bp.delete("/api/v1/users/me")
@require_self_token()
def delete_me() -> Response:
    user = signed_in_user()
    confirm = schema.SELF_DELETE.parse(json_body())["login"]
    if confirm != user.login:
        raise ValidationProblem("Confirm by sending your own login.", field="login")
    users.delete(user, user, user.id)
    return deleted_response(id=user.id)


@bp.post("/api/v1/users/me/consents")
@require_self_token()
def consents() -> Response:
    user = signed_in_user()
    data = schema.CONSENTS.parse(json_body())
    return _one(users.change_consents(user, data.get("set", []), data.get("unset", [])))


@bp.get("/api/v1/users/me/app-consents")
@require_self_token()
def app_consents() -> Response:
    """The apps the person let sign them in, and with which scopes (OIDC consent)."""
    user = signed_in_user()
    items = []
    for given in codes.consents_of(user):
        client = query_client(given.client_id)
        items.append({
            "clientId": given.client_id,
            "clientName": client.name if client is not None else None,
            "scope": given.scope.split(),
            "createdAt": iso(given.created_at),
            "updatedAt": iso(given.updated_at),
        })  # fmt: skip
    return jsonify(data=items)


@bp.delete("/api/v1/users/me/app-consents/<client_id>")
@require_self_token()
def withdraw_app_consent(client_id: str) -> Response:
    """Take an app's consent back: it asks again next time, and its tokens for the person end."""
    if not codes.withdraw_consent(signed_in_user(), client_id):
        raise NotFoundProblem("No consent for that app.")
    return deleted_response(clientId=client_id)


@bp.post("/api/v1/users/me/totp/secret")
@require_self_token()
def totp_secret() -> Response:
    """A new secret for an authenticator app, shown once; on only after ``PUT .../totp``."""
    user = signed_in_user()
    issuer = users.tenant_name(user.tenant_id) or "authserver"
    new = totp.start(user, issuer)
    resp = jsonify(data={"secret": new.secret, "otpauthUri": new.uri, "qrCodeSvg": new.qr_svg,
                         "expiresIn": totp.PENDING_SECONDS})  # fmt: skip
    resp.status_code = 201
    resp.headers["Cache-Control"] = "no-store"  # a secret: no cache keeps it
    return resp


@bp.put("/api/v1/users/me/totp")
@require_self_token()
def totp_configure() -> Response:
    user = signed_in_user()
    data = schema.TOTP_CONFIGURE.parse(json_body())
    return _one(users.enable_totp(user, data["code"], data.get("secret")))


@bp.delete("/api/v1/users/me/totp")
@require_self_token()
def totp_remove_own() -> Response:
    user = signed_in_user()
    code = schema.TOTP_REMOVE.parse(json_body())["code"]
    return _one(users.remove_totp(user, code, user, user.id))


@bp.delete("/api/v1/users/<user_id>/totp")
@require_people_token(write=True)
def totp_remove(user_id: str) -> Response:
    """An administrator turns a person's second factor off (a lost phone)."""
    token, actor = token_actor()
    user = users.get_in_tenant(token.tenant_id, user_id)
    return _one(users.remove_totp(user, None, actor, actor_id()))


# -- roles ------------------------------------------------------------------------------------------


@bp.post("/api/v1/roles/grants")
@require_people_token(write=True)
def grant() -> Response:
    token, actor = token_actor()
    data = schema.ROLE_GRANT.parse(json_body())
    granted, unknown = users.grant_by_logins(
        token.tenant_id, data["role"], data.get("locationId"), data["logins"], actor, actor_id()
    )
    return jsonify(data={"userIds": granted, "unknownLogins": unknown})


@bp.post("/api/v1/roles/revocations")
@require_people_token(write=True)
def revoke() -> Response:
    token, actor = token_actor()
    roles = schema.ROLE_REVOCATION.parse(json_body())["roles"]
    changed = users.revoke_globally(token.tenant_id, roles, actor, actor_id())
    return jsonify(data={"roles": roles, "usersChanged": changed})
