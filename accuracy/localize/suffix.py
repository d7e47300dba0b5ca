"""Keep-list trials run from the first kept node on.

A repair search tries many keep-lists on one model, each a whole fp16-emulated inference per recorded
call. Yet the nodes before the first kept one compute exactly what they compute with nothing kept:
they are not kept, the graph inputs they read are rounded as before, and a weight they read is
rounded as before (fp16 stores it once for every reader that is not kept). So that prefix runs once
per cut, with nothing kept, and its tensors at the cut are reused: each trial runs only the rest of
the model, emulated with its keep-list, fed those tensors (already rounded, as fp16 hands them on)
and the raw graph inputs (rounded there for readers not kept). A list naming a node inside a
subgraph, or a model with random nodes, runs whole (``outputs`` returns ``None``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from accuracy.localize.graph import ModelGraph
from accuracy.localize.sides import OnnxSide

_CUTS_KEPT = 4  # prefixes remembered: a search's lists start at a few nodes at most


class SuffixTrials:
    """``outputs(keep)``: the emulated model's outputs for each call, run from the first node of ``keep``."""

    def __init__(self, model_file: str | Path, calls: Sequence[Mapping[str, np.ndarray]], *,
                 graph: ModelGraph | None = None):
        """``graph``: the model as localize read it for fp16 already (else read here)."""
        self.graph = graph or ModelGraph(model_file, feeds=calls[0] if calls else None, fp16=True)
        self.calls = [dict(c) for c in calls]
        self.position = {node.name: node.index for node in self.graph.nodes}
        self._prefixes: OrderedDict[int, list[dict[str, np.ndarray]]] = OrderedDict()
        self.runs = 0  # model runs (prefixes and suffixes), for the search's counts

    def outputs(self, keep: Sequence[str]) -> list[list[np.ndarray]] | None:
        if not keep or not self.calls or any(name not in self.position for name in keep):
            return None
        cut = min(self.position[name] for name in keep)
        # a prefix already run up to an earlier cut serves too: the nodes from there to this one are not kept
        cut = max((c for c in self._prefixes if c <= cut), default=cut)
        if cut == 0:
            return None  # nothing to reuse: the whole model runs as it would
        graph = self.graph
        prefix, suffix = graph.nodes[:cut], graph.nodes[cut:]
        produced = {t for node in prefix for t in node.outputs if t}
        if any(not graph.is_tensor(t) for node in suffix for t in node.inputs if t in produced):
            return None  # a sequence or optional crosses the cut: a segment cannot take it
        side = OnnxSide(fp16=True, keep_fp32=keep)
        shared = graph.stored_rounded(keep)
        results = []
        for call, boundary in zip(self.calls, self._prefix(cut, prefix, suffix)):
            if all(o in boundary for o in graph.output_names):  # the kept nodes give no output: nothing to run
                results.append([boundary[o] for o in graph.output_names])
                continue
            inputs = {**{n: call[n] for n in graph.input_names}, **boundary}
            needed = {t for node in suffix for t in node.inputs} | set(graph.output_names)
            feeds = {t: v for t, v in inputs.items() if t in needed}
            part = graph.submodel(suffix, feeds, [o for o in graph.output_names if o not in boundary])
            self.runs += 1
            out = side.run(part, feeds, [o for o in graph.output_names if o not in boundary],
                           graph_inputs=[n for n in graph.input_names if n in feeds], source=graph.data_source,
                           float_tensors=graph.float32_tensors, in_range=graph.in_range, shared=shared)
            results.append([boundary[o] if o in boundary else out[o] for o in graph.output_names])
        return results

    def _prefix(self, cut: int, prefix, suffix) -> list[dict[str, np.ndarray]]:
        """Each call's tensors at the cut (and outputs given before it), with nothing kept: run once per cut."""
        if cut in self._prefixes:
            self._prefixes.move_to_end(cut)
            return self._prefixes[cut]
        graph = self.graph
        produced = {t for node in prefix for t in node.outputs if t}
        crossing = sorted({t for node in suffix for t in node.inputs if t in produced}
                          | {o for o in graph.output_names if o in produced})
        side = OnnxSide(fp16=True)
        shared = graph.stored_rounded()
        values = []
        for call in self.calls:
            feeds = {n: call[n] for n in graph.input_names}
            part = graph.submodel(prefix, feeds, crossing)
            self.runs += 1
            values.append(side.run(part, feeds, crossing, graph_inputs=list(feeds), source=graph.data_source,
                                   float_tensors=graph.float32_tensors, in_range=graph.in_range, shared=shared))
        self._prefixes[cut] = values
        while len(self._prefixes) > _CUTS_KEPT:
            self._prefixes.popitem(last=False)
        return values
