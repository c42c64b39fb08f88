"""Model summary: per-layer output shapes, parameters, FLOPs (PyTorch's own counter) and memory.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per multiply-accumulate; it
counts convolutions, matrix products and attention, not element-wise work such as BN, ReLU, pooling
or additions) and are attributed to the module that ran them. Activation memory is the sum of the
output sizes of the layers, counting each new tensor once: layers that return their input or a view
of it (in-place ReLU, Flatten, Dropout in eval mode, Identity) add nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError, first_line
from cnnlab.models.counting import count_params

BYTES = {"fp32": 4, "fp16": 2}
COLUMNS = (("layer", "left"), ("type", "left"), ("output shape", "left"), ("trainable", "right"),
           ("non-trainable", "right"), ("MACs", "right"))


@dataclass
class LayerRow:
    """One layer of the summary; shapes exclude the batch dimension, numbers are per sample."""

    name: str
    type: str
    depth: int
    output_shape: list[int] | None
    params_trainable: int
    params_non_trainable: int
    flops: int
    activations: int          # new output elements this layer (and, when collapsed, its children) makes

    @property
    def params(self) -> int:
        return self.params_trainable + self.params_non_trainable

    @property
    def macs(self) -> int:
        return self.flops // 2


@dataclass
class SummaryResult:
    """What ``summary`` measured; render with ``to_rich_table``, ``to_markdown`` or ``to_dict``."""

    model_name: str
    input_size: tuple[int, ...]
    batch: int
    rows: list[LayerRow]
    trainable: int
    non_trainable: int
    flops: int                        # per sample
    activations: int                  # output elements per sample, summed over layers
    output_shape: list[int] | None
    notes: list[str] = field(default_factory=list)

    @property
    def total_params(self) -> int:
        return self.trainable + self.non_trainable

    @property
    def macs(self) -> int:
        return self.flops // 2

    @property
    def input_elements(self) -> int:
        return math.prod(self.input_size)

    def memory(self) -> dict[str, dict[str, int]]:
        """Bytes at fp32 and fp16: parameters, input and activations per sample and per batch, and
        the forward total for a batch (parameters + batch input + batch activations)."""
        out = {}
        for dtype, nbytes in BYTES.items():
            params = self.total_params * nbytes
            act = self.activations * nbytes
            inp = self.input_elements * nbytes
            out[dtype] = {
                "params": params,
                "input_sample": inp,
                "activations_sample": act,
                "input_batch": inp * self.batch,
                "activations_batch": act * self.batch,
                "forward_total_batch": params + (inp + act) * self.batch,
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready)."""
        return {
            "model": self.model_name,
            "input_size": list(self.input_size),
            "batch": self.batch,
            "output_shape": self.output_shape,
            "params": {"trainable": self.trainable, "non_trainable": self.non_trainable,
                       "total": self.total_params},
            "flops_per_sample": self.flops,
            "macs_per_sample": self.macs,
            "flops_batch": self.flops * self.batch,
            "activations_per_sample": self.activations,
            "memory_bytes": self.memory(),
            "layers": [{**asdict(r), "macs": r.macs} for r in self.rows],
            "notes": self.notes,
        }

    def save_json(self, path: str | Path) -> Path:
        """Write ``to_dict()`` as JSON, atomically."""
        from cnnlab.io import write_json

        return write_json(path, self.to_dict())

    def _row_cells(self, r: LayerRow) -> list[str]:
        shape = "-" if r.output_shape is None else str([self.batch, *r.output_shape])
        return [r.name, r.type, shape, f"{r.params_trainable:,}", f"{r.params_non_trainable:,}",
                _short(r.macs)]

    def totals_lines(self) -> list[str]:
        """Totals and memory as short lines of text."""
        mem = self.memory()
        lines = [
            f"params: {self.total_params:,} total = {self.trainable:,} trainable + "
            f"{self.non_trainable:,} non-trainable",
            f"compute per sample: {_short(self.macs)}MACs = {_short(self.flops)}FLOPs; "
            f"batch {self.batch}: {_short(self.flops * self.batch)}FLOPs",
            f"activations: {self.activations:,} values per sample",
        ]
        for dtype in BYTES:
            m = mem[dtype]
            lines.append(
                f"memory {dtype}: params {_bytes(m['params'])}, activations {_bytes(m['activations_sample'])}"
                f" per sample / {_bytes(m['activations_batch'])} per batch of {self.batch}, forward total "
                f"(params + batch input + activations) {_bytes(m['forward_total_batch'])}"
            )
        return lines + self.notes

    def to_rich_table(self) -> Any:
        """A ``rich.table.Table`` of the layers (totals in the caption)."""
        from rich.table import Table

        title = f"{self.model_name}  input {list(self.input_size)}  batch {self.batch}"
        table = Table(title=title, caption="\n".join(self.totals_lines()), caption_justify="left")
        for col, just in COLUMNS:
            table.add_column(col, justify=just, overflow="fold")
        for r in self.rows:
            table.add_row(*self._row_cells(r))
        table.add_section()
        table.add_row("total", "", str([self.batch, *(self.output_shape or [])]), f"{self.trainable:,}",
                      f"{self.non_trainable:,}", _short(self.macs))
        return table

    def to_markdown(self) -> str:
        """The table and totals as Markdown."""
        lines = [f"**{self.model_name}**, input {list(self.input_size)}, batch {self.batch}", "",
                 "| " + " | ".join(c for c, _ in COLUMNS) + " |",
                 "|" + "|".join("---:" if j == "right" else "---" for _, j in COLUMNS) + "|"]
        for r in self.rows:
            cells = self._row_cells(r)
            cells[0] = f"`{cells[0]}`"
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += [f"- {line}" for line in self.totals_lines()]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        return (f"SummaryResult({self.model_name}, input {list(self.input_size)}, {self.total_params:,} params, "
                f"{_short(self.macs)}MACs per sample, {len(self.rows)} layers)")

    def __rich__(self) -> Any:
        """``rich`` renders the layer table (a terminal, or ``rich.print(summary)``)."""
        return self.to_rich_table()

    def _repr_html_(self) -> str:
        """A notebook shows the layer table and the totals (the summary as a cell's last line)."""
        from cnnlab.notebook import html_table

        rows = [[*self._row_cells(r)[:3], r.params_trainable, r.params_non_trainable, _short(r.macs)]
                for r in self.rows]
        rows.append(["total", "", str([self.batch, *(self.output_shape or [])]), self.trainable,
                     self.non_trainable, _short(self.macs)])
        return html_table(rows, [c for c, _ in COLUMNS], notes=self.totals_lines(),
                          title=f"{self.model_name}  input {list(self.input_size)}  batch {self.batch}")


