"""What a latency model sees of a network: its kernels, precision changes and partitions.

A network of the built-in family is read as a chain of kernels (stem 3x3
convolution, 1x1 convolutions, depthwise convolutions, residual additions, the
pool and the classifier), each with its precision and its arithmetic. Where the
activation type changes between neighbours (float, int8, int16), the runtime
runs a QUANTIZE or DEQUANTIZE op of the tensor between them; where a layer the
delegate does not take splits the graph, a new delegate partition starts. The
features are sums of these per kind and precision, so a model that is linear
in them adds up kernel costs, as nn-Meter does. Pure Python: no TensorFlow.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from codesign.space.candidate import Candidate
from codesign.space.family import SpaceSpec

SIMD = 8  # channels are padded to this in the arithmetic count (vector width of the kernels)
ACTIVATION = {"float32": "f", "float16": "f", "int4": "f", "int8": "i8", "int16x8": "i16"}


@dataclass(frozen=True)
class Kernel:
    """One op of the chain.

    Attributes:
        kind: ``stem`` (3x3 convolution), ``pw`` (1x1 convolution), ``dw``
            (depthwise), ``add``, ``pool`` or ``dense``; chains of other models
            (:mod:`codesign.latency.graph_chain`) add ``conv`` (k x k) and the
            kinds of :func:`codesign.hyper.opgraph.op_kind`.
        precision: The layer's precision (for add and pool: its producer's).
        macs: Multiply-accumulates, channels padded to the vector width.
        out: Output elements.
        inp: Input elements.
        px: Output pixels (per-pixel loop overhead matters at small channel counts).
        tmacs: Multiply-accumulates of the true channel counts (kernels that do not
            vectorize over channels, as the int16 and int4 ones here, pay for these).
        weights: Weight elements (true channel counts): at the small feature maps
            of the last stages a convolution streams its weights more than it
            computes (on ``xnnpack-1t`` this term took whole networks from 88 to
            96-99 % within ±10 % in a refit of the same timings).
        size: The kernel's width (a depthwise kernel of 3, 5 or 7 runs its own
            micro-kernel, priced apart: 46 to 86 % within ±10 % in that refit).
    """

    kind: str
    precision: str
    macs: float
    out: float
    inp: float
    px: float = 0.0
    tmacs: float = 0.0
    weights: float = 0.0
    size: int = 1

    @property
    def name(self) -> str:
        """Kind as priced, a depthwise or k x k convolution with its width (``dw3``, ``conv5``)."""
        return f"{self.kind}{self.size}" if self.kind in ("dw", "conv") else self.kind


def _pad(c: int) -> int:
    return SIMD * math.ceil(c / SIMD)


def kernels(space: SpaceSpec, cand: Candidate, num_classes: int, channels: int) -> list[Kernel]:
    """The chain of kernels of a candidate, in execution order.

    Precision changes appear as kernels of kind ``q:<from>><to>`` (a QUANTIZE or
    DEQUANTIZE of the tensor between two ops whose activation types differ),
    one per tensor and target type. A residual addition is integer when both of
    its inputs are of the same integer type (as the converter quantizes it),
    else float; pooling follows the head convolution.
    """
    sub = space.subnet(cand)
    ch, prec = sub.channels, sub.precision
    out: list[Kernel] = []
    converted: set[tuple[int, str]] = set()
    tensors: list[tuple[str, float]] = [("f", 0.0)]  # (activation type, elements) by id

    def feed(tensor: int, domain: str) -> None:
        """Convert ``tensor`` to ``domain`` for a consumer, once per tensor and type."""
        have, size = tensors[tensor]
        if have != domain and (tensor, domain) not in converted:
            converted.add((tensor, domain))
            out.append(Kernel(f"q:{have}>{domain}", "", 0.0, size, size))

    def emit(kernel: Kernel, inputs: list[int], domain: str) -> int:
        for t in inputs:
            feed(t, domain)
        out.append(kernel)
        tensors.append((domain, kernel.out))
        return len(tensors) - 1

    def conv(kind: str, name: str, k: int, stride: int, cin: int, cout: int, hin: int,
             src: int) -> tuple[int, int]:
        hout = math.ceil(hin / stride)
        per_pixel = k * k * (_pad(cin) if kind != "dw" else 1) * _pad(cout)
        true_pixel = k * k * (cin if kind != "dw" else 1) * cout
        kern = Kernel(kind, prec[name], hout * hout * per_pixel, hout * hout * cout,
                      hin * hin * cin, hout * hout, hout * hout * true_pixel, true_pixel, k)
        return emit(kern, [src], ACTIVATION[prec[name]]), hout

    tensors[0] = ("f", float(sub.resolution * sub.resolution * channels))
    h, res = conv("stem", "stem_conv", 3, space.stem_stride, channels, ch["stem_conv"],
                  sub.resolution, 0)
    c = ch["stem_conv"]
    for bp in space.blocks():
        if bp.index > sub.depths[bp.stage - 1]:
            continue
        hidden = ch[bp.hidden_group]
        x_in, cin, hin = h, c, res
        if bp.expand > 1:
            h, _ = conv("pw", f"{bp.name}_expand", 1, 1, c, hidden, res, h)
        h, res = conv("dw", f"{bp.name}_dw", sub.kernels[bp.name], bp.stride, hidden, hidden,
                      res, h)
        c = ch[bp.out_group]
        h, _ = conv("pw", f"{bp.name}_project", 1, 1, hidden, c, res, h)
        if bp.residual and cin == c and hin == res:
            kinds = {tensors[x_in][0], tensors[h][0]}
            domain = kinds.pop() if len(kinds) == 1 else "f"
            precision = {"i8": "int8", "i16": "int16x8"}.get(domain, "float32")
            h = emit(Kernel("add", precision, 0.0, res * res * c, 2 * res * res * c, res * res),
                     [x_in, h], domain)
    head = ch["head_conv"]
    h, _ = conv("pw", "head_conv", 1, 1, c, head, res, h)
    pool_domain = tensors[h][0]
    pool_prec = {"i8": "int8", "i16": "int16x8"}.get(pool_domain, "float32")
    h = emit(Kernel("pool", pool_prec, 0.0, head, res * res * head), [h], pool_domain)
    h = emit(Kernel("dense", prec["classifier"], _pad(head) * _pad(num_classes), num_classes,
                    head, tmacs=head * num_classes), [h], ACTIVATION[prec["classifier"]])
    feed(h, "f")  # the model's output is float
    return out


def features(chain: list[Kernel], delegated: tuple[str, ...] = ()) -> dict[str, float]:
    """Named features of a chain (sums per kind and precision).

    Args:
        chain: The kernels, in order.
        delegated: Precisions the delegate takes (empty: no delegate).
    """
    f: dict[str, float] = defaultdict(float)
    f["const"] = 1.0
    partitions, inside = 0, False
    for k in chain:
        if k.kind.startswith("q:"):
            f[f"{k.kind}:n"] += 1.0
            f[f"{k.kind}:el"] += k.out / 1e3
            continue
        key = f"{k.name}:{k.precision}"
        f[f"{key}:n"] += 1.0
        if k.macs:
            f[f"{key}:macs"] += k.macs / 1e6
        if k.tmacs:
            f[f"{key}:tmacs"] += k.tmacs / 1e6
        f[f"{key}:out"] += k.out / 1e3
        if k.inp:  # reading the input: at a few microseconds a network, as much as its output
            f[f"{key}:inp"] += k.inp / 1e3
        if k.px:
            f[f"{key}:px"] += k.px / 1e3
            f[f"{key}:w"] += k.weights / 1e3
        if delegated:
            taken = k.precision in delegated
            if taken and not inside:
                partitions += 1
            inside = taken
            if not taken:
                f[f"fallback:{k.kind}:n"] += 1.0
    if delegated:
        f["partitions"] = float(partitions)
    return dict(f)
