"""authserver.authorization: who may manage the registry and who may approve which device code."""

from __future__ import annotations

import pytest

from authserver import authorization as authz
from authserver.authorization import (
    ROLES,
    NotAllowed,
    check_approval,
    enrolment_locations,
    is_known_role,
    manages_registry,
    may_enrol_somewhere,
    reads_audit_events,
)
from authserver.models import Client, User
from authserver.problems import WrongTenant


def person(roles=(), active=True, tenant="ten_a") -> User:
    return User(
        id="usr_1", tenant_id=tenant, login="u", password_hash="x", roles=list(roles), active=active
    )


def client(subject="device") -> Client:
    return Client(client_id="cli_1", tenant_id="ten_a", name="c", auth_method="none",
                  grant_types=[], device_subject=subject)  # fmt: skip


@pytest.mark.parametrize(
    "roles,manages",
    [
        (("TENANT.ADMIN",), True),
        (("DEVICE.MANAGER",), True),
        (("DEVICE.MANAGER@loc_1",), False),
        (("CASHIER",), False),
        ((), False),
        (("tenant.admin",), False),
    ],
)
def test_managing_the_registry_needs_a_tenant_wide_device_role(roles, manages):
    assert manages_registry(person(roles)) is manages
    assert manages_registry(person(roles, active=False)) is False


def test_where_a_user_may_enrol():
    assert enrolment_locations(person(("TENANT.ADMIN",))) is None
    assert enrolment_locations(
        person(("DEVICE.MANAGER@loc_1", "TENANT.ADMIN@loc_2", "CASHIER@loc_3"))
    ) == {
        "loc_1",
        "loc_2",
    }
    assert enrolment_locations(person(("CASHIER",))) == frozenset()
    assert enrolment_locations(person(("DEVICE.MANAGER@loc_1",), active=False)) == frozenset()
    assert may_enrol_somewhere(person(("DEVICE.MANAGER@loc_1",)))
    assert may_enrol_somewhere(person(("DEVICE.MANAGER",)))
    assert not may_enrol_somewhere(person(("CASHIER@loc_1",)))


@pytest.mark.parametrize(
    "roles,location,allowed",
    [
        (("TENANT.ADMIN",), None, True),
        (("TENANT.ADMIN",), "loc_9", True),
        (("DEVICE.MANAGER@loc_1",), "loc_1", True),
        (("DEVICE.MANAGER@loc_1",), "loc_2", False),
        (("DEVICE.MANAGER@loc_1",), None, False),
        (("CASHIER",), None, False),
        ((), "loc_1", False),
    ],
)
def test_approving_a_kiosk_enrolment(roles, location, allowed):
    if allowed:
        check_approval(person(roles), client(), "ten_a", location)
    else:
        with pytest.raises(NotAllowed):
            check_approval(person(roles), client(), "ten_a", location)


def test_anyone_active_of_the_tenant_may_approve_their_own_sign_in():
    check_approval(person(()), client("user"), "ten_a", None)
    with pytest.raises(WrongTenant, match="another organisation"):
        check_approval(person(("TENANT.ADMIN",), tenant="ten_b"), client("user"), "ten_a", None)
    with pytest.raises(WrongTenant):
        check_approval(person(("TENANT.ADMIN",), active=False), client("user"), "ten_a", None)


@pytest.mark.parametrize(
    "role,known",
    [
        ("TENANT.ADMIN", True),
        ("DEVICE.MANAGER", True),
        ("CASHIER", True),
        ("CASHIER@loc_1", True),
        ("DEVICE.MANAGER@loc_" + "x" * 44, True),  # a location id of 48 characters
        ("DEVICE.MANAGER@loc_" + "x" * 45, False),  # 49
        ("CASHIER@loc_", False),  # the prefix alone is no location id
        ("CASHIER@", False),
        ("CASHIER@usr_1", False),
        ("cashier", False),
        ("ROOT", False),
        ("ROOT@loc_1", False),
    ],
)
def test_the_role_catalogue_and_its_location_suffix(role, known):
    assert is_known_role(role) is known


def test_reading_audit_events_is_for_active_tenant_admins_only():
    assert reads_audit_events(person(("TENANT.ADMIN",))) is True
    assert reads_audit_events(person(("DEVICE.MANAGER",))) is False
    assert reads_audit_events(person(("TENANT.ADMIN@loc_1",))) is False
    assert reads_audit_events(person(("TENANT.ADMIN",), active=False)) is False


def test_a_user_without_any_roles_recorded_has_none():
    nobody = person()
    nobody.roles = None
    assert manages_registry(nobody) is False
    assert enrolment_locations(nobody) == frozenset()


