"""The files of ops/ say what the code does: commands that exist, settings that exist, no secrets.

No container engine or systemd runs here, so nothing is built or started: compose.yaml is parsed
(a small YAML subset parser below: block mappings and sequences of scalars, which the file
keeps to, so a stray flow collection or list of mappings fails loudly), the Containerfile's
copied paths must exist, every `referral …` command of the units, the image, compose and the
runbook must parse with the real CLI, and every REFERRAL_ setting must be documented in the
environment template. Where the tools are installed, PostgreSQL itself checks referral.conf
(`postgres -C`) and `systemd-analyze verify` checks the units.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from api import cli
from api.settings import Settings
from tests.support import postgres

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
CONTAINER = OPS / "container"
SYSTEMD = OPS / "systemd"
UNITS = {
    "referral-api.service": cli.cmd_serve,
    "referral-projections.service": cli.cmd_projections_run,
}
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 -- what a container's API must listen on
PLANNED_COMMANDS: set[str] = set()
"""Named in the runbook as planned, not in the CLI yet (none: export and import landed)."""


# -- the CLI -------------------------------------------------------------------------------------


def cli_function(argv: list[str]) -> Callable[..., int]:
    """The function `referral ARGV` runs; a test failure if the CLI does not accept ARGV."""
    try:
        args = cli.parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"`referral {shlex.join(argv)}` is not a command of the CLI (exit {exc.code})")
    func: Callable[..., int] = args.func
    return func


def after_referral(argv: list[str]) -> list[str]:
    """The arguments after the `referral` program, wherever it is installed."""
    assert argv, "an empty command"
    assert Path(argv[0]).name == "referral", argv
    return argv[1:]


# -- a YAML subset -------------------------------------------------------------------------------

Line = tuple[int, str]


def _strip_comment(line: str) -> str:
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return line[:index]
    return line


def _scalar(text: str) -> Any:
    if text[:1] in "[{":
        raise ValueError(f"flow collections are outside the subset: {text}")
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if text in ("null", "~"):
        return None
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def _is_mapping_entry(text: str) -> bool:
    return bool(re.match(r"^[^\s\"'][^:]*:(\s|$)", text))


def _block(lines: list[Line], index: int, indent: int) -> tuple[Any, int]:
    if lines[index][1].startswith("-"):
        items: list[Any] = []
        while index < len(lines) and lines[index][0] == indent:
            text = lines[index][1]
            if not (text == "-" or text.startswith("- ")):
                raise ValueError(f"a mapping entry among list items: {text}")
            content = text[1:].strip()
            if not content or _is_mapping_entry(content):
                raise ValueError(
                    f"nested lists and lists of mappings are outside the subset: {text}"
                )
            items.append(_scalar(content))
            index += 1
        return items, index
    mapping: dict[str, Any] = {}
    while index < len(lines) and lines[index][0] == indent:
        text = lines[index][1]
        if not _is_mapping_entry(text):
            raise ValueError(f"expected `key: value`: {text}")
        key, _, rest = text.partition(":")
        key = str(_scalar(key.strip()))
        if key in mapping:
            raise ValueError(f"duplicate key {key}")
        rest = rest.strip()
        index += 1
        if rest:
            mapping[key] = _scalar(rest)
        elif index < len(lines) and lines[index][0] > indent:
            mapping[key], index = _block(lines, index, lines[index][0])
        else:
            mapping[key] = None
    if index < len(lines) and lines[index][0] > indent:
        raise ValueError(f"unexpected indentation: {lines[index][1]}")
    return mapping, index


def parse_yaml(text: str) -> Any:
    lines: list[Line] = []
    for raw in text.splitlines():
        if "\t" in raw:
            raise ValueError("tabs are not YAML indentation")
        line = _strip_comment(raw).rstrip()
        if line.strip():
            lines.append((len(line) - len(line.lstrip(" ")), line.strip()))
    if not lines:
        return None
    value, index = _block(lines, 0, lines[0][0])
    if index != len(lines):
        raise ValueError(f"unparsed from: {lines[index][1]}")
    return value


def test_the_yaml_subset_parser() -> None:
    parsed = parse_yaml(
        "a: 1  # note\nb:\n  - x\n  - 'y: z'\nc:\n  d: \"#not a comment\"\n  e:\nf: true\n"
    )
    assert parsed == {
        "a": 1,
        "b": ["x", "y: z"],
        "c": {"d": "#not a comment", "e": None},
        "f": True,
    }
    for bad in ("a: [1, 2]\n", "a:\n  - b: 1\n", "a: 1\na: 2\n", "a:\n  b: 1\n    c: 2\n"):
        with pytest.raises(ValueError):  # noqa: PT011 -- each shape is refused
            parse_yaml(bad)


# -- compose.yaml --------------------------------------------------------------------------------

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEYS?($|_)", re.IGNORECASE)


def _environment_values(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping"
    return env


def test_compose_file_runs_real_commands_without_literal_secrets() -> None:
    compose = parse_yaml((CONTAINER / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"db", "api", "projections"}

    build = services["api"]["build"]
    context = (CONTAINER / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).is_file()
    assert services["projections"]["image"] == services["api"]["image"]
    assert cli_function(after_referral(services["api"]["command"])) is cli.cmd_serve
    assert ALL_INTERFACES in services["api"]["command"]
    worker = services["projections"]["command"]
    assert cli_function(after_referral(worker)) is cli.cmd_projections_run
    assert _environment_values(services["api"])["REFERRAL_RUN_PROJECTIONS"] == "false"

    # Secrets come from files (compose secrets) and the git-ignored env file, never literals.
    ignored = (CONTAINER / ".gitignore").read_text(encoding="utf-8").split()
    for name, service in services.items():
        for key, value in _environment_values(service).items():
            if SECRET_NAME.search(key):
                assert key.endswith("_FILE"), f"{name}: {key} must name a file"
                assert str(value).startswith("/run/secrets/"), f"{name}: {key}={value}"
        for env_file in service.get("env_file") or []:
            assert env_file in ignored, f"{env_file} must be git-ignored"
            assert (CONTAINER / f"{env_file}.example").is_file()
        for secret in service.get("secrets") or []:
            assert secret in compose["secrets"], secret
    for secret in compose["secrets"].values():
        path = Path(secret["file"])
        assert path.parts[:2] == (".", "secrets") or path.parts[0] == "secrets", path
    assert "secrets/" in ignored

    db = services["db"]
    assert db["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    assert "pgdata" in compose["volumes"]
    assert any(str(v).startswith("pgdata:") for v in db["volumes"])
    mounted = [v for v in db["volumes"] if str(v).startswith("./")]
    for volume in mounted:
        assert (CONTAINER / str(volume).split(":")[0]).exists(), volume
    flags = [db["command"][i + 1] for i, arg in enumerate(db["command"]) if arg == "-c"]
    assert "log_statement=none" in flags
    assert "log_parameter_max_length=0" in flags
    assert "log_parameter_max_length_on_error=0" in flags
    assert "fsync=on" in flags


def test_env_examples_hold_placeholders_only() -> None:
    for path in (SYSTEMD / "referral.env.example", CONTAINER / "referral.env.example"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#") or "=" not in line:
                continue
            name, _, value = line.partition("=")
            assert not re.search(r"MASTER_KEYS$|SIGNING_KEY$", name), f"{path.name}: {name} set"
            for password in re.findall(r"://[^:/@]+:([^@]*)@", value):
                assert password.startswith("CHANGE_ME"), f"{path.name}: {name} has a password"


# -- Containerfile -------------------------------------------------------------------------------


def containerfile_instructions() -> list[tuple[str, str]]:
    text = (CONTAINER / "Containerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            instruction, _, rest = stripped.partition(" ")
            found.append((instruction.upper(), rest.strip()))
    return found


def test_containerfile_copies_what_exists_and_runs_as_non_root() -> None:
    instructions = containerfile_instructions()
    stages = [rest for instruction, rest in instructions if instruction == "FROM"]
    assert stages
    assert all(re.search(r"(^|/)python:3\.11-slim\b", stage) for stage in stages)

    copied: set[str] = set()
    for instruction, rest in instructions:
        if instruction != "COPY" or rest.startswith("--from"):
            continue
        *sources, _target = shlex.split(rest)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            copied.add(source.rstrip("/").removeprefix("./"))
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    include = re.search(r"include = \[([^\]]*)\]", pyproject)
    assert include is not None
    packages = {p.strip().strip('"').rstrip("*") for p in include.group(1).split(",")}
    assert packages <= copied, f"packages not copied: {packages - copied}"
    assert {"pyproject.toml", "README.md"} <= copied

    users = [rest for instruction, rest in instructions if instruction == "USER"]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    cmd = [rest for instruction, rest in instructions if instruction == "CMD"][-1]
    argv = [str(a) for a in json.loads(cmd)]
    assert cli_function(after_referral(argv)) is cli.cmd_serve
    assert argv[argv.index("--host") + 1] == ALL_INTERFACES

    ignore = [
        line.strip()
        for line in (CONTAINER / "Containerfile.dockerignore")
        .read_text(encoding="utf-8")
        .splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "**", "the build context starts empty"
    assert not any(line.startswith(("!var", "!.venv")) for line in ignore)


# -- systemd units -------------------------------------------------------------------------------


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: {line} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


HARDENING = {
    "User": "referral",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "PrivateTmp": "yes",
    "Restart": "on-failure",
    "KillSignal": "SIGTERM",
}


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_systemd_unit_is_hardened_and_runs_a_real_command(unit: str) -> None:
    service = parse_unit(SYSTEMD / unit)["Service"]
    argv = shlex.split(service["ExecStart"][0])
    assert argv[0].startswith("/"), "ExecStart needs an absolute path"
    assert cli_function(after_referral(argv)) is UNITS[unit]
    for key, value in HARDENING.items():
        assert service.get(key) == [value], f"{unit}: {key}"
    assert service["ReadWritePaths"] == ["/var/lib/referral"]
    assert service["RestartSec"]
    assert service["TimeoutStopSec"]
    assert service["EnvironmentFile"] == ["/etc/referral/referral.env"]
    environment = dict(e.split("=", 1) for e in service.get("Environment", []))
    assert environment["REFERRAL_MASTER_KEY_FILE"].startswith("%d/"), "keys as credentials"
    credentials = [c.split(":", 1)[0] for c in service["LoadCredential"]]
    assert environment["REFERRAL_MASTER_KEY_FILE"].removeprefix("%d/") in credentials
    if UNITS[unit] is cli.cmd_serve:
        assert environment["REFERRAL_RUN_PROJECTIONS"] == "false"


def test_systemd_units_verify() -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    referral = shutil.which("referral", path=str(ROOT / ".venv" / "bin")) or shutil.which(
        "referral"
    )
    if referral is None:
        pytest.skip("no installed `referral` to stand in for /opt/referral/venv/bin/referral")
    with tempfile.TemporaryDirectory() as tmp:
        for unit in UNITS:
            text = (SYSTEMD / unit).read_text(encoding="utf-8")
            text = text.replace("/opt/referral/venv/bin/referral", referral)
            (Path(tmp) / unit).write_text(text, encoding="utf-8")
        result = subprocess.run(  # noqa: S603 -- fixed arguments
            [analyze, "verify", *(str(Path(tmp) / unit) for unit in UNITS)],
            capture_output=True,
            text=True,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert not result.stderr.strip(), result.stderr


def test_environment_template_documents_every_setting() -> None:
    text = (SYSTEMD / "referral.env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^#?(REFERRAL_[A-Z0-9_]+)=", text, flags=re.MULTILINE))
    settings = {f"REFERRAL_{name.upper()}" for name in Settings.model_fields}
    assert settings - documented == set(), "document these in ops/systemd/referral.env.example"
    assert documented - settings == set(), "not settings of api/settings.py"


# -- PostgreSQL settings -------------------------------------------------------------------------

EXPECTED_POSTGRES = {
    "fsync": "on",
    "full_page_writes": "on",
    "synchronous_commit": "remote_apply",
    "wal_level": "replica",
    "hot_standby": "on",
    "archive_mode": "on",
    "log_statement": "none",
    "log_parameter_max_length": "0",
    "log_parameter_max_length_on_error": "0",
    "ssl": "on",
}


def conf_settings(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = _strip_comment(raw).strip()
        if line:
            name, sep, value = line.partition("=")
            assert sep, f"{path.name}: {raw}"
            found[name.strip()] = value.strip().strip("'")
    return found


def test_postgresql_settings_are_the_documented_policy() -> None:
    found = conf_settings(OPS / "postgresql" / "referral.conf")
    for name, value in EXPECTED_POSTGRES.items():
        assert found.get(name) == value, name
    assert found["synchronous_standby_names"], "a synchronous standby"
    assert found["idle_in_transaction_session_timeout"]
    assert found["lock_timeout"]
    assert int(found["max_connections"]) >= 100


@pytest.mark.postgres
def test_postgresql_accepts_referral_conf() -> None:
    """PostgreSQL reads the file: names and values valid for the installed version."""
    bindir = postgres.find_binaries()
    if bindir is None:
        pytest.skip(postgres.HOW_TO_GET_POSTGRES)
    server = (bindir / "pg_ctl").resolve().parent / "postgres"
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    with tempfile.TemporaryDirectory(prefix="referral-conf-") as tmp:
        config = Path(tmp)
        shutil.copy(OPS / "postgresql" / "referral.conf", config / "referral.conf")
        (config / "postgresql.conf").write_text("include 'referral.conf'\n", encoding="utf-8")
        config.chmod(0o755)
        for name, value in EXPECTED_POSTGRES.items():
            result = subprocess.run(  # noqa: S603 -- fixed arguments
                [*as_postgres, str(server), "-D", str(config), "-C", name],
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() == value, name


# -- the runbook ----------------------------------------------------------------------------------


def test_runbook_and_readme_name_real_commands() -> None:
    texts = [
        (OPS / "RUNBOOK.md").read_text(encoding="utf-8"),
        (ROOT / "README.md").read_text(encoding="utf-8"),
    ]
    runbook_and_section = texts[0] + texts[1].partition("## Running on more than one machine")[2]
    commands = re.findall(r"`(?:[^`]*/)?referral ([^`]+)`", runbook_and_section)
    fenced = False
    for line in runbook_and_section.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced and line.startswith("referral "):
            commands.append(_strip_comment(line).removeprefix("referral "))
    assert len(commands) > 20
    for command in commands:
        argv = shlex.split(re.sub(r"\$\([^)]*\)", "X", command).split(">")[0].replace("…", "X"))
        if argv[0] in PLANNED_COMMANDS or argv[0].startswith("-") or argv == ["X"]:
            continue  # planned, `referral --help`, or `referral …` (any command)
        cli_function(argv)
    assert "referral keys rotate" in texts[0]
    assert "ops/" in texts[1].partition("## Running on more than one machine")[2]
