"""PATH arguments that name a Hugging Face repo: ``org/name`` (its config.json) or ``org/name/file.gguf``.

- config.json comes through ``huggingface_hub.hf_hub_download``: the normal HF cache, ``HF_HUB_OFFLINE``
  (a cached file is used, nothing else is tried), ``HF_ENDPOINT``, ``HF_TOKEN``. One HEAD without retries
  goes first (``get_hf_file_metadata``): an unreachable or failing Hub then costs one timeout instead of
  huggingface_hub's five retries with back-off (~23 s), and a "config.json" larger than
  ``MAX_CONFIG_BYTES`` is refused before it is downloaded.
- A GGUF file is never downloaded: ``RemoteFile`` reads its header with HTTP Range requests that start at
  1 MiB and double (each asks for at least as many bytes as lie before it: 1, 1, 2, 4, 8 MiB...), so a 10 MB
  header costs five requests and at most twice its size, whatever the size of the file.

huggingface_hub reads ``HF_ENDPOINT``, ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` into its ``constants`` once,
at import time. This module re-reads the environment at every call (falling back to those constants) and
passes ``endpoint=``, ``cache_dir=`` and ``local_files_only=`` explicitly. huggingface_hub itself is imported
only when a PATH is not a local file (``tests/test_imports.py``).

The token (``HF_TOKEN`` or the saved login, as huggingface_hub picks it) is sent as ``Authorization: Bearer``
to the origin of the resolve URL only, never to a redirect target on another origin (the CDN), and it never
appears in a message: every failure is an ``InputError`` whose text is built here.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import inspect
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, unquote, urljoin, urlsplit

from ropedoctor import __version__
from ropedoctor.errors import InputError
from ropedoctor.sources.json_file import MAX_CONFIG_BYTES

if TYPE_CHECKING:
    import ssl

CONFIG_NAME = "config.json"
GGUF_SUFFIX = ".gguf"
FIRST_RANGE = 1 << 20  # the first Range request; each next one asks for at least all the bytes before it
MAX_BYTES = 512 * 2**20  # no GGUF header is read past this
MAX_REDIRECTS = 5
# Growing ranges read a 512 MiB header in ~10 requests; a server that answers each one with a few bytes would
# make it millions (found by fuzz/: 1 byte per answer, 0.05 s each). Past this many, the read stops.
MAX_REQUESTS = 64
DEFAULT_TIMEOUT = 10.0
# A request may take ``timeout`` seconds plus ``timeout`` more per MiB asked: a stalled or trickling server
# fails within that (a floor of 1 MiB per ``timeout``, ~100 KiB/s at the default), a slow link does not.
DEADLINE_UNIT = 1 << 20

_READ_BLOCK = 1 << 16
_USER_AGENT = f"ropedoctor/{__version__}"
_TRUE = {"1", "ON", "YES", "TRUE"}
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_DENIED_STATUSES = {401, 403, 404}
# A two-part PATH whose name ends like this is a local file that does not exist, not a repo.
_LOCAL_FILE_SUFFIXES = (".json", GGUF_SUFFIX)
_BAD_FILENAME_CHAR = re.compile(r"[\x00-\x1f\x7f\\:]")
_BAD_REVISION = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


@dataclass(frozen=True)
class HubRef:
    """A file in a Hugging Face repo that a PATH argument names."""

    repo_id: str
    filename: str | None  # None -> config.json
    revision: str | None

    @property
    def file(self) -> str:
        return self.filename or CONFIG_NAME

    @property
    def source(self) -> str:
        """How the file is named in messages: the PATH as given, with ``@revision`` when one was asked for."""
        name = self.repo_id if self.filename is None else f"{self.repo_id}/{self.filename}"
        return name if self.revision is None else f"{name}@{self.revision}"


# -- PATH -> HubRef ------------------------------------------------------------------------------------------


def parse_hub_path(path: str, revision: str | None = None) -> HubRef | None:
    """The repo file ``path`` names, or None when it exists locally or is not a valid repo path.

    ``org/name`` names the repo's config.json, ``org/name/[folders/]file.gguf`` a GGUF file in it. Anything
    else is None, so the caller reports it as a missing local file: a bare name, a path starting with ``/``,
    ``.`` or ``~``, backslashes, ``..`` or ``.`` segments (``org/../x``, ``org/name/../../etc/passwd.gguf``),
    a repo id huggingface_hub's ``validate_repo_id`` rejects, ``org/name.json`` or ``org/name.gguf`` (two
    parts ending like a file), three or more parts not ending in ``.gguf``. An invalid ``revision`` for an
    otherwise valid repo path is an InputError.
    """
    if not _looks_like_repo_path(path) or _exists_locally(path):
        return None
    parts = path.split("/")
    repo_id = "/".join(parts[:2])
    filename = "/".join(parts[2:]) or None
    if not _valid_repo_id(repo_id):
        return None
    if revision is not None:
        problem = _revision_problem(revision)
        if problem:
            raise InputError(path, f"--revision {revision!r} {problem}")
    return HubRef(repo_id, filename, revision)


def _exists_locally(path: str) -> bool:
    try:
        return os.path.lexists(path)
    except (OSError, ValueError):
        return False


def _looks_like_repo_path(path: str) -> bool:
    if not path or path.startswith(("/", ".", "~")) or _BAD_FILENAME_CHAR.search(path) or path != path.strip():
        return False
    parts = path.split("/")
    if len(parts) < 2 or any(part in ("", ".", "..") for part in parts):
        return False
    if len(parts) == 2:
        return not parts[1].lower().endswith(_LOCAL_FILE_SUFFIXES)
    return parts[-1].endswith(GGUF_SUFFIX) and len(path) <= 1024


def _valid_repo_id(repo_id: str) -> bool:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id  # type: ignore[attr-defined]

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return False
    return True


def _revision_problem(revision: str) -> str | None:
    """Why ``revision`` is not a usable git branch, tag or commit name (a subset of git check-ref-format)."""
    if not revision or len(revision) > 255:
        return "must have 1 to 255 characters"
    if _BAD_REVISION.search(revision) or revision.startswith(("/", ".", "-")) or revision.endswith(("/", ".lock")):
        return "is not a valid branch, tag or commit name"
    return None


# -- settings, read at every call ------------------------------------------------------------------------------


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` as set now, else huggingface_hub's (import-time) endpoint."""
    endpoint = os.environ.get("HF_ENDPOINT", "").strip()
    if not endpoint:
        from huggingface_hub import constants

        endpoint = str(constants.ENDPOINT)
    return endpoint.rstrip("/")