def test_only_the_first_at_sign_separates_role_and_location():
    # "DEVICE.MANAGER@loc_1@x" passes the catalogue; it names the (non-existent) location
    # "loc_1@x", never loc_1 nor an error.
    assert is_known_role("DEVICE.MANAGER@loc_1@x")
    assert enrolment_locations(person(("DEVICE.MANAGER@loc_1@x",))) == {"loc_1@x"}


def test_the_cli_explains_every_role(app):
    from authserver.cli import main

    result = app.test_cli_runner().invoke(main, ["users", "create", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())  # click wraps the help text
    # Stated here on their own (not read back from ROLES): what an operator is told.
    explained = {
        "SU": "the seeds' super user: everything TENANT.ADMIN may; granted by the CLI only",
        "TENANT.ADMIN": "everything in the tenant: devices, locations, people, roles, audit events",
        "USER.MANAGER": "people and their roles, up to DEVICE.MANAGER and STAFF",
        "DEVICE.MANAGER": "devices and locations; approves kiosks (for one location as @loc_...)",
        "STAFF": "signs in on the tenant's terminals (at one location as @loc_...)",
        "CASHIER": "the same as STAFF (its name in earlier releases)",
    }
    for role, what in explained.items():
        assert f"{role}: {what}" in text
    assert set(ROLES) == set(explained)
    assert all(is_known_role(role) for role in explained)  # what is explained can be granted


# -- people, settings and terminals: each rule on its own, beside the HTTP checks ---------------


@pytest.mark.parametrize(
    ("roles", "people", "tenant"),
    [
        (("SU",), True, True),
        (("TENANT.ADMIN",), True, True),
        (("USER.MANAGER",), True, False),
        (("DEVICE.MANAGER",), False, False),
        (("USER.MANAGER@loc_1", "TENANT.ADMIN@loc_1"), False, False),  # tenant-wide only
        (("STAFF",), False, False),
    ],
)
def test_who_manages_people_and_settings(roles, people, tenant):
    assert authz.manages_people(person(roles)) is people
    assert authz.manages_tenant(person(roles)) is tenant
    assert authz.reads_audit_events(person(roles)) is tenant
    # An inactive user has no rights, whatever the roles (the HTTP layer also refuses them).
    assert authz.manages_people(person(roles, active=False)) is False
    assert authz.manages_tenant(person(roles, active=False)) is False


def test_who_gives_which_role():
    every = set(authz.ROLES)
    assert authz.assignable(authz.OPERATOR) == every  # the CLI: SU too
    assert authz.assignable(None) == every - {"SU"}  # a service token with users:write
    assert authz.assignable(person(("SU",))) == every - {"SU"}
    assert authz.assignable(person(("TENANT.ADMIN",))) == every - {"SU"}
    assert authz.assignable(person(("USER.MANAGER",))) == {"DEVICE.MANAGER", "STAFF", "CASHIER"}
    assert authz.assignable(person(("USER.MANAGER@loc_1",))) == frozenset()
    assert authz.assignable(person(("TENANT.ADMIN",), active=False)) == frozenset()
    assert authz.assignable(person(("DEVICE.MANAGER", "STAFF"))) == frozenset()
    manager = person(("USER.MANAGER",))
    authz.check_assign(manager, ["STAFF@loc_1", "DEVICE.MANAGER"])  # no exception
    with pytest.raises(NotAllowed, match="TENANT.ADMIN"):
        authz.check_assign(manager, ["STAFF", "TENANT.ADMIN@loc_1"])
    with pytest.raises(NotAllowed, match="SU"):
        authz.check_assign(None, ["SU"])
    authz.check_assign(authz.OPERATOR, ["SU"])
    authz.check_manage(manager, person(("STAFF@loc_2", "CASHIER")))
    with pytest.raises(NotAllowed, match="USER.MANAGER"):
        authz.check_manage(manager, person(("USER.MANAGER",)))
    with pytest.raises(NotAllowed):
        authz.check_manage(None, person(("SU",)))
    assert authz.role_name("DEVICE.MANAGER@loc_1") == "DEVICE.MANAGER"
    assert authz.is_known_role("SU") and not authz.is_known_role("SU@loc_12345")


@pytest.mark.parametrize(
    ("roles", "locations", "allowed"),
    [
        (("STAFF",), set(), True),
        (("STAFF@loc_1",), {"loc_1", "loc_2"}, True),
        (("STAFF@loc_3",), {"loc_1"}, False),
        (("DEVICE.MANAGER@loc_1",), {"loc_1"}, True),
        ((), {"loc_1"}, False),
    ],
)
def test_who_may_sign_in_on_a_terminal(roles, locations, allowed):
    assert authz.may_sign_in_on(person(roles), locations) is allowed
    assert authz.may_sign_in_on(person(roles, active=False), locations) is False
