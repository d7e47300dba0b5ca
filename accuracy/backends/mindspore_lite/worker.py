"""The MindSpore Lite worker: run under the interpreter that has ``mindspore_lite`` (the official wheel
is cp37-only), started by the harness as ``python worker.py``, answering one request at a time.

Standard library and numpy only, written for Python 3.7: this file is also the protocol's one
definition (the harness imports ``read_message`` / ``write_message`` from it).

Protocol (version ``PROTOCOL``), the same frames both ways over the worker's stdin/stdout::

    u32 big-endian header length | header (UTF-8 JSON) | blob 1 | blob 2 | ...

``header["blobs"]`` lists the blobs' byte sizes; each blob is one array as ``.npy`` bytes (read with
``allow_pickle=False``: never pickle). The worker speaks first (``hello``: protocol, Python and
``mindspore_lite`` versions, or why the import failed), then answers each request
(``build``, ``run``, ``close``, ``convert``, ``exit``) with ``{"ok": true, ...}`` or
``{"ok": false, "error": ..., "log": [the library's own error lines]}``. Timeouts and crashes are
the harness's business: a worker that dies simply stops answering.
"""


import io
import json
import os
import struct
import sys
import tempfile
import traceback

import numpy as np

PROTOCOL = 1
_HEADER = struct.Struct(">I")
MAX_HEADER = 16 << 20  # a header is a small JSON object: specs, an error and its log lines
MAX_BLOBS = 4096
MAX_BLOB = 1 << 40
_TEST_HOOKS = "ACCURACY_WORKER_TEST_HOOKS"  # "1": the crash/sleep requests the harness's tests use


# -- framing (shared with the harness) -------------------------------------------------------------
def write_message(stream, header, arrays=()):
    """Write one frame: ``header`` (a JSON-able dict) and ``arrays`` as ``.npy`` blobs."""
    blobs = []
    for array in arrays:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        blobs.append(buffer.getvalue())
    header = dict(header, blobs=[len(blob) for blob in blobs])
    data = json.dumps(header).encode("utf-8")
    stream.write(_HEADER.pack(len(data)) + data + b"".join(blobs))
    stream.flush()


class ProtocolError(ValueError):
    """A frame that breaks the protocol (garbage on the stream, a header that is not a JSON object,
    a blob that is not ``.npy`` of a plain dtype): refused before anything is read past it."""


def read_message(read_exact):
    """Read one frame with ``read_exact(n) -> bytes`` (``b""`` at end of stream: returns ``None``).
    Raises ``ProtocolError`` for a malformed frame, checked before its parts are read (a garbage
    length prefix is not waited for)."""
    prefix = read_exact(_HEADER.size)
    if not prefix:
        return None
    length = _HEADER.unpack(prefix)[0]
    if length > MAX_HEADER:
        raise ProtocolError("a header of " + str(length) + " bytes (at most " + str(MAX_HEADER)
                            + "; the stream starts with " + repr(prefix) + ": not a frame)")
    try:
        header = json.loads(read_exact(length).decode("utf-8"))
    except ValueError as exc:  # bad UTF-8 or JSON
        raise ProtocolError("a header that is not JSON: " + str(exc)) from None
    if not isinstance(header, dict):
        raise ProtocolError("a header that is not a JSON object: " + type(header).__name__)
    sizes = header.pop("blobs", [])
    if not isinstance(sizes, list) or len(sizes) > MAX_BLOBS or not all(
            type(size) is int and 0 <= size <= MAX_BLOB for size in sizes):
        raise ProtocolError("a blob list that is not up to " + str(MAX_BLOBS) + " sizes in bytes: "
                            + repr(sizes)[:80])
    arrays = []
    for size in sizes:
        data = read_exact(size)
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - truncated, not .npy, object dtype (pickle refused)
            raise ProtocolError("a blob that is not .npy of a plain dtype: " + str(exc)) from None
        if not isinstance(array, np.ndarray) or array.dtype.hasobject:
            raise ProtocolError("a blob that is not .npy of a plain dtype")
        arrays.append(array)
    return header, arrays