def hub_cache_dir() -> str:
    """The HF hub cache, with huggingface_hub's precedence, from the environment as set now."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        value = os.environ.get(name)
        if value:
            return os.path.expandvars(os.path.expanduser(value))
    home = os.environ.get("HF_HOME")
    if home:
        return os.path.join(os.path.expandvars(os.path.expanduser(home)), "hub")
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as set now, else huggingface_hub's import-time value."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    if value:
        return value.strip().upper() in _TRUE
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _token(source: str) -> str | None:
    """The token huggingface_hub would send (HF_TOKEN, then the saved login), or None."""
    from huggingface_hub.utils import get_token_to_send  # type: ignore[attr-defined]

    try:
        token = get_token_to_send(None)
    except Exception as exc:  # an OIDC exchange that failed, an unreadable token file
        raise InputError(source, f"cannot get the Hugging Face token ({type(exc).__name__})") from None
    return token or None


# -- config.json ----------------------------------------------------------------------------------------------


def fetch_config(ref: HubRef, *, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """The repo's config.json in the HF cache (downloaded when needed); InputError when it cannot be had."""
    filename = ref.file
    if not filename.endswith(".json"):
        raise ValueError(f"fetch_config is for JSON files, not {filename!r}")
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache

    offline = hub_offline()
    endpoint = hub_endpoint()
    cache_dir = hub_cache_dir()
    _skip_agent_registry()
    token = None if offline else _token(ref.source)
    host = _host(endpoint)
    try:
        if not offline:
            # One HEAD without retries: fail fast (or fall back to the cache) and refuse a huge file.
            url = hf_hub_url(ref.repo_id, filename, revision=ref.revision, endpoint=endpoint)
            try:
                meta = get_hf_file_metadata(url, token=token or False, timeout=timeout, endpoint=endpoint,
                                            library_name="ropedoctor", library_version=__version__)
            except Exception as exc:
                if not _cache_may_answer(exc):
                    raise
                cached = try_to_load_from_cache(ref.repo_id, filename, cache_dir=cache_dir, revision=ref.revision)
                if isinstance(cached, str):
                    return Path(cached)
                raise _config_error(ref, exc, offline=offline, token=token, host=host, tried_cache=True) from None
            if meta.commit_hash is None or meta.etag is None:
                raise InputError(ref.source, f"{host} does not answer like a Hugging Face Hub "
                                             "(no X-Repo-Commit or ETag header); check HF_ENDPOINT")
            if meta.size is not None and meta.size > MAX_CONFIG_BYTES:
                raise InputError(ref.source, f"{filename} on the Hub is {meta.size} bytes, more than the "
                                             f"{MAX_CONFIG_BYTES} a config can have; not downloaded")
        limit = MAX_CONFIG_BYTES if offline or meta.size is None else min(MAX_CONFIG_BYTES, meta.size)
        with _DownloadBudget(limit, timeout * (1 + limit / DEADLINE_UNIT)) as budget:
            local = hf_hub_download(ref.repo_id, filename, revision=ref.revision, endpoint=endpoint,
                                    cache_dir=cache_dir, local_files_only=offline, token=token or False,
                                    etag_timeout=timeout, library_name="ropedoctor", library_version=__version__,
                                    **budget.download_kwargs())
    except InputError:
        raise
    except _OverBudget as exc:
        raise InputError(ref.source, exc.why(filename, host)) from None
    except Exception as exc:
        raise _config_error(ref, exc, offline=offline, token=token, host=host) from None
    return Path(str(local))


