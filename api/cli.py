"""The `referral` command: serve, seed demo data, manage agencies, users and tokens; verify the
log, export a signed tree head, erase a case, rotate the master key; export and import the log.

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
    from api.keys import master_keys

    return build_application(settings.database_url, pool_size=2, master_keys=master_keys(settings))


def _agency_id(app: ReferralApplication, value: str) -> UUID:
    try:
        candidate = UUID(value)
    except ValueError:
        candidate = agency_id_for(value)
    app.directory().agency(str(candidate))
    return candidate


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from api.keys import master_keys, tree_head_signer
    from api.serve import serve

    master_keys(settings)  # refuse at once, in one line, rather than in the server's start
    tree_head_signer(settings)

    host = args.host or settings.host
    port = args.port or settings.port
    workers = args.workers or settings.workers
    os.environ["REFERRAL_DATABASE_URL"] = settings.database_url
    where = settings.database_url.split("@")[-1]
    print(f"referral: serving on http://{host}:{port}/docs ({where})")
    print(f"referral: sign in at http://{host}:{port}/web/sign-in")
    if not settings.cookie_secure:
        print("referral: REFERRAL_COOKIE_SECURE is off: for a plain-http demo on loopback only")
    print(f"referral: anonymous public report form at http://{host}:{port}/report")
    return serve(host, port, workers)


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
    _add_web_credentials(app, settings, credentials)
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
    print("referral: web sign-in for a caseworker of each demo agency (username, password,")
    print("  TOTP secret: add it to an authenticator app, or get the current code with")
    print("  python3 -c \"import pyotp; print(pyotp.TOTP('SECRET').now())\"):")
    for entry in credentials:
        if entry["role"] == "caseworker" or entry["agency_kind"] == "auditor":
            print(f"  {entry['username']:<32} {entry['password']:<18} {entry['totp_secret']}")
    app.close()
    return 0


def _add_web_credentials(
    app: ReferralApplication, settings: Settings, credentials: list[dict[str, Any]]
) -> None:
    """Web usernames, passwords and TOTP secrets for the demo users, into their entries."""
    from api.keys import master_keys
    from api.web.demo import demo_web_credentials
    from projections.db import open_database

    db = open_database(settings.database_url)
    try:
        web = demo_web_credentials(db, master_keys(settings), app.clock())
    finally:
        db.close()
    for entry in credentials:
        entry.update(web.get(entry["user_id"], {}))


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


def cmd_users_password(settings: Settings, args: argparse.Namespace) -> int:
    """Set a user's web username and password and a new TOTP secret (shown once)."""
    import getpass

    import pyotp

    from api.keys import master_keys
    from api.web.credentials import set_credentials
    from api.web.store import create_tables
    from projections.db import open_database

    app = _app(settings)
    user = app.directory().user(str(UUID(args.user)))
    password = os.environ.get("REFERRAL_NEW_PASSWORD") or getpass.getpass("new password: ")
    db = open_database(settings.database_url)
    try:
        create_tables(db)
        secret = set_credentials(
            db,
            master_keys(settings),
            user_id=user["user_id"],
            username=args.username,
            password=password,
            now=app.clock(),
        )
    finally:
        db.close()
        app.close()
    username = args.username.strip().lower()
    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name="referral")
    print(f"username {username}\nTOTP secret {secret}\n{uri}")
    print("(shown once: add it to the user's authenticator app)")
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
    from api.keys import configured
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
        app,
        db,
        configured(all_projections(), settings),
        batch_size=settings.projection_batch_size,
    )
    print(f"referral: projections running ({', '.join(p.name for p in runner.projections)})")
    run_worker(
        runner,
        db,
        gather=settings.projection_gather_seconds,
        on_error=lambda exc: log.warning("projection batch failed", error_type=type(exc).__name__),
    )
    db.close()
    app.close()
    print("referral: projections stopped")
    return 0


