"""OIDC bearer tokens: a JWT signed by the identity provider, checked against its JWKS.

The token's `sub` must name an active user of the directory, so agencies, roles and
deactivation stay in one place (the directory's history) whichever way a user signs in.
"""

from __future__ import annotations

from typing import Any

import jwt

from adapters.auth import (
    TOKEN_PREFIX,
    AuthenticationError,
    DirectoryView,
    PrincipalResolver,
)
from referral_core.policy import Principal
from referral_core.vocab import AgencyKind, Role

ALLOWED_ALGORITHMS = ("RS256", "ES256", "EdDSA")
LEEWAY_SECONDS = 30


class OIDCResolver:
    """Verify a JWT's signature, issuer, audience and expiry; map `sub` to a directory user."""

    def __init__(
        self,
        view: DirectoryView,
        *,
        issuer: str,
        audience: str,
        jwks_url: str,
        jwks_client: Any = None,
    ) -> None:
        self.view = view
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwks_client or jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300)

    def resolve(self, token: str) -> Principal:
        try:
            key = self.jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(ALLOWED_ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except (jwt.PyJWTError, ValueError) as exc:
            raise AuthenticationError("invalid OIDC token") from exc
        directory = self.view.current()
        user = directory.users.get(str(claims["sub"]))
        if user is None or not user["active"]:
            raise AuthenticationError("unknown or inactive user")
        agency = directory.agencies[user["agency_id"]]
        return Principal(
            user_id=user["user_id"],
            agency_id=user["agency_id"],
            agency_kind=AgencyKind(agency["kind"]),
            role=Role(user["role"]),
        )


class ChainResolver:
    """Directory tokens (`rfl_…`) to the directory; anything else to the OIDC resolver."""

    def __init__(self, directory: PrincipalResolver, oidc: PrincipalResolver) -> None:
        self.directory = directory
        self.oidc = oidc

    def resolve(self, token: str) -> Principal:
        if token.startswith(TOKEN_PREFIX):
            return self.directory.resolve(token)
        return self.oidc.resolve(token)
