"""`serve --tls-cert/--tls-key`: the API over HTTPS, reached by the CLI that trusts the
certificate (SSL_CERT_FILE) and refused by one that does not; a pair that cannot serve HTTPS
stops serve before anything starts, naming the option."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import httpx
import pytest

from helpers import start_serve

pytestmark = pytest.mark.xdist_group("live-serve")
ADMIN = "tls-admin-token"
CLI = [sys.executable, "-m", "altostrat.cli"]


@pytest.fixture
def pair(tmp_path) -> tuple:
    """A self-signed certificate for 127.0.0.1 and its key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is missing; install it with scripts/install-test-deps.sh (apt-get install openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def cli(*args: str, cert=None, stdin: str | None = None):
    """The CLI as a user runs it; `cert`: the certificate it trusts (SSL_CERT_FILE)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALTOSTRAT_", "SSL_CERT"))}
    if cert is not None:
        env["SSL_CERT_FILE"] = str(cert)
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60)


def test_the_api_over_https(tmp_path, pair):
    out = open(tmp_path / "serve.out", "w+")
    proc, url = start_serve(tmp_path / "data", ADMIN, out=out, tls=pair)
    try:
        assert url.startswith("https://")
        r = cli("apply", "-f", "-", "--server", url, "--token", ADMIN, cert=pair[0],
                stdin="apiVersion: altostrat/v1\nkind: Tenant\nmetadata: {name: a}\n")
        assert r.returncode == 0 and r.stdout.strip() == "tenant/a created", r.stderr
        r = cli("get", "tenants", "--server", url, "--token", ADMIN, cert=pair[0])
        assert r.returncode == 0 and r.stdout.split()[:2] == ["NAME", "a"], r.stderr
        r = cli("get", "tenants", "--server", url, "--token", ADMIN)  # the certificate is not trusted
        assert r.returncode == 2 and "CERTIFICATE_VERIFY_FAILED" in r.stderr, r.stderr
        with pytest.raises(httpx.TransportError):  # plain HTTP gets no answer
            httpx.get(url.replace("https://", "http://") + "/healthz", timeout=5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    out.seek(0)
    assert f"listening on {url}" in out.read()


@pytest.mark.parametrize("flags, message", [
    (("--tls-cert", "CERT"), "--tls-cert and --tls-key go together"),
    (("--tls-cert", "CERT", "--tls-key", "CERT"), "cannot be used for HTTPS"),
    (("--tls-cert", "CERT", "--tls-key", "MISSING"), "--tls-cert/--tls-key: no file "),
])
def test_a_pair_that_cannot_serve_https_stops_serve_naming_it(tmp_path, pair, flags, message):
    names = {"CERT": str(pair[0]), "MISSING": str(tmp_path / "missing.pem")}
    r = subprocess.run([*CLI, "serve", "--port", "1", "--data-dir", str(tmp_path / "data"),
                        *(names.get(f, f) for f in flags)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and message in r.stderr, r.stderr
    assert not (tmp_path / "data" / "altostrat.db").exists()  # nothing started
