"""`serve --config FILE`: the file's options, flags over them, and one-line errors naming the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from altostrat.service.config import ConfigError, ServeConfig, load

NO_FLAGS = dict(host=None, port=None, data_dir=None, db=None, policy=None, grace_s=None, log_format=None,
                executor=None, ray_address=None)


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "serve.yaml"
    path.write_text(text)
    return path


def test_the_file_sets_the_options_and_flags_override_it(tmp_path):
    path = write(tmp_path, "host: 0.0.0.0\nport: 9000\ndataDir: /srv/alto\nexecutor: ray\npolicy: sjf+best-fit\n"
                           "graceS: 5\nlogFormat: json\nray: {address: '10.0.0.5:6379'}\n")
    cfg = load(path, dict(NO_FLAGS))
    assert cfg == ServeConfig(host="0.0.0.0", port=9000, data_dir=Path("/srv/alto"), executor="ray",
                              policy="sjf+best-fit", grace_s=5, log_format="json", ray={"address": "10.0.0.5:6379"})
    flags = dict(NO_FLAGS, port=9100, executor="local", ray_address="auto", grace_s=0.0)
    cfg = load(path, flags)
    assert (cfg.port, cfg.executor, cfg.ray.address, cfg.grace_s, cfg.host) == (9100, "local", "auto", 0.0, "0.0.0.0")


def test_no_file_gives_the_defaults(tmp_path):
    assert load(None, dict(NO_FLAGS)) == ServeConfig(host="127.0.0.1", port=8080, data_dir=Path("altostrat-data"),
                                                     db=None, executor="local", policy="fcfs+best-fit",
                                                     grace_s=30.0, log_format="text")
    assert load(write(tmp_path, ""), dict(NO_FLAGS)) == ServeConfig()  # an empty file: all defaults


@pytest.mark.parametrize("text, message", [
    ("port: abc\n", "port: Input should be a valid integer, unable to parse string as an integer"),
    ("port: 70000\n", "port: Input should be less than or equal to 65535"),
    ("executor: slurm\n", "executor: Input should be 'local' or 'ray'"),
    ("graceS: -1\n", "graceS: Input should be greater than or equal to 0"),
    ("dataDirr: x\n", "dataDirr: Extra inputs are not permitted"),
    ("ray: {adress: x}\n", "ray.adress: Extra inputs are not permitted"),
    ("- port\n", "must be a mapping of serve options (host, port, dataDir, …)"),
])
def test_a_bad_file_names_the_field(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load(path, dict(NO_FLAGS))
    assert str(err.value) == f"{path}: {message}"


def test_a_bad_flag_is_checked_as_the_file_is():
    with pytest.raises(ConfigError, match=r"^command line: executor: Input should be 'local' or 'ray'$"):
        load(None, dict(NO_FLAGS, executor="slurm"))


def test_serve_prints_one_line_and_starts_nothing(tmp_path):
    bad = write(tmp_path, "port: 8080\nlogFormat: xml\n")
    out = subprocess.run([sys.executable, "-m", "altostrat.cli", "serve", "--config", str(bad)], capture_output=True,
                         text=True, timeout=60)
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == f"error: {bad}: logFormat: Input should be 'text' or 'json'\n"
    missing = tmp_path / "nope.yaml"
    out = subprocess.run([sys.executable, "-m", "altostrat.cli", "serve", "--config", str(missing)],
                         capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stderr) == (2, f"error: {missing}: No such file or directory\n")
    assert not (tmp_path / "altostrat-data").exists()


def test_the_tls_pair_from_the_file_or_both_flags(tmp_path):
    path = write(tmp_path, "tls: {cert: /etc/a/cert.pem, key: /etc/a/key.pem}\n")
    assert load(path, dict(NO_FLAGS)).tls.model_dump() == {"cert": Path("/etc/a/cert.pem"), "key": Path("/etc/a/key.pem")}
    cfg = load(path, dict(NO_FLAGS, tls_cert=Path("c.pem"), tls_key=Path("k.pem")))  # the flags win, as a pair
    assert (cfg.tls.cert, cfg.tls.key) == (Path("c.pem"), Path("k.pem"))
    assert load(None, dict(NO_FLAGS)).tls is None
    with pytest.raises(ConfigError, match=r"serve.yaml: tls.key: Field required"):
        load(write(tmp_path, "tls: {cert: /etc/a/cert.pem}\n"), dict(NO_FLAGS))
    with pytest.raises(ConfigError, match="--tls-cert and --tls-key go together"):
        load(None, dict(NO_FLAGS, tls_key=Path("k.pem")))