def summary(model: Any, input_size: tuple[int, ...] | str | None = None, batch: int = 1,
            num_classes: int = 10, max_depth: int | None = None, device: str = "cpu") -> SummaryResult:
    """Summarise ``model`` (an ``nn.Module``, a model name, a run folder or a checkpoint).

    ``input_size`` is (C, H, W) or a string like ``"3x32x32"``; None takes the run's preprocessing,
    the model's registered default input, or (3, 32, 32). One sample is run through the model in eval
    mode; per-batch figures scale by ``batch``. ``max_depth`` collapses deeper layers into their parent.
    """
    import torch

    from cnnlab.inspect.source import eval_mode, load_source
    from cnnlab.inspect.source import input_size as source_input_size

    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UserError(f"batch must be a positive integer, got {batch!r}")
    size = parse_input_size(input_size) if input_size is not None else None
    src = load_source(model, num_classes=num_classes, in_chans=size[0] if size else None,
                      img_size=size[-1] if size and len(size) == 3 and size[1] == size[2] else None)
    if size is None:
        size = source_input_size(src)
    net = src.model
    with eval_mode(net):
        records, out_shape, flops_total = _trace(net, size, torch.device(device))
    trainable, non_trainable = count_params(net)
    rows = _rows(records, max_depth)
    activations = sum(r["self_act"] for r in records.values())
    unused = trainable + non_trainable - sum(r.params for r in rows)
    notes = [f"{unused:,} parameters belong to modules the forward pass did not use"] if unused else []
    return SummaryResult(src.name, tuple(size), batch, rows, trainable, non_trainable, flops_total,
                         activations, out_shape, notes)


def parse_input_size(value: tuple[int, ...] | list[int] | str, exact: bool = False) -> tuple[int, ...]:
    """(C, H, W) from a tuple or a string ``3x32x32`` / ``1x28x28`` / ``32`` (3x32x32) / ``3x224``;
    ``exact``: only the full ``CxHxW``."""
    if isinstance(value, str):
        parts = value.lower().replace("×", "x").replace(",", "x").split("x")
        try:
            nums = [int(p) for p in parts if p.strip()]
        except ValueError:
            raise UserError(f"invalid input size {value!r}: expected CxHxW, e.g. 3x32x32") from None
        if len(nums) == 1 and not exact:
            nums = [3, nums[0], nums[0]]
        elif len(nums) == 2 and not exact:
            nums = [nums[0], nums[1], nums[1]]
    else:
        nums = [int(v) for v in value]
    if exact and len(nums) != 3:
        raise UserError(f"invalid input size {value!r}: expected CxHxW, e.g. 3x224x224")
    if not nums or any(n < 1 for n in nums):
        raise UserError(f"invalid input size {value!r}: sizes must be positive")
    return tuple(nums)


