"""What a generator is made of: per-block output shapes, parameters and cost, receptive field and context.

``inspect_model(model, input_length)`` runs the model once on noise with forward hooks and returns a
:class:`ModelReport`; ``report.format()`` is the table ``gan-enhance inspect`` prints.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn


@dataclass
class BlockReport:
    """One module of the tree (up to the requested depth)."""

    name: str
    kind: str
    depth: int
    output_shape: list[int]
    calls: int
    parameters: int
    macs: int


@dataclass
class ModelReport:
    """The inspection of one generator for one input length.

    ``macs`` counts the multiply-accumulates of convolutions (1-D, 2-D, transposed) and linear layers for
    ``input_length`` samples; FFTs, attention products and elementwise operations are not counted.
    ``receptive_field`` is the span of input samples the middle output sample depends on (measured by
    back-propagating from it in float64: exactly zero gradient means no dependence), ``None`` when it is
    the whole input (or not measured). ``context`` is what the model declares for chunked inference (each side).
    """

    generator: str
    in_sample_rate: int
    out_sample_rate: int
    input_length: int
    output_shape: list[int]
    total_parameters: int
    trainable_parameters: int
    macs: int
    macs_per_second: float
    receptive_field: int | None
    receptive_field_left: int | None
    receptive_field_right: int | None
    context: int
    alignment: int
    exact_context: bool
    blocks: list[BlockReport] = field(default_factory=list)

    @property
    def receptive_field_ms(self) -> float | None:
        return None if self.receptive_field is None else 1000.0 * self.receptive_field / self.in_sample_rate

    def to_dict(self) -> dict:
        return {**asdict(self), "receptive_field_ms": self.receptive_field_ms}

    def format(self) -> str:
        """A plain-text table followed by the totals."""
        seconds = self.input_length / self.in_sample_rate
        lines = [
            f"generator {self.generator}: {self.in_sample_rate} Hz -> {self.out_sample_rate} Hz, "
            f"input (1, 1, {self.input_length}) = {seconds:.3f} s -> output {tuple(self.output_shape)}",
            "",
        ]
        rows = [("block", "type", "output shape", "calls", "parameters", "share", "MMAC/s")]
        total = max(self.trainable_parameters, 1)
        scale = self.in_sample_rate / self._padded_length / 1e6
        for block in self.blocks:
            rows.append(
                (
                    "  " * block.depth + block.name.rsplit(".", 1)[-1] if block.depth else block.name,
                    block.kind,
                    str(tuple(block.output_shape)) if block.output_shape else "-",
                    str(block.calls),
                    f"{block.parameters:,}",
                    f"{100 * block.parameters / total:.1f}%",
                    f"{block.macs * scale:,.1f}",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(widths[2])]
            cells += [cell.rjust(width) for cell, width in zip(row[3:], widths[3:])]
            lines.append("  ".join(cells).rstrip())
        frozen = self.total_parameters - self.trainable_parameters
        lines += [
            "",
            f"parameters: {self.trainable_parameters:,} trainable"
            + (f" + {frozen:,} frozen" if frozen else "")
            + f" ({self.trainable_parameters / 1e6:.2f} M)",
            f"cost: {self.macs_per_second / 1e9:.3f} GMAC per second of input audio "
            "(convolutions and linear layers; FFTs, attention products and elementwise ops not counted)",
        ]
        if self.receptive_field is None and self.exact_context:
            lines.append("receptive field: not measured")
        elif self.receptive_field is None:
            lines.append("receptive field: the whole input (a layer sees all of it)")
        else:
            lines.append(
                f"receptive field: {self.receptive_field:,} samples = {self.receptive_field_ms:.1f} ms "
                f"(middle output sample: {self.receptive_field_left:,} before, {self.receptive_field_right:,} after)"
            )
        context_ms = 1000.0 * self.context / self.in_sample_rate
        kind = (
            "an upper bound" if self.exact_context else "approximate: part of the model sees the whole input"
        )
        lines.append(
            f"context for chunked inference: {self.context:,} samples = {context_ms:.1f} ms each side ({kind}); "
            f"chunk starts must be multiples of {self.alignment:,} samples"
        )
        return "\n".join(lines)

    @property
    def _padded_length(self) -> int:
        return math.ceil(self.input_length / self.alignment) * self.alignment


def count_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """Multiply-accumulates of one call of a conv or linear layer (0 for anything else)."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        return output.numel() * per_output
    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d)):
        per_input = module.out_channels // module.groups * math.prod(module.kernel_size)
        return inputs[0].numel() * per_input
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def first_tensor(value) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple)):
        for item in value:
            found = first_tensor(item)
            if found is not None:
                return found
    if hasattr(value, "last_hidden_state"):
        return value.last_hidden_state
    return None


