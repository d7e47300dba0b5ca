"""The ``accuracy`` command line: one module per subcommand (``configure(parser)``, ``run(args)``).

Only the CLI (and the pytest plugin) know about argv, files and exit codes. Every command takes
``--json PATH``; stdout is for people. Exit codes: 0 pass, 1 accuracy failure, 2 bad input or
usage. A subcommand whose module fails to import becomes a "missing tool" that explains itself,
so one broken optional dependency never takes the whole CLI down. Each command's ``--help`` opens
with ``COMMANDS``' summary (what it is for, in a user's words) and an example.
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

# What ``accuracy --help`` says first: what the tool is for, for the person who just installed it.
ABOUT = """\
Prove that inference moved from GPUs to another runtime (Ascend NPUs with MindSpore Lite, fp16
converters, vLLM) still gives the same answers -- and, when it does not, find the model and the
operator where it drifted.

start here:
  accuracy demo                                         the whole story on a bundled tiny pipeline
  accuracy check --baseline gpu.csv --candidate npu.csv OpenCompass scores, the 1 % rule
  accuracy gate suites/                                 every suite against its baselines (CI)
  accuracy bisect my-pipeline.toml --localize --suggest-fp32   which model, which operator, what fix
"""

EPILOG = "exit codes: 0 pass, 1 accuracy failure, 2 bad input or usage. Every command takes --json PATH."


# name -> (module, what it is for, an example). Each module defines ``configure(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "check": ("accuracy.cli.check",
              "compare OpenCompass scores of the new runtime with the GPU baseline (|gpu - npu| / gpu <= 1 %)",
              ("accuracy check --baseline gpu/summary.csv --candidate npu_outputs/ "
               "--suite suites/guide-scores/suite.toml")),
    "baseline": ("accuracy.cli.baseline",
                 "store a result (scores or a pipeline suite's golden images) as the baseline to compare against",
                 "accuracy baseline record suites/tiny-sd-img2img/suite.toml --force"),
    "gate": ("accuracy.cli.gate",
             "judge every suite against its stored baselines; the exit code gates a release",
             "accuracy gate suites/ --junit junit.xml --report report.html"),
    "diff": ("accuracy.cli.diff",
             "compare two images or arrays (SSIM, PSNR, max error) and draw where they differ",
             "accuracy diff fantasy_landscape.png fantasy_landscape_npu.png --diff-image diff.png"),
    "bisect": ("accuracy.cli.bisect",
               "find which model of a pipeline moves the output, by swapping one model at a time to the new runtime",
               "accuracy bisect my-pipeline.toml --localize --suggest-fp32 --report bisect.html"),
    "convert": ("accuracy.cli.convert",
                ("convert ONNX models (a diffusers folder, a suite's models) to MINDIR with the real MindSpore Lite "
                 "converter and the guide's per-model .ini configs"),
                "accuracy convert onnx_models/ --config-dir configs/ --out mindir_models/"),
    "localize": ("accuracy.cli.localize",
                 "find the operator inside one model where the error enters, and what to keep in fp32",
                 "accuracy localize text_encoder/model.onnx --candidate onnxruntime-fp16 --inputs feeds.npz"),
    "humaneval": ("accuracy.cli.humaneval",
                  "score a model's HumanEval answers (pass@k), running its code only in a sandbox",
                  "accuracy humaneval --samples samples.jsonl --k 1,10"),
    "run": ("accuracy.cli.run",
            "evaluate a served LLM (vLLM / OpenAI API) with OpenCompass and judge its scores against the baseline",
            "accuracy run suites/llm-tiny/llm-tiny.toml"),
    "demo": ("accuracy.cli.demo",
             "see the whole story on a bundled tiny Stable Diffusion pipeline: which model, which operator, the fix",
             "accuracy demo --report demo.html"),
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


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (every one when ``command`` is None).

    Importing one subcommand's module is what start-up costs (onnxruntime, the converter, ...):
    ``accuracy --help`` and ``accuracy check`` should not pay for ``bisect``'s imports.
    """
    raw = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="accuracy", description=ABOUT, epilog=EPILOG, formatter_class=raw)
    parser.add_argument("--version", action="version", version=f"accuracy {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, help_text, example) in COMMANDS.items():
        description = f"{help_text[0].upper()}{help_text[1:]}.\n\nexample:\n  {example}"
        sub = subparsers.add_parser(name, help=help_text.replace("%", "%%"), description=description, epilog=EPILOG,
                                    formatter_class=raw)
        sub.add_argument("--json", metavar="PATH", dest="json_path", help="write the machine-readable result here")
        if command is not None and name != command:
            continue
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
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_in(argv))
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


def _command_in(argv: Sequence[str]) -> str:
    """The subcommand named on the command line ('' when none is: help or a usage error follows)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else ""
    return ""


def entry() -> None:
    from accuracy import userguard

    userguard.hold_exits()  # once user code ran, os._exit stays refused until the verdict's exit
    code = main()
    userguard.exit_process(code)  # user code's threads, atexit or __del__ cannot change the exit code
