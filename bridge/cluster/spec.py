"""What the `cluster` setting says, and the one check that Ray is installed (no Ray import at module level)."""

from __future__ import annotations

import importlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from bridge.errors import ConfigError

log = logging.getLogger("continuo.cluster")

TOKEN_PATH = Path("~/.ray/auth_token")
INSTALL_HINT = "pip install 'continuo[cluster]'"
LOCAL = re.compile(r"^local:(\d+)$")
REMOTE = re.compile(r"^(ray://)?[\w.-]+:\d+$")


@dataclass(frozen=True)
class ClusterSpec:
    """local: start a Ray instance inside the gateway with `replicas` replicas; else attach to `address`."""

    local: bool
    replicas: int  # local: exactly this many; remote: 0 = one per GPU of the cluster (one, where it has none)
    address: str  # ray://HOST:PORT (Ray Client), HOST:PORT (the GCS, the gateway on a cluster node), or auto

    @property
    def text(self) -> str:
        return f"local:{self.replicas}" if self.local else self.address


def parse_cluster(text: str, *, replicas: int = 0) -> ClusterSpec | None:
    """None for "" (the engine in process); a ConfigError naming the accepted forms otherwise."""
    text = text.strip()
    if not text:
        return None
    local = LOCAL.match(text)
    if local:
        count = int(local[1])
        if not 1 <= count <= 64:
            raise ConfigError(f"cluster {text!r}: local:N needs 1 to 64 replicas")
        return ClusterSpec(local=True, replicas=count, address="")
    if text == "auto" or REMOTE.match(text):
        return ClusterSpec(local=False, replicas=replicas, address=text)
    raise ConfigError(f"cluster {text!r}: expected local:N (start Ray here with N replicas), ray://HOST:PORT "
                      "(Ray Client), HOST:PORT (the cluster's GCS address) or auto")


def require_ray(*, attach: bool = False) -> ModuleType:
    """The ray module, or a ConfigError that says how to install it. attach: to a running cluster (token auth)."""
    if attach:
        use_token_auth()
    try:
        ray = importlib.import_module("ray")
        importlib.import_module("ray.serve")
    except ImportError as exc:
        raise ConfigError(f"--cluster needs Ray Serve, which is not installed ({exc}); run `{INSTALL_HINT}` "
                          "(on the gateway and on every node of the cluster), or drop --cluster") from None
    return ray


def use_token_auth() -> None:
    """Clusters started by `ray start` (Ray 2.5x) want a token; a driver attaching sends one only when told.

    Where a token is at hand (RAY_AUTH_TOKEN, or ~/.ray/auth_token that `ray start` wrote) and RAY_AUTH_MODE is
    unset, attach with it, rather than retry the GCS for minutes with "InvalidAuthToken". Ray reads the mode
    when it is first imported, so this runs before that.
    """
    if "RAY_AUTH_MODE" not in os.environ and (os.environ.get("RAY_AUTH_TOKEN") or TOKEN_PATH.expanduser().is_file()):
        os.environ["RAY_AUTH_MODE"] = "token"
        log.info("cluster: attaching with Ray's auth token (RAY_AUTH_MODE=token; set it to disabled to opt out)")
