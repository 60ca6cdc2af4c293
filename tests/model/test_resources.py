"""Kubernetes quantities and resource arithmetic."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsch.model.resources import (
    GPU_RESOURCE,
    QuantityError,
    Resources,
    cpu_millis,
    parse_quantity,
    resource_max,
    whole_units,
)

GI = 2**30
MI = 2**20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100m", Decimal("0.1")),
        ("0.5", Decimal("0.5")),
        ("1", Decimal(1)),
        ("1Gi", Decimal(GI)),
        ("512Mi", Decimal(512 * MI)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("1k", Decimal(1000)),
        ("1.5Gi", Decimal(3 * GI // 2)),
        ("2Ki", Decimal(2048)),
        ("1M", Decimal(10**6)),
        ("250u", Decimal("0.00025")),
        ("5n", Decimal("0.000000005")),
        (" 2 ", Decimal(2)),
        ("+3", Decimal(3)),
        (4, Decimal(4)),
        (0.25, Decimal("0.25")),
    ],
)
def test_parse_quantity(text: str | int | float, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("12x", "is not a Kubernetes quantity"),
        ("-1", "is negative"),
        ("-100m", "is negative"),
        ("", "is not a Kubernetes quantity"),
        ("Gi", "is not a Kubernetes quantity"),
        ("1.2.3", "is not a Kubernetes quantity"),
        (".", "is not a Kubernetes quantity"),
        ("1 Gi", "is not a Kubernetes quantity"),
        ("0x10", "is not a Kubernetes quantity"),
        ("NaN", "is not a Kubernetes quantity"),
        ("inf", "is not a Kubernetes quantity"),
        (True, "is not a quantity"),
        (float("inf"), "is not a finite quantity"),
        (float("nan"), "is not a finite quantity"),
        # Absurd exponents would otherwise build giant integers or overflow the decimal context.
        ("1e999999999", "is too large"),
        ("1e30", "is too large"),
        ("8Ei", "is too large"),
        (10**30, "out of range"),
        pytest.param(10**5000, "out of range", id="huge-int"),
    ],
)
def test_bad_quantities_raise_quantity_error(value: str | int | float, problem: str) -> None:
    with pytest.raises(QuantityError, match=problem):
        parse_quantity(value)


@pytest.mark.parametrize(
    ("value", "millis"),
    [("100m", 100), ("0.5", 500), ("1", 1000), ("1.0001", 1001), ("1n", 1), ("1e-4", 1), (2, 2000)],
)
def test_cpu_millis_rounds_up(value: str | int, millis: int) -> None:
    assert cpu_millis(value) == millis


@pytest.mark.parametrize(
    ("value", "units"),
    [("1Gi", GI), ("512Mi", 512 * MI), ("1.5Gi", 3 * GI // 2), ("100m", 1), ("1.1", 2), ("0", 0)],
)
def test_whole_units_rounds_up(value: str, units: int) -> None:
    assert whole_units(value) == units


def test_a_tiny_positive_amount_still_rounds_up_to_one_unit() -> None:
    assert whole_units("1e-999999999") == 1
    assert cpu_millis("1e-999999999") == 1
    with pytest.raises(QuantityError, match="negative"):
        parse_quantity("-1e-999999999")


@settings(max_examples=100)
@given(st.integers(min_value=0, max_value=10**9))
def test_milli_suffix_round_trips(millis: int) -> None:
    assert cpu_millis(f"{millis}m") == millis
    assert cpu_millis(str(Decimal(millis) / 1000)) == millis


@settings(max_examples=100)
@given(st.integers(min_value=0, max_value=2**20), st.sampled_from(["Ki", "Mi", "Gi"]))
def test_binary_suffixes_are_exact(count: int, suffix: str) -> None:
    factor = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}[suffix]
    assert whole_units(f"{count}{suffix}") == count * factor


@settings(max_examples=200)
@given(st.text(max_size=12))
def test_any_text_is_a_quantity_or_a_quantity_error(text: str) -> None:
    try:
        value = parse_quantity(text)
    except QuantityError:
        return
    assert value >= 0
    assert whole_units(text) >= 0
    assert cpu_millis(text) >= 0


def test_from_k8s_reads_cpu_memory_gpu() -> None:
    amount = Resources.from_k8s({"cpu": "250m", "memory": "1Gi", GPU_RESOURCE: 2, "other": "x"})
    assert amount == Resources(cpu_m=250, memory=GI, gpu=2)


def test_from_k8s_treats_null_as_absent() -> None:
    assert Resources.from_k8s({"cpu": None, "memory": "1Ki"}) == Resources(memory=1024)


@pytest.mark.parametrize("bad", [{"cpu": True}, {"memory": {}}, {"cpu": [1]}, {"cpu": "12x"}])
def test_from_k8s_rejects_non_quantities(bad: dict[str, object]) -> None:
    with pytest.raises(QuantityError):
        Resources.from_k8s(bad)


def test_arithmetic_and_fit() -> None:
    a = Resources(cpu_m=1000, memory=GI, gpu=1, pods=1)
    b = Resources(cpu_m=500, memory=GI, gpu=0, pods=2)
    assert a + b == Resources(1500, 2 * GI, 1, 3)
    assert a - b == Resources(500, 0, 1, -1)
    assert a.scaled(3) == Resources(3000, 3 * GI, 3, 3)
    assert resource_max(a, b) == Resources(1000, GI, 1, 2)
    assert a.fits_in(a)
    assert not a.fits_in(b)
    assert a.shortfalls(b) == ["cpu", GPU_RESOURCE]
    assert b.shortfalls(a) == ["pods"]
    assert a.shortfalls(a + b) == []


amounts = st.builds(
    Resources,
    st.integers(0, 10**6),
    st.integers(0, 10**12),
    st.integers(0, 8),
    st.integers(0, 200),
)


@settings(max_examples=100)
@given(amounts, amounts)
def test_fits_in_iff_no_shortfall(demand: Resources, free: Resources) -> None:
    assert demand.fits_in(free) == (demand.shortfalls(free) == [])
    assert (demand + free) - free == demand
