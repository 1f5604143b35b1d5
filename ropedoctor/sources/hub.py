"""PATH arguments that name a Hugging Face repo: ``org/name`` (its config.json) or ``org/name/file.gguf``.

- config.json lands in the normal HF cache, in huggingface_hub's layout, and honours ``HF_HUB_OFFLINE`` (a
  cached file is used, nothing else is tried), ``HF_ENDPOINT`` and ``HF_TOKEN``; but it is fetched with this
  module's own HTTP client, not ``hf_hub_download`` (issue 15: that let the server's ``ETag`` name the blob's
  path, retried each failure five times with a stderr line each, and had no deadline per request). One HEAD
  without retries goes first: an unreachable or failing Hub costs one timeout, a "config.json" larger than
  ``MAX_CONFIG_BYTES`` is refused before it is downloaded, and an ETag or commit that is not hex is refused
  before anything is written.
- A GGUF file is never downloaded: ``RemoteFile`` reads its header with HTTP Range requests that start at
  1 MiB and double (each asks for at least as many bytes as lie before it: 1, 1, 2, 4, 8 MiB...), so a 10 MB
  header costs five requests and at most twice its size, whatever the size of the file.

huggingface_hub reads ``HF_ENDPOINT``, ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` into its ``constants`` once,
at import time. This module re-reads the environment at every call (falling back to those constants). huggingface_hub itself is imported
only when a PATH is not a local file (``tests/test_imports.py``).

The token (``HF_TOKEN`` or the saved login, as huggingface_hub picks it) is sent as ``Authorization: Bearer``
to the origin of the resolve URL only, never to a redirect target on another origin (the CDN), and it never
appears in a message: every failure is an ``InputError`` whose text is built here.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
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

# What a Hub may say about a file before any byte of it lands in the cache: the blob name is the ETag (a git
# blob sha1, or the sha256 of an LFS file; md5 and longer digests from mirrors are hex too) and the snapshot
# folder is the commit (40 hex). Anything else (a path, "..", a slash) is refused before anything is written.
_ETAG_FORM = re.compile(r"[0-9a-f]{32,128}")
_COMMIT_FORM = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class _Meta:
    """What the HEAD of a resolve URL said: the commit, the normalised ETag and the size (each may be absent)."""

    commit: str | None
    etag: str | None
    size: int | None


class _NetworkError(Exception):
    """A request that got no usable answer (the cached file may answer instead); ``why`` is the message."""

    def __init__(self, why: str, *, cache_note: bool = True) -> None:
        super().__init__(why)
        self.why = why
        self.cache_note = cache_note  # whether "and it is not in the HF cache" adds anything


def fetch_config(ref: HubRef, *, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """The repo's config.json in the HF cache (downloaded when needed); InputError when it cannot be had.

    ropedoctor fetches it with its own HTTP client (the one RemoteFile uses), not huggingface_hub's
    ``hf_hub_download``, and writes huggingface_hub's cache layout itself (``blobs/<etag>``,
    ``snapshots/<commit>/config.json`` -> the blob, ``refs/<revision>``), because the latter lets the server
    name cache paths (an ``ETag: "../../x"`` wrote the body anywhere), retries each failure five times with
    a line on stderr for each, and bounds each read but not a request. Here: one HEAD (deadline ``timeout``), an
    ETag and commit checked for their form before anything is written, every written path checked to stay in
    the repo's cache folder, one GET (deadline ``timeout`` plus ``timeout`` per MiB, at most the announced size
    and ``MAX_CONFIG_BYTES``), and each failure one line naming the host that failed, never a URL.
    """
    filename = ref.file
    if not filename.endswith(".json"):
        raise ValueError(f"fetch_config is for JSON files, not {filename!r}")
    from huggingface_hub import hf_hub_url

    cache_dir = hub_cache_dir()
    if hub_offline():
        cached = _cached_config(ref, cache_dir)
        if cached is None:
            raise InputError(ref.source, f"offline (HF_HUB_OFFLINE is set) and {filename} is not in the HF cache")
        return cached
    endpoint = hub_endpoint()
    token = _token(ref.source)
    try:
        url = hf_hub_url(ref.repo_id, filename, revision=ref.revision, endpoint=endpoint)
    except ValueError as exc:
        raise InputError(ref.source, _one_line(str(exc), None)) from None
    host = _host(url)
    try:
        meta = _head(url, ref, token, timeout)
    except _NetworkError as failure:
        cached = _cached_config(ref, cache_dir)
        if cached is not None:
            return cached
        note = f" and {filename} is not in the HF cache" if failure.cache_note else ""
        raise InputError(ref.source, failure.why + note) from None
    if meta.commit is None or meta.etag is None:
        raise InputError(ref.source, f"{host} does not answer like a Hugging Face Hub "
                                     "(no X-Repo-Commit or ETag header); check HF_ENDPOINT")
    if not _COMMIT_FORM.fullmatch(meta.commit):
        raise InputError(ref.source, f"{host} named the commit {_shown(meta.commit)}, not 40 hex digits; "
                                     "nothing written (check HF_ENDPOINT)")
    if not _ETAG_FORM.fullmatch(meta.etag):
        raise InputError(ref.source, f"{host} sent the ETag {_shown(meta.etag)}, not a hash; nothing written "
                                     "(check HF_ENDPOINT)")
    if meta.size is not None and meta.size > MAX_CONFIG_BYTES:
        raise InputError(ref.source, f"{filename} on the Hub is {meta.size} bytes, more than the "
                                     f"{MAX_CONFIG_BYTES} a config can have; not downloaded")
    storage = Path(cache_dir) / ("models--" + ref.repo_id.replace("/", "--"))
    pointer = _inside(storage, storage / "snapshots" / meta.commit / filename, ref)
    blob = _inside(storage, storage / "blobs" / meta.etag, ref)
    try:
        if pointer.is_file():  # this commit's file is cached: no download
            _write_ref(storage, ref, meta.commit)
            return pointer
    except OSError as exc:
        raise _cache_error(ref, cache_dir, exc) from None
    limit = MAX_CONFIG_BYTES if meta.size is None else meta.size
    try:
        body = _get_body(url, ref, token, timeout, limit, announced=meta.size is not None)
    except _NetworkError as failure:
        raise InputError(ref.source, failure.why) from None
    try:
        _store(blob, pointer, body)
        _write_ref(storage, ref, meta.commit)
    except OSError as exc:
        raise _cache_error(ref, cache_dir, exc) from None
    return pointer


def _shown(text: str) -> str:
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


def _inside(storage: Path, path: Path, ref: HubRef) -> Path:
    """``path`` when it stays inside the repo's cache folder (checked on the text, before anything exists)."""
    base = os.path.normpath(storage)
    full = os.path.normpath(path)
    if os.path.commonpath([base, full]) != base or full == base:
        raise InputError(ref.source, "the Hub's answer would write outside the HF cache; nothing written")
    return Path(full)