def _skip_agent_registry() -> None:
    """huggingface_hub >= 2.4 fetches ``{HF_ENDPOINT}/api/agent-harnesses`` once a day to build its User-Agent,
    reading the whole answer into memory with only a per-read timeout: an endpoint that answers with 10 GB, or a
    byte every 2 s, holds the process (found by tests/test_hub_safety.py). ropedoctor does not need that
    detection: it is set to "no registry" (huggingface_hub's own fallback when the fetch fails) before any call."""
    with contextlib.suppress(Exception):
        from huggingface_hub.utils import _detect_agent

        if getattr(_detect_agent, "_registry", "absent") is None:
            _detect_agent._registry = _detect_agent._EMPTY_REGISTRY


class _OverBudget(Exception):
    def __init__(self, limit: int, seconds: float, late: bool) -> None:
        super().__init__(limit)
        self.limit, self.seconds, self.late = limit, seconds, late

    def why(self, filename: str, host: str) -> str:
        if self.late:
            return f"timed out downloading {filename} from {host} (deadline {self.seconds:.1f} s)"
        return f"{host} sent more than the {self.limit} bytes {filename} was announced with; stopped there"


class _DownloadBudget:
    """Bounds what ``hf_hub_download`` may read for one config.json, which it does not bound itself: at most
    ``limit`` bytes (the size the HEAD announced; a server that then streams 10 GB is stopped within one of
    huggingface_hub's 10 MiB chunks) and ``seconds`` in all (its own timeout is per read, which a server that
    trickles a byte at a time never trips). The byte count is checked in the progress callback it calls for each
    chunk; past the deadline a timer closes huggingface_hub's HTTP client, whose pending read then fails."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.late = False
        self._timer: threading.Timer | None = None
        self._done = threading.Event()

    def __enter__(self) -> _DownloadBudget:
        self._arm(self.seconds)
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._timer is not None:
            self._timer.cancel()
        if self.late and exc[0] is not None and not isinstance(exc[1], _OverBudget):
            raise _OverBudget(self.limit, self.seconds, late=True) from None

    def _arm(self, after: float) -> None:
        self._timer = threading.Timer(after, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        if self._done.is_set():
            return
        self.late = True
        from huggingface_hub import close_session

        with contextlib.suppress(Exception):
            close_session()
        self._arm(0.25)  # huggingface_hub retries with a new client: close that one too

    def download_kwargs(self) -> dict[str, Any]:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import tqdm as hf_tqdm  # type: ignore[attr-defined]

        if "tqdm_class" not in inspect.signature(hf_hub_download).parameters:
            return _quiet_download()
        budget = self

        class BoundedProgress(hf_tqdm):
            seen = 0

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs["disable"] = True  # no bar on stderr
                super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

            def update(self, n: float | None = 1) -> bool | None:
                BoundedProgress.seen += int(n or 0)
                if budget.late or BoundedProgress.seen > budget.limit:
                    raise _OverBudget(budget.limit, budget.seconds, budget.late)
                return None

        return {"tqdm_class": BoundedProgress}


def _quiet_download() -> dict[str, Any]:
    """No progress bar on stderr (``tqdm_class`` exists in hf_hub_download only since huggingface_hub 1.x)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import tqdm as hf_tqdm  # type: ignore[attr-defined]

    silent = getattr(hf_tqdm, "silent_tqdm", None)
    if silent is None or "tqdm_class" not in inspect.signature(hf_hub_download).parameters:
        return {}
    return {"tqdm_class": silent}


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _cache_may_answer(exc: BaseException) -> bool:
    """Whether huggingface_hub would fall back to a cached file after this HEAD error (all but these two)."""
    return not _names(exc) & {"RevisionNotFoundError", "RemoteEntryNotFoundError", "EntryNotFoundError"}


