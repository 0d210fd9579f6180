"""`serve --config FILE`: the serve options as a YAML mapping, validated field by field.

```yaml
host: 127.0.0.1
port: 8080
dataDir: /var/lib/altostrat
db: postgresql://altostrat@db/altostrat   # optional
executor: ray                             # local | ray
policy: fcfs+best-fit+backfill
graceS: 30
logFormat: json                           # text | json
ray: {address: "10.0.0.5:6379"}           # optional; else RAY_ADDRESS, else a local Ray
tls: {cert: /etc/altostrat/cert.pem, key: /etc/altostrat/key.pem}   # optional: HTTPS
```

A flag given on the command line overrides the file's value; an option given in neither
takes the default below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError

from altostrat.service.objects import field_path
from altostrat.spec.schema import Model


class ConfigError(ValueError):
    """A bad config file: one line naming the file and the field."""


class RayConfig(Model):
    address: str | None = Field(default=None, min_length=1,
                                description="the Ray cluster (host:port, ray://host:port or auto)")


class TlsConfig(Model):
    cert: Path = Field(description="the server's certificate chain (PEM)")
    key: Path = Field(description="its private key (PEM)")


class ServeConfig(Model):
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8080, ge=1, le=65535)
    data_dir: Path = Path("altostrat-data")
    db: str | None = Field(default=None, min_length=1)
    executor: Literal["local", "ray"] = "local"
    policy: str = Field(default="fcfs+best-fit", min_length=1)
    grace_s: float = Field(default=30.0, ge=0)
    log_format: Literal["text", "json"] = "text"
    ray: RayConfig = RayConfig()
    tls: TlsConfig | None = None


def _errors(source: str, exc: ValidationError) -> ConfigError:
    return ConfigError("; ".join(f"{source}: {field_path(e['loc']) or '(top level)'}: {e['msg']}"
                                 for e in exc.errors()))


def load(path: str | Path | None, overrides: dict) -> ServeConfig:
    """The options of the file at `path` (None: none), each overridden by the non-None values of
    `overrides` (flags, keyed by their field names: data_dir, grace_s, ray_address…)."""
    raw: dict = {}
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: must be a mapping of serve options (host, port, dataDir, …)")
        try:
            base = ServeConfig.model_validate(raw)
        except ValidationError as exc:
            raise _errors(str(path), exc) from None
    else:
        base = ServeConfig()
    address = overrides.pop("ray_address", None)
    cert, key = overrides.pop("tls_cert", None), overrides.pop("tls_key", None)
    given = {k: v for k, v in overrides.items() if v is not None}
    if address is not None:
        given["ray"] = {"address": address}
    if (cert is None) != (key is None):
        raise ConfigError("command line: --tls-cert and --tls-key go together: give both, or neither")
    if cert is not None:
        given["tls"] = {"cert": cert, "key": key}
    try:  # the flags, checked as the file is
        return ServeConfig.model_validate({**base.model_dump(), **given})
    except ValidationError as exc:
        raise _errors("command line", exc) from None