def _cache_error(ref: HubRef, cache_dir: str, exc: OSError) -> InputError:
    return InputError(ref.source, f"cannot use the HF cache {cache_dir} (HF_HUB_CACHE): {exc.strerror or exc}")


def _cached_config(ref: HubRef, cache_dir: str) -> Path | None:
    """The cached file for ``ref`` (huggingface_hub's lookup: refs/<revision> -> snapshots/<commit>/<file>)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(ref.repo_id, ref.file, cache_dir=cache_dir, revision=ref.revision)
    except (OSError, ValueError):  # a cache that is a file, a refs file that is not text
        return None
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


def _head(url: str, ref: HubRef, token: str | None, timeout: float) -> _Meta:
    """The HEAD of the resolve URL, as huggingface_hub reads it: redirects on the same origin are followed (a
    renamed repo), one to another origin (an LFS file on the CDN) is not: its headers are the answer."""
    deadline = time.monotonic() + timeout
    answer = _exchange("HEAD", url, ref, token, timeout, deadline, limit=0, late=f"no answer from {{host}} in time "
                                                                                  f"(deadline {timeout:g} s)")
    status, headers, where = answer.status, answer.headers, _host(answer.url)
    if status in _DENIED_STATUSES:
        code = headers.get("X-Error-Code")
        if code == "RevisionNotFound":
            raise InputError(ref.source, f"revision {ref.revision or 'main'!r} not found in the repo")
        if code == "EntryNotFound":
            raise InputError(ref.source, f"the repo has no {ref.file}")
        if code in ("RepoNotFound", "GatedRepo") or status in (401, 403):
            raise _NetworkError(_denied_message(status, None, token is not None), cache_note=False)
        raise _NetworkError(_denied_message(status, code, token is not None), cache_note=False)
    if status not in (200, 206) and status not in _REDIRECT_STATUSES:
        raise _NetworkError(f"HTTP {status} from {where}")
    etag = headers.get("X-Linked-Etag") or headers.get("ETag")
    size = _int_header(headers.get("X-Linked-Size") or headers.get("Content-Length"))
    commit = headers.get("X-Repo-Commit")
    return _Meta(commit.strip() if commit else None, _normalise_etag(etag), size)


def _normalise_etag(etag: str | None) -> str | None:
    """huggingface_hub's: a weak prefix and the quotes go."""
    if etag is None:
        return None
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"') or None