def _config_error(ref: HubRef, exc: BaseException, *, offline: bool, token: str | None, host: str,
                  tried_cache: bool = False) -> InputError:
    names = _names(exc)
    status = _status(exc)
    cause = exc.__cause__ or exc.__context__
    if "OfflineModeIsEnabled" in names or (offline and "LocalEntryNotFoundError" in names):
        return InputError(ref.source, f"offline (HF_HUB_OFFLINE is set) and {ref.file} is not in the HF cache")
    if "RevisionNotFoundError" in names:
        return InputError(ref.source, f"revision {ref.revision or 'main'!r} not found in the repo")
    if names & {"RemoteEntryNotFoundError", "EntryNotFoundError"} and "LocalEntryNotFoundError" not in names:
        return InputError(ref.source, f"the repo has no {ref.file}")
    if "RepositoryNotFoundError" in names or status in _DENIED_STATUSES:
        return InputError(ref.source, _denied_message(status, None, token is not None))
    not_cached = f" and {ref.file} is not in the HF cache"
    if "LocalEntryNotFoundError" in names and cause is not None:
        return InputError(ref.source, _network_reason(cause, host, token) + not_cached)
    return InputError(ref.source, _network_reason(exc, host, token) + (not_cached if tried_cache else ""))


def _network_reason(exc: BaseException, host: str, token: str | None) -> str:
    names = _names(exc)
    status = _status(exc)
    if status is not None:
        return f"HTTP {status} from {host}"
    if names & {"TimeoutException", "TimeoutError", "Timeout", "ReadTimeout", "ConnectTimeout"}:
        return f"no answer from {host} in time"
    if "TooManyRedirects" in names:
        return f"too many redirects from {host}"
    if "FileMetadataError" in names:
        return f"{host} does not answer like a Hugging Face Hub; check HF_ENDPOINT"
    if names & {"ConnectError", "NetworkError", "ConnectionError", "ProxyError", "TransportError"}:
        return f"cannot reach {host} ({_one_line(str(exc), token) or type(exc).__name__})"
    return f"{type(exc).__name__}: {_one_line(str(exc), token)}".rstrip(": ")


def _one_line(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "***")
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= 200 else line[:197] + "..."


def _denied_message(status: int | None, error_code: str | None, has_token: bool) -> str:
    code = f"HTTP {status}" if status is not None else "denied"
    if error_code == "RevisionNotFound":
        return f"revision not found ({code})"
    if error_code == "EntryNotFound":
        return f"no such file in the repo ({code})"
    if has_token:
        return f"not found or gated ({code}), or the HF token has no access to it"
    return f"not found or gated ({code}), set HF_TOKEN"


def _host(url: str) -> str:
    try:
        parts = urlsplit(url)
        return parts.netloc.rpartition("@")[2] or url
    except ValueError:
        return "the Hub"


# -- GGUF header over Range requests -------------------------------------------------------------------------


def open_remote_gguf(ref: HubRef, *, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = MAX_BYTES) -> RemoteFile:
    """A RemoteFile over a GGUF file in a repo, its first range already fetched (so a missing file fails here)."""
    if ref.filename is None or not ref.filename.endswith(GGUF_SUFFIX):
        raise ValueError(f"open_remote_gguf is for .gguf files, not {ref.file!r}")
    if hub_offline():
        raise InputError(ref.source, "offline (HF_HUB_OFFLINE is set): reading a GGUF header from the Hub "
                                     "needs the network")
    from huggingface_hub import hf_hub_url

    try:
        url = hf_hub_url(ref.repo_id, ref.filename, revision=ref.revision, endpoint=hub_endpoint())
    except ValueError as exc:
        raise InputError(ref.source, _one_line(str(exc), None)) from None
    remote = RemoteFile(url, source=ref.source, token=_token(ref.source), timeout=timeout, max_bytes=max_bytes)
    try:
        remote.peek(1)
    except BaseException:
        remote.close()
        raise
    return remote


