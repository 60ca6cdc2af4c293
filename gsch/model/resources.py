"""Resource amounts and Kubernetes quantity parsing.

Amounts are integers in the units the scheduler compares: cpu in millicores, memory in bytes,
GPUs and pods as counts. Integers keep sums exact, so "reserved never exceeds allocatable" is
a comparison without rounding.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import msgspec

GPU_RESOURCE = "nvidia.com/gpu"

_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)


# Kubernetes quantities are bounded by int64 (2^63 - 1); anything larger is a typo or an attack
# ("1e999999999" would otherwise build a billion-digit integer or overflow the decimal context).
MAX_QUANTITY = Decimal(2**63 - 1)


class QuantityError(ValueError):
    """A Kubernetes quantity string that cannot be parsed."""


def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a Kubernetes resource quantity ("500m", "1.5", "128Mi", "1e3") into a Decimal."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        if abs(value) > MAX_QUANTITY:  # before any repr(): huge ints have no str()
            raise QuantityError("an integer quantity is out of range")
        base, suffix = Decimal(value), ""
    elif isinstance(value, float):
        # str() gives the shortest form (0.1, not 0.1000000000000000055...), as JSON wrote it.
        base, suffix = Decimal(str(value)), ""
    else:
        match = _QUANTITY.match(value.strip())
        if match is None:
            raise QuantityError(f"{value!r} is not a Kubernetes quantity")
        number, suffix = match.group(1), match.group(2) or ""
        try:
            base = Decimal(number)
        except InvalidOperation as exc:
            raise QuantityError(f"{value!r} is not a Kubernetes quantity") from exc
    if not base.is_finite():
        raise QuantityError(f"{value!r} is not a finite quantity")
    # Checked before multiplying: the exponent alone can overflow the decimal context.
    if base.adjusted() > 20:
        raise QuantityError(f"{value!r} is too large")
    if base and base.adjusted() < -30:
        # Far below any unit; keep it positive so rounding up still gives one unit.
        base = Decimal("1e-30").copy_sign(base)
    if suffix in _BINARY_SUFFIXES:
        result = base * _BINARY_SUFFIXES[suffix]
    else:
        result = base * _DECIMAL_SUFFIXES[suffix]
    if result < 0:
        raise QuantityError(f"{value!r} is negative")
    if result > MAX_QUANTITY:
        raise QuantityError(f"{value!r} is too large")
    return result


def cpu_millis(value: str | int | float) -> int:
    """CPU quantity in millicores, rounded up as the kubelet does."""
    return int((parse_quantity(value) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def whole_units(value: str | int | float) -> int:
    """Memory in bytes, or a count (GPUs, pods), rounded up."""
    return int(parse_quantity(value).to_integral_value(rounding="ROUND_CEILING"))


class Resources(msgspec.Struct, frozen=True, omit_defaults=True):
    """An amount of schedulable resources."""

    cpu_m: int = 0
    memory: int = 0
    gpu: int = 0
    pods: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_m + other.cpu_m,
            self.memory + other.memory,
            self.gpu + other.gpu,
            self.pods + other.pods,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_m - other.cpu_m,
            self.memory - other.memory,
            self.gpu - other.gpu,
            self.pods - other.pods,
        )

    def scaled(self, factor: int) -> Resources:
        return Resources(
            self.cpu_m * factor, self.memory * factor, self.gpu * factor, self.pods * factor
        )

    def fits_in(self, free: Resources) -> bool:
        return (
            self.cpu_m <= free.cpu_m
            and self.memory <= free.memory
            and self.gpu <= free.gpu
            and self.pods <= free.pods
        )

    def shortfalls(self, free: Resources) -> list[str]:
        """Names of the resources (Kubernetes spelling) that do not fit into `free`."""
        missing = []
        if self.cpu_m > free.cpu_m:
            missing.append("cpu")
        if self.memory > free.memory:
            missing.append("memory")
        if self.gpu > free.gpu:
            missing.append(GPU_RESOURCE)
        if self.pods > free.pods:
            missing.append("pods")
        return missing

    @classmethod
    def from_k8s(cls, amounts: dict[str, object]) -> Resources:
        """Build from a Kubernetes resource map such as a container's `requests`."""
        cpu = amounts.get("cpu")
        memory = amounts.get("memory")
        gpu = amounts.get(GPU_RESOURCE)
        pods = amounts.get("pods")
        return cls(
            cpu_m=cpu_millis(_quantity_arg(cpu)) if cpu is not None else 0,
            memory=whole_units(_quantity_arg(memory)) if memory is not None else 0,
            gpu=whole_units(_quantity_arg(gpu)) if gpu is not None else 0,
            pods=whole_units(_quantity_arg(pods)) if pods is not None else 0,
        )


def _quantity_arg(value: object) -> str | int | float:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    raise QuantityError(f"{value!r} is not a Kubernetes quantity")


def resource_max(a: Resources, b: Resources) -> Resources:
    return Resources(
        max(a.cpu_m, b.cpu_m), max(a.memory, b.memory), max(a.gpu, b.gpu), max(a.pods, b.pods)
    )
