"""`continuo keys DIR`: CURVE key pairs for ZeroMQ on a non-loopback address.

Writes DIR/server.key (public) and DIR/server.key_secret for the daemon, one
client pair DIR/client.key / DIR/client.key_secret, and DIR/clients/client.key
(the authorized public keys the daemon reads). Give each client its own pair
(`continuo keys DIR --client NAME`) and the server's public key. Also DIR/http.token, the
bearer token for HTTP on a non-loopback address (`--http-token-file DIR/http.token`), once.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import zmq.auth


def make_keys(keys_dir: Path, *, client: str = "client") -> dict[str, Path]:
    keys_dir = keys_dir.expanduser()
    clients = keys_dir / "clients"
    clients.mkdir(parents=True, exist_ok=True)
    keys_dir.chmod(0o700)
    made: dict[str, Path] = {}
    if not (keys_dir / "server.key_secret").exists():
        zmq.auth.create_certificates(str(keys_dir), "server")
    made["server_public"] = keys_dir / "server.key"
    made["server_secret"] = keys_dir / "server.key_secret"
    public, secret = zmq.auth.create_certificates(str(keys_dir), client)
    shutil.copy(public, clients / Path(public).name)
    made["client_public"], made["client_secret"] = Path(public), Path(secret)
    made["http_token"] = keys_dir / "http.token"
    if not made["http_token"].exists():
        made["http_token"].write_text(secrets.token_urlsafe(32) + "\n")
    for path in (made["server_secret"], made["client_secret"], made["http_token"]):
        path.chmod(0o600)
    return made


def load_keys(path: Path) -> tuple[bytes, bytes | None]:
    """(public, secret or None) from a key file made by `continuo keys`."""
    public, secret = zmq.auth.load_certificate(str(path))
    return public, secret


def run_keys(keys_dir: Path, client: str) -> int:
    made = make_keys(keys_dir, client=client)
    print(f"server key pair: {made['server_secret']} (keep it on the daemon's machine)")
    print(f"client key pair: {made['client_secret']} (give it to the client with {made['server_public']})")
    print(f"authorized: {keys_dir / 'clients'} holds the public keys allowed in")
    print(f"serve with: continuo serve --zmq-host 0.0.0.0 --zmq-keys-dir {keys_dir}")
    print(f"HTTP bearer token: {made['http_token']} (continuo serve --http-host 0.0.0.0 "
          f"--http-token-file {made['http_token']})")
    return 0
