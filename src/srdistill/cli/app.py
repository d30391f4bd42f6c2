"""Running a Hydra entry point: composition errors as one line, without loading torch first.

The root scripts and the installed commands (srdistill-train, -eval, -export) import this module
only, and the job's own module inside the Hydra main function, so a mistyped option is reported
in the time Hydra takes to compose (about a second).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.errors import (
    ConfigCompositionException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf.errors import MissingMandatoryValue

COMPOSITION_ERRORS = (ConfigCompositionException, OverrideParseException)


def one_line(text) -> str:
    return "; ".join(line.strip().rstrip(".") for line in str(text).splitlines() if line.strip())


def override_parse_message(err: OverrideParseException) -> str:
    """Which override Hydra's grammar rejected and why, with how to pass such a value."""
    skip = ("Error parsing override", "See https://", "^")
    lines = [line.strip() for line in err.message.splitlines() if line.strip()]
    reason = "; ".join(line for line in lines if not line.startswith(skip))
    if reason.startswith("LexerNoViableAltException"):
        reason = "a character the override grammar does not accept"
    return (
        f"cannot parse the override {err.override!r}: {reason}; quote a value holding special "
        "characters (; $ ` ( ) [ ] { } , quotes) inside the shell's quotes: 'tags.table=\"a;b\"'"
    )


def composition_message(err: Exception) -> str:
    """A Hydra composition error as one line, with the valid options when Hydra knows them."""
    if isinstance(err, OverrideParseException):
        return override_parse_message(err)
    if isinstance(err, MissingConfigException) and err.options:
        first = str(err).strip().splitlines()[0]
        return f"{first}; available options: {', '.join(err.options)}"
    cause = f"; {str(err.__cause__).splitlines()[0]}" if err.__cause__ is not None else ""
    first = one_line(str(err).split("\nSee https://")[0])
    if "submitit" in first:
        # the launcher plugin ships in an optional extra
        return f"{first}{cause}; install it with: pip install 'srdistill[cluster]'"
    return f"{first}{cause}"


def missing_value_message(err: MissingMandatoryValue) -> str:
    """A ``???`` the launcher needed (multirun resolves its config before any job starts)."""
    key = getattr(err, "full_key", None) or one_line(err)
    hint = ""
    if str(key).startswith("hydra.launcher."):
        hint = f" (with cluster=slurm: cluster.{str(key).rsplit('.', 1)[-1]}=<value>)"
    return f"{key} is not set: give it on the command line{hint}"


def multirun(args: list[str]) -> bool:
    """The command line asks for a sweep (``-m``, ``--multirun``, ``hydra.mode=MULTIRUN``)."""
    return any(a in ("-m", "--multirun") or a.endswith("hydra.mode=MULTIRUN") for a in args)


def keyless_overrides(args: list[str]) -> list[str]:
    """Overrides without a key (``=1``, ``+=1``): what ``$KEY=1`` gives when KEY is unset."""
    return [a for a in args if a.lstrip("+~").startswith("=")]


def value_error_message(err: ValueError, args: list[str]) -> str:
    """A ValueError raised while Hydra composed the config, naming the override when it can
    (Hydra's own message, e.g. "Config group override must be a string or a list. Got int",
    names none)."""
    keyless = keyless_overrides(args)
    if keyless:
        return (
            f"override {keyless[0]!r} has no key (an unset shell variable, as in $KEY=1?): "
            "give it as key=value"
        )
    return f"Hydra could not start the run: {one_line(err)}"


def run_hydra_main(hydra_main: Callable[[], object]) -> None:
    """Run a ``@hydra.main`` function; a bad override or config name is one line and exit 2.

    Hydra itself prints such errors over several lines with exit 1. With ``HYDRA_FULL_ERROR``
    set it raises them instead, which lets us report them like every other user error (and
    errors of the job itself are already handled by ``exit_on_user_error``).
    """
    user_wants_traces = "HYDRA_FULL_ERROR" in os.environ
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        hydra_main()
    except COMPOSITION_ERRORS as err:
        if user_wants_traces:
            raise
        print(f"error: {composition_message(err)}", file=sys.stderr)
        sys.exit(2)
    except RuntimeError as err:
        # submitit's SLURM executor refuses a machine without srun before any job is submitted;
        # any other RuntimeError (a job's own, Lightning's) keeps its traceback
        if user_wants_traces or 'Could not detect "srun"' not in str(err):
            raise
        print(
            f"error: {one_line(err)}; cluster=slurm submits from a SLURM login node (sbatch and "
            "srun on the PATH)",
            file=sys.stderr,
        )
        sys.exit(2)
    except MissingMandatoryValue as err:
        if user_wants_traces:
            raise
        print(f"error: {missing_value_message(err)}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # Hydra could not create the run folder (job errors exit earlier)
        if user_wants_traces:
            raise
        option = "hydra.sweep.dir" if multirun(sys.argv[1:]) else "hydra.run.dir"
        print(f"error: cannot create the output folder: {err}; set {option}", file=sys.stderr)
        sys.exit(2)
    except ValueError as err:  # from Hydra's composition (a job's own errors exit earlier)
        if user_wants_traces:
            raise
        print(f"error: {value_error_message(err, sys.argv[1:])}", file=sys.stderr)
        sys.exit(2)


# the configs of an installed srdistill: the repository's conf/ shipped as this package
CONFIG_PACKAGE = "srdistill.conf"


def source_checkout_conf() -> Path | None:
    """The ``conf/`` of the source checkout this module runs from (``<root>/src/srdistill``
    beside ``<root>/conf``), or None for an installed copy."""
    package = Path(__file__).resolve().parents[1]
    conf = package.parents[1] / "conf"
    return conf if package.parent.name == "src" and (conf / "train.yaml").is_file() else None


def config_path() -> str:
    """Where an installed command composes its config from (Hydra's ``config_path``).

    A regular install reads the ``srdistill.conf`` package it ships. Code run from a source
    checkout (an editable install, ``PYTHONPATH=src``) reads that checkout's ``conf/``: an
    editable install's finder maps ``srdistill.conf`` to the same folder, but an editable install
    made before conf/ became a package, or a checkout put in front of another install through
    ``PYTHONPATH``, would not find it or would find another checkout's configs.
    """
    checkout_conf = source_checkout_conf()
    return str(checkout_conf) if checkout_conf is not None else f"pkg://{CONFIG_PACKAGE}"


def installed_command(config_name: str, job_module: str) -> None:
    """A root script as an installed console command, usable from any folder: the same
    ``conf/<config_name>``, ``key=value`` options and Hydra flags (``--config-dir``, ``-m``), the
    job's module imported only once the options compose."""
    import hydra

    def job(cfg):
        return importlib.import_module(job_module).main_from_cfg(cfg)

    # Hydra names the job after the task function's module: train, as for train.py (the run
    # folder's train.log), not app
    job.__module__ = job_module
    main = hydra.main(config_path=config_path(), config_name=config_name, version_base="1.3")
    run_hydra_main(main(job))


def train_main() -> None:
    """``srdistill-train``: ``train.py`` as an installed command."""
    installed_command("train", "srdistill.cli.train")


def eval_main() -> None:
    """``srdistill-eval``: ``eval.py`` as an installed command."""
    installed_command("eval", "srdistill.cli.eval")


def export_main() -> None:
    """``srdistill-export``: ``export.py`` as an installed command."""
    installed_command("export", "srdistill.cli.export")
