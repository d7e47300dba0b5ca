"""Run a pipeline suite with a chosen side (reference or candidate) per model.

One ``PipelineRunner`` per suite: it imports the entry once, opens each model's session once per
side (lazily, only the ones a run needs), and on every run hands the entry ``ModelProxy`` objects
whose calls go through an optional hook (record, replay, count). Models with random nodes run from
a seeded private copy, on a fresh session each run (see ``determinism``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from accuracy.backends import Session, get_backend
from accuracy.cache import cache_dir
from accuracy.config.pipeline import PipelineSpec
from accuracy.errors import BackendError, ConfigError, MissingDependencyError
from accuracy.pipelines.determinism import RandomNode, random_nodes, seeded_copy
from accuracy.pipelines.entry import check_outputs, load_entry
from accuracy.pipelines.proxy import CallHook, ModelProxy
from accuracy.pipelines.recording import Recording
from accuracy.userguard import guarded

REFERENCE, CANDIDATE = "reference", "candidate"
FP32_MODES = ("enforce_fp32", "force_fp32", "must_keep_origin_dtype")


class PipelineRunner:
    """Runs ``spec``'s pipeline; ``run({model: side}, hook=...)`` -> the entry's output dict."""

    def __init__(self, spec: PipelineSpec, *, private_dir: Path | None = None):
        self.spec = spec
        self.models = list(spec.models)
        self._private_dir = private_dir or cache_dir() / "private"
        self._sessions: dict[tuple[str, str], Session] = {}
        self._backends: dict[str, Any] = {}
        self._criteria_checked = False
        self.failed: dict[str, BackendError] = {}  # candidates that could not convert/build/run: on the reference
        self.random: dict[str, list[RandomNode]] = {
            name: nodes for name in self.models if (nodes := random_nodes(spec.models[name]))}
        self.check_backends()
        if spec.diffusers is not None:
            from accuracy.pipelines.diffusers_folder import diffusers_entry

            self.entry_name = str(spec.diffusers)
            self._entry = diffusers_entry(spec.diffusers)
        else:
            self.entry_name = spec.entry or "?"
            self._entry = load_entry(spec.entry, base=spec.folder, suite_path=spec.path)

    @property
    def candidate_models(self) -> list[str]:
        """Models that have a candidate: all of them, unless ``[candidate.models]`` lists some (DESIGN:
        a model not listed there has no candidate and stays on the reference)."""
        listed = self.spec.candidate.models
        return [m for m in self.models if (not listed or m in listed) and m not in self.failed]

    def candidate_failed(self, model: str, error: BackendError) -> None:
        """``model``'s candidate cannot be converted, built or run (a worker crash included): from now
        on it stays on the reference, and ``failed[model]`` keeps why."""
        self.failed[model] = error
        session = self._sessions.pop((model, CANDIDATE), None)
        if session is not None:
            session.close()

    # -- sessions -------------------------------------------------------------------------------
    def candidate_backend_name(self, model: str) -> str:
        """The candidate backend for ``model``: fp16 emulation steps aside where its converter config
        says ``precision_mode=enforce_fp32`` (the guide's fix), so the fix can be checked here."""
        config = self.spec.converter.get(model)
        name = self.spec.candidate.name
        if config and config.precision_mode in FP32_MODES and name == "onnxruntime-fp16":
            return "onnxruntime"
        return name

    def model_file(self, model: str, side: str) -> Path:
        path = self.spec.models[model] if side == REFERENCE else self.spec.candidate_file(model)
        if model in self.random and path.suffix.lower() == ".onnx":
            return seeded_copy(path, self._private_dir)
        return path

    def session(self, model: str, side: str) -> Session:
        if side == CANDIDATE and model not in self.candidate_models:
            side = REFERENCE
        key = (model, side)
        if key not in self._sessions:
            if side == REFERENCE:
                self._sessions[key] = self._load(REFERENCE, self.spec.reference.name, self.spec.reference.options,
                                                 self.model_file(model, REFERENCE))
            else:
                reference = self.session(model, REFERENCE)
                name = self.candidate_backend_name(model)
                table = CANDIDATE if name == self.spec.candidate.name else REFERENCE
                options = self.spec.candidate.options_for(model) if table == CANDIDATE else self.spec.reference.options
                session = self._load(table, name, options, self.model_file(model, CANDIDATE), reference=reference,
                                     converter=self.spec.converter.get(model))
                _check_output_count(model, reference, session)
                self._sessions[key] = session
        return self._sessions[key]

    def fresh_session(self, model: str, side: str) -> Session:
        """Drop and reopen a session (random graphs restart their seeded stream); one never run is
        fresh already and is kept."""
        if side == CANDIDATE and model not in self.candidate_models:
            side = REFERENCE
        old = self._sessions.get((model, side))
        if old is not None and old.runs == 0:
            return old
        self._sessions.pop((model, side), None)
        if old is not None:
            old.close()
        return self.session(model, side)

    def check_backends(self) -> None:
        """Every backend this pipeline will use is installed, checked before any model runs: a
        missing package is a ``MissingDependencyError`` naming the suite's key, not a failure after
        the reference runs."""
        for table, backend in ((REFERENCE, self.spec.reference), (CANDIDATE, self.spec.candidate)):
            try:
                self._backend(backend.name, backend.options).check_available()
            except MissingDependencyError as exc:
                exc.path, exc.where = str(self.spec.path), f"{table}.backend"
                raise

    def _backend(self, name: str, options: Mapping[str, Any]):
        key = f"{name}|{sorted(options.items())!r}"
        if key not in self._backends:
            self._backends[key] = get_backend(name, **dict(options))
        return self._backends[key]

    def _load(self, table: str, name: str, options: Mapping[str, Any], model_file: Path, *,
              reference: Session | None = None, converter: Any = None) -> Session:
        """``model_file`` on backend ``name``; a bad option is reported at the suite's ``[table]`` key.
        A backend that converts ONNX itself (``accepts_converter_config``) gets the model's converter config."""
        try:
            backend = self._backend(name, options)
            extra = {"converter": converter} if getattr(backend, "accepts_converter_config", False) else {}
            return backend.load(model_file, reference=reference, **extra)
        except (ConfigError, BackendError) as exc:
            if exc.path is not None:
                raise
            raise type(exc)(exc.message, path=self.spec.path, where=_suite_key(table, name, exc.where)) from None

    # -- runs -----------------------------------------------------------------------------------
    def run(self, sides: Mapping[str, str] | None = None, *, hook: CallHook | None = None,
            inputs: Mapping[str, Any] | None = None, fresh_random: bool = True) -> dict[str, np.ndarray]:
        """One pipeline run; ``sides[model]`` is ``"reference"`` (the default) or ``"candidate"``.

        Models with random nodes start the run on a fresh session (their seeded stream restarts)
        unless ``fresh_random=False``: then the hook owns that (see ``bisect.swaps.cached_run``)."""
        sides = dict(sides or {})
        proxies = {}
        for model in self.models:
            side = sides.get(model, REFERENCE)
            fresh = fresh_random and model in self.random
            session = self.fresh_session(model, side) if fresh else self.session(model, side)
            proxies[model] = ModelProxy(model, session, reference=self.session(model, REFERENCE), hook=hook)
        # the user's pipeline code: an exception, sys.exit or KeyboardInterrupt is a named error, not our end
        with guarded(f"the pipeline {self.entry_name!r}", path=self.spec.path):
            outputs = self._entry(proxies, dict(self.spec.inputs if inputs is None else inputs))
            checked = check_outputs(outputs, entry=self.entry_name, path=self.spec.path)
        if not self._criteria_checked:
            check_criteria(self.spec, checked)
            self._criteria_checked = True
        return checked

    def record(self, recording: Recording, sides: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
        """A run whose every model call is added to ``recording``."""
        return self.run(sides, hook=recording_hook(recording))

    def close(self) -> None:
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()


def check_criteria(spec: PipelineSpec, outputs: Mapping[str, np.ndarray]) -> None:
    """``[compare]`` must fit the pipeline's outputs: every name in ``outputs = [...]`` and every
    ``[compare.outputs.NAME]`` is an output, and each bound applies to its kind; else a ``ConfigError``
    at the suite's key."""
    from accuracy.compare.criteria import criteria_problems

    for name in spec.compare.outputs:
        if name not in outputs:
            raise ConfigError(f"the pipeline has no output {name!r} (it returns {', '.join(outputs)})",
                              path=spec.path, where="compare.outputs")
    for key, message in criteria_problems(spec.compare, outputs):
        raise ConfigError(message, path=spec.path, where=f"compare.{key}")


def recording_hook(recording: Recording) -> CallHook:
    def hook(name: str, index: int, feeds: dict[str, np.ndarray], run: Callable) -> list[np.ndarray]:
        outputs = run(feeds)
        recording.add(name, index, feeds, outputs)
        return outputs

    return hook


def _suite_key(table: str, backend: str, where: str | None) -> str:
    """``onnxruntime.intra_op_num_threads`` (a backend's own naming) as the suite's ``reference.intra_op_num_threads``."""
    if not where or where == backend:
        return table
    return f"{table}.{where.removeprefix(f'{backend}.')}"


def _check_output_count(model: str, reference: Session, candidate: Session) -> None:
    if candidate.outputs and len(candidate.outputs) != len(reference.outputs):
        raise BackendError(
            f"{model}: the candidate has {len(candidate.outputs)} outputs, the reference "
            f"{len(reference.outputs)} ({', '.join(reference.output_names)})", path=candidate.model_path)