def _get_body(url: str, ref: HubRef, token: str | None, timeout: float, limit: int, *, announced: bool) -> bytes:
    seconds = timeout * (1 + limit / DEADLINE_UNIT)
    late = f"timed out downloading {ref.file} from {{host}} (deadline {seconds:.1f} s)"
    answer = _exchange("GET", url, ref, token, timeout, time.monotonic() + seconds, limit=limit, late=late)
    where = _host(answer.url)
    if answer.status in _DENIED_STATUSES:
        raise _NetworkError(_denied_message(answer.status, answer.headers.get("X-Error-Code"), token is not None))
    if answer.status != 200:
        raise _NetworkError(f"HTTP {answer.status} from {where}")
    body = answer.body
    if len(body) > limit:
        if announced:
            raise _NetworkError(f"{where} sent more than the {limit} bytes {ref.file} was announced with; "
                                "stopped there")
        raise _NetworkError(f"{ref.file} from {where} is more than the {MAX_CONFIG_BYTES} bytes a config can have; "
                            "stopped there")
    if answer.short:
        raise _NetworkError(f"{where} closed the connection after {len(body)} bytes of {ref.file}")
    return body


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: http.client.HTTPMessage
    url: str  # the URL that gave this answer (after redirects)
    body: bytes = b""
    short: bool = False  # the body ended before its Content-Length


