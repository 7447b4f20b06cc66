"""The `referral` command: serve, seed demo data, manage agencies, users and tokens.

Errors are one line on stderr and exit status 2; nothing is changed by a refused command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from adapters.auth import issue_token
from adapters.store import ConfigurationError, build_application
from api.settings import Settings
from referral_core.application import ReferralApplication
from referral_core.directory import agency_id_for
from referral_core.errors import ReferralError
from referral_core.vocab import AgencyKind, Role

SYSTEM_ACTOR = {"user_id": "cli", "agency_id": "system", "role": "admin"}
CREDENTIALS_FILE = "demo-credentials.json"


def _app(settings: Settings) -> ReferralApplication:
    return build_application(settings.database_url, pool_size=2)


def _agency_id(app: ReferralApplication, value: str) -> UUID:
    try:
        candidate = UUID(value)
    except ValueError:
        candidate = agency_id_for(value)
    app.directory().agency(str(candidate))
    return candidate


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    host = args.host or settings.host
    port = args.port or settings.port
    workers = args.workers or settings.workers
    os.environ["REFERRAL_DATABASE_URL"] = settings.database_url
    where = settings.database_url.split("@")[-1]
    print(f"referral: serving on http://{host}:{port}/docs ({where})")
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from referral_core import synthetic

    if args.reset and settings.database_url.startswith("sqlite:///"):
        path = Path(settings.database_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    app = _app(settings)
    synthetic.seed_directory(app)
    summary = synthetic.generate_cases(app, cases=args.cases, seed=args.seed)
    credentials = _demo_credentials(app, settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    target = settings.data_dir / CREDENTIALS_FILE
    target.write_text(json.dumps(credentials, indent=2) + "\n", encoding="utf-8")
    target.chmod(0o600)
    print(f"referral: {summary.describe()}")
    print(f"referral: demo credentials (every user) written to {target}")
    print("referral: a caseworker token for each demo agency (Authorization: Bearer TOKEN):")
    for entry in credentials:
        if entry["role"] != "caseworker":
            continue
        print(
            f"  {entry['agency_kind']:<17} {entry['country']} {entry['role']:<10} "
            f"{entry['agency_name'][:38]:<38} {entry['token']}"
        )
    app.close()
    return 0


def _demo_credentials(app: ReferralApplication, settings: Settings) -> list[dict[str, Any]]:
    directory = app.directory()
    found: list[dict[str, Any]] = []
    for user in sorted(directory.users.values(), key=lambda u: u["user_id"]):
        agency = directory.agencies[user["agency_id"]]
        _token_id, token = issue_token(
            app,
            UUID(user["user_id"]),
            ttl=timedelta(days=settings.token_ttl_days),
            actor=SYSTEM_ACTOR,
        )
        found.append(
            {
                "agency_id": agency["agency_id"],
                "agency_kind": agency["kind"],
                "agency_name": agency["name"],
                "country": agency["country"],
                "user_id": user["user_id"],
                "role": user["role"],
                "token": token,
            }
        )
    return sorted(found, key=lambda e: (e["country"], e["agency_kind"], e["role"]))


def cmd_agencies_add(settings: Settings, args: argparse.Namespace) -> int:
    app = _app(settings)
    agency_id = agency_id_for(args.slug)
    app.change_directory(
        lambda d: d.register_agency(
            agency_id, AgencyKind(args.kind), args.country, args.name, SYSTEM_ACTOR
        )
    )
    print(agency_id)
    return 0


def cmd_agencies_list(settings: Settings, _args: argparse.Namespace) -> int:
    app = _app(settings)
    for agency in sorted(app.directory().agencies.values(), key=lambda a: a["name"]):
        print(f"{agency['agency_id']}  {agency['country']}  {agency['kind']:<17} {agency['name']}")
    return 0


def cmd_users_add(settings: Settings, args: argparse.Namespace) -> int:
    app = _app(settings)
    agency_id = _agency_id(app, args.agency)
    user_id = uuid4()
    app.change_directory(
        lambda d: d.add_user(user_id, agency_id, Role(args.role), args.name, SYSTEM_ACTOR)
    )
    days = args.ttl_days or settings.token_ttl_days
    token_id, token = issue_token(app, user_id, ttl=timedelta(days=days), actor=SYSTEM_ACTOR)
    print(f"user {user_id}\ntoken id {token_id}\ntoken {token}\n(shown once; only a hash is kept)")
    return 0


def cmd_tokens_issue(settings: Settings, args: argparse.Namespace) -> int:
    app = _app(settings)
    days = args.ttl_days or settings.token_ttl_days
    token_id, token = issue_token(
        app, UUID(args.user), ttl=timedelta(days=days), actor=SYSTEM_ACTOR
    )
    print(f"token id {token_id}\ntoken {token}\n(shown once; only a hash is kept)")
    return 0


def cmd_tokens_revoke(settings: Settings, args: argparse.Namespace) -> int:
    app = _app(settings)
    app.change_directory(lambda d: d.revoke_token(UUID(args.token_id), args.reason, SYSTEM_ACTOR))
    print(f"revoked {args.token_id}")
    return 0


def cmd_users_deactivate(settings: Settings, args: argparse.Namespace) -> int:
    app = _app(settings)
    app.change_directory(lambda d: d.deactivate_user(UUID(args.user), args.reason, SYSTEM_ACTOR))
    print(f"deactivated {args.user}")
    return 0


def cmd_projections_run(settings: Settings, _args: argparse.Namespace) -> int:
    from api.logging import configure_logging, get_logger
    from projections.db import open_database
    from projections.registry import all_projections
    from projections.runner import ProjectionRunner
    from projections.worker import run_worker

    configure_logging(settings.log_level)
    log = get_logger("referral.projections")
    app = _app(settings)
    db = open_database(settings.database_url)
    runner = ProjectionRunner(
        app, db, all_projections(), batch_size=settings.projection_batch_size
    )
    print(f"referral: projections running ({', '.join(p.name for p in runner.projections)})")
    run_worker(
        runner,
        db,
        on_error=lambda exc: log.warning("projection batch failed", error_type=type(exc).__name__),
    )
    db.close()
    app.close()
    print("referral: projections stopped")
    return 0


def cmd_projections_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from projections.db import open_database
    from projections.registry import by_names
    from projections.runner import rebuild

    projections = by_names(args.names)
    app = _app(settings)
    db = open_database(settings.database_url)
    position = rebuild(app, db, projections)
    print(f"referral: rebuilt {', '.join(p.name for p in projections)} up to position {position}")
    db.close()
    app.close()
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="referral", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API under uvicorn")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="seed synthetic agencies, users and cases")
    demo.add_argument("--cases", type=int, default=60)
    demo.add_argument("--seed", type=int, default=2007)
    demo.add_argument("--reset", action="store_true", help="start from an empty SQLite file")
    demo.set_defaults(func=cmd_demo)

    agencies = sub.add_parser("agencies", help="register and list agencies")
    agencies_sub = agencies.add_subparsers(dest="action", required=True)
    add_agency = agencies_sub.add_parser("add")
    add_agency.add_argument("--slug", required=True, help="a short stable name, e.g. ua-hotline")
    add_agency.add_argument("--kind", required=True, choices=[k.value for k in AgencyKind])
    add_agency.add_argument("--country", required=True, help="ISO 3166-1 alpha-2")
    add_agency.add_argument("--name", required=True)
    add_agency.set_defaults(func=cmd_agencies_add)
    agencies_sub.add_parser("list").set_defaults(func=cmd_agencies_list)

    users = sub.add_parser("users", help="add and deactivate users")
    users_sub = users.add_subparsers(dest="action", required=True)
    add_user = users_sub.add_parser("add", help="add a user and print a token once")
    add_user.add_argument("--agency", required=True, help="agency slug or id")
    add_user.add_argument("--role", required=True, choices=[r.value for r in Role])
    add_user.add_argument("--name", required=True, help="display name")
    add_user.add_argument("--ttl-days", type=int)
    add_user.set_defaults(func=cmd_users_add)
    deactivate = users_sub.add_parser("deactivate")
    deactivate.add_argument("user")
    deactivate.add_argument("--reason", required=True)
    deactivate.set_defaults(func=cmd_users_deactivate)

    projections = sub.add_parser("projections", help="run or rebuild the read models")
    projections_sub = projections.add_subparsers(dest="action", required=True)
    projections_sub.add_parser("run", help="apply the log until SIGTERM").set_defaults(
        func=cmd_projections_run
    )
    rebuild_cmd = projections_sub.add_parser("rebuild", help="replay into fresh tables, swap")
    rebuild_cmd.add_argument("names", nargs="*", help="read models (default: all)")
    rebuild_cmd.set_defaults(func=cmd_projections_rebuild)

    tokens = sub.add_parser("tokens", help="issue and revoke tokens")
    tokens_sub = tokens.add_subparsers(dest="action", required=True)
    issue = tokens_sub.add_parser("issue")
    issue.add_argument("--user", required=True)
    issue.add_argument("--ttl-days", type=int)
    issue.set_defaults(func=cmd_tokens_issue)
    revoke = tokens_sub.add_parser("revoke")
    revoke.add_argument("token_id")
    revoke.add_argument("--reason", required=True)
    revoke.set_defaults(func=cmd_tokens_revoke)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings()
        result: int = args.func(settings, args)
    except (ReferralError, ConfigurationError, ValueError) as exc:
        message = getattr(exc, "message", None) or str(exc).splitlines()[0]
        print(f"referral: error: {message}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
