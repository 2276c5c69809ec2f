"""Our Authlib request (authserver.oauth2.requests.FormRequest) builds itself without Authlib's
__init__: it must carry every attribute Authlib's own request carries, and refuse plain http."""

from __future__ import annotations

import pytest
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from werkzeug.datastructures import MultiDict

from authserver.oauth2.requests import FormRequest


def test_it_has_every_attribute_of_authlibs_request(app):
    theirs = OAuth2Request("POST", "https://as.example/oauth/token", headers={"A": "b"})
    with app.test_request_context("/oauth/token", method="POST", headers={"A": "b"}):
        from flask import request

        ours = FormRequest(
            request, MultiDict({"grant_type": "x"}), "https://as.example/oauth/token"
        )
        assert set(vars(theirs)) <= set(vars(ours))
        for name in vars(theirs):
            if name not in ("headers", "payload"):
                assert getattr(ours, name) == getattr(theirs, name), name
        assert ours.headers["A"] == "b"
        assert ours.payload.data["grant_type"] == "x" and ours.form["grant_type"] == "x"


def test_plain_http_is_refused_except_on_loopback(app):
    with app.test_request_context("/oauth/token", method="POST"):
        from flask import request

        with pytest.raises(InsecureTransportError):
            FormRequest(request, MultiDict(), "http://as.example/oauth/token")
        with pytest.raises(InsecureTransportError):  # a refusal is not remembered as a pass
            FormRequest(request, MultiDict(), "http://as.example/oauth/token")
        FormRequest(request, MultiDict(), "http://127.0.0.1:8000/oauth/token")


def test_the_parsed_form_answers_get_as_a_multidict_does():
    """``Form.get`` is a plain lookup (no KeyError raised and caught per absent parameter), with
    MultiDict's answers: the value, the default, and a conversion or the default when it fails."""
    from authserver.oauth2.requests import Form

    pairs = {"a": "1", "b": "x", "c": "2.5"}
    ours, theirs = Form(pairs), MultiDict(pairs)
    for key in ("a", "b", "c", "missing"):
        assert ours.get(key) == theirs.get(key)
        assert ours.get(key, "d") == theirs.get(key, "d")
        assert ours.get(key, -1, type=int) == theirs.get(key, -1, type=int)
        assert ours.get(key, type=float) == theirs.get(key, type=float)
    assert ours.get("a", type=int) == 1 and ours.get("b", 7, type=int) == 7
    assert ours["a"] == "1" and "missing" not in ours and ours.to_dict() == pairs