def cmd_projections_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from api.keys import configured
    from projections.db import open_database
    from projections.registry import by_names
    from projections.runner import rebuild

    projections = configured(by_names(args.names), settings)
    app = _app(settings)
    db = open_database(settings.database_url)
    position = rebuild(app, db, projections, processes=args.processes)
    print(f"referral: rebuilt {', '.join(p.name for p in projections)} up to position {position}")
    db.close()
    app.close()
    return 0


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.integrity.tree_head import SignedTreeHead
    from api.keys import verifying_key
    from projections.db import open_database
    from projections.verification import verify_log

    earlier = None
    if args.head:
        try:
            text = Path(args.head).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"--head: {args.head} cannot be read") from exc
        earlier = SignedTreeHead.from_json(text)
    app = _app(settings)
    db = open_database(settings.database_url)
    try:
        report = verify_log(
            app,
            db,
            public_key=verifying_key(settings),
            checkpoint_every=settings.checkpoint_every,
            earlier=earlier,
        )
    finally:
        db.close()
        app.close()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0 if report.ok else 1
    print(f"referral: {report.summary()}")
    print(
        f"  {report.events} events, {report.leaves} leaves, {report.heads_checked} signed "
        f"tree heads checked, {report.pending} events not yet in the tree"
    )
    for finding in report.findings:
        print(f"  {finding.line()}")
    for note in report.notes:
        print(f"  note: {note}")
    return 0 if report.ok else 1


