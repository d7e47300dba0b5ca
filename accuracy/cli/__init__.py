"""The ``accuracy`` command: a registry of subcommands, each in its own module.

Only the CLI (and the pytest plugin) know about argv, files and exit codes. Every command
takes ``--json PATH``; stdout is for people. Exit codes: 0 pass, 1 accuracy failure,
2 bad input or usage. A subcommand whose module fails to import becomes a "missing tool"
that explains itself, so one broken optional dependency never takes the whole CLI down.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from accuracy import __version__
from accuracy.errors import AccuracyError

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2

# name -> (module, one-line help). Each module defines ``configure(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("accuracy.cli.check", "compare scores (OpenCompass CSV / work dir / JSON) with a baseline"),
    "baseline": ("accuracy.cli.baseline", "record baselines and golden outputs"),
    "gate": ("accuracy.cli.gate", "run suites against their baselines; the exit code gates a release"),
    "diff": ("accuracy.cli.diff", "compare two images or arrays (SSIM, PSNR, max error, diff picture)"),
    "bisect": ("accuracy.cli.bisect", "find the model in a pipeline where error enters"),
    "convert": ("accuracy.cli.convert", "convert ONNX models to MINDIR with the real MindSpore Lite converter"),
    "localize": ("accuracy.cli.localize", "find the operator inside a model where error enters"),
    "humaneval": ("accuracy.cli.humaneval", "score HumanEval samples in a sandbox (pass@k)"),
    "run": ("accuracy.cli.run", "run an LLM suite with OpenCompass against a served model"),
    "demo": ("accuracy.cli.demo", "the whole story on a bundled tiny Stable Diffusion pipeline"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors are exit 2, one line, like every other bad input
        self.print_usage(sys.stderr)
        print(f"accuracy: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _missing_tool(name: str, exc: BaseException) -> Callable[[argparse.Namespace], int]:
    def run(_: argparse.Namespace) -> int:
        print(f"accuracy {name}: unavailable here ({type(exc).__name__}: {exc})", file=sys.stderr)
        return EXIT_USAGE

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="accuracy", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"accuracy {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--json", metavar="PATH", dest="json_path", help="write the machine-readable result here")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(module_name):
                continue  # not written yet: the command does not exist
            sub.set_defaults(func=_missing_tool(name, exc))
            continue
        except ImportError as exc:
            sub.set_defaults(func=_missing_tool(name, exc))
            continue
        module.configure(sub)
        sub.set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except AccuracyError as exc:
        print(f"accuracy {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"accuracy {args.command}: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    raise SystemExit(main())