class RemoteFile:
    """A read-only stream over an HTTP file fetched with Range requests that grow until the reader stops asking.

    The first range is ``first_range`` (1 MiB); each next one asks for what the reader needs but at least as
    many bytes as were fetched before it, so the total at most doubles per request whether the reader reads in
    small pieces or in large doubling ones (as ``gguf_header.read_header`` does): a header of H bytes costs
    about log2(H / 1 MiB) + 2 requests and less than H plus the last range. A read that would need bytes past
    ``max_bytes`` is an InputError (a reader's read-ahead counts). Each request follows at most
    ``MAX_REDIRECTS`` redirects (the final URL is reused for the next ranges) and must end within ``timeout``
    plus ``timeout`` per MiB asked; every socket operation has ``timeout`` too.

    ``bytes_fetched`` is the exact number of body bytes received from the network, ``size`` the file's size
    once a server has told it (``Content-Range``, ``X-Linked-Size`` or the ``Content-Length`` of a 200),
    ``request_count`` the HTTP requests sent (redirects included).

    A server that ignores Range and answers ``200`` with the whole file is read up to the bytes asked and then
    left (the connection is closed); needing more from it is an InputError ("does not support range
    requests"). A server that sends more than asked is read up to the bytes asked.
    """

    def __init__(self, url: str, *, source: str, token: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 max_bytes: int = MAX_BYTES, first_range: int = FIRST_RANGE) -> None:
        if first_range < 1 or max_bytes < 1 or timeout <= 0:
            raise ValueError("first_range, max_bytes and timeout must be positive")
        self.url = url
        self.source = source
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.bytes_fetched = 0
        self.size: int | None = None
        self.request_count = 0
        self._token = token
        self._origin = _origin(urlsplit(url))
        self._host = _host(url)
        self._location: str | None = None  # where the resolve URL redirected to, reused for the next ranges
        self._buf = b""
        self._off = 0  # next unread byte in _buf
        self._pos = 0  # file offset of that byte
        self._next = 0  # file offset of the next byte to fetch
        self._first_range = first_range
        self._no_ranges = False  # the server answered a Range request with 200
        self._eof = False
        self._closed = False

    def __repr__(self) -> str:
        return f"RemoteFile({self.source!r}, bytes_fetched={self.bytes_fetched}, size={self.size})"

    def __enter__(self) -> RemoteFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._closed = True
        self._buf = b""
        self._off = 0

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (fewer only at the end of the file); a RemoteFile never reads "everything"."""
        if n < 0:
            raise ValueError("RemoteFile.read needs a size: a remote file is never read whole")
        self._fill(n)
        end = min(self._off + n, len(self._buf))
        out = self._buf[self._off:end]
        self._off = end
        self._pos += len(out)
        return out

    def peek(self, n: int) -> bytes:
        """The next ``n`` bytes (fewer at the end of the file) without consuming them."""
        self._fill(n)
        return self._buf[self._off:self._off + n]

    # -- fetching ------------------------------------------------------------------------------------------

    def _fill(self, n: int) -> None:
        if self._closed:
            raise ValueError("I/O operation on a closed RemoteFile")
        while len(self._buf) - self._off < n and not self._eof:
            self._fetch(n - (len(self._buf) - self._off))

    def _fetch(self, need: int) -> None:
        start = self._next
        if self.size is not None:
            if start >= self.size:
                self._eof = True
                return
            need = min(need, self.size - start)
        if start + need > self.max_bytes:
            raise InputError(self.source, f"the GGUF header is larger than the download limit ({self.max_bytes} "
                                          "bytes); stopped there")
        if self._no_ranges:
            raise InputError(self.source, f"server does not support range requests (it answered with the whole "
                                          f"file); cannot read past the first {start} bytes")
        want = min(max(need, start, self._first_range), self.max_bytes - start)
        if self.size is not None:
            want = min(want, self.size - start)
        data = self._get(start, want)
        if not data:
            self._eof = True
            if self.size is None:
                self.size = start
            return
        self._buf = self._buf[self._off:] + data
        self._off = 0
        self._next = start + len(data)

    def _get(self, start: int, length: int) -> bytes:
        """Bytes [start, start + length) from one request (fewer only when the file ends), redirects followed."""
        deadline = time.monotonic() + self.timeout * (1 + length / DEADLINE_UNIT)
        url = self._location or self.url
        redirects = 0
        while True:
            if self.request_count >= MAX_REQUESTS:
                raise InputError(self.source, f"{_host(url)} needed more than {MAX_REQUESTS} requests for the header "
                                              f"(it answers in small pieces); stopped after {self.bytes_fetched} bytes")
            parts = _checked_url(url, self.source)
            conn, target, extra = self._connection(parts, deadline)
            watchdog = _Watchdog(conn, deadline)
            try:
                headers = {"Range": f"bytes={start}-{start + length - 1}", "Accept-Encoding": "identity",
                           "User-Agent": _USER_AGENT, **extra}
                if self._token and _origin(parts) == self._origin:
                    headers["Authorization"] = f"Bearer {self._token}"
                self.request_count += 1
                conn.request("GET", target, headers=headers)
                response = conn.getresponse()
                if response.status in _REDIRECT_STATUSES:
                    self._note_linked_size(response)
                    location = response.getheader("Location")
                    if not location:
                        raise InputError(self.source, f"HTTP {response.status} redirect without a Location "
                                                      f"from {_host(url)}")
                    redirects += 1
                    if redirects > MAX_REDIRECTS:
                        raise InputError(self.source, f"too many redirects (more than {MAX_REDIRECTS}) from "
                                                      f"{self._host}")
                    url = urljoin(url, location)
                    continue
                data = self._body(response, start, length, watchdog.expired, _host(url))
                if url != self.url:
                    self._location = url
                return data
            except InputError:
                raise
            except (OSError, http.client.HTTPException, ValueError) as exc:
                if watchdog.expired() or isinstance(exc, TimeoutError):
                    raise self._timeout(_host(url)) from None
                raise InputError(self.source, f"cannot read from {_host(url)} ({_exc_reason(exc)})") from None
            finally:
                watchdog.cancel()
                conn.close()

    def _timeout(self, host: str) -> InputError:
        return InputError(self.source, f"timed out reading from {host} (timeout {self.timeout:g} s)")

    def _connection(self, parts: SplitResult, deadline: float) -> tuple[http.client.HTTPConnection, str, dict[str, str]]:
        """A connection for ``parts`` (through a proxy from the environment when one applies), the request
        target and extra headers."""
        host = parts.hostname or ""
        port = parts.port
        connect_timeout = max(0.001, min(self.timeout, deadline - time.monotonic()))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        proxy = _proxy_for(parts, self.source)
        if proxy is None:
            if parts.scheme == "https":
                return http.client.HTTPSConnection(host, port, timeout=connect_timeout,
                                                   context=_ssl_context()), target, {}
            return http.client.HTTPConnection(host, port, timeout=connect_timeout), target, {}
        proxy_headers = {}
        if proxy.username is not None:
            credentials = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()
            proxy_headers["Proxy-Authorization"] = "Basic " + base64.b64encode(credentials).decode()
        proxy_host, proxy_port = proxy.hostname or "", proxy.port or 80
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(proxy_host, proxy_port, timeout=connect_timeout,
                                               context=_ssl_context())
            conn.set_tunnel(host, port or 443, headers=proxy_headers)
            return conn, target, {}
        plain = http.client.HTTPConnection(proxy_host, proxy_port, timeout=connect_timeout)
        return plain, parts.geturl(), proxy_headers

    def _note_linked_size(self, response: http.client.HTTPResponse) -> None:
        linked = (response.getheader("X-Linked-Size") or "").strip()
        if self.size is None and linked.isdigit():
            self.size = int(linked)

    def _body(self, response: http.client.HTTPResponse, start: int, length: int, expired: Callable[[], bool],
              host: str) -> bytes:
        status = response.status
        if status in _DENIED_STATUSES:
            raise InputError(self.source, _denied_message(status, response.getheader("X-Error-Code"),
                                                          self._token is not None))
        if status == 416:  # the range starts at or past the end
            total = _content_range_total(response.getheader("Content-Range"))
            if total is not None:
                self.size = total
            if start > 0 or total == 0:
                return b""
            raise InputError(self.source, f"{host} refused the range request (HTTP 416)")
        if status not in (200, 206):
            raise InputError(self.source, f"HTTP {status} from {host}")
        encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
        if encoding not in ("identity", ""):
            raise InputError(self.source, f"{host} sent a {encoding}-encoded body although asked for identity")
        declared = _int_header(response.getheader("Content-Length"))
        if status == 206:
            match = _CONTENT_RANGE.match(response.getheader("Content-Range") or "")
            if match is None or int(match[1]) != start or int(match[2]) < int(match[1]):
                raise InputError(self.source, f"{host} answered with a different range than asked")
            if match[3] != "*":
                self.size = int(match[3])
            available: int | None = int(match[2]) - start + 1
        else:  # 200: the server ignored Range and sends the whole file
            self._no_ranges = True
            if start > 0:
                raise InputError(self.source, "server does not support range requests (it answered with the "
                                              "whole file)")
            if declared is not None:
                self.size = declared
            available = declared
        if declared is not None:
            available = declared if available is None else min(available, declared)
        to_read = length if available is None else min(length, available)
        data = self._read_body(response, to_read, expired)
        if len(data) < to_read:
            if expired():
                raise self._timeout(host)
            if available is not None:
                raise InputError(self.source, f"{host} closed the connection after {len(data)} of {to_read} bytes")
            self.size = start + len(data)  # a 200 without Content-Length ends with the file
        return data

    def _read_body(self, response: http.client.HTTPResponse, count: int, expired: Callable[[], bool]) -> bytes:
        """At most ``count`` body bytes, each read bounded by the socket timeout and all by the deadline."""
        pieces: list[bytes] = []
        left = count
        while left > 0:
            if expired():
                break
            piece = response.read1(min(left, _READ_BLOCK))
            if not piece:
                break
            self.bytes_fetched += len(piece)
            pieces.append(piece)
            left -= len(piece)
        return b"".join(pieces)


class _Watchdog:
    """Shuts the connection's socket down at ``deadline``: a request cannot outlive it, whatever the server
    trickles (headers included)."""

    def __init__(self, conn: http.client.HTTPConnection, deadline: float) -> None:
        self._conn = conn
        self._deadline = deadline
        self.fired = False
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def expired(self) -> bool:
        return self.fired or time.monotonic() >= self._deadline

    def cancel(self) -> None:
        self._timer.cancel()


def _checked_url(url: str, source: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        _ = parts.port  # a malformed port raises here
    except ValueError:
        raise InputError(source, "the server redirected to a malformed URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(source, f"cannot fetch a {parts.scheme or 'relative'}: URL")
    return parts


def _origin(parts: SplitResult) -> tuple[str, str, int]:
    default = 443 if parts.scheme == "https" else 80
    try:
        port = parts.port or default
    except ValueError:
        port = default
    return parts.scheme, (parts.hostname or "").lower(), port


def _proxy_for(parts: SplitResult, source: str) -> SplitResult | None:
    """The proxy the environment (``HTTP(S)_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) sets for this URL, if any."""
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    try:
        found = urlsplit(proxy)
        _ = found.port
    except ValueError:
        raise InputError(source, "the proxy URL in the environment is malformed") from None
    if found.scheme != "http" or not found.hostname:
        raise InputError(source, f"only http:// proxies are supported for GGUF headers, not {found.scheme}://")
    return found


_SSL_CONTEXT: ssl.SSLContext | None = None
_SSL_LOCK = threading.Lock()


def _ssl_context() -> ssl.SSLContext:
    """Verification as huggingface_hub's HTTP client does it: ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set, else
    the system store plus certifi's bundle when certifi is installed."""
    global _SSL_CONTEXT
    import ssl

    with _SSL_LOCK:
        if _SSL_CONTEXT is None:
            cafile = os.environ.get("SSL_CERT_FILE") or None
            capath = os.environ.get("SSL_CERT_DIR") or None
            context = ssl.create_default_context(cafile=cafile, capath=capath)
            if cafile is None and capath is None:
                try:
                    import certifi

                    context.load_verify_locations(certifi.where())
                except (ImportError, OSError):
                    pass
            _SSL_CONTEXT = context
        return _SSL_CONTEXT


def _content_range_total(value: str | None) -> int | None:
    match = re.search(r"/(\d+)\s*$", value or "")
    return int(match[1]) if match else None


def _int_header(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def _exc_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    return type(exc).__name__
