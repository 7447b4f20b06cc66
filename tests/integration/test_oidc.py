"""OIDC bearer tokens: JWTs signed with a locally generated key, its JWKS served on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.support.api import Harness, agency, harness

ISSUER = "https://idp.test.invalid/realms/nrm"
AUDIENCE = "referral"


@pytest.fixture
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def http(
    tmp_path: Path, signing_key: ec.EllipticCurvePrivateKey, database_url: str
) -> Iterator[Harness]:
    jwk = json.loads(ECAlgorithm.to_jwk(signing_key.public_key()))
    jwk.update(kid="test-key-1", use="sig", alg="ES256")
    body = json.dumps({"keys": [jwk]}).encode()

    class JWKS(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), JWKS)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/certs"
    try:
        with harness(
            database_url,
            tmp_path,
            oidc_issuer=ISSUER,
            oidc_audience=AUDIENCE,
            oidc_jwks_url=url,
        ) as h:
            yield h
    finally:
        server.shutdown()
        server.server_close()


def _token(key: Any, subject: str, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "exp": now + 300}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "test-key-1"})


def _me(http: Harness, token: str) -> Any:
    return http.client.get("/me", headers={"Authorization": f"Bearer {token}"})


def test_a_valid_token_maps_to_the_directory_user(
    http: Harness, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    user = http.users[("shelter", "supervisor")]
    response = _me(http, _token(signing_key, user))
    assert response.status_code == 200, response.text
    assert response.json()["agency"]["agency_id"] == agency("shelter")
    assert response.json()["role"] == "supervisor"
    assert _me(http, http.tokens[("ngo", "caseworker")]).status_code == 200


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": int(time.time()) - 3600},
        {"aud": "another-service"},
        {"iss": "https://evil.invalid"},
        {"exp": None},
        {"sub": "00000000-0000-0000-0000-000000000000"},
    ],
)
def test_bad_tokens_are_refused(
    http: Harness, signing_key: ec.EllipticCurvePrivateKey, overrides: dict[str, Any]
) -> None:
    user = http.users[("ngo", "caseworker")]
    response = _me(http, _token(signing_key, user, **overrides))
    assert response.status_code == 401
    assert response.json()["type"] == "urn:referral:problem:unauthenticated"


def test_a_token_signed_by_another_key_or_unsigned_is_refused(http: Harness) -> None:
    user = http.users[("ngo", "caseworker")]
    other = ec.generate_private_key(ec.SECP256R1())
    assert _me(http, _token(other, user)).status_code == 401
    unsigned = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": user, "iat": 1, "exp": 2**40},
        key="",
        algorithm="none",
        headers={"kid": "test-key-1"},
    )
    assert _me(http, unsigned).status_code == 401
    assert _me(http, "not.a.jwt").status_code == 401


def test_a_deactivated_user_is_refused(
    http: Harness, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    user = http.users[("ngo", "caseworker")]
    token = _token(signing_key, user)
    assert _me(http, token).status_code == 200
    system = {"user_id": "test", "agency_id": "system", "role": "admin"}
    http.services.app.change_directory(lambda d: d.deactivate_user(UUID(user), "left", system))
    assert _me(http, token).status_code == 401