def _exact_reader(stream):
    def read_exact(count):
        chunks, left = [], count
        while left:
            chunk = stream.read(left)
            if not chunk:
                if left == count:
                    return b""
                raise EOFError("stream ended inside a message")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    return read_exact


# -- the library's own log lines -------------------------------------------------------------------
class _CapturedStderr:
    """Collect what the C++ library writes to fd 2 during a call (its [ERROR] lines say why a
    conversion or build failed; the Python exception only says 'Common error code'). The text is
    echoed to the real stderr afterwards, so the harness's stderr tail keeps it too."""

    def __enter__(self):
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        os.dup2(self._file.fileno(), 1)  # fd 1 is not the protocol stream (see main): the converter prints there
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.dup2(self._saved, 1)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()
        sys.stderr.write(self.text)
        sys.stderr.flush()
        return False

    def error_lines(self, limit=20):
        lines = [line.strip() for line in self.text.splitlines() if "ERROR" in line or "error" in line]
        return lines[-limit:]


# -- requests --------------------------------------------------------------------------------------
def _spec(tensor, np_name):
    return {"name": tensor.name, "shape": [int(d) for d in tensor.shape], "dtype": np_name(tensor.dtype)}


def _config_file(path, sections):
    """``path`` as it is, or (when ``sections`` add keys, e.g. Ascend's precision_mode) a copy with
    them appended: ``build_from_file`` takes config files only."""
    if not sections:
        return path
    text = ""
    if path:
        with open(path) as stream:
            text = stream.read() + "\n"
    for section, values in sections.items():
        text += "[" + section + "]\n" + "".join(key + "=" + value + "\n" for key, value in values.items())
    handle, merged = tempfile.mkstemp(suffix=".ini", prefix="accuracy-mslite-")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    return merged


class Handlers:
    """The requests, over a ``mindspore_lite`` module (the real one, or a test's stand-in)."""

    def __init__(self, mslite):
        self.mslite = mslite
        self.models = {}
        self._next = 1

    def _np_name(self, data_type):
        name = str(getattr(data_type, "name", data_type)).rsplit(".", 1)[-1].lower()
        try:
            return np.dtype(name).name
        except TypeError:
            return "float32"

    def _context(self, request):
        context = self.mslite.Context()
        target = request.get("target", "cpu")
        context.target = [target]
        device = getattr(context, target)
        if target != "cpu":
            device.device_id = int(request.get("device_id", 0))
        elif request.get("thread_num"):
            device.thread_num = int(request["thread_num"])
        precision = request.get("precision_mode") or ""
        config = {}
        if precision and target == "ascend":
            config["ascend_context"] = {"precision_mode": precision}
        elif precision:
            device.precision_mode = precision
        return context, config

    def build(self, request, arrays):
        try:
            context, config = self._context(request)
        except (ValueError, TypeError, AttributeError) as exc:  # the library refuses an option's value
            return {"ok": False, "error": str(exc), "bad_option": True}, []
        model = self.mslite.Model()
        user_config = request.get("config_path") or ""
        config_path = _config_file(user_config, config)
        with _CapturedStderr() as captured:
            try:
                model.build_from_file(request["path"], self.mslite.ModelType.MINDIR, context, config_path)
                error = None
            except Exception as exc:  # noqa: BLE001 - the library raises RuntimeError with a code
                error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            finally:
                if config_path != user_config:  # our merged copy: read by the build, then not needed
                    os.unlink(config_path)
        if error is not None:
            return {"ok": False, "error": error, "log": captured.error_lines()}, []
        handle = self._next
        self._next += 1
        self.models[handle] = model
        outputs = model.get_outputs() if hasattr(model, "get_outputs") else []  # 2.0.0 has none before predict
        return {"ok": True, "model": handle,
                "inputs": [_spec(t, self._np_name) for t in model.get_inputs()],
                "outputs": [_spec(t, self._np_name) for t in outputs]}, []

    def run(self, request, arrays):
        model = self.models[request["model"]]
        with _CapturedStderr() as captured:
            try:
                tensors = model.get_inputs()
                shapes = [list(array.shape) for array in arrays]
                if shapes != [list(t.shape) for t in tensors]:
                    model.resize(tensors, shapes)
                    tensors = model.get_inputs()
                for tensor, array in zip(tensors, arrays):
                    tensor.set_data_from_numpy(np.ascontiguousarray(array))
                outputs = [out.get_data_to_numpy() for out in model.predict(tensors)]
                error = None
            except Exception as exc:  # noqa: BLE001
                error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if error is not None:
            return {"ok": False, "error": error, "log": captured.error_lines()}, []
        return {"ok": True}, outputs

    def close(self, request, arrays):
        self.models.pop(request["model"], None)
        return {"ok": True}, []

    def convert(self, request, arrays):
        converter = self.mslite.Converter()
        if request.get("input_shape"):
            converter.input_shape = {k: list(v) for k, v in request["input_shape"].items()}
        if request.get("optimize"):
            converter.optimize = request["optimize"]
        converter.weight_fp16 = bool(request.get("weight_fp16", False))
        output = request["output_file"]
        with _CapturedStderr() as captured:
            try:
                converter.convert(fmk_type=getattr(self.mslite.FmkType, request.get("fmk", "ONNX")),
                                  model_file=request["model_file"], output_file=output,
                                  config_file=request.get("config_file") or "")
                error = None
            except Exception as exc:  # noqa: BLE001
                error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if error is None and not os.path.exists(output + ".mindir"):
            error = "the converter wrote no " + output + ".mindir"
        if error is not None:
            return {"ok": False, "error": error, "log": captured.error_lines()}, []
        return {"ok": True, "output": output + ".mindir", "log": captured.error_lines()}, []

    # test hooks: only with ACCURACY_WORKER_TEST_HOOKS=1 in the worker's environment
    def signal(self, request, arrays):
        import signal
        sys.stderr.write("test hook: raising " + request["signal"] + "\n")
        sys.stderr.flush()
        os.kill(os.getpid(), getattr(signal, request["signal"]))
        return {"ok": True}, []

    def sleep(self, request, arrays):
        import time
        time.sleep(float(request["seconds"]))
        return {"ok": True}, []