def _exchange(method: str, url: str, ref: HubRef, token: str | None, timeout: float, deadline: float, *,
              limit: int, late: str) -> _Answer:
    """One request with its redirects (at most MAX_REDIRECTS), all of it within ``deadline`` (a watchdog shuts
    the socket, so a server trickling its headers cannot hold it), the token sent to the first URL's origin
    only. A GET reads at most ``limit + 1`` body bytes (one more tells "too long"). Every failure is a
    _NetworkError naming the host that failed, without path or query."""
    origin = _origin(urlsplit(url))
    redirects = 0
    while True:
        parts = _checked_url(url, ref.source)
        host = _host(url)
        if time.monotonic() >= deadline:
            raise _NetworkError(late.format(host=host))
        conn, target, extra = _connect(parts, deadline, timeout, ref.source)
        watchdog = _Watchdog(conn, deadline)
        try:
            headers = {"Accept-Encoding": "identity", "User-Agent": _USER_AGENT, **extra}
            if token and _origin(parts) == origin:
                headers["Authorization"] = f"Bearer {token}"
            conn.request(method, target, headers=headers)
            response = conn.getresponse()
            if watchdog.expired():  # the watchdog cut the headers short: what was parsed is not an answer
                raise _NetworkError(late.format(host=host))
            if response.status in _REDIRECT_STATUSES:
                location = response.getheader("Location")
                if not location:
                    raise _NetworkError(f"HTTP {response.status} redirect without a Location from {host}")
                following = urljoin(url, location)
                if method == "GET" or _origin(_checked_url(following, ref.source)) == _origin(parts):
                    redirects += 1
                    if redirects > MAX_REDIRECTS:
                        raise _NetworkError(f"too many redirects (more than {MAX_REDIRECTS}) from {host}")
                    url = following
                    continue
                return _Answer(response.status, response.headers, url)
            if method != "GET" or response.status != 200:
                return _Answer(response.status, response.headers, url)
            encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
            if encoding not in ("identity", ""):
                raise _NetworkError(f"{host} sent a {encoding}-encoded body although asked for identity")
            declared = _int_header(response.getheader("Content-Length"))
            if declared is not None and declared > limit:  # refused before a byte of it is read
                return _Answer(response.status, response.headers, url, b"\0" * (limit + 1))
            body = _read_limited(response, limit + 1, watchdog.expired)
            if watchdog.expired():
                raise _NetworkError(late.format(host=host))
            short = declared is not None and len(body) < declared
            return _Answer(response.status, response.headers, url, body, short)
        except (InputError, _NetworkError):
            raise
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if watchdog.expired() or isinstance(exc, TimeoutError):
                raise _NetworkError(late.format(host=host)) from None
            verb = "cannot reach" if conn.sock is None else "cannot read from"  # not connected yet, or after
            raise _NetworkError(f"{verb} {host} ({_exc_reason(exc)})") from None
        finally:
            watchdog.cancel()
            conn.close()


def _read_limited(response: http.client.HTTPResponse, count: int, expired: Callable[[], bool]) -> bytes:
    pieces: list[bytes] = []
    left = count
    while left > 0 and not expired():
        piece = response.read1(min(left, _READ_BLOCK))
        if not piece:
            break
        pieces.append(piece)
        left -= len(piece)
    return b"".join(pieces)


def _store(blob: Path, pointer: Path, body: bytes) -> None:
    """Put ``body`` in the cache as huggingface_hub does: the blob, and the snapshot's relative symlink to it (a
    copy where links cannot be made). Each file appears complete or not at all (a temp file renamed)."""
    blob.parent.mkdir(parents=True, exist_ok=True)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    _replace_with(blob, body)
    link = pointer.with_name(f".{pointer.name}.tmp-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(link)
    try:
        os.symlink(os.path.relpath(blob, pointer.parent), link)
    except OSError:
        _replace_with(pointer, body)
        return
    os.replace(link, pointer)


def _write_ref(storage: Path, ref: HubRef, commit: str) -> None:
    """``refs/<revision>`` holds the commit it resolved to (what the offline lookup reads); not for a commit."""
    revision = ref.revision or "main"
    if revision == commit:
        return
    path = _inside(storage, storage / "refs" / revision, ref)
    try:
        if path.read_text(encoding="utf-8") == commit:
            return
    except (OSError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace_with(path, commit.encode())


def _replace_with(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


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
            conn, target, extra = _connect(parts, deadline, self.timeout, self.source)
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


def _connect(parts: SplitResult, deadline: float, timeout: float,
             source: str) -> tuple[http.client.HTTPConnection, str, dict[str, str]]:
    """A connection for ``parts`` (through a proxy from the environment when one applies), the request target
    and extra headers."""
    host = parts.hostname or ""
    port = parts.port
    connect_timeout = max(0.001, min(timeout, deadline - time.monotonic()))
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    proxy = _proxy_for(parts, source)
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