def measure_receptive_field(model: nn.Module, length: int) -> tuple[int, int] | None:
    """Input samples before and after the middle one that the middle output sample depends on.

    Float64 back-propagation from one output sample: inputs it does not depend on get exactly zero
    gradient. ``None`` when every input sample gets a gradient (the model sees the whole input).
    """
    probe = copy.deepcopy(model).double().eval()
    x = torch.randn(1, 1, length, dtype=torch.float64, requires_grad=True)
    middle = length // 2
    probe(x)[0, 0, middle * probe.ratio].backward()
    reached = x.grad[0, 0].nonzero()[:, 0]
    first, last = int(reached.min()), int(reached.max())
    if first == 0 and last == length - 1:
        return None
    return middle - first, last - middle


def inspect_model(
    model: nn.Module, input_length: int = 0, depth: int = 2, receptive_field: bool = True
) -> ModelReport:
    """Inspect a generator (see :class:`ModelReport`).

    Parameters
    ----------
    model : Generator
        Any registered backbone (it has ``in_sample_rate``, ``ratio``, ``context`` and ``alignment``).
    input_length : int
        Samples of the probe input; 0 means one second.
    depth : int
        How deep into the module tree the table goes (1: the generator's direct children).
    receptive_field : bool
        Measure the receptive field (a float64 forward and backward pass over ``2 * context`` samples:
        seconds for the large backbones); off, the report's field is ``None``.
    """
    input_length = input_length or model.in_sample_rate
    # Weight-norm internals ("conv.parametrizations.weight") are not blocks: their parameters show in the conv.
    named = [
        (name, module)
        for name, module in model.named_modules()
        if name and name.count(".") < depth and "parametrizations" not in name.split(".")
    ]
    records: dict[str, dict] = {name: {"shape": [], "calls": 0, "macs": 0} for name, _ in named}
    owners: dict[nn.Module, list[str]] = {}
    for name, module in model.named_modules():
        owners.setdefault(module, [])
        owners[module] += [prefix for prefix, _ in named if name == prefix or name.startswith(prefix + ".")]
    totals = {"macs": 0}

    def hook(module: nn.Module, inputs: tuple, output) -> None:
        macs = count_macs(module, inputs, output)
        totals["macs"] += macs
        for prefix in owners.get(module, []):
            records[prefix]["macs"] += macs

    def shape_hook(name: str):
        def record(module: nn.Module, inputs: tuple, output) -> None:
            tensor = first_tensor(output)
            records[name]["calls"] += 1
            if tensor is not None and not records[name]["shape"]:
                records[name]["shape"] = list(tensor.shape)

        return record

    handles = [module.register_forward_hook(hook) for module in model.modules()]
    handles += [module.register_forward_hook(shape_hook(name)) for name, module in named]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            parameter = next(model.parameters(), None)
            device = parameter.device if parameter is not None else "cpu"
            output = model(torch.randn(1, 1, input_length, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    probe_length = max(input_length, 2 * model.context + 4 * model.alignment + 1)
    measure = receptive_field and model.exact_context
    field_radii = measure_receptive_field(model, probe_length) if measure else None
    blocks = [
        BlockReport(
            name=name,
            kind=type(module).__name__,
            depth=name.count("."),
            output_shape=records[name]["shape"],
            calls=records[name]["calls"],
            parameters=sum(p.numel() for p in module.parameters() if p.requires_grad),
            macs=records[name]["macs"],
        )
        for name, module in named
    ]
    padded = math.ceil(input_length / model.alignment) * model.alignment
    build_config = getattr(model, "build_config", None) or {}
    return ModelReport(
        generator=build_config.get("name", type(model).__name__),
        in_sample_rate=model.in_sample_rate,
        out_sample_rate=model.out_sample_rate,
        input_length=input_length,
        output_shape=list(output.shape),
        total_parameters=sum(p.numel() for p in model.parameters()),
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        macs=totals["macs"],
        macs_per_second=totals["macs"] * model.in_sample_rate / padded,
        receptive_field=None if field_radii is None else sum(field_radii) + 1,
        receptive_field_left=None if field_radii is None else field_radii[0],
        receptive_field_right=None if field_radii is None else field_radii[1],
        context=model.context,
        alignment=model.alignment,
        exact_context=model.exact_context,
        blocks=blocks,
    )
