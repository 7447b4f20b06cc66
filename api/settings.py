"""Typed settings from the environment: every variable starts with REFERRAL_ (see README)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
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
    threads: int = Field(default=4, ge=1, le=256)
    """Threads each worker process runs requests on. Appends queue for the store's one table
    lock and the process's one interpreter lock, so more threads only contend for them: with 16
    clients, 4 threads answered more appends per second, at a lower p99, than 8 or 40 (the
    `http` benchmark). Reads waiting for the read models (`?min_position=`) hold none."""
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
    projection_batch_size: int | None = Field(default=None, ge=1, le=100_000)
    """How many log entries a read-model batch applies in one transaction; unset: 2,000 on
    PostgreSQL, 500 on SQLite (where a batch holds the one write lock against appends)."""
    projection_gather_seconds: float = Field(default=0.05, ge=0, le=5)
    """The separate read-model worker (`referral projections run`), woken by an append, waits
    this long for more before its batch: under load one batch then applies many appends, for
    much less work per append than a batch each; read models lag by as much more."""
    read_wait_seconds: float = Field(default=5.0, ge=0, le=60)
    """How long a read may wait for the read models to reach a given log position."""
    stats_threshold: int = Field(default=5, ge=2, le=1000)
    """Published statistics suppress counts from 1 to this minus one (and their complements)."""
    stats_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    """How long a counted statistics table is served again while the read models move on (0:
    counted again as soon as they have); a reader asking for a newer position always gets one."""
    export_k: int = Field(default=11, ge=2, le=1000)
    """Every quasi-identifier combination of the CTDC export is shared by at least k records."""
    country_rules_file: Path | None = None
    """JSON durations of each country's deadlines (`referral_core.deadlines.load_country_rules`);
    unset: the built-in illustrative defaults. The read models read it from the environment."""
    master_keys: SecretStr = SecretStr("")
    """`ID:BASE64[,ID:BASE64…]` master keys wrapping every case key; the first is current."""
    master_key_file: Path | None = None
    """A file holding the master keys instead (same form, one per line allowed)."""
    signing_key: SecretStr = SecretStr("")
    """Ed25519 key signing tree heads: PKCS8 PEM, or a 32-byte seed in hex or base64."""
    signing_key_file: Path | None = None
    """A file holding the signing key instead."""
    checkpoint_every: int = Field(default=1000, ge=1, le=10_000_000)
    """A signed tree head at least every this many events of the log."""
    checkpoint_minutes: float = Field(default=10.0, gt=0, le=7 * 24 * 60)
    """…and at least every this many minutes of log time (the events' own timestamps)."""
    cookie_secure: bool = True
    """Mark the web session cookie Secure (served over HTTPS only). Turn off only for a
    plain-http demo on the loopback interface (`make run` does)."""
    session_idle_minutes: int = Field(default=15, ge=1, le=24 * 60)
    """A web session left unused this long is signed out."""
    session_max_hours: int = Field(default=12, ge=1, le=7 * 24)
    """A web session ends this long after its sign-in, however busy."""
    lockout_failures: int = Field(default=5, ge=1, le=100)
    """Consecutive failed web sign-ins that lock an account."""
    lockout_minutes: int = Field(default=15, ge=1, le=7 * 24 * 60)
    """How long a locked account stays locked."""
    public_report_limit: int = Field(default=20, ge=1, le=100_000)
    """Anonymous public reports accepted per window by one process (all senders together:
    no address is kept to tell senders apart)."""
    public_report_window_seconds: int = Field(default=600, ge=1, le=24 * 3600)
    """The window of `public_report_limit`."""
    public_report_agency: str = ""
    """Slug or id of the hotline that receives public reports; empty: each country's hotline
    (the reporter chooses the country)."""
    emergency_number: str = "112"
    """The emergency number the public report form shows."""
    create_tables: bool = True
    """Create the store's and read models' tables at start. False on a node serving reads from
    a hot standby (with `run_projections` false): it then writes nothing."""
    case_cache_size: int = Field(default=4096, ge=0, le=1_000_000)
    """Folded cases each process keeps in memory (0: none); a read then folds only the events
    stored since (`referral_core.case_cache`)."""

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'referral.sqlite'}"
        return self