def _trace(net: Any, size: tuple[int, ...], device: Any) -> tuple[dict, list[int] | None, int]:
    """Run one sample through ``net`` with forward hooks on every module and the FLOP counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cnnlab.inspect.source import forward_hooks, tensors

    modules = dict(net.named_modules())
    records: dict[str, dict[str, Any]] = {}
    keep: list[Any] = []  # outputs stay alive so no two tensors share an address during the pass

    def make_hook(name: str):
        def hook(module, inputs, output):
            outs = tensors(output)
            keep.extend(outs)
            rec = records.setdefault(name, {"calls": 0, "outs": [], "ins": set()})
            rec["calls"] += 1
            rec["shape"] = list(outs[0].shape[1:]) if outs else None
            rec["outs"].extend((t.data_ptr(), t[0].numel() if t.dim() else 1) for t in outs)
            rec["ins"].update(t.data_ptr() for t in tensors(inputs))

        return hook

    x = torch.zeros(1, *size, device=device)
    counter = FlopCounterMode(display=False)
    try:
        with forward_hooks((m, make_hook(n)) for n, m in modules.items()), torch.no_grad(), counter:
            out = net(x)
    except RuntimeError as e:
        raise UserError(f"the model does not accept input {list(size)}: {first_line(e)}") from None
    root_type = type(net).__name__
    flops_by_name = {}
    for key, ops in counter.get_flop_counts().items():
        if key == "Global":
            continue
        fqn = "" if key == root_type else key[len(root_type) + 1:] if key.startswith(root_type + ".") else None
        if fqn is not None:
            flops_by_name[fqn] = sum(ops.values())
    # activations: children first (hooks fire on exit), so walk deepest names first
    counted: dict[str, set[int]] = {}
    for name in sorted(records, key=lambda n: -(n.count(".") + 1 if n else 0)):
        rec = records[name]
        below = set()
        for other, ptrs in counted.items():
            if name == "" or other.startswith(name + "."):
                below |= ptrs
        mine, total = set(), 0
        for ptr, n in rec["outs"]:
            if ptr in rec["ins"] or ptr in below or ptr in mine:
                continue
            mine.add(ptr)
            total += n
        counted[name] = mine
        rec["self_act"] = total
    for name, rec in records.items():
        module = modules[name]
        children = [f"{name}.{c}" if name else c for c, _ in module.named_children()]
        total_flops = flops_by_name.get(name, 0)
        rec["flops"] = total_flops
        rec["self_flops"] = total_flops - sum(flops_by_name.get(c, 0) for c in children)
        rec["type"] = type(module).__name__
        rec["leaf"] = not children
        rec["params"] = count_params(module, recurse=False)
    out_tensors = tensors(out)
    return records, list(out_tensors[0].shape[1:]) if out_tensors else None, counter.get_total_flops()


def _rows(records: dict[str, dict[str, Any]], max_depth: int | None) -> list[LayerRow]:
    """Rows in execution order: leaves, modules doing work of their own, collapsed at ``max_depth``."""
    rows = []
    names = list(records)  # insertion order = order of first completed call (children first)
    for name in names:
        rec = records[name]
        depth = name.count(".") + 1 if name else 0
        if max_depth is not None and depth > max_depth:
            continue
        collapse = max_depth is not None and depth == max_depth and not rec["leaf"]
        own_tr, own_nt = rec["params"]
        if collapse:
            sub = [r for n, r in records.items() if n == name or n.startswith(name + ".")]
            tr = sum(r["params"][0] for r in sub)
            nt = sum(r["params"][1] for r in sub)
            rows.append(LayerRow(name, rec["type"], depth, rec["shape"], tr, nt, rec["flops"],
                                 sum(r["self_act"] for r in sub)))
        elif rec["leaf"] or own_tr or own_nt or rec["self_flops"] or rec["self_act"]:
            label = name or "(model)"
            if not rec["leaf"]:
                label += " (own)"
            rows.append(LayerRow(label, rec["type"], depth, rec["shape"], own_tr, own_nt,
                                 rec["self_flops"], rec["self_act"]))
    return rows


def _short(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{int(n)}"


def _bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"