def _hello():
    hello = {"op": "hello", "protocol": PROTOCOL, "python": ".".join(map(str, sys.version_info[:3])),
             "numpy": np.__version__, "mindspore_lite": None}
    try:
        import mindspore_lite
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken native library
        hello["import_error"] = f"{type(exc).__name__}: {exc}"
        return hello, None
    hello["mindspore_lite"] = getattr(mindspore_lite, "__version__", "?")
    return hello, mindspore_lite


def serve(stdin, stdout, mslite, hello):
    write_message(stdout, hello)
    handlers = Handlers(mslite) if mslite is not None else None
    hooks = os.environ.get(_TEST_HOOKS) == "1"
    read_exact = _exact_reader(stdin)
    while True:
        message = read_message(read_exact)
        if message is None:
            return
        request, arrays = message
        op = request.get("op")
        if op == "exit":
            write_message(stdout, {"ok": True})
            return
        allowed = ("build", "run", "close", "convert") + (("signal", "sleep") if hooks else ())
        if op not in allowed:
            write_message(stdout, {"ok": False, "error": f"unknown request {op!r}"})
            continue
        if handlers is None and op in ("build", "run", "close", "convert"):
            write_message(stdout, {"ok": False, "error": "mindspore_lite cannot be imported here: "
                                   + hello.get("import_error", "?")})
            continue
        try:
            reply, outputs = getattr(handlers or Handlers(None), op)(request, arrays)
        except Exception as exc:  # noqa: BLE001 - any library failure is an answer, not the end
            lines = traceback.format_exc().strip().splitlines()
            reply, outputs = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "log": lines[-6:]}, []
        write_message(stdout, reply, outputs)


def main():
    os.environ.setdefault("GLOG_v", "3")  # the library's own logging: errors only (set before import)
    # nothing but frames on the protocol stream: it moves to a private descriptor, and fd 1 (where
    # the native library prints, e.g. "CONVERT RESULT SUCCESS:0") becomes a copy of stderr
    sys.stdout.flush()
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer
    hello, mslite = _hello()
    serve(stdin, stdout, mslite, hello)


if __name__ == "__main__":
    main()
