"""Named checks over deploy/: each returns the problems it found, empty when the file is sound.

They are functions over parsed text rather than asserts so the tests can run them on the real
files (no problems) and on deliberately broken copies (the problem is reported).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import shlex
from pathlib import Path
from typing import Any

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROOT = DEPLOY.parent

# -- Dockerfile -------------------------------------------------------------------------------

Instruction = tuple[str, str]  # (KEYWORD, arguments)


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def _words(args: str) -> list[str]:
    """Exec-form JSON array or shell form, as a list of words."""
    if args.startswith("["):
        return [str(word) for word in json.loads(args)]
    return shlex.split(args)


def dockerfile_stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for keyword, args in instructions:
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args))
    return stages


def _global_args(instructions: list[Instruction]) -> dict[str, str]:
    found: dict[str, str] = {}
    for keyword, args in instructions:
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in args:
            name, _, default = args.partition("=")
            found[name.strip()] = default.strip()
    return found


def dockerfile_problems(text: str, *, packages: list[str]) -> list[str]:
    instructions = dockerfile_instructions(text)
    stages = dockerfile_stages(instructions)
    if len(stages) < 2:
        return ["not multi-stage: the runtime must not carry the build"]
    problems: list[str] = []
    variables = _global_args(instructions)
    names = []
    for stage in stages:
        words = stage[0][1].split()
        names.append(words[2].lower() if len(words) >= 3 and words[1].upper() == "AS" else "")
    builder, runtime = stages[0], stages[-1]

    base = re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), runtime[0][1])
    if not base.split()[0].startswith("python:3.11-slim"):
        problems.append(f"runtime base is {base.split()[0]!r}, expected python:3.11-slim")

    sources = {
        word.rstrip("/")
        for keyword, args in builder
        if keyword == "COPY"
        for word in args.split()[:-1]
        if not word.startswith("--")
    }
    problems += [f"builder does not copy package {p!r} whole" for p in packages if p not in sources]
    builder_name = names[0]
    if not builder_name or not any(
        keyword == "COPY" and f"--from={builder_name}" in args for keyword, args in runtime
    ):
        problems.append("runtime does not copy the installed venv from a named builder stage")

    users = [args.split(":")[0] for keyword, args in runtime if keyword == "USER"]
    if not users or users[-1] in ("root", "0"):
        problems.append("runtime runs as root: the last USER must be a non-root user")

    for keyword, args in runtime:
        if keyword == "RUN" and re.search(r"apt-get install|build-essential|\bgcc\b", args):
            problems.append(f"runtime installs build tools: RUN {args[:60]}")

    checks = [args for keyword, args in runtime if keyword == "HEALTHCHECK"]
    if not checks or "/healthz" not in checks[-1]:
        problems.append("no HEALTHCHECK on /healthz")

    cmds = [_words(args) for keyword, args in runtime if keyword == "CMD"]
    cmd = " ".join(cmds[-1]) if cmds else ""
    if not (cmd.startswith("hub serve") or "--loop asyncio" in cmd):
        problems.append(f"CMD {cmd!r} is neither `hub serve` nor uvicorn with --loop asyncio")
    return problems


def dockerignore_problems(text: str, *, copied: list[str]) -> list[str]:
    """An allow-list .dockerignore must re-include everything the Dockerfile copies."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines or lines[0] not in ("*", "**"):
        return ["not an allow-list: the first pattern must exclude everything"]
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    return [f"{path!r} is copied but not re-included" for path in copied if path not in allowed]


# -- compose ----------------------------------------------------------------------------------

REQUIRED_SERVICES = ("db", "migrate", "hub", "otel-collector", "jaeger")
_SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|_KEYS$|DATABASE_URL")


def _depends(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):  # short form: started only, no condition
        return dict.fromkeys(raw, "service_started")
    return {
        name: str((spec or {}).get("condition", "service_started")) for name, spec in raw.items()
    }


def _env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) for item in raw)
    return {str(k): str(v) for k, v in raw.items()}


def _is_dev_placeholder(name: str, value: str) -> bool:
    """A value that could only ever be a local-development stand-in."""
    if name.endswith("_KEYS"):
        try:
            keys = json.loads(value)
            return all(
                base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)).startswith(b"dev-only")
                for v in keys.values()
            )
        except (ValueError, AttributeError, binascii.Error):
            return False
    if name.endswith("DATABASE_URL"):
        password = re.match(r"^[a-z+]+://[^:/@]+:([^@]*)@", value)
        return password is None or "dev" in password.group(1)
    return "dev" in value.lower()


def compose_problems(doc: dict[str, Any]) -> list[str]:
    services: dict[str, Any] = doc.get("services") or {}
    problems = [
        f"service {name!r} is missing" for name in REQUIRED_SERVICES if name not in services
    ]
    if problems:
        return problems
    db, migrate, hub = services["db"], services["migrate"], services["hub"]

    if not str(db.get("image", "")).startswith("postgres:16"):
        problems.append(f"db image is {db.get('image')!r}, expected postgres:16")
    for name in ("db", "hub"):
        if "test" not in (services[name].get("healthcheck") or {}):
            problems.append(f"{name} has no healthcheck")
    if "/healthz" not in json.dumps((hub.get("healthcheck") or {}).get("test")):
        problems.append("hub healthcheck does not probe /healthz")

    if _depends(hub).get("migrate") != "service_completed_successfully":
        problems.append("hub must wait for migrate: condition service_completed_successfully")
    if _depends(hub).get("db") != "service_healthy":
        problems.append("hub must wait for db: condition service_healthy")
    if _depends(migrate).get("db") != "service_healthy":
        problems.append("migrate must wait for db: condition service_healthy")
    if "migrate" not in (migrate.get("command") or []):
        problems.append("migrate does not run `hub migrate`")
    if str(migrate.get("restart", "no")) != "no":
        problems.append("migrate is one-shot: restart must be 'no'")
    if migrate.get("image") != hub.get("image"):
        problems.append("migrate and hub must run the same image")

    for name, service in services.items():
        env = _env(service)
        for key, value in env.items():
            if _SECRETISH.search(key) and not _is_dev_placeholder(key, value):
                problems.append(f"{name}.{key} looks like a real secret, not a dev placeholder")
        if "HUB_ENV" in env and env["HUB_ENV"] != "dev":
            problems.append(f"{name} runs with HUB_ENV={env['HUB_ENV']}: compose is dev only")
        for port in service.get("ports") or []:
            if not str(port).startswith("127.0.0.1:"):
                problems.append(f"{name} publishes {port} beyond localhost")
    return problems


# -- OpenTelemetry collector -------------------------------------------------------------------


def collector_problems(config: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    pipelines = (config.get("service") or {}).get("pipelines") or {}
    if "traces" not in pipelines:
        problems.append("no traces pipeline")
    for pipeline_name, pipeline in pipelines.items():
        for section in ("receivers", "processors", "exporters"):
            defined = config.get(section) or {}
            for component in pipeline.get(section) or []:
                if component not in defined:
                    problems.append(f"{pipeline_name}: {section[:-1]} {component!r} is not defined")
    traces = pipelines.get("traces") or {}
    if not any(e.split("/")[0] == "otlp" for e in traces.get("exporters") or []):
        problems.append("traces are not exported over OTLP (to Jaeger)")
    if "debug" not in (traces.get("exporters") or []):
        problems.append("traces have no debug exporter")
    return problems
