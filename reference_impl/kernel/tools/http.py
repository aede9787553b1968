"""The HTTP tool: GETs of URLs on allowlisted hosts, redirects followed and checked by the tool.

Its denials are the ``http.*`` rules listed in :mod:`reference_impl.kernel.tools`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from reference_impl.errors import ConfigError, DeniedError
from reference_impl.kernel.tools.common import _Counters

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """Where :class:`HttpTool` may connect, and within which limits.

    ``allowed_hosts`` holds exact host names or IP addresses, each optionally
    with a port (``"127.0.0.1"`` allows every port, ``"127.0.0.1:8080"`` only
    that one, ``"[::1]:8080"`` for IPv6). No wildcard, no DNS-based matching.
    ``timeout_s`` is the deadline of a whole :meth:`HttpTool.get`: connect,
    headers and body of every hop, redirects included.
    """

    allowed_hosts: frozenset[str]
    allowed_schemes: frozenset[str] = frozenset({"http", "https"})
    max_redirects: int = 5
    timeout_s: float = 10.0
    body_cap_bytes: int = 1_048_576

    def __post_init__(self) -> None:
        unsupported = set(self.allowed_schemes) - set(_DEFAULT_PORTS)
        if unsupported:
            raise ConfigError("HttpConfig.allowed_schemes", f"unsupported {sorted(unsupported)}")
        for entry in self.allowed_hosts:
            _parse_host_entry(entry)
        if self.max_redirects < 0:
            raise ConfigError("HttpConfig.max_redirects", f"must be >= 0, got {self.max_redirects}")
        if not self.timeout_s > 0:
            raise ConfigError("HttpConfig.timeout_s", f"must be > 0, got {self.timeout_s}")
        if self.body_cap_bytes < 0:
            raise ConfigError(
                "HttpConfig.body_cap_bytes", f"must be >= 0, got {self.body_cap_bytes}"
            )
        object.__setattr__(self, "allowed_hosts", frozenset(self.allowed_hosts))
        object.__setattr__(self, "allowed_schemes", frozenset(self.allowed_schemes))


def _parse_host_entry(entry: str) -> tuple[str, int | None]:
    """``"host"``, ``"host:port"``, ``"[v6]"`` or ``"[v6]:port"`` to ``(host, port)``."""
    host, port_text = entry, ""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ConfigError("HttpConfig.allowed_hosts", f"bad entry {entry!r}")
        port_text = rest[1:]
    elif entry.count(":") == 1:
        host, _, port_text = entry.partition(":")
    if not host or (port_text and not port_text.isdigit()):
        raise ConfigError("HttpConfig.allowed_hosts", f"bad entry {entry!r}")
    return host.lower(), int(port_text) if port_text else None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """The final response of a :meth:`HttpTool.get`, after any redirects."""

    status_code: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    body_truncated: bool
    url: str
    redirects_followed: int


@dataclass(frozen=True, slots=True)
class HttpStatistics:
    """Counters of an :class:`HttpTool`: calls, denials, and ``httpx`` clients created."""

    calls: int
    denials: int
    clients_created: int


class HttpTool:
    """GETs URLs on allowlisted hosts, following redirects itself.

    Guarantees:

    * The URL and every redirect target are checked (scheme, then host and
      port) before a request is sent to them; a denied target is never
      contacted. Redirects are followed up to ``max_redirects``, always as GET.
    * ``pooled=True``: one keep-alive ``httpx.AsyncClient`` per tool, created
      at the first allowed request and closed by :meth:`aclose` (or on leaving
      ``async with``). ``pooled=False`` (the legacy behaviour): a new client
      per call, closed before the call returns.
    * The body kept is at most ``body_cap_bytes``; reading stops there.
    * A call ends within ``timeout_s`` of starting, however slowly the server
      drips its headers or body: past it, the request is cancelled, its
      connection closed, and ``http.timeout`` raised. (httpx's own timeouts
      apply per read, so a byte every half second would never trip them.)
    * Proxy and other environment settings are ignored (``trust_env=False``):
      a request goes where its URL says, and nowhere else.

    Network failures propagate as ``httpx.HTTPError``. Use one event loop per tool.
    """

    def __init__(self, config: HttpConfig, *, pooled: bool = True) -> None:
        self._config = config
        self._pooled = pooled
        self._allowed: dict[str, set[int | None]] = {}
        for entry in config.allowed_hosts:
            host, port = _parse_host_entry(entry)
            self._allowed.setdefault(host, set()).add(port)
        self._client: httpx.AsyncClient | None = None
        self._closed = False
        self._counters = _Counters()
        self._clients_created = 0

    @property
    def pooled(self) -> bool:
        """Whether this tool keeps one client across calls."""
        return self._pooled

    @property
    def connections_opened(self) -> int:
        """How many ``httpx`` clients (connection pools) this tool has created."""
        return self._clients_created

    def statistics(self) -> HttpStatistics:
        """A snapshot of calls, denials and clients created so far."""
        return HttpStatistics(
            calls=self._counters.calls,
            denials=self._counters.denials,
            clients_created=self._clients_created,
        )

    async def __aenter__(self) -> HttpTool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled client, if any. Idempotent; the tool cannot be used after."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def get(self, url: str) -> HttpResponse:
        """GET ``url``, following allowed redirects, and return the final response.

        Raises :class:`DeniedError` (``http.url``, ``http.scheme``,
        ``http.host``, ``http.redirect_scheme``, ``http.redirect_host``,
        ``http.redirect_limit``); a redirect is denied before its target is
        contacted. Raises ``http.timeout`` once ``timeout_s`` has passed since
        the call began, whatever stage it is in. Raises
        :class:`RuntimeError` after :meth:`aclose`.
        """
        if self._closed:
            raise RuntimeError("HttpTool is closed")
        self._counters.calls += 1
        try:
            target = self._check(url, url, "http.scheme", "http.host")
            return await self._get_within_deadline(target, url)
        except DeniedError:
            self._counters.denials += 1
            raise

    async def _get_within_deadline(self, target: httpx.URL, shown: str) -> HttpResponse:
        timeout_s = self._config.timeout_s
        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                if self._pooled:
                    return await self._follow(self._pooled_client(), target)
                async with self._new_client() as client:
                    return await self._follow(client, target)
        except TimeoutError:
            if not deadline.expired():
                raise  # not ours: some inner timeout, left as it was
            raise DeniedError(
                "http.timeout", shown, f"no complete response within {timeout_s} s"
            ) from None

    def _new_client(self) -> httpx.AsyncClient:
        self._clients_created += 1
        return httpx.AsyncClient(
            follow_redirects=False, timeout=self._config.timeout_s, trust_env=False
        )

    def _pooled_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _check(
        self, raw: str | httpx.URL, shown: str, scheme_rule: str, host_rule: str
    ) -> httpx.URL:
        try:
            url = httpx.URL(raw)
        except httpx.InvalidURL as error:
            raise DeniedError("http.url", shown, str(error)) from None
        if url.scheme not in self._config.allowed_schemes:
            raise DeniedError(scheme_rule, shown, f"scheme {url.scheme!r} is not allowed")
        ports = self._allowed.get(url.host.lower())
        port = url.port if url.port is not None else _DEFAULT_PORTS[url.scheme]
        if ports is None or not (None in ports or port in ports):
            raise DeniedError(host_rule, shown, f"{url.host}:{port} is not an allowed host")
        return url

    async def _follow(self, client: httpx.AsyncClient, url: httpx.URL) -> HttpResponse:
        cap = self._config.body_cap_bytes
        redirects = 0
        while True:
            async with client.stream("GET", url) as response:
                # Read even a redirect's body (bounded): a fully read response
                # hands its connection back to the pool for the next hop.
                body, truncated = await _read_body(response, cap)
                if response.has_redirect_location:
                    location = response.headers["location"]
                else:
                    return HttpResponse(
                        status_code=response.status_code,
                        headers=tuple(response.headers.multi_items()),
                        body=body,
                        body_truncated=truncated,
                        url=str(url),
                        redirects_followed=redirects,
                    )
            if redirects >= self._config.max_redirects:
                raise DeniedError(
                    "http.redirect_limit", location, f"more than {self._config.max_redirects}"
                )
            try:
                next_url = url.join(location)
            except httpx.InvalidURL as error:
                raise DeniedError("http.url", location, str(error)) from None
            url = self._check(next_url, location, "http.redirect_scheme", "http.redirect_host")
            redirects += 1


async def _read_body(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of the (decoded) body; stops reading past the cap."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        room = cap - size
        if len(chunk) > room:
            chunks.append(chunk[:room])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False
