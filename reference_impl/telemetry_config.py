"""How the reference runtime's telemetry exports: the configuration and the ``OTEL_*`` variables.

:class:`TelemetryConfig` says where metrics go (:class:`Exporter`) and how successive
exports relate (:class:`Temporality`); ``None`` fields are read from the standard
``OTEL_*`` variables (:meth:`TelemetryConfig.from_env`), and a value those variables
cannot hold is a :class:`~reference_impl.errors.ConfigError` naming the variable.
:mod:`reference_impl.telemetry` builds the instruments and readers from it and
re-exports every name here.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.sdk.metrics import (
    Counter,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics.export import AggregationTemporality

from reference_impl.errors import ConfigError

__all__ = ["OTLP_EXPORTERS", "Exporter", "TelemetryConfig", "Temporality"]


class Exporter(enum.Enum):
    """Where metrics go."""

    NONE = "none"
    MEMORY = "memory"
    OTLP_HTTP = "otlp-http"
    OTLP_GRPC = "otlp-grpc"
    PROMETHEUS = "prometheus"


class Temporality(enum.Enum):
    """How successive exports relate: the values of the standard preference variable.

    ``CUMULATIVE`` exports running totals; ``DELTA`` exports what is new since the
    previous export; ``LOWMEMORY`` is delta for counters and histograms but cumulative
    for observable counters (the OpenTelemetry specification's three choices).
    """

    CUMULATIVE = "cumulative"
    DELTA = "delta"
    LOWMEMORY = "lowmemory"

    @property
    def histograms(self) -> AggregationTemporality:
        """The temporality of every histogram under this choice."""
        if self is Temporality.CUMULATIVE:
            return AggregationTemporality.CUMULATIVE
        return AggregationTemporality.DELTA

    def by_instrument(self) -> dict[type, AggregationTemporality]:
        """The SDK's per-instrument preference for this choice (the OTLP exporters' table)."""
        delta, cumulative = AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE
        counters = cumulative if self is Temporality.CUMULATIVE else delta
        return {
            Counter: counters,
            UpDownCounter: cumulative,
            HistogramInstrument: self.histograms,
            ObservableCounter: delta if self is Temporality.DELTA else cumulative,
            ObservableUpDownCounter: cumulative,
            ObservableGauge: cumulative,
        }


_TEMPORALITY_VARIABLE = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
OTLP_EXPORTERS = (Exporter.OTLP_HTTP, Exporter.OTLP_GRPC)
# The export period when neither the configuration nor OTEL_METRIC_EXPORT_INTERVAL sets one.
_DEFAULT_EXPORT_INTERVAL_S = 60.0


def _temporality_from_env(env: Mapping[str, str]) -> Temporality | None:
    text = env.get(_TEMPORALITY_VARIABLE, "").strip().lower()
    if not text:
        return None
    try:
        return Temporality(text)
    except ValueError:
        raise ConfigError(
            _TEMPORALITY_VARIABLE,
            f"unknown temporality {text!r}; expected cumulative, delta or lowmemory",
        ) from None


def _interval_from_env(env: Mapping[str, str]) -> float | None:
    interval = env.get("OTEL_METRIC_EXPORT_INTERVAL")
    try:
        return float(interval) / 1000.0 if interval else None
    except ValueError:
        raise ConfigError(
            "OTEL_METRIC_EXPORT_INTERVAL", f"{interval!r} is not a number of milliseconds"
        ) from None


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    """How to export. ``None`` fields are taken from the ``OTEL_*`` environment.

    ``temporality`` None means: delta for OTLP unless
    ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` says otherwise; cumulative
    for the in-memory reader; Prometheus is always cumulative (it pulls totals).
    """

    exporter: Exporter = Exporter.MEMORY
    endpoint: str | None = None
    prometheus_host: str = "127.0.0.1"
    prometheus_port: int = 9464
    export_interval_s: float | None = None
    service_name: str = "agentbench-reference"
    temporality: Temporality | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TelemetryConfig:
        """The configuration the standard ``OTEL_*`` variables describe (memory by default)."""
        env = os.environ if env is None else env
        name = env.get("OTEL_METRICS_EXPORTER", "").strip().lower()
        protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf").strip().lower()
        if name in ("", "memory"):
            exporter = Exporter.MEMORY
            if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
                exporter = Exporter.OTLP_GRPC if protocol == "grpc" else Exporter.OTLP_HTTP
        elif name == "otlp":
            exporter = Exporter.OTLP_GRPC if protocol == "grpc" else Exporter.OTLP_HTTP
        elif name in ("none", "prometheus", "otlp-http", "otlp-grpc"):
            exporter = Exporter(name)
        else:
            raise ConfigError(
                "OTEL_METRICS_EXPORTER",
                f"unknown exporter {name!r}; expected otlp, prometheus, memory or none",
            )
        interval_s = _interval_from_env(env)
        port = env.get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464")
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError("OTEL_EXPORTER_PROMETHEUS_PORT", f"{port!r} is not a port number")
        return cls(
            exporter=exporter,
            endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            prometheus_host=env.get("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
            prometheus_port=int(port),
            export_interval_s=interval_s,
            service_name=env.get("OTEL_SERVICE_NAME", "agentbench-reference"),
            temporality=_temporality_from_env(env) if exporter in OTLP_EXPORTERS else None,
        )

    def resolved_temporality(self) -> Temporality:
        """The temporality of this configuration's main reader (``None`` resolved)."""
        if self.exporter is Exporter.PROMETHEUS:
            if self.temporality is not None and self.temporality is not Temporality.CUMULATIVE:
                raise ConfigError(
                    "TelemetryConfig.temporality",
                    f"{self.temporality.value} with the Prometheus exporter; expected "
                    "cumulative or None (Prometheus pulls running totals)",
                )
            return Temporality.CUMULATIVE
        if self.temporality is not None:
            return self.temporality
        if self.exporter in OTLP_EXPORTERS:
            return _temporality_from_env(os.environ) or Temporality.DELTA
        return Temporality.CUMULATIVE

    def resolved_export_interval_s(self) -> float:
        """The OTLP export period in seconds (``None`` resolved; ``inf``: only on flush)."""
        interval_s = self.export_interval_s
        if interval_s is None:
            interval_s = _interval_from_env(os.environ) or _DEFAULT_EXPORT_INTERVAL_S
        if not interval_s > 0:
            raise ConfigError(
                "TelemetryConfig.export_interval_s", f"{interval_s!r}; expected seconds > 0"
            )
        return interval_s
