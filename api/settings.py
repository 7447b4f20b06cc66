"""Typed settings from the environment: every variable starts with REFERRAL_ (see README)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REFERRAL_", extra="ignore")

    data_dir: Path = Path("var")
    """Where the SQLite database and demo credentials live."""
    database_url: str = ""
    """sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB; default: SQLite in data_dir."""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_level: str = "info"
    pool_size: int = Field(default=8, ge=1, le=200)
    token_ttl_days: int = Field(default=90, ge=1, le=3650)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    break_glass_minutes: int = Field(default=60, ge=5, le=24 * 60)
    oidc_issuer: str = ""
    """When set, JWTs from this OIDC issuer are accepted besides directory tokens."""
    oidc_audience: str = "referral"
    oidc_jwks_url: str = ""
    """The issuer's JWKS (https://… or file://…)."""
    run_projections: bool = True
    """Run the read models inside the API process (the embedded mode)."""
    projection_batch_size: int = Field(default=500, ge=1, le=100_000)
    """How many log entries a read-model batch applies in one transaction."""
    read_wait_seconds: float = Field(default=5.0, ge=0, le=60)
    """How long a read may wait for the read models to reach a given log position."""

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'referral.sqlite'}"
        return self