def cmd_audit_checkpoint(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from api.keys import SIGNING_KEY_FILE_SETTING, SIGNING_KEY_SETTING, tree_head_signer
    from projections.db import open_database
    from projections.verification import current_head, verify_log

    signer = tree_head_signer(settings)
    if signer is None:
        raise ConfigurationError(
            f"{SIGNING_KEY_SETTING} (or {SIGNING_KEY_FILE_SETTING}) is required to sign heads"
        )
    app = _app(settings)
    db = open_database(settings.database_url)
    try:
        report = verify_log(
            app, db, public_key=signer.public_key, checkpoint_every=settings.checkpoint_every
        )
        if not report.ok:
            print(f"referral: not exported: {report.summary()}", file=sys.stderr)
            return 1
        head = current_head(db, signer, datetime.now(UTC))
    finally:
        db.close()
        app.close()
    Path(args.export).write_text(head.to_json() + "\n", encoding="utf-8")
    print(
        f"referral: tree head {head.tree_size}:{head.root_hash.hex()} written to {args.export}"
        + (f" ({report.pending} newer events not yet in the tree)" if report.pending else "")
    )
    return 0


def cmd_erase(settings: Settings, args: argparse.Namespace) -> int:
    from api.erasure import erase_case
    from projections.db import open_database
    from referral_core.envelope import Actor

    app = _app(settings)
    db = open_database(settings.database_url)
    try:
        outcome = erase_case(
            app,
            db,
            UUID(args.case),
            reason=args.reason,
            legal_basis=args.legal_basis,
            actor=Actor("cli", "system", Role.DATA_PROTECTION_OFFICER),
            correlation_id=f"cli-{uuid4().hex}",
        )
    finally:
        db.close()
        app.close()
    again = " (an earlier erasure completed)" if outcome.already_erased else ""
    print(f"referral: case {outcome.case_id} erased at version {outcome.version}{again}")
    return 0


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from adapters.backup import export_log
    from api.keys import tree_head_signer

    signer = tree_head_signer(settings)
    app = _app(settings)
    try:
        if args.out in (None, "-"):
            summary = export_log(app.recorder, sys.stdout, signer=signer, now=datetime.now(UTC))
        else:
            target = Path(args.out)
            partial = target.with_name(target.name + ".partial")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                summary = export_log(app.recorder, handle, signer=signer, now=datetime.now(UTC))
                handle.flush()
                os.fsync(handle.fileno())
            partial.replace(target)
    finally:
        app.close()
    where = "stdout" if args.out in (None, "-") else args.out
    print(f"referral: exported {summary.describe()} to {where}", file=sys.stderr)
    return 0


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.backup import import_log
    from adapters.store import ProtectedApplication
    from api.keys import verifying_key

    app = _app(settings)
    try:
        assert isinstance(app, ProtectedApplication)  # noqa: S101 -- built by build_application
        with Path(args.file).open(encoding="utf-8", newline="") as lines:
            summary = import_log(
                app.recorder,
                lines,
                public_key=verifying_key(settings),
                master_key_ids=app.keyring.master_keys.keys,
            )
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{args.file} cannot be read") from exc
    finally:
        app.close()
    print(
        f"referral: imported {summary.describe()}; {summary.signatures_checked} tree head "
        "signature(s) verified"
    )
    for note in summary.notes:
        print(f"  note: {note}")
    print("referral: next: `referral projections rebuild`, then `referral audit verify`")
    return 0


def cmd_keys_rotate(settings: Settings, _args: argparse.Namespace) -> int:
    from adapters.store import ProtectedApplication

    app = _app(settings)
    try:
        assert isinstance(app, ProtectedApplication)  # noqa: S101 -- built by build_application
        count = app.keyring.rotate()
        current = app.keyring.master_keys.current_id
    finally:
        app.close()
    print(f"referral: {count} case key(s) rewrapped under master key {current}")
    return 0


def cmd_keys_new_master(_settings: Settings, args: argparse.Namespace) -> int:
    from adapters.crypto.master import generate_master_key_entry

    print(generate_master_key_entry(args.id))
    return 0


def _positive(text: str) -> int:
    """A whole number of at least 1 (argparse reports anything else as a usage error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _projections_parsers(sub: Any) -> None:
    projections = sub.add_parser("projections", help="run or rebuild the read models")
    projections_sub = projections.add_subparsers(dest="action", required=True)
    projections_sub.add_parser("run", help="apply the log until SIGTERM").set_defaults(
        func=cmd_projections_run
    )
    rebuild_cmd = projections_sub.add_parser("rebuild", help="replay into fresh tables, swap")
    rebuild_cmd.add_argument("names", nargs="*", help="read models (default: all)")
    rebuild_cmd.add_argument(
        "--processes",
        type=_positive,
        default=None,
        help="processes sharing the cases out (PostgreSQL; default: one per core, up to 8, "
        "for a log of 100,000 entries or more, else 1)",
    )
    rebuild_cmd.set_defaults(func=cmd_projections_rebuild)


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

    _projections_parsers(sub)
    _integrity_parsers(sub, users_sub)

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


def _web_parsers(users_sub: Any) -> None:
    password = users_sub.add_parser(
        "password", help="set web sign-in: username, password (prompted) and a new TOTP secret"
    )
    password.add_argument("user", help="the user id")
    password.add_argument("--username", required=True)
    password.set_defaults(func=cmd_users_password)


def _integrity_parsers(sub: Any, users_sub: Any) -> None:
    _web_parsers(users_sub)
    audit = sub.add_parser("audit", help="verify the log; export a signed tree head")
    audit_sub = audit.add_subparsers(dest="action", required=True)
    verify = audit_sub.add_parser("verify", help="recompute chains, leaves and tree heads")
    verify.add_argument("--head", help="a tree head exported earlier: prove the log only grew")
    verify.add_argument("--json", action="store_true", help="print the full report as JSON")
    verify.set_defaults(func=cmd_audit_verify)
    checkpoint = audit_sub.add_parser("checkpoint", help="export the latest signed tree head")
    checkpoint.add_argument("--export", required=True, metavar="FILE")
    checkpoint.set_defaults(func=cmd_audit_checkpoint)

    export = sub.add_parser("export", help="write the whole log as JSON Lines (a backup)")
    export.add_argument("--out", metavar="FILE", help="default: stdout")
    export.set_defaults(func=cmd_export)
    load = sub.add_parser("import", help="load an export into an empty store")
    load.add_argument("file", metavar="FILE")
    load.set_defaults(func=cmd_import)

    erase = sub.add_parser("erase", help="erase a case's identifying data (destroys its key)")
    erase.add_argument("case", help="the case id")
    erase.add_argument("--reason", required=True)
    erase.add_argument("--legal-basis", required=True, help="the law that requires the erasure")
    erase.set_defaults(func=cmd_erase)

    keys = sub.add_parser("keys", help="master keys of the case keys")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    keys_sub.add_parser(
        "rotate", help="rewrap every case key under the first master key"
    ).set_defaults(func=cmd_keys_rotate)
    new_master = keys_sub.add_parser("new-master", help="print a new ID:BASE64 master key")
    new_master.add_argument("id")
    new_master.set_defaults(func=cmd_keys_new_master)


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
